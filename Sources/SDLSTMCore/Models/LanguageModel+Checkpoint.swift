/// The LM's carried hidden state in a checkpoint: `h` and `c`, each num_layers × batch × hidden —
/// PyTorch's `(h_0, c_0)` for `nn.LSTM`, so a tool can continue the same text where training stopped.
extension LanguageModel {
    public func carriedStateTensors() -> [StateTensor] {
        guard let state = carriedState, let b = carriedBatch else { return [] }
        let shape = [config.numLayers, b, config.hiddenSize]
        return [StateTensor(name: "h", shape: shape, values: state.h.flatMap { $0 }),
                StateTensor(name: "c", shape: shape, values: state.c.flatMap { $0 })]
    }

    public func restoreCarriedState(_ tensors: [StateTensor]) throws(SDLSTMError) {
        if tensors.isEmpty { resetState(); return }
        guard tensors.count == 2, let h = tensors.first(where: { $0.name == "h" }),
              let c = tensors.first(where: { $0.name == "c" }) else {
            throw .format("state: expected exactly the datasets h and c, found \(tensors.map(\.name).sorted())")
        }
        let (l, hid) = (config.numLayers, config.hiddenSize)
        for t in [h, c] {
            guard t.shape.count == 3, t.shape[0] == l, t.shape[2] == hid, t.shape[1] >= 1,
                  t.shape[1] <= Int(Int32.max) / max(4 * hid, 1) else {
                throw .format("state/\(t.name): shape \(t.shape), expected [\(l), batch, \(hid)] (num_layers, batch, hidden_size)")
            }
        }
        guard h.shape == c.shape else { throw .format("state/c: shape \(c.shape) differs from state/h's \(h.shape)") }
        let n = h.shape[1] * hid
        func split(_ v: [Float]) -> [[Float]] { (0..<l).map { Array(v[$0 * n..<($0 + 1) * n]) } }
        do {
            try setCarriedState(h: split(h.values), c: split(c.values), batchSize: h.shape[1])
        } catch .invalid(let m) {
            throw .format("state: \(m)")
        }
    }
}

/// One bidirectional LSTM layer over a batch of right-padded sequences of different lengths.
///
/// Sequence b holds L_b real positions 0 … L_b − 1 of the T time-major rows; the rest is padding.
/// - The forward direction is an `LSTMLayer` over the rows as given. With right padding its real
///   outputs never see a padded row: position t depends on positions 0 … t only.
/// - The backward direction is an `LSTMLayer` over the rows reversed *within each sequence's own
///   length*: its step t reads position L_b − 1 − t, so it also starts on real data and reaches the
///   padding only after all real steps.
///
///     out[t, b] = [ →h[t, b] | ←h[L_b − 1 − t, b] ]    for t < L_b,   0 for padded t
///
/// Backward scatters ∂out the same way: padded positions pass no gradient, so they neither reach
/// a real position nor the weights (their ∂gates are exactly 0), and ∂x of a padded row is 0.
/// Each direction keeps its own dropout masks, drawn in its own time order: a structured mask stays
/// shared by the batch at the step where that direction's GEMMs consume it.
final class PaddedBiLSTM {
    let forwardLSTM: LSTMLayer
    let backwardLSTM: LSTMLayer
    let inputSize: Int
    /// Per direction; the output is twice as wide.
    let hiddenSize: Int
    private(set) var steps = 0, batch = 0
    private var lengths: [Int] = []
    private var reversedInput: Buffer    // T × B × D, the backward direction's input
    private(set) var output: Buffer      // T × B × 2H
    private var dForward: Buffer         // T × B × H, in the forward direction's time
    private var dBackward: Buffer        // T × B × H, in the backward direction's time
    private(set) var dx: Buffer          // T × B × D
    private var zeros: Buffer            // B × H, the initial state of both directions
    private var capacity = 0
    private var lstmRows = 0, lstmBatch = 0  // T·B and B of the directions' last reallocation

    /// Parameters as PyTorch's bidirectional `nn.LSTM` called `name` names those of `layer`.
    init(inputSize: Int, hiddenSize: Int, name: String, layer: Int) throws(SDLSTMError) {
        self.inputSize = inputSize
        self.hiddenSize = hiddenSize
        forwardLSTM = try LSTMLayer(inputSize: inputSize, hiddenSize: hiddenSize, name: name, layer: layer)
        backwardLSTM = try LSTMLayer(inputSize: inputSize, hiddenSize: hiddenSize, name: name, layer: layer,
                                     suffix: "_reverse")
        (reversedInput, output, dForward, dBackward, dx, zeros) =
            (try Buffer(0), try Buffer(0), try Buffer(0), try Buffer(0), try Buffer(0), try Buffer(0))
    }

    /// PyTorch's order: the forward direction's four tensors, then the reverse direction's.
    var parameters: [Parameter] { forwardLSTM.parameters + backwardLSTM.parameters }
    var directions: [LSTMLayer] { [forwardLSTM, backwardLSTM] }

    func prepare(steps: Int, batch: Int) throws(SDLSTMError) {
        self.steps = steps
        self.batch = batch
        // LSTMLayer reallocates only when T·B grows, sizing its per-sample buffers (B × H) by the B of
        // that moment; here B changes from batch to batch (the character LSTM's B is the number of
        // words), so when B grows while T·B does not, force a reallocation at this B first.
        if steps * batch <= lstmRows && batch > lstmBatch {
            let forced = lstmRows / batch + 1
            for lstm in directions { try lstm.prepare(steps: forced, batch: batch) }
            (lstmRows, lstmBatch) = (forced * batch, batch)
        }
        for lstm in directions { try lstm.prepare(steps: steps, batch: batch) }
        if steps * batch > lstmRows { (lstmRows, lstmBatch) = (steps * batch, batch) }
        let rows = steps * batch
        if zeros.count < batch * hiddenSize { zeros = try Buffer(batch * hiddenSize) }
        guard rows > capacity else { return }
        reversedInput = try Buffer(rows * inputSize)
        output = try Buffer(rows * 2 * hiddenSize)
        dForward = try Buffer(rows * hiddenSize)
        dBackward = try Buffer(rows * hiddenSize)
        dx = try Buffer(rows * inputSize)
        capacity = rows
    }

    /// Row of position t of sequence b in the time-major buffers.
    @inline(__always) private func row(_ t: Int, _ b: Int) -> Int { t * batch + b }

    /// Runs both directions over `x` (T × B × D, valid until `backward`) and fills `output`.
    func forward(_ x: UnsafePointer<Float>, lengths: [Int], dropout: Bool) {
        self.lengths = lengths
        let (d, h) = (inputSize, hiddenSize)
        for b in 0..<batch {
            let n = lengths[b]
            for t in 0..<steps {
                let dst = reversedInput.ptr + row(t, b) * d
                if t < n { dst.update(from: x + row(n - 1 - t, b) * d, count: d) } else { dst.update(repeating: 0, count: d) }
            }
        }
        forwardLSTM.forward(x, h0: zeros.ptr, c0: zeros.ptr, dropout: dropout)
        backwardLSTM.forward(reversedInput.ptr, h0: zeros.ptr, c0: zeros.ptr, dropout: dropout)
        let (hf, hb) = (forwardLSTM.output, backwardLSTM.output)
        for b in 0..<batch {
            let n = lengths[b]
            for t in 0..<steps {
                let out = output.ptr + row(t, b) * 2 * h
                if t < n {
                    out.update(from: hf + row(t, b) * h, count: h)
                    (out + h).update(from: hb + row(n - 1 - t, b) * h, count: h)
                } else {
                    out.update(repeating: 0, count: 2 * h)
                }
            }
        }
    }

    /// [→h at L_b − 1 | ←h at its step L_b − 1] of every sequence, B × 2H: each direction's state
    /// after reading the whole sequence (what a character encoder keeps of a word).
    func finalStates(into out: UnsafeMutablePointer<Float>) {
        let h = hiddenSize
        for b in 0..<batch {
            let last = row(lengths[b] - 1, b)
            (out + b * 2 * h).update(from: forwardLSTM.output + last * h, count: h)
            (out + b * 2 * h + h).update(from: backwardLSTM.output + last * h, count: h)
        }
    }

    /// Backward from ∂loss/∂output (T × B × 2H; padded rows ignored).
    func backward(outputGradient dOut: UnsafePointer<Float>, needInputGradient: Bool) {
        let h = hiddenSize
        for b in 0..<batch {
            let n = lengths[b]
            for t in 0..<steps {
                let df = dForward.ptr + row(t, b) * h
                if t < n {
                    df.update(from: dOut + row(t, b) * 2 * h, count: h)
                    (dBackward.ptr + row(n - 1 - t, b) * h).update(from: dOut + row(t, b) * 2 * h + h, count: h)
                } else {
                    df.update(repeating: 0, count: h)
                    (dBackward.ptr + row(t, b) * h).update(repeating: 0, count: h)
                }
            }
        }
        backwardDirections(needInputGradient: needInputGradient)
    }

    /// Backward from ∂loss/∂finalStates (B × 2H).
    func backward(finalGradient dFinal: UnsafePointer<Float>, needInputGradient: Bool) {
        let h = hiddenSize
        dForward.ptr.update(repeating: 0, count: steps * batch * h)
        dBackward.ptr.update(repeating: 0, count: steps * batch * h)
        for b in 0..<batch {
            let last = row(lengths[b] - 1, b)
            (dForward.ptr + last * h).update(from: dFinal + b * 2 * h, count: h)
            (dBackward.ptr + last * h).update(from: dFinal + b * 2 * h + h, count: h)
        }
        backwardDirections(needInputGradient: needInputGradient)
    }

    /// Both directions' backward passes; dx[t, b] = →dx[t, b] + ←dx[L_b − 1 − t, b], 0 when padded.
    private func backwardDirections(needInputGradient: Bool) {
        forwardLSTM.backward(dForward.ptr, needInputGradient: needInputGradient, dropout: true)
        backwardLSTM.backward(dBackward.ptr, needInputGradient: needInputGradient, dropout: true)
        guard needInputGradient else { return }
        let d = inputSize
        let (dxf, dxb) = (forwardLSTM.dx.ptr, backwardLSTM.dx.ptr)
        for b in 0..<batch {
            let n = lengths[b]
            for t in 0..<steps {
                let out = dx.ptr + row(t, b) * d
                guard t < n else { out.update(repeating: 0, count: d); continue }
                let f = dxf + row(t, b) * d, r = dxb + row(n - 1 - t, b) * d
                for j in 0..<d { out[j] = f[j] + r[j] }
            }
        }
    }
}

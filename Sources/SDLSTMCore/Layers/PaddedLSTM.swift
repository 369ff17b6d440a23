/// One LSTM layer, bidirectional or not, over a batch of right-padded sequences of different lengths.
///
/// Sequence b holds L_b real positions 0 … L_b − 1 of the T time-major rows; the rest is padding.
/// - The forward direction is an `LSTMLayer` over the rows as given. With right padding its real
///   outputs never see a padded row: position t depends on positions 0 … t only.
/// - The backward direction (bidirectional only) is an `LSTMLayer` over the rows reversed *within
///   each sequence's own length*: its step t reads position L_b − 1 − t, so it also starts on real
///   data and reaches the padding only after all real steps.
///
///     out[t, b] = [ →h[t, b] | ←h[L_b − 1 − t, b] ]    for t < L_b,   0 for padded t
///
/// Backward scatters ∂out the same way: padded positions pass no gradient, so they neither reach
/// a real position nor the weights (their ∂gates are exactly 0), and ∂x of a padded row is 0.
/// Each direction keeps its own dropout masks, drawn in its own time order: a structured mask stays
/// shared by the batch at the step where that direction's GEMMs consume it.
final class PaddedLSTM {
    let forwardLSTM: LSTMLayer
    let backwardLSTM: LSTMLayer?
    let inputSize: Int
    /// Per direction; a bidirectional output is twice as wide.
    let hiddenSize: Int
    private(set) var steps = 0, batch = 0
    private var lengths: [Int] = []
    private var reversedInput: Buffer    // T × B × D, the backward direction's input
    private(set) var output: Buffer      // T × B × outputWidth
    private var dForward: Buffer         // T × B × H, in the forward direction's time
    private var dBackward: Buffer        // T × B × H, in the backward direction's time
    private var dCellForward: Buffer     // T × B × H: ∂final cell states, at each sequence's last step
    private var dCellBackward: Buffer
    private(set) var dx: Buffer          // T × B × D
    private var zeros: Buffer            // B × H, the initial state of both directions
    private var capacity = 0

    /// Parameters as PyTorch's `nn.LSTM` called `name` names those of `layer`.
    init(inputSize: Int, hiddenSize: Int, name: String, layer: Int, bidirectional: Bool = true) throws(SDLSTMError) {
        self.inputSize = inputSize
        self.hiddenSize = hiddenSize
        forwardLSTM = try LSTMLayer(inputSize: inputSize, hiddenSize: hiddenSize, name: name, layer: layer)
        backwardLSTM = bidirectional
            ? try LSTMLayer(inputSize: inputSize, hiddenSize: hiddenSize, name: name, layer: layer, suffix: "_reverse")
            : nil
        (reversedInput, output, dForward, dBackward, dx, zeros) =
            (try Buffer(0), try Buffer(0), try Buffer(0), try Buffer(0), try Buffer(0), try Buffer(0))
        (dCellForward, dCellBackward) = (try Buffer(0), try Buffer(0))
    }

    var outputWidth: Int { directions.count * hiddenSize }

    /// PyTorch's order: the forward direction's four tensors, then the reverse direction's.
    var parameters: [Parameter] { directions.flatMap(\.parameters) }
    var directions: [LSTMLayer] { [forwardLSTM] + (backwardLSTM.map { [$0] } ?? []) }

    func prepare(steps: Int, batch: Int) throws(SDLSTMError) {
        self.steps = steps
        self.batch = batch
        for lstm in directions { try lstm.prepare(steps: steps, batch: batch) }
        let rows = steps * batch
        if zeros.count < batch * hiddenSize { zeros = try Buffer(batch * hiddenSize) }
        guard rows > capacity else { return }
        reversedInput = try Buffer(rows * inputSize)
        output = try Buffer(rows * 2 * hiddenSize)
        dForward = try Buffer(rows * hiddenSize)
        dBackward = try Buffer(rows * hiddenSize)
        dCellForward = try Buffer(rows * hiddenSize)
        dCellBackward = try Buffer(rows * hiddenSize)
        dx = try Buffer(rows * inputSize)
        capacity = rows
    }

    /// Row of position t of sequence b in the time-major buffers.
    @inline(__always) private func row(_ t: Int, _ b: Int) -> Int { t * batch + b }

    /// Runs the directions over `x` (T × B × D, valid until `backward`) and fills `output`.
    func forward(_ x: UnsafePointer<Float>, lengths: [Int], dropout: Bool) {
        self.lengths = lengths
        let (d, h, w) = (inputSize, hiddenSize, outputWidth)
        forwardLSTM.forward(x, h0: zeros.ptr, c0: zeros.ptr, dropout: dropout)
        if let backwardLSTM {
            for b in 0..<batch {
                let n = lengths[b]
                for t in 0..<steps {
                    let dst = reversedInput.ptr + row(t, b) * d
                    if t < n { dst.update(from: x + row(n - 1 - t, b) * d, count: d) } else { dst.update(repeating: 0, count: d) }
                }
            }
            backwardLSTM.forward(reversedInput.ptr, h0: zeros.ptr, c0: zeros.ptr, dropout: dropout)
        }
        let hf = forwardLSTM.output
        for b in 0..<batch {
            let n = lengths[b]
            for t in 0..<steps {
                let out = output.ptr + row(t, b) * w
                guard t < n else { out.update(repeating: 0, count: w); continue }
                out.update(from: hf + row(t, b) * h, count: h)
                if let backwardLSTM { (out + h).update(from: backwardLSTM.output + row(n - 1 - t, b) * h, count: h) }
            }
        }
    }

    /// Each direction's state after reading the whole sequence, B × outputWidth, [→ | ←]: the
    /// hidden state into `hidden` (what a character encoder keeps of a word, what starts a
    /// decoder) and, if given, the cell state into `cell`.
    func finalStates(into hidden: UnsafeMutablePointer<Float>, cell: UnsafeMutablePointer<Float>? = nil) {
        let (h, w) = (hiddenSize, outputWidth)
        for b in 0..<batch {
            let last = row(lengths[b] - 1, b)
            for (k, lstm) in directions.enumerated() {
                (hidden + b * w + k * h).update(from: lstm.output + last * h, count: h)
                if let cell { (cell + b * w + k * h).update(from: lstm.cellOutput + last * h, count: h) }
            }
        }
    }

    /// Backward from ∂loss/∂output (T × B × outputWidth; padded rows ignored; nil: none) and
    /// ∂loss/∂ of the final states (B × outputWidth each, as `finalStates` laid them out; nil: none).
    func backward(outputGradient dOut: UnsafePointer<Float>?, finalHidden dHidden: UnsafePointer<Float>? = nil,
                  finalCell dCell: UnsafePointer<Float>? = nil, needInputGradient: Bool) {
        let (h, w) = (hiddenSize, outputWidth)
        let rows = steps * batch
        dForward.ptr.update(repeating: 0, count: rows * h)
        dBackward.ptr.update(repeating: 0, count: rows * h)
        if let dOut {
            for b in 0..<batch {
                let n = lengths[b]
                for t in 0..<n {
                    (dForward.ptr + row(t, b) * h).update(from: dOut + row(t, b) * w, count: h)
                    if backwardLSTM != nil {
                        (dBackward.ptr + row(n - 1 - t, b) * h).update(from: dOut + row(t, b) * w + h, count: h)
                    }
                }
            }
        }
        let dStates = [dForward.ptr, dBackward.ptr], dCells = [dCellForward.ptr, dCellBackward.ptr]
        if dCell != nil { for c in dCells { c.update(repeating: 0, count: rows * h) } }
        for b in 0..<batch {
            let last = row(lengths[b] - 1, b)
            for k in 0..<directions.count {
                if let dHidden {
                    let dst = dStates[k] + last * h, src = dHidden + b * w + k * h
                    for j in 0..<h { dst[j] += src[j] }
                }
                if let dCell { (dCells[k] + last * h).update(from: dCell + b * w + k * h, count: h) }
            }
        }
        for (k, lstm) in directions.enumerated() {
            lstm.backward(dStates[k], needInputGradient: needInputGradient,
                          dCell: dCell == nil ? nil : UnsafePointer(dCells[k]))
        }
        guard needInputGradient else { return }
        // dx[t, b] = →dx[t, b] + ←dx[L_b − 1 − t, b], 0 when padded.
        let d = inputSize
        let dxf = forwardLSTM.dx.ptr, dxb = backwardLSTM?.dx.ptr
        for b in 0..<batch {
            let n = lengths[b]
            for t in 0..<steps {
                let out = dx.ptr + row(t, b) * d
                guard t < n else { out.update(repeating: 0, count: d); continue }
                let f = dxf + row(t, b) * d
                if let dxb {
                    let r = dxb + row(n - 1 - t, b) * d
                    for j in 0..<d { out[j] = f[j] + r[j] }
                } else {
                    out.update(from: f, count: d)
                }
            }
        }
    }
}

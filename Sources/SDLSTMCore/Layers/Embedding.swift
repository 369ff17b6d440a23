/// Token embedding: X[t, b] = E[token(b, t)], and its sparse gradient.
///
/// Only the rows of tokens present in the batch get a gradient; the update touches those rows
/// alone, so a 10k × 650 table costs nothing per step beyond the batch's tokens.
public final class Embedding {
    public let table: Parameter  // V × E
    public let vocabSize: Int, width: Int
    private var output: Buffer
    private var touched: [Bool]
    private(set) var touchedRows: [Int32] = []
    private var steps = 0, batch = 0

    public init(vocabSize: Int, width: Int, name: String) throws(SDLSTMError) {
        self.vocabSize = vocabSize
        self.width = width
        table = try Parameter(name, rows: vocabSize, cols: width)
        output = try Buffer(0)
        touched = [Bool](repeating: false, count: vocabSize)
    }

    func prepare(steps: Int, batch: Int) throws(SDLSTMError) {
        self.steps = steps
        self.batch = batch
        if output.count < steps * batch * width { output = try Buffer(steps * batch * width) }
        if touchedRows.capacity < steps * batch { touchedRows.reserveCapacity(steps * batch) }
    }

    /// Whether the last backward gave row r a gradient.
    func isTouched(_ r: Int) -> Bool { touched[r] }

    /// Looks up batch-major tokens into a time-major T × B × E buffer.
    func forward(_ tokens: UnsafePointer<Int32>) -> UnsafeMutablePointer<Float> {
        for t in 0..<steps {
            for b in 0..<batch {
                let row = table.value.ptr + Int(tokens[b * steps + t]) * width
                (output.ptr + (t * batch + b) * width).update(from: row, count: width)
            }
        }
        return output.ptr
    }

    /// Scatters ∂loss/∂X (time-major) into the rows of the tokens used; clears the previous step's rows.
    func backward(_ tokens: UnsafePointer<Int32>, _ dx: UnsafePointer<Float>) {
        for r in touchedRows {
            (table.grad.ptr + Int(r) * width).update(repeating: 0, count: width)
            touched[Int(r)] = false
        }
        touchedRows.removeAll(keepingCapacity: true)
        for t in 0..<steps {
            for b in 0..<batch {
                let id = Int(tokens[b * steps + t])
                if !touched[id] { touched[id] = true; touchedRows.append(Int32(id)) }
                let g = table.grad.ptr + id * width, s = dx + (t * batch + b) * width
                for j in 0..<width { g[j] += s[j] }
            }
        }
    }
}

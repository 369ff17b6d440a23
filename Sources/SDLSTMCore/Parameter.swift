/// A trainable tensor and its gradient.
///
/// Weights are stored input-major (in × out), the transpose of PyTorch's (out × in): a dropped
/// input unit is then one contiguous row that a masked GEMM can skip. `pytorchName` and
/// `transposed` say how the tensor maps to PyTorch's `state_dict`.
public final class Parameter {
    public let pytorchName: String
    public let rows: Int, cols: Int
    public let transposed: Bool
    public let value: Buffer
    public let grad: Buffer

    init(_ pytorchName: String, rows: Int, cols: Int = 1, transposed: Bool = false) throws(SDLSTMError) {
        self.pytorchName = pytorchName
        self.rows = rows
        self.cols = cols
        self.transposed = transposed
        self.value = try Buffer(rows * cols)
        self.grad = try Buffer(rows * cols)
    }

    public var count: Int { rows * cols }

    /// PyTorch's shape for this tensor.
    public var pytorchShape: [Int] {
        if cols == 1 && !transposed { return [rows] }
        return transposed ? [cols, rows] : [rows, cols]
    }

    func initUniform(scale: Float, rng: inout Random) {
        for i in 0..<count { value[i] = (2 * rng.uniform() - 1) * scale }
    }

    /// Values in PyTorch's layout, row-major.
    public func pytorchValues(_ source: Buffer? = nil) -> [Float] {
        let src = source ?? value
        guard transposed else { return src.array }
        var out = [Float](repeating: 0, count: count)
        for r in 0..<rows { for c in 0..<cols { out[c * rows + r] = src[r * cols + c] } }
        return out
    }

    /// Sets the values from PyTorch's layout, row-major.
    public func setPyTorchValues(_ values: [Float]) throws(SDLSTMError) {
        guard values.count == count else {
            throw .invalid("\(pytorchName): expected \(count) values, got \(values.count)")
        }
        for r in 0..<rows {
            for c in 0..<cols { value[r * cols + c] = transposed ? values[c * rows + r] : values[r * cols + c] }
        }
    }
}

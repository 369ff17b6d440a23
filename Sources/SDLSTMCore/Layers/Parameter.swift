import Glibc

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
        try ParameterBudget.charge(pytorchName, rows: rows, cols: cols)
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

/// A limit on the parameter bytes models built on this thread may allocate, set while a checkpoint
/// loader builds the model its config describes: a config that asks for more than the file stores is
/// refused (`.format`, naming the parameter) before that parameter is allocated, so a small file with
/// a huge vocab_size costs nothing. Without a limit (model creation) charging does nothing.
enum ParameterBudget {
    private static let key: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k, nil)
        return k
    }()

    private final class Budget {
        let limit: Int
        var used = 0
        init(_ limit: Int) { self.limit = limit }
    }

    static func withLimit<R>(bytes: Int, _ body: () throws(SDLSTMError) -> R) throws(SDLSTMError) -> R {
        let budget = Budget(bytes)
        let outer = pthread_getspecific(key)
        pthread_setspecific(key, Unmanaged.passUnretained(budget).toOpaque())
        defer { pthread_setspecific(key, outer) }
        return try withExtendedLifetime(budget) { () throws(SDLSTMError) -> R in try body() }
    }

    static func charge(_ name: String, rows: Int, cols: Int) throws(SDLSTMError) {
        guard let raw = pthread_getspecific(key) else { return }
        let budget = Unmanaged<Budget>.fromOpaque(raw).takeUnretainedValue()
        let (count, o1) = rows.multipliedReportingOverflow(by: cols)
        let (bytes, o2) = count.multipliedReportingOverflow(by: 4)
        let (used, o3) = budget.used.addingReportingOverflow(bytes)
        guard !o1, !o2, !o3, used <= budget.limit else {
            throw .format("needs \(o1 || o2 || o3 ? "more than 2^63" : "\(used)") bytes of parameters by dataset \(name) (\(rows) × \(cols))")
        }
        budget.used = used
    }
}

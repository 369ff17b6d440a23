import SDLSTMCore
import CSDLSTM

/// Converting C values into core values; each failure names the offending argument.

func unwrap<T>(_ p: UnsafePointer<T>?, _ name: String) throws(SDLSTMError) -> UnsafePointer<T> {
    guard let p else { throw .invalid("\(name) is NULL") }
    return p
}

func unwrap<T>(_ p: UnsafeMutablePointer<T>?, _ name: String) throws(SDLSTMError) -> UnsafeMutablePointer<T> {
    guard let p else { throw .invalid("\(name) is NULL") }
    return p
}

/// A C string as a Swift String; NULL or invalid UTF-8 is E_INVALID naming the argument.
func swiftString(_ p: UnsafePointer<CChar>?, _ name: String) throws(SDLSTMError) -> String {
    guard let p else { throw .invalid("\(name) is NULL") }
    guard let s = String(validatingCString: p) else { throw .invalid("\(name) is not valid UTF-8") }
    return s
}

/// `count` C strings of `array`, each non-NULL and valid UTF-8; a failure names `name[i]`.
func swiftStrings(_ array: UnsafePointer<UnsafePointer<CChar>?>, count: Int, _ name: String) throws(SDLSTMError) -> [String] {
    var out: [String] = []
    out.reserveCapacity(count)
    for i in 0..<count { out.append(try swiftString(array[i], "\(name)[\(i)]")) }
    return out
}

/// The object behind an `sdlstm_model *`.
final class ModelHandle {
    let model: any Model
    /// String tables and metadata attached with sdlstm_set_strings / sdlstm_set_metadata.
    var attachments: Attachments
    init(_ model: any Model, attachments: Attachments = Attachments()) { (self.model, self.attachments) = (model, attachments) }
}

func model(_ handle: OpaquePointer?) throws(SDLSTMError) -> any Model {
    try modelHandle(handle).model
}

func modelHandle(_ handle: OpaquePointer?) throws(SDLSTMError) -> ModelHandle {
    guard let handle else { throw .invalid("model is NULL") }
    return Unmanaged<ModelHandle>.fromOpaque(UnsafeRawPointer(handle)).takeUnretainedValue()
}

func task(_ t: sdlstm_task) throws(SDLSTMError) -> Task {
    guard let task = Task(rawValue: Int32(bitPattern: t.rawValue)) else { throw .invalid("task \(t.rawValue) is not a known task") }
    return task
}

func coreConfig(_ c: sdlstm_config) throws(SDLSTMError) -> ModelConfig {
    ModelConfig(c, task: try task(c.task))
}

func cConfig(_ config: ModelConfig) -> sdlstm_config { config.cStruct }

func coreBatch(_ batch: UnsafePointer<sdlstm_batch>?, _ name: String = "batch") throws(SDLSTMError) -> Batch {
    let b = try copyIn(batch, name, defaults: sdlstm_batch())
    var out = Batch(batchSize: Int(b.batch_size), seqLen: Int(b.seq_len),
                    inputs: try unwrap(b.inputs, "\(name)->inputs"), targets: b.targets)
    out.lengths = b.lengths
    out.targetLen = Int(b.target_len)
    out.targetLengths = b.target_lengths
    out.maxWordLen = Int(b.max_word_len)
    out.chars = b.chars
    out.wordLengths = b.word_lengths
    return out
}
/// Runs `body` (a step or an evaluation) once the optional out-struct `stats` is known to be
/// usable, then fills it.
func withStats(_ stats: UnsafeMutablePointer<sdlstm_stats>?, _ body: () throws(SDLSTMError) -> StepStats) throws(SDLSTMError) {
    let size = try stats.map { (p) throws(SDLSTMError) in try structSize(of: p, "stats") }
    let s = try body()
    guard let stats, let size else { return }
    copyOut(sdlstm_stats(struct_size: size, loss: s.loss, tokens: Int64(s.tokens), grad_norm: s.gradNorm,
                         skipped_macs_fraction: s.skippedMACsFraction),
            to: stats, structSize: size)
}

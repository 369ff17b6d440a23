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

/// A struct that carries its size must be at least as large as the version this library knows.
func checkSize<T>(_ size: Int, of _: T.Type, _ name: String) throws(SDLSTMError) {
    guard size >= MemoryLayout<T>.size else {
        throw .invalid("\(name)->struct_size is \(size), expected at least \(MemoryLayout<T>.size)")
    }
}

func model(_ handle: OpaquePointer?) throws(SDLSTMError) -> LanguageModel {
    guard let handle else { throw .invalid("model is NULL") }
    return Unmanaged<LanguageModel>.fromOpaque(UnsafeRawPointer(handle)).takeUnretainedValue()
}

func coreConfig(_ c: sdlstm_config) throws(SDLSTMError) -> LanguageModelConfig {
    guard c.task == SDLSTM_TASK_LANGUAGE_MODEL else { throw .invalid("cfg->task \(c.task.rawValue) is not a known task") }
    var config = LanguageModelConfig()
    config.vocabSize = Int(c.vocab_size)
    config.embedSize = Int(c.embed_size)
    config.hiddenSize = Int(c.hidden_size)
    config.numLayers = Int(c.num_layers)
    config.initScale = c.init_scale
    config.seed = c.seed
    return config
}

func cConfig(_ config: LanguageModelConfig) -> sdlstm_config {
    sdlstm_config(struct_size: MemoryLayout<sdlstm_config>.size, task: SDLSTM_TASK_LANGUAGE_MODEL,
                  vocab_size: Int32(config.vocabSize), embed_size: Int32(config.embedSize),
                  hidden_size: Int32(config.hiddenSize), num_layers: Int32(config.numLayers),
                  init_scale: config.initScale, seed: config.seed)
}

func tokenBatch(_ batch: UnsafePointer<sdlstm_batch>?) throws(SDLSTMError) -> TokenBatch {
    let b = try unwrap(batch, "batch").pointee
    try checkSize(b.struct_size, of: sdlstm_batch.self, "batch")
    return TokenBatch(batchSize: Int(b.batch_size), seqLen: Int(b.seq_len),
                      inputs: try unwrap(b.inputs, "batch->inputs"), targets: try unwrap(b.targets, "batch->targets"))
}

/// Writes the stats into the caller's struct, no further than its struct_size.
func write(_ stats: StepStats, to out: UnsafeMutablePointer<sdlstm_stats>?) {
    guard let out else { return }
    var s = sdlstm_stats(struct_size: out.pointee.struct_size, loss: stats.loss, tokens: Int64(stats.tokens),
                         grad_norm: stats.gradNorm, skipped_macs_fraction: stats.skippedMACsFraction)
    withUnsafeBytes(of: &s) { UnsafeMutableRawPointer(out).copyMemory(from: $0.baseAddress!, byteCount: min(out.pointee.struct_size, $0.count)) }
}

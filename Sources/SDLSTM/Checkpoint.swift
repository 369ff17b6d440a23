import CSDLSTM
import Glibc

/// Where training stands (`sdlstm_progress`); saved with the model.
public struct TrainingProgress: Equatable, Sendable {
    /// Updates `step` applied over the model's life (a loaded model continues the count).
    public var step: Int
    /// The caller's epoch counter, set with `setEpoch`; 0 at creation.
    public var epoch: Int
    /// Updates since the epoch was last set.
    public var epochStep: Int
    /// The learning rate of the next step.
    public var learningRate: Float
    /// The gradient clipping norm, 0 = off.
    public var clipNorm: Float

    public init(step: Int, epoch: Int, epochStep: Int, learningRate: Float, clipNorm: Float) {
        (self.step, self.epoch, self.epochStep, self.learningRate, self.clipNorm) = (step, epoch, epochStep, learningRate, clipNorm)
    }
}

extension LanguageModel {
    /// `save(to:)`, and with `includingCarriedState` also the hidden state carried between steps, so
    /// that a loaded model continues the same text.
    public func save(to path: String, includingCarriedState: Bool) throws(SDLSTMError) {
        try saveCheckpoint(handle, path, includingCarriedState)
    }

    /// Loads a language model from a checkpoint: parameters, settings, progress, dropout, random
    /// stream, string tables and metadata, and the carried state if it was saved.
    /// `.io` for a missing or unreadable file, `.format` for anything wrong inside it.
    public static func load(from path: String) throws(SDLSTMError) -> LanguageModel {
        LanguageModel(adopting: try loadCheckpoint(path, task: SDLSTM_TASK_LANGUAGE_MODEL, "a language model"))
    }
}

/// Checkpoints and what every model saves in them besides its parameters: progress, string tables
/// and metadata.
extension TrainableModel {
    /// Saves the model to an HDF5 checkpoint at `path` (docs/CHECKPOINT.md), replacing any file there
    /// atomically: parameters, settings, progress, dropout, random stream, a tagger's tag names,
    /// string tables and metadata.
    public func save(to path: String) throws(SDLSTMError) {
        try saveCheckpoint(handle, path, false)
    }

    /// Sets the epoch counter (>= 0) and restarts `progress.epochStep`; call it as each epoch begins.
    public func setEpoch(_ epoch: Int) throws(SDLSTMError) {
        try SDLSTMError.check(sdlstm_set_epoch(handle, Int64(epoch)))
    }

    /// Where training stands.
    public var progress: TrainingProgress {
        var p = sdlstm_progress()
        p.struct_size = MemoryLayout<sdlstm_progress>.size
        let status = sdlstm_get_progress(handle, &p)
        precondition(status == SDLSTM_OK, "sdlstm_get_progress failed: \(String(cString: sdlstm_last_error()))")
        return TrainingProgress(step: Int(p.step), epoch: Int(p.epoch), epochStep: Int(p.epoch_step),
                                learningRate: p.learning_rate, clipNorm: p.clip_norm)
    }

    /// Attaches a table of strings (e.g. the vocabulary, id -> word) under `name`, saved with the
    /// model; an empty table removes it. Names: 1 to 128 characters of A-Z a-z 0-9 _ . -
    public func setStrings(_ strings: [String], named name: String) throws(SDLSTMError) {
        let copies = strings.map { strdup($0) }
        defer { copies.forEach { free($0) } }
        guard !copies.contains(where: { $0 == nil }) else { throw SDLSTMError(.outOfMemory, "could not copy the strings") }
        let pointers = copies.map { UnsafePointer($0) }
        let status = pointers.withUnsafeBufferPointer { sdlstm_set_strings(handle, name, $0.baseAddress, Int64(strings.count)) }
        try SDLSTMError.check(status)
    }

    /// The table attached under `name`, or nil if there is none.
    public func strings(named name: String) throws(SDLSTMError) -> [String]? {
        var out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
        var n: Int64 = 0
        try SDLSTMError.check(sdlstm_get_strings(handle, name, &out, &n))
        guard let out else { return nil }
        defer { sdlstm_free(out) }
        return (0..<Int(n)).map { String(cString: out[$0]!) }
    }

    /// Sets a metadata value (UTF-8, at most 64 KiB) saved with the model; nil removes the key.
    public func setMetadata(_ value: String?, forKey key: String) throws(SDLSTMError) {
        try SDLSTMError.check(sdlstm_set_metadata(handle, key, value))
    }

    /// The metadata value of `key`, or nil if there is none.
    public func metadata(forKey key: String) throws(SDLSTMError) -> String? {
        var out: UnsafeMutablePointer<CChar>?
        try SDLSTMError.check(sdlstm_get_metadata(handle, key, &out))
        guard let out else { return nil }
        defer { sdlstm_free(out) }
        return String(cString: out)
    }
}

// Saving and loading on a bare handle, for every model type of this wrapper (each type has its own
// `load`, which returns that type).

func saveCheckpoint(_ handle: OpaquePointer, _ path: String, _ carriedState: Bool) throws(SDLSTMError) {
    let flags = carriedState ? SDLSTM_SAVE_CARRIED_STATE : SDLSTM_SAVE_DEFAULT
    try SDLSTMError.check(sdlstm_save(handle, path, UInt32(flags.rawValue)))
}

/// The model a checkpoint holds, which must be of `task` (`what` names it in the error).
func loadCheckpoint(_ path: String, task: sdlstm_task, _ what: String) throws(SDLSTMError) -> OpaquePointer {
    var out: OpaquePointer?
    try SDLSTMError.check(sdlstm_load(path, &out))
    guard let out else { throw SDLSTMError(.invalid, "sdlstm_load returned no model") }
    let c = readConfig(out)
    guard c.task == task else {
        sdlstm_model_free(out)
        throw SDLSTMError(.invalid, "\(path) holds a model of task \(c.task.rawValue), not \(what)")
    }
    return out
}

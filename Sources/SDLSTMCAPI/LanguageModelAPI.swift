import Glibc
import SDLSTMCore
import CSDLSTM

// The "Using a trained language model" section of include/sdlstm.h: translation between C and
// SDLSTMCore's LanguageModelState, score and generate.

private func languageModel(_ handle: OpaquePointer?, _ call: String) throws(SDLSTMError) -> LanguageModel {
    guard let lm = try model(handle) as? LanguageModel else {
        throw .invalid("\(call) needs a language model (SDLSTM_TASK_LANGUAGE_MODEL)")
    }
    return lm
}

private func lmState(_ handle: OpaquePointer?) throws(SDLSTMError) -> LanguageModelState {
    guard let handle else { throw .invalid("state is NULL") }
    return Unmanaged<LanguageModelState>.fromOpaque(UnsafeRawPointer(handle)).takeUnretainedValue()
}

@c @implementation
public func sdlstm_lm_state_create(_ model: OpaquePointer?, _ streams: Int32,
                                   _ out: UnsafeMutablePointer<OpaquePointer?>?) -> sdlstm_status {
    translate { () throws(SDLSTMError) in
        let lm = try languageModel(model, "sdlstm_lm_state_create")
        let out = try unwrap(out, "out")
        let state = try lm.makeState(streams: Int(streams))
        out.pointee = OpaquePointer(Unmanaged.passRetained(state).toOpaque())
    }
}

@c @implementation
public func sdlstm_lm_state_free(_ state: OpaquePointer?) {
    guard let state else { return }
    Unmanaged<LanguageModelState>.fromOpaque(UnsafeRawPointer(state)).release()
}

@c @implementation
public func sdlstm_lm_state_reset(_ state: OpaquePointer?) -> sdlstm_status {
    translate { () throws(SDLSTMError) in try lmState(state).reset() }
}

@c @implementation
public func sdlstm_lm_next(_ model: OpaquePointer?, _ state: OpaquePointer?, _ tokens: UnsafePointer<Int32>?,
                           _ logProbs: UnsafeMutablePointer<Float>?) -> sdlstm_status {
    translate { () throws(SDLSTMError) in
        let lm = try languageModel(model, "sdlstm_lm_next")
        try lm.nextLogProbabilities(try unwrap(tokens, "tokens"), state: try lmState(state),
                                    into: try unwrap(logProbs, "log_probs"))
    }
}

@c @implementation
public func sdlstm_lm_score(_ model: OpaquePointer?, _ tokens: UnsafePointer<Int32>?, _ n: Int64,
                            _ logProb: UnsafeMutablePointer<Double>?,
                            _ tokenLogProbs: UnsafeMutablePointer<Float>?) -> sdlstm_status {
    translate { () throws(SDLSTMError) in
        let lm = try languageModel(model, "sdlstm_lm_score")
        let ids = try unwrap(tokens, "tokens"), out = try unwrap(logProb, "log_prob")
        out.pointee = try lm.score(ids, count: Int(n), tokenLogProbs: tokenLogProbs)
    }
}

/// The core's defaults as the C struct: what sdlstm_generate_options_init fills in, what NULL
/// options mean, and what fields past a caller's struct_size take.
private let defaultGenerateOptions: sdlstm_generate_options = {
    let o = GenerateOptions()
    return sdlstm_generate_options(struct_size: MemoryLayout<sdlstm_generate_options>.size, temperature: o.temperature,
                                   top_k: Int32(o.topK), seed: o.seed, stop_id: o.stopID)
}()

@c @implementation
public func sdlstm_generate_options_init(_ options: UnsafeMutablePointer<sdlstm_generate_options>?) -> sdlstm_status {
    translate { () throws(SDLSTMError) in
        let out = try unwrap(options, "options")
        copyOut(defaultGenerateOptions, to: out, structSize: try structSize(of: out, "options"))
    }
}

@c @implementation
public func sdlstm_lm_generate(_ model: OpaquePointer?, _ prompt: UnsafePointer<Int32>?, _ promptLen: Int64,
                               _ options: UnsafePointer<sdlstm_generate_options>?, _ out: UnsafeMutablePointer<Int32>?,
                               _ maxTokens: Int64, _ count: UnsafeMutablePointer<Int64>?) -> sdlstm_status {
    translate { () throws(SDLSTMError) in
        let lm = try languageModel(model, "sdlstm_lm_generate")
        let ids = try unwrap(prompt, "prompt"), tokens = try unwrap(out, "out"), written = try unwrap(count, "count")
        let c = options == nil ? defaultGenerateOptions : try copyIn(options, "options", defaults: defaultGenerateOptions)
        let o = GenerateOptions(temperature: c.temperature, topK: Int(c.top_k), seed: c.seed, stopID: c.stop_id)
        written.pointee = Int64(try lm.generate(prompt: ids, count: Int(promptLen), options: o, into: tokens,
                                                maxTokens: Int(maxTokens)))
    }
}

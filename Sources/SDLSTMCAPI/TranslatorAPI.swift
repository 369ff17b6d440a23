import SDLSTMCore
import CSDLSTM

// The translation section of include/sdlstm.h: decoding a sequence-to-sequence model.

@c @implementation
public func sdlstm_translate(_ model: OpaquePointer?, _ sources: UnsafePointer<sdlstm_batch>?,
                             _ options: UnsafePointer<sdlstm_decode_options>?, _ tokens: UnsafeMutablePointer<Int32>?,
                             _ lengths: UnsafeMutablePointer<Int32>?, _ scores: UnsafeMutablePointer<Double>?) -> sdlstm_status {
    translate { () throws(SDLSTMError) in
        guard let translator = try SDLSTMCAPI.model(model) as? Translator else {
            throw .invalid("sdlstm_translate needs a sequence-to-sequence model (SDLSTM_TASK_SEQ2SEQ)")
        }
        let o = try copyIn(options, "options", defaults: defaultDecodeOptions)
        let out = try unwrap(tokens, "tokens"), outLengths = try unwrap(lengths, "lengths")
        let core = try coreBatch(sources, "sources")
        let decode = DecodeOptions(bos: o.bos_id, eos: o.eos_id, beamSize: Int(o.beam_size), maxLength: Int(o.max_len),
                                   lengthPenalty: o.length_penalty)
        let result = try translator.translate(core, options: decode)
        for (i, t) in result.enumerated() {
            let row = out + i * decode.maxLength
            for j in 0..<decode.maxLength { row[j] = j < t.tokens.count ? t.tokens[j] : -1 }
            outLengths[i] = Int32(t.tokens.count)
            scores?[i] = t.score
        }
    }
}

/// What sdlstm_decode_options_init fills in, and what fields past a caller's struct_size take. No
/// marker defaults: the ids belong to the caller's target vocabulary.
private let defaultDecodeOptions = sdlstm_decode_options(struct_size: MemoryLayout<sdlstm_decode_options>.size,
                                                         bos_id: -1, eos_id: -1, beam_size: 5, max_len: 100,
                                                         length_penalty: 0)

@c @implementation
public func sdlstm_decode_options_init(_ options: UnsafeMutablePointer<sdlstm_decode_options>?) -> sdlstm_status {
    translate { () throws(SDLSTMError) in
        let out = try unwrap(options, "options")
        copyOut(defaultDecodeOptions, to: out, structSize: try structSize(of: out, "options"))
    }
}

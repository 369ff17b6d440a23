import Glibc
import SDLSTMCore
import CSDLSTM

// The sequence-labelling section of include/sdlstm.h: tag names, decoding, conlleval's span F1.

/// The tagger behind an `sdlstm_model *`, or `.invalid` for another task's model.
private func tagger(_ handle: OpaquePointer?, _ call: String) throws(SDLSTMError) -> Tagger {
    guard let t = try model(handle) as? Tagger else {
        throw .invalid("\(call) needs a tagger model (SDLSTM_TASK_TAGGER)")
    }
    return t
}

/// `count` tag names: C strings, none NULL, all valid UTF-8.
private func strings(_ names: UnsafePointer<UnsafePointer<CChar>?>?, count: Int32, _ what: String) throws(SDLSTMError) -> [String] {
    let names = try unwrap(names, what)
    guard count >= 1 && count <= 1 << 12 else { throw .invalid("\(what): count must be in 1...4096, got \(count)") }
    return try swiftStrings(names, count: Int(count), what)
}

@c @implementation
public func sdlstm_set_tag_names(_ model: OpaquePointer?, _ names: UnsafePointer<UnsafePointer<CChar>?>?,
                                 _ count: Int32, _ scheme: sdlstm_tag_scheme) -> sdlstm_status {
    translate { () throws(SDLSTMError) in
        let t = try tagger(model, "sdlstm_set_tag_names")
        guard let s = TagScheme(rawValue: Int32(bitPattern: scheme.rawValue)) else {
            throw .invalid("scheme \(scheme.rawValue) is not a tag scheme")
        }
        try t.setTagNames(try strings(names, count: count, "names"), scheme: s)
    }
}

@c @implementation
public func sdlstm_get_tag_names(_ model: OpaquePointer?,
                                 _ names: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?,
                                 _ count: UnsafeMutablePointer<Int32>?,
                                 _ scheme: UnsafeMutablePointer<sdlstm_tag_scheme>?) -> sdlstm_status {
    translate { () throws(SDLSTMError) in
        let t = try tagger(model, "sdlstm_get_tag_names")
        let names = try unwrap(names, "names")
        let count = try unwrap(count, "count")
        let tags = t.tagNames ?? []
        // Nothing is written until the copy succeeded.
        let copy = tags.isEmpty ? nil : try cStringArray(tags)
        (names.pointee, count.pointee) = (copy, Int32(tags.count))
        scheme?.pointee = sdlstm_tag_scheme(rawValue: UInt32(bitPattern: t.tagScheme.rawValue))
    }
}

@c @implementation
public func sdlstm_tag(_ model: OpaquePointer?, _ batch: UnsafePointer<sdlstm_batch>?,
                       _ tags: UnsafeMutablePointer<Int32>?) -> sdlstm_status {
    translate { () throws(SDLSTMError) in
        let t = try tagger(model, "sdlstm_tag")
        let out = try unwrap(tags, "tags")
        let core = try coreBatch(batch)
        try t.tag(core, into: out)
    }
}

/// The object behind an `sdlstm_span_f1 *`: the counter and its type names as C strings.
final class SpanF1Handle {
    let counter: SpanCounter
    let typeNames: [UnsafeMutablePointer<CChar>]

    init(_ counter: SpanCounter) throws(SDLSTMError) {
        var names: [UnsafeMutablePointer<CChar>] = []
        for type in counter.types {
            guard let p = strdup(type) else {
                names.forEach { free($0) }
                throw .outOfMemory("could not copy the type names")
            }
            names.append(p)
        }
        self.counter = counter
        typeNames = names
    }

    deinit { typeNames.forEach { free($0) } }
}

private func spanF1(_ handle: OpaquePointer?) throws(SDLSTMError) -> SpanF1Handle {
    guard let handle else { throw .invalid("f1 is NULL") }
    return Unmanaged<SpanF1Handle>.fromOpaque(UnsafeRawPointer(handle)).takeUnretainedValue()
}

@c @implementation
public func sdlstm_span_f1_create(_ names: UnsafePointer<UnsafePointer<CChar>?>?, _ numTags: Int32,
                                  _ out: UnsafeMutablePointer<OpaquePointer?>?) -> sdlstm_status {
    translate { () throws(SDLSTMError) in
        let out = try unwrap(out, "out")
        let handle = try SpanF1Handle(SpanCounter(tagNames: try strings(names, count: numTags, "names")))
        out.pointee = OpaquePointer(Unmanaged.passRetained(handle).toOpaque())
    }
}

@c @implementation
public func sdlstm_span_f1_free(_ f1: OpaquePointer?) {
    guard let f1 else { return }
    Unmanaged<SpanF1Handle>.fromOpaque(UnsafeRawPointer(f1)).release()
}

@c @implementation
public func sdlstm_span_f1_add(_ f1: OpaquePointer?, _ gold: UnsafePointer<Int32>?, _ predicted: UnsafePointer<Int32>?,
                               _ batchSize: Int32, _ seqLen: Int32, _ lengths: UnsafePointer<Int32>?) -> sdlstm_status {
    translate { () throws(SDLSTMError) in
        let h = try spanF1(f1)
        try h.counter.add(gold: try unwrap(gold, "gold"), predicted: try unwrap(predicted, "predicted"),
                          batchSize: Int(batchSize), seqLen: Int(seqLen), lengths: lengths)
    }
}

@c @implementation
public func sdlstm_span_f1_get_type_count(_ f1: OpaquePointer?, _ out: UnsafeMutablePointer<Int32>?) -> sdlstm_status {
    translate { () throws(SDLSTMError) in
        let h = try spanF1(f1)
        try unwrap(out, "out").pointee = Int32(h.typeNames.count)
    }
}

@c @implementation
public func sdlstm_span_f1_get_type_name(_ f1: OpaquePointer?, _ type: Int32,
                                     _ out: UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> sdlstm_status {
    translate { () throws(SDLSTMError) in
        let h = try spanF1(f1)
        let out = try unwrap(out, "out")
        guard type >= 0 && Int(type) < h.typeNames.count else {
            throw .invalid("type \(type) is outside [0, \(h.typeNames.count))")
        }
        out.pointee = UnsafePointer(h.typeNames[Int(type)])
    }
}

@c @implementation
public func sdlstm_span_f1_get_scores(_ f1: OpaquePointer?, _ type: Int32,
                                  _ out: UnsafeMutablePointer<sdlstm_span_scores>?) -> sdlstm_status {
    translate { () throws(SDLSTMError) in
        let h = try spanF1(f1)
        let out = try unwrap(out, "out")
        let size = try structSize(of: out, "out")
        let s: SpanScores
        if type == -1 {
            s = h.counter.overallScores
        } else {
            guard type >= 0 && Int(type) < h.typeNames.count, let scores = h.counter.scores(type: h.counter.types[Int(type)]) else {
                throw .invalid("type \(type) is neither -1 (overall) nor in [0, \(h.typeNames.count))")
            }
            s = scores
        }
        let c = sdlstm_span_scores(struct_size: size, gold_spans: Int64(s.goldSpans),
                                   predicted_spans: Int64(s.predictedSpans), correct_spans: Int64(s.correctSpans),
                                   precision: s.precision, recall: s.recall, f1: s.f1,
                                   tokens: Int64(s.tokens), correct_tags: Int64(s.correctTags))
        copyOut(c, to: out, structSize: size)
    }
}

import Glibc
import SDLSTMCore
import CSDLSTM

// The "Checkpoints and metadata" section of include/sdlstm.h: translation between C and
// SDLSTMCore's Checkpoint, Attachments and TrainingProgress.

@c @implementation
public func sdlstm_save(_ model: OpaquePointer?, _ path: UnsafePointer<CChar>?, _ flags: UInt32) -> sdlstm_status {
    translate { () throws(SDLSTMError) in
        let h = try modelHandle(model)
        let path = try swiftString(path, "path")
        let known = UInt32(SDLSTM_SAVE_CARRIED_STATE.rawValue)
        guard flags & ~known == 0 else { throw .invalid("flags \(flags) has bits that are not sdlstm_save_flags") }
        try Checkpoint.save(h.model, attachments: h.attachments, to: path, carriedState: flags & known != 0)
    }
}

@c @implementation
public func sdlstm_load(_ path: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> sdlstm_status {
    translate { () throws(SDLSTMError) in
        let out = try unwrap(out, "out")
        let loaded = try Checkpoint.load(from: try swiftString(path, "path"))
        let handle = ModelHandle(loaded.model, attachments: loaded.attachments)
        out.pointee = OpaquePointer(Unmanaged.passRetained(handle).toOpaque())
    }
}

@c @implementation
public func sdlstm_set_epoch(_ model: OpaquePointer?, _ epoch: Int64) -> sdlstm_status {
    translate { () throws(SDLSTMError) in try SDLSTMCAPI.model(model).optimizer.progress.setEpoch(epoch) }
}

@c @implementation
public func sdlstm_get_progress(_ model: OpaquePointer?, _ out: UnsafeMutablePointer<sdlstm_progress>?) -> sdlstm_status {
    translate { () throws(SDLSTMError) in
        let m = try SDLSTMCAPI.model(model)
        let out = try unwrap(out, "out")
        let size = try structSize(of: out, "out")
        let o = m.optimizer
        let p = sdlstm_progress(struct_size: size, step: o.progress.step, epoch: o.progress.epoch,
                                epoch_step: o.progress.epochStep, learning_rate: o.learningRate, clip_norm: o.clipNorm)
        copyOut(p, to: out, structSize: size)
    }
}

@c @implementation
public func sdlstm_set_strings(_ model: OpaquePointer?, _ name: UnsafePointer<CChar>?,
                               _ strings: UnsafePointer<UnsafePointer<CChar>?>?, _ n: Int64) -> sdlstm_status {
    translate { () throws(SDLSTMError) in
        let h = try modelHandle(model)
        let name = try swiftString(name, "name")
        guard n >= 0 && n <= Int64(Attachments.maxTableStrings) else {
            throw .invalid("n must be in 0...\(Attachments.maxTableStrings), got \(n)")
        }
        let values = n > 0 ? try swiftStrings(try unwrap(strings, "strings"), count: Int(n), "strings") : []
        try h.attachments.setStrings(name, values)
    }
}

@c @implementation
public func sdlstm_get_strings(_ model: OpaquePointer?, _ name: UnsafePointer<CChar>?,
                               _ out: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?,
                               _ n: UnsafeMutablePointer<Int64>?) -> sdlstm_status {
    translate { () throws(SDLSTMError) in
        let h = try modelHandle(model)
        let name = try swiftString(name, "name")
        let out = try unwrap(out, "out")
        let n = try unwrap(n, "n")
        guard let values = h.attachments.strings[name] else {
            (out.pointee, n.pointee) = (nil, 0)
            return
        }
        out.pointee = try cStringArray(values)
        n.pointee = Int64(values.count)
    }
}

@c @implementation
public func sdlstm_set_metadata(_ model: OpaquePointer?, _ key: UnsafePointer<CChar>?, _ value: UnsafePointer<CChar>?) -> sdlstm_status {
    translate { () throws(SDLSTMError) in
        let h = try modelHandle(model)
        let key = try swiftString(key, "key")
        let value = try value.map { p throws(SDLSTMError) in try swiftString(p, "value") }
        try h.attachments.setMetadata(key, value)
    }
}

@c @implementation
public func sdlstm_get_metadata(_ model: OpaquePointer?, _ key: UnsafePointer<CChar>?,
                                _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> sdlstm_status {
    translate { () throws(SDLSTMError) in
        let h = try modelHandle(model)
        let key = try swiftString(key, "key")
        let out = try unwrap(out, "out")
        guard let value = h.attachments.metadata[key] else { out.pointee = nil; return }
        guard let copy = strdup(value) else { throw .outOfMemory("could not allocate the value of \(key)") }
        out.pointee = copy
    }
}

@c @implementation
public func sdlstm_free(_ p: UnsafeMutableRawPointer?) { free(p) }

/// One malloc'd block: count + 1 pointers (the last NULL), then the NUL-terminated strings they point to.
func cStringArray(_ values: [String]) throws(SDLSTMError) -> UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> {
    let pointerBytes = (values.count + 1) * MemoryLayout<UnsafeMutablePointer<CChar>?>.stride
    let total = values.reduce(pointerBytes) { $0 + $1.utf8.count + 1 }
    guard let raw = malloc(total) else { throw .outOfMemory("could not allocate \(total) bytes for the string table") }
    let table = raw.bindMemory(to: UnsafeMutablePointer<CChar>?.self, capacity: values.count + 1)
    var text = (raw + pointerBytes).bindMemory(to: CChar.self, capacity: total - pointerBytes)
    for (i, s) in values.enumerated() {
        table[i] = text
        for byte in s.utf8 { text.pointee = CChar(bitPattern: byte); text += 1 }
        text.pointee = 0
        text += 1
    }
    table[values.count] = nil
    return table
}

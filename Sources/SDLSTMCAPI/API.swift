import Glibc
import SDLSTMCore
import CSDLSTM

// The exported functions of include/sdlstm.h. `@c @implementation` makes the compiler check each
// signature against the header; bodies only translate between C and the core.

@c @implementation
public func sdlstm_version() -> UnsafePointer<CChar>? { versionString }

// Built once from the header's version macros and kept for the life of the library.
nonisolated(unsafe) private let versionString = UnsafePointer<CChar>(strdup(Checkpoint.libraryVersion))

@c @implementation
public func sdlstm_version_number() -> Int32 {
    Int32(SDLSTM_VERSION_MAJOR * 10000 + SDLSTM_VERSION_MINOR * 100 + SDLSTM_VERSION_PATCH)
}

@c @implementation
public func sdlstm_last_error() -> UnsafePointer<CChar>? { lastErrorMessage() }

@c @implementation
public func sdlstm_status_name(_ status: sdlstm_status) -> UnsafePointer<CChar>? {
    switch status {
    case SDLSTM_OK: return cString("SDLSTM_OK")
    case SDLSTM_E_INVALID: return cString("SDLSTM_E_INVALID")
    case SDLSTM_E_NOMEM: return cString("SDLSTM_E_NOMEM")
    case SDLSTM_E_IO: return cString("SDLSTM_E_IO")
    case SDLSTM_E_FORMAT: return cString("SDLSTM_E_FORMAT")
    case SDLSTM_E_NUMERIC: return cString("SDLSTM_E_NUMERIC")
    case SDLSTM_E_STATE: return cString("SDLSTM_E_STATE")
    default: return cString("SDLSTM_UNKNOWN_STATUS")
    }
}

@c @implementation
public func sdlstm_config_init(_ cfg: UnsafeMutablePointer<sdlstm_config>?, _ task: sdlstm_task) -> sdlstm_status {
    translate { () throws(SDLSTMError) in
        let out = try unwrap(cfg, "cfg")
        let size = try structSize(of: out, "cfg")
        copyOut(cConfig(ModelConfig(task: try SDLSTMCAPI.task(task))), to: out, structSize: size)
    }
}

@c @implementation
public func sdlstm_model_create(_ cfg: UnsafePointer<sdlstm_config>?,
                                _ out: UnsafeMutablePointer<OpaquePointer?>?) -> sdlstm_status {
    translate { () throws(SDLSTMError) in
        let out = try unwrap(out, "out")
        // The fields an older, smaller struct lacks take the defaults of its task.
        let task = try copyIn(cfg, "cfg", defaults: sdlstm_config()).task
        let c = try copyIn(cfg, "cfg", defaults: cConfig(ModelConfig(task: try SDLSTMCAPI.task(task))))
        let m = try makeModel(try coreConfig(c))
        out.pointee = OpaquePointer(Unmanaged.passRetained(ModelHandle(m)).toOpaque())
    }
}

@c @implementation
public func sdlstm_model_free(_ model: OpaquePointer?) {
    guard let model else { return }
    Unmanaged<ModelHandle>.fromOpaque(UnsafeRawPointer(model)).release()
}

@c @implementation
public func sdlstm_get_config(_ model: OpaquePointer?, _ cfg: UnsafeMutablePointer<sdlstm_config>?) -> sdlstm_status {
    translate { () throws(SDLSTMError) in
        let m = try SDLSTMCAPI.model(model)
        let out = try unwrap(cfg, "cfg")
        copyOut(cConfig(m.config), to: out, structSize: try structSize(of: out, "cfg"))
    }
}

@c @implementation
public func sdlstm_get_parameter_count(_ model: OpaquePointer?, _ out: UnsafeMutablePointer<Int64>?) -> sdlstm_status {
    translate { () throws(SDLSTMError) in
        let m = try SDLSTMCAPI.model(model)
        try unwrap(out, "out").pointee = Int64(m.parameterCount)
    }
}

@c @implementation
public func sdlstm_set_dropout(_ model: OpaquePointer?, _ site: sdlstm_site, _ policy: sdlstm_policy, _ p: Float) -> sdlstm_status {
    translate { () throws(SDLSTMError) in
        let m = try SDLSTMCAPI.model(model)
        guard let s = DropoutSite(rawValue: Int32(bitPattern: site.rawValue)) else { throw .invalid("site \(site.rawValue) is not a dropout site") }
        guard let pol = DropoutPolicy(rawValue: Int32(bitPattern: policy.rawValue)) else { throw .invalid("policy \(policy.rawValue) is not a dropout policy") }
        try m.setDropout(DropoutSetting(policy: pol, p: p), at: s)
    }
}

@c @implementation
public func sdlstm_set_optimizer(_ model: OpaquePointer?, _ optimizer: sdlstm_optimizer) -> sdlstm_status {
    translate { () throws(SDLSTMError) in
        let m = try SDLSTMCAPI.model(model)
        guard let kind = OptimizerKind(rawValue: Int32(bitPattern: optimizer.rawValue)) else {
            throw .invalid("optimizer \(optimizer.rawValue) is not an optimizer")
        }
        m.optimizer.kind = kind
    }
}

@c @implementation
public func sdlstm_set_learning_rate(_ model: OpaquePointer?, _ learningRate: Float) -> sdlstm_status {
    translate { () throws(SDLSTMError) in try SDLSTMCAPI.model(model).optimizer.setLearningRate(learningRate) }
}

@c @implementation
public func sdlstm_set_clip_norm(_ model: OpaquePointer?, _ maxNorm: Float) -> sdlstm_status {
    translate { () throws(SDLSTMError) in try SDLSTMCAPI.model(model).optimizer.setClipNorm(maxNorm) }
}

@c @implementation
public func sdlstm_set_num_threads(_ model: OpaquePointer?, _ threads: Int32) -> sdlstm_status {
    translate { () throws(SDLSTMError) in try SDLSTMCAPI.model(model).setNumThreads(Int(threads)) }
}

@c @implementation
public func sdlstm_set_seed(_ model: OpaquePointer?, _ seed: UInt64) -> sdlstm_status {
    translate { () throws(SDLSTMError) in try SDLSTMCAPI.model(model).seed(seed) }
}

@c @implementation
public func sdlstm_step(_ model: OpaquePointer?, _ batch: UnsafePointer<sdlstm_batch>?,
                        _ stats: UnsafeMutablePointer<sdlstm_stats>?) -> sdlstm_status {
    translate { () throws(SDLSTMError) in
        let m = try SDLSTMCAPI.model(model)
        try withStats(stats) { () throws(SDLSTMError) in try m.step(try coreBatch(batch)) }
    }
}

@c @implementation
public func sdlstm_evaluate(_ model: OpaquePointer?, _ batch: UnsafePointer<sdlstm_batch>?,
                            _ stats: UnsafeMutablePointer<sdlstm_stats>?) -> sdlstm_status {
    translate { () throws(SDLSTMError) in
        let m = try SDLSTMCAPI.model(model)
        try withStats(stats) { () throws(SDLSTMError) in try m.evaluate(try coreBatch(batch)) }
    }
}

@c @implementation
public func sdlstm_reset_state(_ model: OpaquePointer?) -> sdlstm_status {
    translate { () throws(SDLSTMError) in try SDLSTMCAPI.model(model).resetState() }
}

import SDLSTMCore
import CSDLSTM

// Data-parallel training: the host's reduction as a core GradientReducer, the shard as a BatchShard.

@c @implementation
public func sdlstm_set_gradient_reducer(_ model: OpaquePointer?, _ reducer: sdlstm_gradient_reducer?,
                                        _ userData: UnsafeMutableRawPointer?) -> sdlstm_status {
    translate { () throws(SDLSTMError) in
        let m = try SDLSTMCAPI.model(model)
        guard let reducer else { m.dataParallel.reducer = nil; return }
        let context = userData
        m.dataParallel.reducer = { (values, totals) throws(SDLSTMError) in
            let rc = reducer(values.baseAddress, Int64(values.count), totals.baseAddress, context)
            guard rc == 0 else { throw .io("the gradient reducer returned \(rc); the update was skipped") }
        }
    }
}

@c @implementation
public func sdlstm_set_batch_shard(_ model: OpaquePointer?, _ offset: Int64, _ globalBatchSize: Int64) -> sdlstm_status {
    translate { () throws(SDLSTMError) in
        let m = try SDLSTMCAPI.model(model)
        guard let o = Int(exactly: offset), let g = Int(exactly: globalBatchSize), g <= Int(Int32.max) else {
            throw .invalid("global_batch_size \(globalBatchSize) is above INT32_MAX")
        }
        m.dataParallel.shard = try BatchShard.make(offset: o, globalBatch: g)
    }
}

import Glibc
import SDLSTMCore
import CSDLSTM

/// The strings of sdlstm_runtime_info in C, copied once and never freed: the header promises that
/// they live as long as the library, and every one of them is known when the process starts.
nonisolated(unsafe) private let cStrings: [String: UnsafePointer<CChar>] = {
    let p = Platform.current
    let all = Set([p.cpuModel, p.blasName, p.blasVersion, p.blasCore] + KernelISA.allCases.map(\.name))
    return Dictionary(uniqueKeysWithValues: all.map { ($0, UnsafePointer(strdup($0)!)) })
}()

@c @implementation
public func sdlstm_get_runtime_info(_ info: UnsafeMutablePointer<sdlstm_runtime_info>?) -> sdlstm_status {
    translate { () throws(SDLSTMError) in
        let out = try unwrap(info, "info")
        let size = try structSize(of: out, "info")
        let r = try runtimeInfo(), p = r.platform
        copyOut(sdlstm_runtime_info(struct_size: size, kernel_isa: cStrings[r.kernelISA.name], cpu_isa: cStrings[p.cpuISA.name],
                                    cpu_model: cStrings[p.cpuModel], blas_name: cStrings[p.blasName],
                                    blas_version: cStrings[p.blasVersion], blas_core: cStrings[p.blasCore],
                                    blas_threads: Int32(r.blasThreads), blas_core_generic: p.blasCoreGeneric ? 1 : 0),
                to: out, structSize: size)
    }
}

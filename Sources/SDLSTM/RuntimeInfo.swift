import CSDLSTM

/// What this process computes with (`sdlstm_get_runtime_info`): sdlstm's own kernels and the BLAS
/// under them.
public struct RuntimeInfo: Equatable, Sendable {
    /// "avx512", "avx2" or "portable": the kernels sdlstm runs (SDLSTM_ISA may lower it).
    public var kernelISA: String
    /// The best of those sets this CPU has.
    public var cpuISA: String
    /// /proc/cpuinfo's model name, or "unknown".
    public var cpuModel: String
    /// "OpenBLAS".
    public var blasName: String
    /// e.g. "0.3.21".
    public var blasVersion: String
    /// The kernels OpenBLAS chose, e.g. "Cooperlake", "Haswell", "Prescott".
    public var blasCore: String
    /// OpenBLAS's process-wide thread count.
    public var blasThreads: Int
    /// OpenBLAS runs a generic core on a CPU that has AVX2 or AVX-512, so dense GEMMs are slow;
    /// OPENBLAS_CORETYPE set before the program starts fixes it.
    public var blasCoreIsGeneric: Bool
}

/// The runtime facts of this process; `.invalid` when SDLSTM_ISA names a set this CPU lacks or no
/// set at all.
public func runtimeInfo() throws(SDLSTMError) -> RuntimeInfo {
    var info = sdlstm_runtime_info()
    info.struct_size = MemoryLayout<sdlstm_runtime_info>.size
    try SDLSTMError.check(sdlstm_get_runtime_info(&info))
    return RuntimeInfo(kernelISA: String(cString: info.kernel_isa), cpuISA: String(cString: info.cpu_isa),
                       cpuModel: String(cString: info.cpu_model), blasName: String(cString: info.blas_name),
                       blasVersion: String(cString: info.blas_version), blasCore: String(cString: info.blas_core),
                       blasThreads: Int(info.blas_threads), blasCoreIsGeneric: info.blas_core_generic != 0)
}

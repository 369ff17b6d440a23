import CKernels
import COpenBLAS
import Glibc

/// An instruction set of sdlstm's own kernels (ckernels.h). The sets are ordered: a CPU that has
/// one has the lesser ones too.
public enum KernelISA: UInt32, CaseIterable, Comparable, Sendable {
    case portable = 0, avx2 = 1, avx512 = 2  // SDK_ISA_*

    init(_ id: sdk_isa_id) { self = KernelISA(rawValue: id.rawValue) ?? .portable }

    var id: sdk_isa_id { sdk_isa_id(rawValue: rawValue) }

    /// "portable", "avx2" or "avx512", as SDLSTM_ISA spells them.
    public var name: String { String(cString: sdk_isa_name(id)) }

    public static func < (a: KernelISA, b: KernelISA) -> Bool { a.rawValue < b.rawValue }
}

/// The kernel set that SDLSTM_ISA = `value` selects on a CPU whose best set is `cpu`; the error is
/// the one every model creation then fails with.
public func requestedKernelISA(_ value: String, cpu: KernelISA) throws(SDLSTMError) -> KernelISA {
    let choices = KernelISA.allCases.filter { $0 <= cpu }.reversed().map(\.name)
    let choose = "choose " + (choices.count > 1 ? choices.dropLast().joined(separator: ", ") + " or " : "") + choices.last!
    guard let isa = KernelISA.allCases.first(where: { $0.name == value }) else {
        throw .invalid("SDLSTM_ISA=\(value) is not a kernel set (\(choose))")
    }
    guard isa <= cpu else { throw .invalid("SDLSTM_ISA=\(value): this CPU's best kernel set is \(cpu.name) (\(choose))") }
    return isa
}

/// The CPU and the BLAS under sdlstm. Fixed for the life of the process: OpenBLAS picks its kernels
/// (its "core") once, when it is loaded.
public struct Platform: Sendable {
    public var cpuISA: KernelISA
    /// /proc/cpuinfo's model name, "unknown" without one.
    public var cpuModel: String
    public var blasName: String
    public var blasVersion: String
    public var blasCore: String

    public init(cpuISA: KernelISA, cpuModel: String, blasName: String = "OpenBLAS", blasVersion: String, blasCore: String) {
        (self.cpuISA, self.cpuModel, self.blasName, self.blasVersion, self.blasCore) = (cpuISA, cpuModel, blasName, blasVersion, blasCore)
    }

    public static let current = Platform(
        cpuISA: KernelISA(sdk_cpu_isa()),
        cpuModel: procValue("model name", file: "/proc/cpuinfo") ?? "unknown",
        blasVersion: openBLASVersion(config: String(cString: openblas_get_config())),
        blasCore: String(cString: openblas_get_corename()))

    /// OpenBLAS's cores without AVX2 kernels (its corename list, lowercased for builds without
    /// DYNAMIC_ARCH, which spell them in capitals). Steamroller and Excavator lack them too, but
    /// OpenBLAS picks those for their own CPUs, not for CPUs it does not know.
    static let preAVX2Cores: Set<String> = [
        "katmai", "coppermine", "northwood", "prescott", "banias", "atom", "core2", "penryn", "dunnington",
        "nehalem", "athlon", "opteron", "opteron_sse3", "barcelona", "nano", "sandybridge", "bobcat",
        "bulldozer", "piledriver",
    ]

    /// OpenBLAS runs a core without AVX2 kernels on a CPU that has AVX2 or AVX-512F: it did not know
    /// the CPU (0.3.21 takes Intel family 6 model 207 for a Prescott, OpenBLAS issue 4267), and its
    /// dense GEMMs run several times slower than they can.
    public var blasCoreGeneric: Bool { cpuISA >= .avx2 && Platform.preAVX2Cores.contains(blasCore.lowercased()) }

    /// The OPENBLAS_CORETYPE that gives this CPU OpenBLAS's fast kernels.
    public var blasCoreRemedy: String { cpuISA == .avx512 ? "SkylakeX" : "Haswell" }

    /// The warning a generic core deserves; nil when it needs none.
    public var blasWarning: String? {
        guard blasCoreGeneric else { return nil }
        return "sdlstm: warning: \(blasName) \(blasVersion) runs its \(blasCore) kernels on this "
            + "\(cpuISA == .avx512 ? "AVX-512" : "AVX2") CPU (\(cpuModel)), so dense GEMMs run several times slower "
            + "than they can; set OPENBLAS_CORETYPE=\(blasCoreRemedy) before starting the program"
    }
}

/// The version in OpenBLAS's config string ("OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY ..."), or "unknown".
public func openBLASVersion(config: String) -> String {
    let words = config.split(separator: " ")
    guard words.count >= 2, words[0] == "OpenBLAS" else { return "unknown" }
    return String(words[1])
}

/// What this process computes with: sdlstm's kernels, the platform under them, and OpenBLAS's
/// process-wide thread count: 1, which sdlstm sets once (`blasSingleThreaded`) and runs inside its
/// own workers, unless the host changed it since.
public struct RuntimeInfo: Sendable {
    public var kernelISA: KernelISA
    public var platform: Platform
    public var blasThreads: Int
}

/// Fails as model creation does when SDLSTM_ISA is bad.
public func runtimeInfo() throws(SDLSTMError) -> RuntimeInfo {
    if let kernelISAFailure { throw kernelISAFailure }
    _ = blasSingleThreaded
    return RuntimeInfo(kernelISA: KernelISA(sdk_isa()), platform: .current, blasThreads: Int(openblas_get_num_threads()))
}

/// What the first model creation does for the whole process: warns once about a generic OpenBLAS
/// core and applies SDLSTM_ISA, whose error then refuses every model.
public func prepareProcess() throws(SDLSTMError) {
    _ = blasWarningPrinted
    if let kernelISAFailure { throw kernelISAFailure }
}

/// SDLSTM_ISA, applied once per process, before the first model: the kernels must not change under
/// a model that is training. nil when it is unset, empty or applied.
private let kernelISAFailure: SDLSTMError? = {
    guard let value = getenv("SDLSTM_ISA"), value.pointee != 0 else { return nil }
    do throws(SDLSTMError) {
        let isa = try requestedKernelISA(String(cString: value), cpu: Platform.current.cpuISA)
        let selected = sdk_set_isa(isa.id)
        assert(selected == 0, "sdk_set_isa refused a set that sdk_cpu_isa reports")
        return nil
    } catch {
        return error
    }
}()

/// The generic-core warning, printed at most once per process; SDLSTM_QUIET_BLAS_WARNING (any value
/// but "" and "0") silences it for hosts that know.
private let blasWarningPrinted: Void = {
    guard let warning = Platform.current.blasWarning else { return }
    if let quiet = getenv("SDLSTM_QUIET_BLAS_WARNING"), quiet.pointee != 0, String(cString: quiet) != "0" { return }
    let line = Array((warning + "\n").utf8)
    _ = write(STDERR_FILENO, line, line.count)
}()

/// The value of the first "key: value" line of `text` (a /proc file), trimmed; nil without one.
public func procValue(_ key: String, in text: String) -> String? {
    for line in text.split(separator: "\n") {
        guard let colon = line.firstIndex(of: ":"), trimmed(line[..<colon]) == key else { continue }
        return trimmed(line[line.index(after: colon)...])
    }
    return nil
}

func procValue(_ key: String, file path: String) -> String? {
    guard let f = fopen(path, "r") else { return nil }
    defer { fclose(f) }
    // /proc files report size 0: read until the end.
    var bytes: [UInt8] = [], chunk = [UInt8](repeating: 0, count: 1 << 16)
    while case let n = fread(&chunk, 1, chunk.count, f), n > 0 { bytes += chunk[..<n] }
    return procValue(key, in: String(decoding: bytes, as: UTF8.self))
}

private func trimmed(_ s: Substring) -> String {
    String(s.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
}

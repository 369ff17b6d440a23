import CKernels
import COpenBLAS
import SDLSTMCore
import XCTest

/// SDLSTM_ISA's verdicts, the facts read from OpenBLAS and /proc, and the generic-core warning,
/// without the environment (which the library reads once per process).
final class RuntimeInfoTests: XCTestCase {
    func testRequestedKernelISA() throws {
        XCTAssertEqual(try requestedKernelISA("avx2", cpu: .avx512), .avx2)
        XCTAssertEqual(try requestedKernelISA("avx512", cpu: .avx512), .avx512)
        XCTAssertEqual(try requestedKernelISA("portable", cpu: .portable), .portable)
        let refusals: [(String, KernelISA, String)] = [
            ("avx512", .avx2, "SDLSTM_ISA=avx512: this CPU's best kernel set is avx2 (choose avx2 or portable)"),
            ("avx2", .portable, "SDLSTM_ISA=avx2: this CPU's best kernel set is portable (choose portable)"),
            ("sse", .avx512, "SDLSTM_ISA=sse is not a kernel set (choose avx512, avx2 or portable)"),
            ("AVX2", .avx2, "SDLSTM_ISA=AVX2 is not a kernel set (choose avx2 or portable)"),
        ]
        for (value, cpu, message) in refusals {
            XCTAssertThrowsError(try requestedKernelISA(value, cpu: cpu)) { error in
                XCTAssertEqual(error as? SDLSTMError, .invalid(message))
            }
        }
    }

    func testKernelISANamesAreTheKernels() {
        XCTAssertEqual(KernelISA.allCases.map(\.name), ["portable", "avx2", "avx512"])
        XCTAssertEqual(try runtimeInfo().kernelISA.name, String(cString: sdk_isa_name(sdk_isa())))
        XCTAssertEqual(Platform.current.cpuISA.name, String(cString: sdk_isa_name(sdk_cpu_isa())))
    }

    func testOpenBLASFacts() {
        XCTAssertEqual(openBLASVersion(config: "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY Cooperlake MAX_THREADS=64"),
                       "0.3.21")
        XCTAssertEqual(openBLASVersion(config: "something else"), "unknown")
        XCTAssertEqual(openBLASVersion(config: ""), "unknown")
        let p = Platform.current
        XCTAssertEqual(p.blasName, "OpenBLAS")
        XCTAssertTrue(String(cString: openblas_get_config()).hasPrefix("OpenBLAS \(p.blasVersion) "))
        XCTAssertEqual(p.blasCore, String(cString: openblas_get_corename()))
        XCTAssertEqual(try runtimeInfo().blasThreads, Int(openblas_get_num_threads()))
    }

    func testProcValue() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Platinum 8581C CPU @ 2.30GHz\n"
            + "flags\t\t: fpu avx2 avx512f\n\nprocessor\t: 1\nmodel name\t: second\n"
        XCTAssertEqual(procValue("model name", in: cpuinfo), "Intel(R) Xeon(R) Platinum 8581C CPU @ 2.30GHz")
        XCTAssertEqual(procValue("Umask", in: "Name:\txctest\nUmask:\t0022\n"), "0022")
        XCTAssertNil(procValue("model name", in: "processor\t: 0\n"))
        XCTAssertFalse(Platform.current.cpuModel.isEmpty)
    }

    func testGenericCoreWarning() {
        let xeon = Platform(cpuISA: .avx512, cpuModel: "Intel(R) Xeon(R) Platinum 8581C", blasVersion: "0.3.21", blasCore: "Prescott")
        XCTAssertTrue(xeon.blasCoreGeneric)
        XCTAssertEqual(xeon.blasCoreRemedy, "SkylakeX")
        XCTAssertEqual(xeon.blasWarning,
                       "sdlstm: warning: OpenBLAS 0.3.21 runs its Prescott kernels on this AVX-512 CPU (Intel(R) Xeon(R) "
                       + "Platinum 8581C), so dense GEMMs run several times slower than they can; set "
                       + "OPENBLAS_CORETYPE=SkylakeX before starting the program")
        let epyc = Platform(cpuISA: .avx2, cpuModel: "AMD EPYC", blasVersion: "0.3.21", blasCore: "NEHALEM")
        XCTAssertTrue(epyc.blasCoreGeneric, "builds without DYNAMIC_ARCH spell the core in capitals")
        XCTAssertEqual(epyc.blasCoreRemedy, "Haswell")
        XCTAssertTrue(epyc.blasWarning?.contains("this AVX2 CPU (AMD EPYC)") == true)
        for core in ["Haswell", "SkylakeX", "Cooperlake", "Zen", "SapphireRapids"] {
            XCTAssertNil(Platform(cpuISA: .avx512, cpuModel: "x", blasVersion: "0.3.21", blasCore: core).blasWarning, core)
        }
        // A CPU without AVX2 has nothing faster to offer OpenBLAS.
        XCTAssertNil(Platform(cpuISA: .portable, cpuModel: "old", blasVersion: "0.3.21", blasCore: "Prescott").blasWarning)
    }
}

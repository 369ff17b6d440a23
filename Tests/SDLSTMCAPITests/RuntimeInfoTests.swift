import COpenBLAS
import CSDLSTM
import XCTest

/// sdlstm_get_runtime_info: what it reports agrees with OpenBLAS itself, and it honours struct_size.
final class RuntimeInfoTests: XCTestCase {
    func info() -> sdlstm_runtime_info {
        var info = sdlstm_runtime_info()
        info.struct_size = MemoryLayout<sdlstm_runtime_info>.size
        XCTAssertEqual(sdlstm_get_runtime_info(&info), OK, lastError())
        return info
    }

    func testReportsKernelsCPUAndOpenBLAS() throws {
        let info = info()
        let isas = ["portable", "avx2", "avx512"]
        let kernel = String(cString: try XCTUnwrap(info.kernel_isa)), cpu = String(cString: try XCTUnwrap(info.cpu_isa))
        XCTAssertTrue(isas.contains(kernel), kernel)
        XCTAssertTrue(isas.contains(cpu), cpu)
        XCTAssertLessThanOrEqual(isas.firstIndex(of: kernel)!, isas.firstIndex(of: cpu)!, "kernels beyond the CPU")
        XCTAssertFalse(String(cString: try XCTUnwrap(info.cpu_model)).isEmpty)
        XCTAssertEqual(String(cString: try XCTUnwrap(info.blas_name)), "OpenBLAS")
        let version = String(cString: try XCTUnwrap(info.blas_version))
        XCTAssertTrue(String(cString: openblas_get_config()).hasPrefix("OpenBLAS \(version) "), version)
        XCTAssertEqual(String(cString: try XCTUnwrap(info.blas_core)), String(cString: openblas_get_corename()))
        XCTAssertEqual(info.blas_threads, openblas_get_num_threads())
        XCTAssertTrue(info.blas_core_generic == 0 || info.blas_core_generic == 1)
        XCTAssertEqual(info.struct_size, MemoryLayout<sdlstm_runtime_info>.size)
    }

    func testStringsAreStatic() {
        let a = info(), b = info()
        XCTAssertEqual(a.kernel_isa, b.kernel_isa)
        XCTAssertEqual(a.cpu_model, b.cpu_model)
        XCTAssertEqual(a.blas_version, b.blas_version)
        XCTAssertEqual(a.blas_core, b.blas_core)
    }

    func testNullIsInvalid() {
        XCTAssertEqual(sdlstm_get_runtime_info(nil), E_INVALID)
        XCTAssertTrue(lastError().contains("info"), lastError())
    }

    /// Too small a struct_size is refused and nothing written; a larger one (a newer header's struct)
    /// keeps the bytes past this library's struct as they were.
    func testStructSize() {
        let size = MemoryLayout<sdlstm_runtime_info>.size, extra = 16
        let raw = UnsafeMutableRawPointer.allocate(byteCount: size + extra, alignment: 16)
        defer { raw.deallocate() }
        let info = raw.bindMemory(to: sdlstm_runtime_info.self, capacity: 1)
        let bytes = UnsafeMutableRawBufferPointer(start: raw, count: size + extra)

        bytes.initializeMemory(as: UInt8.self, repeating: 0xAB)
        info.pointee.struct_size = size - MemoryLayout<Int32>.size
        XCTAssertEqual(sdlstm_get_runtime_info(info), E_INVALID)
        XCTAssertTrue(lastError().contains("struct_size"), lastError())
        XCTAssertTrue(bytes[MemoryLayout<Int>.size...].allSatisfy { $0 == 0xAB }, "a refused call wrote")

        bytes.initializeMemory(as: UInt8.self, repeating: 0xAB)
        info.pointee.struct_size = size + extra
        XCTAssertEqual(sdlstm_get_runtime_info(info), OK, lastError())
        XCTAssertEqual(info.pointee.struct_size, size + extra, "the caller's struct_size must stay")
        XCTAssertNotNil(info.pointee.blas_core)
        XCTAssertTrue(bytes[size...].allSatisfy { $0 == 0xAB }, "wrote past the struct this library knows")
    }
}

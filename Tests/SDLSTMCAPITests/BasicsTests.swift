import CSDLSTM
import Foundation
import XCTest

/// Version, status names, last_error, config defaults, parameter counts.
final class BasicsTests: XCTestCase {
    func testVersionIsSemantic() {
        let v = String(cString: sdlstm_version())
        XCTAssertFalse(v.isEmpty)
        XCTAssertNotNil(v.wholeMatch(of: /[0-9]+\.[0-9]+\.[0-9]+/), "version \"\(v)\" is not MAJOR.MINOR.PATCH")
    }

    func testStatusNames() {
        let expected: [(sdlstm_status, String)] = [
            (SDLSTM_OK, "SDLSTM_OK"), (SDLSTM_E_INVALID, "SDLSTM_E_INVALID"), (SDLSTM_E_NOMEM, "SDLSTM_E_NOMEM"),
            (SDLSTM_E_IO, "SDLSTM_E_IO"), (SDLSTM_E_FORMAT, "SDLSTM_E_FORMAT"),
            (SDLSTM_E_NUMERIC, "SDLSTM_E_NUMERIC"), (SDLSTM_E_STATE, "SDLSTM_E_STATE"),
        ]
        for (status, text) in expected {
            XCTAssertEqual(statusName(status), text)
        }
        for raw: UInt32 in [7, 99, UInt32.max] {
            // Never NULL, also for codes this header does not know.
            let p = sdlstm_status_name(sdlstm_status(rawValue: raw))
            XCTAssertNotNil(p, "status_name(\(raw)) is NULL")
            if let p { XCTAssertFalse(String(cString: p).isEmpty, "status_name(\(raw)) is empty") }
        }
    }

    func testLastErrorIsPerThread() {
        final class Box: @unchecked Sendable { var before = "x", after = "" }
        XCTAssertEqual(sdlstm_set_num_threads(nil, 1), E_INVALID)
        let mainMessage = lastError()
        XCTAssertFalse(mainMessage.isEmpty)
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            box.before = lastError()
            _ = sdlstm_set_learning_rate(nil, 1)
            box.after = lastError()
            done.signal()
        }
        thread.start()
        done.wait()
        XCTAssertEqual(box.before, "", "a fresh thread must see \"\" (no failed call yet)")
        XCTAssertFalse(box.after.isEmpty)
        XCTAssertEqual(lastError(), mainMessage, "another thread's failure changed this thread's message")
    }

    func testConfigInitDefaults() {
        var c = sdlstm_config()
        c.struct_size = MemoryLayout<sdlstm_config>.size
        XCTAssertEqual(sdlstm_config_init(&c, SDLSTM_TASK_LANGUAGE_MODEL), OK, lastError())
        XCTAssertEqual(c.struct_size, MemoryLayout<sdlstm_config>.size)
        XCTAssertEqual(c.task, SDLSTM_TASK_LANGUAGE_MODEL)
        XCTAssertEqual(c.vocab_size, 10000)
        XCTAssertEqual(c.embed_size, 650)  // PTB medium: embedding as wide as the LSTM
        XCTAssertEqual(c.hidden_size, 650)
        XCTAssertEqual(c.num_layers, 2)
        XCTAssertEqual(c.init_scale, 0.05)
        XCTAssertEqual(c.seed, 1)
    }

    func testGetConfigRoundTrips() {
        let c = smallConfig(vocab: 31, embed: 5, hidden: 7, layers: 3, initScale: 0.2, seed: 77)
        let m = makeModel(c)
        defer { sdlstm_model_free(m) }
        var got = sdlstm_config()
        got.struct_size = MemoryLayout<sdlstm_config>.size
        XCTAssertEqual(sdlstm_get_config(m, &got), OK, lastError())
        XCTAssertEqual(got.struct_size, c.struct_size)
        XCTAssertEqual(got.task, c.task)
        XCTAssertEqual(got.vocab_size, 31)
        XCTAssertEqual(got.embed_size, 5)
        XCTAssertEqual(got.hidden_size, 7)
        XCTAssertEqual(got.num_layers, 3)
        XCTAssertEqual(got.init_scale, 0.2)
        XCTAssertEqual(got.seed, 77)
    }

    /// embedding V*E + per layer 4H*(in+H) + 8H (two bias vectors) + decoder V*H + V.
    func testParameterCountFormula() {
        for (v, e, h, l) in [(50, 8, 12, 2), (50, 8, 12, 1), (17, 3, 5, 3), (1, 1, 1, 1)] as [(Int64, Int64, Int64, Int64)] {
            let m = makeModel(smallConfig(vocab: Int32(v), embed: Int32(e), hidden: Int32(h), layers: Int32(l)))
            defer { sdlstm_model_free(m) }
            var count: Int64 = -1
            XCTAssertEqual(sdlstm_get_parameter_count(m, &count), OK, lastError())
            var expected = v * e + v * h + v
            for layer in 0..<l {
                let input = layer == 0 ? e : h
                expected += 4 * h * (input + h) + 8 * h
            }
            XCTAssertEqual(count, expected, "V \(v) E \(e) H \(h) L \(l)")
        }
    }
}

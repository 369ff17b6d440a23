import CSDLSTM
import Dispatch
import Glibc
import XCTest

/// C ABI calls that used to hang, trap later or accept what the other calls refuse.
final class ReliabilityTests: XCTestCase {
    var dir = ""
    override func setUp() { dir = makeTemporaryDirectory("sdlstm-reliability") }
    override func tearDown() { removeDirectory(dir) }

    func taggerConfig() -> sdlstm_config {
        var c = sdlstm_config()
        c.struct_size = MemoryLayout<sdlstm_config>.size
        precondition(sdlstm_config_init(&c, SDLSTM_TASK_TAGGER) == SDLSTM_OK, lastError())
        (c.vocab_size, c.embed_size, c.hidden_size, c.num_layers, c.num_tags, c.char_vocab_size) = (11, 6, 8, 1, 3, 0)
        return c
    }

    /// Calls body with C strings for `names`, the first byte of the one at `invalidAt` made 0xff (never UTF-8).
    func withNames<R>(_ names: [String], invalidAt: Int, _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
        let copies = names.map { strdup($0)! }
        copies[invalidAt][0] = CChar(bitPattern: 0xff)
        defer { copies.forEach { free($0) } }
        let pointers: [UnsafePointer<CChar>?] = copies.map { UnsafePointer($0) }
        return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
    }

    func testTagNamesAndSpanF1RefuseInvalidUTF8() {
        let m = makeModel(taggerConfig())
        defer { sdlstm_model_free(m) }
        let names = ["O", "B-X", "I-X"]
        XCTAssertEqual(withNames(names, invalidAt: 2) { sdlstm_set_tag_names(m, $0, 3, SDLSTM_TAG_SCHEME_IOB2) }, E_INVALID)
        XCTAssertTrue(mentions(lastError(), ["names\\[2\\].*UTF-8"]), lastError())
        var out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
        var count: Int32 = -1
        XCTAssertEqual(sdlstm_get_tag_names(m, &out, &count, nil), OK)
        XCTAssertEqual(count, 0, "the failed call named the tags")
        XCTAssertNil(out)

        let sentinel = OpaquePointer(bitPattern: 0x1234)
        var f1: OpaquePointer? = sentinel
        XCTAssertEqual(withNames(names, invalidAt: 1) { sdlstm_span_f1_create($0, 3, &f1) }, E_INVALID)
        XCTAssertTrue(mentions(lastError(), ["names\\[1\\].*UTF-8"]), lastError())
        XCTAssertEqual(f1, sentinel)
    }

    /// A FIFO is neither loaded (which would block until a writer came) nor replaced by a save.
    func testFIFOsAreRefused() throws {
        let fifo = "\(dir)/pipe.h5"
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var status = SDLSTM_OK, message = ""
        Thread.detachNewThread {
            var out: OpaquePointer?
            status = sdlstm_load(fifo, &out)
            message = lastError()
            done.signal()
        }
        if done.wait(timeout: .now() + 10) == .timedOut {
            // Unblock the load (it waits in open for a writer) so the test can end.
            close(open(fifo, O_WRONLY | O_NONBLOCK))
            done.wait()
            XCTFail("sdlstm_load on a FIFO blocked")
        }
        XCTAssertEqual(status, SDLSTM_E_IO)
        XCTAssertTrue(mentions(message, ["pipe.h5.*regular file"]), message)

        let m = makeModel(smallConfig())
        defer { sdlstm_model_free(m) }
        XCTAssertEqual(sdlstm_save(m, fifo, 0), SDLSTM_E_IO)
        XCTAssertTrue(mentions(lastError(), ["pipe.h5.*regular file"]), lastError())
        var st = stat()
        XCTAssertEqual(lstat(fifo, &st), 0)
        XCTAssertEqual(st.st_mode & S_IFMT, S_IFIFO, "the save replaced the FIFO")
        XCTAssertEqual(dirEntries(dir), ["pipe.h5"])
        XCTAssertEqual(sdlstm_save(m, dir, 0), SDLSTM_E_IO, "a directory is not replaced either")
    }

    func testEpochBeyondTheCounterLimitIsInvalid() {
        let m = makeModel(smallConfig())
        defer { sdlstm_model_free(m) }
        XCTAssertEqual(sdlstm_set_epoch(m, Int64.max), E_INVALID)
        XCTAssertTrue(mentions(lastError(), ["epoch.*2\\^53"]), lastError())
        XCTAssertEqual(progress(m).epoch, 0)
        XCTAssertEqual(sdlstm_set_epoch(m, 1 << 53), OK, lastError())
    }
}

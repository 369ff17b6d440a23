import SDLSTMCore
import CSDLSTM

// Structs that cross the ABI begin with `size_t struct_size`, so that they can grow at the end
// (docs/ABI.md). The library reads and writes no byte past the caller's struct_size: a program
// built against an older header passes a smaller struct, whose missing fields take their defaults;
// one built against a newer header passes a larger one, whose extra fields this library ignores.

/// A header struct that carries its size, with the size it had in the first release that promised
/// growth (0.2.0). These numbers are frozen: a struct only ever grows past them.
protocol SizedStruct {
    static var firstReleasedSize: Int { get }
    var struct_size: Int { get set }
}

extension sdlstm_config: SizedStruct { static var firstReleasedSize: Int { 72 } }
extension sdlstm_batch: SizedStruct { static var firstReleasedSize: Int { 80 } }
extension sdlstm_stats: SizedStruct { static var firstReleasedSize: Int { 40 } }
extension sdlstm_runtime_info: SizedStruct { static var firstReleasedSize: Int { 64 } }
extension sdlstm_span_scores: SizedStruct { static var firstReleasedSize: Int { 72 } }
extension sdlstm_decode_options: SizedStruct { static var firstReleasedSize: Int { 32 } }
extension sdlstm_bleu_options: SizedStruct { static var firstReleasedSize: Int { 16 } }
extension sdlstm_bleu_scores: SizedStruct { static var firstReleasedSize: Int { 80 } }
extension sdlstm_progress: SizedStruct { static var firstReleasedSize: Int { 40 } }
extension sdlstm_generate_options: SizedStruct { static var firstReleasedSize: Int { 32 } }

/// The caller's struct_size (read alone: the field every version has), at least the first release's.
func structSize<T: SizedStruct>(of p: UnsafePointer<T>, _ name: String) throws(SDLSTMError) -> Int {
    let size = UnsafeRawPointer(p).load(as: Int.self)
    guard size >= T.firstReleasedSize else {
        throw .invalid("\(name)->struct_size is \(size), expected at least \(T.firstReleasedSize)")
    }
    return size
}

func structSize<T: SizedStruct>(of p: UnsafeMutablePointer<T>, _ name: String) throws(SDLSTMError) -> Int {
    try structSize(of: UnsafePointer(p), name)
}

/// The caller's struct, read no further than its struct_size; the fields past it keep `defaults`.
func copyIn<T: SizedStruct>(_ p: UnsafePointer<T>?, _ name: String, defaults: T) throws(SDLSTMError) -> T {
    let p = try unwrap(p, name)
    let size = try structSize(of: p, name)
    var value = defaults
    withUnsafeMutableBytes(of: &value) {
        $0.baseAddress!.copyMemory(from: UnsafeRawPointer(p), byteCount: min(size, MemoryLayout<T>.size))
    }
    value.struct_size = MemoryLayout<T>.size
    return value
}

/// Writes `value` into the caller's struct, no further than its struct_size, and leaves that size
/// as the caller set it.
func copyOut<T: SizedStruct>(_ value: T, to out: UnsafeMutablePointer<T>, structSize: Int) {
    var value = value
    value.struct_size = structSize
    withUnsafeBytes(of: value) {
        UnsafeMutableRawPointer(out).copyMemory(from: $0.baseAddress!, byteCount: min(structSize, $0.count))
    }
}

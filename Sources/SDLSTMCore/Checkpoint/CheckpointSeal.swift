import Glibc

/// The first 512 bytes of a checkpoint, an HDF5 user block (HDF5, h5py and h5dump skip it): a magic,
/// the format version, the file's length and a CRC-32 of everything after the block. A loader checks
/// them from the raw bytes before HDF5 parses anything, so no damaged byte reaches HDF5's parser:
/// HDF5's own checksums (object headers, Fletcher-32 per chunk) are the second line, for files
/// whose seal was recomputed after an edit (`tools/sdlstm_checkpoint.py seal`).
///
///     0   16  magic "\x89sdlstm-ckpt\r\n\x1a\n" (the \r\n and \x1a catch text-mode copies)
///     16   4  format version, uint32 LE
///     20   4  header size, uint32 LE (512: where HDF5's superblock starts)
///     24   8  file length in bytes, uint64 LE
///     32   4  CRC-32 (zlib's, as Python's zlib.crc32) of bytes 512 ..< length, uint32 LE
///     36   4  CRC-32 of bytes 0 ..< 36, uint32 LE
///     40  ..  a line of text saying what the file is, then zeros to 512
enum CheckpointSeal {
    static let size = 512
    static let magic: [UInt8] = [0x89] + Array("sdlstm-ckpt".utf8) + [0x0d, 0x0a, 0x1a, 0x0a]
    static let hdf5Signature: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]
    static let note = Array("sdlstm checkpoint; an HDF5 file follows at byte 512 (docs/CHECKPOINT.md)\n".utf8)

    /// The header of a file of `length` bytes whose bytes from 512 on have CRC-32 `crc`.
    static func header(version: UInt32, length: UInt64, crc: UInt32) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: size)
        h.replaceSubrange(0..<16, with: magic)
        put(&h, 16, UInt64(version), 4)
        put(&h, 20, UInt64(size), 4)
        put(&h, 24, length, 8)
        put(&h, 32, UInt64(crc), 4)
        put(&h, 36, UInt64(CRC32.of(h[0..<36])), 4)
        h.replaceSubrange(40..<(40 + note.count), with: note)
        return h
    }

    /// Writes the header of the open file `fd` (whose first 512 bytes HDF5 reserved), from its bytes.
    static func seal(fd: Int32, _ what: String) throws(SDLSTMError) {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .io("\(what): cannot stat: \(errnoText())") }
        let length = Int(st.st_size)
        guard length > size else { throw .io("\(what): HDF5 wrote no file after the user block") }
        let crc = try checksum(fd: fd, from: size, to: length, what)
        let h = header(version: UInt32(Checkpoint.formatVersion), length: UInt64(length), crc: crc)
        guard h.withUnsafeBytes({ pwrite(fd, $0.baseAddress, size, 0) }) == size else {
            throw .io("\(what): cannot write the checkpoint header: \(errnoText())")
        }
    }

    /// Checks the header of the open file `fd` of `length` bytes against its contents; E_FORMAT
    /// saying what is wrong. Reads the file once, 1 MiB at a time.
    static func verify(fd: Int32, length: Int) throws(SDLSTMError) {
        var h = [UInt8](repeating: 0, count: size)
        let n = min(length, size)
        guard h.withUnsafeMutableBytes({ pread(fd, $0.baseAddress, n, 0) }) == n else { throw .io("cannot read: \(errnoText())") }
        if length >= 8 && Array(h[0..<8]) == hdf5Signature {
            throw .format("an HDF5 file without the sdlstm checkpoint header: a format-1 checkpoint (sdlstm 0.2 and earlier), "
                          + "which this library refuses unread (its variable-length strings are what a damaged file crashes), "
                          + "or not an sdlstm checkpoint; this library reads format \(Checkpoint.formatVersion)")
        }
        guard length >= 16, Array(h[0..<16]) == magic else { throw .format("not an sdlstm checkpoint (no checkpoint header)") }
        guard length >= size else { throw .format("checkpoint header: truncated (\(length) bytes)") }
        guard get(h, 36, 4) == UInt64(CRC32.of(h[0..<36])) else { throw .format("checkpoint header: damaged (its CRC-32 does not match)") }
        let version = get(h, 16, 4)
        guard version == UInt64(Checkpoint.formatVersion) else {
            throw .format("checkpoint header: format version \(version); this library reads format \(Checkpoint.formatVersion)")
        }
        let declared = get(h, 24, 8)
        guard declared == UInt64(length) else {
            throw .format("checkpoint header: the file should have \(declared) bytes but has \(length) (truncated or appended to)")
        }
        let crc = try checksum(fd: fd, from: size, to: length, "file")
        guard h == header(version: UInt32(version), length: declared, crc: crc) else {
            throw .format(get(h, 32, 4) == UInt64(crc) ? "checkpoint header: damaged"
                          : "checksum mismatch: the file is damaged (CRC-32 of bytes 512..<\(length) is \(hex(crc)), the header says \(hex(UInt32(get(h, 32, 4)))))")
        }
    }

    private static func checksum(fd: Int32, from: Int, to end: Int, _ what: String) throws(SDLSTMError) -> UInt32 {
        var crc = CRC32()
        var buf = [UInt8](repeating: 0, count: 1 << 20)
        var at = from
        while at < end {
            let want = min(buf.count, end - at)
            let got = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, want, off_t(at)) }
            guard got > 0 else { throw .io("\(what): cannot read at byte \(at): \(got < 0 ? errnoText() : "end of file")") }
            buf.withUnsafeBufferPointer { crc.update(UnsafeBufferPointer(rebasing: $0[0..<got])) }
            at += got
        }
        return crc.value
    }

    private static func put(_ h: inout [UInt8], _ at: Int, _ v: UInt64, _ bytes: Int) {
        for i in 0..<bytes { h[at + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) }
    }

    private static func get(_ h: [UInt8], _ at: Int, _ bytes: Int) -> UInt64 {
        (0..<bytes).reduce(0) { $0 | UInt64(h[at + $1]) << (8 * $1) }
    }

    private static func hex(_ v: UInt32) -> String {
        let s = String(v, radix: 16)
        return "0x" + String(repeating: "0", count: 8 - s.count) + s
    }
}

/// CRC-32 with zlib's polynomial (reflected 0xEDB88320), slicing by 8: Python's zlib.crc32 checks it.
struct CRC32 {
    private(set) var state: UInt32 = 0xFFFF_FFFF
    var value: UInt32 { ~state }

    static func of(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        var c = CRC32()
        bytes.withUnsafeBufferPointer { c.update($0) }
        return c.value
    }

    private static let tables: [UInt32] = {
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
            t[i] = c
        }
        for i in 0..<256 {
            for k in 1..<8 { t[k * 256 + i] = (t[(k - 1) * 256 + i] >> 8) ^ t[Int(t[(k - 1) * 256 + i] & 0xFF)] }
        }
        return t
    }()

    mutating func update(_ bytes: UnsafeBufferPointer<UInt8>) {
        var c = state
        var i = 0
        let n = bytes.count
        Self.tables.withUnsafeBufferPointer { t in
            while i + 8 <= n {
                let lo = c ^ (UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24)
                let hi = UInt32(bytes[i + 4]) | UInt32(bytes[i + 5]) << 8 | UInt32(bytes[i + 6]) << 16 | UInt32(bytes[i + 7]) << 24
                c = t[7 * 256 + Int(lo & 0xFF)] ^ t[6 * 256 + Int((lo >> 8) & 0xFF)] ^ t[5 * 256 + Int((lo >> 16) & 0xFF)]
                    ^ t[4 * 256 + Int(lo >> 24)] ^ t[3 * 256 + Int(hi & 0xFF)] ^ t[2 * 256 + Int((hi >> 8) & 0xFF)]
                    ^ t[256 + Int((hi >> 16) & 0xFF)] ^ t[Int(hi >> 24)]
                i += 8
            }
            while i < n {
                c = t[Int((c ^ UInt32(bytes[i])) & 0xFF)] ^ (c >> 8)
                i += 1
            }
        }
        state = c
    }
}

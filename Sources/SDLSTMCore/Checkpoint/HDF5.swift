import CHDF5
import Glibc

/// A thin layer over the HDF5 C API for checkpoints: every call checked, every identifier closed on
/// every path (`defer` right after each open), every failure an `SDLSTMError` naming the object.
///
/// Identifiers are plain `hid_t` values closed by `defer`, never class wrappers: Swift may end an
/// object's lifetime after its last use, which would close an identifier still being passed to C.
enum H5 {
    static let defaultPL = hid_t(0)  // H5P_DEFAULT
    static let all = hid_t(0)        // H5S_ALL

    /// Serialises checkpoint calls: Debian's HDF5 is built thread-safe, other builds need not be.
    nonisolated(unsafe) private static let lock: UnsafeMutablePointer<pthread_mutex_t> = {
        let m = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(m, nil)
        return m
    }()

    /// Runs body holding the lock, with HDF5's own error printing switched off (and restored after).
    static func session<R>(_ body: () throws(SDLSTMError) -> R) throws(SDLSTMError) -> R {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        guard H5open() >= 0 else { throw .io("the HDF5 library could not be initialised") }
        let quiet = sdl_h5_quiet_begin()
        defer {
            H5Eclear2(hid_t(0))
            sdl_h5_quiet_end(quiet)
        }
        return try body()
    }

    /// The innermost message on HDF5's error stack, as " (message)", or "".
    static func reason() -> String {
        var buf = [CChar](repeating: 0, count: 512)
        sdl_h5_last_error(&buf)
        let s = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return s.isEmpty ? "" : " (\(s))"
    }

    /// Files, groups, datasets and attributes open in this process: equal before and after a
    /// checkpoint call, or the call leaked one.
    public static var openIdentifiers: Int { Int(sdl_h5_open_ids()) }

    // MARK: Writing

    /// The most links or attributes an object holds in its header (HDF5's limit for compact storage).
    static let maxCompact = 65535

    /// Properties of every group, the root's (`fcpl`) included: no modification times, so equal
    /// models give byte-identical files; links and attributes in the object header, which HDF5
    /// checksums, never in its dense storage (whose error paths in HDF5 1.10 free garbage pointers
    /// on a damaged heap).
    static func setGroupProperties(_ plist: hid_t) -> Bool {
        H5Pset_obj_track_times(plist, false) >= 0 && H5Pset_link_phase_change(plist, UInt32(maxCompact), 0) >= 0
            && H5Pset_attr_phase_change(plist, UInt32(maxCompact), 0) >= 0
    }

    static func createGroup(_ loc: hid_t, _ name: String) throws(SDLSTMError) -> hid_t {
        let gcpl = H5Pcreate(sdl_h5p_group_create())
        defer { H5Pclose(gcpl) }
        guard gcpl >= 0, setGroupProperties(gcpl) else { throw .io("group \(name): HDF5 property list failed\(reason())") }
        let g = H5Gcreate2(loc, name, defaultPL, gcpl, defaultPL)
        guard g >= 0 else { throw .io("group \(name): could not be created\(reason())") }
        return g
    }

    /// Writes a float32 dataset of the given shape (row-major values).
    static func writeFloats(_ loc: hid_t, _ name: String, shape: [Int], _ values: [Float]) throws(SDLSTMError) {
        try writeDataset(loc, name, shape: shape, fileType: sdl_h5t_ieee_f32le(), memType: sdl_h5t_native_float(), elementSize: 4) { d, t in
            values.withUnsafeBytes { H5Dwrite(d, t, all, all, defaultPL, $0.baseAddress) }
        }
    }

    static func writeUInt64s(_ loc: hid_t, _ name: String, _ values: [UInt64]) throws(SDLSTMError) {
        try writeDataset(loc, name, shape: [values.count], fileType: sdl_h5t_std_u64le(), memType: sdl_h5t_native_uint64(), elementSize: 8) { d, t in
            values.withUnsafeBytes { H5Dwrite(d, t, all, all, defaultPL, $0.baseAddress) }
        }
    }

    /// Writes a 1-D dataset of fixed-length UTF-8 strings, each NUL-padded to the longest one's bytes
    /// (h5py reads it as `bytes`, `.asstr()` as `str`). Fixed-length, never variable-length: those
    /// live in HDF5's global heap, which has no checksum and whose reader a damaged file crashes.
    static func writeStrings(_ loc: hid_t, _ name: String, _ values: [String]) throws(SDLSTMError) {
        let width = max(1, values.map(\.utf8.count).max() ?? 1)
        let (total, overflow) = values.count.multipliedReportingOverflow(by: width)
        guard !overflow else { throw .outOfMemory("string table \(name): \(values.count) strings of \(width) bytes") }
        var bytes = [UInt8](repeating: 0, count: total)
        for (i, v) in values.enumerated() {
            var at = i * width
            for b in v.utf8 { bytes[at] = b; at += 1 }
        }
        let type = try fixedStringType(width)
        defer { H5Tclose(type) }
        try writeDataset(loc, name, shape: [values.count], fileType: type, memType: type, elementSize: width) { d, t in
            bytes.withUnsafeBytes { H5Dwrite(d, t, all, all, defaultPL, $0.baseAddress) }
        }
    }

    /// The largest chunk the writer makes: a reader then never needs a bigger chunk buffer.
    static let chunkBytes = 1 << 22
    /// The largest chunk a reader accepts (h5py's automatic chunks are far smaller).
    static let maxChunkBytes = 1 << 24

    /// Chunks of at most `chunkBytes`, each whole in its trailing dimensions where they fit: row blocks.
    static func chunkShape(_ shape: [Int], elementSize: Int) -> [Int] {
        var chunk = shape
        var inner = elementSize
        for i in shape.indices.reversed() {
            chunk[i] = max(1, min(shape[i], chunkBytes / max(inner, 1)))
            inner = inner * chunk[i]
        }
        return chunk
    }

    /// Every dataset is chunked with a Fletcher-32 checksum per chunk, so a damaged value is an error,
    /// not a number; no fill value is written (every chunk is written whole).
    private static func writeDataset(_ loc: hid_t, _ name: String, shape: [Int], fileType: hid_t, memType: hid_t, elementSize: Int,
                                     _ write: (hid_t, hid_t) -> herr_t) throws(SDLSTMError) {
        guard !shape.isEmpty, shape.allSatisfy({ $0 > 0 }) else { throw .io("dataset \(name): shape \(shape) holds no values") }
        var dims = shape.map { hsize_t($0) }
        var chunk = chunkShape(shape, elementSize: elementSize).map { hsize_t($0) }
        let space = H5Screate_simple(Int32(dims.count), &dims, nil)
        defer { H5Sclose(space) }
        let dcpl = H5Pcreate(sdl_h5p_dataset_create())
        defer { H5Pclose(dcpl) }
        guard space >= 0, dcpl >= 0, H5Pset_obj_track_times(dcpl, false) >= 0, H5Pset_chunk(dcpl, Int32(chunk.count), &chunk) >= 0,
              H5Pset_fletcher32(dcpl) >= 0, H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) >= 0 else {
            throw .io("dataset \(name): HDF5 dataspace or property list failed\(reason())")
        }
        let d = H5Dcreate2(loc, name, fileType, space, defaultPL, dcpl, defaultPL)
        guard d >= 0 else { throw .io("dataset \(name): could not be created\(reason())") }
        defer { H5Dclose(d) }
        guard write(d, memType) >= 0 else { throw .io("dataset \(name): could not be written\(reason())") }
    }

    static func writeAttribute(_ obj: hid_t, _ name: String, _ value: Int64) throws(SDLSTMError) {
        var v = value
        try writeScalarAttribute(obj, name, fileType: sdl_h5t_std_i64le(), memType: sdl_h5t_native_int64(), &v)
    }

    static func writeAttribute(_ obj: hid_t, _ name: String, _ value: UInt64) throws(SDLSTMError) {
        var v = value
        try writeScalarAttribute(obj, name, fileType: sdl_h5t_std_u64le(), memType: sdl_h5t_native_uint64(), &v)
    }

    static func writeAttribute(_ obj: hid_t, _ name: String, _ value: Float) throws(SDLSTMError) {
        var v = value
        try writeScalarAttribute(obj, name, fileType: sdl_h5t_ieee_f32le(), memType: sdl_h5t_native_float(), &v)
    }

    /// A fixed-length UTF-8 string attribute, as long as the value (one NUL byte for ""): stored in
    /// the object header, which HDF5 checksums.
    static func writeAttribute(_ obj: hid_t, _ name: String, _ value: String) throws(SDLSTMError) {
        var bytes = Array(value.utf8)
        if bytes.isEmpty { bytes = [0] }
        let type = try fixedStringType(bytes.count)
        defer { H5Tclose(type) }
        let space = H5Screate(H5S_SCALAR)
        defer { H5Sclose(space) }
        guard space >= 0 else { throw .io("attribute \(name): HDF5 dataspace failed\(reason())") }
        let a = H5Acreate2(obj, name, type, space, defaultPL, defaultPL)
        guard a >= 0 else { throw .io("attribute \(name): could not be created\(reason())") }
        defer { H5Aclose(a) }
        guard bytes.withUnsafeBytes({ H5Awrite(a, type, $0.baseAddress) }) >= 0 else {
            throw .io("attribute \(name): could not be written\(reason())")
        }
    }

    private static func writeScalarAttribute<T>(_ obj: hid_t, _ name: String, fileType: hid_t, memType: hid_t,
                                                _ value: inout T) throws(SDLSTMError) {
        let space = H5Screate(H5S_SCALAR)
        defer { H5Sclose(space) }
        guard space >= 0 else { throw .io("attribute \(name): HDF5 dataspace failed\(reason())") }
        let a = H5Acreate2(obj, name, fileType, space, defaultPL, defaultPL)
        guard a >= 0 else { throw .io("attribute \(name): could not be created\(reason())") }
        defer { H5Aclose(a) }
        let rc = withUnsafeBytes(of: &value) { H5Awrite(a, memType, $0.baseAddress) }
        guard rc >= 0 else { throw .io("attribute \(name): could not be written\(reason())") }
    }

    /// A fixed-length, NUL-padded string type of `width` bytes; `cset` UTF-8 unless given. The caller closes it.
    private static func fixedStringType(_ width: Int, cset: H5T_cset_t = H5T_CSET_UTF8) throws(SDLSTMError) -> hid_t {
        let t = H5Tcopy(sdl_h5t_c_s1())
        guard t >= 0, H5Tset_size(t, width) >= 0, H5Tset_strpad(t, H5T_STR_NULLPAD) >= 0, H5Tset_cset(t, cset) >= 0 else {
            if t >= 0 { H5Tclose(t) }
            throw .io("HDF5 string type failed\(reason())")
        }
        return t
    }

    // MARK: Reading (every failure is .format, naming `what`)
    //
    // Nothing is allocated from a size the file declares until that size is checked against what the
    // file actually stores (`fileSize`, and each dataset's stored bytes): a small file cannot make a
    // load allocate much more than its own size.

    enum Kind { case dataset, group, other }

    /// Our names are at most 128 bytes; a longer member or attribute name is refused unread.
    static let maxNameBytes = 1024
    /// A string attribute is at most a metadata value.
    static let maxAttributeStringBytes = Attachments.maxMetadataBytes

    /// Names of a group's links, in name order.
    static func members(_ group: hid_t, _ what: String, fileSize: Int) throws(SDLSTMError) -> [String] {
        var info = H5G_info_t()
        guard H5Gget_info(group, &info) >= 0 else { throw .format("\(what): cannot list its members\(reason())") }
        guard info.storage_type == H5G_STORAGE_TYPE_COMPACT else {
            throw .format("\(what): links kept outside the object header (HDF5 dense or symbol-table storage; not read)")
        }
        // Each link takes several bytes of the file.
        guard info.nlinks <= hsize_t(fileSize / 4) else { throw .format("\(what): claims \(info.nlinks) members, more than the file can hold") }
        var names: [String] = []
        for i in 0..<info.nlinks {
            let n = H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, nil, 0, defaultPL)
            guard n >= 0 else { throw .format("\(what): cannot read member \(i)\(reason())") }
            guard n <= maxNameBytes else { throw .format("\(what): member \(i) has a name of \(n) bytes, at most \(maxNameBytes)") }
            var buf = [CChar](repeating: 0, count: Int(n) + 1)
            guard H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, &buf, Int(n) + 1, defaultPL) >= 0 else {
                throw .format("\(what): cannot read member \(i)\(reason())")
            }
            names.append(string(buf))
        }
        return names
    }

    /// What a member is; only hard links count (a soft or external link could point anywhere).
    static func kind(_ loc: hid_t, _ name: String, _ what: String) throws(SDLSTMError) -> Kind {
        guard sdl_h5_link_type(loc, name) == Int32(H5L_TYPE_HARD.rawValue) else {
            throw .format("\(what): is not a plain (hard-linked) object")
        }
        let o = H5Oopen(loc, name, defaultPL)
        guard o >= 0 else { throw .format("\(what): cannot be opened\(reason())") }
        defer { H5Oclose(o) }
        switch H5Iget_type(o) {
        case H5I_DATASET: return .dataset
        case H5I_GROUP: return .group
        default: return .other
        }
    }

    static func openGroup(_ loc: hid_t, _ name: String, _ what: String) throws(SDLSTMError) -> hid_t {
        let g = H5Gopen2(loc, name, defaultPL)
        guard g >= 0 else { throw .format("\(what): cannot be opened as a group\(reason())") }
        return g
    }

    /// Names of an object's attributes.
    static func attributeNames(_ obj: hid_t, _ what: String) throws(SDLSTMError) -> [String] {
        switch sdl_h5_attributes_dense(obj) {
        case 0: break
        case 1: throw .format("\(what): attributes kept outside the object header (HDF5 dense storage; not read)")
        default: throw .format("\(what): cannot read its header\(reason())")
        }
        var names: [String] = []
        var idx: hsize_t = 0
        let rc = withUnsafeMutablePointer(to: &names) { p in
            H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, &idx, { _, name, _, ctx in
                guard let name, let ctx, strnlen(name, H5.maxNameBytes + 1) <= H5.maxNameBytes else { return -1 }
                ctx.assumingMemoryBound(to: [String].self).pointee.append(String(cString: name))
                return 0
            }, p)
        }
        guard rc >= 0 else { throw .format("\(what): cannot list its attributes (or one has a name over \(maxNameBytes) bytes)\(reason())") }
        return names
    }

    /// The element types checkpoints hold.
    enum Element: Equatable {
        case float32, uint64
        /// Fixed-length strings of any width (variable-length ones are refused unread).
        case string
    }

    /// A dataset's type and shape.
    struct DatasetInfo {
        var shape: [Int]
        var typeClass: H5T_class_t
        var typeSize: Int
        var signed: Bool
        var isVariableString: Bool
        var bigEndian: Bool
        var cset: H5T_cset_t
        var count: Int { shape.reduce(1, *) }
    }

    static func datasetInfo(_ d: hid_t, _ what: String) throws(SDLSTMError) -> DatasetInfo {
        let space = H5Dget_space(d)
        defer { if space >= 0 { H5Sclose(space) } }
        let type = H5Dget_type(d)
        defer { if type >= 0 { H5Tclose(type) } }
        guard space >= 0, type >= 0 else { throw .format("\(what): cannot read its type or shape\(reason())") }
        return try info(space: space, type: type, what)
    }

    /// Shape (each dimension below 2^31, their product too) and type.
    private static func info(space: hid_t, type: hid_t, _ what: String) throws(SDLSTMError) -> DatasetInfo {
        let rank = H5Sget_simple_extent_ndims(space)
        guard rank >= 0, rank <= 32 else { throw .format("\(what): unreadable dataspace\(reason())") }
        var dims = [hsize_t](repeating: 0, count: max(Int(rank), 1))
        if rank > 0 { guard H5Sget_simple_extent_dims(space, &dims, nil) >= 0 else { throw .format("\(what): unreadable dataspace\(reason())") } }
        var shape: [Int] = []
        var count = 1
        for d in dims.prefix(Int(rank)) {
            guard d <= hsize_t(Int32.max) else { throw .format("\(what): dimension \(d) is too large") }
            shape.append(Int(d))
            count = count.multipliedReportingOverflow(by: Int(d)).partialValue
            guard count <= Int(Int32.max) else { throw .format("\(what): shape \(shape.map { $0 }) holds more than 2^31 values") }
        }
        let cls = H5Tget_class(type)
        let size = H5Tget_size(type)
        guard size > 0 else { throw .format("\(what): unreadable type\(reason())") }
        let isVar = cls == H5T_STRING && H5Tis_variable_str(type) > 0
        return DatasetInfo(shape: shape, typeClass: cls, typeSize: size, signed: cls == H5T_INTEGER && H5Tget_sign(type) == H5T_SGN_2,
                           isVariableString: isVar, bigEndian: (cls == H5T_FLOAT || cls == H5T_INTEGER) && H5Tget_order(type) == H5T_ORDER_BE, cset: cls == H5T_STRING ? H5Tget_cset(type) : H5T_CSET_ASCII)
    }

    /// Opens dataset `name` and checks, before anything is read or allocated: its type is `element`
    /// (float32 and uint64 little-endian IEEE/two's complement exactly), its storage is chunked with
    /// Fletcher-32 as the only filter (no compression, so what is stored bounds what is read), chunks
    /// no larger than `maxChunkBytes` nor than the dataset, every chunk stored, and the stored bytes
    /// at least the declared ones and at most the file. The caller closes the dataset.
    static func openChecked(_ loc: hid_t, _ name: String, _ element: Element, _ what: String,
                            fileSize: Int) throws(SDLSTMError) -> (id: hid_t, info: DatasetInfo) {
        let d = H5Dopen2(loc, name, defaultPL)
        guard d >= 0 else { throw .format("\(what): cannot be opened\(reason())") }
        do {
            return (d, try check(d, element, what, fileSize: fileSize))
        } catch {
            H5Dclose(d)
            throw error
        }
    }

    private static func check(_ d: hid_t, _ element: Element, _ what: String, fileSize: Int) throws(SDLSTMError) -> DatasetInfo {
        let space = H5Dget_space(d)
        defer { if space >= 0 { H5Sclose(space) } }
        let type = H5Dget_type(d)
        defer { if type >= 0 { H5Tclose(type) } }
        guard space >= 0, type >= 0 else { throw .format("\(what): cannot read its type or shape\(reason())") }
        let info = try info(space: space, type: type, what)
        switch element {
        case .float32:
            guard H5Tequal(type, sdl_h5t_ieee_f32le()) > 0 else { throw .format("\(what): type is \(describe(info)), expected float32") }
        case .uint64:
            guard H5Tequal(type, sdl_h5t_std_u64le()) > 0 else { throw .format("\(what): type is \(describe(info)), expected uint64") }
        case .string:
            try checkString(info, what)
        }
        guard !info.shape.isEmpty, info.count > 0 else { throw .format("\(what): shape \(info.shape) holds no values") }
        let (declared, overflow) = info.count.multipliedReportingOverflow(by: info.typeSize)
        guard !overflow, declared <= fileSize else {
            throw .format("\(what): shape \(info.shape) of \(info.typeSize)-byte values is larger than the whole \(fileSize)-byte file")
        }

        let dcpl = H5Dget_create_plist(d)
        guard dcpl >= 0 else { throw .format("\(what): cannot read its storage properties\(reason())") }
        defer { H5Pclose(dcpl) }
        guard H5Pget_layout(dcpl) == H5D_CHUNKED else {
            throw .format("\(what): not chunked with Fletcher-32 checksums (checkpoint format \(Checkpoint.formatVersion) stores every dataset so)")
        }
        let nfilters = H5Pget_nfilters(dcpl)
        var flags: UInt32 = 0, nvalues = 0, config: UInt32 = 0
        guard nfilters == 1, H5Pget_filter2(dcpl, 0, &flags, &nvalues, nil, 0, nil, &config) == H5Z_FILTER_FLETCHER32 else {
            throw .format("\(what): its filters are not exactly Fletcher-32 (\(nfilters) filters; compression is not allowed)")
        }
        var chunk = [hsize_t](repeating: 0, count: info.shape.count)
        guard H5Pget_chunk(dcpl, Int32(chunk.count), &chunk) == Int32(chunk.count) else { throw .format("\(what): unreadable chunk shape\(reason())") }
        var chunkBytes = info.typeSize
        var chunks = 1
        for (c, n) in zip(chunk, info.shape) {
            guard c >= 1, c <= hsize_t(n) else { throw .format("\(what): chunk shape \(chunk) does not fit shape \(info.shape)") }
            chunkBytes *= Int(c)
            chunks *= (n + Int(c) - 1) / Int(c)
        }
        guard chunkBytes <= maxChunkBytes else { throw .format("\(what): chunks of \(chunkBytes) bytes, at most \(maxChunkBytes)") }
        var stored: hsize_t = 0
        guard H5Dget_num_chunks(d, space, &stored) >= 0 else { throw .format("\(what): cannot count its chunks\(reason())") }
        guard stored == hsize_t(chunks) else { throw .format("\(what): \(stored) of its \(chunks) chunks are stored") }
        let bytes = H5Dget_storage_size(d)
        guard bytes >= hsize_t(declared), bytes <= hsize_t(fileSize) else {
            throw .format("\(what): \(bytes) bytes stored for \(declared) declared (in a \(fileSize)-byte file)")
        }
        return info
    }

    private static func checkString(_ info: DatasetInfo, _ what: String) throws(SDLSTMError) {
        guard info.typeClass == H5T_STRING else { throw .format("\(what): type is \(describe(info)), expected strings") }
        guard !info.isVariableString else {
            throw .format("\(what): variable-length strings (checkpoint format \(Checkpoint.formatVersion) stores fixed-length ones; not read)")
        }
        guard info.cset == H5T_CSET_UTF8 || info.cset == H5T_CSET_ASCII else { throw .format("\(what): unknown character set") }
    }

    /// Reads a float32 dataset (of exactly `shape` when given); every value must be finite.
    static func readFloats(_ loc: hid_t, _ name: String, shape expected: [Int]? = nil, _ what: String,
                           fileSize: Int) throws(SDLSTMError) -> (shape: [Int], values: [Float]) {
        let (d, info) = try openChecked(loc, name, .float32, what, fileSize: fileSize)
        defer { H5Dclose(d) }
        if let expected, info.shape != expected {
            throw .format("\(what): shape \(info.shape), expected \(expected)")
        }
        var values = [Float](repeating: 0, count: info.count)
        let rc = values.withUnsafeMutableBytes { H5Dread(d, sdl_h5t_native_float(), all, all, defaultPL, $0.baseAddress) }
        guard rc >= 0 else { throw .format("\(what): data cannot be read (damaged file?)\(reason())") }
        if let bad = values.firstIndex(where: { !$0.isFinite }) {
            throw .format("\(what): value \(values[bad]) at flat index \(bad) is not finite")
        }
        return (info.shape, values)
    }

    static func readUInt64s(_ loc: hid_t, _ name: String, count: Int, _ what: String, fileSize: Int) throws(SDLSTMError) -> [UInt64] {
        let (d, info) = try openChecked(loc, name, .uint64, what, fileSize: fileSize)
        defer { H5Dclose(d) }
        guard info.shape == [count] else { throw .format("\(what): shape \(info.shape), expected [\(count)]") }
        var values = [UInt64](repeating: 0, count: count)
        let rc = values.withUnsafeMutableBytes { H5Dread(d, sdl_h5t_native_uint64(), all, all, defaultPL, $0.baseAddress) }
        guard rc >= 0 else { throw .format("\(what): data cannot be read (damaged file?)\(reason())") }
        return values
    }

    /// Reads a 1-D dataset of fixed-length strings; each must be valid UTF-8.
    static func readStrings(_ loc: hid_t, _ name: String, _ what: String, fileSize: Int) throws(SDLSTMError) -> [String] {
        let (d, info) = try openChecked(loc, name, .string, what, fileSize: fileSize)
        defer { H5Dclose(d) }
        guard info.shape.count == 1 else { throw .format("\(what): shape \(info.shape), expected one dimension") }
        return try readFixedStrings(count: info.shape[0], width: info.typeSize, cset: info.cset, what) { mem, buf in
            H5Dread(d, mem, all, all, defaultPL, buf)
        }
    }

    /// Reads `count` fixed-length strings of `width` bytes with `read(memType, buffer)`; the caller
    /// has checked count × width against the file.
    private static func readFixedStrings(count: Int, width: Int, cset: H5T_cset_t, _ what: String,
                                         _ read: (hid_t, UnsafeMutableRawPointer?) -> herr_t) throws(SDLSTMError) -> [String] {
        // HDF5 converts between strings of one character set only: the memory type takes the file's.
        let mem: hid_t
        do { mem = try fixedStringType(width, cset: cset) } catch { throw .format("\(what): HDF5 string type failed") }
        defer { H5Tclose(mem) }
        var buf = [UInt8](repeating: 0, count: count * width)
        let rc = buf.withUnsafeMutableBytes { read(mem, $0.baseAddress) }
        guard rc >= 0 else { throw .format("\(what): strings cannot be read (damaged file?)\(reason())") }
        var out: [String] = []
        out.reserveCapacity(count)
        for i in 0..<count {
            let field = buf[(i * width)..<((i + 1) * width)]
            let bytes = field.prefix { $0 != 0 }
            guard let s = String(validating: bytes, as: UTF8.self) else {
                throw .format("\(what): string \(i) is not valid UTF-8")
            }
            out.append(s)
        }
        return out
    }

    /// A scalar attribute: an integer (any width), a float, or a string.
    enum Value {
        case int(Int64), uint(UInt64), float(Double), string(String)
    }

    static func readAttribute(_ obj: hid_t, _ name: String, _ what: String) throws(SDLSTMError) -> Value {
        let a = H5Aopen(obj, name, defaultPL)
        guard a >= 0 else { throw .format("\(what): cannot be opened\(reason())") }
        defer { H5Aclose(a) }
        let space = H5Aget_space(a)
        defer { if space >= 0 { H5Sclose(space) } }
        let type = H5Aget_type(a)
        defer { if type >= 0 { H5Tclose(type) } }
        guard space >= 0, type >= 0 else { throw .format("\(what): cannot read its type or shape\(reason())") }
        let info = try info(space: space, type: type, what)
        guard info.count == 1 else { throw .format("\(what): shape \(info.shape), expected a scalar") }
        switch info.typeClass {
        case H5T_INTEGER where info.typeSize <= 8 && info.signed:
            var v: Int64 = 0
            guard H5Aread(a, sdl_h5t_native_int64(), &v) >= 0 else { throw .format("\(what): cannot be read\(reason())") }
            return .int(v)
        case H5T_INTEGER where info.typeSize <= 8:
            var v: UInt64 = 0
            guard H5Aread(a, sdl_h5t_native_uint64(), &v) >= 0 else { throw .format("\(what): cannot be read\(reason())") }
            return .uint(v)
        case H5T_FLOAT:
            var v: Float = 0
            guard info.typeSize == 4, H5Aread(a, sdl_h5t_native_float(), &v) >= 0 else {
                throw .format("\(what): type is \(describe(info)), expected float32")
            }
            return .float(Double(v))
        case H5T_STRING:
            try checkString(info, what)
            guard info.typeSize <= maxAttributeStringBytes else {
                throw .format("\(what): a string of \(info.typeSize) bytes, at most \(maxAttributeStringBytes)")
            }
            let s = try readFixedStrings(count: 1, width: info.typeSize, cset: info.cset, what) { mem, buf in H5Aread(a, mem, buf) }
            return .string(s[0])
        default:
            throw .format("\(what): type is \(describe(info)), expected a number or a string")
        }
    }

    static func describe(_ info: DatasetInfo) -> String {
        switch info.typeClass {
        case H5T_FLOAT: return "float\(info.typeSize * 8)\(info.bigEndian ? " big-endian" : "")"
        case H5T_INTEGER: return "\(info.signed ? "int" : "uint")\(info.typeSize * 8)\(info.bigEndian ? " big-endian" : "")"
        case H5T_STRING: return info.isVariableString ? "variable-length string" : "string"
        default: return "HDF5 class \(info.typeClass.rawValue)"
        }
    }

    static func string(_ buf: [CChar]) -> String {
        String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

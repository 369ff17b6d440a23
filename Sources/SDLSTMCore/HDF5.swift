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

    /// Creates a group without modification times, so equal models give byte-identical files.
    static func createGroup(_ loc: hid_t, _ name: String) throws(SDLSTMError) -> hid_t {
        let gcpl = H5Pcreate(sdl_h5p_group_create())
        defer { H5Pclose(gcpl) }
        guard gcpl >= 0, H5Pset_obj_track_times(gcpl, false) >= 0 else { throw .io("group \(name): HDF5 property list failed\(reason())") }
        let g = H5Gcreate2(loc, name, defaultPL, gcpl, defaultPL)
        guard g >= 0 else { throw .io("group \(name): could not be created\(reason())") }
        return g
    }

    /// Writes a float32 dataset of the given shape (row-major values).
    static func writeFloats(_ loc: hid_t, _ name: String, shape: [Int], _ values: [Float]) throws(SDLSTMError) {
        try writeDataset(loc, name, shape: shape, fileType: sdl_h5t_ieee_f32le(), memType: sdl_h5t_native_float()) { d, t in
            values.withUnsafeBytes { H5Dwrite(d, t, all, all, defaultPL, $0.baseAddress) }
        }
    }

    static func writeUInt64s(_ loc: hid_t, _ name: String, _ values: [UInt64]) throws(SDLSTMError) {
        try writeDataset(loc, name, shape: [values.count], fileType: sdl_h5t_std_u64le(), memType: sdl_h5t_native_uint64()) { d, t in
            values.withUnsafeBytes { H5Dwrite(d, t, all, all, defaultPL, $0.baseAddress) }
        }
    }

    /// Writes a 1-D dataset of variable-length UTF-8 strings (what h5py reads as `str`).
    static func writeStrings(_ loc: hid_t, _ name: String, _ values: [String]) throws(SDLSTMError) {
        let type = try stringType()
        defer { H5Tclose(type) }
        let copies = values.map { strdup($0) }
        defer { for p in copies { free(p) } }
        guard !copies.contains(where: { $0 == nil }) else { throw .outOfMemory("string table \(name): out of memory") }
        try writeDataset(loc, name, shape: [values.count], fileType: type, memType: type) { d, t in
            copies.withUnsafeBufferPointer { H5Dwrite(d, t, all, all, defaultPL, $0.baseAddress) }
        }
    }

    private static func writeDataset(_ loc: hid_t, _ name: String, shape: [Int], fileType: hid_t, memType: hid_t,
                                     _ write: (hid_t, hid_t) -> herr_t) throws(SDLSTMError) {
        var dims = shape.map { hsize_t($0) }
        let space = H5Screate_simple(Int32(dims.count), &dims, nil)
        defer { H5Sclose(space) }
        let dcpl = H5Pcreate(sdl_h5p_dataset_create())
        defer { H5Pclose(dcpl) }
        guard space >= 0, dcpl >= 0, H5Pset_obj_track_times(dcpl, false) >= 0 else {
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

    static func writeAttribute(_ obj: hid_t, _ name: String, _ value: String) throws(SDLSTMError) {
        let type = try stringType()
        defer { H5Tclose(type) }
        guard let copy = strdup(value) else { throw .outOfMemory("attribute \(name): out of memory") }
        defer { free(copy) }
        var p: UnsafePointer<CChar>? = UnsafePointer(copy)
        try writeScalarAttribute(obj, name, fileType: type, memType: type, &p)
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

    /// A variable-length UTF-8 string type; the caller closes it.
    private static func stringType() throws(SDLSTMError) -> hid_t {
        let t = H5Tcopy(sdl_h5t_c_s1())
        guard t >= 0, H5Tset_size(t, sdl_h5t_variable()) >= 0, H5Tset_cset(t, H5T_CSET_UTF8) >= 0 else {
            if t >= 0 { H5Tclose(t) }
            throw .io("HDF5 string type failed\(reason())")
        }
        return t
    }

    // MARK: Reading (every failure is .format, naming `what`)

    enum Kind { case dataset, group, other }

    /// Names of a group's links, in name order.
    static func members(_ group: hid_t, _ what: String) throws(SDLSTMError) -> [String] {
        var info = H5G_info_t()
        guard H5Gget_info(group, &info) >= 0 else { throw .format("\(what): cannot list its members\(reason())") }
        var names: [String] = []
        for i in 0..<info.nlinks {
            let n = H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, nil, 0, defaultPL)
            guard n >= 0 else { throw .format("\(what): cannot read member \(i)\(reason())") }
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
        var names: [String] = []
        var idx: hsize_t = 0
        let rc = withUnsafeMutablePointer(to: &names) { p in
            H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, &idx, { _, name, _, ctx in
                guard let name, let ctx else { return -1 }
                ctx.assumingMemoryBound(to: [String].self).pointee.append(String(cString: name))
                return 0
            }, p)
        }
        guard rc >= 0 else { throw .format("\(what): cannot list its attributes\(reason())") }
        return names
    }

    /// A dataset's shape and element type, checked against what the caller expects.
    struct DatasetInfo {
        var shape: [Int]
        var typeClass: H5T_class_t
        var typeSize: Int
        var signed: Bool
        var isVariableString: Bool
    }

    static func datasetInfo(_ d: hid_t, _ what: String) throws(SDLSTMError) -> DatasetInfo {
        let space = H5Dget_space(d)
        defer { if space >= 0 { H5Sclose(space) } }
        let type = H5Dget_type(d)
        defer { if type >= 0 { H5Tclose(type) } }
        guard space >= 0, type >= 0 else { throw .format("\(what): cannot read its type or shape\(reason())") }
        return try info(space: space, type: type, what)
    }

    private static func info(space: hid_t, type: hid_t, _ what: String) throws(SDLSTMError) -> DatasetInfo {
        let rank = H5Sget_simple_extent_ndims(space)
        guard rank >= 0, rank <= 32 else { throw .format("\(what): unreadable dataspace\(reason())") }
        var dims = [hsize_t](repeating: 0, count: max(Int(rank), 1))
        if rank > 0 { guard H5Sget_simple_extent_dims(space, &dims, nil) >= 0 else { throw .format("\(what): unreadable dataspace\(reason())") } }
        var shape: [Int] = []
        for d in dims.prefix(Int(rank)) {
            guard d <= hsize_t(Int32.max) else { throw .format("\(what): dimension \(d) is too large") }
            shape.append(Int(d))
        }
        let cls = H5Tget_class(type)
        let isVar = cls == H5T_STRING && H5Tis_variable_str(type) > 0
        return DatasetInfo(shape: shape, typeClass: cls, typeSize: H5Tget_size(type),
                           signed: cls == H5T_INTEGER && H5Tget_sign(type) == H5T_SGN_2, isVariableString: isVar)
    }

    /// Reads a float32 dataset of exactly `shape`; every value must be finite.
    static func readFloats(_ loc: hid_t, _ name: String, shape expected: [Int]? = nil, _ what: String) throws(SDLSTMError) -> (shape: [Int], values: [Float]) {
        let d = H5Dopen2(loc, name, defaultPL)
        guard d >= 0 else { throw .format("\(what): cannot be opened\(reason())") }
        defer { H5Dclose(d) }
        let info = try datasetInfo(d, what)
        guard info.typeClass == H5T_FLOAT, info.typeSize == 4 else {
            throw .format("\(what): type is \(describe(info)), expected float32")
        }
        if let expected, info.shape != expected {
            throw .format("\(what): shape \(info.shape), expected \(expected)")
        }
        let count = info.shape.reduce(1, *)
        var values = [Float](repeating: 0, count: count)
        let rc = values.withUnsafeMutableBytes { H5Dread(d, sdl_h5t_native_float(), all, all, defaultPL, $0.baseAddress) }
        guard rc >= 0 else { throw .format("\(what): data cannot be read (truncated or damaged file?)\(reason())") }
        if let bad = values.firstIndex(where: { !$0.isFinite }) {
            throw .format("\(what): value \(values[bad]) at flat index \(bad) is not finite")
        }
        return (info.shape, values)
    }

    static func readUInt64s(_ loc: hid_t, _ name: String, count: Int, _ what: String) throws(SDLSTMError) -> [UInt64] {
        let d = H5Dopen2(loc, name, defaultPL)
        guard d >= 0 else { throw .format("\(what): cannot be opened\(reason())") }
        defer { H5Dclose(d) }
        let info = try datasetInfo(d, what)
        guard info.typeClass == H5T_INTEGER, info.typeSize == 8, !info.signed else {
            throw .format("\(what): type is \(describe(info)), expected uint64")
        }
        guard info.shape == [count] else { throw .format("\(what): shape \(info.shape), expected [\(count)]") }
        var values = [UInt64](repeating: 0, count: count)
        let rc = values.withUnsafeMutableBytes { H5Dread(d, sdl_h5t_native_uint64(), all, all, defaultPL, $0.baseAddress) }
        guard rc >= 0 else { throw .format("\(what): data cannot be read\(reason())") }
        return values
    }

    /// Reads a 1-D dataset of strings (variable- or fixed-length); each must be valid UTF-8.
    static func readStrings(_ loc: hid_t, _ name: String, _ what: String) throws(SDLSTMError) -> [String] {
        let d = H5Dopen2(loc, name, defaultPL)
        guard d >= 0 else { throw .format("\(what): cannot be opened\(reason())") }
        defer { H5Dclose(d) }
        let space = H5Dget_space(d)
        defer { if space >= 0 { H5Sclose(space) } }
        let type = H5Dget_type(d)
        defer { if type >= 0 { H5Tclose(type) } }
        guard space >= 0, type >= 0 else { throw .format("\(what): cannot read its type or shape\(reason())") }
        let info = try info(space: space, type: type, what)
        guard info.typeClass == H5T_STRING else { throw .format("\(what): type is \(describe(info)), expected strings") }
        guard info.shape.count == 1 else { throw .format("\(what): shape \(info.shape), expected one dimension") }
        return try readStringValues(count: info.shape[0], variable: info.isVariableString, fileSize: info.typeSize,
                                    cset: H5Tget_cset(type), space: space, what) { mem, buf in H5Dread(d, mem, all, all, defaultPL, buf) }
    }

    /// Reads `count` strings with `read(memType, buffer)`, variable- or fixed-length.
    private static func readStringValues(count: Int, variable: Bool, fileSize: Int, cset: H5T_cset_t, space: hid_t,
                                         _ what: String, _ read: (hid_t, UnsafeMutableRawPointer?) -> herr_t) throws(SDLSTMError) -> [String] {
        // HDF5 converts between strings of one character set only: the memory type takes the file's.
        let mem = H5Tcopy(sdl_h5t_c_s1())
        defer { if mem >= 0 { H5Tclose(mem) } }
        guard mem >= 0, H5Tset_cset(mem, cset) >= 0 else { throw .format("\(what): HDF5 string type failed\(reason())") }
        var out: [String] = []
        out.reserveCapacity(count)
        if variable {
            guard H5Tset_size(mem, sdl_h5t_variable()) >= 0 else { throw .format("\(what): HDF5 string type failed\(reason())") }
            var ptrs = [UnsafeMutablePointer<CChar>?](repeating: nil, count: max(count, 1))
            let rc = ptrs.withUnsafeMutableBytes { read(mem, $0.baseAddress) }
            guard rc >= 0 else { throw .format("\(what): strings cannot be read\(reason())") }
            defer { _ = ptrs.withUnsafeMutableBytes { sdl_h5_reclaim(mem, space, $0.baseAddress) } }
            for (i, p) in ptrs.prefix(count).enumerated() {
                guard let p else { out.append(""); continue }
                guard let s = validUTF8(UnsafeBufferPointer(start: p, count: strlen(p))) else {
                    throw .format("\(what): string \(i) is not valid UTF-8")
                }
                out.append(s)
            }
        } else {
            let width = fileSize + 1
            guard H5Tset_size(mem, width) >= 0, H5Tset_strpad(mem, H5T_STR_NULLTERM) >= 0 else {
                throw .format("\(what): HDF5 string type failed\(reason())")
            }
            var buf = [CChar](repeating: 0, count: max(count * width, 1))
            let rc = buf.withUnsafeMutableBytes { read(mem, $0.baseAddress) }
            guard rc >= 0 else { throw .format("\(what): strings cannot be read\(reason())") }
            for i in 0..<count {
                let s = try buf.withUnsafeBufferPointer { b throws(SDLSTMError) -> String in
                    let start = b.baseAddress! + i * width
                    guard let s = validUTF8(UnsafeBufferPointer(start: start, count: strnlen(start, width))) else {
                        throw .format("\(what): string \(i) is not valid UTF-8")
                    }
                    return s
                }
                out.append(s)
            }
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
        guard info.shape.reduce(1, *) == 1 else { throw .format("\(what): shape \(info.shape), expected a scalar") }
        switch info.typeClass {
        case H5T_INTEGER where info.signed:
            var v: Int64 = 0
            guard H5Aread(a, sdl_h5t_native_int64(), &v) >= 0 else { throw .format("\(what): cannot be read\(reason())") }
            return .int(v)
        case H5T_INTEGER:
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
            let s = try readStringValues(count: 1, variable: info.isVariableString, fileSize: info.typeSize,
                                         cset: H5Tget_cset(type), space: space, what) { mem, buf in H5Aread(a, mem, buf) }
            return .string(s[0])
        default:
            throw .format("\(what): type is \(describe(info)), expected a number or a string")
        }
    }

    static func describe(_ info: DatasetInfo) -> String {
        switch info.typeClass {
        case H5T_FLOAT: return "float\(info.typeSize * 8)"
        case H5T_INTEGER: return "\(info.signed ? "int" : "uint")\(info.typeSize * 8)"
        case H5T_STRING: return "string"
        default: return "HDF5 class \(info.typeClass.rawValue)"
        }
    }

    static func string(_ buf: [CChar]) -> String {
        String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func validUTF8(_ bytes: UnsafeBufferPointer<CChar>) -> String? {
        bytes.withMemoryRebound(to: UInt8.self) { String(validating: $0, as: UTF8.self) }
    }
}

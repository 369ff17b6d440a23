/// Named string tables (vocabularies, tag sets) and small string metadata that travel with a model
/// in its checkpoint, so that another tool can decode the model with nothing else at hand.
///
/// Names and keys are 1 to 128 bytes of `A-Z a-z 0-9 _ . -` (they become HDF5 link and attribute
/// names); values are UTF-8 without NUL bytes. A table holds at least one string; a metadata value is
/// at most 64 KiB.
public struct Attachments: Equatable, Sendable {
    public private(set) var strings: [String: [String]] = [:]
    public private(set) var metadata: [String: String] = [:]

    public static let maxNameBytes = 128
    public static let maxMetadataBytes = 65_536
    public static let maxTableStrings = Int(Int32.max)

    public init() {}

    /// Replaces the table `name`; an empty table removes it.
    public mutating func setStrings(_ name: String, _ values: [String]) throws(SDLSTMError) {
        try Self.checkName(name, "string table name")
        guard values.count <= Self.maxTableStrings else {
            throw .invalid("string table \(name): \(values.count) strings, at most \(Self.maxTableStrings)")
        }
        if let bad = values.firstIndex(where: { $0.utf8.contains(0) }) {
            throw .invalid("string table \(name): string \(bad) contains a NUL byte")
        }
        strings[name] = values.isEmpty ? nil : values
    }

    /// Sets metadata `key` to `value`; nil removes it.
    public mutating func setMetadata(_ key: String, _ value: String?) throws(SDLSTMError) {
        try Self.checkName(key, "metadata key")
        if let value {
            guard value.utf8.count <= Self.maxMetadataBytes else {
                throw .invalid("metadata \(key): value of \(value.utf8.count) bytes, at most \(Self.maxMetadataBytes)")
            }
            guard !value.utf8.contains(0) else { throw .invalid("metadata \(key): value contains a NUL byte") }
        }
        metadata[key] = value
    }

    /// A name or key as the checkpoint format allows it; `what` says which one in the message.
    public static func checkName(_ name: String, _ what: String) throws(SDLSTMError) {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count <= maxNameBytes else {
            throw .invalid("\(what) \"\(name)\" must have 1 to \(maxNameBytes) bytes")
        }
        let allowed: (UInt8) -> Bool = { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x5F || b == 0x2E || b == 0x2D
        }
        guard bytes.allSatisfy(allowed), name != ".", name != ".." else {
            throw .invalid("\(what) \"\(name)\" may hold only A-Z a-z 0-9 _ . - (and is not . or ..)")
        }
    }
}

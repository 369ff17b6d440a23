/// Tag names as conlleval reads them, and the transitions a tagging scheme rules out.
///
/// A tag name splits at its first '-': "B-PER" is prefix "B", type "PER"; a name without '-'
/// ("O") is all prefix with the empty type. The prefixes that mean something are B (begin),
/// I (inside) and O (outside); conlleval also knows E, '[', ']' and '.'.

/// How tag names mark spans. Mirrors `sdlstm_tag_scheme`.
public enum TagScheme: Int32, Sendable, CaseIterable {
    case none = 0  // every transition allowed
    case iob1 = 1  // B-X only right after B-X or I-X (it separates two adjacent X spans)
    case iob2 = 2  // I-X only right after B-X or I-X; every span starts with B-
}

/// One tag name cut into conlleval's prefix and type.
public struct TagName: Equatable, Sendable {
    public var prefix: Substring
    public var type: Substring

    public init(_ name: String) {
        if let dash = name.firstIndex(of: "-") {
            prefix = name[..<dash]
            type = name[name.index(after: dash)...]
        } else {
            prefix = name[...]
            type = ""
        }
    }
}

/// Which tag may follow which under a scheme: the CRF gives a forbidden transition the score −∞.
public struct TransitionConstraints: Equatable, Sendable {
    public let numTags: Int
    /// allowed[i * numTags + j]: tag j may directly follow tag i.
    public private(set) var allowed: [Bool]
    /// allowedStart[j]: a sentence may begin with tag j.
    public private(set) var allowedStart: [Bool]

    /// No constraints.
    public init(numTags: Int) {
        self.numTags = numTags
        allowed = [Bool](repeating: true, count: numTags * numTags)
        allowedStart = [Bool](repeating: true, count: numTags)
    }

    /// The constraints of `scheme` for tags named `names` (tag id = index). Names that are neither
    /// B- nor I- tags (O, or anything else) are never constrained.
    public init(names: [String], scheme: TagScheme) {
        self.init(numTags: names.count)
        let tags = names.map(TagName.init)
        // The prefix that may only continue a span of its own type: I in IOB2, B in IOB1.
        let continuation: Substring
        switch scheme {
        case .none: return
        case .iob1: continuation = "B"
        case .iob2: continuation = "I"
        }
        for (j, to) in tags.enumerated() where to.prefix == continuation {
            allowedStart[j] = false
            for (i, from) in tags.enumerated() {
                allowed[i * numTags + j] = (from.prefix == "B" || from.prefix == "I") && from.type == to.type
            }
        }
    }

    public var isEmpty: Bool { !allowed.contains(false) && !allowedStart.contains(false) }
}

/// Dropout policies (the paper's 2 × 2 framework), the sites they apply to, and one site's setting.

public enum DropoutPolicy: Int32, Sendable, CaseIterable {
    case none = 0
    case variational = 1      // case I: per sample, fixed over the window
    case standard = 2         // case II: per sample, new every step
    case structured = 3       // case III: shared by the batch, new every step
    case structuredFixed = 4  // case IV: shared by the batch, fixed over the window

    /// Batch-uniform policies zero whole columns, which is what lets the GEMMs skip work.
    public var isStructured: Bool { self == .structured || self == .structuredFixed }
}

public enum DropoutSite: Int32, Sendable, CaseIterable {
    case input = 0      // embedding output into the first layer
    case between = 1    // a layer's output into the next one
    case output = 2     // top layer output into the output projection
    case recurrent = 3  // H(t-1) into W_hh
}

public struct DropoutSetting: Equatable, Sendable {
    public var policy: DropoutPolicy
    public var p: Float
    public init(policy: DropoutPolicy = .none, p: Float = 0) { self.policy = policy; self.p = p }
    public var isActive: Bool { policy != .none && p > 0 }
}

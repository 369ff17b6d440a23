/// Tallies the GEMM multiply-adds of a step and those the kept-column path leaves out.
public struct MACCount {
    public internal(set) var total = 0, skipped = 0

    public init() {}

    /// An LSTM layer's input and recurrent products over its last window. The recurrent backward
    /// data pass has no step 0 unless a gradient flowed into the initial state.
    mutating func add(_ lstm: LSTMLayer) {
        lstm.input.countMACs(into: &self)
        lstm.recurrent.countMACs(into: &self, backwardData: lstm.recurrentBackwardSteps)
    }

    public var skippedFraction: Double { total == 0 ? 0 : Double(skipped) / Double(total) }
}

import CSDLSTM
import Foundation

/// What a training step or an evaluation measured.
public struct StepStats: Equatable, Sendable {
    /// Mean cross-entropy per target token (nats).
    public var loss: Double
    /// Target tokens in the batch.
    public var tokens: Int
    /// Global L2 norm of the gradient before clipping (steps only; 0 for an evaluation).
    public var gradNorm: Double
    /// Share of the GEMM multiply-adds that structured masks removed.
    public var skippedMACsFraction: Double

    /// exp(loss).
    public var perplexity: Double { exp(loss) }

    public init(loss: Double, tokens: Int, gradNorm: Double, skippedMACsFraction: Double) {
        self.loss = loss
        self.tokens = tokens
        self.gradNorm = gradNorm
        self.skippedMACsFraction = skippedMACsFraction
    }

    init(_ s: sdlstm_stats) {
        self.init(loss: s.loss, tokens: Int(s.tokens), gradNorm: s.grad_norm,
                  skippedMACsFraction: s.skipped_macs_fraction)
    }
}

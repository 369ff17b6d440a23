import CSDLSTM

/// Where a dropout mask is applied.
public enum DropoutSite: Sendable, CaseIterable {
    /// The embedding output entering the first LSTM layer.
    case input
    /// A layer's output entering the next layer (needs >= 2 layers).
    case between
    /// The top layer's output entering the output projection.
    case output
    /// H(t-1) entering the recurrent weights, every layer.
    case recurrent

    var cValue: sdlstm_site {
        switch self {
        case .input: SDLSTM_SITE_INPUT
        case .between: SDLSTM_SITE_BETWEEN
        case .output: SDLSTM_SITE_OUTPUT
        case .recurrent: SDLSTM_SITE_RECURRENT
        }
    }
}

/// How a dropout mask is drawn (the paper's 2 x 2 framework).
public enum DropoutPolicy: Sendable, CaseIterable {
    /// No dropout.
    case none
    /// Case I: per sample, one mask for the whole window.
    case variational
    /// Case II: per sample, a new mask every time step.
    case standard
    /// Case III: shared by the batch, new every time step (structured dropout).
    case structured
    /// Case IV: shared by the batch, one mask for the window.
    case structuredFixed

    var cValue: sdlstm_policy {
        switch self {
        case .none: SDLSTM_POLICY_NONE
        case .variational: SDLSTM_POLICY_VARIATIONAL
        case .standard: SDLSTM_POLICY_STANDARD
        case .structured: SDLSTM_POLICY_STRUCTURED
        case .structuredFixed: SDLSTM_POLICY_STRUCTURED_FIXED
        }
    }
}

/// The update rule.
public enum Optimizer: Sendable, CaseIterable {
    /// Plain stochastic gradient descent.
    case sgd

    var cValue: sdlstm_optimizer {
        switch self {
        case .sgd: SDLSTM_OPTIMIZER_SGD
        }
    }
}

import CHDF5
import CSDLSTM // the version macros only
import Glibc

/// HDF5 checkpoints of any `Model` (docs/CHECKPOINT.md describes the layout), after a 512-byte
/// header that seals the file (`CheckpointSeal`):
///
///     /                     attributes: format, format_version, library_version, the config
///     /<pytorch name>       one float32 dataset per parameter, PyTorch's name and shape
///     /training             attributes: optimizer, learning_rate, clip_norm, step, epoch, epoch_step
///     /training/rng_state   uint64[4], the dropout stream
///     /dropout              attributes: <site>_policy, <site>_p for input, between, output, recurrent
///     /state                optional: the carried state (LM: h, c as num_layers × batch × hidden)
///     /tags                 optional, a tagger whose tags are named: attribute scheme, dataset names
///     /strings/<name>       one 1-D fixed-length UTF-8 string dataset per attached table
///     /metadata/<key>       one dataset of one fixed-length UTF-8 string per metadata key
///
/// Saving writes a temporary file in the target's directory, fsyncs it, renames it over the target
/// and fsyncs the directory: a process killed at any point leaves the previous checkpoint intact.
/// Loading checks the seal before HDF5 parses anything, then validates the whole file, every size
/// against what the file stores before it is allocated, and builds a new model; nothing
/// half-loaded is ever returned.
public enum Checkpoint {
    public static let format = "sdlstm-checkpoint"
    public static let formatVersion: Int64 = 2
    /// Written as `library_version`; equal to `sdlstm_version()` (a test checks it).
    public static let libraryVersion = "\(SDLSTM_VERSION_MAJOR).\(SDLSTM_VERSION_MINOR).\(SDLSTM_VERSION_PATCH)"

    public struct Loaded {
        public let model: any Model
        public let attachments: Attachments
    }

    /// Identifiers HDF5 holds open in this process; a checkpoint call that leaks none leaves it unchanged.
    public static var openHDF5Identifiers: Int { H5.openIdentifiers }

    // MARK: Names in the file

    static let groups = ["training", "dropout", "state", "tags", "strings", "metadata"]
    /// Groups a file may lack: the carried state is saved only when asked for, tag names only once set.
    static let optionalGroups = ["state", "tags"]
    static let configAttributes = ["task"] + ModelConfig.fields.map(\.name)
    static let rootAttributes = ["format", "format_version", "library_version"] + configAttributes
    static let trainingAttributes = ["optimizer", "learning_rate", "clip_norm", "step", "epoch", "epoch_step"]

    static func name(_ task: Task) -> String {
        switch task {
        case .languageModel: return "language_model"
        case .seq2seq: return "seq2seq"
        case .tagger: return "tagger"
        }
    }

    static func name(_ site: DropoutSite) -> String {
        switch site {
        case .input: return "input"
        case .between: return "between"
        case .output: return "output"
        case .recurrent: return "recurrent"
        }
    }

    static func name(_ policy: DropoutPolicy) -> String {
        switch policy {
        case .none: return "none"
        case .variational: return "variational"
        case .standard: return "standard"
        case .structured: return "structured"
        case .structuredFixed: return "structured_fixed"
        }
    }

    static func name(_ scheme: TagScheme) -> String {
        switch scheme {
        case .none: return "none"
        case .iob1: return "iob1"
        case .iob2: return "iob2"
        }
    }

    static func name(_ kind: OptimizerKind) -> String {
        switch kind {
        case .sgd: return "sgd"
        }
    }
}

func errnoText() -> String { String(cString: strerror(errno)) }

extension SDLSTMError {
    /// The same error, its message prefixed with the file's path.
    func prefixed(_ path: String) -> SDLSTMError {
        switch self {
        case .format(let m): return .format("\(path): \(m)")
        case .io(let m): return .io("\(path): \(m)")
        default: return self
        }
    }
}

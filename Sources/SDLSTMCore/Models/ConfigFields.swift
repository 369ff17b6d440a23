import CSDLSTM

/// One field of a ModelConfig (the task aside), under the name that the checkpoint's root attribute
/// and the sdlstm_config member share. Save, load and the ABI's conversion all walk
/// `ModelConfig.fields`, so a field added to the config is added in one place.
public enum ConfigField: @unchecked Sendable {
    case int(String, WritableKeyPath<ModelConfig, Int>, WritableKeyPath<sdlstm_config, Int32>)
    case flag(String, WritableKeyPath<ModelConfig, Bool>, WritableKeyPath<sdlstm_config, Int32>)
    case real(String, WritableKeyPath<ModelConfig, Float>, WritableKeyPath<sdlstm_config, Float>)
    case seed(String, WritableKeyPath<ModelConfig, UInt64>, WritableKeyPath<sdlstm_config, UInt64>)

    public var name: String {
        switch self {
        case .int(let n, _, _), .flag(let n, _, _), .real(let n, _, _), .seed(let n, _, _): return n
        }
    }
}

extension ModelConfig {
    public static let fields: [ConfigField] = [
        .int("vocab_size", \.vocabSize, \.vocab_size),
        .int("embed_size", \.embedSize, \.embed_size),
        .int("hidden_size", \.hiddenSize, \.hidden_size),
        .int("num_layers", \.numLayers, \.num_layers),
        .real("init_scale", \.initScale, \.init_scale),
        .seed("seed", \.seed, \.seed),
        .int("target_vocab_size", \.targetVocabSize, \.target_vocab_size),
        .flag("bidirectional", \.bidirectional, \.bidirectional),
        .flag("input_feeding", \.inputFeeding, \.input_feeding),
        .int("num_tags", \.numTags, \.num_tags),
        .int("char_vocab_size", \.charVocabSize, \.char_vocab_size),
        .int("char_embed_size", \.charEmbedSize, \.char_embed_size),
        .int("char_hidden_size", \.charHiddenSize, \.char_hidden_size),
        .flag("use_crf", \.useCRF, \.use_crf),
    ]

    /// The config as the C struct (struct_size set to this header's size). Values beyond Int32 clamp;
    /// `validate` bounds every field far below that.
    public var cStruct: sdlstm_config {
        var c = sdlstm_config()
        c.struct_size = MemoryLayout<sdlstm_config>.size
        c.task = sdlstm_task(UInt32(task.rawValue))
        for f in Self.fields {
            switch f {
            case .int(_, let k, let ck): c[keyPath: ck] = Int32(clamping: self[keyPath: k])
            case .flag(_, let k, let ck): c[keyPath: ck] = self[keyPath: k] ? 1 : 0
            case .real(_, let k, let ck): c[keyPath: ck] = self[keyPath: k]
            case .seed(_, let k, let ck): c[keyPath: ck] = self[keyPath: k]
            }
        }
        return c
    }

    /// The config a C struct describes, for `task` (the caller has checked the struct's task).
    public init(_ c: sdlstm_config, task: Task) {
        self.init(task: task)
        for f in Self.fields {
            switch f {
            case .int(_, let k, let ck): self[keyPath: k] = Int(c[keyPath: ck])
            case .flag(_, let k, let ck): self[keyPath: k] = c[keyPath: ck] != 0
            case .real(_, let k, let ck): self[keyPath: k] = c[keyPath: ck]
            case .seed(_, let k, let ck): self[keyPath: k] = c[keyPath: ck]
            }
        }
    }
}

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
    static let configAttributes = ["task", "vocab_size", "embed_size", "hidden_size", "num_layers", "init_scale", "seed",
                                   "target_vocab_size", "bidirectional", "input_feeding", "num_tags", "char_vocab_size",
                                   "char_embed_size", "char_hidden_size", "use_crf"]
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

    // MARK: Saving

    /// Saves atomically to `path`; `carriedState` adds the task's carried state (`/state`).
    public static func save(_ model: any Model, attachments: Attachments = Attachments(), to path: String,
                            carriedState: Bool = false) throws(SDLSTMError) {
        guard !path.isEmpty else { throw .invalid("path is empty") }
        guard !path.hasSuffix("/") else { throw .invalid("path \"\(path)\" names a directory") }
        // A group's links all live in its object header; HDF5 allows 65535 there.
        for (n, what) in [(attachments.strings.count, "string tables"), (attachments.metadata.count, "metadata keys")] where n > H5.maxCompact {
            throw .invalid("\(n) \(what), a checkpoint holds at most \(H5.maxCompact)")
        }
        try checkReplaceable(path)
        let (dir, base) = split(path)
        // Before writing, not after: a save that fails, or a process that keeps being killed, then
        // leaves at most its own temporary file behind.
        removeStaleTemporaries(dir: dir, base: base)
        try H5.session { () throws(SDLSTMError) in
            let tmp = try TempFile(dir: dir, base: base, target: path)
            var renamed = false
            defer {
                if !renamed { unlink(tmp.path) }
                close(tmp.fd)
            }
            try write(model, attachments, carriedState: carriedState, to: tmp.path)
            try CheckpointSeal.seal(fd: tmp.fd, path)
            guard fsync(tmp.fd) == 0 else { throw .io("\(path): fsync of the temporary file failed: \(errnoText())") }
            _ = fchmod(tmp.fd, modeFor(path))
            guard rename(tmp.path, path) == 0 else {
                throw .io("\(path): cannot rename the temporary file over it: \(errnoText())")
            }
            renamed = true
            try syncDirectory(dir, path)
        }
    }

    private static func write(_ model: any Model, _ attachments: Attachments, carriedState: Bool, to tmp: String) throws(SDLSTMError) {
        let fcpl = H5Pcreate(sdl_h5p_file_create())
        defer { if fcpl >= 0 { H5Pclose(fcpl) } }
        let fapl = H5Pcreate(sdl_h5p_file_access())
        defer { if fapl >= 0 { H5Pclose(fapl) } }
        // The 1.10 format (readable by HDF5 1.10 and later): checksums on the superblock, object
        // headers and chunk indexes, where the 1.8 format leaves chunk B-trees unchecked. No times,
        // and 512 bytes reserved for the seal.
        guard fcpl >= 0, fapl >= 0, H5.setGroupProperties(fcpl), H5Pset_userblock(fcpl, hsize_t(CheckpointSeal.size)) >= 0,
              H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_V110) >= 0, sdl_h5_no_file_locking(fapl) >= 0 else {
            throw .io("HDF5 property lists failed\(H5.reason())")
        }
        let f = H5Fcreate(tmp, sdl_h5f_acc_trunc(), fcpl, fapl)
        guard f >= 0 else { throw .io("\(tmp): cannot create the HDF5 file\(H5.reason())") }
        var open = true
        defer { if open { H5Fclose(f) } }

        try writeRoot(f, model)
        for p in model.parameters {
            try H5.writeFloats(f, p.pytorchName, shape: p.pytorchShape, p.pytorchValues())
        }
        try writeTraining(f, model)
        try writeDropout(f, model)
        if carriedState {
            let tensors = model.carriedStateTensors()
            let g = try H5.createGroup(f, "state")
            defer { H5Gclose(g) }
            for t in tensors { try H5.writeFloats(g, t.name, shape: t.shape, t.values) }
        }
        // The CRF's constraints come from the names and the scheme, so a loaded tagger needs both to
        // decode as it did; without them it would silently allow every transition.
        if let tagger = model as? Tagger, let names = tagger.tagNames {
            let g = try H5.createGroup(f, "tags")
            defer { H5Gclose(g) }
            try H5.writeAttribute(g, "scheme", name(tagger.tagScheme))
            try H5.writeStrings(g, "names", names)
        }
        do {
            let g = try H5.createGroup(f, "strings")
            defer { H5Gclose(g) }
            for name in attachments.strings.keys.sorted() { try H5.writeStrings(g, name, attachments.strings[name]!) }
        }
        // Metadata values are datasets of one string, not attributes: a value of 64 KiB would not fit
        // in the object header, and HDF5's dense attribute storage is what a damaged file crashes.
        do {
            let g = try H5.createGroup(f, "metadata")
            defer { H5Gclose(g) }
            for (key, value) in attachments.metadata.sorted(by: { $0.key < $1.key }) { try H5.writeStrings(g, key, [value]) }
        }
        guard H5Fflush(f, H5F_SCOPE_GLOBAL) >= 0 else { throw .io("\(tmp): HDF5 flush failed\(H5.reason())") }
        open = false
        guard H5Fclose(f) >= 0 else { throw .io("\(tmp): HDF5 close failed\(H5.reason())") }
    }

    private static func writeRoot(_ f: hid_t, _ model: any Model) throws(SDLSTMError) {
        let c = model.config
        try H5.writeAttribute(f, "format", format)
        try H5.writeAttribute(f, "format_version", formatVersion)
        try H5.writeAttribute(f, "library_version", libraryVersion)
        try H5.writeAttribute(f, "task", name(c.task))
        for (key, value) in [("vocab_size", c.vocabSize), ("embed_size", c.embedSize), ("hidden_size", c.hiddenSize),
                             ("num_layers", c.numLayers)] {
            try H5.writeAttribute(f, key, Int64(value))
        }
        try H5.writeAttribute(f, "init_scale", c.initScale)
        try H5.writeAttribute(f, "seed", c.seed)
        for (key, value) in [("target_vocab_size", c.targetVocabSize), ("bidirectional", c.bidirectional ? 1 : 0),
                             ("input_feeding", c.inputFeeding ? 1 : 0), ("num_tags", c.numTags),
                             ("char_vocab_size", c.charVocabSize), ("char_embed_size", c.charEmbedSize),
                             ("char_hidden_size", c.charHiddenSize), ("use_crf", c.useCRF ? 1 : 0)] {
            try H5.writeAttribute(f, key, Int64(value))
        }
    }

    private static func writeTraining(_ f: hid_t, _ model: any Model) throws(SDLSTMError) {
        let g = try H5.createGroup(f, "training")
        defer { H5Gclose(g) }
        let o = model.optimizer
        try H5.writeAttribute(g, "optimizer", name(o.kind))
        try H5.writeAttribute(g, "learning_rate", o.learningRate)
        try H5.writeAttribute(g, "clip_norm", o.clipNorm)
        try H5.writeAttribute(g, "step", o.progress.step)
        try H5.writeAttribute(g, "epoch", o.progress.epoch)
        try H5.writeAttribute(g, "epoch_step", o.progress.epochStep)
        let s = model.rng.state
        try H5.writeUInt64s(g, "rng_state", [s.0, s.1, s.2, s.3])
    }

    private static func writeDropout(_ f: hid_t, _ model: any Model) throws(SDLSTMError) {
        let g = try H5.createGroup(f, "dropout")
        defer { H5Gclose(g) }
        for site in DropoutSite.allCases {
            let setting = model.dropout(at: site)
            try H5.writeAttribute(g, "\(name(site))_policy", name(setting.policy))
            try H5.writeAttribute(g, "\(name(site))_p", setting.p)
        }
    }

    // MARK: Loading

    /// Checks the seal, reads and validates the whole file, then returns a new model; E_IO for a
    /// missing or unreadable file, E_FORMAT (naming the header, dataset or attribute) for anything
    /// else wrong with it.
    public static func load(from path: String) throws(SDLSTMError) -> Loaded {
        guard !path.isEmpty else { throw .invalid("path is empty") }
        let (fd, size) = try openReadable(path)
        defer { close(fd) }
        do {
            try CheckpointSeal.verify(fd: fd, length: size)
        } catch {
            throw error.prefixed(path)
        }
        return try H5.session { () throws(SDLSTMError) -> Loaded in
            let fapl = H5Pcreate(sdl_h5p_file_access())
            defer { if fapl >= 0 { H5Pclose(fapl) } }
            guard fapl >= 0, sdl_h5_no_file_locking(fapl) >= 0 else { throw .io("HDF5 property list failed\(H5.reason())") }
            // HDF5 opens the file just verified (the descriptor's inode), not whatever the path names now.
            let pinned = "/proc/self/fd/\(fd)"
            let f = H5Fopen(access(pinned, R_OK) == 0 ? pinned : path, sdl_h5f_acc_rdonly(), fapl)
            guard f >= 0 else { throw .format("\(path): damaged HDF5 file\(H5.reason())") }
            defer { H5Fclose(f) }
            let root = H5Gopen2(f, "/", H5.defaultPL)
            guard root >= 0 else { throw .format("\(path): the root group cannot be opened\(H5.reason())") }
            defer { H5Gclose(root) }
            do throws(SDLSTMError) {
                return try Reader(root: root, fileSize: size).read()
            } catch {
                throw error.prefixed(path)
            }
        }
    }

    /// Recomputes the seal of a checkpoint edited by another HDF5 writer (as `tools/sdlstm_checkpoint.py
    /// seal` does); the file must already have the 512-byte user block.
    public static func reseal(_ path: String) throws(SDLSTMError) {
        let fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw .io("\(path): cannot open: \(errnoText())") }
        defer { close(fd) }
        try CheckpointSeal.seal(fd: fd, path)
    }

    /// Reads one open checkpoint; every message names the dataset, group or attribute it is about.
    private struct Reader {
        let root: hid_t
        /// Bounds every size the file declares.
        let fileSize: Int

        func read() throws(SDLSTMError) -> Loaded {
            try checkFormat()
            let config = try readConfig()
            let members = try H5.members(root, "the root group", fileSize: fileSize)
            // The model may allocate no more parameters than the root's datasets store, and 1 MiB: the
            // slack lets a config that is only slightly off reach the checks below that name the dataset.
            var stored = 0
            for m in members where !Checkpoint.groups.contains(m) {
                guard try H5.kind(root, m, "dataset \(m)") == .dataset else {
                    throw .format("\(m): expected a dataset, found a group or another object")
                }
                let (d, info) = try H5.openChecked(root, m, .float32, "dataset \(m)", fileSize: fileSize)
                H5Dclose(d)
                // At most the file: two crafted datasets may claim the same stored chunks.
                stored = min(stored + info.count * 4, fileSize)
            }
            let model: any Model
            do {
                model = try ParameterBudget.withLimit(bytes: stored + (1 << 20)) { () throws(SDLSTMError) in try makeModel(config) }
            } catch .invalid(let m) {
                throw .format("the config attributes do not describe a model: \(m)")
            } catch .format(let m) {
                throw .format("the config (\(summary(config))) \(m), far more than the file's \(stored) bytes of parameter datasets")
            }
            let parameters = model.parameters
            let byName = Dictionary(parameters.map { ($0.pytorchName, $0) }, uniquingKeysWith: { a, _ in a })
            for m in members where byName[m] == nil && !Checkpoint.groups.contains(m) {
                throw .format("unexpected object \"\(m)\" at the root: not a parameter of this \(Checkpoint.name(config.task)) model (\(summary(config))) nor a checkpoint group")
            }
            for p in parameters where !members.contains(p.pytorchName) {
                throw .format("missing dataset \"\(p.pytorchName)\", a parameter of this \(Checkpoint.name(config.task)) model (\(summary(config)))")
            }
            for g in Checkpoint.groups where !Checkpoint.optionalGroups.contains(g) && !members.contains(g) {
                throw .format("missing group \"\(g)\"")
            }
            // Shapes of every parameter before reading any values (types and storage are checked above).
            for p in parameters {
                let d = H5Dopen2(root, p.pytorchName, H5.defaultPL)
                guard d >= 0 else { throw .format("dataset \(p.pytorchName): cannot be opened\(H5.reason())") }
                defer { H5Dclose(d) }
                let info = try H5.datasetInfo(d, "dataset \(p.pytorchName)")
                guard info.shape == p.pytorchShape else {
                    throw .format("dataset \(p.pytorchName): shape \(info.shape), but the config (\(summary(config))) needs \(p.pytorchShape)")
                }
            }
            for g in Checkpoint.groups where members.contains(g) {
                guard try H5.kind(root, g, "group \(g)") == .group else { throw .format("\(g): expected a group, found a dataset") }
            }
            for p in parameters {
                let (_, values) = try H5.readFloats(root, p.pytorchName, shape: p.pytorchShape, "dataset \(p.pytorchName)", fileSize: fileSize)
                do { try p.setPyTorchValues(values) } catch { throw .format("dataset \(p.pytorchName): \(error.message)") }
            }
            var optimizer = Optimizer()
            var rng = Random(seed: 0)
            try readTraining(&optimizer, &rng)
            try readDropout(model)
            if members.contains("state") { try model.restoreCarriedState(try readState()) }
            if members.contains("tags") { try readTags(model) }
            let attachments = try readAttachments()
            model.optimizer = optimizer
            model.rng = rng
            return Loaded(model: model, attachments: attachments)
        }

        private func summary(_ c: ModelConfig) -> String {
            "vocab_size \(c.vocabSize), embed_size \(c.embedSize), hidden_size \(c.hiddenSize), num_layers \(c.numLayers)"
        }

        private func checkFormat() throws(SDLSTMError) {
            let names = try H5.attributeNames(root, "the root group")
            guard names.contains("format") else {
                throw .format("not an sdlstm checkpoint: the root has no \"format\" attribute")
            }
            guard case .string(let f) = try H5.readAttribute(root, "format", "attribute format"), f == Checkpoint.format else {
                throw .format("not an sdlstm checkpoint: attribute format is not \"\(Checkpoint.format)\"")
            }
            guard names.contains("format_version") else { throw .format("missing attribute format_version") }
            let v = try H5.readAttribute(root, "format_version", "attribute format_version")
            let version: Int64
            switch v {
            case .int(let x): version = x
            case .uint(let x): version = x > UInt64(Int64.max) ? -1 : Int64(x)
            default: throw .format("attribute format_version: expected an integer")
            }
            guard version == Checkpoint.formatVersion else {
                throw .format("attribute format_version is \(version), the header's is \(Checkpoint.formatVersion)")
            }
            try checkAttributes(root, names: names, expected: Checkpoint.rootAttributes, "the root group")
        }

        private func readConfig() throws(SDLSTMError) -> ModelConfig {
            let taskName = try string(root, "task")
            guard let task = [Task.languageModel, .seq2seq, .tagger].first(where: { Checkpoint.name($0) == taskName }) else {
                throw .format("attribute task: unknown task \"\(taskName)\"")
            }
            var c = ModelConfig(task: task)
            c.vocabSize = try int(root, "vocab_size")
            c.embedSize = try int(root, "embed_size")
            c.hiddenSize = try int(root, "hidden_size")
            c.numLayers = try int(root, "num_layers")
            c.initScale = try float(root, "init_scale")
            c.seed = try uint(root, "seed")
            c.targetVocabSize = try int(root, "target_vocab_size")
            c.bidirectional = try bool(root, "bidirectional")
            c.inputFeeding = try bool(root, "input_feeding")
            c.numTags = try int(root, "num_tags")
            c.charVocabSize = try int(root, "char_vocab_size")
            c.charEmbedSize = try int(root, "char_embed_size")
            c.charHiddenSize = try int(root, "char_hidden_size")
            c.useCRF = try bool(root, "use_crf")
            return c
        }

        private func readTraining(_ o: inout Optimizer, _ rng: inout Random) throws(SDLSTMError) {
            let g = try H5.openGroup(root, "training", "group training")
            defer { H5Gclose(g) }
            try checkAttributes(g, names: try H5.attributeNames(g, "group training"), expected: Checkpoint.trainingAttributes, "group training")
            let kindName = try string(g, "optimizer", in: "training")
            guard let kind = [OptimizerKind.sgd].first(where: { Checkpoint.name($0) == kindName }) else {
                throw .format("attribute training/optimizer: unknown optimizer \"\(kindName)\"")
            }
            o.kind = kind
            do {
                try o.setLearningRate(try float(g, "learning_rate", in: "training"))
            } catch .invalid(let m) { throw .format("attribute training/learning_rate: \(m)") }
            do {
                try o.setClipNorm(try float(g, "clip_norm", in: "training"))
            } catch .invalid(let m) { throw .format("attribute training/clip_norm: \(m)") }
            o.progress.step = try count(g, "step")
            o.progress.epoch = try count(g, "epoch")
            o.progress.epochStep = try count(g, "epoch_step")
            guard o.progress.epochStep <= o.progress.step else {
                throw .format("attribute training/epoch_step (\(o.progress.epochStep)) exceeds training/step (\(o.progress.step))")
            }
            // SGD keeps no per-parameter state: rng_state is the only member.
            let members = try H5.members(g, "group training", fileSize: fileSize)
            for m in members where m != "rng_state" {
                throw .format("unexpected object \"training/\(m)\" (the \(kindName) optimizer keeps no state)")
            }
            guard members.contains("rng_state") else { throw .format("missing dataset \"training/rng_state\"") }
            guard try H5.kind(g, "rng_state", "training/rng_state") == .dataset else {
                throw .format("training/rng_state: expected a dataset")
            }
            let s = try H5.readUInt64s(g, "rng_state", count: 4, "dataset training/rng_state", fileSize: fileSize)
            guard s.contains(where: { $0 != 0 }) else { throw .format("dataset training/rng_state: all zero is not a valid xoshiro256** state") }
            rng.state = (s[0], s[1], s[2], s[3])
        }

        private func readDropout(_ model: any Model) throws(SDLSTMError) {
            let g = try H5.openGroup(root, "dropout", "group dropout")
            defer { H5Gclose(g) }
            let expected = DropoutSite.allCases.flatMap { ["\(Checkpoint.name($0))_policy", "\(Checkpoint.name($0))_p"] }
            try checkAttributes(g, names: try H5.attributeNames(g, "group dropout"), expected: expected, "group dropout")
            if let m = try H5.members(g, "group dropout", fileSize: fileSize).first { throw .format("unexpected object \"dropout/\(m)\"") }
            for site in DropoutSite.allCases {
                let key = "\(Checkpoint.name(site))_policy"
                let policyName = try string(g, key, in: "dropout")
                guard let policy = DropoutPolicy.allCases.first(where: { Checkpoint.name($0) == policyName }) else {
                    throw .format("attribute dropout/\(key): unknown policy \"\(policyName)\"")
                }
                let p = try float(g, "\(Checkpoint.name(site))_p", in: "dropout")
                do {
                    try model.setDropout(DropoutSetting(policy: policy, p: p), at: site)
                } catch .invalid(let m) {
                    throw .format("attributes dropout/\(Checkpoint.name(site))_*: \(m)")
                }
            }
        }

        /// Names the loaded tagger's tags and constrains its CRF as the saved one was.
        private func readTags(_ model: any Model) throws(SDLSTMError) {
            guard let tagger = model as? Tagger else {
                throw .format("group tags: only a tagger has tag names, this is a \(Checkpoint.name(model.config.task)) model")
            }
            let g = try H5.openGroup(root, "tags", "group tags")
            defer { H5Gclose(g) }
            try checkAttributes(g, names: try H5.attributeNames(g, "group tags"), expected: ["scheme"], "group tags")
            let members = try H5.members(g, "group tags", fileSize: fileSize)
            for m in members where m != "names" { throw .format("unexpected object \"tags/\(m)\"") }
            guard members.contains("names") else { throw .format("missing dataset \"tags/names\"") }
            guard try H5.kind(g, "names", "tags/names") == .dataset else { throw .format("tags/names: expected a dataset") }
            let schemeName = try string(g, "scheme", in: "tags")
            guard let scheme = TagScheme.allCases.first(where: { Checkpoint.name($0) == schemeName }) else {
                throw .format("attribute tags/scheme: unknown tag scheme \"\(schemeName)\"")
            }
            let names = try H5.readStrings(g, "names", "dataset tags/names", fileSize: fileSize)
            do {
                try tagger.setTagNames(names, scheme: scheme)
            } catch .invalid(let m) {
                throw .format("dataset tags/names: \(m)")
            }
        }

        private func readState() throws(SDLSTMError) -> [StateTensor] {
            let g = try H5.openGroup(root, "state", "group state")
            defer { H5Gclose(g) }
            if let a = try H5.attributeNames(g, "group state").first { throw .format("unexpected attribute state/\(a)") }
            var tensors: [StateTensor] = []
            for m in try H5.members(g, "group state", fileSize: fileSize) {
                guard try H5.kind(g, m, "state/\(m)") == .dataset else { throw .format("state/\(m): expected a dataset") }
                let (shape, values) = try H5.readFloats(g, m, "dataset state/\(m)", fileSize: fileSize)
                tensors.append(StateTensor(name: m, shape: shape, values: values))
            }
            return tensors
        }

        private func readAttachments() throws(SDLSTMError) -> Attachments {
            var a = Attachments()
            do {
                let g = try H5.openGroup(root, "strings", "group strings")
                defer { H5Gclose(g) }
                if let x = try H5.attributeNames(g, "group strings").first { throw .format("unexpected attribute strings/\(x)") }
                for m in try H5.members(g, "group strings", fileSize: fileSize) {
                    guard try H5.kind(g, m, "strings/\(m)") == .dataset else { throw .format("strings/\(m): expected a dataset") }
                    let values = try H5.readStrings(g, m, "dataset strings/\(m)", fileSize: fileSize)
                    guard !values.isEmpty else { throw .format("dataset strings/\(m): empty table") }
                    do { try a.setStrings(m, values) } catch { throw .format("dataset strings/\(m): \(error.message)") }
                }
            }
            do {
                let g = try H5.openGroup(root, "metadata", "group metadata")
                defer { H5Gclose(g) }
                if let x = try H5.attributeNames(g, "group metadata").first { throw .format("unexpected attribute metadata/\(x)") }
                for key in try H5.members(g, "group metadata", fileSize: fileSize) {
                    guard try H5.kind(g, key, "metadata/\(key)") == .dataset else { throw .format("metadata/\(key): expected a dataset") }
                    let values = try H5.readStrings(g, key, "dataset metadata/\(key)", fileSize: fileSize)
                    guard values.count == 1 else { throw .format("dataset metadata/\(key): \(values.count) strings, expected 1") }
                    do { try a.setMetadata(key, values[0]) } catch { throw .format("dataset metadata/\(key): \(error.message)") }
                }
            }
            return a
        }

        // Attribute readers: each names the attribute in its message.

        private func checkAttributes(_ obj: hid_t, names: [String], expected: [String], _ what: String) throws(SDLSTMError) {
            for n in names where !expected.contains(n) { throw .format("\(what): unexpected attribute \"\(n)\"") }
            for e in expected where !names.contains(e) { throw .format("\(what): missing attribute \"\(e)\"") }
        }

        private func label(_ name: String, _ group: String?) -> String {
            "attribute " + (group.map { "\($0)/" } ?? "") + name
        }

        private func string(_ obj: hid_t, _ name: String, in group: String? = nil) throws(SDLSTMError) -> String {
            guard case .string(let s) = try H5.readAttribute(obj, name, label(name, group)) else {
                throw .format("\(label(name, group)): expected a string")
            }
            return s
        }

        private func int64(_ obj: hid_t, _ name: String, in group: String? = nil) throws(SDLSTMError) -> Int64 {
            let v: Int64
            switch try H5.readAttribute(obj, name, label(name, group)) {
            case .int(let x): v = x
            case .uint(let x) where x <= UInt64(Int64.max): v = Int64(x)
            default: throw .format("\(label(name, group)): expected a non-negative integer")
            }
            guard v >= 0 else { throw .format("\(label(name, group)): \(v) is negative") }
            return v
        }

        /// A training counter; a larger one would overflow within the steps still to come.
        private func count(_ obj: hid_t, _ name: String) throws(SDLSTMError) -> Int64 {
            let v = try int64(obj, name, in: "training")
            guard v <= TrainingProgress.maxCount else {
                throw .format("attribute training/\(name): \(v) exceeds 2^53, the largest count this library keeps")
            }
            return v
        }

        private func int(_ obj: hid_t, _ name: String, in group: String? = nil) throws(SDLSTMError) -> Int {
            let v = try int64(obj, name, in: group)
            guard v <= Int64(Int32.max) else { throw .format("\(label(name, group)): \(v) does not fit in int32") }
            return Int(v)
        }

        private func uint(_ obj: hid_t, _ name: String, in group: String? = nil) throws(SDLSTMError) -> UInt64 {
            switch try H5.readAttribute(obj, name, label(name, group)) {
            case .uint(let x): return x
            case .int(let x) where x >= 0: return UInt64(x)
            default: throw .format("\(label(name, group)): expected a non-negative integer")
            }
        }

        private func bool(_ obj: hid_t, _ name: String, in group: String? = nil) throws(SDLSTMError) -> Bool {
            let v = try int64(obj, name, in: group)
            guard v <= 1 else { throw .format("\(label(name, group)): \(v), expected 0 or 1") }
            return v == 1
        }

        private func float(_ obj: hid_t, _ name: String, in group: String? = nil) throws(SDLSTMError) -> Float {
            guard case .float(let x) = try H5.readAttribute(obj, name, label(name, group)) else {
                throw .format("\(label(name, group)): expected a float32")
            }
            guard x.isFinite else { throw .format("\(label(name, group)): \(x) is not finite") }
            return Float(x)
        }
    }

    // MARK: Files

    /// A descriptor and the size of `path`, E_IO unless it is an existing regular file this process
    /// can read. The type is checked before opening, as opening a FIFO waits for a writer; O_NONBLOCK
    /// keeps a FIFO swapped in between the two from blocking, and fstat then refuses it.
    private static func openReadable(_ path: String) throws(SDLSTMError) -> (fd: Int32, size: Int) {
        var st = stat()
        guard stat(path, &st) == 0 else { throw .io("\(path): cannot open: \(errnoText())") }
        try checkRegular(st, path)
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw .io("\(path): cannot open: \(errnoText())") }
        guard fstat(fd, &st) == 0 else {
            close(fd)
            throw .io("\(path): cannot stat: \(errnoText())")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw .io("\(path): not a regular file")
        }
        return (fd, Int(st.st_size))
    }

    /// E_IO unless the path is missing or a regular file: the rename would put the checkpoint in
    /// place of a FIFO, a device or a socket (and of /dev/null for a save run as root).
    private static func checkReplaceable(_ path: String) throws(SDLSTMError) {
        var st = stat()
        guard stat(path, &st) == 0 else {
            if errno == ENOENT { return }
            throw .io("\(path): cannot stat: \(errnoText())")
        }
        try checkRegular(st, path)
    }

    private static func checkRegular(_ st: stat, _ path: String) throws(SDLSTMError) {
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw .io("\(path): not a regular file") }
    }

    /// (directory, file name) of a path; the directory is "." for a bare name.
    static func split(_ path: String) -> (String, String) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        let dir = String(path[..<slash])
        return (dir.isEmpty ? "/" : dir, String(path[path.index(after: slash)...]))
    }

    /// The prefix of this target's temporary files: `.<name>.sdlstm-tmp-`, the name cut so the whole
    /// temporary name stays within NAME_MAX.
    static func temporaryPrefix(_ base: String) -> String {
        var cut = ""
        for ch in base {
            if cut.utf8.count + String(ch).utf8.count > 160 { break }
            cut.append(ch)
        }
        return ".\(cut).sdlstm-tmp-"
    }

    /// A new, empty, exclusively created temporary file next to the target: `.<name>.sdlstm-tmp-<pid>-XXXXXX`.
    private struct TempFile {
        let path: String
        let fd: Int32

        init(dir: String, base: String, target: String) throws(SDLSTMError) {
            var template = Array("\(dir)/\(Checkpoint.temporaryPrefix(base))\(getpid())-XXXXXX".utf8CString)
            let fd = mkstemp(&template)
            guard fd >= 0 else { throw .io("\(target): cannot create a temporary file in \(dir): \(errnoText())") }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            self.fd = fd
            self.path = H5.string(template)
        }
    }

    /// The mode of the file being replaced, else 0666 less the umask.
    private static func modeFor(_ path: String) -> mode_t {
        var st = stat()
        if stat(path, &st) == 0 { return st.st_mode & 0o777 }
        return 0o666 & ~currentUmask()
    }

    /// The process umask, read without changing it (/proc/self/status), 022 if unknown.
    private static func currentUmask() -> mode_t {
        procValue("Umask", file: "/proc/self/status").flatMap { mode_t($0, radix: 8) } ?? 0o022
    }

    /// Makes the rename durable. Filesystems that cannot sync a directory (EINVAL) are left as they are.
    private static func syncDirectory(_ dir: String, _ path: String) throws(SDLSTMError) {
        let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw .io("\(path): saved, but its directory cannot be opened to sync it: \(errnoText())") }
        defer { close(fd) }
        if fsync(fd) != 0 && errno != EINVAL && errno != EROFS {
            throw .io("\(path): saved, but the directory sync failed: \(errnoText())")
        }
    }

    /// Removes temporary files that saves of this target left when their process died (a killed save).
    private static func removeStaleTemporaries(dir: String, base: String) {
        let prefix = temporaryPrefix(base)
        guard let d = opendir(dir) else { return }
        defer { closedir(d) }
        var stale: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard name.hasPrefix(prefix) else { continue }
            let rest = name.dropFirst(prefix.count)
            guard let dash = rest.firstIndex(of: "-"), let pid = Int32(rest[..<dash]), pid != getpid() else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH { stale.append(name) }
        }
        for name in stale { unlink("\(dir)/\(name)") }
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

import CHDF5
import Glibc

// Reading a checkpoint: the seal first (CheckpointSeal.swift), then every object, each size checked
// against the bytes stored before anything is allocated.
extension Checkpoint {
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
    struct Reader {
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

        func summary(_ c: ModelConfig) -> String {
            "vocab_size \(c.vocabSize), embed_size \(c.embedSize), hidden_size \(c.hiddenSize), num_layers \(c.numLayers)"
        }

        func checkFormat() throws(SDLSTMError) {
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

        func readConfig() throws(SDLSTMError) -> ModelConfig {
            let taskName = try string(root, "task")
            guard let task = [Task.languageModel, .seq2seq, .tagger].first(where: { Checkpoint.name($0) == taskName }) else {
                throw .format("attribute task: unknown task \"\(taskName)\"")
            }
            var c = ModelConfig(task: task)
            for field in ModelConfig.fields {
                switch field {
                case .int(let n, let k, _): c[keyPath: k] = try int(root, n)
                case .flag(let n, let k, _): c[keyPath: k] = try bool(root, n)
                case .real(let n, let k, _): c[keyPath: k] = try float(root, n)
                case .seed(let n, let k, _): c[keyPath: k] = try uint(root, n)
                }
            }
            return c
        }

        func readTraining(_ o: inout Optimizer, _ rng: inout Random) throws(SDLSTMError) {
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

        func readDropout(_ model: any Model) throws(SDLSTMError) {
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
        func readTags(_ model: any Model) throws(SDLSTMError) {
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

        func readState() throws(SDLSTMError) -> [StateTensor] {
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

        func readAttachments() throws(SDLSTMError) -> Attachments {
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

        func checkAttributes(_ obj: hid_t, names: [String], expected: [String], _ what: String) throws(SDLSTMError) {
            for n in names where !expected.contains(n) { throw .format("\(what): unexpected attribute \"\(n)\"") }
            for e in expected where !names.contains(e) { throw .format("\(what): missing attribute \"\(e)\"") }
        }

        func label(_ name: String, _ group: String?) -> String {
            "attribute " + (group.map { "\($0)/" } ?? "") + name
        }

        func string(_ obj: hid_t, _ name: String, in group: String? = nil) throws(SDLSTMError) -> String {
            guard case .string(let s) = try H5.readAttribute(obj, name, label(name, group)) else {
                throw .format("\(label(name, group)): expected a string")
            }
            return s
        }

        func int64(_ obj: hid_t, _ name: String, in group: String? = nil) throws(SDLSTMError) -> Int64 {
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
        func count(_ obj: hid_t, _ name: String) throws(SDLSTMError) -> Int64 {
            let v = try int64(obj, name, in: "training")
            guard v <= TrainingProgress.maxCount else {
                throw .format("attribute training/\(name): \(v) exceeds 2^53, the largest count this library keeps")
            }
            return v
        }

        func int(_ obj: hid_t, _ name: String, in group: String? = nil) throws(SDLSTMError) -> Int {
            let v = try int64(obj, name, in: group)
            guard v <= Int64(Int32.max) else { throw .format("\(label(name, group)): \(v) does not fit in int32") }
            return Int(v)
        }

        func uint(_ obj: hid_t, _ name: String, in group: String? = nil) throws(SDLSTMError) -> UInt64 {
            switch try H5.readAttribute(obj, name, label(name, group)) {
            case .uint(let x): return x
            case .int(let x) where x >= 0: return UInt64(x)
            default: throw .format("\(label(name, group)): expected a non-negative integer")
            }
        }

        func bool(_ obj: hid_t, _ name: String, in group: String? = nil) throws(SDLSTMError) -> Bool {
            let v = try int64(obj, name, in: group)
            guard v <= 1 else { throw .format("\(label(name, group)): \(v), expected 0 or 1") }
            return v == 1
        }

        func float(_ obj: hid_t, _ name: String, in group: String? = nil) throws(SDLSTMError) -> Float {
            guard case .float(let x) = try H5.readAttribute(obj, name, label(name, group)) else {
                throw .format("\(label(name, group)): expected a float32")
            }
            guard x.isFinite else { throw .format("\(label(name, group)): \(x) is not finite") }
            return Float(x)
        }
    }
}

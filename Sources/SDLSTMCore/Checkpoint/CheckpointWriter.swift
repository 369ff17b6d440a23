import CHDF5
import Glibc

// Writing a checkpoint: the layout docs/CHECKPOINT.md describes, into a temporary file that
// AtomicFile.swift puts in place.
extension Checkpoint {
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

    static func write(_ model: any Model, _ attachments: Attachments, carriedState: Bool, to tmp: String) throws(SDLSTMError) {
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

    static func writeRoot(_ f: hid_t, _ model: any Model) throws(SDLSTMError) {
        let c = model.config
        try H5.writeAttribute(f, "format", format)
        try H5.writeAttribute(f, "format_version", formatVersion)
        try H5.writeAttribute(f, "library_version", libraryVersion)
        try H5.writeAttribute(f, "task", name(c.task))
        for field in ModelConfig.fields {
            switch field {
            case .int(let n, let k, _): try H5.writeAttribute(f, n, Int64(c[keyPath: k]))
            case .flag(let n, let k, _): try H5.writeAttribute(f, n, Int64(c[keyPath: k] ? 1 : 0))
            case .real(let n, let k, _): try H5.writeAttribute(f, n, c[keyPath: k])
            case .seed(let n, let k, _): try H5.writeAttribute(f, n, c[keyPath: k])
            }
        }
    }

    static func writeTraining(_ f: hid_t, _ model: any Model) throws(SDLSTMError) {
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

    static func writeDropout(_ f: hid_t, _ model: any Model) throws(SDLSTMError) {
        let g = try H5.createGroup(f, "dropout")
        defer { H5Gclose(g) }
        for site in DropoutSite.allCases {
            let setting = model.dropout(at: site)
            try H5.writeAttribute(g, "\(name(site))_policy", name(setting.policy))
            try H5.writeAttribute(g, "\(name(site))_p", setting.p)
        }
    }
}

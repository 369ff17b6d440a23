import CHDF5
import Glibc

// The POSIX side of checkpoints: loads refuse anything but a regular file without blocking, and a
// save replaces only a regular file (or nothing), atomically, through a temporary in the same directory.
extension Checkpoint {
    /// A descriptor and the size of `path`, E_IO unless it is an existing regular file this process
    /// can read. The type is checked before opening, as opening a FIFO waits for a writer; O_NONBLOCK
    /// keeps a FIFO swapped in between the two from blocking, and fstat then refuses it.
    static func openReadable(_ path: String) throws(SDLSTMError) -> (fd: Int32, size: Int) {
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
    static func checkReplaceable(_ path: String) throws(SDLSTMError) {
        var st = stat()
        guard stat(path, &st) == 0 else {
            if errno == ENOENT { return }
            throw .io("\(path): cannot stat: \(errnoText())")
        }
        try checkRegular(st, path)
    }

    static func checkRegular(_ st: stat, _ path: String) throws(SDLSTMError) {
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
    struct TempFile {
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
    static func modeFor(_ path: String) -> mode_t {
        var st = stat()
        if stat(path, &st) == 0 { return st.st_mode & 0o777 }
        return 0o666 & ~currentUmask()
    }

    /// The process umask, read without changing it (/proc/self/status), 022 if unknown.
    static func currentUmask() -> mode_t {
        procValue("Umask", file: "/proc/self/status").flatMap { mode_t($0, radix: 8) } ?? 0o022
    }

    /// Makes the rename durable. Filesystems that cannot sync a directory (EINVAL) are left as they are.
    static func syncDirectory(_ dir: String, _ path: String) throws(SDLSTMError) {
        let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw .io("\(path): saved, but its directory cannot be opened to sync it: \(errnoText())") }
        defer { close(fd) }
        if fsync(fd) != 0 && errno != EINVAL && errno != EROFS {
            throw .io("\(path): saved, but the directory sync failed: \(errnoText())")
        }
    }

    /// Removes temporary files that saves of this target left when their process died (a killed save).
    static func removeStaleTemporaries(dir: String, base: String) {
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

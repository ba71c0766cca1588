#if canImport(Glibc)
import Glibc
#endif

/// Small files that must survive a power cut whole or not at all (secrets, the log's history id,
/// segment indexes): written to a fresh temporary file, fdatasync'ed, renamed over the old one,
/// then the directory fsync'ed, without which the new name itself may be lost.
public enum DurableFile {
    /// Writes `bytes` as the file at `path` (in `directory`), created with `mode` from the start.
    /// Returns nil when durable, else the errno of the step that failed (nothing is left behind).
    public static func write(_ bytes: [UInt8], to path: String, directory: String, mode: mode_t = 0o644) -> Int32? {
        let tmp = path + ".tmp"
        unlink(tmp)
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { return errno }
        var failed = bytes.withUnsafeBytes { FileIO.pwriteAll(fd, $0, at: 0) }
        if failed == nil, fdatasync(fd) != 0 { failed = errno }
        close(fd)
        if failed == nil, rename(tmp, path) != 0 { failed = errno }
        if let failed { unlink(tmp); return failed }
        let dfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dfd >= 0 else { return errno }
        defer { close(dfd) }
        return fsync(dfd) == 0 ? nil : errno
    }
}

import CParleySys
#if canImport(Glibc)
import Glibc
#endif

/// One segment file: a 32-byte header, then frames. Named by its base offset (20 digits).
///
/// Header: magic "PRLYLOG1" (8) | version u32 | CRC-32C of bytes 16..<32 (u32) | base offset u64 | created ms i64.
final class Segment {
    static let headerBytes = 32
    static let magic: [UInt8] = Array("PRLYLOG1".utf8)
    static let version: UInt32 = 1

    let path: String
    let base: UInt64
    let fd: Int32
    /// Bytes of valid, written frames (file position of the next frame).
    var size: Int64
    /// Last record offset in the segment (base - 1 when empty).
    var last: UInt64
    var lastTimestampMs: Int64 = 0
    var sealed = false
    /// Readers between taking this segment (under the log's lock) and their last pread of it.
    /// Retention closes the descriptor of a deleted segment once this is 0, never under a reader.
    var readers = 0
    var deleted = false
    /// Sparse index: (offset, file position) of a frame at least every `indexEveryBytes`.
    var index: [(offset: UInt64, position: Int64)] = []
    var lastIndexedPosition: Int64 = -1 << 40
    static let indexEveryBytes: Int64 = 4096

    init(path: String, base: UInt64, fd: Int32, size: Int64) {
        self.path = path
        self.base = base
        self.fd = fd
        self.size = size
        self.last = base &- 1
    }

    static func fileName(base: UInt64) -> String {
        let s = String(base)
        return String(repeating: "0", count: max(0, 20 - s.count)) + s + ".seg"
    }

    func noteFrame(offset: UInt64, position: Int64, timestampMs: Int64) {
        if position - lastIndexedPosition >= Segment.indexEveryBytes {
            index.append((offset, position))
            lastIndexedPosition = position
        }
        last = offset
        lastTimestampMs = timestampMs
    }

    /// File position to start scanning for `offset`.
    func scanStart(for offset: UInt64) -> Int64 {
        var lo = 0, hi = index.count - 1, best = Int64(Segment.headerBytes)
        while lo <= hi {
            let mid = (lo + hi) / 2
            if index[mid].offset <= offset { best = index[mid].position; lo = mid + 1 } else { hi = mid - 1 }
        }
        return best
    }

    static func encodeHeader(base: UInt64, createdMs: Int64) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: headerBytes)
        h.withUnsafeMutableBytes { p in
            p.copyMemory(from: UnsafeRawBufferPointer(start: magic, count: 8))
            p.storeBytes(of: version.littleEndian, toByteOffset: 8, as: UInt32.self)
            p.storeBytes(of: base.littleEndian, toByteOffset: 16, as: UInt64.self)
            p.storeBytes(of: createdMs.littleEndian, toByteOffset: 24, as: Int64.self)
            let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(p)[16..<32]))
            p.storeBytes(of: crc.littleEndian, toByteOffset: 12, as: UInt32.self)
        }
        return h
    }

    /// Validates a header; returns the base offset or why it is bad.
    static func decodeHeader(_ h: [UInt8]) -> (base: UInt64?, problem: String?) {
        guard h.count == headerBytes else { return (nil, "shorter than \(headerBytes) bytes") }
        guard Array(h[0..<8]) == magic else { return (nil, "bad magic") }
        return h.withUnsafeBytes { p -> (base: UInt64?, problem: String?) in
            let version = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
            guard version == Segment.version else { return (nil, "unknown version \(version)") }
            let crc = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 12, as: UInt32.self))
            guard CRC32C.checksum(UnsafeRawBufferPointer(rebasing: p[16..<32])) == crc else { return (nil, "header checksum mismatch") }
            return (UInt64(littleEndian: p.loadUnaligned(fromByteOffset: 16, as: UInt64.self)), nil)
        }
    }

    // MARK: sparse index file (.idx), written when the segment is sealed

    var indexPath: String { String(path.dropLast(4)) + ".idx" }

    /// `count u32 | (offset u64, position u64) * count | crc u32` over everything before the CRC.
    func encodeIndex() -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(8 + index.count * 16)
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        put(UInt32(index.count))
        for e in index { put(e.offset); put(UInt64(e.position)) }
        put(CRC32C.checksum(out))
        return out
    }
}

/// Small wrappers over file syscalls that report errno as `LogError`.
enum FileIO {
    static func pwriteAll(_ fd: Int32, _ p: UnsafeRawBufferPointer, at position: Int64) -> Int32? {
        var done = 0
        while done < p.count {
            let n = pwrite(fd, p.baseAddress! + done, p.count - done, off_t(position) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                return errno
            }
            if n == 0 { return ENOSPC }
            done += n
        }
        return nil
    }

    /// Reads up to `count` bytes at `position`; returns how many were read.
    static func pread(_ fd: Int32, _ p: UnsafeMutableRawPointer, _ count: Int, at position: Int64) -> Int {
        var done = 0
        while done < count {
            let n = Glibc.pread(fd, p + done, count - done, off_t(position) + off_t(done))
            if n < 0 { if errno == EINTR { continue }; return done }
            if n == 0 { break }
            done += n
        }
        return done
    }

    static func fsyncDirectory(_ dir: String) {
        let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 { _ = fsync(fd); _ = close(fd) }
    }

    static func fileSize(_ fd: Int32) -> Int64 {
        var st = stat()
        return fstat(fd, &st) == 0 ? Int64(st.st_size) : 0
    }

    static func readFile(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        let size = Int(fileSize(fd))
        var out = [UInt8](repeating: 0, count: size)
        let n = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, size, at: 0) }
        return n == size ? out : nil
    }

    /// Writes a whole file atomically and durably (`DurableFile`); errno is left set on failure.
    static func writeAtomically(_ path: String, _ bytes: [UInt8], directory: String) -> Bool {
        guard let e = DurableFile.write(bytes, to: path, directory: directory) else { return true }
        errno = e
        return false
    }
}

func nowMs() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}

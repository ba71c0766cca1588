import ParleyLog

/// The record that closes each stream message in a node's local copy. One stream message holds a
/// batch of records (group commit), so the copy's offsets are not the stream's sequences: after a
/// message's records (none for filler) the copy gets this no-op, which says which stream message
/// it has applied through and the chain's tip then. Every node writes the same records for the same
/// stream, so offsets agree across the cluster; a restarted node reads where to resume from its
/// copy's last record.
public enum CopyMarker {
    static let magic: [UInt8] = Array("PCM1".utf8)
    public static let payloadBytes = 20

    public static func record(offset: UInt64, streamSeq: UInt64, lastValid: UInt64) -> Record {
        var p = magic
        p.reserveCapacity(payloadBytes)
        withUnsafeBytes(of: streamSeq.littleEndian) { p += $0 }
        withUnsafeBytes(of: lastValid.littleEndian) { p += $0 }
        return Record(type: .noop, offset: offset, payload: p)
    }

    /// The stream sequence and chain tip a marker records; nil if `r` is not a marker.
    public static func read(_ r: Record) -> (streamSeq: UInt64, lastValid: UInt64)? {
        guard r.type == .noop, r.payload.count == payloadBytes, r.payload.starts(with: magic) else { return nil }
        func u64(_ at: Int) -> UInt64 {
            var v: UInt64 = 0
            for i in (0..<8).reversed() { v = v << 8 | UInt64(r.payload[at + i]) }
            return v
        }
        return (u64(4), u64(12))
    }
}

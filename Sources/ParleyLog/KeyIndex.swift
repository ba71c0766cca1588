/// Idempotency keys → offset of the record that carried them, as an open-addressing table of
/// 64-bit fingerprints (linear probing, load ≤ 1/2): 16 bytes a slot, no allocation per key, no
/// SipHash per lookup. A fingerprint match is only a candidate: `Log.lookup` reads the record and
/// compares the real key, so a collision can never make a new message look like a duplicate.
struct KeyIndex {
    /// Interleaved (fingerprint, offset) pairs: one cache line touch per probe, not two.
    private var slots: [Slot]
    struct Slot { var fingerprint: UInt64; var offset: UInt64 }
    private(set) var count = 0
    private var mask: Int
    /// Per-process seed, so nobody can precompute colliding keys to build long probe chains.
    let seed: UInt64

    init(capacity: Int = 1024, seed: UInt64 = UInt64.random(in: 1...UInt64.max)) {
        var n = 16
        while n < capacity * 2 { n <<= 1 }
        slots = [Slot](repeating: Slot(fingerprint: 0, offset: 0), count: n)
        mask = n - 1
        self.seed = seed
    }

    @inline(__always) static func mix(_ x: UInt64) -> UInt64 {
        var x = x
        x ^= x >> 32; x &*= 0xD6E8_FEB8_6659_FD93
        x ^= x >> 32; x &*= 0xD6E8_FEB8_6659_FD93
        x ^= x >> 32
        return x
    }

    /// Fingerprint of (conversation, key). Never 0 (0 marks an empty slot).
    func fingerprint(_ conversation: ConversationID, _ key: UnsafeRawBufferPointer) -> UInt64 {
        var h = KeyIndex.mix(seed ^ conversation.high &* 0x9E37_79B9_7F4A_7C15 ^ conversation.low)
        var i = 0
        let n = key.count
        while i &+ 8 <= n {
            h = KeyIndex.mix(h ^ UInt64(littleEndian: key.loadUnaligned(fromByteOffset: i, as: UInt64.self)))
            i &+= 8
        }
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while i < n { tail |= UInt64(key[i]) << shift; shift &+= 8; i &+= 1 }
        h = KeyIndex.mix(h ^ tail ^ (UInt64(n) << 56))
        return h == 0 ? 1 : h
    }

    /// Remembers the newest record for a fingerprint.
    mutating func insert(_ fp: UInt64, offset: UInt64) {
        if (count + 1) * 2 > slots.count { grow() }
        let mask = self.mask
        let added: Bool = slots.withUnsafeMutableBufferPointer { s in
            var i = Int(truncatingIfNeeded: fp) & mask
            while true {
                let f = s[i].fingerprint
                if f == 0 { s[i] = Slot(fingerprint: fp, offset: offset); return true }
                if f == fp { s[i].offset = offset; return false }
                i = (i + 1) & mask
            }
        }
        if added { count += 1 }
    }

    func find(_ fp: UInt64) -> UInt64? {
        slots.withUnsafeBufferPointer { s in
            var i = Int(truncatingIfNeeded: fp) & mask
            while true {
                let f = s[i].fingerprint
                if f == 0 { return nil }
                if f == fp { return s[i].offset }
                i = (i + 1) & mask
            }
        }
    }

    private mutating func grow() {
        let old = slots
        slots = [Slot](repeating: Slot(fingerprint: 0, offset: 0), count: old.count * 2)
        mask = slots.count - 1
        count = 0
        for s in old where s.fingerprint != 0 { insert(s.fingerprint, offset: s.offset) }
    }
}

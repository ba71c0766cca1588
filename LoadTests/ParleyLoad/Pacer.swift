/// An open-loop send schedule. Each send is due one interval (± jitter) after the previous *due*
/// time — never after the previous actual send or its reply — and latency is measured from the due
/// time. So when the server (or the tool) stalls, the sends that should have happened during the
/// stall still happen, late, and their latency shows the stall: coordinated omission (a closed loop
/// that politely waits, and so samples the stall once) does not hide it.
struct Pacer {
    /// Mean nanoseconds between sends.
    let intervalNs: Double
    /// 0 = fixed interval; j = each gap uniform in [1 - j, 1 + j] × interval (the mean rate is kept).
    let jitter: Double
    private(set) var nextDueNs: UInt64
    private var rng: SplitMix64

    init(ratePerSecond: Double, jitter: Double, startNs: UInt64, seed: UInt64) {
        precondition(ratePerSecond > 0 && jitter >= 0 && jitter <= 1)
        intervalNs = 1e9 / ratePerSecond
        self.jitter = jitter
        rng = SplitMix64(seed: seed)
        // Start at a random phase within one interval so that many senders spread out evenly.
        nextDueNs = startNs &+ UInt64(rng.nextUnit() * intervalNs)
    }

    /// The due time of the next send; moves the schedule on by one gap.
    mutating func take() -> UInt64 {
        let due = nextDueNs
        let gap = intervalNs * (1 + jitter * (2 * rng.nextUnit() - 1))
        nextDueNs = due &+ UInt64(max(1, gap))
        return due
    }

    /// Every send due at or before `nowNs`, in order (what a sender woken at `nowNs` owes).
    mutating func due(by nowNs: UInt64) -> [UInt64] {
        var out: [UInt64] = []
        while nextDueNs <= nowNs { out.append(take()) }
        return out
    }
}

/// A small fast generator (SplitMix64); the tool needs varied, reproducible numbers, not secrets.
struct SplitMix64 {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    mutating func nextUnit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}

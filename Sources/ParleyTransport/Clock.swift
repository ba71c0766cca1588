import CParleySys

@inline(__always) public func monotonicMs() -> UInt64 { parley_now_ms() }
@inline(__always) public func monotonicNs() -> UInt64 { parley_now_ns() }
public func residentBytes() -> UInt64 { parley_rss_bytes() }
@inline(__always) func parleySetSchedBatch() -> Int32 { parley_set_sched_batch() }

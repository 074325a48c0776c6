//! The machine's monotonic clock, as nanoseconds that mean the same in every process: the
//! conductor takes the time of a trigger and each worker the time of a receipt, and the difference
//! is a latency. (`std::time::Instant` reads the same clock but cannot cross a process boundary.)

use nix::time::{ClockId, clock_gettime};

/// Nanoseconds of `CLOCK_MONOTONIC`.
pub fn now_ns() -> u64 {
    let t = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("the monotonic clock is readable");
    t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
}

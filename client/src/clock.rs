//! The server's time, as this computer can best know it.
//!
//! The countdown to `ends_at` must not move when the student (or an NTP daemon) changes the
//! system clock, so the engine never reads the wall clock for it. It keeps samples of the server's
//! clock (`server_time` of `WELCOME` and `HEARTBEAT`), each pinned to a reading of a monotonic
//! clock taken when the frame arrived and corrected by half the measured round-trip time, and
//! counts forward from them with the monotonic clock alone.
//!
//! A frame can only arrive late, never early, so of the recent samples the one that puts the
//! server's clock furthest ahead is the least delayed: that one is used. Only the last
//! [`WINDOW`] samples count, so that a correction of the server's own clock is taken up within a
//! few heartbeats.

use invigil_protocol::Timestamp;
use std::collections::VecDeque;
use std::time::Duration;

/// How many recent samples are kept.
pub const WINDOW: usize = 8;

/// A reading of a clock that never jumps. On Linux it is `CLOCK_BOOTTIME`, which also counts
/// while the machine sleeps; elsewhere, time since the process started by [`std::time::Instant`].
pub fn monotonic_now() -> Duration {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use nix::time::{ClockId, clock_gettime};
        if let Ok(t) = clock_gettime(ClockId::CLOCK_BOOTTIME) {
            return Duration::new(t.tv_sec().max(0) as u64, t.tv_nsec().max(0) as u32);
        }
    }
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed()
}

/// Samples of the server's clock and the estimate drawn from them.
#[derive(Debug, Clone, Default)]
pub struct ServerClock {
    /// `server milliseconds − monotonic milliseconds` of each recent sample, oldest first.
    offsets: VecDeque<i64>,
    /// The last measured round-trip time.
    rtt: Option<Duration>,
}

impl ServerClock {
    /// An empty clock: it knows nothing until the first sample.
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes a round-trip time measured on the connection (the socket's opening handshake).
    pub fn set_rtt(&mut self, rtt: Duration) {
        self.rtt = Some(rtt);
    }

    /// The last measured round-trip time.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// Records that the server's clock read `server_time` when a frame left it, the frame
    /// arriving at monotonic reading `received_at`.
    pub fn record(&mut self, server_time: Timestamp, received_at: Duration) {
        let one_way = self.rtt.map_or(0, |rtt| millis(rtt) / 2);
        let offset = server_time.unix_ms() + one_way - millis(received_at);
        if self.offsets.len() == WINDOW {
            self.offsets.pop_front();
        }
        self.offsets.push_back(offset);
    }

    /// The server's time at monotonic reading `now`, in milliseconds since the Unix epoch; `None`
    /// before the first sample.
    pub fn server_ms_at(&self, now: Duration) -> Option<i64> {
        self.offsets.iter().max().map(|offset| millis(now) + offset)
    }

    /// The server's time now.
    pub fn server_now(&self) -> Option<Timestamp> {
        self.server_ms_at(monotonic_now())
            .and_then(Timestamp::from_unix_ms)
    }

    /// Whether any sample was recorded.
    pub fn is_known(&self) -> bool {
        !self.offsets.is_empty()
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_unix_ms(ms).unwrap()
    }

    const T0: i64 = 1_790_000_000_000;

    #[test]
    fn the_estimate_counts_forward_with_the_monotonic_clock_only() {
        let mut clock = ServerClock::new();
        clock.record(at(T0), Duration::from_secs(100));
        // Whatever the wall clock does, 90 s of monotonic time are 90 s of server time.
        assert_eq!(
            clock.server_ms_at(Duration::from_secs(190)),
            Some(T0 + 90_000)
        );
    }

    #[test]
    fn half_the_round_trip_is_added_to_each_sample() {
        let mut clock = ServerClock::new();
        clock.set_rtt(Duration::from_millis(80));
        clock.record(at(T0), Duration::from_secs(10));
        assert_eq!(clock.server_ms_at(Duration::from_secs(10)), Some(T0 + 40));
    }

    #[test]
    fn a_delayed_frame_does_not_pull_the_estimate_back() {
        let mut clock = ServerClock::new();
        clock.record(at(T0), Duration::from_millis(1_000));
        // This heartbeat left the server 1 s later but spent 700 ms in a queue on the way.
        clock.record(at(T0 + 1_000), Duration::from_millis(2_700));
        assert_eq!(
            clock.server_ms_at(Duration::from_millis(3_000)),
            Some(T0 + 2_000)
        );
    }

    #[test]
    fn a_correction_of_the_server_clock_is_taken_up_after_the_window() {
        let mut clock = ServerClock::new();
        clock.record(at(T0), Duration::from_secs(0));
        // The server's clock was set back by a minute.
        for i in 1..=WINDOW as i64 {
            clock.record(at(T0 - 60_000 + i * 1_000), Duration::from_secs(i as u64));
        }
        assert_eq!(
            clock.server_ms_at(Duration::from_secs(20)),
            Some(T0 - 60_000 + 20_000)
        );
    }

    #[test]
    fn nothing_is_known_before_the_first_sample() {
        let clock = ServerClock::new();
        assert!(!clock.is_known());
        assert_eq!(clock.server_ms_at(Duration::from_secs(1)), None);
    }

    #[test]
    fn the_monotonic_clock_never_goes_back() {
        let a = monotonic_now();
        let b = monotonic_now();
        assert!(b >= a);
    }
}

//! When the server last heard from a connection, on the monotonic clock: the silence that closes
//! a socket (4008) is measured on it, so that a wall clock stepped by NTP or by hand can neither
//! close every socket at once nor keep a dead one open. The wall-clock `last_seen` that boards
//! show is derived from it when asked.

use invigil_protocol::Timestamp;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The process's origin of monotonic time.
fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

fn since_origin_ms(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(origin()).as_millis()).unwrap_or(u64::MAX)
}

/// When a connection was last heard from (ms since the process's monotonic origin).
#[derive(Debug)]
pub struct Heard(AtomicU64);

impl Heard {
    /// Heard now (a connection that just opened).
    pub fn now() -> Self {
        Self(AtomicU64::new(since_origin_ms(Instant::now())))
    }

    /// Notes that the connection was heard now.
    pub fn note(&self) {
        self.0
            .store(since_origin_ms(Instant::now()), Ordering::Relaxed);
    }

    /// When it was last heard.
    pub fn at(&self) -> Instant {
        origin() + Duration::from_millis(self.0.load(Ordering::Relaxed))
    }

    /// The wall-clock time of [`Heard::at`], for people: now less the time since.
    pub fn wall(&self) -> Option<Timestamp> {
        let ago = i64::try_from(self.at().elapsed().as_millis()).unwrap_or(i64::MAX);
        Timestamp::from_unix_ms(Timestamp::now().unix_ms().saturating_sub(ago))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heard_times_rise_on_the_monotonic_clock_and_read_as_recent_wall_times() {
        let heard = Heard::now();
        let first = heard.at();
        std::thread::sleep(Duration::from_millis(5));
        heard.note();
        assert!(heard.at() > first);
        let wall = heard.wall().unwrap().unix_ms();
        assert!((Timestamp::now().unix_ms() - wall).abs() < 1000);
    }
}

//! Time as the proctor reads it: a monotonic instant, from which every duration (time away, the
//! one-second coalescing window, the display poll) is measured, and the device's wall clock for
//! the `at` of a signal. Both are read together, once per observation, so that a test can drive
//! them with a fake clock and no signal's duration ever depends on the wall clock being set.

use invigil_protocol::Timestamp;
use std::time::Instant;

/// One reading of both clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moment {
    /// The monotonic clock: durations.
    pub mono: Instant,
    /// The device's wall clock: the `at` of a signal.
    pub wall: Timestamp,
}

/// Where moments come from.
pub trait Clock: Send + Sync + 'static {
    /// Both clocks, now.
    fn now(&self) -> Moment;
}

/// The computer's clocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Moment {
        Moment {
            mono: Instant::now(),
            wall: Timestamp::now(),
        }
    }
}

#[cfg(test)]
pub(crate) mod fake {
    //! A clock that only moves when a test moves it.

    use super::{Clock, Moment};
    use invigil_protocol::Timestamp;
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    /// Starts at an arbitrary instant and 2026-11-22T09:00:00Z.
    pub(crate) struct FakeClock {
        start: Instant,
        wall: time::OffsetDateTime,
        elapsed: Mutex<Duration>,
    }

    impl FakeClock {
        pub(crate) fn new() -> Self {
            Self {
                start: Instant::now(),
                wall: time::macros::datetime!(2026-11-22 09:00 UTC),
                elapsed: Mutex::new(Duration::ZERO),
            }
        }

        /// Moves both clocks forward by `ms` milliseconds and says the new moment.
        pub(crate) fn advance(&self, ms: u64) -> Moment {
            self.advance_by(Duration::from_millis(ms))
        }

        /// Moves both clocks forward by `by` and says the new moment.
        pub(crate) fn advance_by(&self, by: Duration) -> Moment {
            *self.elapsed.lock().unwrap() += by;
            self.now()
        }
    }

    impl Clock for FakeClock {
        fn now(&self) -> Moment {
            let elapsed = *self.elapsed.lock().unwrap();
            Moment {
                mono: self.start + elapsed,
                wall: Timestamp::from_datetime(self.wall + elapsed),
            }
        }
    }
}

//! Reconnection delays: exponential backoff with full jitter.
//!
//! After the `n`-th failed attempt in a row the engine waits a uniformly random time in
//! `[0, min(cap, base × 2ⁿ)]`. The randomness spreads a room of students whose connections were
//! lost together (the server restarted, the Wi-Fi dropped) so that they do not come back in
//! lockstep; the cap keeps a student from waiting long once the server is back.

use rand::Rng;
use std::time::Duration;

/// The first ceiling: about half a second.
pub const BASE: Duration = Duration::from_millis(500);
/// The largest ceiling.
pub const CAP: Duration = Duration::from_secs(10);
/// Over how long a room spreads its reconnections when the server says it is going away or
/// restarting (close 1001 or 1012): every socket of the server was closed at the same moment,
/// and half a second would bring them all back at once.
pub const RESTART_SPREAD: Duration = Duration::from_secs(5);

/// The delay before reconnecting to a server that closed the socket with 1001 or 1012: uniformly
/// random in `[0, RESTART_SPREAD]`.
pub fn after_restart(rng: &mut impl Rng) -> Duration {
    let millis = u64::try_from(RESTART_SPREAD.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rng.random_range(0..=millis))
}

/// The state of one run of reconnection attempts.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    failures: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(BASE, CAP)
    }
}

impl Backoff {
    /// Backoff from `base` growing to `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            failures: 0,
        }
    }

    /// The ceiling of the next delay: `min(cap, base × 2^failures)`.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.failures.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The delay before the next attempt, drawn with `rng`; counts one more failure.
    pub fn next_delay(&mut self, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling();
        self.failures = self.failures.saturating_add(1);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rng.random_range(0..=millis))
    }

    /// Starts over after a connection succeeded.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Failed attempts since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// The longest `Retry-After` of a busy server that is honoured as it is; a longer one is waited
/// this long (the student is waiting at the sign-in screen).
pub const BUSY_MAX: Duration = Duration::from_secs(60);

/// The wait before signing in again after 503 `server_busy`: the server's `Retry-After` (1 s when
/// it gives none, at most [`BUSY_MAX`]) plus a uniform jitter of up to half of it, and at least up
/// to 1 s, so that a room of students refused together does not come back together.
pub fn busy_delay(retry_after_secs: Option<u64>, rng: &mut impl Rng) -> Duration {
    let wait = Duration::from_secs(retry_after_secs.unwrap_or(1)).min(BUSY_MAX);
    let spread = (wait / 2).max(Duration::from_secs(1));
    let millis = u64::try_from(spread.as_millis()).unwrap_or(u64::MAX);
    wait + Duration::from_millis(rng.random_range(0..=millis))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn a_busy_server_is_asked_again_after_its_retry_after_plus_jitter() {
        let mut rng = StdRng::seed_from_u64(3);
        let delays: Vec<Duration> = (0..1000).map(|_| busy_delay(Some(4), &mut rng)).collect();
        assert!(delays.iter().all(|d| *d >= Duration::from_secs(4)));
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(6)));
        // Spread: not all at once.
        let early = delays
            .iter()
            .filter(|d| **d < Duration::from_secs(5))
            .count();
        assert!(
            (300..700).contains(&early),
            "{early} of 1000 in the first half"
        );
        let none = busy_delay(None, &mut rng);
        assert!(none >= Duration::from_secs(1) && none <= Duration::from_secs(2));
        let huge = busy_delay(Some(u64::MAX), &mut rng);
        assert!(huge >= BUSY_MAX && huge <= BUSY_MAX + BUSY_MAX / 2);
    }

    #[test]
    fn the_ceiling_doubles_from_half_a_second_to_ten_seconds() {
        let mut backoff = Backoff::default();
        let mut rng = StdRng::seed_from_u64(1);
        let mut ceilings = Vec::new();
        for _ in 0..8 {
            ceilings.push(backoff.ceiling().as_millis());
            backoff.next_delay(&mut rng);
        }
        assert_eq!(
            ceilings,
            [500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000]
        );
        for _ in 0..100 {
            backoff.next_delay(&mut rng);
        }
        assert_eq!(backoff.ceiling(), CAP);
    }

    #[test]
    fn delays_stay_under_their_ceiling_and_spread_over_it() {
        let mut rng = StdRng::seed_from_u64(7);
        let delays: Vec<Duration> = (0..1000)
            .map(|_| {
                let mut b = Backoff::default();
                for _ in 0..5 {
                    b.next_delay(&mut rng);
                }
                b.next_delay(&mut rng)
            })
            .collect();
        assert!(delays.iter().all(|d| *d <= CAP));
        // Full jitter: a room of clients spreads over the whole interval, not in lockstep.
        let early = delays.iter().filter(|d| d.as_millis() < 3_000).count();
        let late = delays.iter().filter(|d| d.as_millis() > 7_000).count();
        assert!(early > 200 && late > 200, "early {early}, late {late}");
    }

    #[test]
    fn after_a_restart_a_room_spreads_over_five_seconds() {
        let mut rng = StdRng::seed_from_u64(11);
        let delays: Vec<Duration> = (0..1000).map(|_| after_restart(&mut rng)).collect();
        assert!(delays.iter().all(|d| *d <= RESTART_SPREAD));
        let first_second = delays.iter().filter(|d| d.as_millis() < 1000).count();
        let last_second = delays.iter().filter(|d| d.as_millis() >= 4000).count();
        assert!(
            first_second < 300 && last_second > 100,
            "first second {first_second}, last second {last_second}"
        );
    }

    #[test]
    fn a_success_starts_over() {
        let mut backoff = Backoff::default();
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..4 {
            backoff.next_delay(&mut rng);
        }
        backoff.reset();
        assert_eq!(backoff.failures(), 0);
        assert_eq!(backoff.ceiling(), BASE);
    }
}

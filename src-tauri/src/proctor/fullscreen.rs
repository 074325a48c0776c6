//! Fullscreen: requested when the exam opens, watched, and put back when the student leaves it.
//!
//! Tauri has no fullscreen-changed event, and `is_fullscreen()` is not enough to watch with: on
//! Linux (and in known macOS cases) it returns what the app last asked for, not what the window
//! manager did, so a window the student took out of fullscreen still says `true`. The window
//! is therefore taken to be fullscreen when it both says so and covers its monitor, checked on
//! every resize or move and on the display poll. A window that stops covering its monitor is
//! checked once more a moment later ([`CONFIRM_EXIT`]) before the exit is reported, so that a
//! resize seen halfway through a change never counts as leaving.
//!
//! `is_always_on_top()` is evidence only where the platform reports the real state (Windows,
//! macOS). GTK 3 on X11 does not read the window manager's `_NET_WM_STATE_ABOVE` back (measured
//! under openbox: the window manager set it, `is_always_on_top()` said `false`), so there the
//! request is made and not judged; on Wayland it is known to be ignored.

use crate::proctor::displays::Rect;
use std::time::{Duration, Instant};

/// How long the window manager has to make the window fullscreen.
pub(crate) const GRACE: Duration = Duration::from_secs(3);
/// How long an exit must last before it is reported.
pub(crate) const CONFIRM_EXIT: Duration = Duration::from_millis(250);
/// A window taken out of fullscreen within this long after being put back...
pub(crate) const QUICK_EXIT: Duration = Duration::from_secs(1);
/// ...this many times in a row is being fought over by the window manager: the app stops.
pub(crate) const MAX_QUICK_EXITS: u32 = 3;
/// How long after fullscreen the window manager has to say the window is above the others (it
/// answers the two requests separately, and the second may come a little later).
pub(crate) const ABOVE_GRACE: Duration = Duration::from_millis(1000);

/// Whether `window` covers `monitor` (a few pixels of rounding allowed).
pub(crate) fn covers(window: Rect, monitor: Rect) -> bool {
    let near = |a: i64, b: i64, slack: i64| (a - b).abs() <= slack;
    near(window.x.into(), monitor.x.into(), 2)
        && near(window.y.into(), monitor.y.into(), 2)
        && near(window.width.into(), monitor.width.into(), 4)
        && near(window.height.into(), monitor.height.into(), 4)
}

/// One look at the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct WindowProbe {
    /// What `is_fullscreen()` says.
    pub(crate) fullscreen_flag: bool,
    /// The window's outer rectangle, if known.
    pub(crate) window: Option<Rect>,
    /// The rectangle of the monitor it is on, if known.
    pub(crate) monitor: Option<Rect>,
    /// What `is_always_on_top()` says.
    pub(crate) always_on_top: bool,
    /// What `is_focused()` says.
    pub(crate) focused: bool,
}

impl WindowProbe {
    /// Whether the window is really fullscreen (see the module's text).
    pub(crate) fn is_fullscreen(&self) -> bool {
        match (self.window, self.monitor) {
            (Some(window), Some(monitor)) => self.fullscreen_flag && covers(window, monitor),
            _ => self.fullscreen_flag,
        }
    }
}

/// Why fullscreen is not held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotHeld {
    /// The window manager never made the window fullscreen.
    NotGranted,
    /// The window manager keeps taking the window out of fullscreen.
    Undone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Requested { since: Instant },
    On { since: Instant },
    Leaving { on_since: Instant, seen: Instant },
    Given(NotHeld),
}

/// What the guard concluded from a look at the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GuardEvent {
    /// The window is fullscreen as asked.
    Confirmed,
    /// The student left fullscreen: report it, and ask for fullscreen again when `restore`.
    Exited {
        /// Whether the app puts it back (it stops when the window manager fights it).
        restore: bool,
    },
    /// Fullscreen is not to be had here.
    Unavailable(NotHeld),
}

/// The fullscreen of one exam (see the module's text).
#[derive(Debug, Clone)]
pub(crate) struct FullscreenGuard {
    phase: Phase,
    quick_exits: u32,
    above_observable: bool,
    always_on_top: Option<bool>,
    first_on: Option<Instant>,
}

/// The state of fullscreen, as the page shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FullscreenState {
    /// Asked for; the window manager has not answered yet.
    Requested,
    /// Fullscreen.
    On,
    /// Not to be had here.
    Unavailable,
}

impl FullscreenGuard {
    /// Fullscreen has just been asked for; `above_observable`: whether `is_always_on_top()`
    /// tells the truth on this platform.
    pub(crate) fn requested(now: Instant, above_observable: bool) -> Self {
        Self {
            above_observable,
            phase: Phase::Requested { since: now },
            quick_exits: 0,
            always_on_top: None,
            first_on: None,
        }
    }

    /// The state, as the page shows it.
    pub(crate) fn state(&self) -> FullscreenState {
        match self.phase {
            Phase::Requested { .. } => FullscreenState::Requested,
            Phase::On { .. } | Phase::Leaving { .. } => FullscreenState::On,
            Phase::Given(_) => FullscreenState::Unavailable,
        }
    }

    /// Whether fullscreen was decided (held, or known not to be had).
    pub(crate) fn settled(&self) -> bool {
        !matches!(self.phase, Phase::Requested { .. })
    }

    /// Whether the window was ever fullscreen during this exam.
    pub(crate) fn confirmed_once(&self) -> bool {
        self.first_on.is_some()
    }

    /// Whether both fullscreen and always-on-top are decided (held or known not to be had).
    pub(crate) fn decided(&self) -> bool {
        match self.phase {
            Phase::Requested { .. } => false,
            Phase::Given(_) => true,
            Phase::On { .. } | Phase::Leaving { .. } => {
                !self.above_observable || self.always_on_top.is_some()
            }
        }
    }

    /// Why fullscreen is not held, if it is not.
    pub(crate) fn not_held(&self) -> Option<NotHeld> {
        match self.phase {
            Phase::Given(why) => Some(why),
            _ => None,
        }
    }

    /// Whether the window manager keeps the window above the others: `true` once it said so
    /// while fullscreen, `false` when it had not said so [`ABOVE_GRACE`] after fullscreen,
    /// `None` until then, or always where the platform cannot tell.
    pub(crate) fn always_on_top(&self) -> Option<bool> {
        self.always_on_top
    }

    /// When the window should be looked at again.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        match (self.phase, self.always_on_top, self.first_on) {
            (Phase::Requested { since }, _, _) => Some(since + GRACE),
            (Phase::Leaving { seen, .. }, _, _) => Some(seen + CONFIRM_EXIT),
            (Phase::On { .. }, None, Some(first)) if self.above_observable => {
                Some(first + ABOVE_GRACE)
            }
            (Phase::On { .. } | Phase::Given(_), _, _) => None,
        }
    }

    /// A look at the window at `now`.
    pub(crate) fn probe(&mut self, probe: &WindowProbe, now: Instant) -> Option<GuardEvent> {
        let real = probe.is_fullscreen();
        if real {
            let first = *self.first_on.get_or_insert(now);
            if !self.above_observable {
                // Nothing to learn from the flag here.
            } else if probe.always_on_top {
                self.always_on_top = Some(true);
            } else if self.always_on_top.is_none()
                && now.saturating_duration_since(first) >= ABOVE_GRACE
            {
                self.always_on_top = Some(false);
            }
        }
        match self.phase {
            Phase::Requested { since } => {
                if real {
                    self.phase = Phase::On { since: now };
                    Some(GuardEvent::Confirmed)
                } else if now.saturating_duration_since(since) >= GRACE {
                    self.phase = Phase::Given(NotHeld::NotGranted);
                    Some(GuardEvent::Unavailable(NotHeld::NotGranted))
                } else {
                    None
                }
            }
            Phase::On { since } => {
                if !real {
                    self.phase = Phase::Leaving {
                        on_since: since,
                        seen: now,
                    };
                }
                None
            }
            Phase::Leaving { on_since, seen } => {
                if real {
                    self.phase = Phase::On { since: on_since };
                    return None;
                }
                if now.saturating_duration_since(seen) < CONFIRM_EXIT {
                    return None;
                }
                if seen.saturating_duration_since(on_since) < QUICK_EXIT {
                    self.quick_exits += 1;
                } else {
                    self.quick_exits = 0;
                }
                if self.quick_exits >= MAX_QUICK_EXITS {
                    self.phase = Phase::Given(NotHeld::Undone);
                    Some(GuardEvent::Exited { restore: false })
                } else {
                    self.phase = Phase::Requested { since: now };
                    Some(GuardEvent::Exited { restore: true })
                }
            }
            Phase::Given(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proctor::clock::Clock;
    use crate::proctor::clock::fake::FakeClock;

    const SCREEN: Rect = Rect {
        x: 0,
        y: 0,
        width: 1920,
        height: 1080,
    };

    fn fullscreen() -> WindowProbe {
        WindowProbe {
            fullscreen_flag: true,
            window: Some(SCREEN),
            monitor: Some(SCREEN),
            always_on_top: true,
            focused: true,
        }
    }

    /// The window manager took the window out of fullscreen; the flag still says `true`.
    fn windowed() -> WindowProbe {
        WindowProbe {
            window: Some(Rect {
                x: 320,
                y: 140,
                width: 1280,
                height: 800,
            }),
            ..fullscreen()
        }
    }

    #[test]
    fn the_flag_alone_does_not_make_a_window_fullscreen() {
        assert!(fullscreen().is_fullscreen());
        assert!(!windowed().is_fullscreen());
        let unknown = WindowProbe {
            window: None,
            ..windowed()
        };
        assert!(
            unknown.is_fullscreen(),
            "without geometry, the flag is all there is"
        );
        assert!(covers(
            Rect {
                x: 1,
                y: 0,
                width: 1918,
                height: 1080
            },
            SCREEN
        ));
    }

    #[test]
    fn fullscreen_is_confirmed_once_the_window_covers_its_monitor() {
        let clock = FakeClock::new();
        let mut guard = FullscreenGuard::requested(clock.now().mono, true);
        assert_eq!(guard.probe(&windowed(), clock.advance(10).mono), None);
        assert_eq!(
            guard.probe(&fullscreen(), clock.advance(100).mono),
            Some(GuardEvent::Confirmed)
        );
        assert_eq!(guard.state(), FullscreenState::On);
        assert_eq!(guard.always_on_top(), Some(true));
    }

    #[test]
    fn always_on_top_is_given_a_moment_after_fullscreen_before_it_counts_as_refused() {
        let clock = FakeClock::new();
        let mut guard = FullscreenGuard::requested(clock.now().mono, true);
        let not_above = WindowProbe {
            always_on_top: false,
            ..fullscreen()
        };
        guard.probe(&not_above, clock.advance(10).mono);
        assert!(!guard.decided());
        assert_eq!(guard.always_on_top(), None);
        assert_eq!(guard.next_deadline(), Some(clock.now().mono + ABOVE_GRACE));
        guard.probe(&fullscreen(), clock.advance(200).mono);
        assert_eq!(guard.always_on_top(), Some(true));
        assert!(guard.decided());

        let mut ignored = FullscreenGuard::requested(clock.now().mono, true);
        ignored.probe(&not_above, clock.advance(10).mono);
        ignored.probe(&not_above, clock.advance(999).mono);
        assert_eq!(ignored.always_on_top(), None);
        ignored.probe(&not_above, clock.advance(1).mono);
        assert_eq!(ignored.always_on_top(), Some(false));
        assert_eq!(ignored.next_deadline(), None);
    }

    #[test]
    fn where_the_flag_cannot_tell_always_on_top_is_not_judged() {
        let clock = FakeClock::new();
        let mut guard = FullscreenGuard::requested(clock.now().mono, false);
        let not_above = WindowProbe {
            always_on_top: false,
            ..fullscreen()
        };
        guard.probe(&not_above, clock.advance(10).mono);
        assert!(guard.decided());
        guard.probe(&not_above, clock.advance(5000).mono);
        assert_eq!(guard.always_on_top(), None);
        assert_eq!(guard.next_deadline(), None);
    }

    #[test]
    fn a_window_manager_that_never_grants_fullscreen_makes_it_unavailable() {
        let clock = FakeClock::new();
        let mut guard = FullscreenGuard::requested(clock.now().mono, true);
        assert_eq!(guard.next_deadline(), Some(clock.now().mono + GRACE));
        assert_eq!(guard.probe(&windowed(), clock.advance(2999).mono), None);
        assert_eq!(
            guard.probe(&windowed(), clock.advance(1).mono),
            Some(GuardEvent::Unavailable(NotHeld::NotGranted))
        );
        assert_eq!(guard.probe(&windowed(), clock.advance(5000).mono), None);
    }

    #[test]
    fn leaving_fullscreen_is_reported_once_it_lasts_and_fullscreen_is_asked_again() {
        let clock = FakeClock::new();
        let mut guard = FullscreenGuard::requested(clock.now().mono, true);
        guard.probe(&fullscreen(), clock.advance(100).mono);

        assert_eq!(guard.probe(&windowed(), clock.advance(60_000).mono), None);
        assert_eq!(guard.next_deadline(), Some(clock.now().mono + CONFIRM_EXIT));
        assert_eq!(
            guard.probe(&windowed(), clock.advance(250).mono),
            Some(GuardEvent::Exited { restore: true })
        );
        assert_eq!(guard.state(), FullscreenState::Requested);
        assert_eq!(
            guard.probe(&fullscreen(), clock.advance(200).mono),
            Some(GuardEvent::Confirmed)
        );
    }

    #[test]
    fn a_resize_seen_halfway_through_is_not_an_exit() {
        let clock = FakeClock::new();
        let mut guard = FullscreenGuard::requested(clock.now().mono, true);
        guard.probe(&fullscreen(), clock.advance(100).mono);
        assert_eq!(guard.probe(&windowed(), clock.advance(5000).mono), None);
        assert_eq!(guard.probe(&fullscreen(), clock.advance(100).mono), None);
        assert_eq!(guard.probe(&fullscreen(), clock.advance(1000).mono), None);
        assert_eq!(guard.state(), FullscreenState::On);
    }

    #[test]
    fn the_app_stops_restoring_when_the_window_manager_keeps_undoing_it() {
        let clock = FakeClock::new();
        let mut guard = FullscreenGuard::requested(clock.now().mono, true);
        let mut exits = Vec::new();
        for _ in 0..5 {
            guard.probe(&fullscreen(), clock.advance(50).mono);
            guard.probe(&windowed(), clock.advance(50).mono);
            exits.extend(guard.probe(&windowed(), clock.advance(300).mono));
        }
        assert_eq!(
            exits,
            vec![
                GuardEvent::Exited { restore: true },
                GuardEvent::Exited { restore: true },
                GuardEvent::Exited { restore: false },
            ]
        );
        assert_eq!(guard.not_held(), Some(NotHeld::Undone));
    }

    #[test]
    fn a_student_leaving_now_and_then_is_always_put_back() {
        let clock = FakeClock::new();
        let mut guard = FullscreenGuard::requested(clock.now().mono, true);
        for _ in 0..10 {
            guard.probe(&fullscreen(), clock.advance(50).mono);
            guard.probe(&windowed(), clock.advance(30_000).mono);
            assert_eq!(
                guard.probe(&windowed(), clock.advance(300).mono),
                Some(GuardEvent::Exited { restore: true })
            );
        }
    }
}

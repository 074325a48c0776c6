//! Focus: the window's own `Focused(bool)` events turned into reported absences.
//!
//! The page's `blur` is not used: WebView2 misses or doubles it, and it also fires when focus
//! moves inside the page. The window event is the OS's word, but it has two false alarms of its
//! own, which this filter drops so that nobody is reported for what the app or the window frame
//! did:
//!
//! - dragging the window by its title bar (on Windows the webview takes the focus back when a
//!   move starts, so the window reports lost then regained, a millisecond apart);
//! - the app's own fullscreen or always-on-top change (a window manager may take the focus away
//!   while it re-maps the window, and give it back).
//!
//! So a loss is held for a moment ([`SETTLE`]) before it is reported. A lost/regained pair is
//! dropped only when something explains it: the window moved just before or during it, or the
//! app changed the window itself just before. Any other absence is reported, however short: a
//! brief one (an OS notification) is still evidence, and the server counts it apart.
//! Repeated events (lost while already away) are ignored. Time away is measured between the
//! two events on the monotonic clock, so a held report says exactly how long the absence was.

use crate::proctor::clock::Moment;
use invigil_protocol::Timestamp;
use std::time::{Duration, Instant};

/// How long a loss is held before it is reported, waiting for a cause or the focus to return.
pub(crate) const SETTLE: Duration = Duration::from_millis(300);
/// How long after the app changes its own window a loss is blamed on that change.
pub(crate) const OWN_CHANGE: Duration = Duration::from_millis(1000);
/// How long before a loss a move of the window explains it (a drag that just started).
pub(crate) const MOVED_BEFORE: Duration = Duration::from_millis(100);
/// The longest a loss is held while the window keeps moving (a long drag).
pub(crate) const MAX_HOLD: Duration = Duration::from_millis(3000);

/// What the filter reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FocusReport {
    /// The window lost the focus at `at`.
    Lost {
        /// When it was lost, by the device's clock.
        at: Timestamp,
    },
    /// The window got it back at `at`, after `away`.
    Regained {
        /// When it came back, by the device's clock.
        at: Timestamp,
        /// How long it was away, on the monotonic clock.
        away: Duration,
    },
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// The window has the focus.
    Present,
    /// The window lost the focus; not reported yet.
    Held(Held),
    /// The loss was reported; the window is away since `since`.
    Away { since: Moment },
}

#[derive(Debug, Clone, Copy)]
struct Held {
    lost: Moment,
    regained: Option<Moment>,
    /// Something explains the pair (a move, the app's own change).
    explained: bool,
    deadline: Instant,
}

/// Focus events in, reports out (see the module's text).
#[derive(Debug, Clone)]
pub(crate) struct FocusFilter {
    state: State,
    own_change_until: Option<Instant>,
    last_moved: Option<Instant>,
    dropped: u32,
}

impl FocusFilter {
    /// A filter for a window that has the focus.
    pub(crate) fn new() -> Self {
        Self {
            state: State::Present,
            own_change_until: None,
            last_moved: None,
            dropped: 0,
        }
    }

    /// Whether the window is away (a held loss counts: it is away, not yet reported).
    pub(crate) fn is_away(&self) -> bool {
        !matches!(
            self.state,
            State::Present
                | State::Held(Held {
                    regained: Some(_),
                    ..
                })
        )
    }

    /// How many lost/regained pairs were dropped as caused by a move or by the app.
    #[cfg(test)]
    pub(crate) fn dropped(&self) -> u32 {
        self.dropped
    }

    /// The app is about to change its own window (fullscreen, always-on-top).
    pub(crate) fn own_change(&mut self, now: Instant) {
        self.own_change_until = Some(now + OWN_CHANGE);
        if let State::Held(held) = &mut self.state {
            held.explained = true;
            held.deadline = held
                .deadline
                .max((now + SETTLE).min(held.lost.mono + MAX_HOLD));
        }
    }

    /// The window moved.
    pub(crate) fn moved(&mut self, now: Instant) {
        self.last_moved = Some(now);
        if let State::Held(held) = &mut self.state {
            held.explained = true;
            // A drag in progress: wait for it to end, within bounds.
            held.deadline = held
                .deadline
                .max((now + SETTLE).min(held.lost.mono + MAX_HOLD));
            if held.regained.is_some() {
                self.dropped += 1;
                self.state = State::Present;
            }
        }
    }

    /// The window's `Focused(focused)` event at `now`.
    pub(crate) fn focused(&mut self, focused: bool, now: Moment) -> Vec<FocusReport> {
        let mut reports = Vec::new();
        match (focused, self.state) {
            (false, State::Present) => self.hold(now),
            (
                false,
                State::Held(Held {
                    regained: Some(_), ..
                }),
            ) => {
                // A new loss right after a held pair: settle the pair first.
                reports.extend(self.resolve());
                self.hold(now);
            }
            (false, _) => {}
            (true, State::Held(mut held)) if held.regained.is_none() => {
                held.regained = Some(now);
                if held.explained {
                    self.dropped += 1;
                    self.state = State::Present;
                } else {
                    self.state = State::Held(held);
                }
            }
            (true, State::Away { since }) => {
                reports.push(FocusReport::Regained {
                    at: now.wall,
                    away: now.mono.saturating_duration_since(since.mono),
                });
                self.state = State::Present;
            }
            (true, _) => {}
        }
        reports
    }

    /// Reports a held loss whose moment has passed.
    pub(crate) fn tick(&mut self, now: Instant) -> Vec<FocusReport> {
        match self.state {
            State::Held(held) if now >= held.deadline => self.resolve(),
            _ => Vec::new(),
        }
    }

    /// When [`FocusFilter::tick`] has something to do.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        match self.state {
            State::Held(held) => Some(held.deadline),
            _ => None,
        }
    }

    /// Proctoring stops: a held loss is reported as it stands (it happened during the exam),
    /// unless the app's own change explains it.
    pub(crate) fn flush(&mut self) -> Vec<FocusReport> {
        match self.state {
            State::Held(held) if held.explained => {
                self.state = State::Present;
                Vec::new()
            }
            State::Held(_) => self.resolve(),
            _ => Vec::new(),
        }
    }

    fn hold(&mut self, now: Moment) {
        let explained = self.own_change_until.is_some_and(|until| now.mono <= until)
            || self
                .last_moved
                .is_some_and(|moved| now.mono.saturating_duration_since(moved) <= MOVED_BEFORE);
        self.state = State::Held(Held {
            lost: now,
            regained: None,
            explained,
            // The app's own change may take the window manager a while to finish.
            deadline: now.mono + if explained { OWN_CHANGE } else { SETTLE },
        });
    }

    fn resolve(&mut self) -> Vec<FocusReport> {
        let State::Held(held) = self.state else {
            return Vec::new();
        };
        match held.regained {
            Some(_) if held.explained => {
                self.dropped += 1;
                self.state = State::Present;
                Vec::new()
            }
            Some(back) => {
                self.state = State::Present;
                vec![
                    FocusReport::Lost { at: held.lost.wall },
                    FocusReport::Regained {
                        at: back.wall,
                        away: back.mono.saturating_duration_since(held.lost.mono),
                    },
                ]
            }
            None => {
                self.state = State::Away { since: held.lost };
                vec![FocusReport::Lost { at: held.lost.wall }]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proctor::clock::Clock;
    use crate::proctor::clock::fake::FakeClock;

    fn away_ms(reports: &[FocusReport]) -> Vec<u128> {
        reports
            .iter()
            .filter_map(|r| match r {
                FocusReport::Regained { away, .. } => Some(away.as_millis()),
                FocusReport::Lost { .. } => None,
            })
            .collect()
    }

    #[test]
    fn an_absence_is_reported_after_the_settle_time_and_the_return_with_the_time_away() {
        let clock = FakeClock::new();
        let mut focus = FocusFilter::new();
        let lost_at = clock.advance(1000);

        assert!(focus.focused(false, lost_at).is_empty(), "held at first");
        assert!(focus.tick(clock.advance(299).mono).is_empty());
        assert_eq!(
            focus.tick(clock.advance(1).mono),
            vec![FocusReport::Lost { at: lost_at.wall }]
        );
        assert!(focus.is_away());

        let back = clock.advance(7900);
        let reports = focus.focused(true, back);
        assert_eq!(
            reports,
            vec![FocusReport::Regained {
                at: back.wall,
                away: Duration::from_millis(8200)
            }]
        );
        assert!(!focus.is_away());
    }

    #[test]
    fn a_brief_unexplained_absence_is_still_reported_whole() {
        let clock = FakeClock::new();
        let mut focus = FocusFilter::new();
        let lost_at = clock.now();
        focus.focused(false, lost_at);
        assert!(focus.focused(true, clock.advance(120)).is_empty());
        assert_eq!(focus.next_deadline(), Some(lost_at.mono + SETTLE));

        let reports = focus.tick(clock.advance(180).mono);
        assert_eq!(reports[0], FocusReport::Lost { at: lost_at.wall });
        assert_eq!(away_ms(&reports), vec![120]);
        assert_eq!(focus.dropped(), 0);
    }

    #[test]
    fn a_title_bar_drag_pair_is_dropped_when_the_window_moves_right_after() {
        // Windows: lost and regained a millisecond apart as the drag starts, then the moves.
        let clock = FakeClock::new();
        let mut focus = FocusFilter::new();
        focus.focused(false, clock.now());
        focus.focused(true, clock.advance(1));
        focus.moved(clock.advance(15).mono);

        assert!(focus.tick(clock.advance(2000).mono).is_empty());
        assert_eq!(focus.dropped(), 1);
        assert!(!focus.is_away());
    }

    #[test]
    fn a_drag_that_starts_just_before_the_loss_explains_the_pair() {
        let clock = FakeClock::new();
        let mut focus = FocusFilter::new();
        focus.moved(clock.now().mono);
        focus.focused(false, clock.advance(40));
        assert!(focus.focused(true, clock.advance(5)).is_empty());
        assert!(focus.tick(clock.advance(1000).mono).is_empty());
        assert_eq!(focus.dropped(), 1);
    }

    #[test]
    fn a_move_long_before_the_loss_explains_nothing() {
        let clock = FakeClock::new();
        let mut focus = FocusFilter::new();
        focus.moved(clock.now().mono);
        focus.focused(false, clock.advance(5000));
        focus.focused(true, clock.advance(50));
        assert_eq!(away_ms(&focus.tick(clock.advance(1000).mono)), vec![50]);
    }

    #[test]
    fn the_apps_own_fullscreen_change_explains_a_pair_that_follows_it() {
        let clock = FakeClock::new();
        let mut focus = FocusFilter::new();
        focus.own_change(clock.now().mono);
        focus.focused(false, clock.advance(200));
        // The window manager gives the focus back a little later than a plain settle.
        assert!(focus.tick(clock.advance(400).mono).is_empty());
        assert!(focus.focused(true, clock.advance(100)).is_empty());
        assert!(focus.tick(clock.advance(2000).mono).is_empty());
        assert_eq!(focus.dropped(), 1);
    }

    #[test]
    fn a_real_absence_that_starts_after_the_apps_change_is_reported() {
        let clock = FakeClock::new();
        let mut focus = FocusFilter::new();
        focus.own_change(clock.now().mono);
        focus.focused(false, clock.advance(200));
        // Still away when the change's allowance is over: the student left.
        let reports = focus.tick(clock.advance(1000).mono);
        assert!(matches!(reports[..], [FocusReport::Lost { .. }]));
        let back = focus.focused(true, clock.advance(4000));
        assert_eq!(away_ms(&back), vec![5000]);
    }

    #[test]
    fn repeated_events_are_ignored() {
        // WebView-like doubling: lost twice, regained twice.
        let clock = FakeClock::new();
        let mut focus = FocusFilter::new();
        focus.focused(false, clock.now());
        focus.focused(false, clock.advance(10));
        assert_eq!(focus.tick(clock.advance(300).mono).len(), 1);
        focus.focused(false, clock.advance(10));
        let first = focus.focused(true, clock.advance(680));
        let second = focus.focused(true, clock.advance(10));
        assert_eq!(away_ms(&first), vec![1000]);
        assert!(second.is_empty());
        assert!(focus.focused(true, clock.advance(10)).is_empty());
    }

    #[test]
    fn a_second_loss_right_after_a_held_pair_reports_the_pair_first() {
        let clock = FakeClock::new();
        let mut focus = FocusFilter::new();
        focus.focused(false, clock.now());
        focus.focused(true, clock.advance(50));
        let reports = focus.focused(false, clock.advance(50));
        assert_eq!(away_ms(&reports), vec![50]);
        assert_eq!(reports.len(), 2);
        assert!(focus.is_away());
    }

    #[test]
    fn a_window_dragged_while_unfocused_is_held_no_longer_than_the_bound() {
        let clock = FakeClock::new();
        let mut focus = FocusFilter::new();
        let lost = clock.now();
        focus.focused(false, lost);
        for _ in 0..100 {
            focus.moved(clock.advance(100).mono);
            if !focus.tick(clock.now().mono).is_empty() {
                break;
            }
        }
        assert!(clock.now().mono - lost.mono <= MAX_HOLD + Duration::from_millis(100));
        assert!(matches!(focus.state, State::Away { .. }));
    }

    #[test]
    fn stopping_reports_a_held_loss_but_not_one_the_app_caused() {
        let clock = FakeClock::new();
        let mut focus = FocusFilter::new();
        focus.focused(false, clock.now());
        assert_eq!(focus.flush().len(), 1);

        let mut focus = FocusFilter::new();
        focus.own_change(clock.advance(5000).mono);
        focus.focused(false, clock.advance(10));
        assert!(focus.flush().is_empty());
    }
}

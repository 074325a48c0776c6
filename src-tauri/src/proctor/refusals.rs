//! Clipboard and drag-and-drop refusals, coalesced: at most one `clipboard_blocked` signal per
//! second, however fast a student (or a stuck key) repeats the attempt.
//!
//! The first refusal after a quiet second is reported at once; the ones that follow within the
//! second are counted and reported together when it ends, so none is lost and none floods the
//! professor's board.

use crate::proctor::clock::Moment;
use invigil_protocol::Timestamp;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// At most one signal per this much time.
pub(crate) const WINDOW: Duration = Duration::from_secs(1);

/// What was refused. The page reports the first three; the window reports a file dropped on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// Text (or anything else) pasted from another program.
    PasteFromOutside,
    /// A file or an image pasted from another program.
    FilePaste,
    /// Text dragged in from another program.
    DropFromOutside,
    /// A file dragged onto the exam.
    FileDrop,
}

impl Refusal {
    const ALL: [Refusal; 4] = [
        Refusal::PasteFromOutside,
        Refusal::FilePaste,
        Refusal::DropFromOutside,
        Refusal::FileDrop,
    ];

    /// What was refused, in words, `n` times.
    fn phrase(self, n: u32) -> String {
        let (one, many) = match self {
            Refusal::PasteFromOutside => (
                "a paste from another program",
                "pastes from another program",
            ),
            Refusal::FilePaste => ("a pasted file", "pasted files"),
            Refusal::DropFromOutside => (
                "text dragged in from another program",
                "drags of text from another program",
            ),
            Refusal::FileDrop => (
                "a file dropped onto the exam",
                "files dropped onto the exam",
            ),
        };
        if n == 1 {
            one.to_owned()
        } else {
            format!("{n} {many}")
        }
    }
}

/// One `clipboard_blocked` signal's worth of refusals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Coalesced {
    /// When the first of them happened, by the device's clock.
    pub(crate) at: Timestamp,
    /// How many refusals it stands for.
    pub(crate) count: u32,
    /// What they were, in a sentence.
    pub(crate) detail: String,
}

#[derive(Debug, Clone)]
struct Batch {
    first: Timestamp,
    counts: [u32; 4],
}

impl Batch {
    fn into_coalesced(self) -> Coalesced {
        let count = self.counts.iter().sum();
        let parts: Vec<String> = Refusal::ALL
            .iter()
            .zip(self.counts)
            .filter(|(_, n)| *n > 0)
            .map(|(what, n)| what.phrase(n))
            .collect();
        let detail = if count == 1 {
            format!("refused {}", parts.join(""))
        } else {
            format!("{count} refusals: {}", parts.join(", "))
        };
        Coalesced {
            at: self.first,
            count,
            detail,
        }
    }
}

/// Refusals in, at most one report per [`WINDOW`] out.
#[derive(Debug, Clone, Default)]
pub(crate) struct Coalescer {
    last_report: Option<Instant>,
    pending: Option<Batch>,
}

impl Coalescer {
    /// One refusal at `now`: reported at once after a quiet window, else kept for later.
    pub(crate) fn refuse(&mut self, what: Refusal, now: Moment) -> Option<Coalesced> {
        let quiet = self
            .last_report
            .is_none_or(|last| now.mono.saturating_duration_since(last) >= WINDOW);
        let batch = self.pending.get_or_insert(Batch {
            first: now.wall,
            counts: [0; 4],
        });
        batch.counts[Refusal::ALL.iter().position(|r| *r == what).unwrap_or(0)] += 1;
        if quiet { self.report(now.mono) } else { None }
    }

    /// The refusals kept since the last report, once the window is over.
    pub(crate) fn tick(&mut self, now: Instant) -> Option<Coalesced> {
        match self.next_deadline() {
            Some(deadline) if now >= deadline => self.report(now),
            _ => None,
        }
    }

    /// When [`Coalescer::tick`] has something to report.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.pending.as_ref()?;
        self.last_report.map(|last| last + WINDOW)
    }

    /// Proctoring stops: whatever is kept is reported now (it happened during the exam).
    pub(crate) fn flush(&mut self) -> Option<Coalesced> {
        self.pending.take().map(Batch::into_coalesced)
    }

    fn report(&mut self, now: Instant) -> Option<Coalesced> {
        let batch = self.pending.take()?;
        self.last_report = Some(now);
        Some(batch.into_coalesced())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proctor::clock::Clock;
    use crate::proctor::clock::fake::FakeClock;

    #[test]
    fn the_first_refusal_is_reported_at_once() {
        let clock = FakeClock::new();
        let mut refusals = Coalescer::default();
        let report = refusals
            .refuse(Refusal::PasteFromOutside, clock.now())
            .unwrap();
        assert_eq!(report.count, 1);
        assert_eq!(report.at, clock.now().wall);
        assert_eq!(report.detail, "refused a paste from another program");
        assert_eq!(refusals.next_deadline(), None);
    }

    #[test]
    fn refusals_within_a_second_are_reported_together_when_it_ends() {
        let clock = FakeClock::new();
        let mut refusals = Coalescer::default();
        refusals
            .refuse(Refusal::PasteFromOutside, clock.now())
            .unwrap();
        let second = clock.advance(100);
        assert!(refusals.refuse(Refusal::PasteFromOutside, second).is_none());
        assert!(
            refusals
                .refuse(Refusal::FileDrop, clock.advance(100))
                .is_none()
        );
        assert!(
            refusals
                .refuse(Refusal::PasteFromOutside, clock.advance(100))
                .is_none()
        );

        assert!(refusals.tick(clock.advance(699).mono).is_none());
        let report = refusals.tick(clock.advance(1).mono).unwrap();
        assert_eq!(report.count, 3);
        assert_eq!(
            report.at, second.wall,
            "dated by the first refusal it holds"
        );
        assert_eq!(
            report.detail,
            "3 refusals: 2 pastes from another program, a file dropped onto the exam"
        );
        // The next one within a second of that report waits again.
        assert!(
            refusals
                .refuse(Refusal::FilePaste, clock.advance(500))
                .is_none()
        );
        assert_eq!(refusals.tick(clock.advance(500).mono).unwrap().count, 1);
    }

    #[test]
    fn never_more_than_one_report_per_second_under_a_stuck_key() {
        let clock = FakeClock::new();
        let mut refusals = Coalescer::default();
        let mut reports = Vec::new();
        let mut total = 0;
        for _ in 0..1000 {
            let now = clock.advance(7);
            reports.extend(
                refusals
                    .refuse(Refusal::PasteFromOutside, now)
                    .map(|r| (now.mono, r)),
            );
            reports.extend(refusals.tick(now.mono).map(|r| (now.mono, r)));
        }
        reports.extend(refusals.flush().map(|r| (clock.now().mono, r)));
        for pair in reports.windows(2).take(reports.len().saturating_sub(2)) {
            assert!(pair[1].0 - pair[0].0 >= WINDOW);
        }
        total += reports.iter().map(|(_, r)| r.count).sum::<u32>();
        assert_eq!(total, 1000, "every refusal is counted in some report");
        assert!(
            reports.len() <= 9,
            "7 s of refusals: {} reports",
            reports.len()
        );
    }

    #[test]
    fn stopping_reports_what_was_kept() {
        let clock = FakeClock::new();
        let mut refusals = Coalescer::default();
        refusals.refuse(Refusal::DropFromOutside, clock.now());
        refusals.refuse(Refusal::DropFromOutside, clock.advance(10));
        let report = refusals.flush().unwrap();
        assert_eq!(
            report.detail,
            "refused text dragged in from another program"
        );
        assert!(refusals.flush().is_none());
    }
}

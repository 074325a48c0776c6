//! Displays: how many are active, polled (there is no monitor-change event in Tauri), reported
//! at the start and on every change.
//!
//! "Single display" means at most one active display, never "only the built-in one": a desktop
//! PC with one HDMI monitor, or a laptop with its lid closed on an external screen, has one
//! display and is fine. Displays that mirror each other show the same picture and count once
//! (they share one rectangle of the desktop).

use serde::Serialize;
use std::collections::BTreeSet;
use std::time::Duration;

/// How often the list of displays is read.
pub(crate) const POLL: Duration = Duration::from_secs(2);

/// A rectangle of the desktop, in physical pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub(crate) struct Rect {
    pub(crate) x: i32,
    pub(crate) y: i32,
    pub(crate) width: u32,
    pub(crate) height: u32,
}

/// The number of active displays among `monitors`: distinct rectangles with an area.
pub(crate) fn count_displays(monitors: &[Rect]) -> u32 {
    let distinct: BTreeSet<&Rect> = monitors
        .iter()
        .filter(|m| m.width > 0 && m.height > 0)
        .collect();
    u32::try_from(distinct.len()).unwrap_or(u32::MAX)
}

/// A change worth reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DisplayReport {
    /// The first count of this exam.
    Start {
        /// How many displays.
        count: u32,
    },
    /// The count changed.
    Changed {
        /// How many there were.
        before: u32,
        /// How many there are.
        after: u32,
    },
}

impl DisplayReport {
    /// The count now.
    pub(crate) fn count(self) -> u32 {
        match self {
            DisplayReport::Start { count } => count,
            DisplayReport::Changed { after, .. } => after,
        }
    }

    /// A sentence for the professor.
    pub(crate) fn detail(self) -> String {
        let displays = |n: u32| {
            if n == 1 {
                "1 display".to_owned()
            } else {
                format!("{n} displays")
            }
        };
        match self {
            DisplayReport::Start { count } => {
                format!("{} at the start of the exam", displays(count))
            }
            DisplayReport::Changed { before, after } => {
                format!("{} connected, {before} before", displays(after))
            }
        }
    }
}

/// The display count over time.
#[derive(Debug, Clone, Default)]
pub(crate) struct DisplayWatch {
    known: Option<u32>,
}

impl DisplayWatch {
    /// The count last seen, if any.
    pub(crate) fn count(&self) -> Option<u32> {
        self.known
    }

    /// One reading of the monitor list; `None` when it could not be read. A reading with no
    /// display at all is a reconfiguration in progress, not a fact: it is skipped.
    pub(crate) fn observe(&mut self, monitors: Option<&[Rect]>) -> Option<DisplayReport> {
        let count = count_displays(monitors?);
        if count == 0 {
            return None;
        }
        let report = match self.known {
            None => Some(DisplayReport::Start { count }),
            Some(before) if before != count => Some(DisplayReport::Changed {
                before,
                after: count,
            }),
            Some(_) => None,
        };
        self.known = Some(count);
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn screen(x: i32, width: u32) -> Rect {
        Rect {
            x,
            y: 0,
            width,
            height: 1080,
        }
    }

    #[test]
    fn one_external_monitor_is_one_display_whatever_its_kind() {
        // A desktop PC with one HDMI monitor: the only display is not a built-in one.
        assert_eq!(count_displays(&[screen(0, 1920)]), 1);
    }

    #[test]
    fn mirrored_displays_count_once_and_side_by_side_ones_twice() {
        assert_eq!(count_displays(&[screen(0, 1920), screen(0, 1920)]), 1);
        assert_eq!(count_displays(&[screen(0, 1920), screen(1920, 1280)]), 2);
        assert_eq!(count_displays(&[screen(0, 0)]), 0);
    }

    #[test]
    fn the_count_is_reported_at_start_then_only_on_change_with_before_and_after() {
        let mut watch = DisplayWatch::default();
        let one = [screen(0, 1920)];
        let two = [screen(0, 1920), screen(1920, 1920)];

        let start = watch.observe(Some(&one)).unwrap();
        assert_eq!(start, DisplayReport::Start { count: 1 });
        assert_eq!(start.detail(), "1 display at the start of the exam");
        assert_eq!(watch.observe(Some(&one)), None);

        let plugged = watch.observe(Some(&two)).unwrap();
        assert_eq!(
            plugged,
            DisplayReport::Changed {
                before: 1,
                after: 2
            }
        );
        assert_eq!(plugged.detail(), "2 displays connected, 1 before");
        assert_eq!(watch.observe(Some(&two)), None);
        assert_eq!(
            watch.observe(Some(&one)),
            Some(DisplayReport::Changed {
                before: 2,
                after: 1
            })
        );
    }

    #[test]
    fn an_unreadable_or_empty_list_changes_nothing() {
        let mut watch = DisplayWatch::default();
        assert_eq!(watch.observe(None), None);
        assert_eq!(watch.observe(Some(&[])), None);
        assert_eq!(watch.count(), None);
        watch.observe(Some(&[screen(0, 1920)]));
        assert_eq!(watch.observe(Some(&[])), None, "mid-reconfiguration");
        assert_eq!(watch.count(), Some(1));
    }
}

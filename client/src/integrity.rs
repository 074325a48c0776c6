//! The integrity outbox: every proctoring event this device made, on disk before it is sent,
//! kept until the server acknowledges it (`INTEGRITY_ACK`) or refuses it for good
//! (`INTEGRITY_REJECTED`).
//!
//! One file per event, `integrity/<event_id>.json` under the user's folder (beside `answers/`),
//! holding the event exactly as the HTTP form's body (`docs/PROTOCOL.md`). Written as the answer
//! records are ([`folder::write_durably`]: temporary file, fsync, rename, fsync of the folder), so
//! a crash leaves the event whole or absent; an event is only sent once its file is written. An
//! event never changes after it is made, so unlike an answer it has no revisions: it waits, then
//! it goes.

use crate::error::{Error, Result};
use crate::folder;
use crate::outbox::{create_dir_durably, sync_dir};
use invigil_protocol::{
    Capabilities, IntegrityEvent, IntegrityKind, MAX_INTEGRITY_DETAIL_CHARS, Timestamp,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The longest absence the server takes in `away_ms` (a week); a longer one is sent as a week.
pub const MAX_AWAY_MS: u64 = 604_800_000;
/// The most displays the server takes in `displays`; more are sent as this many.
pub const MAX_DISPLAYS: u32 = 64;

/// What the desktop shell observed, to become an `INTEGRITY_EVENT`: everything but the
/// evaluation and the `event_id`, which the engine makes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegrityReport {
    /// What happened.
    pub kind: IntegrityKind,
    /// When, by the device's clock.
    pub at: Timestamp,
    /// For `focus_regained`: how long the window was away, in milliseconds.
    pub away_ms: Option<u64>,
    /// For `displays_changed`: how many displays there are now.
    pub displays: Option<u32>,
    /// For `capabilities`: what the app can do on this computer.
    pub capabilities: Option<Capabilities>,
    /// A sentence for the professor (cut to the contract's 200 characters).
    pub detail: Option<String>,
}

impl IntegrityReport {
    /// The event of this report under `event_id`, in the shape the server accepts: the field of
    /// its own kind (required, brought within the contract's bounds), none of another kind's,
    /// and `detail` within its limit. The server answers a malformed event with an `ERROR` that
    /// does not name it, so one that left here malformed would be sent again forever.
    pub fn into_event(self, evaluation_id: &str, event_id: String) -> Result<IntegrityEvent> {
        let missing = |field: &str| {
            Err(Error::Protocol(format!(
                "a {} event needs {field}",
                self.kind.as_str()
            )))
        };
        let (away_ms, displays, capabilities) = match self.kind {
            IntegrityKind::FocusRegained => match self.away_ms {
                Some(ms) => (Some(ms.min(MAX_AWAY_MS)), None, None),
                None => return missing("away_ms"),
            },
            IntegrityKind::DisplaysChanged => match self.displays {
                Some(n) => (None, Some(n.min(MAX_DISPLAYS)), None),
                None => return missing("displays"),
            },
            IntegrityKind::Capabilities => match self.capabilities {
                Some(c) => (None, None, Some(c)),
                None => return missing("capabilities"),
            },
            _ => (None, None, None),
        };
        let detail = self.detail.map(|d| {
            if d.chars().count() <= MAX_INTEGRITY_DETAIL_CHARS {
                d
            } else {
                let mut cut: String = d.chars().take(MAX_INTEGRITY_DETAIL_CHARS - 1).collect();
                cut.push('…');
                cut
            }
        });
        Ok(IntegrityEvent {
            evaluation_id: evaluation_id.to_owned(),
            event_id,
            kind: self.kind,
            at: self.at,
            away_ms,
            displays,
            capabilities,
            detail,
        })
    }
}

/// The events of one user on one server waiting for the server, in memory, with their folder.
#[derive(Debug)]
pub struct IntegrityOutbox {
    dir: PathBuf,
    /// Oldest first: sent again in the order they happened.
    events: Vec<IntegrityEvent>,
    /// Events the disk refused: held in memory (and sent) until a write succeeds.
    unwritten: BTreeSet<String>,
}

impl IntegrityOutbox {
    /// Opens (creating it if needed) the outbox in `dir` and reads every waiting event. Leftover
    /// temporary files of an interrupted write are removed (the event was never sent); a file
    /// that does not read as an event is set aside as `*.damaged`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        create_dir_durably(&dir)?;
        let mut events = Vec::new();
        for entry in fs::read_dir(&dir).map_err(Error::storage("read", &dir))? {
            let path = entry.map_err(Error::storage("read", &dir))?.path();
            match path.extension().and_then(|e| e.to_str()) {
                Some("tmp") => {
                    let _ = fs::remove_file(&path);
                }
                Some("json") => match read_event(&path) {
                    Ok(event) => events.push(event),
                    Err(e) => {
                        tracing::warn!(error = %e, "an integrity event file is damaged; set aside");
                        let _ = fs::rename(&path, path.with_extension("json.damaged"));
                    }
                },
                _ => {}
            }
        }
        events.sort_by(|a, b| (a.at, &a.event_id).cmp(&(b.at, &b.event_id)));
        Ok(Self {
            dir,
            events,
            unwritten: BTreeSet::new(),
        })
    }

    /// The folder of this outbox.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The waiting events, oldest first.
    pub fn events(&self) -> impl Iterator<Item = &IntegrityEvent> {
        self.events.iter()
    }

    /// How many events wait.
    pub fn count(&self) -> usize {
        self.events.len()
    }

    /// How many events of `evaluation_id` wait.
    pub fn count_in(&self, evaluation_id: &str) -> usize {
        self.events
            .iter()
            .filter(|e| e.evaluation_id == evaluation_id)
            .count()
    }

    /// Takes in an event [`persist`]ed to this outbox's folder (`written`), or one the disk
    /// refused (kept in memory and written again by [`Self::unwritten`]'s caller).
    pub fn insert(&mut self, event: IntegrityEvent, written: bool) {
        if !written {
            self.unwritten.insert(event.event_id.clone());
        }
        if !self.events.iter().any(|e| e.event_id == event.event_id) {
            self.events.push(event);
        }
    }

    /// Forgets an event the server acknowledged or refused; its file is then removed with
    /// [`remove`]. None when it is not waiting here.
    pub fn take(&mut self, event_id: &str) -> Option<IntegrityEvent> {
        self.unwritten.remove(event_id);
        let at = self.events.iter().position(|e| e.event_id == event_id)?;
        Some(self.events.remove(at))
    }

    /// The waiting events the disk refused so far.
    pub fn unwritten(&self) -> Vec<IntegrityEvent> {
        self.events
            .iter()
            .filter(|e| self.unwritten.contains(&e.event_id))
            .cloned()
            .collect()
    }

    /// Notes that `event_id` is on disk now.
    pub fn written(&mut self, event_id: &str) {
        self.unwritten.remove(event_id);
    }

    /// How many waiting events exist only in memory.
    pub fn unwritten_count(&self) -> usize {
        self.unwritten.len()
    }
}

/// The file of `event_id` in the outbox folder `dir`. The engine makes every id as a UUID, so
/// the id is the name; any other id is hex-encoded as answer names are.
fn path_of(dir: &Path, event_id: &str) -> PathBuf {
    let safe = !event_id.is_empty() && event_id.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    let name = if safe {
        event_id.to_owned()
    } else {
        crate::outbox::encode_name(event_id)
    };
    dir.join(format!("{name}.json"))
}

/// Writes `event` durably into the outbox folder `dir`. Blocking: call it off the async threads.
pub fn persist(dir: &Path, event: &IntegrityEvent) -> Result<()> {
    create_dir_durably(dir)?;
    let bytes = serde_json::to_vec(event).expect("integrity events serialize");
    folder::write_durably(&path_of(dir, &event.event_id), &bytes)
}

/// Removes the file of `event_id` (acknowledged or refused) durably; an absent file is fine.
/// Blocking.
pub fn remove(dir: &Path, event_id: &str) -> Result<()> {
    let path = path_of(dir, event_id);
    match fs::remove_file(&path) {
        Ok(()) => sync_dir(dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::storage("remove", &path)(e)),
    }
}

fn read_event(path: &Path) -> Result<IntegrityEvent> {
    let bytes = fs::read(path).map_err(Error::storage("read", path))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
        path: path.to_owned(),
        detail: e.to_string(),
    })
}

/// The events waiting in the outbox folder `dir`, read without changing anything there (for
/// the events another user or another server left on this computer), oldest first.
pub fn read_events(dir: &Path) -> Vec<IntegrityEvent> {
    let mut events: Vec<IntegrityEvent> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("json"))
        .filter_map(|p| read_event(&p).ok())
        .collect();
    events.sort_by(|a, b| (a.at, &a.event_id).cmp(&(b.at, &b.event_id)));
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(kind: IntegrityKind) -> IntegrityReport {
        IntegrityReport {
            kind,
            at: Timestamp::now(),
            away_ms: None,
            displays: None,
            capabilities: None,
            detail: None,
        }
    }

    fn event(id: &str, kind: IntegrityKind) -> IntegrityEvent {
        let mut r = report(kind);
        r.away_ms = Some(1200);
        r.into_event("e1", id.to_owned()).unwrap()
    }

    const ID1: &str = "5b0e8d3c-2f7a-4c61-9e0b-7d4f1a2c3b4d";
    const ID2: &str = "6c1f9e4d-3a8b-4d72-8f1c-8e5a2b3d4c5e";

    #[test]
    fn a_persisted_event_is_read_back_after_reopening_until_it_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = IntegrityOutbox::open(dir.path()).unwrap();
        for id in [ID1, ID2] {
            let e = event(id, IntegrityKind::FocusLost);
            persist(outbox.dir(), &e).unwrap();
            outbox.insert(e, true);
        }
        assert_eq!(outbox.count(), 2);

        let mut reopened = IntegrityOutbox::open(dir.path()).unwrap();
        assert_eq!(reopened.count(), 2);
        assert_eq!(reopened.count_in("e1"), 2);
        assert_eq!(reopened.count_in("e2"), 0);
        let acked = reopened.take(ID1).unwrap();
        remove(reopened.dir(), &acked.event_id).unwrap();
        assert!(reopened.take(ID1).is_none(), "taken once");
        // Removing again (a second acknowledgement) is harmless.
        remove(reopened.dir(), ID1).unwrap();

        let again = IntegrityOutbox::open(dir.path()).unwrap();
        let ids: Vec<&str> = again.events().map(|e| e.event_id.as_str()).collect();
        assert_eq!(ids, [ID2]);
        assert_eq!(read_events(dir.path()).len(), 1);
    }

    #[test]
    fn an_interrupted_write_leaves_no_event_and_a_damaged_file_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(format!("{ID1}.tmp")), b"{\"torn").unwrap();
        std::fs::write(dir.path().join(format!("{ID2}.json")), b"not an event").unwrap();
        let outbox = IntegrityOutbox::open(dir.path()).unwrap();
        assert_eq!(outbox.count(), 0);
        assert!(!dir.path().join(format!("{ID1}.tmp")).exists());
        assert!(dir.path().join(format!("{ID2}.json.damaged")).exists());
    }

    #[test]
    fn events_come_back_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut late = report(IntegrityKind::FocusLost);
        late.at = Timestamp::parse("2026-11-22T09:41:00.000Z").unwrap();
        let mut early = report(IntegrityKind::FocusLost);
        early.at = Timestamp::parse("2026-11-22T09:40:00.000Z").unwrap();
        // The later one has the smaller id: the order is by time, not by name.
        persist(dir.path(), &late.into_event("e1", ID1.into()).unwrap()).unwrap();
        persist(dir.path(), &early.into_event("e1", ID2.into()).unwrap()).unwrap();
        let outbox = IntegrityOutbox::open(dir.path()).unwrap();
        let ids: Vec<&str> = outbox.events().map(|e| e.event_id.as_str()).collect();
        assert_eq!(ids, [ID2, ID1]);
    }

    #[test]
    fn an_event_the_disk_refused_is_held_and_counted_until_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = IntegrityOutbox::open(dir.path()).unwrap();
        outbox.insert(event(ID1, IntegrityKind::FocusLost), false);
        outbox.insert(event(ID1, IntegrityKind::FocusLost), false);
        assert_eq!((outbox.count(), outbox.unwritten_count()), (1, 1));
        assert_eq!(outbox.unwritten()[0].event_id, ID1);
        outbox.written(ID1);
        assert_eq!((outbox.count(), outbox.unwritten_count()), (1, 0));
    }

    #[test]
    fn a_report_becomes_an_event_the_server_accepts() {
        let mut r = report(IntegrityKind::FocusRegained);
        r.away_ms = Some(u64::MAX);
        r.displays = Some(3);
        r.detail = Some("é".repeat(300));
        let e = r.into_event("e1", ID1.into()).unwrap();
        assert_eq!(e.away_ms, Some(MAX_AWAY_MS));
        assert_eq!(e.displays, None, "another kind's field is left out");
        let detail = e.detail.unwrap();
        assert_eq!(detail.chars().count(), MAX_INTEGRITY_DETAIL_CHARS);
        assert!(detail.ends_with('…'));

        let mut d = report(IntegrityKind::DisplaysChanged);
        d.displays = Some(500);
        assert_eq!(
            d.into_event("e1", ID1.into()).unwrap().displays,
            Some(MAX_DISPLAYS)
        );
        for kind in [
            IntegrityKind::FocusRegained,
            IntegrityKind::DisplaysChanged,
            IntegrityKind::Capabilities,
        ] {
            assert!(
                report(kind).into_event("e1", ID1.into()).is_err(),
                "{kind:?} without its field"
            );
        }
        assert!(
            report(IntegrityKind::AppRestarted)
                .into_event("e1", ID1.into())
                .is_ok()
        );
    }

    #[test]
    fn an_id_that_is_not_a_uuid_still_names_a_file_inside_the_folder() {
        let dir = Path::new("/x");
        assert_eq!(path_of(dir, ID1), dir.join(format!("{ID1}.json")));
        let odd = path_of(dir, "../../etc/passwd");
        assert_eq!(odd.parent(), Some(dir));
    }
}

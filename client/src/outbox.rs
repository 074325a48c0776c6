//! The durable outbox: every answer this device holds, on disk before it is sent, kept until the
//! server acknowledges it.
//!
//! One small JSON file per question, `answers/<evaluation>/<question>.json` under the user's
//! folder (names hex-encoded, so any id is a safe file name). A file is replaced atomically:
//! written to a temporary file, `fsync`ed, renamed over the old one, and the folder `fsync`ed, so
//! a crash (SIGKILL, power loss, a machine put to sleep and never woken) leaves either the old
//! record or the new one, never a torn one. Only one task writes (the engine's flusher).
//!
//! A record keeps the last revision written, its content, and the highest revision the server
//! acknowledged as stored. It is *pending* while its revision is above that: it is sent again
//! after every reconnect until acknowledged, and nothing is removed. Revisions rise across
//! restarts because the next one is always above everything the file (and the server) has seen.

use crate::error::{Error, Result};
use invigil_protocol::{Answer, RejectCode, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Names one answer: an evaluation's question.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// The evaluation.
    pub evaluation_id: String,
    /// The question.
    pub question_id: String,
}

impl Key {
    /// The key of `question_id` in `evaluation_id`.
    pub fn new(evaluation_id: impl Into<String>, question_id: impl Into<String>) -> Self {
        Self {
            evaluation_id: evaluation_id.into(),
            question_id: question_id.into(),
        }
    }
}

/// One answer as this device holds it; also the file format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The evaluation.
    pub evaluation_id: String,
    /// The question.
    pub question_id: String,
    /// The last revision written on this device (or adopted from the server).
    pub revision: u64,
    /// Its content.
    pub content: String,
    /// The highest revision the server acknowledged as stored; 0 for none.
    pub acked: u64,
    /// Whether the server stored the acknowledged revision as late.
    #[serde(default)]
    pub late: bool,
    /// The highest revision known to be on the server, from this device or another.
    #[serde(default)]
    pub server_revision: u64,
    /// When the revision was written here (this computer's clock; for people only).
    pub edited_at: Timestamp,
    /// Why the server last refused this revision (not kept on disk: asked again on reconnect).
    #[serde(skip)]
    pub rejected: Option<RejectCode>,
    /// Texts the server held for this question, from elsewhere (another install, a wiped data
    /// folder), that this device's text was written above: kept for the student and the export.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub displaced: Vec<Displaced>,
}

/// A text the server held that this device's text replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Displaced {
    /// The server's revision of it.
    pub revision: u64,
    /// The text.
    pub content: String,
}

impl Record {
    /// The key of this record.
    pub fn key(&self) -> Key {
        Key::new(&self.evaluation_id, &self.question_id)
    }

    /// Whether the server has not yet acknowledged this revision.
    pub fn is_pending(&self) -> bool {
        self.revision > self.acked
    }
}

/// What an acknowledgement meant for a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acked {
    /// The record's latest revision is stored.
    Stored,
    /// An earlier revision is stored; a later one is still on its way.
    Earlier,
    /// The server holds a higher revision from elsewhere: this content was not stored and must be
    /// written again above `server_revision`.
    Superseded {
        /// The server's revision.
        server_revision: u64,
    },
    /// No such record.
    Unknown,
}

/// The records of one user on one server, in memory, with the folder they live in.
#[derive(Debug)]
pub struct Outbox {
    dir: PathBuf,
    records: BTreeMap<Key, Record>,
}

impl Outbox {
    /// Opens (creating it if needed) the outbox in `dir` and reads every record.
    ///
    /// Leftover temporary files of an interrupted write are removed: the rename never happened,
    /// so the record before them is the one that counts.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        create_dir_durably(&dir)?;
        // A run that crashed between creating a folder and syncing its parent left that name on
        // no durable place, and `create_dir_durably` finds the folder there now: make the names
        // in this outbox, and its own name, durable at every opening.
        sync_dir(&dir)?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        let mut records = BTreeMap::new();
        for evaluation in fs::read_dir(&dir).map_err(Error::storage("read", &dir))? {
            let evaluation = evaluation.map_err(Error::storage("read", &dir))?.path();
            if !evaluation.is_dir() {
                continue;
            }
            for file in fs::read_dir(&evaluation).map_err(Error::storage("read", &evaluation))? {
                let path = file.map_err(Error::storage("read", &evaluation))?.path();
                match path.extension().and_then(|e| e.to_str()) {
                    Some("tmp") => {
                        let _ = fs::remove_file(&path);
                    }
                    Some("json") => match read_record(&path) {
                        Ok(record) => {
                            records.insert(record.key(), record);
                        }
                        Err(e) => {
                            // Not written by this engine (writes are atomic): set it aside for
                            // a person to look at rather than refuse to start.
                            tracing::warn!(error = %e, "an outbox file is damaged; set aside");
                            let _ = fs::rename(&path, path.with_extension("json.damaged"));
                        }
                    },
                    _ => {}
                }
            }
        }
        Ok(Self { dir, records })
    }

    /// The folder of this outbox.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The record of `key`.
    pub fn get(&self, key: &Key) -> Option<&Record> {
        self.records.get(key)
    }

    /// Every record, by evaluation then question.
    pub fn records(&self) -> impl Iterator<Item = &Record> {
        self.records.values()
    }

    /// The records not yet acknowledged.
    pub fn pending(&self) -> impl Iterator<Item = &Record> {
        self.records.values().filter(|r| r.is_pending())
    }

    /// How many records are not yet acknowledged.
    pub fn pending_count(&self) -> usize {
        self.pending().count()
    }

    /// The next revision for `key`: above everything written here and seen on the server.
    pub fn next_revision(&self, key: &Key) -> u64 {
        self.records
            .get(key)
            .map_or(0, |r| r.revision.max(r.acked).max(r.server_revision))
            + 1
    }

    /// A new revision of `key` holding `content`, to be [`persist`]ed and then [`commit`](Self::commit)ted.
    pub fn stage(&self, key: &Key, content: String) -> Record {
        let previous = self.records.get(key);
        Record {
            evaluation_id: key.evaluation_id.clone(),
            question_id: key.question_id.clone(),
            revision: self.next_revision(key),
            content,
            acked: previous.map_or(0, |r| r.acked),
            late: previous.is_some_and(|r| r.late),
            server_revision: previous.map_or(0, |r| r.server_revision),
            edited_at: Timestamp::now(),
            rejected: None,
            displaced: previous.map(|r| r.displaced.clone()).unwrap_or_default(),
        }
    }

    /// Takes in a record that is now durable. Acknowledgements that arrived meanwhile are kept.
    pub fn commit(&mut self, record: Record) {
        let key = record.key();
        match self.records.get_mut(&key) {
            Some(existing) if existing.revision > record.revision => {
                // Never go back to an older revision.
                existing.acked = existing.acked.max(record.acked);
            }
            Some(existing) => {
                let acked = existing.acked.max(record.acked);
                let server_revision = existing.server_revision.max(record.server_revision);
                // A text set aside while this one was being written is kept too.
                let mut displaced = record.displaced;
                for text in std::mem::take(&mut existing.displaced) {
                    if !displaced.contains(&text) {
                        displaced.push(text);
                    }
                }
                *existing = Record {
                    acked,
                    server_revision,
                    displaced,
                    ..record
                };
            }
            None => {
                self.records.insert(key, record);
            }
        }
    }

    /// Notes `ANSWER_ACK` for `key`: the server holds `revision` (late or not).
    pub fn acknowledge(&mut self, key: &Key, revision: u64, late: bool) -> Acked {
        let Some(record) = self.records.get_mut(key) else {
            return Acked::Unknown;
        };
        record.server_revision = record.server_revision.max(revision);
        if revision > record.revision {
            return Acked::Superseded {
                server_revision: revision,
            };
        }
        if revision >= record.acked {
            record.acked = revision;
            record.late = late;
        }
        if record.is_pending() {
            Acked::Earlier
        } else {
            record.rejected = None;
            Acked::Stored
        }
    }

    /// Notes `ANSWER_REJECTED` of `revision` of `key`; the record stays pending.
    pub fn reject(&mut self, key: &Key, revision: u64, code: RejectCode) -> bool {
        match self.records.get_mut(key) {
            Some(record) if record.revision == revision => {
                record.rejected = Some(code);
                true
            }
            _ => false,
        }
    }

    /// Forgets every refusal of `evaluation_id` (its saves are to be tried again).
    pub fn clear_rejections(&mut self, evaluation_id: &str) {
        for record in self.records.values_mut() {
            if record.evaluation_id == evaluation_id {
                record.rejected = None;
            }
        }
    }

    /// Takes in everything the server holds for `evaluation_id` (`GET .../answers`, the whole
    /// list: a question missing from it is one the server does not hold). Returns the records
    /// that changed and should be written back.
    ///
    /// Nothing typed here is ever replaced or dropped:
    ///
    /// - a pending record whose revision the server holds with other text (or that the server
    ///   passed with other text) keeps its text, which is written again above the server's
    ///   revision ([`collides`](Self::collides)); the server's text is kept in
    ///   [`Record::displaced`];
    /// - a record the server acknowledged but no longer holds (restored from a backup, a replica
    ///   promoted) becomes pending again, to be sent again.
    pub fn adopt_server_answers(&mut self, evaluation_id: &str, answers: &[Answer]) -> Vec<Record> {
        let mut changed = Vec::new();
        let held: BTreeMap<&str, &Answer> = answers
            .iter()
            .map(|a| (a.question_id.as_str(), a))
            .collect();
        for answer in answers {
            let key = Key::new(evaluation_id, &answer.question_id);
            if let std::collections::btree_map::Entry::Vacant(entry) = self.records.entry(key) {
                let record = Record {
                    evaluation_id: evaluation_id.to_owned(),
                    question_id: answer.question_id.clone(),
                    revision: answer.revision,
                    content: answer.content.clone(),
                    acked: answer.revision,
                    late: answer.late,
                    server_revision: answer.revision,
                    edited_at: answer.saved_at,
                    rejected: None,
                    displaced: Vec::new(),
                };
                changed.push(record.clone());
                entry.insert(record);
            }
        }
        for record in self
            .records
            .values_mut()
            .filter(|r| r.evaluation_id == evaluation_id)
        {
            let before = record.clone();
            match held.get(record.question_id.as_str()) {
                Some(answer) if answer.revision >= record.revision => {
                    if answer.content == record.content {
                        // Stored: the acknowledgement was lost with the connection, or another
                        // device wrote the same text.
                        record.revision = answer.revision;
                        record.acked = answer.revision;
                        record.late = answer.late;
                        record.rejected = None;
                    } else if record.is_pending() {
                        // The server holds this revision, or a later one, with text this
                        // device did not write: keep both.
                        let text = Displaced {
                            revision: answer.revision,
                            content: answer.content.clone(),
                        };
                        if !record.displaced.contains(&text) {
                            record.displaced.push(text);
                        }
                    } else {
                        // A later revision from elsewhere, over one the server already held.
                        record.revision = answer.revision;
                        record.content = answer.content.clone();
                        record.acked = answer.revision;
                        record.late = answer.late;
                    }
                    record.server_revision = answer.revision;
                }
                held_answer => {
                    // The server holds an older revision, or none. Whatever it acknowledged above
                    // that, it lost: send it again.
                    let stored = held_answer.map_or(0, |a| a.revision);
                    if record.acked > stored {
                        tracing::warn!(
                            question = %record.question_id,
                            acknowledged = record.acked,
                            stored,
                            "the server no longer holds an acknowledged answer; sending it again"
                        );
                        record.acked = stored;
                        record.late = held_answer.is_some_and(|a| a.late);
                    }
                    record.server_revision = stored;
                }
            }
            if *record != before {
                changed.push(record.clone());
            }
        }
        changed
    }

    /// Keeps `text`, which the server held and which typing on this device (not yet written)
    /// will replace, beside the record of `key`.
    pub fn keep_displaced(&mut self, key: &Key, text: Displaced) -> Option<Record> {
        let record = self.records.get_mut(key)?;
        if record.displaced.contains(&text) {
            return None;
        }
        record.displaced.push(text);
        Some(record.clone())
    }

    /// Whether the server used the revision of a pending record for other content, so that the
    /// record must be written again above it before it is sent.
    pub fn collides(&self, key: &Key) -> bool {
        self.records
            .get(key)
            .is_some_and(|r| r.is_pending() && r.server_revision >= r.revision)
    }
}

/// Writes `record` durably into the outbox folder `dir`: temporary file, fsync, rename, fsync of
/// the folder. Blocking: call it off the async threads.
pub fn persist(dir: &Path, record: &Record) -> Result<()> {
    let folder = dir.join(encode_name(&record.evaluation_id));
    create_dir_durably(&folder)?;
    let path = folder.join(format!("{}.json", encode_name(&record.question_id)));
    let tmp = folder.join(format!("{}.json.tmp", encode_name(&record.question_id)));
    let bytes = serde_json::to_vec(record).expect("records serialize");
    {
        let mut file = File::create(&tmp).map_err(Error::storage("write", &tmp))?;
        file.write_all(&bytes)
            .map_err(Error::storage("write", &tmp))?;
        file.sync_all().map_err(Error::storage("sync", &tmp))?;
    }
    fs::rename(&tmp, &path).map_err(Error::storage("rename", &path))?;
    sync_dir(&folder)?;
    Ok(())
}

/// Creates `dir` and its missing parents, and makes each creation durable (`fsync` of the folder
/// that holds it): a record renamed into a new folder is lost on a power cut if the folder's own
/// entry never reached the disk.
pub(crate) fn create_dir_durably(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(path) = at.filter(|p| !p.as_os_str().is_empty() && !p.exists()) {
        missing.push(path);
        at = path.parent();
    }
    fs::create_dir_all(dir).map_err(Error::storage("create", dir))?;
    for created in missing {
        if let Some(parent) = created.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Makes a rename in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(Error::storage("sync", dir))?;
    }
    #[cfg(not(unix))]
    {
        // Windows has no directory handles to sync; NTFS journals the rename itself.
        let _ = dir;
    }
    Ok(())
}

fn read_record(path: &Path) -> Result<Record> {
    let bytes = fs::read(path).map_err(Error::storage("read", path))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
        path: path.to_owned(),
        detail: e.to_string(),
    })
}

/// The records in the outbox folder `dir`, read without changing anything there (for the
/// answers another user or another server left on this computer). Damaged files are skipped.
pub fn read_records(dir: &Path) -> Vec<Record> {
    let mut records = Vec::new();
    let Ok(evaluations) = fs::read_dir(dir) else {
        return records;
    };
    for evaluation in evaluations.flatten() {
        let Ok(files) = fs::read_dir(evaluation.path()) else {
            continue;
        };
        for file in files.flatten() {
            let path = file.path();
            if path.extension().and_then(|e| e.to_str()) == Some("json")
                && let Ok(record) = read_record(&path)
            {
                records.push(record);
            }
        }
    }
    records.sort_by_key(Record::key);
    records
}

/// The id [`encode_name`] made `name` from, if it is one.
pub fn decode_name(name: &str) -> Option<String> {
    if name == "_" {
        return Some(String::new());
    }
    if !name.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..name.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(name.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// A file name for any id: its UTF-8 bytes in lowercase hex.
pub fn encode_name(id: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(id.len() * 2);
    for byte in id.as_bytes() {
        let _ = write!(out, "{byte:02x}");
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(q: &str) -> Key {
        Key::new("e1", q)
    }

    fn write(outbox: &mut Outbox, k: &Key, content: &str) -> Record {
        let record = outbox.stage(k, content.to_owned());
        persist(outbox.dir(), &record).unwrap();
        outbox.commit(record.clone());
        record
    }

    #[test]
    fn a_written_record_is_read_back_pending_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path()).unwrap();
        write(&mut outbox, &key("q1"), "first");
        write(&mut outbox, &key("q1"), "second");

        let reopened = Outbox::open(dir.path()).unwrap();
        let record = reopened.get(&key("q1")).unwrap();
        assert_eq!((record.revision, record.content.as_str()), (2, "second"));
        assert!(record.is_pending());
        assert_eq!(reopened.pending_count(), 1);
    }

    #[test]
    fn revisions_rise_across_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path()).unwrap();
        for i in 0..3 {
            write(&mut outbox, &key("q1"), &format!("v{i}"));
        }
        drop(outbox);
        let outbox = Outbox::open(dir.path()).unwrap();
        assert_eq!(outbox.next_revision(&key("q1")), 4);
    }

    #[test]
    fn an_interrupted_write_leaves_the_previous_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path()).unwrap();
        let record = write(&mut outbox, &key("q1"), "kept");
        // A crash between writing the temporary file and renaming it.
        let folder = dir.path().join(encode_name("e1"));
        fs::write(
            folder.join(format!("{}.json.tmp", encode_name("q1"))),
            b"{\"torn",
        )
        .unwrap();

        let reopened = Outbox::open(dir.path()).unwrap();
        assert_eq!(reopened.get(&key("q1")), Some(&record));
        assert!(
            !folder
                .join(format!("{}.json.tmp", encode_name("q1")))
                .exists()
        );
    }

    #[test]
    fn only_the_acknowledgement_of_the_latest_revision_clears_a_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path()).unwrap();
        write(&mut outbox, &key("q1"), "a");
        write(&mut outbox, &key("q1"), "ab");
        assert_eq!(outbox.acknowledge(&key("q1"), 1, false), Acked::Earlier);
        assert_eq!(outbox.pending_count(), 1);
        assert_eq!(outbox.acknowledge(&key("q1"), 2, true), Acked::Stored);
        assert_eq!(outbox.pending_count(), 0);
        assert!(outbox.get(&key("q1")).unwrap().late);
        // Still there: nothing is removed, acknowledged or not.
        assert_eq!(outbox.get(&key("q1")).unwrap().content, "ab");
    }

    #[test]
    fn an_acknowledgement_arriving_during_a_write_is_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path()).unwrap();
        write(&mut outbox, &key("q1"), "a");
        let staged = outbox.stage(&key("q1"), "ab".into());
        outbox.acknowledge(&key("q1"), 1, false);
        outbox.commit(staged);
        let record = outbox.get(&key("q1")).unwrap();
        assert_eq!((record.revision, record.acked), (2, 1));
    }

    #[test]
    fn a_higher_revision_from_elsewhere_supersedes_and_numbers_the_next_write_above_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path()).unwrap();
        write(&mut outbox, &key("q1"), "mine");
        assert_eq!(
            outbox.acknowledge(&key("q1"), 9, false),
            Acked::Superseded { server_revision: 9 }
        );
        assert!(outbox.get(&key("q1")).unwrap().is_pending());
        assert_eq!(outbox.next_revision(&key("q1")), 10);
    }

    #[test]
    fn server_answers_fill_in_what_this_device_lacks_but_never_replace_a_pending_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path()).unwrap();
        write(&mut outbox, &key("q1"), "typed here");
        let answer = |q: &str, revision, content: &str| Answer {
            question_id: q.into(),
            revision,
            content: content.into(),
            saved_at: Timestamp::now(),
            late: false,
            on_time: None,
        };
        let changed = outbox.adopt_server_answers(
            "e1",
            &[
                answer("q1", 4, "from another device"),
                answer("q2", 3, "other"),
            ],
        );
        assert_eq!(changed.len(), 2);
        assert_eq!(outbox.get(&key("q1")).unwrap().content, "typed here");
        assert!(outbox.collides(&key("q1")));
        assert_eq!(
            outbox.get(&key("q1")).unwrap().displaced,
            [Displaced {
                revision: 4,
                content: "from another device".into()
            }]
        );
        assert_eq!(outbox.next_revision(&key("q1")), 5);
        let q2 = outbox.get(&key("q2")).unwrap();
        assert_eq!(
            (q2.revision, q2.content.as_str(), q2.is_pending()),
            (3, "other", false)
        );
    }

    #[test]
    fn a_lost_acknowledgement_is_recovered_from_the_server_answers() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path()).unwrap();
        let record = write(&mut outbox, &key("q1"), "sent");
        outbox.adopt_server_answers(
            "e1",
            &[Answer {
                question_id: "q1".into(),
                revision: record.revision,
                content: "sent".into(),
                saved_at: Timestamp::now(),
                late: false,
                on_time: None,
            }],
        );
        assert_eq!(outbox.pending_count(), 0);
    }

    fn server_answer(q: &str, revision: u64, content: &str) -> Answer {
        Answer {
            question_id: q.into(),
            revision,
            content: content.into(),
            saved_at: Timestamp::now(),
            late: false,
            on_time: None,
        }
    }

    #[test]
    fn the_same_revision_with_other_text_on_the_server_keeps_both_texts() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path()).unwrap();
        // A wiped data folder numbers from 1 again; the server holds 1 from before.
        write(&mut outbox, &key("q1"), "typed after the wipe");
        outbox.reject(&key("q1"), 1, RejectCode::Conflict);

        outbox.adopt_server_answers("e1", &[server_answer("q1", 1, "typed before")]);

        let record = outbox.get(&key("q1")).unwrap();
        assert_eq!(record.content, "typed after the wipe");
        assert!(record.is_pending());
        assert!(outbox.collides(&key("q1")));
        assert_eq!(outbox.next_revision(&key("q1")), 2);
        assert_eq!(record.displaced[0].content, "typed before");
        // Written again above the server, the other text goes with it.
        let again = outbox.stage(&key("q1"), record.content.clone());
        assert_eq!((again.revision, again.displaced.len()), (2, 1));
    }

    #[test]
    fn an_acknowledged_answer_the_server_no_longer_holds_is_pending_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path()).unwrap();
        write(&mut outbox, &key("q1"), "a");
        write(&mut outbox, &key("q1"), "ab");
        write(&mut outbox, &key("q2"), "other");
        outbox.acknowledge(&key("q1"), 2, false);
        outbox.acknowledge(&key("q2"), 1, false);
        assert_eq!(outbox.pending_count(), 0);

        // Restored from a backup taken between the two saves of q1, before q2.
        let changed = outbox.adopt_server_answers("e1", &[server_answer("q1", 1, "a")]);

        assert_eq!(changed.len(), 2);
        let q1 = outbox.get(&key("q1")).unwrap();
        assert_eq!((q1.revision, q1.acked, q1.content.as_str()), (2, 1, "ab"));
        assert!(!outbox.collides(&key("q1")));
        let q2 = outbox.get(&key("q2")).unwrap();
        assert_eq!((q2.acked, q2.is_pending()), (0, true));
        assert_eq!(outbox.pending_count(), 2);
    }

    #[test]
    fn names_decode_to_the_ids_they_were_made_from() {
        for id in ["q1", "", "../x", "é/ü", "http://127.0.0.1:8080"] {
            assert_eq!(decode_name(&encode_name(id)).as_deref(), Some(id));
        }
        assert_eq!(decode_name("zz"), None);
        assert_eq!(decode_name("abc"), None);
    }

    #[test]
    fn any_id_makes_a_safe_distinct_file_name() {
        assert_eq!(encode_name("q1"), "7131");
        assert_ne!(encode_name("../x"), encode_name("..x"));
        assert!(
            encode_name("a/b\\c:d")
                .chars()
                .all(|c| c.is_ascii_hexdigit())
        );
    }
}

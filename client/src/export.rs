//! The answers-export file: what the desktop app writes when answers cannot reach the server
//! (the session ended on this device), for the professor to import in the console. The format is
//! part of the protocol: `docs/PROTOCOL.md`, "The answers file".

use crate::error::{Error, Result};
use crate::outbox::{Displaced, Record};
use invigil_protocol::Timestamp;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The value of [`AnswersExport::format`].
pub const FORMAT: &str = "invigil-answers-export";
/// The value of [`AnswersExport::version`].
pub const VERSION: u32 = 1;

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswersExport {
    /// Always `invigil-answers-export`.
    pub format: String,
    /// Always 1 for this layout.
    pub version: u32,
    /// When the file was written (the exporting computer's clock).
    pub exported_at: Timestamp,
    /// The server the answers were meant for.
    pub server_url: String,
    /// The student.
    pub username: String,
    /// The device label sent with sign-in.
    pub device: String,
    /// Why the session ended, if it did (the contract's reason).
    pub session_ended: Option<String>,
    /// Every answer not acknowledged by the server, by evaluation then question.
    pub answers: Vec<ExportedAnswer>,
    /// Texts the server held, from elsewhere, that this computer's answers were written above
    /// (a second install, a wiped data folder): kept so that neither text is lost. Absent in
    /// files of earlier versions of the app.
    #[serde(default)]
    pub displaced: Vec<ExportedDisplaced>,
    /// Proctoring events the server has not acknowledged, oldest first, each as the HTTP form's
    /// body of `POST /api/evaluations/{id}/integrity` (for the professor to read: they are not
    /// imported). Left out when there are none, and absent in files of earlier versions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub integrity: Vec<invigil_protocol::IntegrityEvent>,
}

/// One answer that never reached the server (or whose acknowledgement never came back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportedAnswer {
    /// The evaluation.
    pub evaluation_id: String,
    /// Its title, when this computer knew it.
    pub evaluation_title: Option<String>,
    /// The question.
    pub question_id: String,
    /// The revision the app gave it (above anything the server acknowledged to this device).
    pub revision: u64,
    /// What the student wrote (for a choice question, the chosen choice's id).
    pub content: String,
    /// When it was written on this computer (its clock).
    pub edited_at: Timestamp,
    /// The highest revision of this question the server acknowledged to this device; 0 for none.
    pub acknowledged_revision: u64,
    /// Why the server last refused it, if it did (`blocked`, `not_participating`, …).
    pub rejected: Option<invigil_protocol::RejectCode>,
}

impl ExportedAnswer {
    /// The export line of a pending record.
    pub fn new(record: &Record, evaluation_title: Option<String>) -> Self {
        Self {
            evaluation_id: record.evaluation_id.clone(),
            evaluation_title,
            question_id: record.question_id.clone(),
            revision: record.revision,
            content: record.content.clone(),
            edited_at: record.edited_at,
            acknowledged_revision: record.acked,
            rejected: record.rejected,
        }
    }
}

/// A text the server held that an answer of this computer replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportedDisplaced {
    /// The evaluation.
    pub evaluation_id: String,
    /// Its title, when this computer knew it.
    pub evaluation_title: Option<String>,
    /// The question.
    pub question_id: String,
    /// The server's revision of that text.
    pub revision: u64,
    /// The text.
    pub content: String,
}

impl ExportedDisplaced {
    /// The export line of `text`, set aside in `record`.
    pub fn new(record: &Record, evaluation_title: Option<String>, text: &Displaced) -> Self {
        Self {
            evaluation_id: record.evaluation_id.clone(),
            evaluation_title,
            question_id: record.question_id.clone(),
            revision: text.revision,
            content: text.content.clone(),
        }
    }
}

/// The longest part of a file name taken from the username.
const MAX_NAME_PART: usize = 64;

/// The file's name, `invigil-answers-USERNAME-YYYYMMDD-HHMMSS.json` (UTC), made only of
/// `[A-Za-z0-9._-]`: any other character of the username (which the server chose: a username may
/// hold letters of any script and `@`, a hostile server could send `/`) becomes `_`, and it is cut
/// to 64 characters. The fixed prefix keeps it from being `.`, `..` or a hidden file.
pub fn file_name(username: &str, at: Timestamp) -> String {
    let mut who: String = username
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(MAX_NAME_PART)
        .collect();
    if who.is_empty() {
        who.push_str("student");
    }
    let t = at.datetime();
    format!(
        "invigil-answers-{who}-{:04}{:02}{:02}-{:02}{:02}{:02}.json",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The path of the file named `name` in `folder`, refused unless it is exactly one plain name
/// inside that folder (no separator, no `..`, nothing absolute): the file can only land there.
pub fn path_in(folder: &Path, name: &str) -> Result<PathBuf> {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && name != "."
        && name != "..";
    let path = folder.join(name);
    if !plain || path.parent() != Some(folder) {
        return Err(Error::Storage {
            action: "name",
            path,
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "an export file's name must be one plain name inside the chosen folder",
            ),
        });
    }
    Ok(path)
}

/// Writes `export` to `path` durably (temporary file, fsync, rename). The temporary file is
/// created fresh beside it (a stale one is removed first, never followed if it is a link), so
/// nothing is written outside `path`'s folder.
pub fn write(path: &Path, export: &AnswersExport) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(export).expect("exports serialize");
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(Error::storage("remove", &tmp)(e));
        }
        _ => {}
    }
    {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(Error::storage("write", &tmp))?;
        file.write_all(&bytes)
            .map_err(Error::storage("write", &tmp))?;
        file.sync_all().map_err(Error::storage("sync", &tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(Error::storage("rename", path))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::outbox::sync_dir(dir)?;
    }
    Ok(())
}

/// Reads an export file back (for tests and tools).
pub fn read(path: &Path) -> Result<AnswersExport> {
    let bytes = std::fs::read(path).map_err(Error::storage("read", path))?;
    let export: AnswersExport = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
    if export.format != FORMAT || export.version != VERSION {
        return Err(Error::Corrupt {
            path: path.to_owned(),
            detail: format!("not an {FORMAT} version {VERSION} file"),
        });
    }
    Ok(export)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> Timestamp {
        Timestamp::parse("2026-11-22T10:41:07.512Z").unwrap()
    }

    #[test]
    fn the_file_name_holds_only_safe_characters_and_the_utc_time() {
        assert_eq!(
            file_name("alice.b-1_x", at()),
            "invigil-answers-alice.b-1_x-20261122-104107.json"
        );
        for hostile in [
            "../../etc/passwd",
            "a/b\\c",
            "zoë@uni",
            "\u{0}",
            "C:\\x",
            "",
        ] {
            let name = file_name(hostile, at());
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')),
                "{name}"
            );
            assert!(name.starts_with("invigil-answers-"), "{name}");
            assert!(!name.contains('/') && !name.contains('\\'), "{name}");
        }
        assert_eq!(
            file_name("", at()),
            "invigil-answers-student-20261122-104107.json"
        );
        assert_eq!(
            file_name(&"x".repeat(500), at()).len(),
            "invigil-answers--20261122-104107.json".len() + MAX_NAME_PART
        );
    }

    #[test]
    fn a_path_is_only_ever_one_plain_name_inside_the_folder() {
        let folder = Path::new("/home/alice/Documents");
        assert_eq!(
            path_in(folder, "invigil-answers-a-1.json").unwrap(),
            folder.join("invigil-answers-a-1.json")
        );
        for bad in [
            "",
            ".",
            "..",
            "../x.json",
            "/etc/x.json",
            "a/b.json",
            "x\\y.json",
        ] {
            assert!(path_in(folder, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn writing_replaces_a_stale_temporary_link_instead_of_following_it() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("victim");
        std::fs::write(&target, "untouched").unwrap();
        let path = path_in(dir.path(), "invigil-answers-a-20261122-104107.json").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(&target, path.with_extension("json.tmp")).unwrap();
        let export = AnswersExport {
            format: FORMAT.to_owned(),
            version: VERSION,
            exported_at: at(),
            server_url: "https://exams.example.org".to_owned(),
            username: "a".to_owned(),
            device: "pc".to_owned(),
            session_ended: None,
            answers: Vec::new(),
            displaced: Vec::new(),
            integrity: Vec::new(),
        };
        write(&path, &export).unwrap();
        assert_eq!(read(&path).unwrap(), export);
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "untouched");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [path.file_name().unwrap()]);
    }
}

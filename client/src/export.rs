//! The answers-export file: what the desktop app writes when answers cannot reach the server
//! (the session ended on this device), for the professor to import in the console. The format is
//! part of the protocol: `docs/PROTOCOL.md`, "The answers file".

use crate::error::{Error, Result};
use crate::outbox::{Displaced, Record};
use invigil_protocol::Timestamp;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

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

/// Writes `export` to `path` durably (temporary file, fsync, rename).
pub fn write(path: &Path, export: &AnswersExport) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(export).expect("exports serialize");
    {
        let mut file = std::fs::File::create(&tmp).map_err(Error::storage("write", &tmp))?;
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

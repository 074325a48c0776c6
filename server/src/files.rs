//! The files staff exchange with the server, for the console and the command line alike: student
//! rosters (CSV in), answers and audit exports (CSV out), and the desktop app's answers-export
//! file (JSON in). Formats are described in `docs/PROTOCOL.md`.

use crate::domain::{self, Password, Revision, Username};
use crate::error::Error;
use crate::live::event::ParticipantRow;
use crate::store::{AnswerImport, AnswerRecord, ImportedAnswer};
use invigil_protocol::{AuditEntry, Evaluation, ImportSkipped, LineError, QuestionKind, Timestamp};
use serde::Deserialize;
use std::collections::HashMap;

/// The largest number of accounts one roster may create.
pub const MAX_ROSTER_LINES: usize = 20_000;
/// The largest roster file, in bytes (4 MiB: far more than 20,000 lines need).
pub const MAX_ROSTER_BYTES: usize = 4 * 1024 * 1024;
/// The most faulty lines a refusal names one by one (the rest are counted).
pub const MAX_LINE_ERRORS: usize = 100;

/// One checked line of a student roster.
#[derive(Debug, Clone)]
pub struct RosterLine {
    /// Its line number in the file (1 is the header).
    pub line: u64,
    /// The sign-in name.
    pub username: Username,
    /// The name shown (the username when the column is absent or blank).
    pub display_name: String,
    /// The initial password.
    pub password: Password,
}

/// Reads a student roster: a CSV file whose header names the columns `username`, `password` and
/// optionally `display_name` (in any order, any case; other columns are ignored). Every line is
/// checked; any error rejects the whole file, with one message per faulty line (the first
/// [`MAX_LINE_ERRORS`], then a count). At most [`MAX_ROSTER_BYTES`] and [`MAX_ROSTER_LINES`]
/// students; reading stops at the first line past them. Linear in the file's size.
pub fn parse_roster(text: &str) -> Result<Vec<RosterLine>, Vec<LineError>> {
    if text.len() > MAX_ROSTER_BYTES {
        return Err(vec![LineError {
            line: 1,
            message: format!(
                "A roster may be at most {MAX_ROSTER_BYTES} bytes (4 MiB); split the file."
            ),
        }]);
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header_error = |message: String| vec![LineError { line: 1, message }];
    let headers = reader
        .headers()
        .map_err(|e| header_error(format!("The header cannot be read: {e}.")))?
        .clone();
    let column = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (Some(username_at), Some(password_at)) = (column("username"), column("password")) else {
        return Err(header_error(
            "The first line must name the columns: username,display_name,password \
             (display_name may be left out)."
                .into(),
        ));
    };
    let name_at = column("display_name");
    let mut lines = Vec::new();
    let mut errors = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut lines_before = LineCounter::new(text.as_bytes());
    let mut skipped_errors = 0usize;
    for record in reader.records() {
        if lines.len() > MAX_ROSTER_LINES {
            break;
        }
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| lines_before.line_at(p.byte()));
                if errors.len() < MAX_LINE_ERRORS {
                    errors.push(LineError {
                        line,
                        message: format!("This line cannot be read: {e}."),
                    });
                } else {
                    skipped_errors += 1;
                }
                continue;
            }
        };
        let line = record
            .position()
            .map_or(0, |p| lines_before.line_at(p.byte()));
        if record.iter().all(str::is_empty) {
            continue;
        }
        let field = |at: usize| record.get(at).unwrap_or_default();
        let mut problems = Vec::new();
        let username = match Username::parse(field(username_at)) {
            Ok(u) => Some(u),
            Err(e) => {
                problems.push(e.message());
                None
            }
        };
        let password = match Password::parse(field(password_at).to_owned()) {
            Ok(p) => Some(p),
            Err(e) => {
                problems.push(e.message());
                None
            }
        };
        let display_name = username.as_ref().and_then(|u| {
            let given = name_at.map(|at| field(at).to_owned());
            domain::display_name(given, u)
                .map_err(|e| problems.push(e.message()))
                .ok()
        });
        if let Some(u) = &username
            && let Some(first) = seen.insert(u.as_str().to_owned(), line)
        {
            problems.push(format!("`{u}` is already on line {first}."));
        }
        match (username, password, display_name) {
            (Some(username), Some(password), Some(display_name)) if problems.is_empty() => lines
                .push(RosterLine {
                    line,
                    username,
                    display_name,
                    password,
                }),
            _ if errors.len() < MAX_LINE_ERRORS => errors.push(LineError {
                line,
                message: problems.join(" "),
            }),
            _ => skipped_errors += 1,
        }
    }
    if skipped_errors > 0 {
        errors.push(LineError {
            line: 0,
            message: format!("And {skipped_errors} more faulty lines."),
        });
    }
    if lines.len() > MAX_ROSTER_LINES {
        errors.push(LineError {
            line: 1,
            message: format!(
                "A roster may create at most {MAX_ROSTER_LINES} accounts; split the file."
            ),
        });
    }
    if lines.is_empty() && errors.is_empty() {
        errors.push(LineError {
            line: 1,
            message: "The file names no student.".into(),
        });
    }
    if errors.is_empty() {
        Ok(lines)
    } else {
        Err(errors)
    }
}

/// Line numbers of byte offsets met in rising order, counted once over the text: linear, where
/// counting from the start for every record was quadratic in the number of lines.
struct LineCounter<'a> {
    bytes: &'a [u8],
    /// How far newlines are counted, and how many were before it.
    at: usize,
    newlines: u64,
}

impl<'a> LineCounter<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            at: 0,
            newlines: 0,
        }
    }

    /// The line a record starting at `byte` is on (1 is the first). The reader's own line count
    /// leaves out the blank lines it skips, so records are placed by their offset, past the line
    /// breaks that precede them.
    fn line_at(&mut self, byte: u64) -> u64 {
        let bytes = self.bytes;
        let mut end = usize::try_from(byte).unwrap_or(usize::MAX).min(bytes.len());
        while end < bytes.len() && matches!(bytes[end], b'\n' | b'\r') {
            end += 1;
        }
        if end < self.at {
            // Not in rising order (never, from one reader): count afresh.
            self.at = 0;
            self.newlines = 0;
        }
        self.newlines += bytes[self.at..end].iter().filter(|b| **b == b'\n').count() as u64;
        self.at = end;
        1 + self.newlines
    }
}

/// A cell a spreadsheet will not run as a formula: text starting with `=`, `+`, `-`, `@`, a tab
/// or a carriage return gets a leading apostrophe (OWASP's advice against CSV injection; the JSON
/// API keeps the exact text).
fn cell(text: &str) -> std::borrow::Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}").into()
    } else {
        text.into()
    }
}

fn finish(writer: csv::Writer<Vec<u8>>) -> Result<String, Error> {
    let bytes = writer
        .into_inner()
        .map_err(|e| Error::internal(format!("writing a CSV file: {e}")))?;
    String::from_utf8(bytes).map_err(Error::internal)
}

/// The answers export: one row per participant and question, in the order of the board and of
/// the questions, with the stored revision, whether it is late, the last on-time revision kept
/// beside a late one, and where it came from.
pub fn answers_csv(
    evaluation: &Evaluation,
    participants: &[ParticipantRow],
    records: &[AnswerRecord],
) -> Result<String, Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let csv_error = |e: csv::Error| Error::internal(format!("writing a CSV file: {e}"));
    writer
        .write_record([
            "username",
            "display_name",
            "status",
            "question_id",
            "question_kind",
            "revision",
            "saved_at",
            "late",
            "content",
            "on_time_revision",
            "on_time_saved_at",
            "on_time_content",
            "source",
            // The student's integrity events (proctoring), repeated on each of their lines.
            "integrity_events",
            "focus_lost",
            "brief_absences",
            "away_ms",
            "longest_away_ms",
        ])
        .map_err(csv_error)?;
    let by_key: HashMap<(&str, &str), &AnswerRecord> = records
        .iter()
        .map(|r| ((r.username.as_str(), r.answer.question_id.as_str()), r))
        .collect();
    for p in participants {
        for q in &evaluation.questions {
            let kind = match q.kind {
                QuestionKind::Text => "text",
                QuestionKind::Code => "code",
                QuestionKind::Choice { .. } => "choice",
            };
            let record = by_key.get(&(p.username.as_str(), q.id.as_str()));
            let answer = record.map(|r| &r.answer);
            let on_time = answer.and_then(|a| a.on_time.as_ref());
            writer
                .write_record([
                    cell(&p.username).as_ref(),
                    cell(&p.display_name).as_ref(),
                    p.status.as_str(),
                    cell(&q.id).as_ref(),
                    kind,
                    &answer.map(|a| a.revision.to_string()).unwrap_or_default(),
                    &answer.map(|a| a.saved_at.to_string()).unwrap_or_default(),
                    answer.map_or("", |a| if a.late { "true" } else { "false" }),
                    &answer.map(|a| cell(&a.content)).unwrap_or_default(),
                    &on_time.map(|o| o.revision.to_string()).unwrap_or_default(),
                    &on_time.map(|o| o.saved_at.to_string()).unwrap_or_default(),
                    &on_time.map(|o| cell(&o.content)).unwrap_or_default(),
                    &record
                        .and_then(|r| r.source.as_deref())
                        .map(cell)
                        .unwrap_or_default(),
                    &p.integrity.events.to_string(),
                    &p.integrity.focus_lost.to_string(),
                    &p.integrity.brief.to_string(),
                    &p.integrity.away_ms.to_string(),
                    &p.integrity.longest_away_ms.to_string(),
                ])
                .map_err(csv_error)?;
        }
    }
    finish(writer)
}

/// Which audit entries to keep: each filter given must match.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditFilter {
    /// Only entries of this kind.
    pub kind: Option<String>,
    /// Only entries about this student.
    pub username: Option<String>,
    /// Only entries by this actor.
    pub actor: Option<String>,
    /// Only entries at or after this time.
    pub since: Option<Timestamp>,
    /// Only entries before this time.
    pub until: Option<Timestamp>,
}

impl AuditFilter {
    /// Whether `entry` passes. Empty filters are no filters.
    pub fn keeps(&self, entry: &AuditEntry) -> bool {
        let given = |f: &Option<String>| f.as_deref().filter(|v| !v.is_empty()).map(str::to_owned);
        given(&self.kind).is_none_or(|k| entry.kind.as_str() == k)
            && given(&self.username).is_none_or(|u| entry.username.as_deref() == Some(&*u))
            && given(&self.actor).is_none_or(|a| entry.actor.as_deref() == Some(&*a))
            && self.since.is_none_or(|t| entry.at >= t)
            && self.until.is_none_or(|t| entry.at < t)
    }
}

/// The audit log as CSV: `at,kind,username,actor,detail`, oldest first.
pub fn audit_csv(entries: &[AuditEntry]) -> Result<String, Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let csv_error = |e: csv::Error| Error::internal(format!("writing a CSV file: {e}"));
    writer
        .write_record(["at", "kind", "username", "actor", "detail"])
        .map_err(csv_error)?;
    for e in entries {
        writer
            .write_record([
                e.at.to_string().as_str(),
                e.kind.as_str(),
                &cell(e.username.as_deref().unwrap_or_default()),
                &cell(e.actor.as_deref().unwrap_or_default()),
                &cell(&e.detail),
            ])
            .map_err(csv_error)?;
    }
    finish(writer)
}

/// The value of the export file's `format`.
pub const EXPORT_FORMAT: &str = "invigil-answers-export";
/// The export file's `version` this server reads.
pub const EXPORT_VERSION: u32 = 1;

/// The desktop app's answers-export file, as far as an import needs it (other fields are ignored).
#[derive(Debug, Deserialize)]
struct ExportFile {
    format: String,
    version: u32,
    username: String,
    #[serde(default)]
    device: Option<String>,
    #[serde(default)]
    exported_at: Option<Timestamp>,
    answers: Vec<ExportedAnswer>,
}

#[derive(Debug, Deserialize)]
struct ExportedAnswer {
    evaluation_id: String,
    question_id: String,
    revision: u64,
    content: String,
    edited_at: Timestamp,
}

/// Reads an answers-export file for an import into `evaluation_id`: the answers to store (the
/// highest revision of each question) and those left out already (another evaluation's, invalid,
/// or superseded in the same file).
pub fn parse_device_export(
    bytes: &[u8],
    evaluation_id: &str,
) -> Result<(AnswerImport, Vec<ImportSkipped>), Error> {
    let file: ExportFile = serde_json::from_slice(bytes).map_err(|e| {
        Error::bad_request(format!(
            "This is not an answers file exported by the invigil desktop app: {e}."
        ))
    })?;
    if file.format != EXPORT_FORMAT || file.version != EXPORT_VERSION {
        return Err(Error::bad_request(format!(
            "This file is `{}` version {}; this server reads `{EXPORT_FORMAT}` version \
             {EXPORT_VERSION}.",
            file.format, file.version
        )));
    }
    let device = file
        .device
        .map(|d| d.trim().chars().take(200).collect::<String>())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "an unnamed device".to_owned());
    let mut skipped = Vec::new();
    let mut best: Vec<ImportedAnswer> = Vec::new();
    // Where each question's best answer is in `best`: one look-up per answer, whatever the file.
    let mut best_of: HashMap<String, usize> = HashMap::new();
    for a in file.answers {
        let skip = |reason: String| ImportSkipped {
            evaluation_id: a.evaluation_id.clone(),
            question_id: a.question_id.clone(),
            revision: a.revision,
            reason,
        };
        if a.evaluation_id != evaluation_id {
            skipped.push(skip(format!(
                "This answer belongs to evaluation `{}`; import the file there.",
                a.evaluation_id
            )));
            continue;
        }
        let checked =
            Revision::new(a.revision).and_then(|r| domain::check_content(&a.content).map(|()| r));
        let revision = match checked {
            Ok(r) => r,
            Err(e) => {
                skipped.push(skip(e.message()));
                continue;
            }
        };
        let answer = ImportedAnswer {
            question_id: a.question_id,
            revision,
            content: a.content,
            edited_at: a.edited_at,
        };
        match best_of.get(&answer.question_id).copied() {
            None => {
                best_of.insert(answer.question_id.clone(), best.len());
                best.push(answer);
            }
            Some(i) => {
                let (newer, older) = if answer.revision > best[i].revision {
                    (answer, best[i].clone())
                } else {
                    (best[i].clone(), answer)
                };
                skipped.push(ImportSkipped {
                    evaluation_id: evaluation_id.to_owned(),
                    question_id: older.question_id.clone(),
                    revision: older.revision.get(),
                    reason: format!(
                        "Revision {} of the same question in this file is newer.",
                        newer.revision.get()
                    ),
                });
                best[i] = newer;
            }
        }
    }
    Ok((
        AnswerImport {
            username: file.username,
            device,
            exported_at: file.exported_at,
            overriding: None,
            answers: best,
        },
        skipped,
    ))
}

/// A file name for a download: the title's letters and digits, then `suffix`.
pub fn download_name(title: &str, suffix: &str) -> String {
    let mut stem: String = title
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    while stem.contains("--") {
        stem = stem.replace("--", "-");
    }
    let stem = stem.trim_matches('-');
    let stem = if stem.is_empty() { "evaluation" } else { stem };
    format!("{}-{suffix}", &stem[..stem.len().min(60)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use invigil_protocol::AuditKind;

    #[test]
    fn a_roster_reads_its_columns_in_any_order_and_defaults_the_display_name() {
        let lines = parse_roster(
            "\u{feff}Password,username,Display_Name\npw1,alice,Alice Martin\n\npw2,bob,\n",
        )
        .unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].username.as_str(), "alice");
        assert_eq!(lines[0].display_name, "Alice Martin");
        assert_eq!(lines[0].line, 2);
        assert_eq!(lines[1].display_name, "bob");
        assert_eq!(lines[1].line, 4);
    }

    #[test]
    fn a_roster_names_every_faulty_line() {
        let errors = parse_roster(
            "username,display_name,password\nalice,A,pw\nbad name,B,pw\nalice,C,pw\ncarol,C,\n",
        )
        .unwrap_err();
        let lines: Vec<u64> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![3, 4, 5]);
        assert!(errors[1].message.contains("line 2"), "{:?}", errors[1]);
        assert!(errors[2].message.contains("password"), "{:?}", errors[2]);
    }

    #[test]
    fn a_roster_without_the_required_columns_is_refused_at_its_header() {
        let errors = parse_roster("name,pass\nalice,pw\n").unwrap_err();
        assert_eq!(errors[0].line, 1);
        assert!(parse_roster("username,password\n").is_err());
    }

    fn roster(lines: usize) -> String {
        let mut text = String::from("username,password\n");
        for i in 0..lines {
            text.push_str(&format!("s{i},pw\n"));
        }
        text
    }

    #[test]
    fn a_roster_over_the_line_limit_is_refused_naming_it() {
        assert_eq!(
            parse_roster(&roster(MAX_ROSTER_LINES)).unwrap().len(),
            MAX_ROSTER_LINES
        );
        let errors = parse_roster(&roster(MAX_ROSTER_LINES + 5)).unwrap_err();
        assert!(
            errors.iter().any(|e| e.message.contains("at most 20000")),
            "{errors:?}"
        );
    }

    #[test]
    fn a_roster_over_the_byte_limit_is_refused_before_it_is_read() {
        let text = format!(
            "username,password\nalice,{}\n",
            "p".repeat(MAX_ROSTER_BYTES)
        );
        let errors = parse_roster(&text).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].message.contains("4 MiB"), "{errors:?}");
    }

    #[test]
    fn a_roster_of_faulty_lines_names_the_first_hundred_and_counts_the_rest() {
        let mut text = String::from("username,password\n");
        for _ in 0..250 {
            text.push_str("bad name,pw\n");
        }
        let errors = parse_roster(&text).unwrap_err();
        assert_eq!(errors.len(), MAX_LINE_ERRORS + 1);
        assert_eq!(errors[0].line, 2);
        assert_eq!(errors[99].line, 101);
        assert!(
            errors[100].message.contains("150 more"),
            "{:?}",
            errors[100]
        );
    }

    #[test]
    fn cells_that_a_spreadsheet_would_run_are_defused() {
        assert_eq!(cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(cell("-1"), "'-1");
        assert_eq!(cell("plain"), "plain");
    }

    #[test]
    fn audit_filters_keep_only_matching_entries() {
        let entry = AuditEntry {
            at: Timestamp::from_unix_ms(1000).unwrap(),
            kind: AuditKind::Blocked,
            username: Some("alice".into()),
            actor: None,
            detail: "Blocked.".into(),
        };
        assert!(AuditFilter::default().keeps(&entry));
        let kind = |k: &str| AuditFilter {
            kind: Some(k.into()),
            ..AuditFilter::default()
        };
        assert!(kind("blocked").keeps(&entry));
        assert!(!kind("joined").keeps(&entry));
        assert!(kind("").keeps(&entry));
        let bob = AuditFilter {
            username: Some("bob".into()),
            ..AuditFilter::default()
        };
        assert!(!bob.keeps(&entry));
    }

    #[test]
    fn an_export_file_keeps_the_highest_revision_of_each_question_of_this_evaluation() {
        let file = serde_json::json!({
            "format": "invigil-answers-export", "version": 1,
            "exported_at": "2026-11-22T10:00:00.000Z", "server_url": "http://x",
            "username": "alice", "device": "Lab PC 12", "session_ended": "signed_in_elsewhere",
            "answers": [
                {"evaluation_id": "e1", "evaluation_title": "T", "question_id": "q1", "revision": 3,
                 "content": "a", "edited_at": "2026-11-22T09:00:00.000Z", "acknowledged_revision": 1,
                 "rejected": null},
                {"evaluation_id": "e1", "question_id": "q1", "revision": 5, "content": "b",
                 "edited_at": "2026-11-22T09:01:00.000Z"},
                {"evaluation_id": "e2", "question_id": "q1", "revision": 9, "content": "c",
                 "edited_at": "2026-11-22T09:02:00.000Z"}
            ]
        });
        let (import, skipped) = parse_device_export(file.to_string().as_bytes(), "e1").unwrap();
        assert_eq!(import.username, "alice");
        assert_eq!(import.device, "Lab PC 12");
        assert_eq!(import.answers.len(), 1);
        assert_eq!(import.answers[0].revision.get(), 5);
        assert_eq!(import.answers[0].content, "b");
        let reasons: Vec<(u64, &str)> = skipped
            .iter()
            .map(|s| (s.revision, s.evaluation_id.as_str()))
            .collect();
        assert_eq!(reasons, vec![(3, "e1"), (9, "e2")]);
    }

    #[test]
    fn an_export_file_of_another_format_is_refused() {
        let file = br#"{"format": "something", "version": 1, "username": "a", "answers": []}"#;
        assert!(parse_device_export(file, "e1").is_err());
        assert!(parse_device_export(b"not json", "e1").is_err());
    }

    #[test]
    fn download_names_keep_letters_and_digits() {
        assert_eq!(
            download_name("Algorithms: midterm #2", "answers.csv"),
            "Algorithms-midterm-2-answers.csv"
        );
        assert_eq!(download_name("???", "audit.csv"), "evaluation-audit.csv");
    }
}

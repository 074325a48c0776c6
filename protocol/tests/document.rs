//! `docs/PROTOCOL.md` and this crate say the same thing.
//!
//! The document lists the protocol's names in *catalogue* tables, each known by the first cell of
//! its header (`server frame`, `error code`, `close code`, …) and naming one item per row in its
//! first column. Every catalogue must hold exactly the names the crate defines:
//!
//! - the names of enums come from the types themselves, through serde: an enum's derived
//!   `Deserialize` hands the list of its variants' wire names (renames applied) to the error it
//!   makes for an unknown name, and [`Probe`] is an error type that keeps that list. A variant
//!   added to an enum is therefore in the list without anyone writing it down here;
//! - close codes are constants, which no type lists, so they are read from the source of the
//!   crate's `close` module: every `pub const` in it.
//!
//! Beyond the catalogues, every message type the document mentions anywhere must exist, every
//! status written beside an error code must be that code's, and every link must lead somewhere
//! inside the repository.

use invigil_protocol::{
    AuditKind, ClientMessage, ConsoleMessage, ErrorCode, IntegrityKind, IntegrityRejectCode,
    InvalidationReason, RejectCode, ServerMessage, UpdateReason,
};
use serde::Deserialize;
use serde::de::IntoDeserializer;
use serde::de::value::MapDeserializer;
use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

/// The document, read at build time so that editing it reruns this test.
const DOCUMENT: &str = include_str!("../../docs/PROTOCOL.md");
/// The crate's source, for the close codes.
const SOURCE: &str = include_str!("../src/lib.rs");

// ---------------------------------------------------------------------------------------------
// The code's side
// ---------------------------------------------------------------------------------------------

/// A deserializer error that keeps the variant names serde offers when it meets an unknown one.
#[derive(Debug)]
struct Probe(Option<&'static [&'static str]>);

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "probe: {:?}", self.0)
    }
}

impl std::error::Error for Probe {}

impl serde::de::Error for Probe {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Probe(None)
    }

    fn unknown_variant(_: &str, expected: &'static [&'static str]) -> Self {
        Probe(Some(expected))
    }
}

/// A name no enum of the protocol has.
const NOBODY: &str = "\u{0}";

fn listed(result: Result<impl fmt::Debug, Probe>, what: &str) -> BTreeSet<String> {
    match result {
        Err(Probe(Some(names))) => names.iter().map(|n| (*n).to_owned()).collect(),
        other => panic!("{what} did not list its variants: {other:?}"),
    }
}

/// The wire names of a fieldless enum (`"not_found"`, …).
fn names<T: for<'de> Deserialize<'de> + fmt::Debug>() -> BTreeSet<String> {
    let deserializer = IntoDeserializer::<Probe>::into_deserializer(NOBODY);
    listed(T::deserialize(deserializer), std::any::type_name::<T>())
}

/// The `type` tags of an enum tagged by `type` (`"WELCOME"`, …).
fn tags<T: for<'de> Deserialize<'de> + fmt::Debug>() -> BTreeSet<String> {
    let deserializer = MapDeserializer::<_, Probe>::new(std::iter::once(("type", NOBODY)));
    listed(T::deserialize(deserializer), std::any::type_name::<T>())
}

/// The close codes: every `pub const NAME: u16 = N;` of `pub mod close`.
fn close_codes() -> BTreeSet<String> {
    let start = SOURCE
        .find("pub mod close {")
        .expect("the crate has a `close` module");
    let body = &SOURCE[start..];
    let end = body.find("\n}").expect("the `close` module ends");
    let codes: BTreeSet<String> = body[..end]
        .lines()
        .filter_map(|line| line.trim().strip_prefix("pub const "))
        .map(|line| {
            let value = line
                .split_once(": u16 = ")
                .and_then(|(_, v)| v.strip_suffix(';'))
                .unwrap_or_else(|| panic!("a close code that is not `NAME: u16 = N;`: {line}"));
            value
                .parse::<u16>()
                .expect("close codes are numbers")
                .to_string()
        })
        .collect();
    assert!(
        codes.contains(&invigil_protocol::close::SESSION_INVALIDATED.to_string()),
        "the close module was read: {codes:?}"
    );
    codes
}

// ---------------------------------------------------------------------------------------------
// The document's side
// ---------------------------------------------------------------------------------------------

/// A Markdown table outside code blocks.
struct Table {
    /// The line of its header, counted from 1.
    line: usize,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

/// Lines of a Markdown text outside fenced code blocks, with their numbers.
fn prose_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut fenced = false;
    text.lines().enumerate().filter_map(move |(i, line)| {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            return None;
        }
        (!fenced).then_some((i + 1, line))
    })
}

/// The cells of a table row; `\|` is a pipe inside a cell.
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    let mut cells = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cells.last_mut().expect("one cell").push('|');
                chars.next();
            }
            '|' => cells.push(String::new()),
            c => cells.last_mut().expect("one cell").push(c),
        }
    }
    cells.into_iter().map(|c| c.trim().to_owned()).collect()
}

fn tables() -> Vec<Table> {
    let mut tables: Vec<Table> = Vec::new();
    let mut current: Option<Table> = None;
    for (number, line) in prose_lines(DOCUMENT) {
        if !line.trim_start().starts_with('|') {
            tables.extend(current.take());
            continue;
        }
        let row = cells(line);
        match &mut current {
            None => {
                current = Some(Table {
                    line: number,
                    header: row,
                    rows: Vec::new(),
                })
            }
            Some(_) if row.iter().all(|c| c.trim_matches([':', '-']).is_empty()) => {}
            Some(table) => table.rows.push(row),
        }
    }
    tables.extend(current);
    tables
}

/// The rows of every catalogue table whose header starts with `name`, keyed by their item.
fn catalogue(name: &str) -> Vec<(String, Vec<String>)> {
    let found: Vec<Table> = tables()
        .into_iter()
        .filter(|t| t.header.first().is_some_and(|h| h == name))
        .collect();
    assert!(
        !found.is_empty(),
        "docs/PROTOCOL.md has no table whose header starts with `{name}`"
    );
    let mut items: Vec<(String, Vec<String>)> = Vec::new();
    for table in found {
        for row in table.rows {
            let item = row[0].trim_matches('`');
            assert!(
                !item.is_empty() && !item.contains([' ', '`']),
                "the `{name}` table at line {} names no single item in the row {row:?}",
                table.line
            );
            assert!(
                items.iter().all(|(seen, _)| seen != item),
                "docs/PROTOCOL.md lists the {name} `{item}` twice"
            );
            items.push((item.to_owned(), row));
        }
    }
    items
}

/// Checks that the catalogue `name` lists exactly `defined`.
fn assert_catalogue(name: &str, defined: BTreeSet<String>) {
    let documented: BTreeSet<String> = catalogue(name).into_iter().map(|(item, _)| item).collect();
    let missing: Vec<&String> = defined.difference(&documented).collect();
    let unknown: Vec<&String> = documented.difference(&defined).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "the `{name}` tables of docs/PROTOCOL.md and protocol/ disagree:\n  defined in protocol/ \
         but not documented: {missing:?}\n  documented but not defined in protocol/: {unknown:?}"
    );
}

fn server_frames() -> BTreeSet<String> {
    tags::<ServerMessage>()
}

fn client_frames() -> BTreeSet<String> {
    tags::<ClientMessage>()
}

// ---------------------------------------------------------------------------------------------
// The catalogues
// ---------------------------------------------------------------------------------------------

#[test]
fn the_probe_reads_the_wire_names_of_enums_of_both_shapes() {
    assert!(names::<ErrorCode>().contains("not_on_access_list"));
    assert!(tags::<ServerMessage>().contains("SNAPSHOT_END"));
    assert_eq!(
        tags::<ClientMessage>(),
        BTreeSet::from([
            "ANSWER_SAVE".to_owned(),
            "HEARTBEAT".to_owned(),
            "INTEGRITY_EVENT".to_owned()
        ])
    );
}

#[test]
fn every_server_frame_is_documented_and_every_documented_one_exists() {
    assert_catalogue("server frame", server_frames());
}

#[test]
fn every_client_frame_is_documented_and_every_documented_one_exists() {
    assert_catalogue("client frame", client_frames());
}

#[test]
fn every_console_frame_is_documented_and_every_documented_one_exists() {
    assert_catalogue("console frame", tags::<ConsoleMessage>());
}

#[test]
fn every_error_code_is_documented_and_every_documented_one_exists() {
    assert_catalogue("error code", names::<ErrorCode>());
}

#[test]
fn every_close_code_is_documented_and_every_documented_one_exists() {
    assert_catalogue("close code", close_codes());
}

#[test]
fn every_audit_kind_is_documented_and_every_documented_one_exists() {
    assert_catalogue("audit kind", names::<AuditKind>());
}

#[test]
fn every_update_reason_is_documented_and_every_documented_one_exists() {
    assert_catalogue("update reason", names::<UpdateReason>());
}

#[test]
fn every_rejection_code_is_documented_and_every_documented_one_exists() {
    assert_catalogue("rejection code", names::<RejectCode>());
}

#[test]
fn every_invalidation_reason_is_documented_and_every_documented_one_exists() {
    assert_catalogue("invalidation reason", names::<InvalidationReason>());
}

#[test]
fn every_integrity_kind_is_documented_and_every_documented_one_exists() {
    assert_catalogue("integrity kind", names::<IntegrityKind>());
}

#[test]
fn every_integrity_rejection_code_is_documented_and_every_documented_one_exists() {
    assert_catalogue("integrity rejection code", names::<IntegrityRejectCode>());
}

#[test]
fn error_codes_are_documented_with_their_http_status() {
    for (name, row) in catalogue("error code") {
        let code: ErrorCode = serde_json::from_value(serde_json::json!(name))
            .unwrap_or_else(|e| panic!("`{name}` is not an error code: {e}"));
        assert_eq!(
            row.get(1).map(String::as_str),
            Some(code.status().to_string().as_str()),
            "the status of `{name}` in docs/PROTOCOL.md"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The prose
// ---------------------------------------------------------------------------------------------

/// The text between each pair of backticks of a line.
fn quoted(line: &str) -> impl Iterator<Item = &str> {
    line.split('`').skip(1).step_by(2)
}

#[test]
fn every_code_span_of_the_document_closes_on_its_line() {
    // The checks below read code spans line by line; a span across lines would pair the wrong
    // backticks (write a long example as a code block instead).
    let open: Vec<String> = prose_lines(DOCUMENT)
        .filter(|(_, line)| line.matches('`').count() % 2 == 1)
        .map(|(number, line)| format!("line {number}: {line}"))
        .collect();
    assert!(
        open.is_empty(),
        "code spans of docs/PROTOCOL.md that run over a line break:\n{}",
        open.join("\n")
    );
}

#[test]
fn every_message_type_the_document_mentions_exists() {
    let frames: BTreeSet<String> = server_frames()
        .into_iter()
        .chain(client_frames())
        .chain(tags::<ConsoleMessage>())
        .collect();
    // Upper-case words in backticks that are not frames: HTTP methods and environment variables.
    let other = |word: &str| {
        ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"].contains(&word)
            || word.starts_with("INVIGIL_")
    };
    let mut unknown = Vec::new();
    for (number, line) in prose_lines(DOCUMENT) {
        for word in quoted(line) {
            let shouted = word.chars().any(|c| c.is_ascii_uppercase())
                && word
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if shouted && !other(word) && !frames.contains(word) {
                unknown.push(format!("line {number}: `{word}`"));
            }
        }
    }
    // And in the examples: every `"type": "…"`, and every SSE `event: …`.
    for (i, line) in DOCUMENT.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("\"type\":") {
            rest = rest[at + 7..].trim_start();
            let name = rest
                .strip_prefix('"')
                .and_then(|r| r.split('"').next())
                .unwrap_or("");
            if !frames.contains(name) {
                unknown.push(format!("line {}: \"type\": \"{name}\"", i + 1));
            }
        }
        if let Some(name) = line.strip_prefix("event: ")
            && !frames.contains(name.trim())
        {
            unknown.push(format!("line {}: event: {name}", i + 1));
        }
    }
    assert!(
        unknown.is_empty(),
        "docs/PROTOCOL.md names message types protocol/ does not define:\n{}",
        unknown.join("\n")
    );
}

#[test]
fn every_status_written_beside_an_error_code_is_that_codes_status() {
    let codes = names::<ErrorCode>();
    let mut wrong = Vec::new();
    for (number, line) in prose_lines(DOCUMENT) {
        // "409 `conflict`": an error status (4xx, 5xx), a space, then a quoted word.
        for (at, _) in line.match_indices(" `") {
            let before = &line[..at];
            let Some(status) = before
                .get(before.len().saturating_sub(3)..)
                .filter(|s| s.len() == 3 && s.chars().all(|c| c.is_ascii_digit()))
                .filter(|s| s.starts_with(['4', '5']))
                .filter(|_| {
                    !before[..before.len() - 3]
                        .chars()
                        .next_back()
                        .is_some_and(|c| c.is_ascii_alphanumeric())
                })
            else {
                continue;
            };
            let Some(word) = line[at + 2..].split('`').next() else {
                continue;
            };
            if !codes.contains(word) {
                // A number beside something else in backticks (a body, a header): not a claim.
                if word.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                    wrong.push(format!("line {number}: {status} `{word}` is no error code"));
                }
                continue;
            }
            let code: ErrorCode = serde_json::from_value(serde_json::json!(word)).expect("a code");
            if code.status().to_string() != status {
                wrong.push(format!(
                    "line {number}: {status} `{word}`, but `{word}` is {}",
                    code.status()
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "docs/PROTOCOL.md:\n{}", wrong.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Links
// ---------------------------------------------------------------------------------------------

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The targets of the Markdown links `[text](target)` of a text, outside code blocks.
fn link_targets(text: &str) -> Vec<(usize, String)> {
    let mut targets = Vec::new();
    for (number, line) in prose_lines(text) {
        for (at, _) in line.match_indices("](") {
            if let Some(target) = line[at + 2..].split(')').next() {
                targets.push((number, target.to_owned()));
            }
        }
    }
    targets
}

#[test]
fn every_link_inside_the_document_leads_to_one_of_its_headings() {
    let headings: BTreeSet<String> = prose_lines(DOCUMENT)
        .filter_map(|(_, line)| line.strip_prefix('#'))
        .map(|h| anchor(h.trim_start_matches('#')))
        .collect();
    let broken: Vec<String> = link_targets(DOCUMENT)
        .into_iter()
        .filter_map(|(line, target)| {
            let anchor = target.strip_prefix('#')?;
            (!headings.contains(anchor)).then(|| format!("line {line}: #{anchor}"))
        })
        .collect();
    assert!(
        broken.is_empty(),
        "links of docs/PROTOCOL.md to no heading:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_readme_and_the_documents_link_only_to_files_inside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate sits in the repository")
        .canonicalize()
        .expect("the repository exists");
    let mut documents = vec![root.join("README.md"), root.join("BENCHMARKS.md")];
    for entry in std::fs::read_dir(root.join("docs")).expect("docs/ exists") {
        let path = entry.expect("a file of docs/").path();
        if path.extension().is_some_and(|e| e == "md") {
            documents.push(path);
        }
    }
    let mut outside = Vec::new();
    for document in documents.iter().filter(|d| d.exists()) {
        let text = std::fs::read_to_string(document).expect("a readable document");
        for (line, target) in link_targets(&text) {
            if target.contains("://") || target.starts_with('#') || target.starts_with("mailto:") {
                continue;
            }
            let file = target.split('#').next().unwrap_or_default();
            let path = document.parent().expect("a folder").join(file);
            let inside = path
                .canonicalize()
                .is_ok_and(|p| p.starts_with(&root) && p.exists());
            if !inside {
                outside.push(format!("{}:{line}: {target}", document.display()));
            }
        }
    }
    assert!(
        outside.is_empty(),
        "links that lead nowhere or out of the repository:\n{}",
        outside.join("\n")
    );
}

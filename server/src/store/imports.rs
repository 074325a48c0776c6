//! Answers imported by staff from the desktop app's answers-export file: the decisions every engine
//! takes inside the import's transaction, as pure functions.
//!
//! An imported answer is judged as the student's own save would have been when it was written on
//! the device: late if written after the end, or while the evaluation was not running (from its
//! phase history). It is stored only if its revision is higher than the stored one, so a newer
//! revision that did reach the server is never replaced, and a late import never replaces the last
//! on-time revision (the late rule of the contract, [`rules::decide_save`]).
//!
//! An import is not a back door around a block or a hand-in: for a student who is blocked or has
//! handed in it is refused unless staff override it with a reason ([`admit`]), and an answer
//! counts as written no earlier than the student's last block, session end or hand-in before the
//! export ([`counted_at`]): text written on the device after the server stopped taking the
//! student's answers cannot come back on time through a file.

use super::rules::{self, Digest, OnTimeAction, SaveDecision, Stored};
use crate::domain::OverrideReason;
use crate::error::{Error, Result};
use invigil_protocol::{AuditKind, ErrorCode, ParticipationStatus, Phase, Timestamp};

/// The audit entries that mark a moment after which the student's device could no longer deliver
/// answers: a block, the end of a session, a hand-in.
pub const CUTOFF_KINDS: [AuditKind; 3] = [
    AuditKind::Blocked,
    AuditKind::SessionInvalidated,
    AuditKind::Submitted,
];

/// The `kind IN (...)` list of [`CUTOFF_KINDS`], for the engines' SQL (constant text, no input).
pub fn cutoff_kinds_sql() -> String {
    CUTOFF_KINDS
        .iter()
        .map(|k| format!("'{}'", k.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// When the file was written, as far as the server takes it: its `exported_at` (the device's
/// clock), never later than the import; the import itself when the file does not say.
pub fn export_time(exported_at: Option<Timestamp>, now: Timestamp) -> Timestamp {
    exported_at.map_or(now, |at| at.min(now))
}

/// When an imported answer counts as written: its edit time, no later than the export (nothing in
/// a file was written after the file), and no earlier than `cutoff`, the student's last block,
/// session end or hand-in at or before the export.
pub fn counted_at(
    edited_at: Timestamp,
    exported: Timestamp,
    cutoff: Option<Timestamp>,
) -> Timestamp {
    let at = edited_at.min(exported);
    cutoff.map_or(at, |cutoff| at.max(cutoff))
}

/// Whether an import may go on for a student of this status. One who is sitting the evaluation
/// (or never joined: nothing of theirs is stored) needs nothing. One who is blocked or has handed
/// in needs an override: refused without one (`blocked`, `not_participating`: the codes the
/// student's own save would get), otherwise the sentence the audit log keeps (`import_overridden`).
pub fn admit(
    username: &str,
    device: &str,
    status: ParticipationStatus,
    overriding: Option<&OverrideReason>,
) -> Result<Option<String>> {
    let (code, state) = match status {
        ParticipationStatus::NotStarted | ParticipationStatus::InProgress => return Ok(None),
        ParticipationStatus::Blocked => (ErrorCode::Blocked, "is blocked in"),
        ParticipationStatus::Submitted => (ErrorCode::NotParticipating, "has handed in"),
    };
    match overriding {
        None => Err(Error::api(
            code,
            format!(
                "{username} {state} this evaluation, so their answers file is not imported: \
                 importing it anyway needs an override with a reason (`override`), which the \
                 audit log keeps with your name."
            ),
        )),
        Some(reason) => Ok(Some(format!(
            "Imported the answers file of device \"{device}\" although {username} {state} this \
             evaluation. Reason: {}",
            reason.as_str()
        ))),
    }
}

/// The phase an evaluation was in at `at`, from the phases it entered (oldest first). Before its
/// first change an evaluation is a draft; with no history at all (an evaluation older than the
/// history), its current phase is the best there is.
pub fn phase_at(history: &[(Timestamp, Phase)], at: Timestamp, current: Phase) -> Phase {
    if history.is_empty() {
        return current;
    }
    history
        .iter()
        .take_while(|(when, _)| *when <= at)
        .last()
        .map_or(Phase::Draft, |(_, phase)| *phase)
}

/// Whether an answer written at `edited_at` is late: after the end, or while not running.
pub fn late_when_written(
    history: &[(Timestamp, Phase)],
    current: Phase,
    ends_at: Option<Timestamp>,
    edited_at: Timestamp,
) -> bool {
    rules::is_late(phase_at(history, edited_at, current), ends_at, edited_at)
}

/// What to do with one imported answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportDecision {
    /// Store it, with what becomes of the kept on-time revision.
    Store(OnTimeAction),
    /// Leave what is stored; the sentence says why.
    Skip(String),
}

/// Stores an answer only over an older revision.
pub fn decide(stored: Option<Stored>, revision: u64, digest: Digest, late: bool) -> ImportDecision {
    match rules::decide_save(stored, revision, digest, late) {
        SaveDecision::Conflict => ImportDecision::Skip(format!(
            "The server already has revision {revision} of this answer with other content; the \
             file's text was not stored (both stay: the server's here, the file's on the device)."
        )),
        SaveDecision::Keep { revision: kept, .. } if kept == revision => ImportDecision::Skip(
            format!("The server already has revision {kept} of this answer."),
        ),
        SaveDecision::Keep { revision: kept, .. } => ImportDecision::Skip(format!(
            "The server already has a newer revision ({kept}) of this answer."
        )),
        SaveDecision::Write { on_time, .. } => ImportDecision::Store(on_time),
    }
}

/// The `source` of an imported answer.
pub fn source(device: &str, actor: &str, at: Timestamp) -> String {
    format!("imported from device \"{device}\" by {actor} at {at}")
}

/// The audit sentence of an imported answer: `edited_at` as the file says, `counted_at` when the
/// server counts it as written later.
pub fn audit_detail(
    question_id: &str,
    revision: u64,
    late: bool,
    edited_at: Timestamp,
    counted_at: Timestamp,
    source: &str,
) -> String {
    let late = if late { " It is late." } else { "" };
    let counted = if counted_at == edited_at {
        String::new()
    } else {
        format!(
            " It counts as written at {counted_at} (the export, or the block, session end or \
             hand-in before it)."
        )
    };
    format!(
        "Answer to question {question_id} (revision {revision}, written on the device at \
         {edited_at}) {source}.{counted}{late}"
    )
}

/// The refusal of a file whose student is not one of this server's.
pub fn not_a_student(username: &str) -> Error {
    Error::bad_request(format!(
        "The file is from `{username}`, who is not a student of this server."
    ))
}

/// Why nothing of a student's file could be stored: they never joined.
pub fn never_joined(username: &str) -> String {
    format!("{username} never joined this evaluation, so no answer of theirs can be stored.")
}

/// Why an answer names no question of the evaluation.
pub fn no_such_question(question_id: &str) -> String {
    format!("This evaluation has no question `{question_id}`.")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_unix_ms(ms).unwrap()
    }

    #[test]
    fn the_phase_at_a_time_is_the_last_one_entered_before_it() {
        let history = [
            (t(100), Phase::InProgress),
            (t(200), Phase::Grading),
            (t(300), Phase::InProgress),
        ];
        assert_eq!(phase_at(&history, t(50), Phase::InProgress), Phase::Draft);
        assert_eq!(
            phase_at(&history, t(150), Phase::InProgress),
            Phase::InProgress
        );
        assert_eq!(
            phase_at(&history, t(200), Phase::InProgress),
            Phase::Grading
        );
        assert_eq!(
            phase_at(&history, t(350), Phase::InProgress),
            Phase::InProgress
        );
        assert_eq!(phase_at(&[], t(350), Phase::Grading), Phase::Grading);
    }

    #[test]
    fn an_answer_written_after_the_end_or_while_closed_is_late() {
        let history = [(t(100), Phase::InProgress), (t(500), Phase::Grading)];
        assert!(!late_when_written(
            &history,
            Phase::Grading,
            Some(t(400)),
            t(300)
        ));
        assert!(late_when_written(
            &history,
            Phase::Grading,
            Some(t(400)),
            t(450)
        ));
        assert!(late_when_written(&history, Phase::Grading, None, t(600)));
        assert!(!late_when_written(&history, Phase::Grading, None, t(499)));
    }

    #[test]
    fn an_answer_counts_as_written_between_the_last_cutoff_and_the_export() {
        let now = t(1_000);
        let exported = export_time(Some(t(900)), now);
        assert_eq!(exported, t(900));
        assert_eq!(export_time(Some(t(5_000)), now), now);
        assert_eq!(export_time(None, now), now);
        // Written before a block: counts as written at the block.
        assert_eq!(counted_at(t(100), exported, Some(t(400))), t(400));
        // Written after it: as written.
        assert_eq!(counted_at(t(500), exported, Some(t(400))), t(500));
        // Claimed after the export: at the export.
        assert_eq!(counted_at(t(950), exported, Some(t(400))), t(900));
        assert_eq!(counted_at(t(100), exported, None), t(100));
    }

    #[test]
    fn a_blocked_or_handed_in_student_needs_an_override_with_a_reason() {
        let reason = OverrideReason::parse("identity checked").unwrap();
        for status in [
            ParticipationStatus::NotStarted,
            ParticipationStatus::InProgress,
        ] {
            assert_eq!(admit("alice", "pc", status, None).unwrap(), None);
            assert_eq!(admit("alice", "pc", status, Some(&reason)).unwrap(), None);
        }
        for (status, code) in [
            (ParticipationStatus::Blocked, ErrorCode::Blocked),
            (ParticipationStatus::Submitted, ErrorCode::NotParticipating),
        ] {
            match admit("alice", "pc", status, None) {
                Err(Error::Api {
                    code: got, message, ..
                }) => {
                    assert_eq!(got, code);
                    assert!(message.contains("override"), "{message}");
                }
                other => panic!("refused: {other:?}"),
            }
            let detail = admit("alice", "pc", status, Some(&reason))
                .unwrap()
                .unwrap();
            assert!(detail.ends_with("Reason: identity checked"), "{detail}");
        }
    }

    #[test]
    fn an_import_never_replaces_the_same_or_a_newer_revision() {
        let digest = Digest::of("text");
        let stored = Some(Stored {
            revision: 5,
            late: false,
            digest,
        });
        assert!(matches!(
            decide(stored, 5, digest, false),
            ImportDecision::Skip(_)
        ));
        assert!(matches!(
            decide(stored, 4, digest, false),
            ImportDecision::Skip(_)
        ));
        assert_eq!(
            decide(stored, 6, digest, true),
            ImportDecision::Store(OnTimeAction::KeepStored)
        );
        assert_eq!(
            decide(None, 1, digest, false),
            ImportDecision::Store(OnTimeAction::Clear)
        );
    }

    #[test]
    fn an_import_of_the_stored_revision_with_other_content_is_skipped_saying_so() {
        let stored = Some(Stored {
            revision: 5,
            late: false,
            digest: Digest::of("server"),
        });
        let ImportDecision::Skip(reason) = decide(stored, 5, Digest::of("device"), false) else {
            panic!("skipped");
        };
        assert!(reason.contains("other content"), "{reason}");
    }
}

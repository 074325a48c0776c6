//! The contract's decisions, as pure functions every storage engine calls inside its transaction.

use crate::error::Error;
use crate::live::event::Event;
use invigil_protocol::{
    Access, ErrorCode, Evaluation, InvalidationReason, Participation, ParticipationStatus, Phase,
    RejectCode, Role, Timestamp, User,
};

/// The SHA-256 of an answer's content: what the conflict rule compares, so that a save is judged
/// without reading the stored text back.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The digest of `content`.
    pub fn of(content: &str) -> Self {
        use sha2::Digest as _;
        Self(sha2::Sha256::digest(content.as_bytes()).into())
    }

    /// The bytes to store.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for byte in &self.0[..6] {
            write!(f, "{byte:02x}")?;
        }
        f.write_str("…")
    }
}

/// The answer stored now, as far as the rules need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// Its revision.
    pub revision: u64,
    /// Whether it is late.
    pub late: bool,
    /// Its content's digest.
    pub digest: Digest,
}

/// What happens to the kept on-time revision when a save is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnTimeAction {
    /// Nothing is kept: the new revision is on time, or no on-time revision ever existed.
    Clear,
    /// The stored (on-time) revision becomes the kept one.
    KeepStored,
    /// The kept revision stays as it is (the stored one is late too).
    Unchanged,
}

/// What to do with a save.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveDecision {
    /// Not newer than what is stored: change nothing, acknowledge the stored revision.
    Keep {
        /// The stored revision.
        revision: u64,
        /// Whether it is late.
        late: bool,
    },
    /// Store it.
    Write {
        /// Whether it is late.
        late: bool,
        /// What becomes of the kept on-time revision.
        on_time: OnTimeAction,
    },
    /// The stored answer has this revision with other content: refuse the save with `conflict`
    /// and change nothing (v2, "Answers: conflicts").
    Conflict,
}

/// Whether a save at `now` is late: after the end, or outside the running phase.
pub fn is_late(phase: Phase, ends_at: Option<Timestamp>, now: Timestamp) -> bool {
    phase != Phase::InProgress || ends_at.is_some_and(|end| now > end)
}

/// Idempotency, conflicts and the late rule: a save of the stored revision with other content is
/// a conflict; any other save not newer than the stored one changes nothing; a late save never
/// replaces the last on-time one, which is kept beside it.
pub fn decide_save(
    stored: Option<Stored>,
    revision: u64,
    digest: Digest,
    late: bool,
) -> SaveDecision {
    match stored {
        Some(s) if revision == s.revision && digest != s.digest => SaveDecision::Conflict,
        Some(s) if revision <= s.revision => SaveDecision::Keep {
            revision: s.revision,
            late: s.late,
        },
        _ if !late => SaveDecision::Write {
            late: false,
            on_time: OnTimeAction::Clear,
        },
        None => SaveDecision::Write {
            late: true,
            on_time: OnTimeAction::Clear,
        },
        Some(s) if s.late => SaveDecision::Write {
            late: true,
            on_time: OnTimeAction::Unchanged,
        },
        Some(_) => SaveDecision::Write {
            late: true,
            on_time: OnTimeAction::KeepStored,
        },
    }
}

/// Who may save: an eligible student whose participation is in progress, on a known question.
/// The order of the checks follows the contract: eligibility, question, participation.
pub fn check_save(
    eligible: bool,
    question_exists: bool,
    status: ParticipationStatus,
) -> Result<(), RejectCode> {
    if !eligible {
        return Err(RejectCode::NotOnAccessList);
    }
    if !question_exists {
        return Err(RejectCode::NotFound);
    }
    match status {
        ParticipationStatus::InProgress => Ok(()),
        ParticipationStatus::Blocked => Err(RejectCode::Blocked),
        ParticipationStatus::NotStarted | ParticipationStatus::Submitted => {
            Err(RejectCode::NotParticipating)
        }
    }
}

/// The API error of a refused save.
pub fn reject_error(code: RejectCode) -> Error {
    match code {
        RejectCode::Blocked => Error::api(
            ErrorCode::Blocked,
            "You are blocked in this evaluation; ask your professor to unblock you.",
        ),
        RejectCode::NotParticipating => Error::api(
            ErrorCode::NotParticipating,
            "You have not joined this evaluation, or you have already submitted it.",
        ),
        RejectCode::NotOnAccessList => Error::api(
            ErrorCode::NotOnAccessList,
            "You are not on the access list of this evaluation.",
        ),
        RejectCode::NotFound => Error::not_found("There is no such question in this evaluation."),
        RejectCode::BadRequest => Error::bad_request("The save is malformed."),
        RejectCode::Conflict => Error::conflict(
            "The server holds this revision of the answer with other content; save your text \
             under a higher revision.",
        ),
    }
}

/// The contract's refusal code of an API error met while saving, if it has one.
pub fn reject_code(error: &Error) -> Option<RejectCode> {
    Some(match error.code() {
        ErrorCode::Blocked => RejectCode::Blocked,
        ErrorCode::NotParticipating => RejectCode::NotParticipating,
        ErrorCode::NotOnAccessList => RejectCode::NotOnAccessList,
        ErrorCode::NotFound => RejectCode::NotFound,
        ErrorCode::BadRequest | ErrorCode::PayloadTooLarge => RejectCode::BadRequest,
        ErrorCode::Conflict => RejectCode::Conflict,
        _ => return None,
    })
}

/// What joining does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Join {
    /// Create the participation, in progress.
    Start,
    /// Already in progress: nothing changes.
    Already,
}

/// The join rules.
pub fn decide_join(
    eligible: bool,
    phase: Phase,
    status: ParticipationStatus,
) -> Result<Join, Error> {
    if !eligible {
        return Err(Error::api(
            ErrorCode::NotOnAccessList,
            "You are not on the access list of this evaluation.",
        ));
    }
    match status {
        ParticipationStatus::Blocked => Err(Error::api(
            ErrorCode::Blocked,
            "You are blocked in this evaluation; ask your professor to unblock you.",
        )),
        ParticipationStatus::Submitted => Err(Error::conflict(
            "You have already submitted this evaluation.",
        )),
        _ if phase != Phase::InProgress => Err(Error::api(
            ErrorCode::NotOpen,
            format!("This evaluation is not open: its phase is {phase}."),
        )),
        ParticipationStatus::InProgress => Ok(Join::Already),
        ParticipationStatus::NotStarted => Ok(Join::Start),
    }
}

/// The submit rules: `true` when the status changes.
pub fn decide_submit(status: ParticipationStatus) -> Result<bool, Error> {
    match status {
        ParticipationStatus::InProgress => Ok(true),
        ParticipationStatus::Submitted => Ok(false),
        ParticipationStatus::Blocked => Err(Error::api(
            ErrorCode::Blocked,
            "You are blocked in this evaluation; ask your professor to unblock you.",
        )),
        ParticipationStatus::NotStarted => Err(Error::api(
            ErrorCode::NotParticipating,
            "You have not joined this evaluation.",
        )),
    }
}

/// A sign-in blocks a student who is sitting a running evaluation.
pub fn sign_in_blocks(phase: Phase, status: ParticipationStatus) -> bool {
    phase == Phase::InProgress && status == ParticipationStatus::InProgress
}

/// Whether a student is eligible: the evaluation is open, or they are on its list.
pub fn eligible(access: Access, on_list: bool) -> bool {
    access == Access::Open || on_list
}

/// The evaluation as a student sees it: no questions while in draft.
pub fn student_view(mut evaluation: Evaluation) -> Evaluation {
    if evaluation.phase == Phase::Draft {
        evaluation.questions.clear();
    }
    evaluation
}

/// A participation with nothing stored yet.
pub fn not_started(evaluation_id: &str, username: &str, access: bool) -> Participation {
    Participation {
        evaluation_id: evaluation_id.to_owned(),
        username: username.to_owned(),
        status: ParticipationStatus::NotStarted,
        blocked_reason: None,
        access,
        proctoring_exempt: Default::default(),
    }
}

/// Only the owner of an evaluation or an admin may change it.
pub fn check_owner_or_admin(owner_id: &str, actor: &User) -> Result<(), Error> {
    if actor.role == Role::Admin || owner_id == actor.id {
        Ok(())
    } else {
        Err(Error::forbidden(
            "Only the owner of this evaluation or an admin may change it.",
        ))
    }
}

/// A phase change the contract allows, or `invalid_transition`.
pub fn check_transition(from: Phase, to: Phase) -> Result<(), Error> {
    if from.can_move_to(to) {
        Ok(())
    } else {
        Err(Error::api(
            ErrorCode::InvalidTransition,
            format!("An evaluation cannot move from {from} to {to}."),
        ))
    }
}

/// The audit sentence of a student's sessions being revoked.
pub fn invalidation_detail(reason: InvalidationReason) -> &'static str {
    match reason {
        InvalidationReason::SignedInElsewhere => "An earlier session was ended by a new sign-in.",
        InvalidationReason::SignedOut => "The student signed out.",
        InvalidationReason::RevokedByAdmin => "An admin ended the student's sessions.",
    }
}

/// The audit sentence of an end time changing.
pub fn ends_at_detail(from: Option<Timestamp>, to: Option<Timestamp>) -> String {
    match (from, to) {
        (_, None) => "The end time was removed.".to_owned(),
        (None, Some(to)) => format!("The end time was set to {to}."),
        (Some(from), Some(to)) => format!("The end time changed from {from} to {to}."),
    }
}

/// The audit sentence of an unblock, with its note (blank notes are left out).
pub fn unblock_detail(actor: &str, note: Option<&str>) -> String {
    match note.map(str::trim).filter(|n| !n.is_empty()) {
        Some(note) => format!("Unblocked by {actor}: {note}"),
        None => format!("Unblocked by {actor}."),
    }
}

/// The audit sentence of a sign-in.
pub fn sign_in_detail(device: Option<&str>) -> String {
    format!("Signed in on {}.", device.unwrap_or("an unnamed device"))
}

/// The events of a sign-in in the order connections must hear them. The student's own `blocked`
/// updates go first, so that the connections of the sessions being revoked still hear of the
/// block before SESSION_INVALIDATED closes them (no other connection of the student can exist
/// yet). The board rows go after the revocation, so that they show those connections gone.
pub fn sign_in_events(blocks: Vec<Event>, revocation: Vec<Event>) -> Vec<Event> {
    let (own, boards): (Vec<Event>, Vec<Event>) = blocks
        .into_iter()
        .partition(|e| matches!(e, Event::Evaluation(_)));
    own.into_iter().chain(revocation).chain(boards).collect()
}

/// The audit sentence of a block for a second sign-in.
pub const SECOND_SIGN_IN_DETAIL: &str =
    "Blocked: a second sign-in was detected while the evaluation was running.";
/// The audit sentence of a lost connection.
pub const DISCONNECTED_DETAIL: &str = "The connection was lost.";
/// The audit sentence of a connection that came back.
pub const RECONNECTED_DETAIL: &str = "The connection came back.";

/// The refusal of an account whose name is taken.
pub fn username_taken(username: &str) -> Error {
    Error::conflict(format!("The username `{username}` is already taken."))
}

/// The refusal of accounts created together, one of whose names is taken: none is created.
pub fn usernames_taken(username: &str) -> Error {
    Error::conflict(format!(
        "The username `{username}` is already taken; nothing was created."
    ))
}

/// An evaluation with staff's edit applied. Its questions change only while it is a draft
/// (`conflict` otherwise, unless they are the questions it already has): a student who started
/// must never find the questions they answered replaced.
pub fn edited(before: &Evaluation, edit: &super::EvaluationEdit) -> Result<Evaluation, Error> {
    let mut after = before.clone();
    if let Some(questions) = &edit.questions {
        if *questions != before.questions && before.phase != Phase::Draft {
            return Err(Error::conflict(format!(
                "Questions can only be changed while the evaluation is a draft; it is {}. The \
                 title, the end time and the access mode can still change.",
                before.phase
            )));
        }
        after.questions = questions.clone();
    }
    if let Some(title) = &edit.title {
        after.title = title.clone();
    }
    if let Some(ends_at) = edit.ends_at {
        after.ends_at = ends_at;
    }
    if let Some(access) = edit.access {
        after.access = access;
    }
    if let Some(change) = edit.proctoring {
        after.proctoring = after.proctoring.apply(change);
    }
    Ok(after)
}

/// The audit sentence of an access mode change.
pub fn access_mode_detail(from: Access, to: Access) -> String {
    format!(
        "The access mode changed from {} to {}.",
        from.as_str(),
        to.as_str()
    )
}

/// The audit sentence of a phase change.
pub fn phase_detail(from: Phase, to: Phase) -> String {
    format!("Phase changed from {from} to {to}.")
}

/// The audit sentence of a student added to an access list.
pub const ACCESS_ADDED_DETAIL: &str = "Added to the access list.";
/// The audit sentence of a student removed from an access list.
pub const ACCESS_REMOVED_DETAIL: &str = "Removed from the access list.";
/// The audit sentence of a student joining.
pub const JOINED_DETAIL: &str = "Joined the evaluation.";
/// The audit sentence of a student handing in.
pub const SUBMITTED_DETAIL: &str = "Submitted the evaluation.";

/// The audit sentence of a late answer.
pub fn late_answer_detail(question_id: &str, revision: u64) -> String {
    format!("Late answer to question {question_id} (revision {revision}).")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(revision: u64, late: bool) -> Option<Stored> {
        Some(Stored {
            revision,
            late,
            digest: Digest::of("stored"),
        })
    }

    /// `decide_save` for a save whose content is not the stored one's.
    fn decide_save(stored: Option<Stored>, revision: u64, late: bool) -> SaveDecision {
        super::decide_save(stored, revision, Digest::of("sent"), late)
    }

    #[test]
    fn the_stored_revision_with_other_content_is_a_conflict_and_with_the_same_content_is_kept() {
        let stored = stored(5, false);
        assert_eq!(
            super::decide_save(stored, 5, Digest::of("sent"), false),
            SaveDecision::Conflict
        );
        assert_eq!(
            super::decide_save(stored, 5, Digest::of("stored"), true),
            SaveDecision::Keep {
                revision: 5,
                late: false
            }
        );
    }

    #[test]
    fn a_save_not_newer_than_the_stored_one_is_kept_as_is() {
        let keep = SaveDecision::Keep {
            revision: 5,
            late: false,
        };
        assert_eq!(
            super::decide_save(stored(5, false), 5, Digest::of("stored"), false),
            keep
        );
        assert_eq!(decide_save(stored(5, false), 3, true), keep);
    }

    #[test]
    fn a_late_save_keeps_the_last_on_time_revision_beside_it() {
        assert_eq!(
            decide_save(stored(5, false), 6, true),
            SaveDecision::Write {
                late: true,
                on_time: OnTimeAction::KeepStored
            }
        );
    }

    #[test]
    fn a_second_late_save_keeps_the_same_on_time_revision() {
        assert_eq!(
            decide_save(stored(6, true), 7, true),
            SaveDecision::Write {
                late: true,
                on_time: OnTimeAction::Unchanged
            }
        );
    }

    #[test]
    fn an_on_time_save_clears_the_kept_revision_and_a_first_late_save_has_none() {
        let clear = |late| SaveDecision::Write {
            late,
            on_time: OnTimeAction::Clear,
        };
        assert_eq!(decide_save(None, 1, true), clear(true));
        assert_eq!(decide_save(stored(6, true), 7, false), clear(false));
    }

    #[test]
    fn lateness_follows_the_phase_and_the_end() {
        let t = |ms| Timestamp::from_unix_ms(ms).unwrap();
        assert!(!is_late(Phase::InProgress, None, t(10)));
        assert!(!is_late(Phase::InProgress, Some(t(10)), t(10)));
        assert!(is_late(Phase::InProgress, Some(t(10)), t(11)));
        assert!(is_late(Phase::Grading, None, t(0)));
    }

    #[test]
    fn save_checks_come_in_the_contract_order() {
        use ParticipationStatus::*;
        assert_eq!(
            check_save(false, false, Blocked),
            Err(RejectCode::NotOnAccessList)
        );
        assert_eq!(check_save(true, false, Blocked), Err(RejectCode::NotFound));
        assert_eq!(check_save(true, true, Blocked), Err(RejectCode::Blocked));
        assert_eq!(
            check_save(true, true, Submitted),
            Err(RejectCode::NotParticipating)
        );
        assert_eq!(
            check_save(true, true, NotStarted),
            Err(RejectCode::NotParticipating)
        );
        assert_eq!(check_save(true, true, InProgress), Ok(()));
    }

    #[test]
    fn join_rules_follow_the_contract() {
        use ParticipationStatus::*;
        let code = |r: Result<Join, Error>| r.map_err(|e| e.code());
        assert_eq!(
            code(decide_join(false, Phase::InProgress, NotStarted)),
            Err(ErrorCode::NotOnAccessList)
        );
        assert_eq!(
            code(decide_join(true, Phase::Draft, NotStarted)),
            Err(ErrorCode::NotOpen)
        );
        assert_eq!(
            code(decide_join(true, Phase::InProgress, Blocked)),
            Err(ErrorCode::Blocked)
        );
        assert_eq!(
            code(decide_join(true, Phase::InProgress, Submitted)),
            Err(ErrorCode::Conflict)
        );
        assert_eq!(
            code(decide_join(true, Phase::InProgress, InProgress)),
            Ok(Join::Already)
        );
        assert_eq!(
            code(decide_join(true, Phase::InProgress, NotStarted)),
            Ok(Join::Start)
        );
    }

    fn evaluation(phase: Phase) -> Evaluation {
        Evaluation {
            id: "e1".into(),
            title: "Midterm".into(),
            phase,
            ends_at: None,
            access: Access::List,
            owner: "prof".into(),
            questions: vec![question("q1")],
            proctoring: Default::default(),
        }
    }

    fn question(id: &str) -> invigil_protocol::Question {
        invigil_protocol::Question {
            id: id.into(),
            prompt: "Why?".into(),
            kind: invigil_protocol::QuestionKind::Text,
        }
    }

    #[test]
    fn questions_change_only_in_draft_and_the_rest_of_an_edit_always_applies() {
        let new_questions = super::super::EvaluationEdit {
            questions: Some(vec![question("q2")]),
            ..Default::default()
        };
        let edited_draft = edited(&evaluation(Phase::Draft), &new_questions).unwrap();
        assert_eq!(edited_draft.questions, vec![question("q2")]);
        let refused = edited(&evaluation(Phase::InProgress), &new_questions).unwrap_err();
        assert_eq!(refused.code(), ErrorCode::Conflict);

        let same_questions_and_more = super::super::EvaluationEdit {
            questions: Some(vec![question("q1")]),
            title: Some("Final".into()),
            access: Some(Access::Open),
            ..Default::default()
        };
        let after = edited(&evaluation(Phase::InProgress), &same_questions_and_more).unwrap();
        assert_eq!(
            (after.title.as_str(), after.access),
            ("Final", Access::Open)
        );
    }
}

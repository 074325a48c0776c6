//! What the engine shows: serializable views of its state (camelCase, for the front end) and the
//! [`Event`]s it sends when they change. Answer contents travel only in [`ExamContent`], read once
//! when an exam is opened, so that the many small events stay small.

use invigil_protocol::{
    BlockedReason, Choice, ParticipationStatus, Phase, Proctoring, QuestionKind, RejectCode,
    Timestamp, User,
};
use serde::Serialize;
use std::collections::BTreeMap;

/// The state of the connection to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    /// Nobody is signed in.
    SignedOut,
    /// Connecting for the first time since the app started or the student signed in.
    Connecting,
    /// The live socket is open and the server is heard.
    Online,
    /// The operating system has no network.
    NoNetwork,
    /// The network is there but the server does not answer.
    Unreachable,
    /// The server ended the session (`SESSION_INVALIDATED`, close 4001, or a 401).
    SessionEnded,
}

/// The connection, since when it is so, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionView {
    /// The state.
    pub state: ConnectionState,
    /// When this state began (this computer's clock, for display).
    pub since: Timestamp,
    /// For a session that ended: the contract's reason (`signed_in_elsewhere`, …).
    pub reason: Option<String>,
    /// What the transport said, for the curious.
    pub detail: Option<String>,
}

/// The signed-in student, or the session that ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    /// The server signed in to, or the one a sign-in will use.
    pub server_url: String,
    /// Who is (or was) signed in.
    pub user: Option<User>,
    /// Whether a session is active (signed in and not ended).
    pub signed_in: bool,
    /// Whether the OS keyring keeps the sign-in across restarts of the app.
    pub token_remembered: bool,
    /// Why the keyring does not, when it does not.
    pub vault_problem: Option<String>,
    /// Set when the session ended.
    pub ended: Option<EndedView>,
}

/// A session the server ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndedView {
    /// The contract's reason: `signed_in_elsewhere`, `signed_out`, `revoked_by_admin`, or the
    /// code of a refused reconnection (`session_invalidated`, `session_expired`,
    /// `unauthenticated`), or `sign_in_forgotten` when the keyring lost the token.
    pub reason: String,
    /// The evaluation the student was sitting, which a sign-in elsewhere has blocked.
    pub blocked_exam: Option<String>,
    /// Answers still waiting on this computer.
    pub pending: usize,
}

/// Where the student stands in an evaluation, as the exam screen shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExamState {
    /// Being prepared: no questions yet.
    Draft,
    /// Running; the student has not started.
    NotStarted,
    /// Running and the student is answering: editing is open.
    Open,
    /// A second sign-in was detected; the owner or an admin must unblock.
    Blocked,
    /// The phase left `in_progress` or `ends_at` passed: editing is locked.
    Closed,
    /// The student handed in.
    Submitted,
    /// The student is no longer on the access list.
    NoAccess,
}

/// How an answer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerState {
    /// Typed, being written to this computer (within half a second).
    Editing,
    /// Saved on this computer, waiting for the server.
    Waiting,
    /// Saved on the server.
    Saved,
}

/// One answer's status (no content).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnswerView {
    /// The question.
    pub question_id: String,
    /// The last revision written on this computer (0 before the first).
    pub revision: u64,
    /// How it stands.
    pub state: AnswerState,
    /// Whether the server stored it as late.
    pub late: bool,
    /// Why the server refused it the last time (it stays waiting).
    pub rejected: Option<RejectCode>,
    /// Waiting, but only in this app's memory: the disk refused its last revision. The screen
    /// must not say "Saved on this computer" for it (a power cut or a crash would take it).
    pub only_in_memory: bool,
    /// How many texts the server held from elsewhere (another install, a wiped data folder)
    /// that this answer was written above; each is kept, in [`ExamContent::displaced`] and
    /// the export. The student is told.
    pub displaced: usize,
}

/// A question as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QuestionView {
    /// Id.
    pub id: String,
    /// What is asked.
    pub prompt: String,
    /// `text`, `code` or `choice`.
    pub kind: &'static str,
    /// The options of a choice question.
    pub choices: Vec<Choice>,
}

impl QuestionView {
    pub(crate) fn new(question: &invigil_protocol::Question) -> Self {
        let (kind, choices) = match &question.kind {
            QuestionKind::Text => ("text", Vec::new()),
            QuestionKind::Code => ("code", Vec::new()),
            QuestionKind::Choice { choices } => ("choice", choices.clone()),
        };
        Self {
            id: question.id.clone(),
            prompt: question.prompt.clone(),
            kind,
            choices,
        }
    }
}

/// An evaluation as the student sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EvaluationView {
    /// Id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Phase.
    pub phase: Phase,
    /// When answers stop being on time.
    pub ends_at: Option<Timestamp>,
    /// The owner's username.
    pub owner: String,
    /// The student's participation status.
    pub status: ParticipationStatus,
    /// Why the student is blocked.
    pub blocked_reason: Option<BlockedReason>,
    /// Whether the student is eligible.
    pub access: bool,
    /// What the exam screen shows.
    pub exam: ExamState,
    /// The questions.
    pub questions: Vec<QuestionView>,
    /// Each answer's status, by question.
    pub answers: Vec<AnswerView>,
    /// Answers of this evaluation waiting on this computer.
    pub pending: usize,
    /// The proctoring settings that apply to this student (the evaluation's, after any exemption
    /// the student was granted).
    pub proctoring: Proctoring,
    /// Proctoring events of this evaluation waiting on this computer for the server.
    pub integrity_pending: usize,
}

/// Everything at once: what the front end reads when it starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Overview {
    /// The number of the last event this overview reflects: an event numbered at or below it is
    /// already in it, one above it is newer.
    pub seq: u64,
    /// The session.
    pub session: SessionView,
    /// The connection.
    pub connection: ConnectionView,
    /// The evaluations, by title.
    pub evaluations: Vec<EvaluationView>,
    /// Answers waiting on this computer, in all evaluations.
    pub pending: usize,
    /// The server's time now (milliseconds since the epoch), estimated as in [`crate::clock`].
    pub server_now_ms: i64,
    /// Whether that estimate comes from the server (false: this computer's clock, until the
    /// first connection).
    pub clock_synced: bool,
    /// Why this computer's disk refuses answers, while any answer is held only in memory
    /// (it is still sent to the server); never a path.
    pub storage_problem: Option<String>,
    /// Answers that exist only in this app's memory: the disk refused them and the server has
    /// not acknowledged them. Signing out or in is refused while there are any.
    pub only_in_memory: usize,
    /// Proctoring events waiting on this computer for the server, in all evaluations.
    pub integrity_pending: usize,
}

/// An exam opened for answering: its view and the content of each answer on this computer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExamContent {
    /// The evaluation.
    pub evaluation: EvaluationView,
    /// The latest content of each answered question, by question id.
    pub answers: BTreeMap<String, String>,
    /// The texts the server held from elsewhere that an answer was written above, by question
    /// id (see [`AnswerView::displaced`]).
    pub displaced: BTreeMap<String, Vec<crate::outbox::Displaced>>,
}

/// Answers waiting on this computer for one user of one server (any user: the sign-in screen
/// lists those another user, or another server, left behind).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WaitingView {
    /// The server they are for.
    pub server_url: String,
    /// The student who wrote them.
    pub username: String,
    /// How many answers wait.
    pub answers: usize,
    /// When the oldest of them was written on this computer (its clock).
    pub since: invigil_protocol::Timestamp,
}

/// What [`crate::Engine::export`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportSummary {
    /// The file.
    pub path: String,
    /// How many answers it holds.
    pub answers: usize,
    /// How many proctoring events not yet acknowledged by the server it holds.
    pub integrity_events: usize,
}

/// An event with its number: events are numbered from 1 in the order they happen, so that a
/// front end can tell which of an [`Overview`] and an event is newer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Numbered {
    /// Its number.
    pub seq: u64,
    /// The event.
    #[serde(flatten)]
    pub event: Event,
}

/// A change the front end should show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum Event {
    /// Signed in, signed out, or the session ended.
    Session(SessionView),
    /// The connection changed state.
    Connection(ConnectionView),
    /// The evaluations changed (any of them); the whole list, by title.
    Evaluations(Vec<EvaluationView>),
    /// One answer changed state.
    Answer(AnswerEvent),
    /// A proctoring event was kept, or left this computer (acknowledged or refused).
    Integrity(IntegrityCount),
    /// A new reading of the server's clock.
    Clock {
        /// The server's time now, in milliseconds since the epoch.
        #[serde(rename = "serverNowMs")]
        server_now_ms: i64,
    },
    /// Writing to this computer's disk failed (`Some`) or works again (`None`).
    Storage(Option<String>),
    /// Sign-in was answered 503 `server_busy`: the engine signs in again by itself, with the
    /// same username and password, in this many seconds.
    SignInBusy {
        /// Seconds until the next attempt.
        #[serde(rename = "retryInSecs")]
        retry_in_secs: u64,
    },
}

/// How many proctoring events wait on this computer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IntegrityCount {
    /// The evaluation whose events changed.
    pub evaluation_id: String,
    /// Its events waiting.
    pub pending: usize,
    /// Events waiting, in all evaluations.
    pub pending_total: usize,
}

/// One answer's new state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnswerEvent {
    /// The evaluation.
    pub evaluation_id: String,
    /// The answer.
    pub answer: AnswerView,
    /// Answers of this evaluation waiting on this computer.
    pub pending: usize,
    /// Answers waiting on this computer, in all evaluations.
    pub pending_total: usize,
}

/// The proctoring settings this student's app applies in an evaluation: the evaluation's own
/// (`settings`), with every setting the student is exempt from (`exempt`: their participation's
/// `proctoring_exempt`, an accommodation granted by staff) turned off. Every place that builds an
/// evaluation view's proctoring settings goes through here, so an accommodation is honoured
/// everywhere or nowhere. `brief_ms` is the evaluation's: it decides nothing on this computer.
pub fn effective_proctoring(
    settings: invigil_protocol::Proctoring,
    exempt: invigil_protocol::SettingSet,
) -> invigil_protocol::Proctoring {
    use invigil_protocol::ProctoringSetting;
    let mut effective = settings;
    for setting in exempt.iter() {
        match setting {
            ProctoringSetting::Fullscreen => effective.fullscreen = false,
            ProctoringSetting::ReportFocus => effective.report_focus = false,
            ProctoringSetting::BlockClipboard => effective.block_clipboard = false,
            ProctoringSetting::SingleDisplay => effective.single_display = false,
        }
    }
    effective
}

#[cfg(test)]
mod tests {
    use super::effective_proctoring;
    use invigil_protocol::{Proctoring, ProctoringSetting, SettingSet};

    fn everything() -> Proctoring {
        Proctoring {
            fullscreen: true,
            report_focus: true,
            block_clipboard: true,
            single_display: true,
            brief_ms: 3000,
        }
    }

    #[test]
    fn an_exempt_setting_is_off_and_the_others_apply() {
        let effective = effective_proctoring(
            everything(),
            [
                ProctoringSetting::BlockClipboard,
                ProctoringSetting::SingleDisplay,
            ]
            .into_iter()
            .collect(),
        );
        assert_eq!(
            effective,
            Proctoring {
                block_clipboard: false,
                single_display: false,
                ..everything()
            }
        );
    }

    #[test]
    fn no_exemption_leaves_the_settings_and_an_exemption_never_turns_one_on() {
        assert_eq!(
            effective_proctoring(everything(), SettingSet::default()),
            everything()
        );
        let off = Proctoring::default();
        assert_eq!(
            effective_proctoring(off, ProctoringSetting::ALL.into_iter().collect()),
            Proctoring::default()
        );
    }
}

//! The invigil wire contract, as typed serde values.
//!
//! The contract every client is written against is described for people in `docs/PROTOCOL.md`; this
//! crate is the one place where its JSON shapes are written down in Rust, and the server, the client
//! engine and the tests all speak through it. A test (`tests/document.rs`) keeps the two in step:
//! every message type, error code, close code and audit kind defined here is in the document, and
//! the document names none that is not defined here.
//!
//! # Layout
//!
//! - [`Timestamp`]: RFC 3339 UTC times with millisecond precision, as the contract writes them.
//! - accounts: [`Role`], [`User`], [`LoginRequest`], [`LoginResponse`], [`CreateUser`].
//! - evaluations: [`Evaluation`], [`Question`], [`Phase`], [`Access`], [`Participation`],
//!   [`Participant`], [`AuditEntry`].
//! - answers: [`Answer`], [`SaveAnswer`], [`SaveAck`].
//! - errors: [`ErrorBody`] and its [`ErrorCode`].
//! - the live socket: [`ServerMessage`] and [`ClientMessage`], tagged by `type`, and the [`close`] codes.
//! - additions of the project: the console's frames ([`ConsoleMessage`]) and bodies.
//! - proctoring (contract v2): [`Proctoring`] settings, [`IntegrityEvent`] and its answers
//!   ([`IntegrityAck`], [`IntegrityRejected`], frames of the socket's enums), the participant rows'
//!   [`IntegritySummary`].
//!
//! With the feature `openapi`, the types of the HTTP API also derive `utoipa::ToSchema`, for the
//! server's OpenAPI document; without it the crate needs serde alone.
//!
//! Readers are tolerant (unknown fields are ignored, as the contract may grow); writers emit exactly
//! the fields of the contract, with optional ones as `null` unless the contract says they may be omitted.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

/// A point in time, written as `2026-11-22T09:00:00.000Z`.
///
/// Any RFC 3339 time is accepted on input and converted to UTC; precision below a millisecond is
/// dropped so that a value read back from storage compares equal to the one written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

/// Milliseconds [`Timestamp::now`] adds to the system clock: zero, except in a test server told
/// to play a machine whose clock is off.
static CLOCK_OFFSET_MS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

impl Timestamp {
    /// The current time, truncated to the millisecond.
    pub fn now() -> Self {
        let offset = CLOCK_OFFSET_MS.load(std::sync::atomic::Ordering::Relaxed);
        Self::from_datetime(OffsetDateTime::now_utc() + time::Duration::milliseconds(offset))
    }

    /// Makes [`now`](Self::now) read the system clock shifted by `ms` milliseconds, for the whole
    /// process. For tests only: one machine can then run nodes whose clocks disagree.
    pub fn set_clock_offset_ms(ms: i64) {
        CLOCK_OFFSET_MS.store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// Converts any date-time to UTC with millisecond precision.
    pub fn from_datetime(at: OffsetDateTime) -> Self {
        let at = at.to_offset(UtcOffset::UTC);
        let millis = at.millisecond();
        Self(
            at.replace_nanosecond(u32::from(millis) * 1_000_000)
                .unwrap_or(at),
        )
    }

    /// Milliseconds since the Unix epoch, as storage keeps it.
    pub fn unix_ms(self) -> i64 {
        (self.0.unix_timestamp_nanos() / 1_000_000) as i64
    }

    /// The time `ms` milliseconds after the Unix epoch; `None` when out of range.
    pub fn from_unix_ms(ms: i64) -> Option<Self> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .ok()
            .map(Self)
    }

    /// Parses any RFC 3339 time.
    pub fn parse(text: &str) -> Result<Self, time::error::Parse> {
        OffsetDateTime::parse(text, &Rfc3339).map(Self::from_datetime)
    }

    /// The underlying date-time, in UTC.
    pub fn datetime(self) -> OffsetDateTime {
        self.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let format = format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        let text = self.0.format(&format).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&text).map_err(|e| {
            serde::de::Error::custom(format_args!(
                "`{text}` is not an RFC 3339 time such as 2026-11-22T09:00:00.000Z ({e})"
            ))
        })
    }
}

// In OpenAPI a timestamp is a string in the `date-time` format, as it is written.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some(
                "A UTC time with milliseconds, e.g. 2026-11-22T09:00:00.000Z",
            ))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Timestamp {}

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sits evaluations; holds one session at a time.
    Student,
    /// Creates and runs evaluations.
    Professor,
    /// Manages users and every evaluation.
    Admin,
}

impl Role {
    /// The contract's name for the role.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Student => "student",
            Role::Professor => "professor",
            Role::Admin => "admin",
        }
    }
}

/// A user as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    /// Stable id.
    pub id: String,
    /// Unique sign-in name; the contract names people by it.
    pub username: String,
    /// Name shown to people.
    pub display_name: String,
    /// What the user may do.
    pub role: Role,
}

/// `POST /api/users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateUser {
    /// Unique sign-in name.
    pub username: String,
    /// Initial password.
    pub password: String,
    /// What the user may do.
    pub role: Role,
    /// Name shown to people; the username when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

/// `POST /api/login`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginRequest {
    /// Sign-in name.
    pub username: String,
    /// Password.
    pub password: String,
    /// A label for the device, shown to staff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

/// The answer to a successful login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginResponse {
    /// The bearer token; shown once, only its hash is stored.
    pub token: String,
    /// The id of the new session.
    pub session_id: String,
    /// Who signed in.
    pub user: User,
}

/// Every error code of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the request is malformed or names something invalid.
    BadRequest,
    /// 401: wrong username or password.
    InvalidCredentials,
    /// 401: no valid credentials.
    Unauthenticated,
    /// 401: the session was revoked.
    SessionInvalidated,
    /// 401: the session was unused for too long.
    SessionExpired,
    /// 403: not allowed.
    Forbidden,
    /// 403: the student is not eligible for this evaluation.
    NotOnAccessList,
    /// 404: no such thing, or not visible to the caller.
    NotFound,
    /// 409: that phase change is not allowed.
    InvalidTransition,
    /// 409: the evaluation is not in progress.
    NotOpen,
    /// 409: the student has not joined, or has submitted.
    NotParticipating,
    /// 409: the change conflicts with the current state.
    Conflict,
    /// 423: the student is blocked.
    Blocked,
    /// 413: the body is too large.
    PayloadTooLarge,
    /// 429: too many failed sign-ins.
    TooManyAttempts,
    /// 503: the server is too busy to check a password now; try again after `Retry-After`.
    ServerBusy,
    /// 429: the session already holds as many event streams as it may.
    TooManyStreams,
    /// 500: the server failed; details are in its log. (An addition to the contract.)
    Internal,
}

impl ErrorCode {
    /// The HTTP status of the code.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::InvalidCredentials
            | ErrorCode::Unauthenticated
            | ErrorCode::SessionInvalidated
            | ErrorCode::SessionExpired => 401,
            ErrorCode::Forbidden | ErrorCode::NotOnAccessList => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::InvalidTransition
            | ErrorCode::NotOpen
            | ErrorCode::NotParticipating
            | ErrorCode::Conflict => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::Blocked => 423,
            ErrorCode::TooManyAttempts | ErrorCode::TooManyStreams => 429,
            ErrorCode::Internal => 500,
            ErrorCode::ServerBusy => 503,
        }
    }

    /// The contract's name for the code.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::InvalidCredentials => "invalid_credentials",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::SessionInvalidated => "session_invalidated",
            ErrorCode::SessionExpired => "session_expired",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotOnAccessList => "not_on_access_list",
            ErrorCode::NotFound => "not_found",
            ErrorCode::InvalidTransition => "invalid_transition",
            ErrorCode::NotOpen => "not_open",
            ErrorCode::NotParticipating => "not_participating",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Blocked => "blocked",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::TooManyAttempts => "too_many_attempts",
            ErrorCode::ServerBusy => "server_busy",
            ErrorCode::TooManyStreams => "too_many_streams",
            ErrorCode::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of every non-2xx response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// Machine-readable code.
    pub code: ErrorCode,
    /// A human sentence.
    pub message: String,
}

/// The phase of an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Being prepared; students see it without questions.
    Draft,
    /// Running: students join and answer.
    InProgress,
    /// Closed for answers (late ones are kept and marked); being graded.
    Grading,
    /// Done.
    Finished,
}

impl Phase {
    /// The contract's name for the phase.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Draft => "draft",
            Phase::InProgress => "in_progress",
            Phase::Grading => "grading",
            Phase::Finished => "finished",
        }
    }

    /// Parses the contract's name.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "draft" => Phase::Draft,
            "in_progress" => Phase::InProgress,
            "grading" => Phase::Grading,
            "finished" => Phase::Finished,
            _ => return None,
        })
    }

    /// Whether the contract allows moving from `self` to `to`.
    pub fn can_move_to(self, to: Phase) -> bool {
        matches!(
            (self, to),
            (Phase::Draft, Phase::InProgress)
                | (Phase::InProgress, Phase::Grading)
                | (Phase::Grading, Phase::InProgress)
                | (Phase::Grading, Phase::Finished)
        )
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who may sit an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Every student.
    Open,
    /// Only the students on its access list.
    #[default]
    List,
}

impl Access {
    /// The contract's name for the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Open => "open",
            Access::List => "list",
        }
    }
}

/// One option of a choice question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Choice {
    /// Id, unique in its question; a choice answer's content is this id.
    pub id: String,
    /// Text shown.
    pub label: String,
}

/// What kind of answer a question takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum QuestionKind {
    /// Free text.
    Text,
    /// Source code, shown in a monospace editor.
    Code,
    /// One of several options.
    Choice {
        /// The options.
        choices: Vec<Choice>,
    },
}

/// A question of an evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Question {
    /// Id, unique in its evaluation.
    pub id: String,
    /// What is asked.
    pub prompt: String,
    /// The kind and, for choices, the options.
    #[serde(flatten)]
    pub kind: QuestionKind,
}

/// A question as a professor writes it: the id may be left for the server to choose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewQuestion {
    /// Id, unique in its evaluation; `q1`, `q2`, … by position when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// What is asked.
    pub prompt: String,
    /// The kind and, for choices, the options.
    #[serde(flatten)]
    pub kind: QuestionKind,
}

/// An evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Evaluation {
    /// Stable id.
    pub id: String,
    /// Title shown.
    pub title: String,
    /// Current phase.
    pub phase: Phase,
    /// When answers stop being on time; none when open-ended.
    pub ends_at: Option<Timestamp>,
    /// Who may sit it.
    pub access: Access,
    /// The owner's username.
    pub owner: String,
    /// The questions; empty for a student while the phase is draft.
    pub questions: Vec<Question>,
    /// What the desktop app reports while a student sits it (contract v2); the defaults (nothing)
    /// when absent.
    #[serde(default)]
    pub proctoring: Proctoring,
}

/// `GET /api/evaluations/{id}`: the evaluation and, for a student, their participation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EvaluationDetail {
    /// The evaluation.
    #[serde(flatten)]
    pub evaluation: Evaluation,
    /// The caller's participation, for a student.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participation: Option<Participation>,
}

/// `POST /api/evaluations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateEvaluation {
    /// Title shown.
    pub title: String,
    /// The questions.
    pub questions: Vec<NewQuestion>,
    /// When answers stop being on time.
    #[serde(default)]
    pub ends_at: Option<Timestamp>,
    /// Who may sit it; `list` when absent.
    #[serde(default)]
    pub access: Option<Access>,
    /// The proctoring settings (contract v2); absent keys read as the defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proctoring: Option<ProctoringChange>,
}

/// `POST /api/evaluations/{id}/phase`. The phase is read as text so that an unknown one is a
/// `bad_request` naming it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PhaseChange {
    /// The phase to move to.
    pub phase: String,
}

/// `PUT /api/evaluations/{id}/ends_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EndsAtChange {
    /// The new end, or null for none.
    #[serde(default)]
    pub ends_at: Option<Timestamp>,
}

/// `PUT /api/evaluations/{id}/access` and its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccessList {
    /// Usernames of the students on the list.
    pub students: Vec<String>,
}

/// Where a student stands in an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ParticipationStatus {
    /// Has not joined.
    NotStarted,
    /// Joined; answering.
    InProgress,
    /// Handed in.
    Submitted,
    /// Stopped until a professor or admin unblocks them.
    Blocked,
}

impl ParticipationStatus {
    /// The contract's name for the status.
    pub fn as_str(self) -> &'static str {
        match self {
            ParticipationStatus::NotStarted => "not_started",
            ParticipationStatus::InProgress => "in_progress",
            ParticipationStatus::Submitted => "submitted",
            ParticipationStatus::Blocked => "blocked",
        }
    }

    /// Parses the contract's name.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "not_started" => ParticipationStatus::NotStarted,
            "in_progress" => ParticipationStatus::InProgress,
            "submitted" => ParticipationStatus::Submitted,
            "blocked" => ParticipationStatus::Blocked,
            _ => return None,
        })
    }
}

/// Why a student is blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BlockedReason {
    /// The student signed in again while sitting a running evaluation.
    SecondSignIn,
}

impl BlockedReason {
    /// The contract's name for the reason.
    pub fn as_str(self) -> &'static str {
        match self {
            BlockedReason::SecondSignIn => "second_sign_in",
        }
    }

    /// Parses the contract's name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "second_sign_in" => Some(BlockedReason::SecondSignIn),
            _ => None,
        }
    }
}

/// One student's standing in one evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Participation {
    /// The evaluation.
    pub evaluation_id: String,
    /// The student.
    pub username: String,
    /// Where they stand.
    pub status: ParticipationStatus,
    /// Why they are blocked, when they are.
    pub blocked_reason: Option<BlockedReason>,
    /// Whether the student is eligible, whatever the phase.
    pub access: bool,
    /// The proctoring settings this student is exempt from (an accommodation granted by the
    /// owner or an admin); their app applies the evaluation's other settings. Omitted when
    /// empty. (An addition to the contract.)
    #[serde(default, skip_serializing_if = "SettingSet::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<ProctoringSetting>))]
    pub proctoring_exempt: SettingSet,
}

/// A row of the participants board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Participant {
    /// The student.
    pub username: String,
    /// Their name.
    pub display_name: String,
    /// Where they stand.
    pub status: ParticipationStatus,
    /// Why they are blocked, when they are.
    pub blocked_reason: Option<BlockedReason>,
    /// Whether a socket or event stream of their current session is open.
    pub connected: bool,
    /// When the server last heard from them.
    pub last_seen: Option<Timestamp>,
    /// How many questions have a stored answer.
    pub answered: u32,
    /// While the student is not connected, when their last connection was lost (null while
    /// connected, or when it never was). (An addition to the contract.)
    #[serde(default)]
    pub disconnected_since: Option<Timestamp>,
    /// How many questions' stored answer is late. (An addition to the contract.)
    #[serde(default)]
    pub late_answers: u32,
    /// The student's integrity events in this evaluation, summed up (contract v2).
    #[serde(default)]
    pub integrity: IntegritySummary,
    /// The proctoring settings the student is exempt from (an accommodation; its reason is
    /// only in the accommodations list and the audit log). Omitted when empty. (An addition to
    /// the contract.)
    #[serde(default, skip_serializing_if = "SettingSet::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<ProctoringSetting>))]
    pub proctoring_exempt: SettingSet,
}

/// `POST .../participants/{username}/unblock`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Unblock {
    /// Why, for the audit log.
    #[serde(default)]
    pub note: Option<String>,
}

/// What an audit entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    /// The phase changed.
    PhaseChanged,
    /// The end time changed.
    EndsAtChanged,
    /// A student was added to or removed from the access list.
    AccessChanged,
    /// A student joined.
    Joined,
    /// A student submitted.
    Submitted,
    /// A student signed in.
    SignedIn,
    /// A student's session was revoked.
    SessionInvalidated,
    /// A student was blocked.
    Blocked,
    /// A student was unblocked.
    Unblocked,
    /// A student's connection was lost.
    Disconnected,
    /// A student's connection came back.
    Reconnected,
    /// A late answer was stored.
    LateAnswer,
    /// An answer from a desktop app's export file was stored by staff. (An addition to the
    /// contract.)
    AnswerImported,
    /// Staff imported an answers file for a student who was blocked or had handed in, overriding
    /// the refusal, with their reason. (An addition to the contract.)
    ImportOverridden,
    /// The evaluation's proctoring settings changed.
    ProctoringChanged,
    /// Integrity event: the exam window lost the focus.
    FocusLost,
    /// Integrity event: the exam window got the focus back.
    FocusRegained,
    /// Integrity event: the student left fullscreen.
    FullscreenExited,
    /// Integrity event: a copy or paste across the exam's boundary was refused.
    ClipboardBlocked,
    /// Integrity event: the number of displays changed (or was first reported).
    DisplaysChanged,
    /// Integrity event: the app started again while the student was sitting the evaluation.
    AppRestarted,
    /// Integrity event: what the app can enforce on the student's computer.
    Capabilities,
    /// A student's accommodation (the proctoring settings they are exempt from) was set or
    /// removed, with who did it and why. (An addition to the contract.)
    AccommodationChanged,
}

impl AuditKind {
    /// The contract's name for the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::PhaseChanged => "phase_changed",
            AuditKind::EndsAtChanged => "ends_at_changed",
            AuditKind::AccessChanged => "access_changed",
            AuditKind::Joined => "joined",
            AuditKind::Submitted => "submitted",
            AuditKind::SignedIn => "signed_in",
            AuditKind::SessionInvalidated => "session_invalidated",
            AuditKind::Blocked => "blocked",
            AuditKind::Unblocked => "unblocked",
            AuditKind::Disconnected => "disconnected",
            AuditKind::Reconnected => "reconnected",
            AuditKind::LateAnswer => "late_answer",
            AuditKind::AnswerImported => "answer_imported",
            AuditKind::ImportOverridden => "import_overridden",
            AuditKind::ProctoringChanged => "proctoring_changed",
            AuditKind::FocusLost => "focus_lost",
            AuditKind::FocusRegained => "focus_regained",
            AuditKind::FullscreenExited => "fullscreen_exited",
            AuditKind::ClipboardBlocked => "clipboard_blocked",
            AuditKind::DisplaysChanged => "displays_changed",
            AuditKind::AppRestarted => "app_restarted",
            AuditKind::Capabilities => "capabilities",
            AuditKind::AccommodationChanged => "accommodation_changed",
        }
    }

    /// Parses the contract's name.
    pub fn parse(text: &str) -> Option<Self> {
        [
            AuditKind::PhaseChanged,
            AuditKind::EndsAtChanged,
            AuditKind::AccessChanged,
            AuditKind::Joined,
            AuditKind::Submitted,
            AuditKind::SignedIn,
            AuditKind::SessionInvalidated,
            AuditKind::Blocked,
            AuditKind::Unblocked,
            AuditKind::Disconnected,
            AuditKind::Reconnected,
            AuditKind::LateAnswer,
            AuditKind::AnswerImported,
            AuditKind::ImportOverridden,
            AuditKind::ProctoringChanged,
            AuditKind::FocusLost,
            AuditKind::FocusRegained,
            AuditKind::FullscreenExited,
            AuditKind::ClipboardBlocked,
            AuditKind::DisplaysChanged,
            AuditKind::AppRestarted,
            AuditKind::Capabilities,
            AuditKind::AccommodationChanged,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == text)
    }
}

/// One line of an evaluation's audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    /// When.
    pub at: Timestamp,
    /// What.
    pub kind: AuditKind,
    /// The student concerned; null for evaluation-wide events.
    pub username: Option<String>,
    /// Who acted; null for the server itself.
    pub actor: Option<String>,
    /// A human sentence.
    pub detail: String,
}

/// The last on-time revision kept beside a late one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OnTime {
    /// Its revision.
    pub revision: u64,
    /// Its content.
    pub content: String,
    /// When it was stored.
    pub saved_at: Timestamp,
}

/// A stored answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Answer {
    /// The question.
    pub question_id: String,
    /// The stored revision.
    pub revision: u64,
    /// What the student wrote (for a choice question, the chosen choice's id).
    pub content: String,
    /// When it was stored.
    pub saved_at: Timestamp,
    /// Whether it arrived after the end or outside the running phase.
    pub late: bool,
    /// While the latest revision is late: the last on-time one, if any.
    pub on_time: Option<OnTime>,
}

/// `PUT /api/evaluations/{id}/answers/{question_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SaveAnswer {
    /// A positive integer rising with every edit.
    pub revision: u64,
    /// What the student wrote.
    pub content: String,
}

/// The answer to a save over HTTP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SaveAck {
    /// The question.
    pub question_id: String,
    /// The stored revision (differs from the one sent when that one was not stored).
    pub revision: u64,
    /// Whether the stored revision is late.
    pub late: bool,
}

/// Why an `EVALUATION_UPDATE` was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum UpdateReason {
    /// Part of the snapshot after `WELCOME`.
    Snapshot,
    /// The phase changed.
    PhaseChanged,
    /// The end time changed.
    EndsAtChanged,
    /// The student was added to or removed from the access list.
    AccessChanged,
    /// The student's status changed (joined, submitted).
    StatusChanged,
    /// The student was blocked.
    Blocked,
    /// The student was unblocked.
    Unblocked,
    /// The evaluation's proctoring settings changed.
    ProctoringChanged,
    /// The settings this student is exempt from changed (their participation's
    /// `proctoring_exempt`). (An addition to the contract.)
    AccommodationChanged,
}

/// Why a session was revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum InvalidationReason {
    /// The student signed in on another device.
    SignedInElsewhere,
    /// The user signed out.
    SignedOut,
    /// An admin revoked the user's sessions.
    RevokedByAdmin,
}

impl InvalidationReason {
    /// The contract's name for the reason.
    pub fn as_str(self) -> &'static str {
        match self {
            InvalidationReason::SignedInElsewhere => "signed_in_elsewhere",
            InvalidationReason::SignedOut => "signed_out",
            InvalidationReason::RevokedByAdmin => "revoked_by_admin",
        }
    }

    /// Parses the contract's name.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "signed_in_elsewhere" => InvalidationReason::SignedInElsewhere,
            "signed_out" => InvalidationReason::SignedOut,
            "revoked_by_admin" => InvalidationReason::RevokedByAdmin,
            _ => return None,
        })
    }
}

/// Why a save over the socket was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RejectCode {
    /// The student is blocked.
    Blocked,
    /// Not joined, or already submitted.
    NotParticipating,
    /// No longer eligible.
    NotOnAccessList,
    /// No such evaluation or question.
    NotFound,
    /// The save itself is malformed, e.g. revision 0. (An addition to the contract.)
    BadRequest,
    /// The stored answer has this revision with other content (v2, "Answers: conflicts"): the
    /// save is refused and the stored answer is unchanged.
    Conflict,
}

/// A frame from the server on the live socket or the event stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServerMessage {
    /// The first frame of every socket.
    Welcome {
        /// The session the socket belongs to.
        session_id: String,
        /// Who is signed in.
        user: User,
        /// The server's clock.
        server_time: Timestamp,
        /// How often each side must send something.
        heartbeat_ms: u64,
    },
    /// The full current state of one evaluation for this student.
    EvaluationUpdate {
        /// Why it was sent.
        reason: UpdateReason,
        /// The evaluation.
        evaluation: Evaluation,
        /// The student's participation.
        participation: Participation,
    },
    /// The snapshot is complete.
    SnapshotEnd,
    /// The session was revoked; close 4001 follows.
    SessionInvalidated {
        /// Why.
        reason: InvalidationReason,
    },
    /// A save is durable.
    AnswerAck {
        /// The evaluation.
        evaluation_id: String,
        /// The question.
        question_id: String,
        /// The stored revision.
        revision: u64,
        /// Whether the stored revision is late.
        late: bool,
    },
    /// A save was refused.
    AnswerRejected {
        /// The evaluation.
        evaluation_id: String,
        /// The question.
        question_id: String,
        /// The revision sent.
        revision: u64,
        /// Why.
        code: RejectCode,
    },
    /// A participant row changed (to owners and admins).
    ParticipantUpdate {
        /// The evaluation.
        evaluation_id: String,
        /// The row.
        participant: Participant,
    },
    /// Sent every `heartbeat_ms`.
    Heartbeat {
        /// The server's clock.
        server_time: Timestamp,
    },
    /// A bad client frame; the socket stays open.
    Error {
        /// What was wrong.
        code: ErrorCode,
        /// A human sentence.
        message: String,
    },
    /// An integrity event is durably stored (or already was).
    IntegrityAck(IntegrityAck),
    /// An integrity event was refused.
    IntegrityRejected(IntegrityRejected),
}

impl ServerMessage {
    /// The `type` tag, as the SSE `event` name.
    pub fn kind(&self) -> &'static str {
        match self {
            ServerMessage::Welcome { .. } => "WELCOME",
            ServerMessage::EvaluationUpdate { .. } => "EVALUATION_UPDATE",
            ServerMessage::SnapshotEnd => "SNAPSHOT_END",
            ServerMessage::SessionInvalidated { .. } => "SESSION_INVALIDATED",
            ServerMessage::AnswerAck { .. } => "ANSWER_ACK",
            ServerMessage::AnswerRejected { .. } => "ANSWER_REJECTED",
            ServerMessage::ParticipantUpdate { .. } => "PARTICIPANT_UPDATE",
            ServerMessage::Heartbeat { .. } => "HEARTBEAT",
            ServerMessage::Error { .. } => "ERROR",
            ServerMessage::IntegrityAck(_) => "INTEGRITY_ACK",
            ServerMessage::IntegrityRejected(_) => "INTEGRITY_REJECTED",
        }
    }

    /// The JSON text of the frame.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("server messages always serialize")
    }
}

/// A frame from a client on the live socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClientMessage {
    /// Save an answer; `ANSWER_ACK` or `ANSWER_REJECTED` follows.
    AnswerSave {
        /// The evaluation.
        evaluation_id: String,
        /// The question.
        question_id: String,
        /// A positive integer rising with every edit.
        revision: u64,
        /// What the student wrote.
        content: String,
    },
    /// "I am here."
    Heartbeat,
    /// Report an integrity event; `INTEGRITY_ACK`, `INTEGRITY_REJECTED` or `ERROR` follows.
    IntegrityEvent(IntegrityEvent),
}

/// Close codes of the live socket.
pub mod close {
    /// A normal close: the server's answer to a client that closed, or the end of a socket whose
    /// reader stopped. (A WebSocket standard code, listed for completeness.)
    pub const NORMAL: u16 = 1000;
    /// The server is going away (shutdown).
    pub const GOING_AWAY: u16 = 1001;
    /// A message was larger than 1 MiB.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// The server could not load what the socket needs (its snapshot, or its session): reconnect.
    /// (An addition to the contract.)
    pub const INTERNAL_ERROR: u16 = 1011;
    /// The server node lost track of changes for a moment (its database link was restored):
    /// reconnect for a fresh snapshot. (An addition to the contract.)
    pub const SERVICE_RESTART: u16 = 1012;
    /// The socket could not keep up with what it was sent. (An addition to the contract.)
    pub const TOO_SLOW: u16 = 1013;
    /// The session was revoked.
    pub const SESSION_INVALIDATED: u16 = 4001;
    /// A newer socket of the same session replaced this one.
    pub const REPLACED: u16 = 4002;
    /// Nothing was heard for 3 × heartbeat.
    pub const SILENT: u16 = 4008;
}

/// The largest message the socket accepts, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

// ---- Additions for the console (documented in docs/PROTOCOL.md) -----------------------------

/// Reads a field that may be absent (`None`), null (`Some(None)`) or a value (`Some(Some(v))`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// `PATCH /api/evaluations/{id}`: the fields to change; absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EditEvaluation {
    /// A new title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// New questions (only while the evaluation is a draft).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub questions: Option<Vec<NewQuestion>>,
    /// A new end (`null` removes it).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub ends_at: Option<Option<Timestamp>>,
    /// A new access mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<Access>,
    /// Proctoring settings to change (contract v2): the keys given replace the stored ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proctoring: Option<ProctoringChange>,
}

/// A row of `GET /api/users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserSummary {
    /// The user.
    #[serde(flatten)]
    pub user: User,
    /// How many sessions of theirs are live (neither ended nor expired).
    pub active_sessions: u32,
}

/// `POST /api/users/{username}/password`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResetPassword {
    /// The new password.
    pub password: String,
    /// Whether every session of the user ends too (the default: `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_sessions: Option<bool>,
}

/// The answer to a password reset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PasswordReset {
    /// Whose password changed.
    pub username: String,
    /// How many of their sessions were ended.
    pub revoked_sessions: u32,
}

/// The answer to `POST /api/users/import`: every account it created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsersImported {
    /// The new accounts, in the order of the file.
    pub created: Vec<User>,
}

/// A line of an uploaded file that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LineError {
    /// Its line number in the file (1 is the header).
    pub line: u64,
    /// What is wrong with it.
    pub message: String,
}

/// An answer as its evaluation's owner and admins read it: with where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StaffAnswer {
    /// The answer.
    #[serde(flatten)]
    pub answer: Answer,
    /// Where the stored revision came from when not from the student's own connection, e.g.
    /// "imported from device Lab PC 12 by prof1 at 2026-11-22T12:00:00.000Z"; null otherwise.
    pub source: Option<String>,
}

/// An answer of an export file that was stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportStored {
    /// The question.
    pub question_id: String,
    /// The revision stored.
    pub revision: u64,
    /// Whether it counts as late.
    pub late: bool,
}

/// An answer of an export file that was not stored, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportSkipped {
    /// The evaluation it names.
    pub evaluation_id: String,
    /// The question.
    pub question_id: String,
    /// Its revision.
    pub revision: u64,
    /// A human sentence.
    pub reason: String,
}

/// The answer to `POST /api/evaluations/{id}/answers-import`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportReport {
    /// The student the file belongs to.
    pub username: String,
    /// The device that wrote it.
    pub device: String,
    /// What was stored.
    pub stored: Vec<ImportStored>,
    /// What was not, and why.
    pub skipped: Vec<ImportSkipped>,
}

/// Frames only a live connection that asked for them (`?additions=1`) receives, besides every
/// [`ServerMessage`]: they keep a staff console current without reloading. Kept apart from
/// [`ServerMessage`] because no other client ever receives them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConsoleMessage {
    /// A student is no longer a participant (removed from the list before joining, or the access
    /// mode changed): boards drop the row. To the owner and admins.
    ParticipantRemoved {
        /// The evaluation.
        evaluation_id: String,
        /// The student.
        username: String,
    },
    /// An evaluation was created or changed (title, questions, phase, end, access mode), as staff
    /// see it. To the owner and admins.
    EvaluationChanged {
        /// The evaluation.
        evaluation: Evaluation,
    },
}

impl ConsoleMessage {
    /// The `type` tag, as the SSE `event` name.
    pub fn kind(&self) -> &'static str {
        match self {
            ConsoleMessage::ParticipantRemoved { .. } => "PARTICIPANT_REMOVED",
            ConsoleMessage::EvaluationChanged { .. } => "EVALUATION_CHANGED",
        }
    }

    /// The JSON text of the frame.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("console messages always serialize")
    }
}

// ---- Proctoring (contract v2) ----------------------------------------------------------------
//
// Everything proctoring puts on the wire. Its frames are variants of [`ClientMessage`]
// (`INTEGRITY_EVENT`) and [`ServerMessage`] (`INTEGRITY_ACK`, `INTEGRITY_REJECTED`) whose fields
// are the structs below, which are also the bodies of the HTTP form.

/// An evaluation's proctoring settings. Absent keys read as the defaults: everything off, brief
/// interruptions up to 2 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct Proctoring {
    /// The exam window is fullscreen and above other windows; leaving fullscreen is reported.
    pub fullscreen: bool,
    /// Losing and regaining the window's focus is reported, with the time away.
    pub report_focus: bool,
    /// Copying and pasting between the exam and other programs is refused and reported.
    pub block_clipboard: bool,
    /// The number of displays is reported, and the student asked to keep only one.
    pub single_display: bool,
    /// An absence from the window shorter than this (in milliseconds) counts as brief.
    pub brief_ms: u64,
}

impl Proctoring {
    /// The default of [`Proctoring::brief_ms`].
    pub const DEFAULT_BRIEF_MS: u64 = 2000;

    /// These settings with `change` applied: the keys it gives replace these, the others stay.
    pub fn apply(self, change: ProctoringChange) -> Self {
        let switches = change.switches;
        Self {
            fullscreen: switches.fullscreen.unwrap_or(self.fullscreen),
            report_focus: switches.report_focus.unwrap_or(self.report_focus),
            block_clipboard: switches.block_clipboard.unwrap_or(self.block_clipboard),
            single_display: switches.single_display.unwrap_or(self.single_display),
            brief_ms: change.brief_ms.unwrap_or(self.brief_ms),
        }
    }
}

impl Default for Proctoring {
    fn default() -> Self {
        Self {
            fullscreen: false,
            report_focus: false,
            block_clipboard: false,
            single_display: false,
            brief_ms: Self::DEFAULT_BRIEF_MS,
        }
    }
}

/// `{"proctoring": {...}}` of `PATCH /api/evaluations/{id}`: absent keys keep their value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProctoringChange {
    /// New values of the switches it names.
    #[serde(flatten)]
    pub switches: Switches<bool>,
    /// A new `brief_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brief_ms: Option<u64>,
}

/// One value for each of the four proctoring switches, keyed by the switch's name; a switch left
/// out is `None` (and is not written).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
// serde would ask `T: Default` for the fields' `default`, which is `None` whatever `T` is.
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub struct Switches<T> {
    /// For `fullscreen`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fullscreen: Option<T>,
    /// For `report_focus`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_focus: Option<T>,
    /// For `block_clipboard`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_clipboard: Option<T>,
    /// For `single_display`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub single_display: Option<T>,
}

// Not derived: the derive would ask `T: Default`, and "none given" needs no default of `T`.
impl<T> Default for Switches<T> {
    fn default() -> Self {
        Self {
            fullscreen: None,
            report_focus: None,
            block_clipboard: None,
            single_display: None,
        }
    }
}

/// One of the four proctoring switches, by its name: what an accommodation exempts a student
/// from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ProctoringSetting {
    /// `fullscreen`.
    Fullscreen,
    /// `report_focus`.
    ReportFocus,
    /// `block_clipboard`.
    BlockClipboard,
    /// `single_display`.
    SingleDisplay,
}

impl ProctoringSetting {
    /// Every setting, in the contract's order.
    pub const ALL: [ProctoringSetting; 4] = [
        ProctoringSetting::Fullscreen,
        ProctoringSetting::ReportFocus,
        ProctoringSetting::BlockClipboard,
        ProctoringSetting::SingleDisplay,
    ];

    /// The contract's name for the setting.
    pub fn as_str(self) -> &'static str {
        match self {
            ProctoringSetting::Fullscreen => "fullscreen",
            ProctoringSetting::ReportFocus => "report_focus",
            ProctoringSetting::BlockClipboard => "block_clipboard",
            ProctoringSetting::SingleDisplay => "single_display",
        }
    }

    /// Parses the contract's name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// A set of proctoring settings, written as the list of their names in the contract's order,
/// each once (`["block_clipboard", "single_display"]`; `[]` when empty). Kept as bits, so that the
/// participation and the participant row, which carry it, stay as small as they were: every
/// `EVALUATION_UPDATE` and `PARTICIPANT_UPDATE` holds one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SettingSet(u8);

impl SettingSet {
    fn bit(setting: ProctoringSetting) -> u8 {
        1 << (setting as u8)
    }

    /// Whether the set holds `setting`.
    pub fn contains(self, setting: ProctoringSetting) -> bool {
        self.0 & Self::bit(setting) != 0
    }

    /// Adds `setting`.
    pub fn insert(&mut self, setting: ProctoringSetting) {
        self.0 |= Self::bit(setting);
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// The settings held, in the contract's order.
    pub fn iter(self) -> impl Iterator<Item = ProctoringSetting> {
        ProctoringSetting::ALL
            .into_iter()
            .filter(move |s| self.contains(*s))
    }

    /// The settings held, in the contract's order.
    pub fn to_vec(self) -> Vec<ProctoringSetting> {
        self.iter().collect()
    }
}

impl FromIterator<ProctoringSetting> for SettingSet {
    fn from_iter<I: IntoIterator<Item = ProctoringSetting>>(settings: I) -> Self {
        let mut set = Self::default();
        for setting in settings {
            set.insert(setting);
        }
        set
    }
}

impl Serialize for SettingSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for SettingSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Vec::<ProctoringSetting>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

/// The longest reason an accommodation may give, in characters.
pub const MAX_ACCOMMODATION_REASON_CHARS: usize = 500;

/// `PUT /api/evaluations/{id}/participants/{username}/accommodation`: the settings one student is
/// exempt from, and why (an empty `exempt` removes the accommodation). (An addition to the
/// contract.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetAccommodation {
    /// The settings the student is exempt from.
    pub exempt: Vec<ProctoringSetting>,
    /// Why, for the audit log and staff only: 1 to [`MAX_ACCOMMODATION_REASON_CHARS`]
    /// characters.
    pub reason: String,
}

/// A student's accommodation in one evaluation, as staff see it. (An addition to the contract.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Accommodation {
    /// The student.
    pub username: String,
    /// The settings they are exempt from (empty: none, the accommodation was removed).
    pub exempt: Vec<ProctoringSetting>,
    /// Why.
    pub reason: String,
    /// Who set it.
    pub actor: String,
    /// When.
    pub at: Timestamp,
}

/// One stored integrity event of a student, as the owner and admins read it in the student's
/// timeline (`GET /api/evaluations/{id}/integrity?username=`): the event as reported, with the
/// server's receipt time beside the device's `at`. (An addition to the contract.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IntegrityRecord {
    /// The event as the app reported it (`at` is the device's time).
    #[serde(flatten)]
    pub event: IntegrityEvent,
    /// When the server stored it, by the server's clock.
    pub received_at: Timestamp,
}

/// What an integrity event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum IntegrityKind {
    /// The exam window lost the focus.
    FocusLost,
    /// The exam window got the focus back; `away_ms` says for how long it was away.
    FocusRegained,
    /// The student left fullscreen (the app goes back to it).
    FullscreenExited,
    /// A copy or paste between the exam and another program was refused.
    ClipboardBlocked,
    /// The number of displays, at start and on every change; `displays` says how many.
    DisplaysChanged,
    /// The app was started again while the student was sitting the evaluation; `detail` says
    /// whether the previous run ended cleanly.
    AppRestarted,
    /// What the app can do on this computer; `capabilities` says it.
    Capabilities,
}

impl IntegrityKind {
    /// The contract's name for the kind.
    pub fn as_str(self) -> &'static str {
        self.audit_kind().as_str()
    }

    /// The audit kind of a stored event of this kind (it has the same name).
    pub fn audit_kind(self) -> AuditKind {
        match self {
            IntegrityKind::FocusLost => AuditKind::FocusLost,
            IntegrityKind::FocusRegained => AuditKind::FocusRegained,
            IntegrityKind::FullscreenExited => AuditKind::FullscreenExited,
            IntegrityKind::ClipboardBlocked => AuditKind::ClipboardBlocked,
            IntegrityKind::DisplaysChanged => AuditKind::DisplaysChanged,
            IntegrityKind::AppRestarted => AuditKind::AppRestarted,
            IntegrityKind::Capabilities => AuditKind::Capabilities,
        }
    }
}

impl From<IntegrityKind> for AuditKind {
    fn from(kind: IntegrityKind) -> Self {
        kind.audit_kind()
    }
}

/// How far the app can carry out one proctoring setting on a given computer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CapabilityLevel {
    /// Done as the setting says.
    Enforced,
    /// Noticed and reported, but not prevented.
    DetectOnly,
    /// Not possible here; never counted as a violation.
    Unavailable,
}

/// What the app can do on this computer, per switch (a switch it does not name is unknown).
pub type Capabilities = Switches<CapabilityLevel>;

/// The longest `detail` an integrity event may carry, in characters.
pub const MAX_INTEGRITY_DETAIL_CHARS: usize = 200;

/// An integrity event: the `INTEGRITY_EVENT` frame's fields, and the body of
/// `POST /api/evaluations/{id}/integrity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IntegrityEvent {
    /// The evaluation.
    pub evaluation_id: String,
    /// A UUID the client makes; the server stores an event once per id.
    pub event_id: String,
    /// What happened.
    pub kind: IntegrityKind,
    /// When, by the device's clock.
    pub at: Timestamp,
    /// For `focus_regained`: how long the window was away, in milliseconds (monotonic clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub away_ms: Option<u64>,
    /// For `displays_changed`: how many displays there are now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub displays: Option<u32>,
    /// For `capabilities`: what the app can do on this computer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    /// A human sentence, at most [`MAX_INTEGRITY_DETAIL_CHARS`] characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// An integrity event is durably stored: the `INTEGRITY_ACK` frame's fields, and the answer of
/// `POST /api/evaluations/{id}/integrity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IntegrityAck {
    /// The event's id.
    pub event_id: String,
}

/// Why an integrity event was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum IntegrityRejectCode {
    /// The student is neither sitting nor blocked in that evaluation.
    NotParticipating,
    /// No such evaluation.
    NotFound,
    /// The student is no longer eligible.
    NotOnAccessList,
}

/// An integrity event was refused: the `INTEGRITY_REJECTED` frame's fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IntegrityRejected {
    /// The event's id.
    pub event_id: String,
    /// Why.
    pub code: IntegrityRejectCode,
}

/// The last integrity event of a student, in [`IntegritySummary::last`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IntegrityLast {
    /// What it reported.
    pub kind: IntegrityKind,
    /// When, by the device's clock.
    pub at: Timestamp,
}

/// A student's integrity events in one evaluation, summed up: the `integrity` field of a
/// participant row.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IntegritySummary {
    /// Every stored event.
    pub events: u32,
    /// The `focus_lost` events.
    pub focus_lost: u32,
    /// The `focus_regained` events whose `away_ms` is below the evaluation's `brief_ms`.
    pub brief: u32,
    /// The sum of every `away_ms`.
    pub away_ms: u64,
    /// The largest `away_ms`.
    pub longest_away_ms: u64,
    /// The last stored event, if any.
    pub last: Option<IntegrityLast>,
    /// What the last `capabilities` event said, if any.
    pub capabilities: Option<Capabilities>,
    /// The `detail` of that event: why a setting is detect-only or unavailable on this computer
    /// (omitted when there is none). (An addition to the contract.) A boxed `str`, not a
    /// `String`: every `PARTICIPANT_UPDATE` holds a summary, and the frames stay small.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub capabilities_detail: Option<Box<str>>,
}

#[cfg(test)]
mod tests;

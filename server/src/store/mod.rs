//! Storage behind one interface.
//!
//! Everything above this module talks to [`Store`] and never learns which database is underneath.
//! Each method is one atomic operation of the product (a sign-in with its revocations and blocks, a
//! save with its late rule, a phase change with its audit entry), so that every engine can make it
//! one transaction. What a committed change means for live connections is published as
//! [`Event`](crate::live::event::Event)s on the [`Bus`] given at open, after the commit and in
//! commit order.
//!
//! Each operation is written once, over the narrow interface of [`tx`] ([`tx::Tx`]: fetch,
//! execute, lock; [`tx::Engine`]: run an operation in a transaction), in a module named after the
//! contract's section; [`Store`] is implemented once, for every engine. The decisions and the
//! audit sentences are [`rules`]'s.
//!
//! - [`accounts`]: the staff console's accounts: the user list, accounts in bulk, passwords.
//! - [`sessions`]: accounts, signing in (one session per student, the second-sign-in block),
//!   session lookups, revocations.
//! - [`evaluations`]: evaluations, their phase, end time and access list.
//! - [`participants`]: taking part (join, hand in), unblocking, the board's rows, the audit log.
//! - [`answers`]: stored answers read back.
//! - [`accommodations`]: the proctoring settings a student is exempt from.
//! - [`imports`]: the decisions on answers imported from the desktop app's export file.
//! - [`integrity`]: proctoring's decisions and integrity events.
//! - [`rules`]: the contract's decisions (late answers, idempotent revisions, sign-in blocks) and
//!   every audit sentence.
//! - [`rows`]: stored values read back into domain values.
//! - [`tx`]: the interface every engine implements, and the few fragments of SQL they spell
//!   differently.
//! - [`sqlite`]: the embedded engine: WAL with `synchronous=FULL`, every write through one writer
//!   task that commits in groups.
//! - [`postgres`]: the engine for several nodes on one database: one transaction per operation
//!   (answer saves: one per group of saves arriving together), events carried to every node with
//!   LISTEN/NOTIFY, presence and node heartbeats in tables.

pub mod accommodations;
pub mod accounts;
pub mod answers;
pub mod evaluations;
pub mod imports;
pub mod integrity;
pub mod participants;
pub mod postgres;
pub mod rows;
pub mod rules;
pub mod saves;
pub mod sessions;
pub mod sqlite;
pub mod tx;

use crate::config::DatabaseUrl;
use crate::error::Result;
use crate::live::event::{Bus, ParticipantRow};
use async_trait::async_trait;
use invigil_protocol::{
    Answer, AuditEntry, Evaluation, ImportReport, IntegrityEvent, InvalidationReason,
    Participation, Phase, Proctoring, ProctoringChange, Question, Role, SaveAck, Timestamp, User,
    UserSummary,
};
use std::sync::Arc;
use tx::Engine;

/// A user with the hash of their password.
#[derive(Debug, Clone)]
pub struct Account {
    /// The user.
    pub user: User,
    /// PHC string of the argon2id hash.
    pub password_hash: String,
}

/// A new account.
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// Its id.
    pub id: String,
    /// Sign-in name.
    pub username: String,
    /// Name shown.
    pub display_name: String,
    /// Role.
    pub role: Role,
    /// PHC string of the argon2id hash.
    pub password_hash: String,
}

/// An active session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Its id.
    pub id: String,
    /// Whose.
    pub user: User,
}

/// What a token hash names.
#[derive(Debug, Clone)]
pub enum SessionLookup {
    /// A live session.
    Active(Session),
    /// Revoked (by a newer sign-in, logout or an admin), and why.
    Invalidated(InvalidationReason),
    /// Unused for longer than [`SESSION_IDLE_LIMIT_MS`].
    Expired,
    /// No such session.
    Unknown,
}

/// A session ends after this long without use: 14 days.
pub const SESSION_IDLE_LIMIT_MS: i64 = 14 * 24 * 3600 * 1000;

/// A sign-in to record.
#[derive(Debug, Clone)]
pub struct SignIn {
    /// Who.
    pub user: User,
    /// The new session's id.
    pub session_id: String,
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    /// The device label given at login.
    pub device: Option<String>,
}

/// An evaluation with what only the server needs.
#[derive(Debug, Clone)]
pub struct EvaluationRecord {
    /// The evaluation as staff see it.
    pub evaluation: Evaluation,
    /// The owner's user id.
    pub owner_id: String,
}

/// A new evaluation, checked.
#[derive(Debug, Clone)]
pub struct NewEvaluation {
    /// Its id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Questions with their ids.
    pub questions: Vec<Question>,
    /// End.
    pub ends_at: Option<Timestamp>,
    /// Access mode.
    pub access: invigil_protocol::Access,
    /// Proctoring settings.
    pub proctoring: Proctoring,
}

/// A save to store.
#[derive(Debug, Clone)]
pub struct NewAnswer {
    /// The evaluation.
    pub evaluation_id: String,
    /// The question.
    pub question_id: String,
    /// Rising with every edit.
    pub revision: crate::domain::Revision,
    /// What the student wrote.
    pub content: String,
}

/// What a student sees of one evaluation when a socket opens.
#[derive(Debug, Clone)]
pub struct StudentView {
    /// The evaluation as the student sees it.
    pub evaluation: Evaluation,
    /// Their participation.
    pub participation: Participation,
}

/// One evaluation's board, for a staff snapshot.
#[derive(Debug, Clone)]
pub struct Board {
    /// The evaluation.
    pub evaluation_id: String,
    /// Its participants.
    pub rows: Vec<ParticipantRow>,
}

/// Changes to an evaluation, checked; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct EvaluationEdit {
    /// A new title.
    pub title: Option<String>,
    /// New questions: refused with `conflict` unless the evaluation is a draft (or they are the
    /// questions it already has).
    pub questions: Option<Vec<Question>>,
    /// A new end (`Some(None)` removes it).
    pub ends_at: Option<Option<Timestamp>>,
    /// A new access mode.
    pub access: Option<invigil_protocol::Access>,
    /// Proctoring settings to change (checked: see [`crate::domain::proctoring_change`]).
    pub proctoring: Option<ProctoringChange>,
}

/// A stored answer with whose it is and where it came from.
#[derive(Debug, Clone)]
pub struct AnswerRecord {
    /// The student.
    pub username: String,
    /// The answer.
    pub answer: Answer,
    /// Where the stored revision came from, when not from the student's own connection.
    pub source: Option<String>,
}

/// Answers of one student from a desktop app's export file, to store in one evaluation.
#[derive(Debug, Clone)]
pub struct AnswerImport {
    /// The student.
    pub username: String,
    /// The device that wrote the file.
    pub device: String,
    /// When the file says it was written (the device's clock), if it says.
    pub exported_at: Option<Timestamp>,
    /// Staff's reason for importing although the student is blocked or has handed in.
    pub overriding: Option<crate::domain::OverrideReason>,
    /// The answers (at most one per question: the highest revision of the file).
    pub answers: Vec<ImportedAnswer>,
}

/// One answer of an export file.
#[derive(Debug, Clone)]
pub struct ImportedAnswer {
    /// The question.
    pub question_id: String,
    /// The revision the device gave it.
    pub revision: crate::domain::Revision,
    /// What the student wrote.
    pub content: String,
    /// When it was written, by the device's clock (never later than the import).
    pub edited_at: Timestamp,
}

/// A live connection opened or closed, for the audit log and the boards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// A connection opened.
    Connected,
    /// A connection closed or went silent.
    Disconnected,
}

/// One of a student's live connections opened or closed on this node. The facts are the hub's;
/// which of them count is the store's to decide: a store whose presence is this node's hub only
/// records the transitions, a store that tracks presence across nodes records every connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionChange {
    /// The connection's id on this node.
    pub connection: u64,
    /// Opened or closed.
    pub presence: Presence,
    /// On this node, the user's first live connection opened, or their last one closed (a
    /// connection of a revoked session aside).
    pub transition: bool,
    /// The close is not a loss: a newer socket replaced it, or the server is stopping. No
    /// disconnect is recorded for it.
    pub quiet: bool,
}

/// A sign-in attempt to count against the throttle's limits.
#[derive(Debug, Clone, Copy)]
pub struct SignInAttempt<'a> {
    /// The client's address as counted ([`crate::auth::throttle::AddressKey`]).
    pub address: &'a str,
    /// The username tried.
    pub username: &'a str,
    /// Whether it counts against the address's limit (not from an exam network).
    pub count_address: bool,
    /// The window and the limits.
    pub limits: crate::auth::throttle::Limits,
}

/// What counting a sign-in attempt decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// Counted: the attempt's id, to take it back if it is no failure.
    Admitted(i64),
    /// Refused: seconds until attempts from there are let in again.
    Refused(u64),
}

/// The storage interface. Every method is atomic.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    // Accounts.
    /// Creates an account; `conflict` when the name is taken.
    async fn create_account(&self, new: NewAccount) -> Result<User>;
    /// The account with this sign-in name.
    async fn account(&self, username: &str) -> Result<Option<Account>>;
    /// The users with these names (missing names are left out).
    async fn users_named(&self, usernames: &[String]) -> Result<Vec<User>>;
    /// Every user, by username, with how many live sessions each holds.
    async fn users(&self) -> Result<Vec<UserSummary>>;
    /// Creates several accounts at once, all or none; `conflict` naming a taken name.
    async fn create_accounts(&self, new: Vec<NewAccount>) -> Result<Vec<User>>;
    /// Sets a user's password (an argon2id hash) and, if asked, ends every session of theirs
    /// (reason `revoked_by_admin`); returns how many sessions ended.
    async fn set_password(
        &self,
        user: &User,
        password_hash: String,
        revoke_sessions: bool,
        actor: &User,
    ) -> Result<usize>;

    // Sessions.
    /// Records a sign-in: for a student, revokes every other session and blocks them in every
    /// running evaluation they are sitting. Returns the revoked session ids.
    async fn sign_in(&self, sign_in: SignIn) -> Result<Vec<String>>;
    /// Finds the session of a token hash, and notes that it was used.
    async fn session(&self, token_hash: &str) -> Result<SessionLookup>;
    /// Revokes one session.
    async fn revoke_session(&self, session: &Session, reason: InvalidationReason) -> Result<()>;
    /// Revokes every session of a user; returns how many.
    async fn revoke_user(
        &self,
        user: &User,
        reason: InvalidationReason,
        actor: &User,
    ) -> Result<usize>;
    /// Notes a student's connection opening or closing: audit entries and board updates when the
    /// student becomes connected or disconnected.
    async fn presence(&self, session: &Session, change: ConnectionChange) -> Result<()>;

    // Evaluations.
    /// Creates an evaluation in draft, owned by `owner`.
    async fn create_evaluation(&self, owner: &User, new: NewEvaluation) -> Result<Evaluation>;
    /// One evaluation, as staff see it.
    async fn evaluation(&self, id: &str) -> Result<Option<EvaluationRecord>>;
    /// Every evaluation, as staff see them.
    async fn evaluations(&self) -> Result<Vec<Evaluation>>;
    /// The evaluations a student is eligible for, as they see them, with their participations.
    async fn student_views(&self, student: &User) -> Result<Vec<StudentView>>;
    /// A student's participation (eligible or not); `None` when the evaluation does not exist.
    async fn participation(
        &self,
        evaluation_id: &str,
        student: &User,
    ) -> Result<Option<Participation>>;
    /// Moves the phase; `invalid_transition` when the contract forbids it.
    async fn set_phase(&self, evaluation_id: &str, to: Phase, actor: &User) -> Result<Evaluation>;
    /// Changes an evaluation's title, questions (draft only), end or access mode.
    async fn edit_evaluation(
        &self,
        evaluation_id: &str,
        edit: EvaluationEdit,
        actor: &User,
    ) -> Result<Evaluation>;
    /// Sets or clears the end.
    async fn set_ends_at(
        &self,
        evaluation_id: &str,
        ends_at: Option<Timestamp>,
        actor: &User,
    ) -> Result<Evaluation>;
    /// Replaces the access list with these students.
    async fn set_access_list(
        &self,
        evaluation_id: &str,
        students: &[User],
        actor: &User,
    ) -> Result<Vec<String>>;
    /// The usernames on the access list, sorted.
    async fn access_list(&self, evaluation_id: &str) -> Result<Vec<String>>;
    /// A student joins.
    async fn join(&self, evaluation_id: &str, student: &User) -> Result<Participation>;
    /// A student hands in.
    async fn submit(&self, evaluation_id: &str, student: &User) -> Result<Participation>;
    /// Unblocks a student, with a note for the audit log.
    async fn unblock(
        &self,
        evaluation_id: &str,
        username: &str,
        note: Option<String>,
        actor: &User,
    ) -> Result<Participation>;
    /// The participants' rows (presence is the hub's to add unless the rows carry it).
    async fn participants(&self, evaluation_id: &str) -> Result<Vec<ParticipantRow>>;
    /// The boards a staff member's socket starts with: the evaluations a professor owns, or for an
    /// admin those in progress.
    async fn boards(&self, staff: &User) -> Result<Vec<Board>>;
    /// The audit log, oldest first.
    async fn audit(&self, evaluation_id: &str) -> Result<Vec<AuditEntry>>;

    // Answers.
    /// Stores a save durably, or refuses it with the contract's code.
    async fn save_answer(&self, student: &User, answer: NewAnswer) -> Result<SaveAck>;
    /// A student's stored answers in an evaluation.
    async fn answers(&self, evaluation_id: &str, student_id: &str) -> Result<Vec<Answer>>;
    /// Stored answers with their source: one student's (by user id), or everyone's; ordered by
    /// username, then question id.
    async fn answer_records(
        &self,
        evaluation_id: &str,
        student_id: Option<&str>,
    ) -> Result<Vec<AnswerRecord>>;
    /// Stores the answers of an export file that are newer than the stored revisions (never
    /// replacing a newer one), judged late by the time they count as written
    /// ([`imports::counted_at`]), marked with their source, with an audit entry each; reports what
    /// was stored and what was skipped. A student who is blocked or has handed in is refused
    /// unless the import carries an override, which is audited ([`imports::admit`]).
    async fn import_answers(
        &self,
        evaluation_id: &str,
        import: AnswerImport,
        actor: &User,
    ) -> Result<ImportReport>;

    // Proctoring.
    /// Stores an integrity event durably, once per (evaluation, student, event id), with its
    /// audit entry and a board update; a repeat changes nothing and succeeds. Refused with
    /// `not_found`, `not_on_access_list` or `not_participating` (see [`integrity::check`]).
    /// The event is checked ([`crate::domain::integrity_event`]).
    async fn record_integrity(&self, student: &User, event: IntegrityEvent) -> Result<()>;
    /// One student's stored integrity events (by user id), in the order they were stored, each
    /// with the device's time and the server's receipt time.
    async fn integrity_timeline(
        &self,
        evaluation_id: &str,
        student_id: &str,
    ) -> Result<Vec<invigil_protocol::IntegrityRecord>>;
    /// Sets the proctoring settings a student is exempt from (nothing exempt removes the
    /// accommodation), with an audit entry naming who and why, `EVALUATION_UPDATE`
    /// `accommodation_changed` to the student and their board row; `not_found` without the
    /// evaluation, `conflict` once it is finished ([`accommodations::check_phase`]). The list
    /// and the reason are checked ([`crate::domain::accommodation`]).
    async fn set_accommodation(
        &self,
        evaluation_id: &str,
        student: &User,
        exempt: Vec<invigil_protocol::ProctoringSetting>,
        reason: String,
        actor: &User,
    ) -> Result<invigil_protocol::Accommodation>;
    /// Every accommodation of an evaluation, by username.
    async fn accommodations(
        &self,
        evaluation_id: &str,
    ) -> Result<Vec<invigil_protocol::Accommodation>>;

    /// Tells every node that a socket of this session opened on hub `node` as `connection`
    /// ([`crate::live::event::Event::SocketOpened`]), so that an older socket of the session on
    /// another node closes with 4002. A single-node engine has nothing to do: the hub replaces
    /// at registration.
    async fn socket_opened(&self, session_id: &str, node: &str, connection: u64) -> Result<()>;

    /// Counts a sign-in attempt before its password is checked, for every node at once (see
    /// [`crate::auth::throttle`]): refused while the attempts counted from its address (and for
    /// its username) reach the limits, else counted. `None` for a single-node engine, whose
    /// in-memory count is exact.
    async fn count_sign_in(&self, attempt: &SignInAttempt<'_>) -> Result<Option<Counted>>;

    /// Takes back an attempt counted by [`Store::count_sign_in`] that was no failure.
    async fn uncount_sign_in(&self, id: i64) -> Result<()>;

    /// Returns once every event committed before the call has been routed by this node's hub.
    /// (Publishing before a commit returns is not enough: the hub routes a moment later.)
    async fn barrier(&self) -> Result<()>;

    /// Finishes every write already asked for, then refuses new ones. Called at shutdown.
    async fn close(&self);
}

/// The contract's operations, written once for every engine.
#[async_trait]
impl<E: Engine> Store for E {
    async fn create_account(&self, new: NewAccount) -> Result<User> {
        self.write(new, |tx, events, new| {
            Box::pin(sessions::create_account(tx, events, new))
        })
        .await
    }

    async fn account(&self, username: &str) -> Result<Option<Account>> {
        self.read(username, |tx, name| Box::pin(sessions::account(tx, name)))
            .await
    }

    async fn users_named(&self, usernames: &[String]) -> Result<Vec<User>> {
        self.read(usernames, |tx, names| {
            Box::pin(sessions::users_named(tx, names))
        })
        .await
    }

    async fn users(&self) -> Result<Vec<UserSummary>> {
        self.read(&(), |tx, ()| Box::pin(accounts::users(tx))).await
    }

    async fn create_accounts(&self, new: Vec<NewAccount>) -> Result<Vec<User>> {
        self.write(new, |tx, events, new| {
            Box::pin(accounts::create_accounts(tx, events, new))
        })
        .await
    }

    async fn set_password(
        &self,
        user: &User,
        password_hash: String,
        revoke_sessions: bool,
        _actor: &User,
    ) -> Result<usize> {
        let args = (user.clone(), password_hash, revoke_sessions);
        self.write(args, |tx, events, args| {
            Box::pin(accounts::set_password(tx, events, args))
        })
        .await
    }

    async fn sign_in(&self, sign_in: SignIn) -> Result<Vec<String>> {
        self.write(sign_in, |tx, events, s| {
            Box::pin(sessions::sign_in(tx, events, s))
        })
        .await
    }

    async fn session(&self, token_hash: &str) -> Result<SessionLookup> {
        let (found, touch) = self
            .read(token_hash, |tx, hash| Box::pin(sessions::lookup(tx, hash)))
            .await?;
        if let (SessionLookup::Active(session), Some(now)) = (&found, touch) {
            self.write((session.id.clone(), now), |tx, events, args| {
                Box::pin(sessions::touch(tx, events, args))
            })
            .await?;
        }
        Ok(found)
    }

    async fn revoke_session(&self, session: &Session, reason: InvalidationReason) -> Result<()> {
        let args = (session.user.clone(), Some(session.id.clone()), reason);
        self.write(args, |tx, events, args| {
            Box::pin(sessions::revoke_op(tx, events, args))
        })
        .await?;
        Ok(())
    }

    async fn revoke_user(
        &self,
        user: &User,
        reason: InvalidationReason,
        _actor: &User,
    ) -> Result<usize> {
        self.write((user.clone(), None, reason), |tx, events, args| {
            Box::pin(sessions::revoke_op(tx, events, args))
        })
        .await
    }

    async fn presence(&self, session: &Session, change: ConnectionChange) -> Result<()> {
        Engine::presence(self, session, change).await
    }

    async fn create_evaluation(&self, owner: &User, new: NewEvaluation) -> Result<Evaluation> {
        self.write((owner.clone(), new), |tx, events, args| {
            Box::pin(evaluations::create(tx, events, args))
        })
        .await
    }

    async fn evaluation(&self, id: &str) -> Result<Option<EvaluationRecord>> {
        self.read(id, |tx, id| Box::pin(evaluations::load(tx, id)))
            .await
    }

    async fn evaluations(&self) -> Result<Vec<Evaluation>> {
        self.read(&(), |tx, ()| Box::pin(evaluations::all(tx)))
            .await
    }

    async fn student_views(&self, student: &User) -> Result<Vec<StudentView>> {
        self.read(student, |tx, student| {
            Box::pin(participants::student_views(tx, student))
        })
        .await
    }

    async fn participation(
        &self,
        evaluation_id: &str,
        student: &User,
    ) -> Result<Option<Participation>> {
        self.read(&(evaluation_id, student), |tx, args| {
            Box::pin(participants::participation(tx, args))
        })
        .await
    }

    async fn set_phase(&self, evaluation_id: &str, to: Phase, actor: &User) -> Result<Evaluation> {
        let args = (evaluation_id.to_owned(), to, actor.clone());
        self.write(args, |tx, events, args| {
            Box::pin(evaluations::set_phase(tx, events, args))
        })
        .await
    }

    async fn edit_evaluation(
        &self,
        evaluation_id: &str,
        edit: EvaluationEdit,
        actor: &User,
    ) -> Result<Evaluation> {
        let args = (evaluation_id.to_owned(), edit, actor.clone());
        self.write(args, |tx, events, args| {
            Box::pin(evaluations::edit(tx, events, args))
        })
        .await
    }

    async fn set_ends_at(
        &self,
        evaluation_id: &str,
        ends_at: Option<Timestamp>,
        actor: &User,
    ) -> Result<Evaluation> {
        let args = (evaluation_id.to_owned(), ends_at, actor.clone());
        self.write(args, |tx, events, args| {
            Box::pin(evaluations::set_ends_at(tx, events, args))
        })
        .await
    }

    async fn set_access_list(
        &self,
        evaluation_id: &str,
        students: &[User],
        actor: &User,
    ) -> Result<Vec<String>> {
        let args = (evaluation_id.to_owned(), students.to_vec(), actor.clone());
        self.write(args, |tx, events, args| {
            Box::pin(evaluations::set_access_list(tx, events, args))
        })
        .await
    }

    async fn access_list(&self, evaluation_id: &str) -> Result<Vec<String>> {
        self.read(evaluation_id, |tx, id| {
            Box::pin(evaluations::access_list(tx, id))
        })
        .await
    }

    async fn join(&self, evaluation_id: &str, student: &User) -> Result<Participation> {
        let args = (evaluation_id.to_owned(), student.clone());
        self.write(args, |tx, events, args| {
            Box::pin(participants::join(tx, events, args))
        })
        .await
    }

    async fn submit(&self, evaluation_id: &str, student: &User) -> Result<Participation> {
        let args = (evaluation_id.to_owned(), student.clone());
        self.write(args, |tx, events, args| {
            Box::pin(participants::submit(tx, events, args))
        })
        .await
    }

    async fn unblock(
        &self,
        evaluation_id: &str,
        username: &str,
        note: Option<String>,
        actor: &User,
    ) -> Result<Participation> {
        let args = (
            evaluation_id.to_owned(),
            username.to_owned(),
            note,
            actor.clone(),
        );
        self.write(args, |tx, events, args| {
            Box::pin(participants::unblock(tx, events, args))
        })
        .await
    }

    async fn participants(&self, evaluation_id: &str) -> Result<Vec<ParticipantRow>> {
        self.read(evaluation_id, |tx, id| {
            Box::pin(participants::participants(tx, id))
        })
        .await
    }

    async fn boards(&self, staff: &User) -> Result<Vec<Board>> {
        self.read(staff, |tx, staff| Box::pin(participants::boards(tx, staff)))
            .await
    }

    async fn audit(&self, evaluation_id: &str) -> Result<Vec<AuditEntry>> {
        self.read(evaluation_id, |tx, id| {
            Box::pin(participants::audit_log(tx, id))
        })
        .await
    }

    async fn save_answer(&self, student: &User, answer: NewAnswer) -> Result<SaveAck> {
        Engine::save_answer(self, student, answer).await
    }

    async fn answers(&self, evaluation_id: &str, student_id: &str) -> Result<Vec<Answer>> {
        self.read(&(evaluation_id, student_id), |tx, args| {
            Box::pin(answers::of_student(tx, args))
        })
        .await
    }

    async fn answer_records(
        &self,
        evaluation_id: &str,
        student_id: Option<&str>,
    ) -> Result<Vec<AnswerRecord>> {
        self.read(&(evaluation_id, student_id), |tx, args| {
            Box::pin(answers::records(tx, args))
        })
        .await
    }

    async fn import_answers(
        &self,
        evaluation_id: &str,
        import: AnswerImport,
        actor: &User,
    ) -> Result<ImportReport> {
        let args = (evaluation_id.to_owned(), import, actor.clone());
        self.write(args, |tx, events, args| {
            Box::pin(answers::import(tx, events, args))
        })
        .await
    }

    async fn record_integrity(&self, student: &User, event: IntegrityEvent) -> Result<()> {
        self.write((student.clone(), event), |tx, events, args| {
            Box::pin(integrity::record(tx, events, args))
        })
        .await
    }

    async fn integrity_timeline(
        &self,
        evaluation_id: &str,
        student_id: &str,
    ) -> Result<Vec<invigil_protocol::IntegrityRecord>> {
        self.read(&(evaluation_id, student_id), |tx, args| {
            Box::pin(integrity::timeline(tx, args))
        })
        .await
    }

    async fn set_accommodation(
        &self,
        evaluation_id: &str,
        student: &User,
        exempt: Vec<invigil_protocol::ProctoringSetting>,
        reason: String,
        actor: &User,
    ) -> Result<invigil_protocol::Accommodation> {
        let args = (
            evaluation_id.to_owned(),
            student.clone(),
            exempt,
            reason,
            actor.clone(),
        );
        self.write(args, |tx, events, args| {
            Box::pin(accommodations::set(tx, events, args))
        })
        .await
    }

    async fn accommodations(
        &self,
        evaluation_id: &str,
    ) -> Result<Vec<invigil_protocol::Accommodation>> {
        self.read(evaluation_id, |tx, id| {
            Box::pin(accommodations::list(tx, id))
        })
        .await
    }

    async fn socket_opened(&self, session_id: &str, node: &str, connection: u64) -> Result<()> {
        Engine::socket_opened(self, session_id, node, connection).await
    }

    async fn count_sign_in(&self, attempt: &SignInAttempt<'_>) -> Result<Option<Counted>> {
        Engine::count_sign_in(self, attempt).await
    }

    async fn uncount_sign_in(&self, id: i64) -> Result<()> {
        Engine::uncount_sign_in(self, id).await
    }

    async fn barrier(&self) -> Result<()> {
        Engine::barrier(self).await
    }

    async fn close(&self) {
        Engine::close(self).await
    }
}

/// Opens the store a URL names, migrating it to the current schema. `heartbeat` is the live
/// connections' heartbeat period, which a clustered store also uses for its node heartbeats.
pub async fn open(
    url: &DatabaseUrl,
    bus: Bus,
    heartbeat: std::time::Duration,
) -> anyhow::Result<Arc<dyn Store>> {
    match url {
        DatabaseUrl::Sqlite(path) => Ok(Arc::new(sqlite::SqliteStore::open(path, bus).await?)),
        DatabaseUrl::Postgres(url) => Ok(Arc::new(
            postgres::PostgresStore::open(url, bus, heartbeat).await?,
        )),
    }
}

//! The embedded engine: one SQLite file in WAL mode with `synchronous=FULL`.
//!
//! Reads go through a small pool. Every write goes through one writer task that drains its queue
//! into one transaction (group commit): one fsync then covers every save of the batch, which is
//! what lets a single file acknowledge tens of thousands of durable saves a second. Each operation
//! runs inside its own savepoint, so a refusal or a failure undoes that operation alone. After the
//! commit the writer publishes the operations' events in commit order, then answers the callers.

use super::rows::{blocked_reason, opt_ts, phase, role, status, ts};
use super::rules;
use super::{
    Account, AnswerImport, AnswerRecord, Board, ConnectionChange, EvaluationEdit, EvaluationRecord,
    NewAccount, NewAnswer, NewEvaluation, SESSION_IDLE_LIMIT_MS, Session, SessionLookup, SignIn,
    Store, StudentView,
};
use crate::error::{Error, Result};
use crate::live::event::{Audience, Bus, EvaluationEvent, Event, ParticipantEvent, ParticipantRow};
use anyhow::Context as _;
use async_trait::async_trait;
use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use invigil_protocol::{
    Access, Answer, AuditEntry, AuditKind, BlockedReason, Evaluation, ImportReport, IntegrityEvent,
    InvalidationReason, OnTime, Participation, ParticipationStatus, Phase, Question, Role, SaveAck,
    Timestamp, UpdateReason, User, UserSummary,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, Row, SqlitePool};
use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::str::FromStr;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

mod accommodations;
mod console;
mod integrity;
mod presence;
mod saves;

/// At most this many operations share one transaction.
const MAX_BATCH: usize = 2048;
/// A session's last use is written again only after this long, so that busy sessions do not cost
/// a write per request.
const TOUCH_EVERY_MS: i64 = 60_000;

type Done = Box<dyn FnOnce(Result<()>) + Send>;

struct Completion {
    events: Vec<Event>,
    done: Done,
}

/// Opens a savepoint in the writer's transaction, so that a run that fails is undone whole and
/// the rest of the batch still commits. [`settle`] closes it.
async fn savepoint(conn: &mut SqliteConnection, name: &str) -> Result<()> {
    sqlx::query(&format!("SAVEPOINT {name}"))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Closes the savepoint `name`, undoing what it holds first when `outcome` is a failure.
async fn settle<T>(conn: &mut SqliteConnection, name: &str, outcome: Result<T>) -> Result<T> {
    let undone = if outcome.is_err() {
        sqlx::query(&format!("ROLLBACK TO {name}"))
            .execute(&mut *conn)
            .await
            .map(drop)
    } else {
        Ok(())
    };
    let released = sqlx::query(&format!("RELEASE {name}"))
        .execute(&mut *conn)
        .await;
    undone?;
    released?;
    outcome
}

/// Undoes and closes the savepoint `name` of an operation that panicked inside it. (Failures
/// are ignored: the savepoint may never have been opened.)
async fn abandon(conn: &mut SqliteConnection, name: &str) {
    let _ = sqlx::query(&format!("ROLLBACK TO {name}"))
        .execute(&mut *conn)
        .await;
    let _ = sqlx::query(&format!("RELEASE {name}"))
        .execute(&mut *conn)
        .await;
}

type Job = Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Completion> + Send>;

enum Msg {
    Job(Job),
    /// Answer saves, the bulk of all writes, run many to a statement ([`saves`]).
    Save(saves::SaveJob),
    /// Connections opening and closing, many to a statement ([`presence`]).
    Presence(presence::PresenceJob),
    Stop(oneshot::Sender<()>),
}

/// The SQLite store.
pub struct SqliteStore {
    read: SqlitePool,
    jobs: mpsc::Sender<Msg>,
    /// The bus the writer publishes on, for barriers behind what it published.
    bus: Bus,
}

impl SqliteStore {
    /// Opens (creating if needed) and migrates the database at `path`, and starts its writer.
    pub async fn open(path: &str, bus: Bus) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
            .with_context(|| format!("while reading the database path {path}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30))
            .pragma("cache_size", "-16000")
            .statement_cache_capacity(256);
        let mut writer = options
            .connect()
            .await
            .with_context(|| format!("while opening the database {path}"))?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&mut writer)
            .await
            .context("while migrating the database")?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(1)
            .connect_with(options)
            .await
            .context("while opening the read pool")?;
        let (jobs, rx) = mpsc::channel(MAX_BATCH * 4);
        // The writer gets a thread of its own: each of its statements is a round trip to sqlx's
        // SQLite thread, and on the server's runtime every answer came back to a task queued
        // behind thousands of busy sockets, which held a batch of saves several times longer
        // than SQLite took to run it.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("while starting the database writer's runtime")?;
        let writer_bus = bus.clone();
        std::thread::Builder::new()
            .name("invigil-writer".into())
            .spawn(move || runtime.block_on(writer_loop(writer, rx, writer_bus)))
            .context("while starting the database writer")?;
        Ok(Self { read, jobs, bus })
    }

    /// Runs `op` in the writer's next transaction; answers once it is committed.
    async fn write<T, F>(&self, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection, &'c mut Vec<Event>) -> BoxFuture<'c, Result<T>>
            + Send
            + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T>>();
        let job: Job = Box::new(move |conn: &mut SqliteConnection| {
            Box::pin(async move {
                let mut events = Vec::new();
                let result = in_savepoint(conn, &mut events, op).await;
                if result.is_err() {
                    events.clear();
                }
                Completion {
                    events,
                    done: Box::new(move |commit: Result<()>| {
                        let _ = tx.send(commit.and(result));
                    }),
                }
            })
        });
        self.jobs
            .send(Msg::Job(job))
            .await
            .map_err(|_| Error::internal("the database writer has stopped (shutting down)"))?;
        rx.await
            .map_err(|_| Error::internal("the database writer failed before committing"))?
    }

    async fn reader(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Sqlite>> {
        Ok(self.read.acquire().await?)
    }
}

async fn in_savepoint<T, F>(
    conn: &mut SqliteConnection,
    events: &mut Vec<Event>,
    op: F,
) -> Result<T>
where
    F: for<'c> FnOnce(&'c mut SqliteConnection, &'c mut Vec<Event>) -> BoxFuture<'c, Result<T>>,
{
    savepoint(conn, "op").await?;
    let result = op(&mut *conn, events).await;
    settle(conn, "op", result).await
}

/// Runs `op` (an operation, or a run of saves or presence changes, working in the savepoint
/// `name`); if it panics, undoes what it did and answers `None`. A bug in one operation must not
/// stop every later write: its callers see their answer channels dropped, an error.
async fn guarded<T>(
    conn: &mut SqliteConnection,
    name: &str,
    what: &str,
    op: impl for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, T>,
) -> Option<T> {
    match AssertUnwindSafe(op(&mut *conn)).catch_unwind().await {
        Ok(done) => Some(done),
        Err(_) => {
            tracing::error!("{what} panicked; it was rolled back");
            abandon(conn, name).await;
            None
        }
    }
}

/// `item` `n` times, comma-separated: the placeholders of an `IN` list or of a multi-row
/// `VALUES`.
fn repeated(item: &str, n: usize) -> String {
    vec![item; n].join(", ")
}

/// One operation of a batch.
enum Op {
    Job(Job),
    Save(saves::SaveJob),
    Presence(presence::PresenceJob),
}

async fn writer_loop(mut conn: SqliteConnection, mut rx: mpsc::Receiver<Msg>, bus: Bus) {
    let mut batch: Vec<Op> = Vec::new();
    loop {
        let Some(first) = rx.recv().await else { break };
        let mut stop = None;
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Job(job) => batch.push(Op::Job(job)),
                Msg::Save(save) => batch.push(Op::Save(save)),
                Msg::Presence(change) => batch.push(Op::Presence(change)),
                Msg::Stop(ack) => {
                    stop = Some(ack);
                    break;
                }
            }
            if batch.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        run_batch(&mut conn, &mut batch, &bus).await;
        if let Some(ack) = stop {
            rx.close();
            let _ = ack.send(());
            break;
        }
    }
    if let Err(e) = conn.close().await {
        tracing::warn!(error = %e, "closing the database writer failed");
    }
}

async fn run_batch(conn: &mut SqliteConnection, batch: &mut Vec<Op>, bus: &Bus) {
    if batch.is_empty() {
        return;
    }
    if let Err(e) = sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await {
        tracing::error!(error = %e, "could not begin a write transaction");
        // Dropping the jobs drops their answer channels: every caller gets an error.
        batch.clear();
        return;
    }
    let mut completions = Vec::with_capacity(batch.len());
    let mut ops = batch.drain(..).peekable();
    while let Some(op) = ops.next() {
        match op {
            Op::Job(job) => completions.extend(guarded(conn, "op", "a write operation", job).await),
            // Saves in a row run together, between the operations before and after them, so
            // that each is judged after everything that reached the writer before it.
            Op::Save(first) => {
                let mut run = vec![first];
                while let Some(Op::Save(save)) = ops.next_if(|op| matches!(op, Op::Save(_))) {
                    run.push(save);
                }
                let done = guarded(conn, "saves", "a run of saves", move |c| saves::run(c, run));
                completions.extend(done.await.into_iter().flatten());
            }
            // Likewise connections opening and closing (a room coming back after a restart).
            Op::Presence(first) => {
                let mut run = vec![first];
                while let Some(Op::Presence(change)) =
                    ops.next_if(|op| matches!(op, Op::Presence(_)))
                {
                    run.push(change);
                }
                let done = guarded(conn, "presence", "a run of presence changes", move |c| {
                    presence::run(c, run)
                });
                completions.extend(done.await.into_iter().flatten());
            }
        }
    }
    match sqlx::query("COMMIT").execute(&mut *conn).await {
        Ok(_) => {
            for c in completions {
                bus.publish(c.events);
                (c.done)(Ok(()));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, operations = completions.len(), "commit failed");
            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            for c in completions {
                (c.done)(Err(Error::internal(format!("the commit failed: {e}"))));
            }
        }
    }
}

// ---- row mapping -------------------------------------------------------------------------------

const USER_COLS: &str = "u.id, u.username, u.display_name, u.role";

fn user_from(row: &SqliteRow) -> Result<User> {
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        display_name: row.try_get("display_name")?,
        role: role(row.try_get("role")?)?,
    })
}

const EVAL_COLS: &str = "e.id AS e_id, e.title, e.phase, e.ends_at, e.access, o.username AS owner, \
                         e.questions, e.owner_id, e.proctoring";
const EVAL_FROM: &str = "evaluations e JOIN users o ON o.id = e.owner_id";

fn evaluation_from(row: &SqliteRow) -> Result<EvaluationRecord> {
    let questions: String = row.try_get("questions")?;
    let questions: Vec<Question> = serde_json::from_str(&questions)
        .map_err(|e| Error::internal(format!("stored questions are not valid: {e}")))?;
    Ok(EvaluationRecord {
        evaluation: Evaluation {
            id: row.try_get("e_id")?,
            title: row.try_get("title")?,
            phase: phase(row.try_get("phase")?)?,
            ends_at: opt_ts(row.try_get("ends_at")?)?,
            access: super::rows::access(row.try_get("access")?),
            owner: row.try_get("owner")?,
            questions,
            proctoring: super::integrity::parse_proctoring(row.try_get("proctoring")?)?,
        },
        owner_id: row.try_get("owner_id")?,
    })
}

async fn load_evaluation(
    conn: &mut SqliteConnection,
    id: &str,
) -> Result<Option<EvaluationRecord>> {
    let row = sqlx::query(&format!(
        "SELECT {EVAL_COLS} FROM {EVAL_FROM} WHERE e.id = ?1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(evaluation_from).transpose()
}

async fn must_evaluation(conn: &mut SqliteConnection, id: &str) -> Result<EvaluationRecord> {
    load_evaluation(conn, id)
        .await?
        .ok_or_else(|| Error::not_found(format!("There is no evaluation `{id}`.")))
}

/// The participation of one student (eligible or not) in a loaded evaluation.
async fn load_participation(
    conn: &mut SqliteConnection,
    evaluation: &Evaluation,
    student: &User,
) -> Result<Participation> {
    let row = sqlx::query(
        "SELECT EXISTS (SELECT 1 FROM access_list WHERE evaluation_id = ?1 AND user_id = ?2) AS on_list,
                (SELECT status FROM participations WHERE evaluation_id = ?1 AND user_id = ?2) AS status,
                (SELECT blocked_reason FROM participations WHERE evaluation_id = ?1 AND user_id = ?2) AS reason,
                (SELECT exempt FROM accommodations WHERE evaluation_id = ?1 AND user_id = ?2) AS exempt",
    )
    .bind(&evaluation.id)
    .bind(&student.id)
    .fetch_one(&mut *conn)
    .await?;
    let on_list: bool = row.try_get("on_list")?;
    Ok(Participation {
        evaluation_id: evaluation.id.clone(),
        username: student.username.clone(),
        status: status(row.try_get("status")?)?,
        blocked_reason: blocked_reason(row.try_get("reason")?),
        access: rules::eligible(evaluation.access, on_list),
        proctoring_exempt: super::accommodations::parse_exempt(
            row.try_get::<Option<String>, _>("exempt")?.as_deref(),
        )?,
    })
}

const ROW_SELECT: &str = "SELECT u.id, u.username, u.display_name, p.status, p.blocked_reason, \
     u.last_seen_at, (SELECT COUNT(*) FROM answers a WHERE a.evaluation_id = ?1 AND a.user_id = u.id) AS answered, \
     (SELECT COUNT(*) FROM answers a WHERE a.evaluation_id = ?1 AND a.user_id = u.id AND a.late) AS late_answers, \
     (SELECT x.exempt FROM accommodations x WHERE x.evaluation_id = ?1 AND x.user_id = u.id) AS exempt \
     FROM users u LEFT JOIN participations p ON p.evaluation_id = ?1 AND p.user_id = u.id";

fn participant_row_from(row: &SqliteRow) -> Result<ParticipantRow> {
    let answered: i64 = row.try_get("answered")?;
    Ok(ParticipantRow {
        user_id: row.try_get("id")?,
        username: row.try_get("username")?,
        display_name: row.try_get("display_name")?,
        status: status(row.try_get("status")?)?,
        blocked_reason: blocked_reason(row.try_get("blocked_reason")?),
        last_seen: opt_ts(row.try_get("last_seen_at")?)?,
        answered: u32::try_from(answered).unwrap_or(u32::MAX),
        late_answers: u32::try_from(row.try_get::<i64, _>("late_answers")?).unwrap_or(u32::MAX),
        integrity: Default::default(),
        proctoring_exempt: super::accommodations::parse_exempt(
            row.try_get::<Option<String>, _>("exempt")?.as_deref(),
        )?,
        presence: None,
    })
}

async fn participant_row(
    conn: &mut SqliteConnection,
    evaluation_id: &str,
    user_id: &str,
) -> Result<ParticipantRow> {
    let row = sqlx::query(&format!("{ROW_SELECT} WHERE u.id = ?2"))
        .bind(evaluation_id)
        .bind(user_id)
        .fetch_one(&mut *conn)
        .await?;
    let mut row = participant_row_from(&row)?;
    integrity::fill(
        conn,
        evaluation_id,
        Some(user_id),
        std::slice::from_mut(&mut row),
    )
    .await?;
    Ok(row)
}

async fn participant_rows(
    conn: &mut SqliteConnection,
    evaluation: &Evaluation,
) -> Result<Vec<ParticipantRow>> {
    // The participants are the students on the list (for a list evaluation) and all who joined.
    let listed = if evaluation.access == Access::List {
        "SELECT user_id FROM access_list WHERE evaluation_id = ?1 UNION "
    } else {
        ""
    };
    let rows = sqlx::query(&format!(
        "{ROW_SELECT} WHERE u.id IN ({listed}SELECT user_id FROM participations WHERE evaluation_id = ?1) \
         ORDER BY u.username"
    ))
    .bind(&evaluation.id)
    .fetch_all(&mut *conn)
    .await?;
    let mut rows = rows
        .iter()
        .map(participant_row_from)
        .collect::<Result<Vec<_>>>()?;
    integrity::fill(conn, &evaluation.id, None, &mut rows).await?;
    Ok(rows)
}

/// Who hears of a change to an evaluation: every student if it is open, else those on its list.
async fn audience(conn: &mut SqliteConnection, evaluation: &Evaluation) -> Result<Audience> {
    if evaluation.access == Access::Open {
        return Ok(Audience::AllStudents);
    }
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT user_id FROM access_list WHERE evaluation_id = ?1")
            .bind(&evaluation.id)
            .fetch_all(&mut *conn)
            .await?;
    Ok(Audience::Students(ids.into_iter().collect()))
}

async fn audit(
    conn: &mut SqliteConnection,
    evaluation_id: &str,
    kind: AuditKind,
    username: Option<&str>,
    actor: Option<&str>,
    detail: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit (evaluation_id, at, kind, username, actor, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .bind(evaluation_id)
    .bind(Timestamp::now().unix_ms())
    .bind(kind.as_str())
    .bind(username)
    .bind(actor)
    .bind(detail)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The running evaluations in which a student is sitting or blocked: where their sign-ins,
/// invalidations and connections are recorded.
async fn sitting(
    conn: &mut SqliteConnection,
    user_id: &str,
) -> Result<Vec<(String, ParticipationStatus)>> {
    let rows = sqlx::query(
        "SELECT p.evaluation_id, p.status FROM participations p JOIN evaluations e ON e.id = p.evaluation_id
         WHERE p.user_id = ?1 AND e.phase = 'in_progress' AND p.status IN ('in_progress', 'blocked')
         ORDER BY p.evaluation_id",
    )
    .bind(user_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("evaluation_id")?, status(r.try_get("status")?)?)))
        .collect()
}

/// Board updates for every unfinished evaluation in which the student is a participant.
async fn board_events(
    conn: &mut SqliteConnection,
    user_id: &str,
    events: &mut Vec<Event>,
) -> Result<()> {
    let rows = sqlx::query(
        "SELECT e.id, e.owner_id FROM evaluations e WHERE e.phase != 'finished' AND (
             EXISTS (SELECT 1 FROM participations p WHERE p.evaluation_id = e.id AND p.user_id = ?1)
             OR (e.access = 'list' AND EXISTS (SELECT 1 FROM access_list a WHERE a.evaluation_id = e.id AND a.user_id = ?1)))",
    )
    .bind(user_id)
    .fetch_all(&mut *conn)
    .await?;
    for r in rows {
        let evaluation_id: String = r.try_get("id")?;
        let owner_id: String = r.try_get("owner_id")?;
        let row = participant_row(conn, &evaluation_id, user_id).await?;
        events.push(Event::Participant(ParticipantEvent {
            evaluation_id,
            owner_id,
            row,
        }));
    }
    Ok(())
}

/// The events of one student's participation changing: their own update and the board's.
async fn participation_events(
    conn: &mut SqliteConnection,
    record: &EvaluationRecord,
    student: &User,
    reason: UpdateReason,
    events: &mut Vec<Event>,
) -> Result<Participation> {
    let participation = load_participation(conn, &record.evaluation, student).await?;
    events.push(Event::Evaluation(EvaluationEvent::for_student(
        reason,
        rules::student_view(record.evaluation.clone()),
        &student.id,
        participation.clone(),
    )));
    let row = participant_row(conn, &record.evaluation.id, &student.id).await?;
    events.push(Event::Participant(ParticipantEvent {
        evaluation_id: record.evaluation.id.clone(),
        owner_id: record.owner_id.clone(),
        row,
    }));
    Ok(participation)
}

/// Revokes sessions of a user (all live ones, or one), recording it where the student is sitting.
async fn revoke(
    conn: &mut SqliteConnection,
    user: &User,
    only: Option<&str>,
    keep: Option<&str>,
    reason: InvalidationReason,
    events: &mut Vec<Event>,
) -> Result<Vec<String>> {
    let now = Timestamp::now().unix_ms();
    let ids: Vec<String> = sqlx::query_scalar(
        "UPDATE sessions SET revoked_at = ?2, revoked_reason = ?3
         WHERE user_id = ?1 AND revoked_at IS NULL AND (?4 IS NULL OR id = ?4) AND (?5 IS NULL OR id != ?5)
         RETURNING id",
    )
    .bind(&user.id)
    .bind(now)
    .bind(reason.as_str())
    .bind(only)
    .bind(keep)
    .fetch_all(&mut *conn)
    .await?;
    if ids.is_empty() {
        return Ok(ids);
    }
    if user.role == Role::Student {
        let detail = rules::invalidation_detail(reason);
        for (evaluation_id, _) in sitting(conn, &user.id).await? {
            audit(
                conn,
                &evaluation_id,
                AuditKind::SessionInvalidated,
                Some(&user.username),
                None,
                detail,
            )
            .await?;
        }
    }
    events.push(Event::Revoked {
        user_id: user.id.clone(),
        session_ids: ids.clone(),
        reason,
    });
    if user.role == Role::Student {
        // The boards must show that the revoked session's connections no longer count.
        board_events(conn, &user.id, events).await?;
    }
    Ok(ids)
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

fn check_owner_or_admin(record: &EvaluationRecord, actor: &User) -> Result<()> {
    rules::check_owner_or_admin(&record.owner_id, actor)
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_account(&self, new: NewAccount) -> Result<User> {
        self.write(move |conn, _| {
            Box::pin(async move {
                let result = sqlx::query(
                    "INSERT INTO users (id, username, display_name, role, password_hash, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .bind(&new.id)
                .bind(&new.username)
                .bind(&new.display_name)
                .bind(new.role.as_str())
                .bind(&new.password_hash)
                .bind(Timestamp::now().unix_ms())
                .execute(&mut *conn)
                .await;
                match result {
                    Err(e) if is_unique_violation(&e) => Err(Error::conflict(format!(
                        "The username `{}` is already taken.",
                        new.username
                    ))),
                    Err(e) => Err(e.into()),
                    Ok(_) => Ok(User {
                        id: new.id,
                        username: new.username,
                        display_name: new.display_name,
                        role: new.role,
                    }),
                }
            })
        })
        .await
    }

    async fn account(&self, username: &str) -> Result<Option<Account>> {
        let mut conn = self.reader().await?;
        let row = sqlx::query(&format!(
            "SELECT {USER_COLS}, u.password_hash FROM users u WHERE u.username = ?1"
        ))
        .bind(username)
        .fetch_optional(&mut *conn)
        .await?;
        row.map(|r| {
            Ok(Account {
                user: user_from(&r)?,
                password_hash: r.try_get("password_hash")?,
            })
        })
        .transpose()
    }

    async fn users_named(&self, usernames: &[String]) -> Result<Vec<User>> {
        let mut conn = self.reader().await?;
        let names = serde_json::to_string(usernames).map_err(Error::internal)?;
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLS} FROM users u WHERE u.username IN (SELECT value FROM json_each(?1))"
        ))
        .bind(names)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(user_from).collect()
    }

    async fn sign_in(&self, sign_in: SignIn) -> Result<Vec<String>> {
        self.write(move |conn, events| {
            Box::pin(async move {
                let now = Timestamp::now().unix_ms();
                let user = &sign_in.user;
                sqlx::query(
                    "INSERT INTO sessions (id, user_id, token_hash, device, created_at, last_used_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                )
                .bind(&sign_in.session_id)
                .bind(&user.id)
                .bind(&sign_in.token_hash)
                .bind(&sign_in.device)
                .bind(now)
                .execute(&mut *conn)
                .await?;
                if user.role != Role::Student {
                    return Ok(Vec::new());
                }
                let sitting = sitting(conn, &user.id).await?;
                let detail = rules::sign_in_detail(sign_in.device.as_deref());
                for (evaluation_id, _) in &sitting {
                    audit(conn, evaluation_id, AuditKind::SignedIn, Some(&user.username), Some(&user.username),
                        &detail).await?;
                }
                let mut revocation = Vec::new();
                let revoked = revoke(
                    conn,
                    user,
                    None,
                    Some(&sign_in.session_id),
                    InvalidationReason::SignedInElsewhere,
                    &mut revocation,
                )
                .await?;
                let mut blocks = Vec::new();
                for (evaluation_id, st) in sitting {
                    if st != ParticipationStatus::InProgress {
                        continue;
                    }
                    sqlx::query(
                        "UPDATE participations SET status = 'blocked', blocked_reason = ?3, updated_at = ?4
                         WHERE evaluation_id = ?1 AND user_id = ?2",
                    )
                    .bind(&evaluation_id)
                    .bind(&user.id)
                    .bind(BlockedReason::SecondSignIn.as_str())
                    .bind(now)
                    .execute(&mut *conn)
                    .await?;
                    audit(conn, &evaluation_id, AuditKind::Blocked, Some(&user.username), None,
                        rules::SECOND_SIGN_IN_DETAIL).await?;
                    let record = must_evaluation(conn, &evaluation_id).await?;
                    participation_events(conn, &record, user, UpdateReason::Blocked, &mut blocks).await?;
                }
                events.extend(rules::sign_in_events(blocks, revocation));
                Ok(revoked)
            })
        })
        .await
    }

    async fn session(&self, token_hash: &str) -> Result<SessionLookup> {
        let row = {
            let mut conn = self.reader().await?;
            sqlx::query(&format!(
                "SELECT s.id AS session_id, s.last_used_at, s.revoked_at, s.revoked_reason, {USER_COLS}
                 FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = ?1"
            ))
            .bind(token_hash)
            .fetch_optional(&mut *conn)
            .await?
        };
        let Some(row) = row else {
            return Ok(SessionLookup::Unknown);
        };
        if row.try_get::<Option<i64>, _>("revoked_at")?.is_some() {
            let reason: Option<String> = row.try_get("revoked_reason")?;
            let reason = reason
                .as_deref()
                .and_then(InvalidationReason::parse)
                .unwrap_or(InvalidationReason::RevokedByAdmin);
            return Ok(SessionLookup::Invalidated(reason));
        }
        let now = Timestamp::now().unix_ms();
        let last_used: i64 = row.try_get("last_used_at")?;
        if now - last_used > SESSION_IDLE_LIMIT_MS {
            return Ok(SessionLookup::Expired);
        }
        let session = Session {
            id: row.try_get("session_id")?,
            user: user_from(&row)?,
        };
        if now - last_used > TOUCH_EVERY_MS {
            let id = session.id.clone();
            self.write(move |conn, _| {
                Box::pin(async move {
                    sqlx::query(
                        "UPDATE sessions SET last_used_at = ?2 WHERE id = ?1 AND last_used_at < ?2",
                    )
                    .bind(&id)
                    .bind(now)
                    .execute(&mut *conn)
                    .await?;
                    Ok(())
                })
            })
            .await?;
        }
        Ok(SessionLookup::Active(session))
    }

    async fn revoke_session(&self, session: &Session, reason: InvalidationReason) -> Result<()> {
        let session = session.clone();
        self.write(move |conn, events| {
            Box::pin(async move {
                revoke(conn, &session.user, Some(&session.id), None, reason, events).await?;
                Ok(())
            })
        })
        .await
    }

    async fn revoke_user(
        &self,
        user: &User,
        reason: InvalidationReason,
        _actor: &User,
    ) -> Result<usize> {
        let user = user.clone();
        self.write(move |conn, events| {
            Box::pin(
                async move { Ok(revoke(conn, &user, None, None, reason, events).await?.len()) },
            )
        })
        .await
    }

    async fn presence(&self, session: &Session, change: ConnectionChange) -> Result<()> {
        // This node's hub is the one that knows who is connected: only its transitions matter,
        // and a close that is not a loss (replaced, or the server stopping) is not recorded.
        if session.user.role != Role::Student || !change.transition || change.quiet {
            return Ok(());
        }
        let (done, recorded) = oneshot::channel();
        let change = presence::PresenceJob {
            session: session.clone(),
            presence: change.presence,
            done,
        };
        self.jobs
            .send(Msg::Presence(change))
            .await
            .map_err(|_| Error::internal("the database writer has stopped (shutting down)"))?;
        recorded
            .await
            .map_err(|_| Error::internal("the database writer failed before committing"))?
    }

    async fn create_evaluation(&self, owner: &User, new: NewEvaluation) -> Result<Evaluation> {
        let owner = owner.clone();
        self.write(move |conn, events| {
            Box::pin(async move {
                let questions = serde_json::to_string(&new.questions).map_err(Error::internal)?;
                sqlx::query(
                    "INSERT INTO evaluations (id, title, phase, ends_at, access, owner_id, questions, created_at, proctoring)
                     VALUES (?1, ?2, 'draft', ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .bind(&new.id)
                .bind(&new.title)
                .bind(new.ends_at.map(Timestamp::unix_ms))
                .bind(new.access.as_str())
                .bind(&owner.id)
                .bind(questions)
                .bind(Timestamp::now().unix_ms())
                .bind(super::integrity::proctoring_json(&new.proctoring)?)
                .execute(&mut *conn)
                .await?;
                let evaluation = Evaluation {
                    id: new.id,
                    title: new.title,
                    phase: Phase::Draft,
                    ends_at: new.ends_at,
                    access: new.access,
                    owner: owner.username.clone(),
                    questions: new.questions,
                    proctoring: new.proctoring,
                };
                events.push(Event::StaffEvaluation {
                    evaluation: evaluation.clone(),
                    owner_id: owner.id.clone(),
                });
                if evaluation.access == Access::Open {
                    // Every student gains access to an open evaluation the moment it exists.
                    events.push(Event::Evaluation(EvaluationEvent::new(
                        UpdateReason::AccessChanged,
                        rules::student_view(evaluation.clone()),
                        Audience::AllStudents,
                        HashMap::new(),
                    )));
                }
                Ok(evaluation)
            })
        })
        .await
    }

    async fn evaluation(&self, id: &str) -> Result<Option<EvaluationRecord>> {
        let mut conn = self.reader().await?;
        load_evaluation(&mut conn, id).await
    }

    async fn evaluations(&self) -> Result<Vec<Evaluation>> {
        let mut conn = self.reader().await?;
        let rows = sqlx::query(&format!(
            "SELECT {EVAL_COLS} FROM {EVAL_FROM} ORDER BY e.created_at, e.id"
        ))
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|r| Ok(evaluation_from(r)?.evaluation))
            .collect()
    }

    async fn student_views(&self, student: &User) -> Result<Vec<StudentView>> {
        let mut conn = self.reader().await?;
        let rows = sqlx::query(&format!(
            "SELECT {EVAL_COLS}, p.status AS p_status, p.blocked_reason AS p_reason,
               (SELECT x.exempt FROM accommodations x WHERE x.evaluation_id = e.id AND x.user_id = ?1) AS exempt
             FROM {EVAL_FROM}
             LEFT JOIN participations p ON p.evaluation_id = e.id AND p.user_id = ?1
             WHERE e.access = 'open' OR EXISTS (SELECT 1 FROM access_list a WHERE a.evaluation_id = e.id AND a.user_id = ?1)
             ORDER BY e.created_at, e.id"
        ))
        .bind(&student.id)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|r| {
                let record = evaluation_from(r)?;
                let participation = Participation {
                    evaluation_id: record.evaluation.id.clone(),
                    username: student.username.clone(),
                    status: status(r.try_get("p_status")?)?,
                    blocked_reason: blocked_reason(r.try_get("p_reason")?),
                    access: true,
                    proctoring_exempt: super::accommodations::parse_exempt(
                        r.try_get::<Option<String>, _>("exempt")?.as_deref(),
                    )?,
                };
                Ok(StudentView {
                    evaluation: rules::student_view(record.evaluation),
                    participation,
                })
            })
            .collect()
    }

    async fn participation(
        &self,
        evaluation_id: &str,
        student: &User,
    ) -> Result<Option<Participation>> {
        let mut conn = self.reader().await?;
        let Some(record) = load_evaluation(&mut conn, evaluation_id).await? else {
            return Ok(None);
        };
        Ok(Some(
            load_participation(&mut conn, &record.evaluation, student).await?,
        ))
    }

    async fn set_phase(&self, evaluation_id: &str, to: Phase, actor: &User) -> Result<Evaluation> {
        let (id, actor) = (evaluation_id.to_owned(), actor.clone());
        self.write(move |conn, events| {
            Box::pin(async move {
                let mut record = must_evaluation(conn, &id).await?;
                check_owner_or_admin(&record, &actor)?;
                let from = record.evaluation.phase;
                rules::check_transition(from, to)?;
                sqlx::query("UPDATE evaluations SET phase = ?2 WHERE id = ?1")
                    .bind(&id)
                    .bind(to.as_str())
                    .execute(&mut *conn)
                    .await?;
                console::record_phase(conn, &id, to).await?;
                audit(
                    conn,
                    &id,
                    AuditKind::PhaseChanged,
                    None,
                    Some(&actor.username),
                    &format!("Phase changed from {from} to {to}."),
                )
                .await?;
                record.evaluation.phase = to;
                events.push(console::staff_event(&record));
                let audience = audience(conn, &record.evaluation).await?;
                events.push(Event::Evaluation(EvaluationEvent::new(
                    UpdateReason::PhaseChanged,
                    rules::student_view(record.evaluation.clone()),
                    audience,
                    HashMap::new(),
                )));
                Ok(record.evaluation)
            })
        })
        .await
    }

    async fn set_ends_at(
        &self,
        evaluation_id: &str,
        ends_at: Option<Timestamp>,
        actor: &User,
    ) -> Result<Evaluation> {
        let (id, actor) = (evaluation_id.to_owned(), actor.clone());
        self.write(move |conn, events| {
            Box::pin(async move {
                let mut record = must_evaluation(conn, &id).await?;
                check_owner_or_admin(&record, &actor)?;
                sqlx::query("UPDATE evaluations SET ends_at = ?2 WHERE id = ?1")
                    .bind(&id)
                    .bind(ends_at.map(Timestamp::unix_ms))
                    .execute(&mut *conn)
                    .await?;
                let detail = rules::ends_at_detail(record.evaluation.ends_at, ends_at);
                audit(
                    conn,
                    &id,
                    AuditKind::EndsAtChanged,
                    None,
                    Some(&actor.username),
                    &detail,
                )
                .await?;
                record.evaluation.ends_at = ends_at;
                events.push(console::staff_event(&record));
                let audience = audience(conn, &record.evaluation).await?;
                events.push(Event::Evaluation(EvaluationEvent::new(
                    UpdateReason::EndsAtChanged,
                    rules::student_view(record.evaluation.clone()),
                    audience,
                    HashMap::new(),
                )));
                Ok(record.evaluation)
            })
        })
        .await
    }

    async fn set_access_list(
        &self,
        evaluation_id: &str,
        students: &[User],
        actor: &User,
    ) -> Result<Vec<String>> {
        let (id, actor, students) = (evaluation_id.to_owned(), actor.clone(), students.to_vec());
        self.write(move |conn, events| {
            Box::pin(async move {
                let record = must_evaluation(conn, &id).await?;
                check_owner_or_admin(&record, &actor)?;
                let old: HashSet<String> =
                    sqlx::query_scalar("SELECT user_id FROM access_list WHERE evaluation_id = ?1")
                        .bind(&id)
                        .fetch_all(&mut *conn)
                        .await?
                        .into_iter()
                        .collect();
                let new: HashMap<&str, &User> =
                    students.iter().map(|u| (u.id.as_str(), u)).collect();
                let mut removed: Vec<String> = old
                    .iter()
                    .filter(|u| !new.contains_key(u.as_str()))
                    .cloned()
                    .collect();
                removed.sort();
                let mut added_seen = HashSet::new();
                let added: Vec<&User> = students
                    .iter()
                    .filter(|u| !old.contains(&u.id) && added_seen.insert(u.id.as_str()))
                    .collect();
                // Each change is one statement, whatever the number of students: the ids go in as
                // one JSON array (one bound value, so no bind limit), in order, for the audit's.
                let json = |items: Vec<&str>| serde_json::to_string(&items).map_err(Error::internal);
                let added_ids = json(added.iter().map(|u| u.id.as_str()).collect())?;
                let removed_ids = json(removed.iter().map(String::as_str).collect())?;
                let now = Timestamp::now().unix_ms();
                sqlx::query(
                    "INSERT INTO access_list (evaluation_id, user_id) SELECT ?1, value FROM json_each(?2)",
                )
                .bind(&id)
                .bind(&added_ids)
                .execute(&mut *conn)
                .await?;
                sqlx::query(
                    "DELETE FROM access_list WHERE evaluation_id = ?1
                     AND user_id IN (SELECT value FROM json_each(?2))",
                )
                .bind(&id)
                .bind(&removed_ids)
                .execute(&mut *conn)
                .await?;
                sqlx::query(
                    "INSERT INTO audit (evaluation_id, at, kind, username, actor, detail)
                     SELECT ?1, ?2, ?3, u.username, ?4, CASE c.change WHEN 0 THEN 'Added to the access list.'
                                                               ELSE 'Removed from the access list.' END
                     FROM (SELECT 0 AS change, key, value FROM json_each(?5)
                           UNION ALL SELECT 1, key, value FROM json_each(?6)) c
                     JOIN users u ON u.id = c.value
                     ORDER BY c.change, c.key",
                )
                .bind(&id)
                .bind(now)
                .bind(AuditKind::AccessChanged.as_str())
                .bind(&actor.username)
                .bind(&added_ids)
                .bind(&removed_ids)
                .execute(&mut *conn)
                .await?;
                let removed_users: Vec<User> = sqlx::query(&format!(
                    "SELECT {USER_COLS} FROM users u JOIN json_each(?1) j ON u.id = j.value ORDER BY j.key"
                ))
                .bind(&removed_ids)
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(user_from)
                .collect::<Result<_>>()?;
                if record.evaluation.access == Access::List {
                    let view = rules::student_view(record.evaluation.clone());
                    let mut changed = HashMap::new();
                    for user in added.iter().copied().chain(removed_users.iter()) {
                        changed.insert(
                            user.id.clone(),
                            load_participation(conn, &record.evaluation, user).await?,
                        );
                    }
                    if !changed.is_empty() {
                        events.push(Event::Evaluation(EvaluationEvent::new(
                            UpdateReason::AccessChanged,
                            view,
                            Audience::Students(changed.keys().cloned().collect()),
                            changed,
                        )));
                    }
                    for user in &added {
                        let row = participant_row(conn, &id, &user.id).await?;
                        events.push(Event::Participant(ParticipantEvent {
                            evaluation_id: id.clone(),
                            owner_id: record.owner_id.clone(),
                            row,
                        }));
                    }
                    // Those who never joined are participants no more.
                    for user in &removed_users {
                        if !console::joined(conn, &id, &user.id).await? {
                            events.push(Event::ParticipantRemoved {
                                evaluation_id: id.clone(),
                                owner_id: record.owner_id.clone(),
                                username: user.username.clone(),
                            });
                        }
                    }
                }
                let mut names: Vec<String> = students.iter().map(|u| u.username.clone()).collect();
                names.sort();
                names.dedup();
                Ok(names)
            })
        })
        .await
    }

    async fn access_list(&self, evaluation_id: &str) -> Result<Vec<String>> {
        let mut conn = self.reader().await?;
        Ok(sqlx::query_scalar(
            "SELECT u.username FROM access_list a JOIN users u ON u.id = a.user_id
             WHERE a.evaluation_id = ?1 ORDER BY u.username",
        )
        .bind(evaluation_id)
        .fetch_all(&mut *conn)
        .await?)
    }

    async fn join(&self, evaluation_id: &str, student: &User) -> Result<Participation> {
        let (id, student) = (evaluation_id.to_owned(), student.clone());
        self.write(move |conn, events| {
            Box::pin(async move {
                let record = must_evaluation(conn, &id).await?;
                let current = load_participation(conn, &record.evaluation, &student).await?;
                if !current.access {
                    // Not eligible: the evaluation is hidden from this student.
                    return Err(Error::api(
                        invigil_protocol::ErrorCode::NotOnAccessList,
                        "You are not on the access list of this evaluation.",
                    ));
                }
                match rules::decide_join(current.access, record.evaluation.phase, current.status)? {
                    rules::Join::Already => Ok(current),
                    rules::Join::Start => {
                        let now = Timestamp::now().unix_ms();
                        sqlx::query(
                            "INSERT INTO participations (evaluation_id, user_id, status, joined_at, updated_at)
                             VALUES (?1, ?2, 'in_progress', ?3, ?3)",
                        )
                        .bind(&id)
                        .bind(&student.id)
                        .bind(now)
                        .execute(&mut *conn)
                        .await?;
                        audit(conn, &id, AuditKind::Joined, Some(&student.username), Some(&student.username),
                            "Joined the evaluation.").await?;
                        participation_events(conn, &record, &student, UpdateReason::StatusChanged, events).await
                    }
                }
            })
        })
        .await
    }

    async fn submit(&self, evaluation_id: &str, student: &User) -> Result<Participation> {
        let (id, student) = (evaluation_id.to_owned(), student.clone());
        self.write(move |conn, events| {
            Box::pin(async move {
                let record = must_evaluation(conn, &id).await?;
                let current = load_participation(conn, &record.evaluation, &student).await?;
                if !rules::decide_submit(current.status)? {
                    return Ok(current);
                }
                sqlx::query(
                    "UPDATE participations SET status = 'submitted', updated_at = ?3 WHERE evaluation_id = ?1 AND user_id = ?2",
                )
                .bind(&id)
                .bind(&student.id)
                .bind(Timestamp::now().unix_ms())
                .execute(&mut *conn)
                .await?;
                audit(conn, &id, AuditKind::Submitted, Some(&student.username), Some(&student.username),
                    "Submitted the evaluation.").await?;
                participation_events(conn, &record, &student, UpdateReason::StatusChanged, events).await
            })
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
        let (id, username, actor) = (evaluation_id.to_owned(), username.to_owned(), actor.clone());
        self.write(move |conn, events| {
            Box::pin(async move {
                let record = must_evaluation(conn, &id).await?;
                check_owner_or_admin(&record, &actor)?;
                let row = sqlx::query(&format!(
                    "SELECT {USER_COLS}, p.status FROM users u
                     JOIN participations p ON p.user_id = u.id AND p.evaluation_id = ?1
                     WHERE u.username = ?2 AND u.role = 'student'"
                ))
                .bind(&id)
                .bind(&username)
                .fetch_optional(&mut *conn)
                .await?
                .ok_or_else(|| Error::not_found(format!("No student `{username}` takes part in this evaluation.")))?;
                let student = user_from(&row)?;
                if status(row.try_get("status")?)? != ParticipationStatus::Blocked {
                    return Err(Error::conflict(format!("`{username}` is not blocked.")));
                }
                sqlx::query(
                    "UPDATE participations SET status = 'in_progress', blocked_reason = NULL, updated_at = ?3
                     WHERE evaluation_id = ?1 AND user_id = ?2",
                )
                .bind(&id)
                .bind(&student.id)
                .bind(Timestamp::now().unix_ms())
                .execute(&mut *conn)
                .await?;
                let detail = rules::unblock_detail(&actor.username, note.as_deref());
                audit(conn, &id, AuditKind::Unblocked, Some(&student.username), Some(&actor.username), &detail).await?;
                participation_events(conn, &record, &student, UpdateReason::Unblocked, events).await
            })
        })
        .await
    }

    async fn participants(&self, evaluation_id: &str) -> Result<Vec<ParticipantRow>> {
        let mut conn = self.reader().await?;
        let record = must_evaluation(&mut conn, evaluation_id).await?;
        participant_rows(&mut conn, &record.evaluation).await
    }

    async fn boards(&self, staff: &User) -> Result<Vec<Board>> {
        let mut conn = self.reader().await?;
        let filter = match staff.role {
            Role::Admin => "e.phase = 'in_progress'",
            _ => "e.owner_id = ?1",
        };
        let rows = sqlx::query(&format!(
            "SELECT {EVAL_COLS} FROM {EVAL_FROM} WHERE {filter} ORDER BY e.created_at, e.id"
        ))
        .bind(&staff.id)
        .fetch_all(&mut *conn)
        .await?;
        let mut boards = Vec::with_capacity(rows.len());
        for r in &rows {
            let record = evaluation_from(r)?;
            let rows = participant_rows(&mut conn, &record.evaluation).await?;
            boards.push(Board {
                evaluation_id: record.evaluation.id,
                rows,
            });
        }
        Ok(boards)
    }

    async fn audit(&self, evaluation_id: &str) -> Result<Vec<AuditEntry>> {
        let mut conn = self.reader().await?;
        let rows = sqlx::query(
            "SELECT at, kind, username, actor, detail FROM audit WHERE evaluation_id = ?1 ORDER BY id",
        )
        .bind(evaluation_id)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get("kind")?;
                Ok(AuditEntry {
                    at: ts(r.try_get("at")?)?,
                    kind: AuditKind::parse(&kind).ok_or_else(|| {
                        Error::internal(format!("stored audit kind `{kind}` is unknown"))
                    })?,
                    username: r.try_get("username")?,
                    actor: r.try_get("actor")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect()
    }

    async fn save_answer(&self, student: &User, answer: NewAnswer) -> Result<SaveAck> {
        let (done, answered) = oneshot::channel();
        let save = saves::SaveJob {
            student: student.clone(),
            answer,
            done,
        };
        self.jobs
            .send(Msg::Save(save))
            .await
            .map_err(|_| Error::internal("the database writer has stopped (shutting down)"))?;
        answered
            .await
            .map_err(|_| Error::internal("the database writer failed before committing"))?
    }

    async fn answers(&self, evaluation_id: &str, student_id: &str) -> Result<Vec<Answer>> {
        let mut conn = self.reader().await?;
        let rows = sqlx::query(
            "SELECT question_id, revision, content, saved_at, late, on_time_revision, on_time_content, on_time_saved_at
             FROM answers WHERE evaluation_id = ?1 AND user_id = ?2 ORDER BY question_id",
        )
        .bind(evaluation_id)
        .bind(student_id)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|r| {
                let on_time = match r.try_get::<Option<i64>, _>("on_time_revision")? {
                    Some(revision) => Some(OnTime {
                        revision: revision as u64,
                        content: r
                            .try_get::<Option<String>, _>("on_time_content")?
                            .unwrap_or_default(),
                        saved_at: ts(r
                            .try_get::<Option<i64>, _>("on_time_saved_at")?
                            .unwrap_or_default())?,
                    }),
                    None => None,
                };
                let late: bool = r.try_get("late")?;
                Ok(Answer {
                    question_id: r.try_get("question_id")?,
                    revision: r.try_get::<i64, _>("revision")? as u64,
                    content: r.try_get("content")?,
                    saved_at: ts(r.try_get("saved_at")?)?,
                    late,
                    on_time: if late { on_time } else { None },
                })
            })
            .collect()
    }

    async fn users(&self) -> Result<Vec<UserSummary>> {
        self.console_users().await
    }

    async fn create_accounts(&self, new: Vec<NewAccount>) -> Result<Vec<User>> {
        self.console_create_accounts(new).await
    }

    async fn set_password(
        &self,
        user: &User,
        password_hash: String,
        revoke_sessions: bool,
        _actor: &User,
    ) -> Result<usize> {
        self.console_set_password(user, password_hash, revoke_sessions)
            .await
    }

    async fn edit_evaluation(
        &self,
        evaluation_id: &str,
        edit: EvaluationEdit,
        actor: &User,
    ) -> Result<Evaluation> {
        self.console_edit_evaluation(evaluation_id, edit, actor)
            .await
    }

    async fn answer_records(
        &self,
        evaluation_id: &str,
        student_id: Option<&str>,
    ) -> Result<Vec<AnswerRecord>> {
        self.console_answer_records(evaluation_id, student_id).await
    }

    async fn import_answers(
        &self,
        evaluation_id: &str,
        import: AnswerImport,
        actor: &User,
    ) -> Result<ImportReport> {
        self.console_import_answers(evaluation_id, import, actor)
            .await
    }

    async fn record_integrity(&self, student: &User, event: IntegrityEvent) -> Result<()> {
        self.integrity_record(student, event).await
    }

    async fn integrity_timeline(
        &self,
        evaluation_id: &str,
        student_id: &str,
    ) -> Result<Vec<invigil_protocol::IntegrityRecord>> {
        let mut conn = self.reader().await?;
        integrity::timeline(&mut conn, evaluation_id, student_id).await
    }

    async fn set_accommodation(
        &self,
        evaluation_id: &str,
        student: &User,
        exempt: Vec<invigil_protocol::ProctoringSetting>,
        reason: String,
        actor: &User,
    ) -> Result<invigil_protocol::Accommodation> {
        self.accommodation_set(evaluation_id, student, exempt, reason, actor)
            .await
    }

    async fn accommodations(
        &self,
        evaluation_id: &str,
    ) -> Result<Vec<invigil_protocol::Accommodation>> {
        self.accommodation_list(evaluation_id).await
    }

    /// The writer publishes a commit's events before it answers, but the hub routes them a
    /// moment later: a barrier published now is routed after every one of them.
    async fn barrier(&self) -> Result<()> {
        let (barrier, passed) = crate::live::event::Barrier::new();
        self.bus.publish([Event::Barrier(barrier)]);
        // The hub gone (shutting down) drops it: nothing is routed any more, nothing to wait for.
        let _ = passed.await;
        Ok(())
    }

    async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.jobs.send(Msg::Stop(tx)).await.is_ok() {
            let _ = rx.await;
        }
        self.read.close().await;
    }
}

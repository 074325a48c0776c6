//! The engine for several server nodes on one PostgreSQL database.
//!
//! Every operation is one transaction from a pool, at READ COMMITTED, with `synchronous_commit`
//! left on: PostgreSQL acknowledges a commit once it is flushed, and groups the flushes of
//! concurrent commits by itself. Operations that read and then write lock the rows that decide
//! first (the participation for saves, submits and unblocks; the evaluation for phase, end and
//! access changes; the user for sign-ins, revocations and presence), so that two nodes never both
//! act on the same old state; a transaction that still meets a deadlock or a serialization failure
//! is run again. Every decision is [`rules`](super::rules)'s, as on SQLite. Answer saves are the
//! exception to one transaction each: [`saves`] stores the saves that reach a node together in one
//! transaction (group commit), as SQLite's writer does.
//!
//! Several nodes share one database, so live connections must hear of changes committed anywhere:
//! each transaction stores its events, as one JSON array, in the `events` table and announces the
//! row with `pg_notify('invigil_events', id)`. Every node, the committing one included, listens,
//! and publishes the events on its own bus in notification order, which is commit order; nothing
//! is published locally any other way. If the listening connection is lost, notifications sent
//! meanwhile are lost with it: once listening again, the node publishes [`Event::Resync`], which
//! closes every local connection with 1012 so that each client reconnects to a fresh snapshot.
//! A link can also die half-open, with no error ever reported: [`feed`] has the node hear echoes
//! of its own four times every heartbeat and treats their silence as a lost connection.
//! Because events reach the hub a moment after their commit, a connection waits before it
//! registers for a barrier notification of its own to come back through the same channel: every
//! change committed before it opened is routed by then, so none reaches it after its snapshot.
//!
//! Presence is kept in the database too: a row per open student connection, on the node that
//! holds it, and a row per node with its heartbeat. A student is connected while a row of a live
//! node names a session of theirs that is not revoked. A node whose heartbeat is older than
//! 3 × its heartbeat period (at least [`MIN_EXPIRY_MS`]) is dead: its rows stop counting at once,
//! and the next live node to beat sweeps them, recording the disconnects and updating the boards.
//!
//! Every connection asks the database for TCP keepalive (`tcp_keepalives_*`, `tcp_user_timeout`):
//! probes keep an idle link open through firewalls, and the database drops a dead node's
//! connections, and the locks they held, within half a minute. (sqlx has no keepalive option for
//! its own end of the socket; the node's side of a dead link is found by the echo.)
//!
//! Lateness is judged by the database's clock when a save arrives (its group's transaction's
//! start), not the node's: nodes whose clocks disagree still judge one save alike.

use super::rows::{access, blocked_reason, opt_ts, phase, role, status, ts};
use super::rules;
use super::{
    Account, AnswerImport, AnswerRecord, Board, ConnectionChange, Counted, EvaluationEdit,
    EvaluationRecord, NewAccount, NewAnswer, NewEvaluation, Presence, SESSION_IDLE_LIMIT_MS,
    Session, SessionLookup, SignIn, SignInAttempt, Store, StudentView,
};
use crate::error::{Error, Result};
use crate::live::event::{
    Audience, Barrier, Bus, ClusterPresence, EvaluationEvent, Event, ParticipantEvent,
    ParticipantRow,
};
use anyhow::Context as _;
use async_trait::async_trait;
use invigil_protocol::{
    Access, Answer, AuditEntry, AuditKind, BlockedReason, Evaluation, ImportReport, IntegrityEvent,
    InvalidationReason, OnTime, Participation, ParticipationStatus, Phase, Question, Role, SaveAck,
    Timestamp, UpdateReason, User, UserSummary,
};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPoolOptions, PgRow};
use sqlx::{PgPool, Postgres, Row, Transaction};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The channel every node listens on.
const CHANNEL: &str = "invigil_events";
/// How a barrier's notification starts (`b:NODE:ID`); an event's is its row id.
const BARRIER: &str = "b:";
/// How long a connection waits for its barrier at most (less when the feed's window is shorter)
/// before opening anyway: the feed is then taken as lost, and a resync follows once it is back.
const BARRIER_WAIT: Duration = Duration::from_secs(5);
/// Connections in each node's pool (the listener's among them).
const POOL_SIZE: u32 = 24;
/// A transaction that meets a deadlock or a serialization failure is tried this often in all.
const ATTEMPTS: u32 = 8;
/// A session's last use is written again only after this long.
const TOUCH_EVERY_MS: i64 = 60_000;
/// Event rows are kept this long: every live node has long read them by then.
const EVENTS_KEPT_MS: i64 = 10 * 60 * 1000;
/// How long a sweep (of dead nodes, or of old events) may take before the beat goes on without
/// it: far longer than a busy database needs, but a query stuck on a dead link must not stop
/// the beats for good.
const SWEEP_LIMIT: Duration = Duration::from_secs(30);
/// How often old event rows are deleted.
const EVENTS_SWEEP_EVERY: Duration = Duration::from_secs(60);
/// A node counts as dead after three heartbeat periods of silence, but never sooner than this: a
/// node stalled for a moment (a busy machine, a slow commit) must not see its own students
/// counted as gone when its heartbeat is set very short.
const MIN_EXPIRY_MS: i64 = 3000;
/// The database's clock in milliseconds since the epoch: node liveness is judged on one clock.
const NOW_MS: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";
/// The database's clock when the transaction began, in milliseconds since the epoch: when a save
/// arrived, for the late rule.
const ARRIVED_MS: &str = "(EXTRACT(EPOCH FROM transaction_timestamp()) * 1000)::BIGINT";
/// TCP keepalive, asked of the database for every connection: the first probe after 10 s of
/// silence, then every 5 s, the link dead after 3 unanswered; data unacknowledged for 30 s ends it
/// too.
const KEEPALIVE: [(&str, &str); 4] = [
    ("tcp_keepalives_idle", "10"),
    ("tcp_keepalives_interval", "5"),
    ("tcp_keepalives_count", "3"),
    ("tcp_user_timeout", "30000"),
];

/// What a node needs in every transaction.
#[derive(Clone)]
struct Engine {
    pool: PgPool,
    /// This node's id in `nodes` and `presence`.
    node: Arc<str>,
}

/// The PostgreSQL store of one node.
pub struct PostgresStore {
    engine: Engine,
    stop: CancellationToken,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
    saves: saves::Batcher,
    barriers: Arc<Barriers>,
    feed: Arc<Feed>,
}

/// Runs `$op` (an expression using `$conn` and `$events`) in a transaction, again if it meets a
/// deadlock or a serialization failure; stores and announces its events with the commit.
macro_rules! atomically {
    ($engine:expr, |$conn:ident, $events:ident| $op:expr) => {{
        let engine: &$crate::store::postgres::Engine = $engine;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut tx = engine.pool.begin().await?;
            let mut collected: Vec<$crate::live::event::Event> = Vec::new();
            let result = {
                let $conn: &mut ::sqlx::postgres::PgConnection = &mut *tx;
                let $events: &mut Vec<$crate::live::event::Event> = &mut collected;
                $op.await
            };
            if let Some(done) =
                $crate::store::postgres::commit(tx, result, collected, attempt).await
            {
                break done;
            }
        }
    }};
}

mod accommodations;
mod console;
mod feed;
mod integrity;
mod saves;
mod throttle;

use feed::Feed;

/// Commits (with the events) or rolls back; `None` when the transaction should run again.
async fn commit<T>(
    mut tx: Transaction<'static, Postgres>,
    result: Result<T>,
    events: Vec<Event>,
    attempt: u32,
) -> Option<Result<T>> {
    let outcome = match result {
        Ok(value) => {
            let stored = announce(&mut tx, &events).await;
            match stored {
                Ok(()) => tx.commit().await.map(|()| value).map_err(Error::from),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    };
    // A failed transaction is rolled back when `tx` is dropped (or already was by the failure).
    match outcome {
        Err(e) if attempt < ATTEMPTS && retryable(&e) => {
            tracing::debug!(error = %e, attempt, "a transaction met a conflict; running it again");
            None
        }
        outcome => Some(outcome),
    }
}

/// Stores a transaction's events and announces them; they reach listeners at commit.
async fn announce(conn: &mut PgConnection, events: &[Event]) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let payload = serde_json::to_string(events).map_err(Error::internal)?;
    sqlx::query(&format!(
        "WITH e AS (INSERT INTO events (created_at, payload) VALUES ({NOW_MS}, $1::json) RETURNING id)
         SELECT pg_notify('{CHANNEL}', id::text) FROM e"
    ))
    .bind(payload)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A deadlock or a serialization failure: the transaction can simply run again.
fn retryable(error: &Error) -> bool {
    let Error::Internal(e) = error else {
        return false;
    };
    e.downcast_ref::<sqlx::Error>()
        .and_then(|e| e.as_database_error())
        .and_then(|d| d.code())
        .is_some_and(|code| code == "40001" || code == "40P01")
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

impl PostgresStore {
    /// Connects, migrates, joins the cluster (a row in `nodes`), starts listening for every node's
    /// events and starts this node's heartbeat and sweeper.
    pub async fn open(url: &str, bus: Bus, heartbeat: Duration) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(url)
            .context("while reading the PostgreSQL URL")?
            .application_name("invigil-server")
            // An acknowledged answer must survive a crash of the database server too, whatever
            // its configured default.
            .options([("synchronous_commit", "on")])
            .options(KEEPALIVE);
        let feed = Feed::new(heartbeat);
        let (taken, given_back) = (feed.clone(), feed.clone());
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(Duration::from_secs(30))
            // The feed's test instead of sqlx's ping, which waits for ever on a half-open link.
            .test_before_acquire(false)
            .before_acquire(move |conn, meta| taken.check(conn, meta))
            .after_release(move |_conn, meta| {
                let keep = !given_back.suspect(meta.age);
                Box::pin(async move { Ok(keep) })
            })
            .connect_with(options.clone())
            .await
            .context("while connecting to PostgreSQL")?;
        // The migrator holds an advisory lock, so nodes starting together migrate once.
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .context("while migrating the database")?;
        let node: Arc<str> = uuid::Uuid::new_v4().simple().to_string().into();
        let heartbeat_ms = i64::try_from(heartbeat.as_millis()).unwrap_or(i64::MAX);
        join_cluster(&pool, &node, heartbeat_ms)
            .await
            .context("while joining the cluster")?;
        // Listening before the first request is served: no event of ours can be missed.
        let listener = listen(&pool).await.context("while listening for events")?;
        let engine = Engine { pool, node };
        let stop = CancellationToken::new();
        let barriers = Arc::new(Barriers::default());
        let (saves, save_tasks) = saves::Batcher::start(&engine, &stop);
        let mut tasks = vec![
            tokio::spawn(relay(
                engine.clone(),
                listener,
                bus,
                barriers.clone(),
                feed.clone(),
                heartbeat_ms,
                stop.clone(),
            )),
            tokio::spawn(beat(
                engine.clone(),
                heartbeat,
                heartbeat_ms,
                feed.clone(),
                stop.clone(),
            )),
            tokio::spawn(feed::watch(
                feed.clone(),
                options,
                format!("{BARRIER}{}:", engine.node),
                heartbeat,
                stop.clone(),
            )),
        ];
        tasks.extend(save_tasks);
        tracing::info!(node = %engine.node, "joined the cluster");
        Ok(Self {
            engine,
            stop,
            tasks: std::sync::Mutex::new(tasks),
            saves,
            barriers,
            feed,
        })
    }

    async fn read(&self) -> Result<sqlx::pool::PoolConnection<Postgres>> {
        Ok(self.engine.pool.acquire().await?)
    }
}

async fn join_cluster(pool: &PgPool, node: &str, heartbeat_ms: i64) -> sqlx::Result<()> {
    sqlx::query(&format!(
        "INSERT INTO nodes (id, started_at, heartbeat_at, expiry_ms) VALUES ($1, {NOW_MS}, {NOW_MS}, $2)
         ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at"
    ))
    .bind(node)
    .bind(expiry_ms(heartbeat_ms))
    .execute(pool)
    .await?;
    Ok(())
}

/// How long a node's heartbeat counts: three periods, as for a socket, but never less than
/// [`MIN_EXPIRY_MS`].
fn expiry_ms(heartbeat_ms: i64) -> i64 {
    heartbeat_ms.saturating_mul(3).max(MIN_EXPIRY_MS)
}

async fn listen(pool: &PgPool) -> sqlx::Result<PgListener> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.ignore_pool_close_event(true);
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

// ---- events from every node -------------------------------------------------------------------

/// Publishes every node's events on this node's bus, in notification (= commit) order, until
/// stopped; after a lost connection, or a feed found lost (this node swept as dead included),
/// listens again on a new connection, makes sure the node is in the cluster, and asks every local
/// connection to resync.
async fn relay(
    engine: Engine,
    mut listener: PgListener,
    bus: Bus,
    barriers: Arc<Barriers>,
    feed: Arc<Feed>,
    heartbeat_ms: i64,
    stop: CancellationToken,
) {
    let pool = &engine.pool;
    loop {
        let generation = feed.generation();
        let lost = tokio::select! {
            _ = stop.cancelled() => return,
            lost = relay_until_lost(&mut listener, &bus, &engine.node, &barriers, &feed) => lost,
            () = feed.until_lost() => anyhow::anyhow!("the feed went silent"),
        };
        // Before the old connection goes back to the pool: it is closed there, not pinged.
        feed.lose(generation, "the event listener's connection failed");
        tracing::warn!(error = %lost, "lost the event listener's connection; listening again");
        listener = loop {
            let again = tokio::select! {
                _ = stop.cancelled() => return,
                again = listen(pool) => again,
            };
            match again {
                Ok(listener) => break listener,
                Err(e) => {
                    tracing::warn!(error = %e, "could not listen for events yet");
                    // A pause between attempts to reach a database that is down.
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
            }
        };
        // Clients reconnecting must be counted: the node's row is back (if it was swept) first.
        let joined = tokio::time::timeout(
            feed.window(),
            join_cluster(pool, &engine.node, heartbeat_ms),
        )
        .await;
        if !matches!(joined, Ok(Ok(()))) {
            tracing::warn!("could not rejoin the cluster at once; the next heartbeat will");
        }
        feed.renew();
        // Whatever was committed while nobody listened is unknown: every client starts over.
        bus.publish([Event::Resync]);
    }
}

/// Relays until the listener's connection fails; returns why.
async fn relay_until_lost(
    listener: &mut PgListener,
    bus: &Bus,
    node: &str,
    barriers: &Barriers,
    feed: &Feed,
) -> anyhow::Error {
    let own_barrier = format!("{BARRIER}{node}:");
    loop {
        let first = match listener.try_recv().await {
            Ok(Some(n)) => n,
            Ok(None) => return anyhow::anyhow!("the connection closed"),
            Err(e) => return e.into(),
        };
        let mut notes = vec![first.payload().to_owned()];
        // Notifications that arrived while the last batch was fetched wait in the listener.
        while notes.len() < 512 {
            match listener.next_buffered() {
                Some(n) => notes.push(n.payload().to_owned()),
                None => break,
            }
        }
        let ids: Vec<i64> = notes.iter().filter_map(|n| n.parse().ok()).collect();
        let rows: Vec<(i64, String)> = if ids.is_empty() {
            Vec::new()
        } else {
            match sqlx::query_as("SELECT id, payload::text FROM events WHERE id = ANY($1)")
                .bind(&ids)
                .fetch_all(&mut *listener)
                .await
            {
                Ok(rows) => rows,
                Err(e) => return e.into(),
            }
        };
        let mut payloads: HashMap<i64, String> = rows.into_iter().collect();
        for note in notes {
            if let Some(barrier) = note.strip_prefix(&own_barrier) {
                if let Some(echo) = barrier.strip_prefix(feed::ECHO) {
                    if let Ok(seq) = echo.parse() {
                        feed.heard(seq);
                    }
                    continue;
                }
                // Everything announced before this barrier is on the bus now: let it pass.
                if let Some(barrier) = barrier.parse().ok().and_then(|id| barriers.take(id)) {
                    bus.publish([Event::Barrier(barrier)]);
                }
                continue;
            }
            if note.starts_with(BARRIER) {
                continue; // Another node's.
            }
            let Some(payload) = note.parse().ok().and_then(|id| payloads.remove(&id)) else {
                tracing::error!(note, "an announced event row is gone; resyncing");
                bus.publish([Event::Resync]);
                continue;
            };
            match serde_json::from_str::<Vec<Event>>(&payload) {
                Ok(events) => bus.publish(events),
                Err(e) => {
                    tracing::error!(note, error = %e, "an event row could not be read; resyncing");
                    bus.publish([Event::Resync]);
                }
            }
        }
    }
}

/// The barriers this node waits for: [`Store::barrier`] announces one on the channel, after every
/// event committed before it, and the relay passes it to the hub when it arrives.
#[derive(Default)]
struct Barriers {
    next: std::sync::atomic::AtomicU64,
    waiting: std::sync::Mutex<HashMap<u64, Barrier>>,
}

impl Barriers {
    fn add(&self) -> (u64, tokio::sync::oneshot::Receiver<()>) {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (barrier, passed) = Barrier::new();
        self.lock().insert(id, barrier);
        (id, passed)
    }

    fn take(&self, id: u64) -> Option<Barrier> {
        self.lock().remove(&id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Barrier>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}

// ---- heartbeat and sweeping --------------------------------------------------------------------

/// Every heartbeat: notes that this node lives, sweeps dead nodes, and now and then old events.
async fn beat(
    engine: Engine,
    heartbeat: Duration,
    heartbeat_ms: i64,
    feed: Arc<Feed>,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(heartbeat);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut events_swept = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        // Bounded, so that work stuck on a dead link never stops the next beats (the echo finds
        // the link lost meanwhile).
        let (generation, window) = (feed.generation(), feed.window());
        let beaten = tokio::time::timeout(window, alive(&engine, heartbeat_ms)).await;
        match beaten {
            Err(_) => tracing::warn!("recording this node's heartbeat took too long"),
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => {
                // Another node took this one for dead and swept its connections: they no longer
                // count anywhere, and its feed may have missed what happened meanwhile. The feed is
                // renewed as if lost, so that every client reconnects and is counted again (once,
                // whether the silence of the echo or this finds it first).
                tracing::warn!(node = %engine.node, "this node was swept as dead; resyncing");
                feed.lose(generation, "this node was swept as dead");
            }
            Ok(Err(e)) => tracing::warn!(error = ?e, "could not record this node's heartbeat"),
        }
        match tokio::time::timeout(SWEEP_LIMIT, sweep(&engine)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = ?e, "could not sweep dead nodes"),
            Err(_) => tracing::warn!("sweeping dead nodes took too long"),
        }
        if events_swept.elapsed() >= EVENTS_SWEEP_EVERY {
            events_swept = tokio::time::Instant::now();
            let sql = format!("DELETE FROM events WHERE created_at < {NOW_MS} - $1");
            let delete = sqlx::query(&sql).bind(EVENTS_KEPT_MS).execute(&engine.pool);
            match tokio::time::timeout(SWEEP_LIMIT, delete).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "could not delete old events"),
                Err(_) => tracing::warn!("deleting old events took too long"),
            }
        }
    }
}

/// Records this node's heartbeat; `false` when its row was gone (it had been swept) and is back.
async fn alive(engine: &Engine, heartbeat_ms: i64) -> Result<bool> {
    let beat = sqlx::query(&format!(
        "UPDATE nodes SET heartbeat_at = {NOW_MS} WHERE id = $1"
    ))
    .bind(&*engine.node)
    .execute(&engine.pool)
    .await?;
    if beat.rows_affected() == 1 {
        return Ok(true);
    }
    join_cluster(&engine.pool, &engine.node, heartbeat_ms).await?;
    Ok(false)
}

/// Sweeps every dead node: deletes its presence rows and its own row, and for each student who
/// is no longer connected anywhere, records the disconnect and updates the boards. A node being
/// swept by another live node is skipped.
async fn sweep(engine: &Engine) -> Result<()> {
    atomically!(engine, |conn, events| sweep_op(conn, events, &engine.node))
}

async fn sweep_op(conn: &mut PgConnection, events: &mut Vec<Event>, me: &str) -> Result<()> {
    let dead: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT id FROM nodes WHERE heartbeat_at + expiry_ms < {NOW_MS} AND id <> $1
         ORDER BY id FOR UPDATE SKIP LOCKED"
    ))
    .bind(me)
    .fetch_all(&mut *conn)
    .await?;
    if dead.is_empty() {
        return Ok(());
    }
    // Connections of revoked sessions were no longer counted: losing them is no disconnect.
    let lost: Vec<(String, bool)> = sqlx::query_as(
        "DELETE FROM presence pr USING sessions s
         WHERE s.id = pr.session_id AND pr.node_id = ANY($1)
         RETURNING pr.user_id, s.revoked_at IS NULL",
    )
    .bind(&dead)
    .fetch_all(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM nodes WHERE id = ANY($1)")
        .bind(&dead)
        .execute(&mut *conn)
        .await?;
    tracing::info!(nodes = ?dead, connections = lost.len(), "swept dead nodes");
    // Users in a fixed order, so that two sweepers of different nodes never wait on each other.
    let users: BTreeSet<String> = lost
        .into_iter()
        .filter_map(|(user, current)| current.then_some(user))
        .collect();
    for user_id in users {
        let Some(user) = lock_user(conn, &user_id).await? else {
            continue;
        };
        if live_presence(conn, &user.id).await?.is_none() {
            became_disconnected(conn, &user, false, events).await?;
        }
    }
    Ok(())
}

// ---- row mapping -------------------------------------------------------------------------------

const USER_COLS: &str = "u.id, u.username, u.display_name, u.role";

fn user_from(row: &PgRow) -> Result<User> {
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        display_name: row.try_get("display_name")?,
        role: role(row.try_get("role")?)?,
    })
}

const EVAL_COLS: &str = "e.id AS e_id, e.title, e.phase, e.ends_at, e.access, o.username AS owner, \
                         e.questions::text AS questions, e.owner_id, e.proctoring::text AS proctoring";
const EVAL_FROM: &str = "evaluations e JOIN users o ON o.id = e.owner_id";

fn evaluation_from(row: &PgRow) -> Result<EvaluationRecord> {
    let questions: String = row.try_get("questions")?;
    let questions: Vec<Question> = serde_json::from_str(&questions)
        .map_err(|e| Error::internal(format!("stored questions are not valid: {e}")))?;
    Ok(EvaluationRecord {
        evaluation: Evaluation {
            id: row.try_get("e_id")?,
            title: row.try_get("title")?,
            phase: phase(row.try_get("phase")?)?,
            ends_at: opt_ts(row.try_get("ends_at")?)?,
            access: access(row.try_get("access")?),
            owner: row.try_get("owner")?,
            questions,
            proctoring: super::integrity::parse_proctoring(row.try_get("proctoring")?)?,
        },
        owner_id: row.try_get("owner_id")?,
    })
}

async fn load_evaluation(conn: &mut PgConnection, id: &str) -> Result<Option<EvaluationRecord>> {
    let row = sqlx::query(&format!(
        "SELECT {EVAL_COLS} FROM {EVAL_FROM} WHERE e.id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(evaluation_from).transpose()
}

async fn must_evaluation(conn: &mut PgConnection, id: &str) -> Result<EvaluationRecord> {
    load_evaluation(conn, id)
        .await?
        .ok_or_else(|| Error::not_found(format!("There is no evaluation `{id}`.")))
}

/// The evaluation, locked until the end of the transaction: changes to it run one at a time.
async fn lock_evaluation(conn: &mut PgConnection, id: &str) -> Result<EvaluationRecord> {
    let found: Option<String> =
        sqlx::query_scalar("SELECT id FROM evaluations WHERE id = $1 FOR NO KEY UPDATE")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    if found.is_none() {
        return Err(Error::not_found(format!("There is no evaluation `{id}`.")));
    }
    must_evaluation(conn, id).await
}

/// A student's participation row, locked until the end of the transaction (when there is one):
/// saves, submits, blocks and unblocks of one participation run one at a time.
async fn lock_participation(
    conn: &mut PgConnection,
    evaluation_id: &str,
    user_id: &str,
) -> Result<()> {
    sqlx::query(
        "SELECT 1 FROM participations WHERE evaluation_id = $1 AND user_id = $2 FOR NO KEY UPDATE",
    )
    .bind(evaluation_id)
    .bind(user_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(())
}

/// The user, locked until the end of the transaction: a user's sign-ins, revocations and
/// connection changes run one at a time across every node.
async fn lock_user(conn: &mut PgConnection, user_id: &str) -> Result<Option<User>> {
    let row = sqlx::query(&format!(
        "SELECT {USER_COLS} FROM users u WHERE u.id = $1 FOR NO KEY UPDATE"
    ))
    .bind(user_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(user_from).transpose()
}

/// The participation of one student (eligible or not) in a loaded evaluation.
async fn load_participation(
    conn: &mut PgConnection,
    evaluation: &Evaluation,
    student: &User,
) -> Result<Participation> {
    let row = sqlx::query(
        "SELECT EXISTS (SELECT 1 FROM access_list WHERE evaluation_id = $1 AND user_id = $2) AS on_list,
                (SELECT status FROM participations WHERE evaluation_id = $1 AND user_id = $2) AS status,
                (SELECT blocked_reason FROM participations WHERE evaluation_id = $1 AND user_id = $2) AS reason,
                (SELECT exempt FROM accommodations WHERE evaluation_id = $1 AND user_id = $2) AS exempt",
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

/// The live presence rows of a user: connections of sessions that are not revoked, on nodes whose
/// heartbeat is recent. `$1` is the user id column or parameter.
fn live_rows(user: &str) -> String {
    format!(
        "FROM presence pr
         JOIN sessions ps ON ps.id = pr.session_id AND ps.revoked_at IS NULL
         JOIN nodes n ON n.id = pr.node_id AND n.heartbeat_at + n.expiry_ms >= {NOW_MS}
         WHERE pr.user_id = {user}"
    )
}

/// When a live node last vouched for one of the user's connections; `None` when they have none.
async fn live_presence(conn: &mut PgConnection, user_id: &str) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar(&format!(
        "SELECT MAX(GREATEST(pr.opened_at, n.heartbeat_at)) {}",
        live_rows("$1")
    ))
    .bind(user_id)
    .fetch_one(&mut *conn)
    .await?)
}

fn row_select() -> String {
    format!(
        "SELECT u.id, u.username, u.display_name, p.status, p.blocked_reason, u.last_seen_at,
            (SELECT COUNT(*) FROM answers a WHERE a.evaluation_id = $1 AND a.user_id = u.id) AS answered,
            (SELECT COUNT(*) FROM answers a WHERE a.evaluation_id = $1 AND a.user_id = u.id AND a.late) AS late_answers,
            (SELECT x.exempt FROM accommodations x WHERE x.evaluation_id = $1 AND x.user_id = u.id) AS exempt,
            (SELECT MAX(GREATEST(pr.opened_at, n.heartbeat_at)) {}) AS live_seen
         FROM users u LEFT JOIN participations p ON p.evaluation_id = $1 AND p.user_id = u.id",
        live_rows("u.id")
    )
}

fn participant_row_from(row: &PgRow) -> Result<ParticipantRow> {
    let answered: i64 = row.try_get("answered")?;
    let last_seen = opt_ts(row.try_get("last_seen_at")?)?;
    let live_seen = opt_ts(row.try_get("live_seen")?)?;
    Ok(ParticipantRow {
        user_id: row.try_get("id")?,
        username: row.try_get("username")?,
        display_name: row.try_get("display_name")?,
        status: status(row.try_get("status")?)?,
        blocked_reason: blocked_reason(row.try_get("blocked_reason")?),
        last_seen,
        answered: u32::try_from(answered).unwrap_or(u32::MAX),
        late_answers: u32::try_from(row.try_get::<i64, _>("late_answers")?).unwrap_or(u32::MAX),
        integrity: Default::default(),
        proctoring_exempt: super::accommodations::parse_exempt(
            row.try_get::<Option<String>, _>("exempt")?.as_deref(),
        )?,
        presence: Some(ClusterPresence {
            connected: live_seen.is_some(),
            last_seen: live_seen.or(last_seen),
        }),
    })
}

async fn participant_row(
    conn: &mut PgConnection,
    evaluation_id: &str,
    user_id: &str,
) -> Result<ParticipantRow> {
    let row = sqlx::query(&format!("{} WHERE u.id = $2", row_select()))
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
    conn: &mut PgConnection,
    evaluation: &Evaluation,
) -> Result<Vec<ParticipantRow>> {
    // The participants are the students on the list (for a list evaluation) and all who joined.
    let listed = if evaluation.access == Access::List {
        "SELECT user_id FROM access_list WHERE evaluation_id = $1 UNION "
    } else {
        ""
    };
    let rows = sqlx::query(&format!(
        "{} WHERE u.id IN ({listed}SELECT user_id FROM participations WHERE evaluation_id = $1)
         ORDER BY u.username",
        row_select()
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
async fn audience(conn: &mut PgConnection, evaluation: &Evaluation) -> Result<Audience> {
    if evaluation.access == Access::Open {
        return Ok(Audience::AllStudents);
    }
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT user_id FROM access_list WHERE evaluation_id = $1")
            .bind(&evaluation.id)
            .fetch_all(&mut *conn)
            .await?;
    Ok(Audience::Students(ids.into_iter().collect()))
}

async fn audit(
    conn: &mut PgConnection,
    evaluation_id: &str,
    kind: AuditKind,
    username: Option<&str>,
    actor: Option<&str>,
    detail: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit (evaluation_id, at, kind, username, actor, detail) VALUES ($1, $2, $3, $4, $5, $6)",
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
    conn: &mut PgConnection,
    user_id: &str,
) -> Result<Vec<(String, ParticipationStatus)>> {
    let rows = sqlx::query(
        "SELECT p.evaluation_id, p.status FROM participations p JOIN evaluations e ON e.id = p.evaluation_id
         WHERE p.user_id = $1 AND e.phase = 'in_progress' AND p.status IN ('in_progress', 'blocked')
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
    conn: &mut PgConnection,
    user_id: &str,
    events: &mut Vec<Event>,
) -> Result<()> {
    let rows = sqlx::query(
        "SELECT e.id, e.owner_id FROM evaluations e WHERE e.phase <> 'finished' AND (
             EXISTS (SELECT 1 FROM participations p WHERE p.evaluation_id = e.id AND p.user_id = $1)
             OR (e.access = 'list' AND EXISTS (SELECT 1 FROM access_list a WHERE a.evaluation_id = e.id AND a.user_id = $1)))
         ORDER BY e.id",
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
    conn: &mut PgConnection,
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
/// The caller holds the user's lock.
async fn revoke(
    conn: &mut PgConnection,
    user: &User,
    only: Option<&str>,
    keep: Option<&str>,
    reason: InvalidationReason,
    events: &mut Vec<Event>,
) -> Result<Vec<String>> {
    let now = Timestamp::now().unix_ms();
    let ids: Vec<String> = sqlx::query_scalar(
        "UPDATE sessions SET revoked_at = $2, revoked_reason = $3
         WHERE user_id = $1 AND revoked_at IS NULL AND ($4::TEXT IS NULL OR id = $4)
           AND ($5::TEXT IS NULL OR id <> $5)
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
        // The boards must show that the revoked session's connections no longer count (they are
        // computed here, after the revocation, so they already do).
        board_events(conn, &user.id, events).await?;
    }
    Ok(ids)
}

/// A student is no longer connected anywhere: note when they were last heard, record the loss
/// (unless it is `quiet`) and update the boards.
async fn became_disconnected(
    conn: &mut PgConnection,
    user: &User,
    quiet: bool,
    events: &mut Vec<Event>,
) -> Result<()> {
    sqlx::query("UPDATE users SET last_seen_at = $2 WHERE id = $1")
        .bind(&user.id)
        .bind(Timestamp::now().unix_ms())
        .execute(&mut *conn)
        .await?;
    if !quiet {
        for (evaluation_id, _) in sitting(conn, &user.id).await? {
            audit(
                conn,
                &evaluation_id,
                AuditKind::Disconnected,
                Some(&user.username),
                None,
                rules::DISCONNECTED_DETAIL,
            )
            .await?;
        }
    }
    board_events(conn, &user.id, events).await
}

// ---- operations --------------------------------------------------------------------------------

async fn create_account_op(conn: &mut PgConnection, new: &NewAccount) -> Result<User> {
    let result = sqlx::query(
        "INSERT INTO users (id, username, display_name, role, password_hash, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
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
            id: new.id.clone(),
            username: new.username.clone(),
            display_name: new.display_name.clone(),
            role: new.role,
        }),
    }
}

async fn sign_in_op(
    conn: &mut PgConnection,
    events: &mut Vec<Event>,
    sign_in: &SignIn,
) -> Result<Vec<String>> {
    let now = Timestamp::now().unix_ms();
    let user = &sign_in.user;
    lock_user(conn, &user.id).await?;
    sqlx::query(
        "INSERT INTO sessions (id, user_id, token_hash, device, created_at, last_used_at)
         VALUES ($1, $2, $3, $4, $5, $5)",
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
        audit(
            conn,
            evaluation_id,
            AuditKind::SignedIn,
            Some(&user.username),
            Some(&user.username),
            &detail,
        )
        .await?;
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
    for (evaluation_id, _) in sitting {
        lock_participation(conn, &evaluation_id, &user.id).await?;
        // Read again under the lock: a submit may have just committed.
        let blocked = sqlx::query(
            "UPDATE participations SET status = 'blocked', blocked_reason = $3, updated_at = $4
             WHERE evaluation_id = $1 AND user_id = $2 AND status = 'in_progress'",
        )
        .bind(&evaluation_id)
        .bind(&user.id)
        .bind(BlockedReason::SecondSignIn.as_str())
        .bind(now)
        .execute(&mut *conn)
        .await?;
        if blocked.rows_affected() == 0 {
            continue;
        }
        audit(
            conn,
            &evaluation_id,
            AuditKind::Blocked,
            Some(&user.username),
            None,
            rules::SECOND_SIGN_IN_DETAIL,
        )
        .await?;
        let record = must_evaluation(conn, &evaluation_id).await?;
        participation_events(conn, &record, user, UpdateReason::Blocked, &mut blocks).await?;
    }
    events.extend(rules::sign_in_events(blocks, revocation));
    Ok(revoked)
}

async fn revoke_op(
    conn: &mut PgConnection,
    events: &mut Vec<Event>,
    user: &User,
    only: Option<&str>,
    reason: InvalidationReason,
) -> Result<usize> {
    lock_user(conn, &user.id).await?;
    Ok(revoke(conn, user, only, None, reason, events).await?.len())
}

async fn presence_op(
    conn: &mut PgConnection,
    events: &mut Vec<Event>,
    node: &str,
    session: &Session,
    change: ConnectionChange,
) -> Result<()> {
    let user = &session.user;
    lock_user(conn, &user.id).await?;
    let was = live_presence(conn, &user.id).await?.is_some();
    let connection = i64::try_from(change.connection).map_err(Error::internal)?;
    match change.presence {
        Presence::Connected => {
            sqlx::query(&format!(
                "INSERT INTO presence (node_id, connection, session_id, user_id, opened_at)
                 VALUES ($1, $2, $3, $4, {NOW_MS}) ON CONFLICT (node_id, connection) DO NOTHING"
            ))
            .bind(node)
            .bind(connection)
            .bind(&session.id)
            .bind(&user.id)
            .execute(&mut *conn)
            .await?;
        }
        Presence::Disconnected => {
            sqlx::query("DELETE FROM presence WHERE node_id = $1 AND connection = $2")
                .bind(node)
                .bind(connection)
                .execute(&mut *conn)
                .await?;
        }
    }
    let now = live_presence(conn, &user.id).await?.is_some();
    match (was, now) {
        (false, true) => {
            let before: Option<bool> =
                sqlx::query_scalar("SELECT connected_before FROM sessions WHERE id = $1")
                    .bind(&session.id)
                    .fetch_optional(&mut *conn)
                    .await?;
            sqlx::query("UPDATE sessions SET connected_before = TRUE WHERE id = $1")
                .bind(&session.id)
                .execute(&mut *conn)
                .await?;
            if before == Some(true) {
                for (evaluation_id, _) in sitting(conn, &user.id).await? {
                    audit(
                        conn,
                        &evaluation_id,
                        AuditKind::Reconnected,
                        Some(&user.username),
                        None,
                        rules::RECONNECTED_DETAIL,
                    )
                    .await?;
                }
            }
            board_events(conn, &user.id, events).await
        }
        (true, false) => became_disconnected(conn, user, change.quiet, events).await,
        _ => Ok(()),
    }
}

async fn create_evaluation_op(
    conn: &mut PgConnection,
    events: &mut Vec<Event>,
    owner: &User,
    new: &NewEvaluation,
) -> Result<Evaluation> {
    let questions = serde_json::to_string(&new.questions).map_err(Error::internal)?;
    sqlx::query(
        "INSERT INTO evaluations (id, title, phase, ends_at, access, owner_id, questions, created_at, proctoring)
         VALUES ($1, $2, 'draft', $3, $4, $5, $6::jsonb, $7, $8::jsonb)",
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
        id: new.id.clone(),
        title: new.title.clone(),
        phase: Phase::Draft,
        ends_at: new.ends_at,
        access: new.access,
        owner: owner.username.clone(),
        questions: new.questions.clone(),
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
}

async fn set_phase_op(
    conn: &mut PgConnection,
    events: &mut Vec<Event>,
    id: &str,
    to: Phase,
    actor: &User,
) -> Result<Evaluation> {
    let mut record = lock_evaluation(conn, id).await?;
    rules::check_owner_or_admin(&record.owner_id, actor)?;
    let from = record.evaluation.phase;
    rules::check_transition(from, to)?;
    sqlx::query("UPDATE evaluations SET phase = $2 WHERE id = $1")
        .bind(id)
        .bind(to.as_str())
        .execute(&mut *conn)
        .await?;
    console::record_phase(conn, id, to).await?;
    audit(
        conn,
        id,
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
}

async fn set_ends_at_op(
    conn: &mut PgConnection,
    events: &mut Vec<Event>,
    id: &str,
    ends_at: Option<Timestamp>,
    actor: &User,
) -> Result<Evaluation> {
    let mut record = lock_evaluation(conn, id).await?;
    rules::check_owner_or_admin(&record.owner_id, actor)?;
    sqlx::query("UPDATE evaluations SET ends_at = $2 WHERE id = $1")
        .bind(id)
        .bind(ends_at.map(Timestamp::unix_ms))
        .execute(&mut *conn)
        .await?;
    let detail = rules::ends_at_detail(record.evaluation.ends_at, ends_at);
    audit(
        conn,
        id,
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
}

async fn set_access_list_op(
    conn: &mut PgConnection,
    events: &mut Vec<Event>,
    id: &str,
    students: &[User],
    actor: &User,
) -> Result<Vec<String>> {
    let record = lock_evaluation(conn, id).await?;
    rules::check_owner_or_admin(&record.owner_id, actor)?;
    let old: HashSet<String> =
        sqlx::query_scalar("SELECT user_id FROM access_list WHERE evaluation_id = $1")
            .bind(id)
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .collect();
    let new: HashMap<&str, &User> = students.iter().map(|u| (u.id.as_str(), u)).collect();
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
    // Each change is one statement, whatever the number of students: the ids go in as one array
    // (one bound value, so no bind limit), in order, for the audit's.
    let added_ids: Vec<&str> = added.iter().map(|u| u.id.as_str()).collect();
    let now = Timestamp::now().unix_ms();
    sqlx::query(
        "INSERT INTO access_list (evaluation_id, user_id) SELECT $1, u FROM unnest($2::text[]) AS u",
    )
    .bind(id)
    .bind(&added_ids)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM access_list WHERE evaluation_id = $1 AND user_id = ANY($2)")
        .bind(id)
        .bind(&removed)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO audit (evaluation_id, at, kind, username, actor, detail)
         SELECT $1, $2, $3, u.username, $4, CASE c.change WHEN 0 THEN 'Added to the access list.'
                                                   ELSE 'Removed from the access list.' END
         FROM (SELECT 0 AS change, n, user_id FROM unnest($5::text[]) WITH ORDINALITY AS a (user_id, n)
               UNION ALL
               SELECT 1, n, user_id FROM unnest($6::text[]) WITH ORDINALITY AS r (user_id, n)) c
         JOIN users u ON u.id = c.user_id
         ORDER BY c.change, c.n",
    )
    .bind(id)
    .bind(now)
    .bind(AuditKind::AccessChanged.as_str())
    .bind(&actor.username)
    .bind(&added_ids)
    .bind(&removed)
    .execute(&mut *conn)
    .await?;
    let removed_users: Vec<User> = sqlx::query(&format!(
        "SELECT {USER_COLS} FROM users u
         JOIN unnest($1::text[]) WITH ORDINALITY AS r (user_id, n) ON u.id = r.user_id ORDER BY r.n"
    ))
    .bind(&removed)
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
        for user in added_ids {
            let row = participant_row(conn, id, user).await?;
            events.push(Event::Participant(ParticipantEvent {
                evaluation_id: id.to_owned(),
                owner_id: record.owner_id.clone(),
                row,
            }));
        }
        // Those who never joined are participants no more.
        for user in &removed_users {
            if !console::joined(conn, id, &user.id).await? {
                events.push(Event::ParticipantRemoved {
                    evaluation_id: id.to_owned(),
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
}

async fn join_op(
    conn: &mut PgConnection,
    events: &mut Vec<Event>,
    id: &str,
    student: &User,
) -> Result<Participation> {
    let record = must_evaluation(conn, id).await?;
    let current = load_participation(conn, &record.evaluation, student).await?;
    if !current.access {
        // Not eligible: the evaluation is hidden from this student.
        return Err(rules::reject_error(
            invigil_protocol::RejectCode::NotOnAccessList,
        ));
    }
    match rules::decide_join(current.access, record.evaluation.phase, current.status)? {
        rules::Join::Already => Ok(current),
        rules::Join::Start => {
            let now = Timestamp::now().unix_ms();
            let inserted = sqlx::query(
                "INSERT INTO participations (evaluation_id, user_id, status, joined_at, updated_at)
                 VALUES ($1, $2, 'in_progress', $3, $3) ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(&student.id)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            if inserted.rows_affected() == 0 {
                // A join of the same student on another node committed first: decide again on
                // what it wrote (this statement saw it).
                let current = load_participation(conn, &record.evaluation, student).await?;
                rules::decide_join(current.access, record.evaluation.phase, current.status)?;
                return Ok(current);
            }
            audit(
                conn,
                id,
                AuditKind::Joined,
                Some(&student.username),
                Some(&student.username),
                "Joined the evaluation.",
            )
            .await?;
            participation_events(conn, &record, student, UpdateReason::StatusChanged, events).await
        }
    }
}

async fn submit_op(
    conn: &mut PgConnection,
    events: &mut Vec<Event>,
    id: &str,
    student: &User,
) -> Result<Participation> {
    let record = must_evaluation(conn, id).await?;
    lock_participation(conn, id, &student.id).await?;
    let current = load_participation(conn, &record.evaluation, student).await?;
    if !rules::decide_submit(current.status)? {
        return Ok(current);
    }
    sqlx::query(
        "UPDATE participations SET status = 'submitted', updated_at = $3 WHERE evaluation_id = $1 AND user_id = $2",
    )
    .bind(id)
    .bind(&student.id)
    .bind(Timestamp::now().unix_ms())
    .execute(&mut *conn)
    .await?;
    audit(
        conn,
        id,
        AuditKind::Submitted,
        Some(&student.username),
        Some(&student.username),
        "Submitted the evaluation.",
    )
    .await?;
    participation_events(conn, &record, student, UpdateReason::StatusChanged, events).await
}

async fn unblock_op(
    conn: &mut PgConnection,
    events: &mut Vec<Event>,
    id: &str,
    username: &str,
    note: Option<&str>,
    actor: &User,
) -> Result<Participation> {
    let record = must_evaluation(conn, id).await?;
    rules::check_owner_or_admin(&record.owner_id, actor)?;
    let row = sqlx::query(&format!(
        "SELECT {USER_COLS}, p.status FROM users u
         JOIN participations p ON p.user_id = u.id AND p.evaluation_id = $1
         WHERE u.username = $2 AND u.role = 'student'
         FOR NO KEY UPDATE OF p"
    ))
    .bind(id)
    .bind(username)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| {
        Error::not_found(format!(
            "No student `{username}` takes part in this evaluation."
        ))
    })?;
    let student = user_from(&row)?;
    if status(row.try_get("status")?)? != ParticipationStatus::Blocked {
        return Err(Error::conflict(format!("`{username}` is not blocked.")));
    }
    sqlx::query(
        "UPDATE participations SET status = 'in_progress', blocked_reason = NULL, updated_at = $3
         WHERE evaluation_id = $1 AND user_id = $2",
    )
    .bind(id)
    .bind(&student.id)
    .bind(Timestamp::now().unix_ms())
    .execute(&mut *conn)
    .await?;
    let detail = rules::unblock_detail(&actor.username, note);
    audit(
        conn,
        id,
        AuditKind::Unblocked,
        Some(&student.username),
        Some(&actor.username),
        &detail,
    )
    .await?;
    participation_events(conn, &record, &student, UpdateReason::Unblocked, events).await
}

#[async_trait]
impl Store for PostgresStore {
    async fn create_account(&self, new: NewAccount) -> Result<User> {
        atomically!(&self.engine, |conn, _events| create_account_op(conn, &new))
    }

    async fn account(&self, username: &str) -> Result<Option<Account>> {
        let mut conn = self.read().await?;
        let row = sqlx::query(&format!(
            "SELECT {USER_COLS}, u.password_hash FROM users u WHERE u.username = $1"
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
        let mut conn = self.read().await?;
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLS} FROM users u WHERE u.username = ANY($1)"
        ))
        .bind(usernames)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(user_from).collect()
    }

    async fn sign_in(&self, sign_in: SignIn) -> Result<Vec<String>> {
        atomically!(&self.engine, |conn, events| sign_in_op(
            conn, events, &sign_in
        ))
    }

    async fn session(&self, token_hash: &str) -> Result<SessionLookup> {
        let row = {
            let mut conn = self.read().await?;
            sqlx::query(&format!(
                "SELECT s.id AS session_id, s.last_used_at, s.revoked_at, s.revoked_reason, {USER_COLS}
                 FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1"
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
            sqlx::query(
                "UPDATE sessions SET last_used_at = $2 WHERE id = $1 AND last_used_at < $2",
            )
            .bind(&session.id)
            .bind(now)
            .execute(&self.engine.pool)
            .await?;
        }
        Ok(SessionLookup::Active(session))
    }

    async fn revoke_session(&self, session: &Session, reason: InvalidationReason) -> Result<()> {
        atomically!(&self.engine, |conn, events| revoke_op(
            conn,
            events,
            &session.user,
            Some(&session.id),
            reason
        ))?;
        Ok(())
    }

    async fn revoke_user(
        &self,
        user: &User,
        reason: InvalidationReason,
        _actor: &User,
    ) -> Result<usize> {
        atomically!(&self.engine, |conn, events| revoke_op(
            conn, events, user, None, reason
        ))
    }

    async fn presence(&self, session: &Session, change: ConnectionChange) -> Result<()> {
        // Every connection is recorded: whether a student is connected is the whole cluster's
        // question, and the transitions are found here, under the student's lock.
        if session.user.role != Role::Student {
            return Ok(());
        }
        let node = self.engine.node.clone();
        atomically!(&self.engine, |conn, events| presence_op(
            conn, events, &node, session, change
        ))
    }

    async fn create_evaluation(&self, owner: &User, new: NewEvaluation) -> Result<Evaluation> {
        atomically!(&self.engine, |conn, events| create_evaluation_op(
            conn, events, owner, &new
        ))
    }

    async fn evaluation(&self, id: &str) -> Result<Option<EvaluationRecord>> {
        let mut conn = self.read().await?;
        load_evaluation(&mut conn, id).await
    }

    async fn evaluations(&self) -> Result<Vec<Evaluation>> {
        let mut conn = self.read().await?;
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
        let mut conn = self.read().await?;
        let rows = sqlx::query(&format!(
            "SELECT {EVAL_COLS}, p.status AS p_status, p.blocked_reason AS p_reason,
               (SELECT x.exempt FROM accommodations x WHERE x.evaluation_id = e.id AND x.user_id = $1) AS exempt
             FROM {EVAL_FROM}
             LEFT JOIN participations p ON p.evaluation_id = e.id AND p.user_id = $1
             WHERE e.access = 'open' OR EXISTS (SELECT 1 FROM access_list a WHERE a.evaluation_id = e.id AND a.user_id = $1)
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
        let mut conn = self.read().await?;
        let Some(record) = load_evaluation(&mut conn, evaluation_id).await? else {
            return Ok(None);
        };
        Ok(Some(
            load_participation(&mut conn, &record.evaluation, student).await?,
        ))
    }

    async fn set_phase(&self, evaluation_id: &str, to: Phase, actor: &User) -> Result<Evaluation> {
        atomically!(&self.engine, |conn, events| set_phase_op(
            conn,
            events,
            evaluation_id,
            to,
            actor
        ))
    }

    async fn set_ends_at(
        &self,
        evaluation_id: &str,
        ends_at: Option<Timestamp>,
        actor: &User,
    ) -> Result<Evaluation> {
        atomically!(&self.engine, |conn, events| set_ends_at_op(
            conn,
            events,
            evaluation_id,
            ends_at,
            actor
        ))
    }

    async fn set_access_list(
        &self,
        evaluation_id: &str,
        students: &[User],
        actor: &User,
    ) -> Result<Vec<String>> {
        atomically!(&self.engine, |conn, events| set_access_list_op(
            conn,
            events,
            evaluation_id,
            students,
            actor
        ))
    }

    async fn access_list(&self, evaluation_id: &str) -> Result<Vec<String>> {
        let mut conn = self.read().await?;
        Ok(sqlx::query_scalar(
            "SELECT u.username FROM access_list a JOIN users u ON u.id = a.user_id
             WHERE a.evaluation_id = $1 ORDER BY u.username",
        )
        .bind(evaluation_id)
        .fetch_all(&mut *conn)
        .await?)
    }

    async fn join(&self, evaluation_id: &str, student: &User) -> Result<Participation> {
        atomically!(&self.engine, |conn, events| join_op(
            conn,
            events,
            evaluation_id,
            student
        ))
    }

    async fn submit(&self, evaluation_id: &str, student: &User) -> Result<Participation> {
        atomically!(&self.engine, |conn, events| submit_op(
            conn,
            events,
            evaluation_id,
            student
        ))
    }

    async fn unblock(
        &self,
        evaluation_id: &str,
        username: &str,
        note: Option<String>,
        actor: &User,
    ) -> Result<Participation> {
        atomically!(&self.engine, |conn, events| unblock_op(
            conn,
            events,
            evaluation_id,
            username,
            note.as_deref(),
            actor
        ))
    }

    async fn participants(&self, evaluation_id: &str) -> Result<Vec<ParticipantRow>> {
        let mut conn = self.read().await?;
        let record = must_evaluation(&mut conn, evaluation_id).await?;
        participant_rows(&mut conn, &record.evaluation).await
    }

    async fn boards(&self, staff: &User) -> Result<Vec<Board>> {
        let mut conn = self.read().await?;
        let rows = match staff.role {
            Role::Admin => {
                sqlx::query(&format!(
                    "SELECT {EVAL_COLS} FROM {EVAL_FROM} WHERE e.phase = 'in_progress'
                     ORDER BY e.created_at, e.id"
                ))
                .fetch_all(&mut *conn)
                .await?
            }
            _ => {
                sqlx::query(&format!(
                    "SELECT {EVAL_COLS} FROM {EVAL_FROM} WHERE e.owner_id = $1
                     ORDER BY e.created_at, e.id"
                ))
                .bind(&staff.id)
                .fetch_all(&mut *conn)
                .await?
            }
        };
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
        let mut conn = self.read().await?;
        let rows = sqlx::query(
            "SELECT at, kind, username, actor, detail FROM audit WHERE evaluation_id = $1 ORDER BY id",
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
        self.saves.save(student, answer).await
    }

    async fn answers(&self, evaluation_id: &str, student_id: &str) -> Result<Vec<Answer>> {
        let mut conn = self.read().await?;
        let rows = sqlx::query(
            "SELECT question_id, revision, content, saved_at, late, on_time_revision, on_time_content, on_time_saved_at
             FROM answers WHERE evaluation_id = $1 AND user_id = $2 ORDER BY question_id",
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
        self.console_create_accounts(&new).await
    }

    async fn set_password(
        &self,
        user: &User,
        password_hash: String,
        revoke_sessions: bool,
        _actor: &User,
    ) -> Result<usize> {
        self.console_set_password(user, &password_hash, revoke_sessions)
            .await
    }

    async fn edit_evaluation(
        &self,
        evaluation_id: &str,
        edit: EvaluationEdit,
        actor: &User,
    ) -> Result<Evaluation> {
        self.console_edit_evaluation(evaluation_id, &edit, actor)
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
        self.console_import_answers(evaluation_id, &import, actor)
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
        let mut conn = self.read().await?;
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

    async fn count_sign_in(&self, attempt: &SignInAttempt<'_>) -> Result<Option<Counted>> {
        self.throttle_count(attempt).await.map(Some)
    }

    async fn uncount_sign_in(&self, id: i64) -> Result<()> {
        self.throttle_uncount(id).await
    }

    async fn socket_opened(&self, session_id: &str, node: &str, connection: u64) -> Result<()> {
        let mut tx = self.engine.pool.begin().await?;
        let opened = Event::SocketOpened {
            session_id: session_id.to_owned(),
            node: node.to_owned(),
            connection,
        };
        announce(&mut tx, &[opened]).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn barrier(&self) -> Result<()> {
        let (id, passed) = self.barriers.add();
        let generation = self.feed.generation();
        let announce = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(format!("{BARRIER}{}:{id}", self.engine.node))
            .execute(&self.engine.pool);
        let announced = match tokio::time::timeout(BARRIER_WAIT, announce).await {
            Ok(announced) => announced,
            Err(_) => {
                self.barriers.take(id);
                tracing::warn!("a barrier could not be sent in time; opening anyway");
                return Ok(());
            }
        };
        if let Err(e) = announced {
            self.barriers.take(id);
            return Err(e.into());
        }
        // A barrier sent that does not come back in time means the feed is lost: the relay
        // listens again and every connection, this one included, is asked to reconnect.
        let limit = BARRIER_WAIT.min(self.feed.window());
        let came_back = self
            .feed
            .bounded(
                generation,
                limit,
                "a barrier did not come back in time",
                passed,
            )
            .await;
        if came_back.is_none() {
            self.barriers.take(id);
            tracing::warn!("earlier changes were not heard of in time; opening anyway");
        }
        Ok(())
    }

    async fn close(&self) {
        // Every connection has closed by now (and removed its presence row); leave the cluster
        // so that no other node waits for this one's heartbeat to expire.
        self.stop.cancel();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for task in tasks {
            let _ = task.await;
        }
        let left = async {
            sqlx::query("DELETE FROM presence WHERE node_id = $1")
                .bind(&*self.engine.node)
                .execute(&self.engine.pool)
                .await?;
            sqlx::query("DELETE FROM nodes WHERE id = $1")
                .bind(&*self.engine.node)
                .execute(&self.engine.pool)
                .await
        };
        if let Err(e) = left.await {
            tracing::warn!(error = %e, "could not leave the cluster cleanly");
        }
        self.engine.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_expires_after_three_heartbeats_but_never_sooner_than_the_floor() {
        assert_eq!(expiry_ms(5000), 15_000);
        assert_eq!(expiry_ms(100), MIN_EXPIRY_MS);
        assert_eq!(expiry_ms(i64::MAX), i64::MAX);
    }

    #[test]
    fn events_round_trip_through_their_stored_json() {
        let events = vec![
            Event::Revoked {
                user_id: "u1".into(),
                session_ids: vec!["s1".into()],
                reason: InvalidationReason::SignedInElsewhere,
            },
            Event::Resync,
        ];
        let json = serde_json::to_string(&events).unwrap();
        let back: Vec<Event> = serde_json::from_str(&json).unwrap();
        assert_eq!(format!("{back:?}"), format!("{events:?}"));
    }
}

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

use super::participants::board_events;
use super::rules;
use super::sessions::audit_sitting;
use super::tx::{Lock, Read, Tx, Write};
use super::{ConnectionChange, Counted, NewAnswer, Presence, Session, SignInAttempt};
use crate::error::{Error, Result};
use crate::live::event::{Barrier, Bus, Event};
use anyhow::Context as _;
use async_trait::async_trait;
use invigil_protocol::{AuditKind, Role, SaveAck, Timestamp, User};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};
use std::collections::{BTreeSet, HashMap};
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

mod feed;
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
        Err(e) if attempt < ATTEMPTS && super::tx::is_retryable(&e) => {
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

// ---- what the engine's own modules share with the operations ------------------------------------

/// The user, locked until the end of the transaction: a user's sign-ins, revocations and
/// connection changes run one at a time across every node.
async fn lock_user(conn: &mut PgConnection, user_id: &str) -> Result<Option<User>> {
    Tx::lock(conn, Lock::User(user_id)).await?;
    super::sessions::user_by_id(conn, user_id).await
}

/// The live presence rows of a user: connections of sessions that are not revoked, on nodes whose
/// heartbeat is recent. `$1` is the user id column or parameter.
pub(super) fn live_rows(user: &str) -> String {
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
        let detail = rules::DISCONNECTED_DETAIL;
        audit_sitting(conn, user, AuditKind::Disconnected, None, detail).await?;
    }
    board_events(conn, &user.id, events).await
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
                let detail = rules::RECONNECTED_DETAIL;
                audit_sitting(conn, user, AuditKind::Reconnected, None, detail).await?;
            }
            board_events(conn, &user.id, events).await
        }
        (true, false) => became_disconnected(conn, user, change.quiet, events).await,
        _ => Ok(()),
    }
}

#[async_trait]
impl super::tx::Engine for PostgresStore {
    async fn write<A, T>(&self, args: A, op: Write<A, T>) -> Result<T>
    where
        A: Send + Sync + 'static,
        T: Send + 'static,
    {
        atomically!(&self.engine, |conn, events| op(conn, events, &args))
    }

    async fn read<A, T>(&self, args: &A, op: Read<A, T>) -> Result<T>
    where
        A: Send + Sync + ?Sized,
        T: Send + 'static,
    {
        let mut conn = self.read().await?;
        op(&mut *conn, args).await
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

    async fn save_answer(&self, student: &User, answer: NewAnswer) -> Result<SaveAck> {
        self.saves.save(student, answer).await
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
                reason: invigil_protocol::InvalidationReason::SignedInElsewhere,
            },
            Event::Resync,
        ];
        let json = serde_json::to_string(&events).unwrap();
        let back: Vec<Event> = serde_json::from_str(&json).unwrap();
        assert_eq!(format!("{back:?}"), format!("{events:?}"));
    }
}

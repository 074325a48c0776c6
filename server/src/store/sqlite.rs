//! The embedded engine: one SQLite file in WAL mode with `synchronous=FULL`.
//!
//! Reads go through a small pool. Every write goes through one writer task that drains its queue
//! into one transaction (group commit): one fsync then covers every save of the batch, which is
//! what lets a single file acknowledge tens of thousands of durable saves a second. Each operation
//! runs inside its own savepoint, so a refusal or a failure undoes that operation alone. After the
//! commit the writer publishes the operations' events in commit order, then answers the callers.

use super::tx::{Engine, Read, Write};
use super::{ConnectionChange, NewAnswer, Session};
use crate::error::{Error, Result};
use crate::live::event::{Bus, Event};
use anyhow::Context as _;
use async_trait::async_trait;
use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use invigil_protocol::{Role, SaveAck, User};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, SqlitePool};
use std::panic::AssertUnwindSafe;
use std::str::FromStr;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

mod presence;
mod saves;

/// At most this many operations share one transaction.
const MAX_BATCH: usize = 2048;

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
    async fn write_op<T, F>(&self, op: F) -> Result<T>
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

#[async_trait]
impl Engine for SqliteStore {
    async fn write<A, T>(&self, args: A, op: Write<A, T>) -> Result<T>
    where
        A: Send + Sync + 'static,
        T: Send + 'static,
    {
        self.write_op(move |conn, events| Box::pin(async move { op(conn, events, &args).await }))
            .await
    }

    async fn read<A, T>(&self, args: &A, op: Read<A, T>) -> Result<T>
    where
        A: Send + Sync + ?Sized,
        T: Send + 'static,
    {
        let mut conn = self.reader().await?;
        op(&mut *conn, args).await
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

//! Whether this node still hears the cluster: its feed of changes (the `LISTEN` connection) is
//! trusted only while the node keeps hearing itself through it.
//!
//! A link that died half-open (the database's host gone, a failover, a firewall that dropped the
//! idle connection, a frozen proxy) reports no error: the socket stays open and nothing arrives.
//! So four times every heartbeat the node announces an echo of its own on the channel, and the relay
//! notes each one it hears. The feed is lost when an echo is not heard within [`Feed::window`]
//! (two heartbeats, at least [`MIN_WINDOW`]) of being due to leave, or when a barrier, once sent,
//! does not come back within it (5 s at most). Sending often keeps the time from the link's death
//! to its discovery close to the window. The relay then listens again on a new connection and closes
//! every local socket and event stream with 1012, as after any lost link. Echoes leave through a
//! connection of their own, so that a busy pool never delays one: only the link is judged.
//!
//! Every pool connection opened before the loss is suspect too: it may sit on the same dead link,
//! where a query (or the pool's own ping) would wait forever. The pool's hooks close such
//! connections when they are next taken or given back, without a word on the wire that expects
//! an answer; the ping that tests every other connection taken from the pool is bounded by the
//! same window.
//!
//! An echo is shaped like another node's barrier (`b:NODE:eSEQ`), so every other node, older
//! ones included, passes over it.

use sqlx::Connection as _;
use sqlx::pool::PoolConnectionMetadata;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The shortest window, whatever the heartbeat: a busy machine must not take a slow echo for a
/// dead link when the heartbeat is set very short.
const MIN_WINDOW: Duration = Duration::from_millis(1000);

/// How an echo's notification starts after the node's barrier prefix (`b:NODE:`).
pub(super) const ECHO: &str = "e";

/// The state of this node's feed of changes.
pub(super) struct Feed {
    window: Duration,
    state: Mutex<State>,
    /// Wakes the relay when the feed is lost.
    lost: Notify,
}

#[derive(Default)]
struct State {
    /// Bumped each time the relay listens again: a loss seen by work begun before is dealt with.
    generation: u64,
    /// Whether this generation's feed is lost (the relay is listening again).
    lost: bool,
    /// When the feed was last lost: pool connections opened before it are suspect.
    lost_at: Option<Instant>,
    /// The last echo's number.
    sent: u64,
    /// Echoes of this generation not heard yet, oldest first, with when each was due to leave.
    pending: VecDeque<(u64, Instant)>,
}

impl Feed {
    /// The feed of a node beating every `heartbeat`.
    pub(super) fn new(heartbeat: Duration) -> Arc<Self> {
        Arc::new(Self {
            window: (heartbeat * 2).max(MIN_WINDOW),
            state: Mutex::default(),
            lost: Notify::new(),
        })
    }

    /// How long an echo, a barrier or a heartbeat's database work may take.
    pub(super) fn window(&self) -> Duration {
        self.window
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current generation, to name in a later [`lose`](Self::lose).
    pub(super) fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Marks the feed of `generation` lost (once; nothing if the relay has listened again since)
    /// and wakes the relay.
    pub(super) fn lose(&self, generation: u64, why: &str) {
        {
            let mut state = self.lock();
            if state.generation != generation || state.lost {
                return;
            }
            state.lost = true;
            state.lost_at = Some(Instant::now());
            // A lost feed awaits no echo: the new one starts afresh.
            state.pending.clear();
        }
        tracing::warn!(why, "the feed of changes is lost");
        self.lost.notify_one();
    }

    /// Resolves once the current generation's feed is lost.
    pub(super) async fn until_lost(&self) {
        loop {
            let notified = self.lost.notified();
            if self.lock().lost {
                return;
            }
            notified.await;
        }
    }

    /// The relay listens again: a new generation, trusted until it fails in turn.
    pub(super) fn renew(&self) {
        let mut state = self.lock();
        state.generation += 1;
        state.lost = false;
        state.pending.clear();
    }

    /// Whether a pool connection of this age opened before the last loss.
    pub(super) fn suspect(&self, age: Duration) -> bool {
        self.lock()
            .lost_at
            .is_some_and(|lost_at| age > lost_at.elapsed())
    }

    /// The relay heard echo `seq`: it and every earlier one are answered.
    pub(super) fn heard(&self, seq: u64) {
        self.lock().pending.retain(|&(pending, _)| pending > seq);
    }

    /// A new echo, due to leave now: its number.
    fn echo(&self) -> u64 {
        let mut state = self.lock();
        state.sent += 1;
        let seq = state.sent;
        if !state.lost {
            state.pending.push_back((seq, Instant::now()));
        }
        seq
    }

    /// When the oldest echo awaited becomes a loss.
    fn due(&self) -> Option<Instant> {
        self.lock().pending.front().map(|&(_, at)| at + self.window)
    }

    /// Runs `op`, but for `limit` at most: past it, the feed of `generation` is lost — before `op`
    /// is dropped, so that the connection it holds is suspect (and closed, not pinged) when the
    /// pool gets it back. `None` when it took too long.
    pub(super) async fn bounded<T>(
        &self,
        generation: u64,
        limit: Duration,
        what: &str,
        op: impl Future<Output = T>,
    ) -> Option<T> {
        let mut op = std::pin::pin!(op);
        tokio::select! {
            done = &mut op => Some(done),
            () = tokio::time::sleep(limit) => {
                self.lose(generation, what);
                None
            }
        }
    }

    /// The pool's test of a connection about to be taken: a suspect one is closed; any other must
    /// answer a ping within the window.
    pub(super) fn check<'c>(
        self: &Arc<Self>,
        conn: &'c mut PgConnection,
        meta: PoolConnectionMetadata,
    ) -> futures_util::future::BoxFuture<'c, Result<bool, sqlx::Error>> {
        let feed = self.clone();
        Box::pin(async move {
            if feed.suspect(meta.age) {
                return Ok(false);
            }
            match tokio::time::timeout(feed.window, conn.ping()).await {
                Ok(answered) => answered.map(|()| true),
                Err(_) => Err(sqlx::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "a pooled connection did not answer a ping in time",
                ))),
            }
        })
    }
}

/// Four times every heartbeat, sends an echo; declares the feed lost when the oldest echo unheard is
/// older than the window.
pub(super) async fn watch(
    feed: Arc<Feed>,
    options: PgConnectOptions,
    echo_prefix: String,
    heartbeat: Duration,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(heartbeat / 4);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let link = Arc::new(tokio::sync::Mutex::new(None::<PgConnection>));
    loop {
        let due = feed.due();
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {
                let seq = feed.echo();
                let note = format!("{echo_prefix}{ECHO}{seq}");
                // Sent apart, so that an echo stuck on a dead link holds up none of the judging.
                tokio::spawn(send_echo(link.clone(), options.clone(), note, feed.window));
            }
            () = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                let generation = feed.generation();
                if feed.due().is_some_and(|due| due <= Instant::now()) {
                    feed.lose(generation, "an echo did not come back within two heartbeats");
                }
            }
        }
    }
}

/// Sends one echo on the echoes' own connection (opened again after any failure), within `limit`.
async fn send_echo(
    link: Arc<tokio::sync::Mutex<Option<PgConnection>>>,
    options: PgConnectOptions,
    note: String,
    limit: Duration,
) {
    let mut link = link.lock().await;
    let sent = tokio::time::timeout(limit, async {
        let conn = match &mut *link {
            Some(conn) => conn,
            none => none.insert(PgConnection::connect_with(&options).await?),
        };
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(super::CHANNEL)
            .bind(note)
            .execute(conn)
            .await
    })
    .await;
    match sent {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "could not send an echo");
            *link = None;
        }
        Err(_) => {
            tracing::debug!("an echo could not be sent in time");
            // Whatever it waits on is dropped with it: the next echo opens a new connection.
            *link = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_two_heartbeats_but_never_below_the_floor() {
        assert_eq!(
            Feed::new(Duration::from_secs(5)).window(),
            Duration::from_secs(10)
        );
        assert_eq!(Feed::new(Duration::from_millis(100)).window(), MIN_WINDOW);
    }

    #[tokio::test]
    async fn an_echo_not_heard_within_two_heartbeats_loses_the_feed_once() {
        let feed = Feed::new(Duration::from_millis(1000));
        let generation = feed.generation();
        let first = feed.echo();
        let second = feed.echo();
        feed.heard(first);
        assert!(feed.due().is_some(), "the second echo is still awaited");
        feed.heard(second);
        assert_eq!(feed.due(), None, "every echo is answered");

        let before = Instant::now();
        feed.echo();
        let after = Instant::now();
        feed.echo();
        let due = feed.due().expect("an echo is awaited");
        assert!(
            (before + feed.window()..=after + feed.window()).contains(&due),
            "the oldest echo awaited counts"
        );
        feed.lose(generation, "test");
        assert_eq!(feed.due(), None, "a lost feed awaits no echo");
        tokio::time::timeout(Duration::from_secs(5), feed.until_lost())
            .await
            .expect("the relay is woken");

        // A loss seen by work of the old generation, after the relay listened again, is old news.
        feed.renew();
        feed.lose(generation, "late");
        assert!(!feed.lock().lost);
    }

    #[tokio::test]
    async fn a_barrier_that_outlasts_its_bound_loses_the_feed_and_makes_older_connections_suspect()
    {
        let feed = Feed::new(Duration::from_millis(500));
        let generation = feed.generation();
        let done = feed
            .bounded(
                generation,
                Duration::from_millis(10),
                "test",
                std::future::pending::<()>(),
            )
            .await;
        assert_eq!(done, None);
        assert!(feed.lock().lost);
        assert!(
            feed.suspect(Duration::from_secs(3600)),
            "opened long before"
        );
        assert!(
            !feed.suspect(Duration::ZERO),
            "opened just now, after the loss"
        );
    }
}

//! The registry of this node's live connections and the dispatcher that routes events to them.
//!
//! The dispatcher is one task reading the bus in commit order; it only looks up recipients and
//! puts the event in each one's bounded queue (`try_send`), so that one slow reader can never hold
//! up the others: a connection whose queue is full is closed instead, and memory stays bounded.

use super::event::{Audience, Event, ParticipantEvent, ParticipantRow};
use super::heard::Heard;
use super::mailbox::{self, Receiver, Sender};
use crate::metrics::Metrics;
use axum::extract::ws::Utf8Bytes;
use futures_util::task::AtomicWaker;
use invigil_protocol::{
    ConsoleMessage, Participant, Role, ServerMessage, Timestamp, UpdateReason, close,
};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use tokio::sync::mpsc;

/// How many frames may wait for one connection before it counts as too slow.
pub const QUEUE_FRAMES: usize = 256;
/// How many bytes of frames may wait for one connection before it counts as too slow (a frame
/// larger than this alone still goes through an empty queue).
pub const QUEUE_BYTES: usize = 4 * 1024 * 1024;
/// How many event streams one session may hold open at once.
pub const STREAMS_PER_SESSION: usize = 4;

/// A frame ready to send: its `type` (the SSE event name) and its JSON.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The message type.
    pub kind: &'static str,
    /// The JSON text.
    pub json: Utf8Bytes,
}

impl Frame {
    /// Serializes a message.
    pub fn new(message: &ServerMessage) -> Self {
        Self {
            kind: message.kind(),
            json: Utf8Bytes::from(message.to_json()),
        }
    }

    /// Serializes one of the console's added messages.
    pub fn console(message: &ConsoleMessage) -> Self {
        Self {
            kind: message.kind(),
            json: Utf8Bytes::from(message.to_json()),
        }
    }
}

/// What a connection's queue carries.
#[derive(Debug)]
pub enum Outgoing {
    /// A committed change; the connection renders it for its user.
    Event(Arc<Event>),
    /// A frame rendered already (acknowledgements, errors, board rows).
    Frame(Frame),
    /// Close with this code after everything queued before it.
    Close(u16, &'static str),
}

impl Outgoing {
    /// Bytes it holds, as a queue counts them: a frame's text, or the message an event becomes
    /// (its evaluation is most of it, made once for every recipient).
    pub fn weight(&self) -> usize {
        match self {
            Outgoing::Frame(frame) => frame.json.len(),
            Outgoing::Event(event) => event.weight(),
            Outgoing::Close(..) => 0,
        }
    }
}

/// The kind of a live connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnKind {
    /// A WebSocket: one per session.
    Socket,
    /// A server-sent event stream: listens only, any number.
    Stream,
}

/// A connection's signals: closed from outside at once with a code (by the hub), told that the
/// server is stopping, and, within a socket, its writer telling its reader that it has ended.
///
/// Plain atomics, because every wake of every connection checks them: these were
/// `CancellationToken`s, whose every check takes a lock, and the server-wide shutdown token was
/// one lock shared by all connections, a measurable share of a fan-out's CPU. A waker for each
/// signal, so that they stay right whichever task waits on which (today a socket's writer and
/// reader share one task, and an event stream's writer waits alone).
#[derive(Debug, Default)]
pub struct Kill {
    code: AtomicU16,
    stopping: AtomicBool,
    writer_ended: AtomicBool,
    close_waker: AtomicWaker,
    stop_waker: AtomicWaker,
    end_waker: AtomicWaker,
}

impl Kill {
    /// Asks the connection to close with `code` (the first code asked for wins).
    pub fn kill(&self, code: u16) {
        let _ = self
            .code
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire);
        self.close_waker.wake();
    }

    /// Resolves once the connection is asked to close.
    pub async fn killed(&self) {
        self.until(&self.close_waker, |k| k.code() != 0).await;
    }

    /// The code asked for.
    pub fn code(&self) -> u16 {
        self.code.load(Ordering::Acquire)
    }

    /// The server is shutting down.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        self.stop_waker.wake();
    }

    /// Resolves once the server is shutting down.
    pub async fn stopping(&self) {
        self.until(&self.stop_waker, |k| k.stopping.load(Ordering::Acquire))
            .await;
    }

    /// A socket's writer has ended: its reader stops.
    pub fn end_writer(&self) {
        self.writer_ended.store(true, Ordering::Release);
        self.end_waker.wake();
    }

    /// Resolves once the socket's writer has ended.
    pub async fn writer_ended(&self) {
        self.until(&self.end_waker, |k| k.writer_ended.load(Ordering::Acquire))
            .await;
    }

    fn until<'a>(
        &'a self,
        waker: &'a AtomicWaker,
        done: fn(&Self) -> bool,
    ) -> impl Future<Output = ()> + 'a {
        std::future::poll_fn(move |cx| {
            if done(self) {
                return Poll::Ready(());
            }
            waker.register(cx.waker());
            // Set between the check and the registration: its wake found no waker.
            if done(self) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }
}

struct Entry {
    user_id: String,
    session_id: String,
    role: Role,
    kind: ConnKind,
    tx: Sender,
    kill: Arc<Kill>,
    revoked: bool,
    last_seen: Arc<Heard>,
    /// Whether it asked for the console's added message types (`?additions=1`).
    additions: bool,
    /// Whether its own [`Event::SocketOpened`] has come back through the bus.
    announced: bool,
}

#[derive(Default)]
struct Registry {
    conns: HashMap<u64, Entry>,
    by_user: HashMap<String, Vec<u64>>,
    socket_of_session: HashMap<String, u64>,
    /// Event streams open per session.
    streams_of_session: HashMap<String, usize>,
    students: HashSet<u64>,
    admins: HashSet<u64>,
    /// The server is shutting down: every connection, and any that registers now, is told so.
    stopping: bool,
}

impl Registry {
    fn connected(&self, user_id: &str) -> bool {
        self.by_user
            .get(user_id)
            .is_some_and(|ids| ids.iter().any(|id| !self.conns[id].revoked))
    }

    fn last_seen(&self, user_id: &str) -> Option<Timestamp> {
        self.by_user.get(user_id).and_then(|ids| {
            ids.iter()
                .map(|id| &self.conns[id].last_seen)
                .max_by_key(|heard| heard.at())
                .and_then(|heard| heard.wall())
        })
    }
}

/// A connection's hold on the hub; unregister it when the connection ends.
#[derive(Debug)]
pub struct Registration {
    /// The connection's id in the hub.
    pub id: u64,
    /// Its queue.
    pub rx: Receiver,
    /// Its sender, for acknowledgements from its own reader.
    pub tx: Sender,
    /// Closes it from outside.
    pub kill: Arc<Kill>,
    /// When the server last heard from it.
    pub last_seen: Arc<Heard>,
    /// Whether registering made the user connected (their first live connection).
    pub became_connected: bool,
    /// [`Hub::revocations`] as the registration found it.
    pub revocations: u64,
}

/// This node's live connections.
#[derive(Clone)]
pub struct Hub {
    registry: Arc<Mutex<Registry>>,
    next_id: Arc<AtomicU64>,
    metrics: Arc<Metrics>,
    node: Arc<str>,
    /// How many revocations (and possible losses of one) this hub has routed: a connection whose
    /// session was checked before a revocation was routed looks again once registered, one whose
    /// check came after every revocation it could have missed need not.
    revocations: Arc<AtomicU64>,
}

impl Hub {
    /// An empty hub.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            registry: Arc::default(),
            next_id: Arc::new(AtomicU64::new(1)),
            metrics,
            node: uuid::Uuid::new_v4().simple().to_string().into(),
            revocations: Arc::default(),
        }
    }

    /// How many revocations have been routed so far. Read it before a session is checked: if a
    /// connection's [`Registration::revocations`] is the same, no revocation was routed between
    /// the check and the registration, so none can have passed the connection by.
    pub fn revocations(&self) -> u64 {
        self.revocations.load(Ordering::SeqCst)
    }

    /// This hub's id among the nodes of a cluster.
    pub fn node(&self) -> &str {
        &self.node
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        // A panic while holding the lock leaves plain maps behind, still consistent enough to serve.
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a connection. A socket replaces (closes with 4002) an older socket of the same session.
    pub fn register(
        &self,
        user_id: &str,
        role: Role,
        session_id: &str,
        kind: ConnKind,
    ) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mailbox::mailbox(QUEUE_FRAMES, QUEUE_BYTES);
        let kill = Arc::new(Kill::default());
        let last_seen = Arc::new(Heard::now());
        let mut reg = self.lock();
        if reg.stopping {
            kill.stop();
        }
        let became_connected = !reg.connected(user_id);
        if kind == ConnKind::Socket {
            if let Some(old) = reg.socket_of_session.insert(session_id.to_owned(), id) {
                if let Some(entry) = reg.conns.get(&old) {
                    entry.kill.kill(close::REPLACED);
                }
            }
        }
        reg.conns.insert(
            id,
            Entry {
                user_id: user_id.to_owned(),
                session_id: session_id.to_owned(),
                role,
                kind,
                tx: tx.clone(),
                kill: kill.clone(),
                revoked: false,
                last_seen: last_seen.clone(),
                additions: false,
                announced: false,
            },
        );
        reg.by_user.entry(user_id.to_owned()).or_default().push(id);
        match role {
            Role::Student => reg.students.insert(id),
            Role::Admin => reg.admins.insert(id),
            Role::Professor => false,
        };
        // Under the lock that routing holds while it counts: a revocation routed after this
        // reading finds the connection registered.
        let revocations = self.revocations();
        drop(reg);
        self.metrics.connection_opened(kind);
        Registration {
            id,
            rx,
            tx,
            kill,
            last_seen,
            became_connected,
            revocations,
        }
    }

    /// Lets a connection receive the console's added message types ([`ConsoleMessage`]). Called
    /// right after [`register`](Self::register), before its snapshot is read.
    pub fn opt_in_to_additions(&self, id: u64) {
        if let Some(entry) = self.lock().conns.get_mut(&id) {
            entry.additions = true;
        }
    }

    /// Holds one of a session's [`STREAMS_PER_SESSION`] event streams until the slot is dropped;
    /// `None` when the session holds them all.
    pub fn open_stream(&self, session_id: &str) -> Option<StreamSlot> {
        let mut reg = self.lock();
        let open = reg
            .streams_of_session
            .entry(session_id.to_owned())
            .or_default();
        if *open >= STREAMS_PER_SESSION {
            return None;
        }
        *open += 1;
        Some(StreamSlot {
            hub: self.clone(),
            session_id: session_id.to_owned(),
        })
    }

    /// Removes a connection; answers whether its user is now disconnected (it was their last one).
    pub fn unregister(&self, id: u64) -> bool {
        let mut reg = self.lock();
        let Some(entry) = reg.conns.remove(&id) else {
            return false;
        };
        if let Some(ids) = reg.by_user.get_mut(&entry.user_id) {
            ids.retain(|other| *other != id);
            if ids.is_empty() {
                reg.by_user.remove(&entry.user_id);
            }
        }
        if reg.socket_of_session.get(&entry.session_id) == Some(&id) {
            reg.socket_of_session.remove(&entry.session_id);
        }
        reg.students.remove(&id);
        reg.admins.remove(&id);
        let now_disconnected = !entry.revoked && !reg.connected(&entry.user_id);
        drop(reg);
        self.metrics.connection_closed(entry.kind);
        now_disconnected
    }

    /// Whether a live connection of the user's current session is open, and when they were last heard.
    pub fn presence(&self, user_id: &str) -> (bool, Option<Timestamp>) {
        let reg = self.lock();
        (reg.connected(user_id), reg.last_seen(user_id))
    }

    /// Tells every connection, and every one that registers from now on, that the server is
    /// shutting down.
    pub fn stop_all(&self) {
        let mut reg = self.lock();
        reg.stopping = true;
        for entry in reg.conns.values() {
            entry.kill.stop();
        }
    }

    /// How many live connections this node holds.
    pub fn connection_count(&self) -> usize {
        self.lock().conns.len()
    }

    /// Routes events, in order, until the bus closes.
    pub async fn dispatch(self, mut rx: mpsc::UnboundedReceiver<Arc<Event>>) {
        while let Some(event) = rx.recv().await {
            self.route(event);
        }
    }

    fn route(&self, event: Arc<Event>) {
        let mut reg = self.lock();
        let mut targets: Vec<u64> = Vec::new();
        match &*event {
            Event::Revoked {
                user_id,
                session_ids,
                ..
            } => {
                self.revocations.fetch_add(1, Ordering::SeqCst);
                self.metrics.invalidations.inc_by(session_ids.len() as u64);
                if let Some(ids) = reg.by_user.get(user_id).cloned() {
                    for id in ids {
                        let entry = reg.conns.get_mut(&id).expect("indexed connections exist");
                        if session_ids.contains(&entry.session_id) {
                            entry.revoked = true;
                            targets.push(id);
                        }
                    }
                }
            }
            Event::Evaluation(e) => {
                if e.reason == UpdateReason::Blocked {
                    self.metrics.blocks.inc();
                }
                match &e.audience {
                    Audience::AllStudents => targets.extend(reg.students.iter().copied()),
                    Audience::Students(users) => {
                        for user in users {
                            if let Some(ids) = reg.by_user.get(user) {
                                targets.extend(
                                    ids.iter().copied().filter(|id| reg.students.contains(id)),
                                );
                            }
                        }
                    }
                }
            }
            Event::Participant(p) => {
                let frame = participant_frame(&reg, p);
                let mut staff: Vec<u64> = reg.admins.iter().copied().collect();
                if let Some(ids) = reg.by_user.get(&p.owner_id) {
                    staff.extend(
                        ids.iter()
                            .copied()
                            .filter(|id| reg.conns[id].role != Role::Admin),
                    );
                }
                for id in staff {
                    self.offer(&reg, id, Outgoing::Frame(frame.clone()));
                }
                return;
            }
            Event::ParticipantRemoved {
                evaluation_id,
                owner_id,
                username,
            } => {
                let frame = Frame::console(&ConsoleMessage::ParticipantRemoved {
                    evaluation_id: evaluation_id.clone(),
                    username: username.clone(),
                });
                for id in staff_with_additions(&reg, owner_id) {
                    self.offer(&reg, id, Outgoing::Frame(frame.clone()));
                }
                return;
            }
            Event::StaffEvaluation {
                evaluation,
                owner_id,
            } => {
                let frame = Frame::console(&ConsoleMessage::EvaluationChanged {
                    evaluation: evaluation.clone(),
                });
                for id in staff_with_additions(&reg, owner_id) {
                    self.offer(&reg, id, Outgoing::Frame(frame.clone()));
                }
                return;
            }
            Event::SocketOpened {
                session_id,
                node,
                connection,
            } => {
                let ours = node.as_str() == &*self.node;
                if let Some(&id) = reg.socket_of_session.get(session_id) {
                    let entry = reg.conns.get_mut(&id).expect("indexed connections exist");
                    if ours && id == *connection {
                        entry.announced = true;
                    } else if !ours && entry.announced {
                        // Announced before the other: the other one is newer and replaces it.
                        entry.kill.kill(close::REPLACED);
                    }
                    // Otherwise this socket is the newer one (on this node it replaced the other
                    // at registration): its own announcement, still to come, closes the older.
                }
                return;
            }
            Event::Barrier(barrier) => {
                barrier.pass();
                return;
            }
            Event::Resync => {
                // Revocations may have been lost with the rest.
                self.revocations.fetch_add(1, Ordering::SeqCst);
                tracing::warn!(
                    connections = reg.conns.len(),
                    "events may have been missed: every connection is asked to reconnect"
                );
                for entry in reg.conns.values() {
                    entry.kill.kill(close::SERVICE_RESTART);
                }
                return;
            }
        }
        for id in targets {
            self.offer(&reg, id, Outgoing::Event(event.clone()));
        }
    }

    /// Queues for one connection, closing it if it cannot keep up.
    fn offer(&self, reg: &Registry, id: u64, out: Outgoing) {
        let Some(entry) = reg.conns.get(&id) else {
            return;
        };
        if entry.tx.try_send(out).is_err() {
            tracing::warn!(
                connection = id,
                "a connection fell too far behind and is being closed"
            );
            entry.kill.kill(close::TOO_SLOW);
        }
    }

    /// The board row of a participant as staff see it now.
    pub fn participant_message(&self, evaluation_id: &str, row: &ParticipantRow) -> ServerMessage {
        ServerMessage::ParticipantUpdate {
            evaluation_id: evaluation_id.to_owned(),
            participant: self.participant(row),
        }
    }

    /// A participant row with its presence: the store's when it tracks presence across nodes,
    /// else this node's.
    pub fn participant(&self, row: &ParticipantRow) -> Participant {
        match row.presence {
            Some(p) => row.with_presence(p.connected, p.last_seen),
            None => {
                let (connected, last_seen) = self.presence(&row.user_id);
                row.with_presence(connected, last_seen)
            }
        }
    }
}

/// One of a session's event streams, given back when dropped.
#[derive(Debug)]
pub struct StreamSlot {
    hub: Hub,
    session_id: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut reg = self.hub.lock();
        if let Some(open) = reg.streams_of_session.get_mut(&self.session_id) {
            *open -= 1;
            if *open == 0 {
                reg.streams_of_session.remove(&self.session_id);
            }
        }
    }
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// The connections of an evaluation's staff (its owner and every admin) that asked for additions.
fn staff_with_additions(reg: &Registry, owner_id: &str) -> Vec<u64> {
    let owner = reg.by_user.get(owner_id).into_iter().flatten().copied();
    reg.admins
        .iter()
        .copied()
        .chain(owner.filter(|id| reg.conns[id].role != Role::Admin))
        .filter(|id| reg.conns[id].additions)
        .collect()
}

fn participant_frame(reg: &Registry, p: &ParticipantEvent) -> Frame {
    let participant = match p.row.presence {
        Some(presence) => p.row.with_presence(presence.connected, presence.last_seen),
        None => p
            .row
            .with_presence(reg.connected(&p.row.user_id), reg.last_seen(&p.row.user_id)),
    };
    Frame::new(&ServerMessage::ParticipantUpdate {
        evaluation_id: p.evaluation_id.clone(),
        participant,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use invigil_protocol::InvalidationReason;

    fn revoked(user_id: &str, session_id: &str) -> Arc<Event> {
        Arc::new(Event::Revoked {
            user_id: user_id.into(),
            session_ids: vec![session_id.into()],
            reason: InvalidationReason::SignedInElsewhere,
        })
    }

    #[test]
    fn a_session_holds_at_most_four_event_streams_and_a_closed_one_frees_its_place() {
        let hub = Hub::new(Arc::new(Metrics::new()));
        let slots: Vec<StreamSlot> = (0..STREAMS_PER_SESSION)
            .map(|_| hub.open_stream("s1").expect("room for a stream"))
            .collect();
        assert!(hub.open_stream("s1").is_none(), "a fifth is refused");
        assert!(hub.open_stream("s2").is_some(), "another session is not");
        drop(slots.into_iter().next());
        assert!(
            hub.open_stream("s1").is_some(),
            "a closed stream frees its place"
        );
    }

    #[test]
    fn a_registration_shows_whether_a_revocation_was_routed_since_a_session_was_checked() {
        let hub = Hub::new(Arc::new(Metrics::new()));

        // Checked, then registered, nothing routed in between: no need to look again.
        let checked = hub.revocations();
        let quiet = hub.register("u1", Role::Student, "s1", ConnKind::Socket);
        assert_eq!(quiet.revocations, checked);

        // Someone else's revocation routed between the check and the registration: it might
        // have been this session's, so the connection must look again.
        let checked = hub.revocations();
        hub.route(revoked("u2", "s2"));
        let late = hub.register("u3", Role::Student, "s3", ConnKind::Socket);
        assert_ne!(late.revocations, checked);

        // A loss of events may have lost a revocation too.
        let checked = hub.revocations();
        hub.route(Arc::new(Event::Resync));
        let after_resync = hub.register("u4", Role::Student, "s4", ConnKind::Stream);
        assert_ne!(after_resync.revocations, checked);
    }
}

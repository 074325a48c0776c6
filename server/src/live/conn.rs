//! One live connection's outgoing side, shared by the socket and the event stream: `WELCOME`, the
//! snapshot, then everything queued for it rendered for its user, heartbeats, and the close.

use super::event::Event;
use super::heard::Heard;
use super::hub::{ConnKind, Frame, Kill, Outgoing};
use super::mailbox::Receiver;
use crate::app::AppState;
use crate::auth::Caller;
use crate::store::{ConnectionChange, Presence, Session, SessionLookup};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::response::sse;
use futures_util::SinkExt;
use futures_util::future::BoxFuture;
use futures_util::stream::SplitSink;
use invigil_protocol::{
    InvalidationReason, Participation, Role, ServerMessage, Timestamp, UpdateReason, close,
};
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Where a connection's frames go.
pub enum Out {
    /// A WebSocket's sending half.
    Socket(SplitSink<WebSocket, Message>),
    /// An SSE response body.
    Stream(mpsc::Sender<Result<sse::Event, Infallible>>),
}

impl Out {
    async fn send(&mut self, frame: &Frame) -> Result<(), ()> {
        match self {
            Out::Socket(sink) => sink
                .send(Message::Text(frame.json.clone()))
                .await
                .map_err(|_| ()),
            Out::Stream(tx) => {
                let event = sse::Event::default()
                    .event(frame.kind)
                    .data(frame.json.as_str());
                tx.send(Ok(event)).await.map_err(|_| ())
            }
        }
    }

    /// Boxed: a connection closes once, and its writer, awaiting this in several places, should
    /// not keep room for it (and its timeout) all its life.
    fn close(&mut self, code: u16, reason: &'static str) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Out::Socket(sink) = self {
                let frame = CloseFrame {
                    code,
                    reason: reason.into(),
                };
                // A peer that stopped reading must not hold the close up.
                let _ = tokio::time::timeout(Duration::from_secs(1), async {
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    let _ = sink.flush().await;
                })
                .await;
            }
        })
    }
}

/// The user's side of events: their participations, so that an update names the right one, each
/// kept as its JSON (an update to thousands of students then serializes none of them again). A
/// list rather than a map: a student sits a handful of evaluations, and every idle socket keeps
/// one of these.
#[derive(Default)]
struct View {
    participations: Vec<Kept>,
}

/// A participation as an update carries it.
struct Kept {
    evaluation_id: String,
    /// Whether the student is eligible.
    access: bool,
    json: String,
}

impl View {
    fn position(&self, evaluation_id: &str) -> Option<usize> {
        self.participations
            .iter()
            .position(|k| k.evaluation_id == evaluation_id)
    }

    /// Keeps a participation, replacing the one of its evaluation; returns it.
    fn keep(&mut self, participation: Participation) -> &Kept {
        let kept = Kept {
            json: serde_json::to_string(&participation).expect("participations serialize"),
            access: participation.access,
            evaluation_id: participation.evaluation_id,
        };
        let i = match self.position(&kept.evaluation_id) {
            Some(i) => {
                self.participations[i] = kept;
                i
            }
            None => {
                self.participations.push(kept);
                self.participations.len() - 1
            }
        };
        &self.participations[i]
    }
}

/// Why a connection's writer stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Closed with this code (sent when the transport allows it).
    Closed(u16),
    /// The peer went away.
    PeerGone,
}

/// Sends `WELCOME`, the snapshot and then the queue until the connection ends.
///
/// For a socket, `last_seen` is when its reader last heard the client (on the monotonic clock):
/// the writer closes it with 4008 after three heartbeats of silence. The writer's one timer serves
/// both the heartbeats and that watch, so that an idle connection keeps a single timer and a
/// frame in costs no timer update. An event stream (`None`) sends only, and is closed here at
/// shutdown; a socket's reader handles shutdown, after the saves it started.
pub async fn run_writer(
    state: &AppState,
    session: &Session,
    out: &mut Out,
    rx: &mut Receiver,
    kill: &Kill,
    last_seen: Option<&Heard>,
) -> Ended {
    let mut view = View::default();
    // Boxed: the snapshot is built once, and an idle connection should not keep room for it.
    let first = match Box::pin(opening(state, session, &mut view)).await {
        Ok(frames) => frames,
        Err(e) => {
            tracing::error!(error = ?e, "could not build a connection's snapshot");
            out.close(1011, "the server could not load your data").await;
            return Ended::Closed(1011);
        }
    };
    for frame in &first {
        if !Box::pin(send(state, out, frame, kill)).await {
            return finish(out, kill).await;
        }
    }
    drop(first);
    let heartbeat = state.config.heartbeat();
    let mut beat_at = on_grid(Instant::now() + heartbeat, heartbeat);
    let timer = tokio::time::sleep_until(beat_at);
    tokio::pin!(timer);
    loop {
        let next = tokio::select! {
            biased;
            _ = kill.killed() => return finish(out, kill).await,
            _ = kill.stopping(), if last_seen.is_none() => {
                out.close(close::GOING_AWAY, "the server is restarting").await;
                return Ended::Closed(close::GOING_AWAY);
            }
            next = rx.recv() => next,
            () = &mut timer => {
                let now = Instant::now();
                let silent_at = last_seen.map(|heard| silent_at(heard, heartbeat, now));
                if silent_at.is_some_and(|at| at <= now) {
                    out.close(close::SILENT, "nothing was heard for three heartbeats").await;
                    return Ended::Closed(close::SILENT);
                }
                let beat = beat_at <= now;
                if beat {
                    // From the beat due, not from now: a late wake-up must not push every later
                    // heartbeat back (the contract wants one at least every period).
                    beat_at = on_grid(beat_at + heartbeat, heartbeat);
                    if beat_at <= now {
                        beat_at = on_grid(now + heartbeat, heartbeat);
                    }
                }
                timer.as_mut().reset(silent_at.map_or(beat_at, |at| at.min(beat_at)));
                if !beat {
                    continue;
                }
                Some(Outgoing::Frame(Frame::new(&ServerMessage::Heartbeat { server_time: Timestamp::now() })))
            }
        };
        let Some(next) = next else {
            return Ended::PeerGone;
        };
        let (frame, then_close) = match next {
            Outgoing::Close(code, reason) => {
                out.close(code, reason).await;
                return Ended::Closed(code);
            }
            Outgoing::Frame(frame) => (frame, None),
            // Boxed, as sending below: an idle connection waits elsewhere, and should not keep
            // room for these (each one allocation per frame, far cheaper than the write).
            Outgoing::Event(event) => {
                match Box::pin(render(state, session, &mut view, &event)).await {
                    Some(rendered) => rendered,
                    None => continue,
                }
            }
        };
        if !Box::pin(send(state, out, &frame, kill)).await {
            return finish(out, kill).await;
        }
        if let Some((code, reason)) = then_close {
            out.close(code, reason).await;
            return Ended::Closed(code);
        }
    }
}

/// The longest a heartbeat is brought forward to share a wake-up with others.
const GRID: Duration = Duration::from_millis(100);

/// `at`, brought back to the last point of a grid shared by every connection of the process.
///
/// The sockets of a room open at scattered moments; each waking on its own to send a
/// heartbeat costs the server a wake-up of a worker thread (a futex and a context switch, more
/// than writing the frame). On the grid, the heartbeats due within one step go out together in
/// a single wake-up. Never later than `at`: the contract asks for one at least every period.
/// The step is at most a twentieth of the period, so that the next beat always lies ahead.
fn on_grid(at: Instant, heartbeat: Duration) -> Instant {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let origin = *ORIGIN.get_or_init(Instant::now);
    let step = GRID.min(heartbeat / 20).as_nanos();
    if step == 0 {
        return at;
    }
    let since = at.saturating_duration_since(origin).as_nanos();
    let back = u64::try_from(since % step).unwrap_or(0);
    at - Duration::from_nanos(back)
}

/// When a client last heard at `heard` has been silent for three heartbeats (both monotonic: a
/// step of the wall clock changes nothing).
fn silent_at(heard: &Heard, heartbeat: Duration, now: Instant) -> Instant {
    let left = (heard.at() + heartbeat * 3).saturating_duration_since(std::time::Instant::now());
    now + left
}

async fn send(state: &AppState, out: &mut Out, frame: &Frame, kill: &Kill) -> bool {
    let sent = tokio::select! {
        biased;
        _ = kill.killed() => false,
        sent = out.send(frame) => sent.is_ok(),
    };
    if sent {
        state.metrics.frames_out.inc();
    }
    sent
}

async fn finish(out: &mut Out, kill: &Kill) -> Ended {
    match kill.code() {
        0 => Ended::PeerGone,
        code => {
            let reason = match code {
                close::REPLACED => "a newer connection of this session replaced this one",
                close::TOO_SLOW => "the connection could not keep up",
                close::SESSION_INVALIDATED => "the session was revoked",
                close::SERVICE_RESTART => "reconnect for a fresh snapshot",
                _ => "closed by the server",
            };
            out.close(code, reason).await;
            Ended::Closed(code)
        }
    }
}

/// `WELCOME`, then the snapshot and `SNAPSHOT_END`. Called after the connection is registered,
/// so that no change can fall between the snapshot and the events queued behind it.
async fn opening(
    state: &AppState,
    session: &Session,
    view: &mut View,
) -> crate::error::Result<Vec<Frame>> {
    let user = &session.user;
    let mut frames = vec![Frame::new(&ServerMessage::Welcome {
        session_id: session.id.clone(),
        user: user.clone(),
        server_time: Timestamp::now(),
        heartbeat_ms: state.config.heartbeat_ms,
    })];
    if user.role == Role::Student {
        for v in state.store.student_views(user).await? {
            view.keep(v.participation.clone());
            frames.push(Frame::new(&ServerMessage::EvaluationUpdate {
                reason: UpdateReason::Snapshot,
                evaluation: v.evaluation,
                participation: v.participation,
            }));
        }
    } else {
        for board in state.store.boards(user).await? {
            for row in &board.rows {
                frames.push(Frame::new(
                    &state.hub.participant_message(&board.evaluation_id, row),
                ));
            }
        }
    }
    frames.push(Frame::new(&ServerMessage::SnapshotEnd));
    Ok(frames)
}

type Rendered = (Frame, Option<(u16, &'static str)>);

/// Renders an event for this connection's user; `None` when it does not concern them after all.
async fn render(
    state: &AppState,
    session: &Session,
    view: &mut View,
    event: &Event,
) -> Option<Rendered> {
    match event {
        Event::Revoked {
            session_ids,
            reason,
            ..
        } => {
            if !session_ids.contains(&session.id) {
                return None;
            }
            let frame = Frame::new(&ServerMessage::SessionInvalidated { reason: *reason });
            Some((
                frame,
                Some((close::SESSION_INVALIDATED, "the session was revoked")),
            ))
        }
        Event::Evaluation(e) => {
            let user = &session.user;
            let evaluation_id = &e.evaluation.id;
            let kept = match e.participations.get(&user.id) {
                Some(p) => view.keep(p.clone()),
                None => match view.position(evaluation_id) {
                    // Unchanged: what this connection already knows, JSON and all.
                    Some(i) => &view.participations[i],
                    // Not seen on this connection yet (say, an evaluation opened to everyone).
                    None => match state.store.participation(evaluation_id, user).await {
                        Ok(Some(p)) => view.keep(p),
                        Ok(None) => return None,
                        Err(err) => {
                            tracing::error!(error = ?err, "could not load a participation for an update");
                            return None;
                        }
                    },
                },
            };
            if !kept.access && e.reason != UpdateReason::AccessChanged {
                return None;
            }
            let json = evaluation_update_json(e.update_prefix(), &kept.json);
            Some((
                Frame {
                    kind: "EVALUATION_UPDATE",
                    json: json.into(),
                },
                None,
            ))
        }
        // Rendered once by the hub for every staff connection.
        Event::Participant(_)
        | Event::ParticipantRemoved { .. }
        | Event::StaffEvaluation { .. }
        | Event::Resync
        | Event::SocketOpened { .. }
        | Event::Barrier(_) => None,
    }
}

/// `EVALUATION_UPDATE`: the event's prefix, made once for all its recipients, then this
/// student's participation.
fn evaluation_update_json(prefix: &str, participation: &str) -> String {
    let mut json = String::with_capacity(prefix.len() + participation.len() + 1);
    json.push_str(prefix);
    json.push_str(participation);
    json.push('}');
    json
}

/// Notes a student's connection closing, off the connection's path.
pub fn note_presence(state: &AppState, session: &Session, change: ConnectionChange) {
    if session.user.role != Role::Student {
        return;
    }
    let (store, session) = (state.store.clone(), session.clone());
    state.tasks.spawn(async move {
        if let Err(e) = store.presence(&session, change).await {
            tracing::warn!(error = ?e, "could not record a connection change");
        }
    });
}

/// Registers a connection, notes its presence, and on return unregisters it and notes the loss
/// (a quiet one when it was replaced by a newer socket or the server is stopping). `additions`:
/// the connection asked for the console's added message types.
pub async fn hold<F, Fut>(
    state: &AppState,
    caller: &Caller,
    kind: ConnKind,
    additions: bool,
    body: F,
) where
    F: FnOnce(super::hub::Registration) -> Fut,
    Fut: std::future::Future<Output = Ended>,
{
    let session = &caller.session;
    // Changes committed before this connection opened are in its snapshot: make sure they have
    // all been routed before it registers, so that none reaches it late (a clustered store hears
    // of them from the database a moment after their commit).
    if let Err(e) = state.store.barrier().await {
        tracing::warn!(error = ?e, "could not wait for earlier changes to be routed");
    }
    let registration = state
        .hub
        .register(&session.user.id, session.user.role, &session.id, kind);
    let id = registration.id;
    if additions {
        state.hub.opt_in_to_additions(id);
    }
    // The session was checked before the upgrade; a revocation dispatched between that check and
    // this registration would never reach this connection, so look again now that it is listening
    // (only if one was dispatched since: a room coming back all at once spares a read each).
    if registration.revocations != caller.revocations {
        match state.store.session(&caller.token_hash).await {
            Ok(SessionLookup::Active(_)) => {}
            Ok(lookup) => {
                let reason = match lookup {
                    SessionLookup::Invalidated(reason) => reason,
                    _ => InvalidationReason::RevokedByAdmin,
                };
                let frame = Frame::new(&ServerMessage::SessionInvalidated { reason });
                let _ = registration.tx.try_send(Outgoing::Frame(frame));
                let _ = registration.tx.try_send(Outgoing::Close(
                    close::SESSION_INVALIDATED,
                    "the session was revoked",
                ));
            }
            Err(e) => {
                tracing::error!(error = ?e, "could not check a connection's session");
                registration.kill.kill(1011);
            }
        }
    }
    if kind == ConnKind::Socket {
        if let Err(e) = state
            .store
            .socket_opened(&session.id, state.hub.node(), id)
            .await
        {
            tracing::warn!(error = ?e, "could not announce a socket to the other nodes");
        }
    }
    if session.user.role == Role::Student {
        // Awaited before the first frame, so that once WELCOME is out the boards of every node
        // show the student connected (and so that the close below is always noted after it).
        let opened = ConnectionChange {
            connection: id,
            presence: Presence::Connected,
            transition: registration.became_connected,
            quiet: false,
        };
        if let Err(e) = state.store.presence(session, opened).await {
            tracing::warn!(error = ?e, "could not record a connection change");
        }
    }
    let ended = body(registration).await;
    let now_gone = state.hub.unregister(id);
    let replaced = ended == Ended::Closed(close::REPLACED);
    let closed = ConnectionChange {
        connection: id,
        presence: Presence::Disconnected,
        transition: now_gone,
        quiet: replaced || state.shutdown.is_cancelled(),
    };
    note_presence(state, session, closed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::event::{Audience, EvaluationEvent};
    use invigil_protocol::{Access, Evaluation, ParticipationStatus, Phase};

    #[test]
    fn heartbeats_on_the_grid_are_never_late_and_those_due_close_together_share_a_point() {
        let heartbeat = Duration::from_secs(5);
        let start = Instant::now();
        let mut points = std::collections::BTreeSet::new();
        for ms in 0..200 {
            let due = start + Duration::from_millis(ms);
            let at = on_grid(due, heartbeat);
            assert!(at <= due, "never later than due");
            assert!(due - at < GRID, "brought forward by less than a step");
            assert_eq!(on_grid(at, heartbeat), at, "a point of the grid stays put");
            points.insert(at);
        }
        assert!(
            points.len() <= 3,
            "200 ms of dues fall on at most 3 points: {points:?}"
        );

        // A short period gets a finer grid, so the next beat still lies ahead.
        let short = Duration::from_millis(100);
        let due = start + short;
        assert!(due - on_grid(due, short) < short / 20);
        let next = on_grid(on_grid(due, short) + short, short);
        assert!(next > due, "the beat after lies ahead of the one before");
    }

    #[test]
    fn a_spliced_evaluation_update_is_exactly_the_contract_message() {
        let evaluation = Evaluation {
            id: "e1".into(),
            title: "Algorithms \"midterm\"".into(),
            phase: Phase::InProgress,
            ends_at: None,
            access: Access::List,
            owner: "prof1".into(),
            questions: vec![],
            proctoring: Default::default(),
        };
        let participation = Participation {
            evaluation_id: "e1".into(),
            username: "alice".into(),
            status: ParticipationStatus::InProgress,
            blocked_reason: None,
            access: true,
            proctoring_exempt: Default::default(),
        };
        let event = EvaluationEvent::new(
            UpdateReason::PhaseChanged,
            evaluation.clone(),
            Audience::AllStudents,
            Default::default(),
        );
        let json = evaluation_update_json(
            event.update_prefix(),
            &serde_json::to_string(&participation).unwrap(),
        );
        let parsed: ServerMessage = serde_json::from_str(&json).unwrap();
        assert_eq!(
            parsed,
            ServerMessage::EvaluationUpdate {
                reason: UpdateReason::PhaseChanged,
                evaluation,
                participation
            }
        );
    }
}

//! The live socket: one connection at a time, heartbeats both ways, a lost connection detected
//! after 3 × `heartbeat_ms` of silence, and reconnection with full-jitter backoff until the
//! session ends.
//!
//! Server frames are handled under the engine's lock in [`handle`], an exhaustive `match` over
//! the contract's [`ServerMessage`].

use crate::backoff::Backoff;
use crate::clock::monotonic_now;
use crate::config::ServerUrl;
use crate::error::Error;
use crate::network::{Offline, classify, os_has_network};
use crate::outbox::{Key, Record};
use crate::show::evaluation_views;
use crate::state::{Held, Link, Shared, Token, ended_reason, server_now_ms};
use crate::view::{ConnectionState, Event};
use futures_util::{SinkExt, StreamExt};
use invigil_protocol::{
    ClientMessage, ErrorCode, ParticipationStatus, Phase, RejectCode, SaveAnswer, ServerMessage,
    close,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

/// Frames waiting to be written to the socket.
const OUTGOING_QUEUE: usize = 1024;
/// Answers waiting for the `PUT` lane (each up to 1 MiB).
const LARGE_QUEUE: usize = 8;
/// How often the OS is asked whether the network came back while there is none.
const NETWORK_POLL: Duration = Duration::from_secs(1);

static CONNECTIONS: AtomicU64 = AtomicU64::new(1);

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Why a connection ended.
enum Ended {
    /// The session is over; stop.
    Invalidated(String),
    /// The connection is lost; try again.
    Lost(String),
    /// The server is going away or restarting (close 1001 or 1012): try again, spread over
    /// [`crate::backoff::RESTART_SPREAD`] so that a room does not come back at once.
    Restarting(String),
}

/// Why a connection could not be opened.
enum Failure {
    /// The server refused the token.
    Refused(Option<ErrorCode>),
    /// Anything else: try again.
    Transport(String),
}

/// Holds the connection of one session until it ends.
pub(crate) async fn run(shared: Arc<Shared>, server: ServerUrl, token: Token) {
    let mut backoff = Backoff::default();
    loop {
        let silence = {
            let state = shared.lock();
            Duration::from_millis(state.heartbeat_ms * 3)
        };
        let mut restarting = false;
        let failure = match connect(&server, &token, &shared.tls, silence).await {
            Ok((socket, rtt)) => {
                let (ended, welcomed) = serve(&shared, socket, rtt).await;
                if welcomed {
                    backoff.reset();
                }
                match ended {
                    Ended::Invalidated(reason) => {
                        shared.end_session(reason).await;
                        return;
                    }
                    Ended::Lost(detail) => detail,
                    Ended::Restarting(detail) => {
                        restarting = true;
                        detail
                    }
                }
            }
            Err(Failure::Refused(code)) => {
                // `session_invalidated` and `session_expired` are the server's word about this
                // session. Anything else (`unauthenticated`, a 401 without the contract's body)
                // may be a proxy, or a server restored from a backup for a moment: check first.
                let api = shared.lock().session.as_ref().map(|a| a.api.clone());
                let confirmed = match (code, api) {
                    (Some(ErrorCode::SessionInvalidated | ErrorCode::SessionExpired), _)
                    | (_, None) => true,
                    (_, Some(api)) => confirm_refusal(|| api.me(&token.0), &CONFIRM_REFUSAL).await,
                };
                if confirmed {
                    shared.end_session(ended_reason(code)).await;
                    return;
                }
                "the server refused the sign-in once, but still knows it".to_owned()
            }
            Err(Failure::Transport(detail)) => detail,
        };
        let offline = classify(&server, os_has_network);
        {
            let mut state = shared.lock();
            let new = match offline {
                Offline::NoNetwork => ConnectionState::NoNetwork,
                Offline::Unreachable => ConnectionState::Unreachable,
            };
            tracing::info!(state = ?new, detail = %failure, "not connected");
            shared.set_connection(&mut state, new, Some(failure));
        }
        let delay = if restarting {
            crate::backoff::after_restart(&mut rand::rng())
        } else {
            backoff.next_delay(&mut rand::rng())
        };
        wait(delay, offline, &server).await;
    }
}

/// When a refused reconnection (HTTP 401) is checked with `GET /api/me`: a 401 from a proxy, or
/// from a server restored from a backup for a moment, must not end a session during an exam
/// (signing in again would block the student). About a minute in all.
pub(crate) const CONFIRM_REFUSAL: [Duration; 4] = [
    Duration::ZERO,
    Duration::from_secs(10),
    Duration::from_secs(20),
    Duration::from_secs(30),
];

/// Asks `me` after each wait of `schedule`; true (the session is over) only when every answer
/// is a 401. A success, or an answer that says nothing about the session (the network, a
/// 5xx), keeps the session: the connection loop goes on and a later refusal asks again.
pub(crate) async fn confirm_refusal<F, Fut>(mut me: F, schedule: &[Duration]) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = crate::Result<invigil_protocol::User>>,
{
    for wait in schedule {
        tokio::time::sleep(*wait).await;
        match me().await {
            Err(Error::Server { code, .. }) if code.status() == 401 => {
                tracing::info!("the server does not know the session");
            }
            Ok(_) => {
                tracing::warn!("a reconnection was refused, but the session is alive");
                return false;
            }
            Err(e) => {
                tracing::info!(error = %e, "the refused session could not be checked");
                return false;
            }
        }
    }
    true
}

/// Waits `delay` before the next attempt; while the OS has no network, stops waiting as soon as
/// it has one again.
async fn wait(delay: Duration, offline: Offline, server: &ServerUrl) {
    let until = Instant::now() + delay;
    if offline == Offline::Unreachable {
        tokio::time::sleep_until(until).await;
        return;
    }
    while Instant::now() < until {
        tokio::time::sleep_until(until.min(Instant::now() + NETWORK_POLL)).await;
        if classify(server, os_has_network) == Offline::Unreachable {
            return;
        }
    }
}

/// Opens the socket (token in the `Authorization` header) and measures the round trip: the
/// shorter of the TCP handshake and the WebSocket upgrade, each one round trip.
async fn connect(
    server: &ServerUrl,
    token: &Token,
    tls: &Arc<rustls::ClientConfig>,
    limit: Duration,
) -> Result<(Socket, Duration), Failure> {
    let attempt = async {
        let url =
            reqwest::Url::parse(&server.socket()).map_err(|e| Failure::Transport(e.to_string()))?;
        let host = url
            .host_str()
            .ok_or_else(|| Failure::Transport("the server URL has no host".into()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = url
            .port_or_known_default()
            .ok_or_else(|| Failure::Transport("the server URL has no port".into()))?;
        let mut request = server
            .socket()
            .into_client_request()
            .map_err(|e| Failure::Transport(e.to_string()))?;
        let bearer = format!("Bearer {}", token.0)
            .parse()
            .map_err(|_| Failure::Transport("the token is not a header value".into()))?;
        request.headers_mut().insert("authorization", bearer);

        let started = Instant::now();
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| Failure::Transport(e.to_string()))?;
        let tcp_rtt = started.elapsed();
        let _ = tcp.set_nodelay(true);
        let upgrading = Instant::now();
        let connector = Connector::Rustls(tls.clone());
        match tokio_tungstenite::client_async_tls_with_config(request, tcp, None, Some(connector))
            .await
        {
            Ok((socket, _)) => Ok((socket, tcp_rtt.min(upgrading.elapsed()))),
            Err(tungstenite::Error::Http(response)) => {
                let status = response.status();
                if status == reqwest::StatusCode::UNAUTHORIZED {
                    let code = response
                        .body()
                        .as_deref()
                        .and_then(|b| serde_json::from_slice::<invigil_protocol::ErrorBody>(b).ok())
                        .map(|b| b.error.code);
                    Err(Failure::Refused(code))
                } else {
                    Err(Failure::Transport(format!(
                        "the server answered HTTP {status}"
                    )))
                }
            }
            Err(e) => Err(Failure::Transport(
                match crate::trust::certificate_problem(&e) {
                    Some(detail) => crate::Error::UntrustedCertificate {
                        url: server.to_string(),
                        detail,
                    }
                    .to_string(),
                    None => e.to_string(),
                },
            )),
        }
    };
    match tokio::time::timeout(limit, attempt).await {
        Ok(result) => result,
        Err(_) => Err(Failure::Transport(format!(
            "no answer within {} s",
            limit.as_secs()
        ))),
    }
}

/// What a frame means for the connection loop.
enum Flow {
    Continue,
    /// The server's `HEARTBEAT`: answered at once (see [`serve`]).
    Heartbeat,
    EvaluationsChanged,
    /// The snapshot after `WELCOME` is complete: read the server's answers, then send.
    SnapshotEnded,
    /// A save of this evaluation met `conflict`: read the server's answers of it again.
    Conflict(String),
    Welcomed {
        heartbeat: Duration,
    },
    Invalidated(String),
}

/// Runs one open socket until it ends; returns why, and whether `WELCOME` was received.
async fn serve(shared: &Arc<Shared>, socket: Socket, rtt: Duration) -> (Ended, bool) {
    let id = CONNECTIONS.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel::<String>(OUTGOING_QUEUE);
    let (large, large_rx) = mpsc::channel::<Record>(LARGE_QUEUE);
    let lane = tokio::spawn(put_lane(shared.clone(), id, large_rx));
    let mut heartbeat = {
        let mut state = shared.lock();
        state.link = Some(Link {
            id,
            tx,
            large,
            inflight: Default::default(),
            integrity_inflight: Default::default(),
            reconciled: false,
        });
        Duration::from_millis(state.heartbeat_ms)
    };
    let (mut sink, mut stream) = socket.split();
    let mut heard = Instant::now() + heartbeat * 3;
    let mut ticker = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
    let mut welcomed = false;
    let mut invalidation: Option<String> = None;
    // The longest frame written on this socket, for a 1009 close (see below).
    let mut longest = 0;
    // Reads of the server's answers for this socket: after the snapshot, and one per evaluation
    // where a save met a `conflict`.
    let mut reconciling: Vec<tokio::task::AbortHandle> = Vec::new();
    let mut conflicts: std::collections::HashMap<String, tokio::task::AbortHandle> =
        Default::default();

    let ended = loop {
        tokio::select! {
            biased;
            _ = tokio::time::sleep_until(heard) => {
                break Ended::Lost(format!("nothing heard from the server for {} s", (heartbeat * 3).as_secs_f32()));
            }
            frame = stream.next() => {
                let received = monotonic_now();
                heard = Instant::now() + heartbeat * 3;
                match frame {
                    None => break Ended::Lost("the server closed the connection".into()),
                    Some(Err(e)) => break Ended::Lost(e.to_string()),
                    Some(Ok(Message::Text(text))) => {
                        let message = match serde_json::from_str::<ServerMessage>(text.as_str()) {
                            Ok(m) => m,
                            Err(e) => {
                                tracing::warn!(error = %e, "a frame that is not a contract message");
                                continue;
                            }
                        };
                        match handle(shared, id, message, received, rtt) {
                            Flow::Continue => {}
                            // Answered at once rather than on a timer of our own: the server sends
                            // a room's heartbeats together, and their answers then reach it
                            // together too, in a few wake-ups instead of one per student. The
                            // ticker, pushed back a period, still beats if the server falls silent.
                            Flow::Heartbeat => {
                                ticker.reset();
                                if let Err(ended) = beat(shared, id, &mut sink, heard).await {
                                    break ended;
                                }
                            }
                            Flow::EvaluationsChanged => shared.save_cache().await,
                            Flow::SnapshotEnded => {
                                let task = tokio::spawn(shared.clone().reconcile(id, None));
                                reconciling.push(task.abort_handle());
                                shared.save_cache().await;
                            }
                            Flow::Conflict(evaluation) => {
                                if conflicts.get(&evaluation).is_none_or(|t| t.is_finished()) {
                                    let task = tokio::spawn(shared.clone().reconcile(id, Some(evaluation.clone())));
                                    conflicts.insert(evaluation, task.abort_handle());
                                }
                            }
                            Flow::Welcomed { heartbeat: h } => {
                                welcomed = true;
                                heartbeat = h;
                                heard = Instant::now() + heartbeat * 3;
                                ticker = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
                            }
                            Flow::Invalidated(reason) => {
                                // Close 4001 follows; the session is over either way.
                                invalidation = Some(reason);
                                break Ended::Invalidated(invalidation.clone().unwrap_or_default());
                            }
                        }
                    }
                    Some(Ok(Message::Close(frame))) => {
                        let code = frame.as_ref().map(|f| u16::from(f.code));
                        if code == Some(close::MESSAGE_TOO_BIG) {
                            // The server's limit is below ours: the frame that closed the socket
                            // is never sent on a socket again (it goes by PUT), nor any as long.
                            let mut state = shared.lock();
                            state.frame_limit = state.frame_limit.min(longest.max(1));
                            tracing::warn!(limit = state.frame_limit, "a frame was too large for the server; larger answers go by PUT");
                        }
                        if code == Some(close::SESSION_INVALIDATED) {
                            break Ended::Invalidated(invalidation.take().unwrap_or_else(|| "session_invalidated".into()));
                        }
                        let reason = frame.map(|f| f.reason.to_string()).unwrap_or_default();
                        let detail = match code {
                            Some(code) => format!("the server closed the connection ({code} {reason})"),
                            None => "the server closed the connection".into(),
                        };
                        if matches!(code, Some(close::GOING_AWAY | close::SERVICE_RESTART)) {
                            break Ended::Restarting(detail);
                        }
                        break Ended::Lost(detail);
                    }
                    Some(Ok(_)) => {}
                }
            }
            Some(text) = rx.recv() => {
                longest = longest.max(text.len());
                match tokio::time::timeout_at(heard, sink.send(Message::text(text))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => break Ended::Lost(e.to_string()),
                    Err(_) => break Ended::Lost("the server stopped reading".into()),
                }
            }
            _ = ticker.tick() => {
                if let Err(ended) = beat(shared, id, &mut sink, heard).await {
                    break ended;
                }
            }
        }
    };
    lane.abort();
    for task in reconciling.into_iter().chain(conflicts.into_values()) {
        task.abort();
    }
    {
        let mut state = shared.lock();
        if state.link.as_ref().is_some_and(|l| l.id == id) {
            state.link = None;
        }
        state.snapshot = None;
    }
    let close = Message::Close(Some(tungstenite::protocol::CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }));
    let _ = tokio::time::timeout(Duration::from_millis(200), sink.send(close)).await;
    (ended, welcomed)
}

/// Saves answers too large for one frame with `PUT`, one at a time, while the socket `id`
/// lasts; the outcome is taken in as the socket's `ANSWER_ACK` or `ANSWER_REJECTED` would be. A
/// save that fails for another reason is sent again at the next heartbeat.
async fn put_lane(shared: Arc<Shared>, id: u64, mut large: mpsc::Receiver<Record>) {
    while let Some(record) = large.recv().await {
        let Ok((api, token)) = shared.credentials() else {
            return;
        };
        let save = SaveAnswer {
            revision: record.revision,
            content: record.content.clone(),
        };
        let result = api
            .save_answer(&token.0, &record.evaluation_id, &record.question_id, &save)
            .await;
        let key = record.key();
        let mut state = shared.lock();
        if state.link.as_ref().is_none_or(|l| l.id != id) {
            return;
        }
        match result {
            Ok(ack) => shared.acknowledged(&mut state, key, ack.revision, ack.late),
            Err(Error::Server { code, .. }) if refusal(code).is_some() => {
                let code = refusal(code).expect("checked");
                shared.rejected(&mut state, key, record.revision, code);
                if code == RejectCode::Conflict {
                    drop(state);
                    tokio::spawn(shared.clone().reconcile(id, Some(record.evaluation_id)));
                }
            }
            Err(e) => {
                tracing::info!(error = %e, question = %record.question_id, "a large answer was not saved; trying again");
                if let Some(link) = state.link.as_mut() {
                    link.inflight.remove(&key);
                }
            }
        }
    }
}

/// The socket's refusal code of an HTTP save's error, for the refusals that are about the save.
fn refusal(code: ErrorCode) -> Option<RejectCode> {
    match code {
        ErrorCode::Blocked => Some(RejectCode::Blocked),
        ErrorCode::NotParticipating => Some(RejectCode::NotParticipating),
        ErrorCode::NotOnAccessList => Some(RejectCode::NotOnAccessList),
        ErrorCode::NotFound => Some(RejectCode::NotFound),
        ErrorCode::BadRequest | ErrorCode::PayloadTooLarge => Some(RejectCode::BadRequest),
        ErrorCode::Conflict => Some(RejectCode::Conflict),
        _ => None,
    }
}

/// Sends a `HEARTBEAT`, then sends again the saves that could not be queued (or that the server
/// failed). An error is how the connection ended.
async fn beat(
    shared: &Shared,
    id: u64,
    sink: &mut futures_util::stream::SplitSink<Socket, Message>,
    heard: Instant,
) -> Result<(), Ended> {
    let text = serde_json::to_string(&ClientMessage::Heartbeat).expect("client messages serialize");
    match tokio::time::timeout_at(heard, sink.send(Message::text(text))).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(Ended::Lost(e.to_string())),
        Err(_) => return Err(Ended::Lost("the server stopped reading".into())),
    }
    let mut state = shared.lock();
    if state.link.as_ref().is_some_and(|l| l.id == id) {
        shared.send_pending(&mut state, None, false);
        shared.send_integrity(&mut state);
    }
    Ok(())
}

/// Handles one server frame under the engine's lock.
fn handle(
    shared: &Shared,
    id: u64,
    message: ServerMessage,
    received: Duration,
    rtt: Duration,
) -> Flow {
    let mut state = shared.lock();
    let state = &mut *state;
    if state.link.as_ref().is_none_or(|l| l.id != id) {
        return Flow::Continue;
    }
    match message {
        ServerMessage::Welcome {
            session_id,
            user,
            server_time,
            heartbeat_ms,
        } => {
            state.clock.set_rtt(rtt);
            state.clock.record(server_time, received);
            state.heartbeat_ms = heartbeat_ms.max(1);
            state.snapshot = Some(Default::default());
            if let Some(active) = state.session.as_mut() {
                if active.session_id != session_id {
                    tracing::warn!("the server named another session than the one signed in");
                }
                active.user = user;
            }
            tracing::info!(heartbeat_ms, rtt_ms = rtt.as_millis() as u64, "connected");
            shared.set_connection(state, ConnectionState::Online, None);
            shared.emit(Event::Clock {
                server_now_ms: server_now_ms(state),
            });
            // Every answer still waiting goes out once on the new socket, after the snapshot and
            // a read of the server's answers (Flow::SnapshotEnded). Proctoring events go at
            // once: live on the professor's board, and nothing to reconcile.
            shared.send_integrity(state);
            Flow::Welcomed {
                heartbeat: Duration::from_millis(state.heartbeat_ms),
            }
        }
        ServerMessage::EvaluationUpdate {
            reason,
            evaluation,
            participation,
        } => {
            let evaluation_id = evaluation.id.clone();
            let answering = participation.access
                && participation.status == ParticipationStatus::InProgress
                && evaluation.phase == Phase::InProgress;
            tracing::debug!(?reason, evaluation = %evaluation_id, "evaluation update");
            state.evaluations.insert(
                evaluation_id.clone(),
                Held {
                    evaluation,
                    participation,
                },
            );
            let flow = if let Some(names) = state.snapshot.as_mut() {
                names.insert(evaluation_id.clone());
                Flow::Continue
            } else {
                shared.emit(Event::Evaluations(evaluation_views(state)));
                shared.wake_deadlines.notify_one();
                Flow::EvaluationsChanged
            };
            if answering {
                // Unblocked (or let back in): what was refused goes again.
                shared.send_pending(state, Some(&evaluation_id), true);
            }
            flow
        }
        ServerMessage::SnapshotEnd => {
            if let Some(names) = state.snapshot.take() {
                state.evaluations.retain(|id, _| names.contains(id));
            }
            shared.emit(Event::Evaluations(evaluation_views(state)));
            shared.wake_deadlines.notify_one();
            Flow::SnapshotEnded
        }
        ServerMessage::SessionInvalidated { reason } => Flow::Invalidated(reason.as_str().into()),
        ServerMessage::AnswerAck {
            evaluation_id,
            question_id,
            revision,
            late,
        } => {
            shared.acknowledged(state, Key::new(evaluation_id, question_id), revision, late);
            Flow::Continue
        }
        ServerMessage::AnswerRejected {
            evaluation_id,
            question_id,
            revision,
            code,
        } => {
            let conflict = code == invigil_protocol::RejectCode::Conflict;
            shared.rejected(
                state,
                Key::new(evaluation_id.clone(), question_id),
                revision,
                code,
            );
            if conflict {
                Flow::Conflict(evaluation_id)
            } else {
                Flow::Continue
            }
        }
        ServerMessage::ParticipantUpdate { .. } => Flow::Continue,
        ServerMessage::IntegrityAck(ack) => {
            shared.integrity_answered(state, &ack.event_id, None);
            Flow::Continue
        }
        ServerMessage::IntegrityRejected(rejected) => {
            shared.integrity_answered(state, &rejected.event_id, Some(rejected.code));
            Flow::Continue
        }
        ServerMessage::Heartbeat { server_time } => {
            state.clock.record(server_time, received);
            shared.emit(Event::Clock {
                server_now_ms: server_now_ms(state),
            });
            Flow::Heartbeat
        }
        ServerMessage::Error { code, message } => {
            tracing::warn!(%code, %message, "the server reported an error");
            if code == ErrorCode::Internal {
                // The server could not store a save and does not say which: everything on its
                // way is sent again at the next heartbeat.
                if let Some(link) = state.link.as_mut() {
                    link.inflight.clear();
                    link.integrity_inflight.clear();
                }
            }
            Flow::Continue
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClientConfig;
    use crate::engine::Engine;
    use crate::vault::KeyringVault;
    use invigil_protocol::{Role, Timestamp, User};
    use tokio::net::TcpListener;

    /// The text frames a client sends, skipping everything else.
    async fn next_text(server: &mut WebSocketStream<TcpStream>) -> String {
        loop {
            match server.next().await {
                Some(Ok(Message::Text(text))) => return text.to_string(),
                Some(Ok(_)) => {}
                other => panic!("the client's socket ended: {other:?}"),
            }
        }
    }

    fn refused() -> crate::Result<User> {
        Err(Error::Server {
            code: ErrorCode::Unauthenticated,
            message: "no".into(),
            retry_after: None,
        })
    }

    fn alice() -> User {
        User {
            id: "u1".into(),
            username: "alice".into(),
            display_name: "Alice".into(),
            role: Role::Student,
        }
    }

    /// The schedule of the tests: the real one's length, a millisecond each.
    const QUICK: [Duration; CONFIRM_REFUSAL.len()] = [Duration::from_millis(1); 4];

    #[test]
    fn a_refusal_is_checked_over_a_minute() {
        let total: Duration = CONFIRM_REFUSAL.iter().sum();
        assert!(total >= Duration::from_secs(60), "{total:?}");
    }

    #[tokio::test]
    async fn a_refused_session_ends_only_when_every_check_is_a_401() {
        let asked = std::sync::atomic::AtomicUsize::new(0);
        let ended = confirm_refusal(
            || {
                asked.fetch_add(1, Ordering::Relaxed);
                async { refused() }
            },
            &QUICK,
        )
        .await;

        assert!(ended);
        assert_eq!(asked.into_inner(), QUICK.len());
    }

    #[tokio::test]
    async fn a_401_the_server_does_not_confirm_keeps_the_session() {
        // A proxy's 401, then the server answers for the session: it goes on.
        let answers = std::sync::Mutex::new(vec![Ok(alice()), refused()]);
        let ended = confirm_refusal(
            || {
                let answer = answers.lock().unwrap().pop().unwrap();
                async move { answer }
            },
            &QUICK,
        )
        .await;
        assert!(!ended);

        // The server cannot be reached to check: nothing is concluded either.
        let ended = confirm_refusal(
            || async {
                Err(Error::Network {
                    url: "http://exams".into(),
                    detail: "refused".into(),
                })
            },
            &QUICK,
        )
        .await;
        assert!(!ended);
    }

    #[tokio::test]
    async fn the_servers_heartbeat_is_answered_at_once_not_at_the_clients_own_next_beat() {
        // A server speaking the contract on a plain socket, and an engine's connection to it.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let url = ServerUrl::parse(&format!("http://{addr}")).unwrap();
        let vault = Arc::new(KeyringVault::with_store(
            keyring_core::mock::Store::new().unwrap(),
        ));
        let engine = Engine::start(ClientConfig::new(url, dir.path()), vault)
            .await
            .unwrap();
        let (client, server) = tokio::join!(
            async {
                let stream = TcpStream::connect(addr).await.unwrap();
                let (socket, _) = tokio_tungstenite::client_async(
                    format!("ws://{addr}/api/ws"),
                    MaybeTlsStream::Plain(stream),
                )
                .await
                .unwrap();
                socket
            },
            async {
                let (stream, _) = listener.accept().await.unwrap();
                tokio_tungstenite::accept_async(stream).await.unwrap()
            }
        );
        let mut server = server;
        let shared = engine.shared.clone();
        let serving = tokio::spawn(async move { serve(&shared, client, Duration::ZERO).await });

        // A period of ten minutes: within this test the client's own timer never beats.
        let welcome = ServerMessage::Welcome {
            session_id: "s1".into(),
            user: User {
                id: "u1".into(),
                username: "alice".into(),
                display_name: "Alice".into(),
                role: Role::Student,
            },
            server_time: Timestamp::now(),
            heartbeat_ms: 600_000,
        };
        let heartbeat = ServerMessage::Heartbeat {
            server_time: Timestamp::now(),
        };
        for message in [welcome, ServerMessage::SnapshotEnd, heartbeat] {
            server.send(Message::text(message.to_json())).await.unwrap();
        }

        // (A bound, not a wait: the answer comes at once or, broken, ten minutes later.)
        let answer = tokio::time::timeout(Duration::from_secs(20), next_text(&mut server))
            .await
            .expect("the heartbeat is answered at once");
        let answer: ClientMessage = serde_json::from_str(&answer).unwrap();
        assert_eq!(answer, ClientMessage::Heartbeat);
        serving.abort();
    }
}

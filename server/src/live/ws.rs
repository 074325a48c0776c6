//! `GET /api/ws`: the live socket.
//!
//! The writer ([`super::conn::run_writer`]) and the reader below run side by side on one task,
//! joined by the connection's bounded queue; when either ends, the other is stopped. The reader
//! saves answers concurrently (up to [`MAX_SAVES_IN_FLIGHT`]) and acknowledges each once durable,
//! notes when it last heard the client (the writer's one timer closes a silent socket), and on
//! shutdown takes the frames already received, stops reading, waits for the saves it started, then
//! closes with 1001.

use super::conn::{Out, hold, run_writer};
use super::heard::Heard;
use super::hub::{ConnKind, Frame, Kill, Outgoing};
use super::mailbox::Sender;
use crate::app::AppState;
use crate::auth::Caller;
use crate::domain::{Revision, check_content};
use crate::error::Error;
use crate::store::integrity::reject_code as integrity_reject_code;
use crate::store::rules::reject_code;
use crate::store::{NewAnswer, Session};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use futures_util::stream::{FuturesUnordered, SplitSink, SplitStream};
use futures_util::{FutureExt, StreamExt};
use invigil_protocol::{
    ClientMessage, ErrorCode, IntegrityEvent, IntegrityRejected, MAX_MESSAGE_BYTES, Role,
    ServerMessage, close,
};
use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

/// Saves one socket may have waiting for the database at once; past that it is not read.
pub const MAX_SAVES_IN_FLIGHT: usize = 64;
/// tungstenite's read buffer per socket, allocated and zero-filled up front: its 128 KiB default
/// cost ~134 KB per idle socket, 4 KiB still two thirds of one. Clients send heartbeats and
/// saves of a few hundred bytes; a larger message is read in more calls (the buffer grows to
/// hold a whole frame whatever this is).
const READ_BUFFER_BYTES: usize = 512;

/// Upgrades to the live socket.
#[utoipa::path(
    get,
    path = "/api/ws",
    tag = "live",
    params(super::LiveQuery),
    responses(
        (status = 101, description = "The live socket (frames: docs/PROTOCOL.md, The live socket)"),
        (status = 400, description = "`bad_request`: the body or a parameter is not valid", body = invigil_protocol::ErrorBody),
        (status = 401, description = "`unauthenticated`, `session_invalidated` or `session_expired`: no valid session", body = invigil_protocol::ErrorBody),
        (status = 403, description = "`forbidden`: the caller may not do this (or a cookie request from a foreign Origin)", body = invigil_protocol::ErrorBody)
    )
)]
pub async fn upgrade(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<super::LiveQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    let additions = query.additions();
    let tasks = state.tasks.clone();
    // Boxed now: the upgrade's closure and the connection's future would each keep a copy.
    let caller = Box::new(caller);
    ws.read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_write_buffer_size(4 * MAX_MESSAGE_BYTES)
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_failed_upgrade(|e| tracing::debug!(error = %e, "a socket upgrade failed"))
        .on_upgrade(move |socket| {
            // Split before the connection's future takes it: a future keeps room for everything
            // it was given for as long as it lives, and the socket itself is needed no more.
            let (sink, stream) = socket.split();
            tasks.track_future(serve(sink, stream, state, caller, additions))
        })
}

// Every idle socket holds this future: what it keeps across awaits is its memory. The writer and
// the reader are built inside `join!`, never as locals first, which would keep room for both
// twice. (As tasks of their own, a fan-out would poll no reader, but that saved under 2% of its
// CPU for 300 more bytes a socket.)
async fn serve(
    sink: SplitSink<WebSocket, Message>,
    stream: SplitStream<WebSocket>,
    state: AppState,
    caller: Box<Caller>,
    additions: bool,
) {
    hold(&state, &caller, ConnKind::Socket, additions, |mut reg| {
        let (state, session) = (&state, &caller.session);
        async move {
            let mut out = Out::Socket(sink);
            let (ended, ()) = tokio::join!(
                async {
                    let silence = Some(&*reg.last_seen);
                    let ended =
                        run_writer(state, session, &mut out, &mut reg.rx, &reg.kill, silence).await;
                    reg.kill.end_writer();
                    ended
                },
                read(
                    stream,
                    state,
                    session,
                    reg.tx.clone(),
                    &reg.kill,
                    &reg.last_seen,
                ),
            );
            ended
        }
    })
    .await;
}

type Save = Pin<Box<dyn Future<Output = ServerMessage> + Send>>;

async fn read(
    mut stream: SplitStream<WebSocket>,
    state: &AppState,
    session: &Session,
    tx: Sender,
    kill: &Kill,
    last_seen: &Heard,
) {
    let mut saves: FuturesUnordered<Save> = FuturesUnordered::new();
    let queue = |message: &ServerMessage| {
        if tx.try_send(Outgoing::Frame(Frame::new(message))).is_err() {
            kill.kill(close::TOO_SLOW);
        }
    };
    let exit: Option<(u16, &'static str)> = 'read: loop {
        tokio::select! {
            biased;
            _ = kill.writer_ended() => break None,
            _ = kill.stopping() => {
                // Frames that have already arrived were sent before the client could know of the
                // shutdown: take them too, so that every save sent before it is answered before
                // the close (what is still on the wire is the client's to send again).
                loop {
                    if saves.len() >= MAX_SAVES_IN_FLIGHT {
                        if let Some(ack) = saves.next().await {
                            queue(&ack);
                        }
                        continue;
                    }
                    let Some(frame) = stream.next().now_or_never() else {
                        break 'read Some((close::GOING_AWAY, "the server is restarting"));
                    };
                    if let Read::Stop(exit) = take(frame, state, session, &mut saves, &queue, last_seen) {
                        break 'read exit.or(Some((close::GOING_AWAY, "the server is restarting")));
                    }
                }
            }
            Some(ack) = saves.next(), if !saves.is_empty() => queue(&ack),
            frame = stream.next(), if saves.len() < MAX_SAVES_IN_FLIGHT => {
                if let Read::Stop(exit) = take(frame, state, session, &mut saves, &queue, last_seen) {
                    break exit;
                }
            }
        }
    };
    // Saves already started are finished and acknowledged before the socket closes.
    while let Some(ack) = saves.next().await {
        queue(&ack);
    }
    match exit {
        Some((code, reason)) => {
            if tx.try_send(Outgoing::Close(code, reason)).is_err() {
                kill.kill(code);
            }
        }
        None => {
            let _ = tx.try_send(Outgoing::Close(1000, ""));
        }
    }
}

/// What the reader does after a frame.
enum Read {
    /// Goes on reading.
    On,
    /// Stops, closing with this code (`None`: the peer closed or failed).
    Stop(Option<(u16, &'static str)>),
}

/// Handles one frame (or the end of the stream): starts a save, or answers at once.
fn take(
    frame: Option<Result<Message, axum::Error>>,
    state: &AppState,
    session: &Session,
    saves: &mut FuturesUnordered<Save>,
    queue: &impl Fn(&ServerMessage),
    last_seen: &Heard,
) -> Read {
    let message = match frame {
        None => return Read::Stop(None),
        Some(Err(e)) => {
            if is_too_big(&e) {
                return Read::Stop(Some((
                    close::MESSAGE_TOO_BIG,
                    "messages may be at most 1 MiB",
                )));
            }
            tracing::debug!(error = %e, "a socket failed");
            return Read::Stop(None);
        }
        Some(Ok(message)) => message,
    };
    last_seen.note();
    state.metrics.frames_in.inc();
    match message {
        Message::Text(text) => match decode(text.as_str()) {
            Ok(ClientMessage::Heartbeat) => {}
            Ok(ClientMessage::IntegrityEvent(event)) => {
                saves.push(integrity(state, session, event))
            }
            Ok(ClientMessage::AnswerSave {
                evaluation_id,
                question_id,
                revision,
                content,
            }) => match save(
                state,
                session,
                evaluation_id,
                question_id,
                revision,
                content,
            ) {
                Ok(future) => saves.push(future),
                Err(refusal) => queue(&refusal),
            },
            Err(refusal) => queue(&refusal),
        },
        Message::Binary(_) => queue(&error_frame(
            ErrorCode::BadRequest,
            "Frames must be JSON text, not binary.".into(),
        )),
        Message::Close(_) => return Read::Stop(None),
        Message::Ping(_) | Message::Pong(_) => {}
    }
    Read::On
}

/// The most bytes an `ERROR` frame's message holds: it never echoes a large frame back.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 256;

/// An `ERROR` frame whose message is cut (at a character boundary, marked with `…`) to
/// [`MAX_ERROR_MESSAGE_BYTES`].
pub fn error_frame(code: ErrorCode, mut message: String) -> ServerMessage {
    if message.len() > MAX_ERROR_MESSAGE_BYTES {
        const MARK: char = '…';
        let mut end = MAX_ERROR_MESSAGE_BYTES - MARK.len_utf8();
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push(MARK);
    }
    ServerMessage::Error { code, message }
}

/// Reads a client's text frame: a client message of the contract, or the `ERROR` frame that
/// answers it.
pub fn decode(text: &str) -> Result<ClientMessage, Box<ServerMessage>> {
    serde_json::from_str::<ClientMessage>(text).map_err(|e| {
        Box::new(error_frame(
            ErrorCode::BadRequest,
            format!("That frame is not a client message of the contract: {e}."),
        ))
    })
}

fn is_too_big(error: &axum::Error) -> bool {
    use std::error::Error as _;
    let mut source: Option<&(dyn std::error::Error + 'static)> = error.source();
    while let Some(e) = source {
        if let Some(tungstenite::Error::Capacity(_)) = e.downcast_ref::<tungstenite::Error>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// Checks a save and starts it; a malformed one is answered at once.
fn save(
    state: &AppState,
    session: &Session,
    evaluation_id: String,
    question_id: String,
    revision: u64,
    content: String,
) -> Result<Save, Box<ServerMessage>> {
    if session.user.role != Role::Student {
        return Err(Box::new(error_frame(
            ErrorCode::Forbidden,
            "Only students save answers.".into(),
        )));
    }
    let checked = Revision::new(revision).and_then(|r| check_content(&content).map(|()| r));
    let revision = match checked {
        Ok(r) => r,
        Err(e) => return Err(Box::new(error_frame(e.code(), e.message()))),
    };
    let (store, metrics, user) = (
        state.store.clone(),
        state.metrics.clone(),
        session.user.clone(),
    );
    let started = Instant::now();
    Ok(async move {
        let answer = NewAnswer {
            evaluation_id: evaluation_id.clone(),
            question_id: question_id.clone(),
            revision,
            content,
        };
        let result = store.save_answer(&user, answer).await;
        match result {
            Ok(ack) => {
                metrics.ack_latency.observe(started.elapsed().as_secs_f64());
                ServerMessage::AnswerAck {
                    evaluation_id,
                    question_id: ack.question_id,
                    revision: ack.revision,
                    late: ack.late,
                }
            }
            Err(e) => match reject_code(&e) {
                Some(code) => ServerMessage::AnswerRejected {
                    evaluation_id,
                    question_id,
                    revision: revision.get(),
                    code,
                },
                None => failure(e),
            },
        }
    }
    .boxed())
}

/// Stores an integrity event (in the same flight as saves: each is answered once durable, and
/// what was started is answered before the socket closes).
fn integrity(state: &AppState, session: &Session, event: IntegrityEvent) -> Save {
    let (state, user) = (state.clone(), session.user.clone());
    async move {
        let event_id = event.event_id.clone();
        match crate::http::integrity::report(&state, &user, event).await {
            Ok(ack) => ServerMessage::IntegrityAck(ack),
            Err(e) => match integrity_reject_code(&e) {
                Some(code) => {
                    ServerMessage::IntegrityRejected(IntegrityRejected { event_id, code })
                }
                None => match e {
                    Error::Api { code, message, .. } => error_frame(code, message),
                    Error::Internal(_) => {
                        tracing::error!(error = ?e, "an integrity event could not be stored");
                        error_frame(
                            ErrorCode::Internal,
                            "The server could not store that integrity event; keep it and send \
                             it again."
                                .into(),
                        )
                    }
                },
            },
        }
    }
    .boxed()
}

fn failure(e: Error) -> ServerMessage {
    tracing::error!(error = ?e, "a save failed");
    error_frame(
        ErrorCode::Internal,
        "The server could not store that answer; keep it and send it again.".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(frame: ServerMessage) -> String {
        match frame {
            ServerMessage::Error { message, .. } => message,
            other => panic!("not an error: {other:?}"),
        }
    }

    #[test]
    fn an_error_never_echoes_more_than_256_bytes_of_a_bad_frame() {
        let huge = format!(r#"{{"type": "{}"}}"#, "é".repeat(450_000));
        let refused = message(*decode(&huge).unwrap_err());
        assert!(
            refused.len() <= MAX_ERROR_MESSAGE_BYTES,
            "{}",
            refused.len()
        );
        assert!(refused.ends_with('…'));
        let short = message(error_frame(ErrorCode::BadRequest, "short".into()));
        assert_eq!(short, "short");
    }
}

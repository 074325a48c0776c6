//! One simulated student's live connection: open it the way the server under test expects, read
//! what matters to a measurement, keep it alive, and, for invigil, save answers and come back
//! after a lost connection the way the desktop app does (full-jitter backoff, resend what was not
//! acknowledged).
//!
//! Frames are read through a small [`Probe`] rather than the full protocol types: a generator that
//! spends its CPU decoding evaluations would slow down the server it shares the machine with.

use crate::clock::now_ns;
use crate::wire::{Credential, Endpoint, Flavor};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use std::borrow::Cow;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::AUTHORIZATION;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// A student's socket.
pub type Ws = WebSocketStream<Counted<TcpStream>>;

/// Traffic of one worker's connections, counted at the TCP stream (headers and framing included).
#[derive(Debug, Default)]
pub struct Meter {
    /// Bytes read.
    pub bytes_in: AtomicU64,
    /// Bytes written.
    pub bytes_out: AtomicU64,
    /// Messages received.
    pub messages_in: AtomicU64,
    /// Messages sent.
    pub messages_out: AtomicU64,
}

impl Meter {
    /// What has been counted so far.
    pub fn traffic(&self) -> crate::wire::Traffic {
        crate::wire::Traffic {
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            messages_in: self.messages_in.load(Ordering::Relaxed),
            messages_out: self.messages_out.load(Ordering::Relaxed),
        }
    }
}

/// A stream that counts the bytes through it into a [`Meter`].
#[derive(Debug)]
pub struct Counted<S> {
    inner: S,
    meter: Arc<Meter>,
}

impl<S> Counted<S> {
    /// Counts `inner`'s traffic into `meter`.
    pub fn new(inner: S, meter: Arc<Meter>) -> Self {
        Self { inner, meter }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let read = (buf.filled().len() - before) as u64;
            this.meter.bytes_in.fetch_add(read, Ordering::Relaxed);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            this.meter.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled {
            this.meter.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Opens a TCP connection from `source` (port chosen by the kernel) to `addr`.
pub async fn tcp(source: IpAddr, addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = match source {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(source, 0))?;
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Opens a socket and completes the WebSocket handshake (nothing of the server's protocol yet).
pub async fn handshake(
    endpoint: &Endpoint,
    source: IpAddr,
    token: &str,
    meter: &Arc<Meter>,
) -> Result<Ws, String> {
    let stream = tcp(source, endpoint.addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let url = match endpoint.flavor {
        Flavor::Invigil | Flavor::Plain => format!("ws://{}/api/ws", endpoint.addr),
        Flavor::SocketIo => format!(
            "ws://{}/socket.io/?EIO=4&transport=websocket",
            endpoint.addr
        ),
    };
    let mut request = url.into_client_request().map_err(|e| e.to_string())?;
    if endpoint.flavor != Flavor::SocketIo {
        let bearer = format!("Bearer {token}")
            .parse()
            .map_err(|_| "a token that is no header value".to_owned())?;
        request.headers_mut().insert(AUTHORIZATION, bearer);
    }
    // A small read buffer: 20,000 sockets of tungstenite's default 128 KiB would take 2.5 GB of
    // the machine the server runs on.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (ws, _) = tokio_tungstenite::client_async_with_config(
        request,
        Counted::new(stream, meter.clone()),
        Some(config),
    )
    .await
    .map_err(|e| match e {
        WsError::Http(response) => format!("the upgrade was refused with {}", response.status()),
        e => format!("handshake: {e}"),
    })?;
    Ok(ws)
}

/// What a frame means to the generator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// `WELCOME`.
    Welcome,
    /// `SNAPSHOT_END`.
    SnapshotEnd,
    /// `EVALUATION_UPDATE` after a phase change: what a fan-out measures.
    PhaseChanged,
    /// `SESSION_INVALIDATED`.
    Invalidated,
    /// `ANSWER_ACK` with the stored revision.
    Ack {
        /// The revision stored.
        revision: u64,
    },
    /// `ANSWER_REJECTED` for this revision.
    Rejected {
        /// The revision sent.
        revision: u64,
    },
    /// Engine.IO's open packet: the client must now connect to the namespace.
    EngineOpen,
    /// Engine.IO's ping: the client must answer with a pong.
    EnginePing,
    /// The Socket.IO namespace refused the connection.
    EngineRefused,
    /// The server's `HEARTBEAT`: the desktop app answers it at once.
    Heartbeat,
    /// Anything else (other updates, the namespace's acceptance).
    Other,
}

/// The fields of a frame that the generator looks at.
#[derive(Debug, Deserialize)]
struct Probe<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    reason: Option<Cow<'a, str>>,
    #[serde(default)]
    revision: Option<u64>,
}

/// The payload of a Socket.IO event.
#[derive(Debug, Deserialize)]
struct EventPayload<'a> {
    #[serde(default, borrow)]
    reason: Option<Cow<'a, str>>,
}

/// Reads a text frame as `flavor` speaks.
pub fn classify(flavor: Flavor, text: &str) -> Incoming {
    match flavor {
        Flavor::Invigil | Flavor::Plain => match serde_json::from_str::<Probe<'_>>(text) {
            Ok(probe) => from_type(&probe.kind, probe.reason.as_deref(), probe.revision),
            Err(_) => Incoming::Other,
        },
        Flavor::SocketIo => {
            if text == "2" {
                Incoming::EnginePing
            } else if let Some(event) = text.strip_prefix("42") {
                match serde_json::from_str::<(Cow<'_, str>, EventPayload<'_>)>(event) {
                    Ok((name, payload)) => from_type(&name, payload.reason.as_deref(), None),
                    Err(_) => Incoming::Other,
                }
            } else if text.starts_with("44") {
                Incoming::EngineRefused
            } else if text.starts_with('0') {
                Incoming::EngineOpen
            } else {
                Incoming::Other
            }
        }
    }
}

fn from_type(kind: &str, reason: Option<&str>, revision: Option<u64>) -> Incoming {
    match kind {
        "WELCOME" => Incoming::Welcome,
        "SNAPSHOT_END" => Incoming::SnapshotEnd,
        "EVALUATION_UPDATE" if reason == Some("phase_changed") => Incoming::PhaseChanged,
        "SESSION_INVALIDATED" => Incoming::Invalidated,
        "HEARTBEAT" => Incoming::Heartbeat,
        "ANSWER_ACK" => Incoming::Ack {
            revision: revision.unwrap_or(0),
        },
        "ANSWER_REJECTED" => Incoming::Rejected {
            revision: revision.unwrap_or(0),
        },
        _ => Incoming::Other,
    }
}

/// A connection that is ready: the server has said all it says at the start.
pub struct Ready {
    /// The socket.
    pub ws: Ws,
}

/// Opens a student's socket and reads until it is ready: `SNAPSHOT_END` from invigil, `WELCOME`
/// from a peer (for Socket.IO, after connecting to the namespace with the token).
pub async fn connect(
    endpoint: &Endpoint,
    source: IpAddr,
    student: &Credential,
    meter: &Arc<Meter>,
) -> Result<Ready, String> {
    let mut ws = handshake(endpoint, source, &student.token, meter).await?;
    loop {
        let text = match ws.next().await {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => {
                return Err(match frame {
                    Some(f) => format!("closed with {} before ready: {}", f.code, f.reason),
                    None => "closed before ready".into(),
                });
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(format!("read before ready: {e}")),
            None => return Err("the server closed before ready".into()),
        };
        meter.messages_in.fetch_add(1, Ordering::Relaxed);
        match (endpoint.flavor, classify(endpoint.flavor, &text)) {
            (Flavor::Invigil, Incoming::SnapshotEnd)
            | (Flavor::Plain | Flavor::SocketIo, Incoming::Welcome) => return Ok(Ready { ws }),
            (Flavor::SocketIo, Incoming::EngineOpen) => {
                let connect = serde_json::json!({ "token": student.token });
                send_text(&mut ws, meter, format!("40{connect}"))
                    .await
                    .map_err(|e| format!("namespace connect: {e}"))?;
            }
            (Flavor::SocketIo, Incoming::EnginePing) => {
                send_text(&mut ws, meter, "3".to_owned())
                    .await
                    .map_err(|e| format!("pong: {e}"))?;
            }
            (Flavor::SocketIo, Incoming::EngineRefused) => {
                return Err(format!("the namespace refused the token: {text}"));
            }
            _ => {}
        }
    }
}

/// Sends a text frame, counting it.
pub async fn send_text(ws: &mut Ws, meter: &Meter, text: String) -> Result<(), WsError> {
    meter.messages_out.fetch_add(1, Ordering::Relaxed);
    ws.send(Message::Text(text.into())).await
}

/// The `ANSWER_SAVE` frame.
pub fn answer_save(evaluation_id: &str, question_id: &str, revision: u64, content: &str) -> String {
    serde_json::to_string(&invigil_protocol::ClientMessage::AnswerSave {
        evaluation_id: evaluation_id.to_owned(),
        question_id: question_id.to_owned(),
        revision,
        content: content.to_owned(),
    })
    .expect("client messages serialize")
}

/// The client's `HEARTBEAT` frame.
pub const HEARTBEAT: &str = r#"{"type":"HEARTBEAT"}"#;

/// Nanoseconds from `start_ns` until now, as whole microseconds (saturating).
pub fn micros_since(start_ns: u64) -> u32 {
    u32::try_from(now_ns().saturating_sub(start_ns) / 1000).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invigil_frames_are_read_by_type_and_reason() {
        let f = Flavor::Invigil;
        assert_eq!(
            classify(
                f,
                r#"{"type":"EVALUATION_UPDATE","reason":"phase_changed","evaluation":{},"participation":{}}"#
            ),
            Incoming::PhaseChanged
        );
        assert_eq!(
            classify(
                f,
                r#"{"type":"EVALUATION_UPDATE","reason":"snapshot","evaluation":{}}"#
            ),
            Incoming::Other
        );
        assert_eq!(
            classify(
                f,
                r#"{"type":"HEARTBEAT","server_time":"2026-12-02T10:00:00.000Z"}"#
            ),
            Incoming::Heartbeat
        );
        assert_eq!(
            classify(
                f,
                r#"{"type":"ANSWER_ACK","evaluation_id":"e","question_id":"q1","revision":7,"late":false}"#
            ),
            Incoming::Ack { revision: 7 }
        );
        assert_eq!(
            classify(f, r#"{"type":"SNAPSHOT_END"}"#),
            Incoming::SnapshotEnd
        );
        assert_eq!(classify(f, "not json"), Incoming::Other);
    }

    #[test]
    fn socket_io_packets_are_read_as_engine_io_speaks() {
        let f = Flavor::SocketIo;
        assert_eq!(
            classify(f, r#"0{"sid":"x","pingInterval":25000}"#),
            Incoming::EngineOpen
        );
        assert_eq!(classify(f, "2"), Incoming::EnginePing);
        assert_eq!(
            classify(f, r#"44{"message":"unauthorized"}"#),
            Incoming::EngineRefused
        );
        assert_eq!(classify(f, r#"40{"sid":"y"}"#), Incoming::Other);
        assert_eq!(
            classify(f, r#"42["WELCOME",{"type":"WELCOME"}]"#),
            Incoming::Welcome
        );
        assert_eq!(
            classify(
                f,
                r#"42["EVALUATION_UPDATE",{"type":"EVALUATION_UPDATE","reason":"phase_changed"}]"#
            ),
            Incoming::PhaseChanged
        );
    }
}

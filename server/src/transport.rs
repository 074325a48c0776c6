//! HTTP over the connections a [`Listener`] accepts, with the limits a hostile or slow client
//! meets before any handler runs:
//!
//! - **Connection caps.** At most `--max-connections` open connections server-wide: past it the
//!   loop stops accepting and new connections wait in the listen queue. At most
//!   `--max-connections-per-address` from one address (an IPv6 /64; exam networks exempt): past
//!   it a new connection is closed at once. A connection's place is held until its socket closes,
//!   upgraded WebSockets included.
//! - **Slow clients.** A request's headers must arrive within `--header-read-timeout-ms` (from the
//!   connection's start, or from the first byte of a later request), its body within
//!   `--body-read-timeout-ms` of its headers, and a kept-alive connection may idle
//!   `--keep-alive-timeout-ms` between requests. Past any of them the connection is closed.
//! - **Graceful shutdown.** When `shutdown` is cancelled the loop stops accepting, each connection
//!   finishes the request it is serving (an event stream ends when the server says so) and closes;
//!   upgraded sockets are the live connections' own to close.
//!
//! `axum::serve` has none of these knobs, so this is our own loop over hyper's HTTP/1.1
//! connection. It is generic over the stream: [`Listener::handshake`] turns an accepted
//! connection into the stream HTTP is spoken on, on the connection's own task and within the
//! header timeout: that is where [`crate::tls::Tls`] makes TLS of the TCP stream.

use crate::auth::throttle::{AddressKey, in_exam_network};
use crate::config::Config;
use crate::metrics::Metrics;
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, StatusCode, header};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use ipnet::IpNet;
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

/// Files kept free under the open-file limit for the database, logs and the listener itself.
const RESERVED_FILES: u64 = 256;

/// Where connections come from.
pub trait Listener: Send + Sync + 'static {
    /// A connection as accepted, before any handshake.
    type Accepted: Send + 'static;
    /// The stream HTTP is spoken on.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// The next connection and its peer. Must not wait on the peer: every connection's own work
    /// belongs in [`Listener::handshake`].
    fn accept(&self) -> impl Future<Output = io::Result<(Self::Accepted, SocketAddr)>> + Send;

    /// Turns an accepted connection into the stream HTTP is spoken on (a TLS handshake, say).
    fn handshake(
        &self,
        accepted: Self::Accepted,
    ) -> impl Future<Output = io::Result<Self::Io>> + Send;
}

/// Plain TCP.
pub struct Plain(pub TcpListener);

impl Listener for Plain {
    type Accepted = TcpStream;
    type Io = TcpStream;

    async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (tcp, peer) = self.0.accept().await?;
        let _ = tcp.set_nodelay(true);
        Ok((tcp, peer))
    }

    async fn handshake(&self, tcp: TcpStream) -> io::Result<TcpStream> {
        Ok(tcp)
    }
}

/// The limits of [the module](self).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Open connections at most.
    pub max_connections: usize,
    /// Open connections at most from one address (`None`: no limit).
    pub per_address: Option<u32>,
    /// Networks exempt from the per-address limit.
    pub exempt: Vec<IpNet>,
    /// Headers must arrive within this.
    pub header_read: Duration,
    /// A body must arrive within this of its headers.
    pub body_read: Duration,
    /// A kept-alive connection may idle this long.
    pub keep_alive: Duration,
}

impl Limits {
    /// The limits `config` sets.
    pub fn of(config: &Config) -> Self {
        Self {
            max_connections: config
                .max_connections
                .map_or_else(default_max_connections, |n| n as usize),
            per_address: Some(config.max_connections_per_address).filter(|n| *n > 0),
            exempt: config.exam_networks.clone(),
            header_read: Duration::from_millis(config.header_read_timeout_ms),
            body_read: Duration::from_millis(config.body_read_timeout_ms),
            keep_alive: Duration::from_millis(config.keep_alive_timeout_ms),
        }
    }
}

/// The open-file limit less a reserve: each connection is a file, and a server out of files
/// can no longer open its database or accept anyone.
fn default_max_connections() -> usize {
    #[cfg(unix)]
    let files = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(16_384, |(soft, _)| soft);
    #[cfg(not(unix))]
    let files = 16_384u64;
    usize::try_from(files.saturating_sub(RESERVED_FILES).max(64)).unwrap_or(usize::MAX)
}

/// Serves `router` on the connections of `listener` until `shutdown` is cancelled, then stops
/// accepting and returns once every connection has closed (or `drain` has passed). Open and
/// refused connections are counted in `metrics` when given.
pub async fn serve<L: Listener>(
    listener: L,
    router: Router,
    limits: Limits,
    metrics: Option<Arc<Metrics>>,
    shutdown: CancellationToken,
    drain: Duration,
) {
    let listener = Arc::new(listener);
    let gate = Arc::new(Gate::new(&limits, metrics));
    let limits = Arc::new(limits);
    let connections = TaskTracker::new();
    loop {
        let permit = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            permit = gate.total.clone().acquire_owned() => permit.expect("the gate is never closed"),
        };
        let accepted = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (accepted, peer) = match accepted {
            Ok(a) => a,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of files, say: let some connections close before trying again.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                }
            }
        };
        let Some(slot) = gate.admit(peer, permit) else {
            drop(accepted);
            continue;
        };
        connections.spawn(connection(
            listener.clone(),
            accepted,
            peer,
            slot,
            router.clone(),
            limits.clone(),
            shutdown.clone(),
        ));
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(drain, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("some HTTP connections did not finish in time");
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// One connection: its handshake, then HTTP/1.1 with upgrades until it closes.
async fn connection<L: Listener>(
    listener: Arc<L>,
    accepted: L::Accepted,
    peer: SocketAddr,
    slot: Slot,
    router: Router,
    limits: Arc<Limits>,
    shutdown: CancellationToken,
) {
    let started = Instant::now();
    let io = match tokio::time::timeout(limits.header_read, listener.handshake(accepted)).await {
        Ok(Ok(io)) => io,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, %peer, "a connection's handshake failed");
            return;
        }
        Err(_) => return,
    };
    drop(listener);
    let activity = Arc::new(Activity::default());
    let io = Watched {
        io,
        _slot: slot,
        activity: activity.clone(),
        head_deadline: started + limits.header_read,
        header_read: limits.header_read,
        timer: None,
    };
    let body_read = limits.body_read;
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let (router, activity) = (router.clone(), activity.clone());
        async move {
            activity.set(BUSY);
            let read_whole = Arc::new(AtomicBool::new(false));
            let mut request =
                request.map(|body| Body::new(ReadWithin::new(body, body_read, read_whole.clone())));
            request.extensions_mut().insert(ConnectInfo(peer));
            let mut response = router.oneshot(request).await?;
            if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                activity.set(UPGRADED);
            } else if !read_whole.load(Ordering::Acquire) {
                // Answered before its body was read (too large, say): the rest of the body is
                // still on the wire, so the connection cannot serve another request. Saying so
                // keeps the client from sending one on it.
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok::<_, Infallible>(response.map(|body| Answered { body, activity }))
        }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        // hyper's own timer runs from when it starts waiting for a request's headers: on a kept-
        // alive connection that is the idle time. The header limit proper is `Watched`'s.
        .header_read_timeout(limits.keep_alive)
        .keep_alive(true);
    let conn = http
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, %peer, "a connection ended with an error");
            }
        }
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Counts open connections, server-wide and by address.
struct Gate {
    total: Arc<Semaphore>,
    by_address: Mutex<HashMap<AddressKey, u32>>,
    per_address: Option<u32>,
    exempt: Vec<IpNet>,
    /// The second a refusal was last logged (one line a second at most).
    logged: AtomicU64,
    metrics: Option<Arc<Metrics>>,
}

impl Gate {
    fn new(limits: &Limits, metrics: Option<Arc<Metrics>>) -> Self {
        Self {
            total: Arc::new(Semaphore::new(limits.max_connections)),
            by_address: Mutex::default(),
            per_address: limits.per_address,
            exempt: limits.exempt.clone(),
            logged: AtomicU64::new(0),
            metrics,
        }
    }

    /// A place for a connection from `peer`, or `None` when its address holds its share.
    fn admit(self: &Arc<Self>, peer: SocketAddr, permit: OwnedSemaphorePermit) -> Option<Slot> {
        let counted = match self.per_address {
            Some(limit) if !in_exam_network(peer.ip(), &self.exempt) => {
                let key = AddressKey::of(peer.ip());
                let mut by_address = self.by_address.lock().unwrap_or_else(|p| p.into_inner());
                let open = by_address.entry(key).or_default();
                if *open >= limit {
                    drop(by_address);
                    self.refused(key, limit);
                    return None;
                }
                *open += 1;
                Some(key)
            }
            _ => None,
        };
        if let Some(m) = &self.metrics {
            m.http_connections.inc();
        }
        Some(Slot {
            _permit: permit,
            counted,
            gate: self.clone(),
        })
    }

    fn refused(&self, key: AddressKey, limit: u32) {
        if let Some(m) = &self.metrics {
            m.connections_refused.inc();
        }
        let second = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if self.logged.swap(second, Ordering::Relaxed) != second {
            tracing::warn!(
                address = %key,
                limit,
                "a connection was refused: its address holds as many as it may \
                 (--max-connections-per-address; a room behind one address needs --exam-network)"
            );
        }
    }
}

/// A connection's place, given back when the connection's stream is dropped.
struct Slot {
    _permit: OwnedSemaphorePermit,
    counted: Option<AddressKey>,
    gate: Arc<Gate>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(m) = &self.gate.metrics {
            m.http_connections.dec();
        }
        if let Some(key) = self.counted {
            let mut by_address = self
                .gate
                .by_address
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(open) = by_address.get_mut(&key) {
                *open -= 1;
                if *open == 0 {
                    by_address.remove(&key);
                }
            }
        }
    }
}

/// Waiting for (or reading) a request's headers.
const HEAD: u8 = 0;
/// A request is being served.
const BUSY: u8 = 1;
/// Its answer is out: waiting for the next request.
const IDLE: u8 = 2;
/// A WebSocket now: no more HTTP.
const UPGRADED: u8 = 3;

/// What a connection is doing, as its requests tell its stream.
#[derive(Default)]
struct Activity(AtomicU8);

impl Activity {
    fn get(&self) -> u8 {
        self.0.load(Ordering::Acquire)
    }

    fn set(&self, phase: u8) {
        self.0.store(phase, Ordering::Release);
    }

    /// An answer was sent whole (its body dropped): the connection idles, unless it was upgraded.
    fn answered(&self) {
        let _ = self
            .0
            .compare_exchange(BUSY, IDLE, Ordering::AcqRel, Ordering::Acquire);
    }
}

/// The connection's stream, closing it when a request's headers take too long, and holding its
/// place in the [`Gate`] for as long as it lives (an upgraded socket's too).
struct Watched<S> {
    io: S,
    _slot: Slot,
    activity: Arc<Activity>,
    head_deadline: Instant,
    header_read: Duration,
    /// Armed only while headers are awaited and the stream has nothing to read.
    timer: Option<Pin<Box<Sleep>>>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.activity.get() {
            HEAD => {
                if Instant::now() >= this.head_deadline {
                    return Poll::Ready(Err(timed_out("request headers")));
                }
                let read = Pin::new(&mut this.io).poll_read(cx, buf);
                if read.is_pending() {
                    let deadline = this.head_deadline;
                    let timer = this
                        .timer
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                    if timer.deadline() != deadline {
                        timer.as_mut().reset(deadline);
                    }
                    if timer.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Err(timed_out("request headers")));
                    }
                }
                read
            }
            IDLE => {
                // Idling is hyper's to time; the first byte of the next request starts the clock
                // for its headers.
                let before = buf.filled().len();
                let read = Pin::new(&mut this.io).poll_read(cx, buf);
                if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before {
                    this.head_deadline = Instant::now() + this.header_read;
                    let _ = this.activity.0.compare_exchange(
                        IDLE,
                        HEAD,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    );
                }
                read
            }
            phase => {
                if phase == UPGRADED {
                    // A live socket lives long: it keeps no timer.
                    this.timer = None;
                }
                Pin::new(&mut this.io).poll_read(cx, buf)
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("the client took too long to send the {what}"),
    )
}

/// A request body that must arrive whole within a time of its headers.
struct ReadWithin {
    body: Incoming,
    limit: Duration,
    /// Made on the first wait: most bodies are empty or arrive with their headers.
    deadline: Option<Pin<Box<Sleep>>>,
    started: Instant,
    /// Set once the body has been read to its end (at once for an empty one).
    read_whole: Arc<AtomicBool>,
}

impl ReadWithin {
    fn new(body: Incoming, limit: Duration, read_whole: Arc<AtomicBool>) -> Self {
        if http_body::Body::is_end_stream(&body) {
            read_whole.store(true, Ordering::Release);
        }
        Self {
            body,
            limit,
            deadline: None,
            started: Instant::now(),
            read_whole,
        }
    }
}

impl http_body::Body for ReadWithin {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                if frame.is_none() {
                    this.deadline = None;
                    this.read_whole.store(true, Ordering::Release);
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let at = this.started + this.limit;
                let deadline = this
                    .deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
                ready!(deadline.as_mut().poll(cx));
                Poll::Ready(Some(Err(Box::new(timed_out("request body")))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A response body that tells the connection, once dropped (sent whole, or abandoned), that the
/// request is over.
struct Answered {
    body: Body,
    activity: Arc<Activity>,
}

impl http_body::Body for Answered {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Answered {
    fn drop(&mut self) {
        self.activity.answered();
    }
}

//! Prometheus metrics, served at `/metrics`.

use crate::live::hub::ConnKind;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label of the open-connection gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    kind: &'static str,
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    open: Family<KindLabel, Gauge>,
    /// Frames received on sockets.
    pub frames_in: Counter,
    /// Frames sent on sockets and event streams.
    pub frames_out: Counter,
    /// Time from a save's arrival to its acknowledgement, in seconds.
    pub ack_latency: Histogram,
    /// Successful sign-ins.
    pub sign_ins: Counter,
    /// Students blocked by a second sign-in.
    pub blocks: Counter,
    /// Sessions revoked.
    pub invalidations: Counter,
    hashing_waiting: Gauge,
    hashing_running: Gauge,
    hashing_memory: Gauge,
    /// Open HTTP connections on the main address (upgraded sockets included).
    pub http_connections: Gauge,
    /// Connections closed at once because their address held as many as it may.
    pub connections_refused: Counter,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("invigil");
        let open = Family::<KindLabel, Gauge>::default();
        let frames_in = Counter::default();
        let frames_out = Counter::default();
        let ack_latency = Histogram::new(exponential_buckets(0.000_25, 2.0, 16));
        let sign_ins = Counter::default();
        let blocks = Counter::default();
        let invalidations = Counter::default();
        registry.register(
            "open_connections",
            "Open live connections by kind (socket, stream)",
            open.clone(),
        );
        registry.register(
            "frames_in",
            "Frames received on live sockets",
            frames_in.clone(),
        );
        registry.register(
            "frames_out",
            "Frames sent on live sockets and event streams",
            frames_out.clone(),
        );
        registry.register(
            "answer_ack_seconds",
            "Time from a save's arrival to its acknowledgement",
            ack_latency.clone(),
        );
        registry.register("sign_ins", "Successful sign-ins", sign_ins.clone());
        registry.register(
            "blocks",
            "Students blocked by a second sign-in",
            blocks.clone(),
        );
        registry.register(
            "session_invalidations",
            "Sessions revoked",
            invalidations.clone(),
        );
        let (hashing_waiting, hashing_running, hashing_memory) =
            (Gauge::default(), Gauge::default(), Gauge::default());
        registry.register(
            "hashing_waiting",
            "Password hashes and verifications waiting for a worker",
            hashing_waiting.clone(),
        );
        registry.register(
            "hashing_running",
            "Password hashes and verifications running",
            hashing_running.clone(),
        );
        registry.register(
            "hashing_memory_bytes",
            "Argon2 memory held by the hashing workers",
            hashing_memory.clone(),
        );
        let (http_connections, connections_refused) = (Gauge::default(), Counter::default());
        registry.register(
            "http_connections",
            "Open HTTP connections, upgraded sockets included",
            http_connections.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections closed at once: their address held as many as it may",
            connections_refused.clone(),
        );
        Self {
            registry,
            open,
            frames_in,
            frames_out,
            ack_latency,
            sign_ins,
            blocks,
            invalidations,
            hashing_waiting,
            hashing_running,
            hashing_memory,
            http_connections,
            connections_refused,
        }
    }

    /// The hashing pool's state, set before each rendering.
    pub fn hashing(&self, waiting: usize, running: usize, memory_kib: u64) {
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.hashing_waiting.set(gauge(waiting as u64));
        self.hashing_running.set(gauge(running as u64));
        self.hashing_memory.set(gauge(memory_kib * 1024));
    }

    fn gauge(&self, kind: ConnKind) -> Gauge {
        let kind = match kind {
            ConnKind::Socket => "socket",
            ConnKind::Stream => "stream",
        };
        self.open.get_or_create(&KindLabel { kind }).clone()
    }

    /// A connection opened.
    pub fn connection_opened(&self, kind: ConnKind) {
        self.gauge(kind).inc();
    }

    /// A connection closed.
    pub fn connection_closed(&self, kind: ConnKind) {
        self.gauge(kind).dec();
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

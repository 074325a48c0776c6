//! What the conductor and its worker processes say to each other: one JSON object per line, the
//! conductor's [`Command`]s on a worker's stdin and its [`Reply`]s on the worker's stdout.
//!
//! Times cross the process boundary as nanoseconds of the machine's monotonic clock
//! ([`crate::clock`]), which every process on the machine shares.

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};

/// How a server under test speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flavor {
    /// invigil's contract: the token in `Authorization`, `WELCOME`, a snapshot, `SNAPSHOT_END`,
    /// `HEARTBEAT` both ways.
    Invigil,
    /// A peer on a plain WebSocket: the token in `Authorization`, then `WELCOME`, then broadcasts.
    Plain,
    /// A Socket.IO peer: Engine.IO v4 over a WebSocket, the token in the namespace's `auth`.
    SocketIo,
}

/// A server under test, as a worker reaches it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Endpoint {
    /// How it speaks.
    pub flavor: Flavor,
    /// Where it listens.
    pub addr: SocketAddr,
}

/// One student a worker plays.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Credential {
    /// Their username.
    pub username: String,
    /// Their session token.
    pub token: String,
}

/// A conductor's order to a worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    /// Opens one socket per student (at most `in_flight` handshakes at a time) and answers once
    /// each is ready or has failed.
    Connect {
        /// The server.
        endpoint: Endpoint,
        /// The local address the sockets are bound to (127.0.0.x: each source address has its own
        /// range of ephemeral ports).
        source: IpAddr,
        /// The students.
        students: Vec<Credential>,
        /// How often each socket says it is alive.
        heartbeat_ms: u64,
        /// Handshakes at once.
        in_flight: usize,
    },
    /// From now on, note when each socket receives the next `EVALUATION_UPDATE` whose reason is
    /// `phase_changed`.
    Arm {
        /// Tells one measurement from the next.
        generation: u64,
    },
    /// Answers with the receipt times of `generation` once every socket has one, or at the timeout.
    Collect {
        /// The measurement.
        generation: u64,
        /// How long to wait.
        timeout_ms: u64,
    },
    /// Every student saves answers as fast as acknowledgements come back (one in flight each).
    SaveLoop {
        /// The evaluation.
        evaluation_id: String,
        /// The questions saved in turn.
        questions: Vec<String>,
        /// Saves during this long first are not measured.
        warmup_ms: u64,
        /// Then saves are measured for this long.
        duration_ms: u64,
        /// Size of each answer's content.
        content_bytes: usize,
        /// Revisions start above this, so that they rise across the loops of a run.
        revision_base: u64,
    },
    /// Every student sends one save and keeps it until it is acknowledged, resending it after every
    /// reconnection; answers once all are sent (not acknowledged).
    SaveOnce {
        /// The evaluation.
        evaluation_id: String,
        /// The question.
        question_id: String,
        /// The revision starts above this.
        revision_base: u64,
    },
    /// Answers once every socket that was lost is back with its snapshot and every save is
    /// acknowledged, or at the timeout.
    Settle {
        /// How long to wait.
        timeout_ms: u64,
    },
    /// Every student fetches `path` once a second over a keep-alive HTTP/1.1 connection of their
    /// own, for `duration_ms`.
    Poll {
        /// The server.
        addr: SocketAddr,
        /// The local address.
        source: IpAddr,
        /// The students.
        students: Vec<Credential>,
        /// What each one fetches.
        path: String,
        /// For how long.
        duration_ms: u64,
    },
    /// From now on, note how late each socket's `HEARTBEAT`s arrive and which sockets are lost.
    Watch,
    /// Stops watching and answers with what was noted.
    Watched,
    /// Answers with the traffic counted so far.
    Counters,
    /// Closes every socket.
    Disconnect,
}

/// A worker's answer to one command.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// After `Connect`.
    Connected {
        /// Sockets ready (`SNAPSHOT_END`, or `WELCOME` from a peer).
        ready: usize,
        /// Sockets that could not be opened.
        failed: usize,
        /// The first reason one could not.
        first_error: Option<String>,
    },
    /// After `Arm`.
    Armed,
    /// After `Collect`.
    Received {
        /// When each socket received the update (monotonic ns), in no order.
        times_ns: Vec<u64>,
        /// Sockets that did not receive it in time.
        missing: usize,
    },
    /// After `SaveLoop`.
    Saved {
        /// Acknowledgements in the measured window.
        acks: u64,
        /// Saves acknowledged with another revision, or rejected.
        refused: u64,
        /// Students whose socket failed during the loop.
        broken: u64,
        /// Each measured save's time from sending to its acknowledgement, in µs.
        latencies_us: Vec<u32>,
    },
    /// After `SaveOnce`.
    Sent,
    /// After `Settle`.
    Settled {
        /// When each lost socket was back with its snapshot (monotonic ns), in no order.
        back_ns: Vec<u64>,
        /// Sockets still not back.
        not_back: usize,
        /// Per student: the highest revision acknowledged, and the highest sent.
        revisions: Vec<Revisions>,
    },
    /// After `Poll`.
    Polled {
        /// Requests answered with 200.
        ok: u64,
        /// Requests that failed.
        failed: u64,
        /// Each request's time to its answer, in µs.
        latencies_us: Vec<u32>,
    },
    /// After `Watched`.
    Watched {
        /// For each `HEARTBEAT` received while watching: how much later than one period after
        /// the socket's previous one it came, in µs (0 when on time).
        lateness_us: Vec<u32>,
        /// Sockets lost while watching.
        lost: u64,
    },
    /// After `Counters`.
    Counters(Traffic),
    /// After `Disconnect`.
    Disconnected,
    /// A command could not be carried out.
    Failed {
        /// Why.
        message: String,
    },
}

/// What one student of a storm saved.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Revisions {
    /// Who.
    pub username: String,
    /// The highest revision the server acknowledged as stored.
    pub acked: u64,
    /// The highest revision sent.
    pub sent: u64,
}

/// Traffic counted at a worker's sockets, both directions, framing and headers included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traffic {
    /// Bytes read from the server.
    pub bytes_in: u64,
    /// Bytes written to the server.
    pub bytes_out: u64,
    /// Messages (frames or HTTP responses) received.
    pub messages_in: u64,
    /// Messages (frames or HTTP requests) sent.
    pub messages_out: u64,
}

impl Traffic {
    /// The traffic of `later` minus this.
    pub fn until(self, later: Traffic) -> Traffic {
        Traffic {
            bytes_in: later.bytes_in - self.bytes_in,
            bytes_out: later.bytes_out - self.bytes_out,
            messages_in: later.messages_in - self.messages_in,
            messages_out: later.messages_out - self.messages_out,
        }
    }

    /// Both added.
    pub fn plus(self, other: Traffic) -> Traffic {
        Traffic {
            bytes_in: self.bytes_in + other.bytes_in,
            bytes_out: self.bytes_out + other.bytes_out,
            messages_in: self.messages_in + other.messages_in,
            messages_out: self.messages_out + other.messages_out,
        }
    }
}

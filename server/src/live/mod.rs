//! Live connections: the socket, the event stream, and the hub between them and the store.
//!
//! - [`event`]: what a committed change means for connections, and the [`event::Bus`] carrying it.
//! - [`hub`]: this node's registry of connections and the dispatcher routing events to them.
//! - [`mailbox`]: a connection's bounded queue of outgoing frames.
//! - [`heard`]: when a connection was last heard from, on the monotonic clock.
//! - [`conn`]: a connection's outgoing side (welcome, snapshot, events, heartbeats, close).
//! - [`ws`] and [`sse`]: the two transports.

/// The query of `GET /api/ws` and `GET /api/events`: `?additions=1` asks for the console's added
/// message types ([`invigil_protocol::ConsoleMessage`]) besides the contract's.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LiveQuery {
    /// `1`: the console's added message types too.
    additions: Option<String>,
}

impl LiveQuery {
    /// Whether the added message types were asked for.
    pub fn additions(&self) -> bool {
        matches!(self.additions.as_deref(), Some("1" | "true" | "yes"))
    }
}

pub mod conn;
pub mod event;
pub mod heard;
pub mod hub;
pub mod mailbox;
pub mod sse;
pub mod ws;

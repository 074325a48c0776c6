//! Live connections: the socket, the event stream, and the hub between them and the store.
//!
//! - [`event`]: what a committed change means for connections, and the [`event::Bus`] carrying it.
//! - [`hub`]: this node's registry of connections and the dispatcher routing events to them.
//! - [`conn`]: a connection's outgoing side (welcome, snapshot, events, heartbeats, close).
//! - [`ws`] and [`sse`]: the two transports.

pub mod conn;
pub mod event;
pub mod hub;
pub mod sse;
pub mod ws;

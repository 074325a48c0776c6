//! `invigil-client`: the headless exam engine of the desktop app. It signs a student in, keeps
//! the session token in the OS keyring, holds the live socket, and never loses an answer: every
//! edit is on disk before it is sent and stays there until the server acknowledges it. No Tauri
//! here: the desktop shell (`invigil-desktop`) is a thin layer over [`Engine`].
//!
//! # Layout
//!
//! ```text
//! engine    Engine: state, commands (sign in/out, join, open, edit, submit, export), flusher
//! live      the socket: connect, heartbeats, silence watchdog, backoff, server frames
//! outbox    durable per-answer records (tmp + fsync + rename), acknowledgements, revisions
//! vault     the session token in the OS keyring (keyring-core stores; the mock in tests)
//! clock     the server's time from WELCOME/HEARTBEAT, counted on a monotonic clock
//! backoff   full-jitter exponential reconnection delays
//! network   what the OS says about the network (no network vs unreachable server)
//! api       the HTTP calls (reqwest, rustls)
//! view      what the front end shows: serializable views and events
//! export    the answers-export file for the professor (docs/PROTOCOL.md)
//! config    server URL and data folder (INVIGIL_SERVER_URL, INVIGIL_DATA_DIR); plain http only
//!           to this computer unless INVIGIL_ALLOW_INSECURE=1
//! error     the one error type, with a stable kind for the front end
//! ```

pub mod api;
pub mod backoff;
pub mod clock;
pub mod config;
pub mod engine;
pub mod error;
pub mod export;
mod live;
pub mod network;
pub mod outbox;
pub mod vault;
pub mod view;

pub use config::{ClientConfig, ServerUrl};
pub use engine::Engine;
pub use error::{Error, Result};
pub use vault::{KeyringVault, NoVault, Vault};

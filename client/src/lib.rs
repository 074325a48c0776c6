//! `invigil-client`: the headless exam engine of the desktop app. It signs a student in, keeps
//! the session token in the OS keyring, holds the live socket, and never loses an answer: every
//! edit is on disk before it is sent and stays there until the server acknowledges it. No Tauri
//! here: the desktop shell (`invigil-desktop`) is a thin layer over [`Engine`].
//!
//! # Layout
//!
//! ```text
//! engine    Engine: the commands (sign in/out, join, open, edit, submit, export), start-up
//! state     the shared state behind one lock, numbered events, credentials
//! delivery  answers to and from the server: reconciling after WELCOME, sends, acks, refusals
//! flusher   typing to disk within FLUSH_DELAY, retries of refused writes; the deadline task
//! live      the socket: connect, heartbeats, silence watchdog, backoff, server frames, PUT lane
//! show      the views of `view` built from the state; the proctoring settings that apply to
//!           the student (`effective_proctoring`)
//! outbox    durable per-answer records (tmp + fsync + rename), acknowledgements, revisions
//! integrity the proctoring events waiting for the server: one durable file each, like answers
//! folder    the data folder's other files: install id, session note, evaluation cache
//! vault     the session token in the OS keyring (keyring-core stores; the mock in tests)
//! clock     the server's time from WELCOME/HEARTBEAT, counted on a monotonic clock
//! backoff   full-jitter exponential reconnection delays
//! network   what the OS says about the network (no network vs unreachable server)
//! api       the HTTP calls (reqwest, rustls)
//! trust     the certificate authorities trusted over https/wss: the platform's + INVIGIL_CA_FILE
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
mod delivery;
pub mod engine;
pub mod error;
pub mod export;
mod flusher;
mod folder;
pub mod integrity;
mod live;
pub mod network;
pub mod outbox;
mod show;
mod state;
pub mod trust;
pub mod vault;
pub mod view;

pub use config::{ClientConfig, ServerUrl};
pub use engine::Engine;
pub use error::{Error, Result};
pub use vault::{KeyringVault, NoVault, Vault};

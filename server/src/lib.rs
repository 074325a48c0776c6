//! The invigil server: the HTTP API, the live socket and event stream, storage, and the staff
//! console, all from one binary.
//!
//! # Layout
//!
//! ```text
//! main.rs       parse configuration, start tracing, call server::run
//! config        flags and environment variables (one typed struct)
//! cli           administration subcommands (users, evaluations) on the database, for scripts
//! backup        backup and restore of a SQLite database, safe while the server runs
//! console       the staff console (ui/console/), embedded, served at /
//! server        bind (listen backlog 4096), run, graceful shutdown
//! transport     the accept loop: connection caps, read timeouts for slow clients, HTTP/1.1
//!               with upgrades, generic over the stream (plain TCP, or TLS)
//! tls           --tls-cert/--tls-key: rustls (ring), the certificate reloaded on SIGHUP
//! app           AppState and the router
//! http/         the JSON API: accounts, evaluations, answers (+ the ApiJson extractor)
//! auth/         tokens (only hashes stored), the Caller extractor, origins; hashing (the one
//!               bounded argon2id pool), throttle (sign-in limits, counted before hashing)
//! live/         the socket and SSE: event (what a commit means), hub (registry + dispatcher),
//!               conn (welcome, snapshot, events, heartbeats), ws, sse
//! store/        the storage interface, its rules, and the SQLite engine (group commit)
//! domain        values parsed at the edge (Username, Revision, questions)
//! memory        freed memory handed back to the system after a burst (malloc_trim)
//! metrics       Prometheus metrics at /metrics
//! demo          --demo accounts and evaluation
//! error         the one error type, rendered as the contract's error body
//! files         rosters (CSV in), answer and audit exports (CSV out), desktop answer files (in)
//! ```
//!
//! A request flows handler → [`store::Store`] (one atomic operation) → after the commit, events on
//! the [`live::event::Bus`] in commit order → [`live::hub::Hub`] → each concerned connection's
//! bounded queue → its writer.

pub mod app;
pub mod auth;
pub mod backup;
pub mod cli;
pub mod config;
pub mod console;
pub mod demo;
pub mod domain;
pub mod error;
pub mod files;
pub mod http;
pub mod live;
pub mod memory;
pub mod metrics;
pub mod server;
pub mod store;
pub mod tls;
pub mod transport;

pub use app::{AppState, app};
pub use config::Config;
pub use server::{bind, run};

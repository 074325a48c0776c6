//! The engine's shared state: what one signed-in student's app holds, behind one short-held lock
//! that is never held across an `await`, and the few helpers every part of the engine uses on it
//! (the lock, numbered events, the session's credentials, the connection state).
//!
//! The parts that act on it sit beside it, each with one job: [`crate::engine`] (the commands),
//! [`crate::delivery`] (answers between the outbox and the server), [`crate::flusher`] (typing
//! to disk), [`crate::live`] (the socket) and [`crate::show`] (the views the front end reads).

use crate::api::Api;
use crate::clock::ServerClock;
use crate::config::{ClientConfig, ServerUrl};
use crate::error::{Error, Result};
use crate::integrity::IntegrityOutbox;
use crate::outbox::{self, Key, Outbox, Record};
use crate::vault::Vault;
use crate::view::{ConnectionState, ConnectionView, Event, Numbered};
use invigil_protocol::{ErrorCode, Evaluation, Participation, Timestamp, User};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, broadcast, mpsc};
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// How long typing may stay only in memory: the first unsaved keystroke is on disk (fsync'ed)
/// within this delay plus one write, well under half a second.
pub const FLUSH_DELAY: Duration = Duration::from_millis(200);
/// The largest answer the server accepts, in bytes.
pub const MAX_ANSWER_BYTES: usize = 1024 * 1024 - 1024;
/// The heartbeat assumed before the server has said its own.
pub const DEFAULT_HEARTBEAT_MS: u64 = 5000;

/// A session token; never printed.
#[derive(Clone)]
pub(crate) struct Token(pub(crate) String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

/// What the engine shares with its tasks.
pub(crate) struct Shared {
    pub(crate) config: ClientConfig,
    /// What the engine trusts over https and wss.
    pub(crate) tls: Arc<rustls::ClientConfig>,
    pub(crate) vault: Arc<dyn Vault>,
    pub(crate) install_id: String,
    pub(crate) state: Mutex<State>,
    pub(crate) events: broadcast::Sender<Numbered>,
    /// The number of the last event sent (changed only under the state lock).
    pub(crate) seq: std::sync::atomic::AtomicU64,
    pub(crate) wake_flusher: Notify,
    pub(crate) wake_deadlines: Notify,
    pub(crate) write_lock: tokio::sync::Mutex<()>,
    pub(crate) session_lock: tokio::sync::Mutex<()>,
    pub(crate) tasks: Mutex<Vec<AbortHandle>>,
}

/// The engine's state.
pub(crate) struct State {
    pub(crate) server_url: ServerUrl,
    pub(crate) vault_problem: Option<String>,
    pub(crate) session: Option<Active>,
    pub(crate) connection: ConnectionView,
    pub(crate) evaluations: BTreeMap<String, Held>,
    pub(crate) outbox: Option<Outbox>,
    /// The proctoring events waiting for the server, of the same user and server as `outbox`.
    pub(crate) integrity: Option<IntegrityOutbox>,
    pub(crate) drafts: BTreeMap<Key, Draft>,
    pub(crate) write_back: BTreeSet<Key>,
    /// Records held in memory that the disk refused (full, read-only, failing): sent all the
    /// same, written again every [`STORAGE_RETRY`] from `retry_at` on.
    pub(crate) unwritten: BTreeSet<Key>,
    pub(crate) retry_at: Option<Instant>,
    pub(crate) clock: ServerClock,
    pub(crate) link: Option<Link>,
    pub(crate) live: Option<AbortHandle>,
    pub(crate) storage_problem: Option<String>,
    pub(crate) heartbeat_ms: u64,
    /// A frame this long or longer is not sent on the socket: its answer goes by `PUT`.
    /// Lowered when the server closes a socket with 1009 (message too big) all the same.
    pub(crate) frame_limit: usize,
    /// The evaluations named by the snapshot being received, while one is.
    pub(crate) snapshot: Option<BTreeSet<String>>,
}

/// The signed-in (or ended) session.
pub(crate) struct Active {
    pub(crate) user: User,
    pub(crate) session_id: String,
    pub(crate) token: Option<Token>,
    pub(crate) ended: Option<String>,
    pub(crate) ended_exam: Option<String>,
    pub(crate) token_remembered: bool,
    pub(crate) dir: PathBuf,
    pub(crate) api: Api,
}

/// An evaluation and the student's participation, as last heard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Held {
    pub(crate) evaluation: Evaluation,
    pub(crate) participation: Participation,
}

pub(crate) struct Draft {
    pub(crate) content: String,
    pub(crate) since: Instant,
}

/// The open socket, for sending.
pub(crate) struct Link {
    pub(crate) id: u64,
    /// Encoded frames for the socket.
    pub(crate) tx: mpsc::Sender<String>,
    /// Answers too large for one frame, for the socket's `PUT` lane ([`crate::live`]).
    pub(crate) large: mpsc::Sender<Record>,
    /// The revision of each answer sent on this socket and not yet answered.
    pub(crate) inflight: HashMap<Key, u64>,
    /// The integrity events sent on this socket and not yet answered.
    pub(crate) integrity_inflight: HashSet<String>,
    /// Whether the server's answers were read since this socket's `WELCOME` (see
    /// [`Shared::reconcile`]): nothing is sent before.
    pub(crate) reconciled: bool,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (every change is a few
        // assignments); keep going rather than lose the answers.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends an event; called with the state lock held, so that its number orders it against
    /// [`Engine::overview`].
    pub(crate) fn emit(&self, event: Event) {
        let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let _ = self.events.send(Numbered { seq, event });
    }

    pub(crate) fn account(&self, url: &ServerUrl) -> String {
        format!("{}@{}", self.install_id, url)
    }

    pub(crate) fn user_dir(&self, url: &ServerUrl, username: &str) -> PathBuf {
        self.config
            .data_dir
            .join("servers")
            .join(url.storage_key())
            .join(outbox::encode_name(username))
    }

    pub(crate) fn credentials(&self) -> Result<(Api, Token)> {
        let state = self.lock();
        let active = state
            .session
            .as_ref()
            .filter(|a| a.ended.is_none())
            .ok_or(Error::NotSignedIn)?;
        let token = active.token.clone().ok_or(Error::NotSignedIn)?;
        Ok((active.api.clone(), token))
    }

    /// Sets the connection state; `since` changes only when the state does.
    pub(crate) fn set_connection(
        &self,
        state: &mut State,
        new: ConnectionState,
        detail: Option<String>,
    ) {
        if state.connection.state == new {
            if state.connection.detail != detail {
                state.connection.detail = detail;
            }
            return;
        }
        state.connection = connection(new, None, detail);
        self.emit(Event::Connection(state.connection.clone()));
    }
}

pub(crate) fn connection(
    state: ConnectionState,
    reason: Option<String>,
    detail: Option<String>,
) -> ConnectionView {
    ConnectionView {
        state,
        since: Timestamp::now(),
        reason,
        detail,
    }
}

pub(crate) fn server_now_ms(state: &State) -> i64 {
    state
        .clock
        .server_now()
        .unwrap_or_else(Timestamp::now)
        .unix_ms()
}

/// Runs blocking disk or keyring work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(Error::Protocol(format!("a background task failed: {e}"))))
}

/// The contract's code of a refused reconnection, as a session-ended reason.
pub(crate) fn ended_reason(code: Option<ErrorCode>) -> String {
    code.map_or("session_invalidated", ErrorCode::as_str)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_reconnection_names_its_code() {
        assert_eq!(
            ended_reason(Some(ErrorCode::SessionExpired)),
            "session_expired"
        );
        assert_eq!(ended_reason(None), "session_invalidated");
    }
}

//! The engine: one signed-in student's state, the commands the front end calls, and the
//! background tasks that keep answers safe.
//!
//! State lives behind one short-held lock and is never held across an `await`. Three tasks run
//! beside the commands:
//!
//! - the **flusher** ([`Shared::write_pass`]) turns typing into durable outbox records within
//!   [`FLUSH_DELAY`] of the first unsaved keystroke, and only then sends them;
//! - the **live** task ([`crate::live`]) holds the socket, reconnects, and feeds server frames back;
//! - the **deadline** task re-evaluates exam states when an `ends_at` passes.

use crate::api::Api;
use crate::clock::ServerClock;
use crate::config::{ClientConfig, ServerUrl};
use crate::error::{Error, Result};
use crate::export::{self, AnswersExport, ExportedAnswer};
use crate::outbox::{self, Key, Outbox, Record};
use crate::vault::Vault;
use crate::view::*;
use invigil_protocol::{
    ClientMessage, ErrorCode, Evaluation, Participation, ParticipationStatus, Phase, Role,
    Timestamp, User,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
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
/// How long opening an exam waits for the server's copy of the answers.
const ANSWERS_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a failed disk write waits before it is tried again.
const STORAGE_RETRY: Duration = Duration::from_secs(1);

/// The exam engine of one desktop app. Dropping it stops its tasks and writes any typing still
/// in memory to disk.
pub struct Engine {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("data_dir", &self.shared.config.data_dir)
            .finish_non_exhaustive()
    }
}

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
    vault: Arc<dyn Vault>,
    install_id: String,
    pub(crate) state: Mutex<State>,
    events: broadcast::Sender<Numbered>,
    /// The number of the last event sent (changed only under the state lock).
    seq: std::sync::atomic::AtomicU64,
    wake_flusher: Notify,
    pub(crate) wake_deadlines: Notify,
    write_lock: tokio::sync::Mutex<()>,
    session_lock: tokio::sync::Mutex<()>,
    tasks: Mutex<Vec<AbortHandle>>,
}

/// The engine's state.
pub(crate) struct State {
    pub(crate) server_url: ServerUrl,
    vault_problem: Option<String>,
    pub(crate) session: Option<Active>,
    pub(crate) connection: ConnectionView,
    pub(crate) evaluations: BTreeMap<String, Held>,
    pub(crate) outbox: Option<Outbox>,
    drafts: BTreeMap<Key, Draft>,
    write_back: BTreeSet<Key>,
    pub(crate) clock: ServerClock,
    pub(crate) link: Option<Link>,
    live: Option<AbortHandle>,
    storage_problem: Option<String>,
    pub(crate) heartbeat_ms: u64,
    /// The evaluations named by the snapshot being received, while one is.
    pub(crate) snapshot: Option<BTreeSet<String>>,
}

/// The signed-in (or ended) session.
pub(crate) struct Active {
    pub(crate) user: User,
    pub(crate) session_id: String,
    pub(crate) token: Option<Token>,
    pub(crate) ended: Option<String>,
    ended_exam: Option<String>,
    token_remembered: bool,
    dir: PathBuf,
    pub(crate) api: Api,
}

/// An evaluation and the student's participation, as last heard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Held {
    pub(crate) evaluation: Evaluation,
    pub(crate) participation: Participation,
}

struct Draft {
    content: String,
    since: Instant,
}

/// The open socket, for sending.
pub(crate) struct Link {
    pub(crate) id: u64,
    pub(crate) tx: mpsc::Sender<ClientMessage>,
    /// The revision of each answer sent on this socket and not yet answered.
    pub(crate) inflight: HashMap<Key, u64>,
}

/// The reason a resumed session is ended when its server is refused as insecure
/// ([`ServerUrl::check_secure`]); the same name as the error's kind.
pub const INSECURE_SERVER: &str = "insecure_server";

/// `session.json`: who was signed in on which server (never the token).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SessionNote {
    server_url: String,
    user: User,
    session_id: String,
    ended: Option<String>,
}

impl Engine {
    /// Starts the engine on `config`'s data folder, resuming the session a previous run left
    /// (its token from `vault`) and connecting at once when there is one.
    pub async fn start(config: ClientConfig, vault: Arc<dyn Vault>) -> Result<Engine> {
        let data_dir = config.data_dir.clone();
        let (install_id, note) = blocking(move || {
            std::fs::create_dir_all(&data_dir).map_err(Error::storage("create", &data_dir))?;
            let install_id = install_id(&data_dir)?;
            let note = read_note(&data_dir);
            Ok((install_id, note))
        })
        .await?;
        let (events, _) = broadcast::channel(1024);
        let vault_problem = vault.problem();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                server_url: config.server_url.clone(),
                vault_problem,
                session: None,
                connection: connection(ConnectionState::SignedOut, None, None),
                evaluations: BTreeMap::new(),
                outbox: None,
                drafts: BTreeMap::new(),
                write_back: BTreeSet::new(),
                clock: ServerClock::new(),
                link: None,
                live: None,
                storage_problem: None,
                heartbeat_ms: DEFAULT_HEARTBEAT_MS,
                snapshot: None,
            }),
            config,
            vault,
            install_id,
            events,
            seq: std::sync::atomic::AtomicU64::new(0),
            wake_flusher: Notify::new(),
            wake_deadlines: Notify::new(),
            write_lock: tokio::sync::Mutex::new(()),
            session_lock: tokio::sync::Mutex::new(()),
            tasks: Mutex::new(Vec::new()),
        });
        {
            let flusher = tokio::spawn(shared.clone().flusher());
            let deadlines = tokio::spawn(shared.clone().deadlines());
            let mut tasks = shared.tasks.lock().expect("tasks lock");
            tasks.push(flusher.abort_handle());
            tasks.push(deadlines.abort_handle());
        }
        if let Some(note) = note {
            shared.resume(note).await?;
        }
        Ok(Engine { shared })
    }

    /// Events from now on. A receiver that falls more than 1024 events behind misses the oldest
    /// (it is told so) and should read [`overview`](Self::overview) again.
    pub fn subscribe(&self) -> broadcast::Receiver<Numbered> {
        self.shared.events.subscribe()
    }

    /// Everything the front end shows, at once.
    pub fn overview(&self) -> Overview {
        let state = self.shared.lock();
        Overview {
            seq: self.shared.seq.load(std::sync::atomic::Ordering::SeqCst),
            session: self.shared.session_view(&state),
            connection: state.connection.clone(),
            evaluations: evaluation_views(&state),
            pending: pending_total(&state),
            server_now_ms: server_now_ms(&state),
            clock_synced: state.clock.is_known(),
            storage_problem: state.storage_problem.clone(),
        }
    }

    /// The server's time now, in milliseconds since the Unix epoch (this computer's clock until
    /// the first connection).
    pub fn server_now_ms(&self) -> i64 {
        server_now_ms(&self.shared.lock())
    }

    /// The id of the current session, while one is active.
    pub fn session_id(&self) -> Option<String> {
        let state = self.shared.lock();
        state
            .session
            .as_ref()
            .filter(|a| a.ended.is_none())
            .map(|a| a.session_id.clone())
    }

    /// The data folder.
    pub fn data_dir(&self) -> &Path {
        &self.shared.config.data_dir
    }

    /// Signs in to `server_url` (or the configured server) and connects. Answers this device
    /// still holds for the same student on that server are delivered once connected.
    pub async fn sign_in(
        &self,
        server_url: Option<&str>,
        username: &str,
        password: &str,
    ) -> Result<SessionView> {
        let shared = &self.shared;
        let _session = shared.session_lock.lock().await;
        let url = {
            let state = shared.lock();
            if let Some(active) = state.session.as_ref().filter(|a| a.ended.is_none()) {
                return Err(Error::AlreadySignedIn(active.user.username.clone()));
            }
            match server_url.map(str::trim).filter(|u| !u.is_empty()) {
                Some(url) => ServerUrl::parse(url)?,
                None => state.server_url.clone(),
            }
        };
        // Before the password goes anywhere.
        url.check_secure(shared.config.allow_insecure)?;
        // Typing of the previous session goes to its own outbox first.
        shared.write_pass(true).await;
        let api = Api::new(url.clone());
        // A busy server (503 `server_busy`) is asked again after its `Retry-After` with jitter,
        // with the same username and password: the student never types them again.
        let login = loop {
            match api.login(username, password, &shared.config.device).await {
                Err(Error::Server {
                    code: ErrorCode::ServerBusy,
                    retry_after,
                    ..
                }) => {
                    let delay = crate::backoff::busy_delay(retry_after, &mut rand::rng());
                    tracing::info!(?delay, "the server is busy; signing in again");
                    shared.emit(Event::SignInBusy {
                        retry_in_secs: delay.as_secs_f64().ceil() as u64,
                    });
                    tokio::time::sleep(delay).await;
                }
                other => break other?,
            }
        };
        if login.user.role != Role::Student {
            let _ = api.logout(&login.token).await;
            return Err(Error::NotAStudent {
                role: login.user.role.as_str(),
            });
        }
        let account = shared.account(&url);
        let vault = shared.vault.clone();
        let token = login.token.clone();
        let saved = tokio::task::spawn_blocking(move || vault.save(&account, &token))
            .await
            .map_err(|e| Error::Vault(e.to_string()))
            .and_then(|r| r);
        if let Err(e) = &saved {
            tracing::warn!(error = %e, "the sign-in cannot be remembered across restarts");
        }
        let dir = shared.user_dir(&url, &login.user.username);
        let note = SessionNote {
            server_url: url.to_string(),
            user: login.user.clone(),
            session_id: login.session_id.clone(),
            ended: None,
        };
        let (outbox, cache) = {
            let (dir, data_dir) = (dir.clone(), shared.config.data_dir.clone());
            blocking(move || {
                write_note(&data_dir, &note)?;
                let outbox = Outbox::open(dir.join("answers"))?;
                Ok((outbox, read_cache(&dir)))
            })
            .await?
        };
        let view = {
            let mut state = shared.lock();
            if let Some(live) = state.live.take() {
                live.abort();
            }
            state.server_url = url.clone();
            if let Err(e) = &saved {
                state.vault_problem = Some(e.to_string());
            }
            state.session = Some(Active {
                user: login.user,
                session_id: login.session_id,
                token: Some(Token(login.token.clone())),
                ended: None,
                ended_exam: None,
                token_remembered: saved.is_ok(),
                dir,
                api,
            });
            state.outbox = Some(outbox);
            state.evaluations = cache;
            state.link = None;
            state.clock = ServerClock::new();
            state.connection = connection(ConnectionState::Connecting, None, None);
            state.live = Some(shared.spawn_live(url, Token(login.token)));
            let view = shared.session_view(&state);
            shared.emit(Event::Session(view.clone()));
            shared.emit(Event::Connection(state.connection.clone()));
            shared.emit(Event::Evaluations(evaluation_views(&state)));
            view
        };
        shared.wake_deadlines.notify_one();
        Ok(view)
    }

    /// Signs out: tells the server (when it can be reached), forgets the token and stops the
    /// connection. Answers still waiting stay on disk for the next sign-in of this student.
    pub async fn sign_out(&self) -> Result<()> {
        let shared = &self.shared;
        let _session = shared.session_lock.lock().await;
        shared.write_pass(true).await;
        let (api, token, url) = {
            let mut state = shared.lock();
            // Stop the socket first, so that the server's SESSION_INVALIDATED (signed_out) is
            // not taken for a session ended by the server.
            if let Some(live) = state.live.take() {
                live.abort();
            }
            state.link = None;
            let active = state.session.as_ref().ok_or(Error::NotSignedIn)?;
            (
                active.api.clone(),
                active.token.clone(),
                state.server_url.clone(),
            )
        };
        if let Some(token) = token
            && let Err(e) = api.logout(&token.0).await
        {
            tracing::warn!(error = %e, "the server was not told of the sign-out");
        }
        let account = shared.account(&url);
        let vault = shared.vault.clone();
        let data_dir = shared.config.data_dir.clone();
        blocking(move || {
            vault.delete(&account)?;
            remove_note(&data_dir)
        })
        .await?;
        let mut state = shared.lock();
        if let Some(live) = state.live.take() {
            live.abort();
        }
        state.session = None;
        state.outbox = None;
        state.evaluations.clear();
        state.drafts.clear();
        state.write_back.clear();
        state.link = None;
        state.connection = connection(ConnectionState::SignedOut, None, None);
        shared.emit(Event::Session(shared.session_view(&state)));
        shared.emit(Event::Connection(state.connection.clone()));
        shared.emit(Event::Evaluations(Vec::new()));
        Ok(())
    }

    /// Joins a running evaluation.
    pub async fn join(&self, evaluation_id: &str) -> Result<EvaluationView> {
        let (api, token) = self.shared.credentials()?;
        let participation = api.join(&token.0, evaluation_id).await?;
        Ok(self.shared.update_participation(participation))
    }

    /// Opens an exam for answering: merges what the server holds (when it can be reached) with
    /// what this computer holds, and returns the content of each answer.
    pub async fn open(&self, evaluation_id: &str) -> Result<ExamContent> {
        let shared = &self.shared;
        let credentials = {
            let state = shared.lock();
            let active = state.session.as_ref().ok_or(Error::NotSignedIn)?;
            if !state.evaluations.contains_key(evaluation_id) {
                return Err(Error::NotFound(format!("evaluation {evaluation_id}")));
            }
            active.token.clone().map(|t| (active.api.clone(), t))
        };
        if let Some((api, token)) = credentials {
            match tokio::time::timeout(ANSWERS_TIMEOUT, api.answers(&token.0, evaluation_id)).await
            {
                Ok(Ok(answers)) => shared.adopt(evaluation_id, &answers),
                Ok(Err(e)) => tracing::info!(error = %e, "the server's answers were not read"),
                Err(_) => tracing::info!("the server's answers did not come in time"),
            }
        }
        let state = shared.lock();
        let held = state
            .evaluations
            .get(evaluation_id)
            .ok_or_else(|| Error::NotFound(format!("evaluation {evaluation_id}")))?;
        let mut answers = BTreeMap::new();
        if let Some(outbox) = &state.outbox {
            for record in outbox
                .records()
                .filter(|r| r.evaluation_id == evaluation_id)
            {
                answers.insert(record.question_id.clone(), record.content.clone());
            }
        }
        for (key, draft) in &state.drafts {
            if key.evaluation_id == evaluation_id {
                answers.insert(key.question_id.clone(), draft.content.clone());
            }
        }
        Ok(ExamContent {
            evaluation: evaluation_view(&state, held),
            answers,
        })
    }

    /// Takes in the new content of an answer as the student types. It is on disk within
    /// [`FLUSH_DELAY`] plus one write, then sent. Whatever the exam's state, what arrives here
    /// is kept: after the end it is stored late, while blocked it waits for the unblock.
    pub fn edit(
        &self,
        evaluation_id: &str,
        question_id: &str,
        content: String,
    ) -> Result<AnswerView> {
        if content.len() > MAX_ANSWER_BYTES {
            return Err(Error::TooLong(MAX_ANSWER_BYTES));
        }
        let shared = &self.shared;
        let view = {
            let mut state = shared.lock();
            if state.session.is_none() || state.outbox.is_none() {
                return Err(Error::NotSignedIn);
            }
            let held = state
                .evaluations
                .get(evaluation_id)
                .ok_or_else(|| Error::NotFound(format!("evaluation {evaluation_id}")))?;
            if !held
                .evaluation
                .questions
                .iter()
                .any(|q| q.id == question_id)
            {
                return Err(Error::NotFound(format!("question {question_id}")));
            }
            let key = Key::new(evaluation_id, question_id);
            let now = Instant::now();
            state
                .drafts
                .entry(key.clone())
                .and_modify(|d| d.content.clone_from(&content))
                .or_insert(Draft {
                    content,
                    since: now,
                });
            answer_view(&state, &key)
        };
        shared.wake_flusher.notify_one();
        Ok(view)
    }

    /// Writes everything typed so far to disk now (the app is closing, or handing in).
    pub async fn flush(&self) {
        self.shared.write_pass(true).await;
    }

    /// Hands in: refused while answers of this evaluation still wait on this computer, so that
    /// nothing typed is left behind.
    pub async fn submit(&self, evaluation_id: &str) -> Result<EvaluationView> {
        self.flush().await;
        let waiting = {
            let state = self.shared.lock();
            state.outbox.as_ref().map_or(0, |o| {
                o.pending()
                    .filter(|r| r.evaluation_id == evaluation_id)
                    .count()
            })
        };
        if waiting > 0 {
            return Err(Error::PendingAnswers(waiting));
        }
        let (api, token) = self.shared.credentials()?;
        let participation = api.submit(&token.0, evaluation_id).await?;
        Ok(self.shared.update_participation(participation))
    }

    /// Writes every answer not acknowledged by the server to a new file in `folder`, in the
    /// format of `docs/PROTOCOL.md`, for the professor to import. The file's name is
    /// [`export::file_name`] (only `[A-Za-z0-9._-]`) and it is written only inside `folder`.
    pub async fn export(&self, folder: &Path) -> Result<ExportSummary> {
        self.flush().await;
        let export = {
            let state = self.shared.lock();
            let active = state.session.as_ref().ok_or(Error::NotSignedIn)?;
            let outbox = state.outbox.as_ref().ok_or(Error::NotSignedIn)?;
            AnswersExport {
                format: export::FORMAT.to_owned(),
                version: export::VERSION,
                exported_at: Timestamp::now(),
                server_url: state.server_url.to_string(),
                username: active.user.username.clone(),
                device: self.shared.config.device.clone(),
                session_ended: active.ended.clone(),
                answers: outbox
                    .pending()
                    .map(|r| {
                        let title = state
                            .evaluations
                            .get(&r.evaluation_id)
                            .map(|h| h.evaluation.title.clone());
                        ExportedAnswer::new(r, title)
                    })
                    .collect(),
            }
        };
        let count = export.answers.len();
        let path = export::path_in(
            folder,
            &export::file_name(&export.username, export.exported_at),
        )?;
        let target = path.clone();
        blocking(move || export::write(&target, &export)).await?;
        Ok(ExportSummary {
            path: path.display().to_string(),
            answers: count,
        })
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let shared = &self.shared;
        for task in shared.tasks.lock().expect("tasks lock").drain(..) {
            task.abort();
        }
        let mut state = shared.lock();
        if let Some(live) = state.live.take() {
            live.abort();
        }
        // Typing still in memory goes to disk now, synchronously: the app is closing.
        let drafts = std::mem::take(&mut state.drafts);
        if let Some(outbox) = state.outbox.as_mut() {
            for (key, draft) in drafts {
                let record = outbox.stage(&key, draft.content);
                match outbox::persist(outbox.dir(), &record) {
                    Ok(()) => outbox.commit(record),
                    Err(e) => tracing::error!(error = %e, "typing could not be saved at exit"),
                }
            }
        }
    }
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

    fn account(&self, url: &ServerUrl) -> String {
        format!("{}@{}", self.install_id, url)
    }

    fn user_dir(&self, url: &ServerUrl, username: &str) -> PathBuf {
        self.config
            .data_dir
            .join("servers")
            .join(url.storage_key())
            .join(outbox::encode_name(username))
    }

    fn credentials(&self) -> Result<(Api, Token)> {
        let state = self.lock();
        let active = state
            .session
            .as_ref()
            .filter(|a| a.ended.is_none())
            .ok_or(Error::NotSignedIn)?;
        let token = active.token.clone().ok_or(Error::NotSignedIn)?;
        Ok((active.api.clone(), token))
    }

    fn spawn_live(self: &Arc<Self>, url: ServerUrl, token: Token) -> AbortHandle {
        tokio::spawn(crate::live::run(self.clone(), url, token)).abort_handle()
    }

    /// Takes up the session a previous run left.
    async fn resume(self: &Arc<Self>, note: SessionNote) -> Result<()> {
        let url = ServerUrl::parse(&note.server_url)?;
        let account = self.account(&url);
        let dir = self.user_dir(&url, &note.user.username);
        let vault = self.vault.clone();
        let wants_token = note.ended.is_none();
        let (outbox, cache, token) = {
            let dir = dir.clone();
            blocking(move || {
                let outbox = Outbox::open(dir.join("answers"))?;
                let token = if wants_token {
                    vault.load(&account)
                } else {
                    Ok(None)
                };
                Ok((outbox, read_cache(&dir), token))
            })
            .await?
        };
        let (token, vault_problem) = match token {
            Ok(token) => (token, None),
            Err(e) => (None, Some(e.to_string())),
        };
        // A session on a server this run may not use (a plain `http://` one on the network, now
        // that INVIGIL_ALLOW_INSECURE is not set) is not resumed: its token stays in the vault
        // for a run that may, and nothing is sent to the server.
        let insecure = url.check_secure(self.config.allow_insecure).is_err();
        let token = token.filter(|_| !insecure);
        let ended = match (&note.ended, &token) {
            (Some(reason), _) => Some(reason.clone()),
            (None, _) if insecure => Some(INSECURE_SERVER.to_owned()),
            (None, None) => Some("sign_in_forgotten".to_owned()),
            (None, Some(_)) => None,
        };
        let mut state = self.lock();
        state.server_url = url.clone();
        if vault_problem.is_some() {
            state.vault_problem = vault_problem;
        }
        state.session = Some(Active {
            user: note.user,
            session_id: note.session_id,
            token: token.clone().map(Token),
            ended: ended.clone(),
            ended_exam: None,
            token_remembered: token.is_some(),
            dir,
            api: Api::new(url.clone()),
        });
        state.outbox = Some(outbox);
        state.evaluations = cache;
        state.connection = match &ended {
            Some(reason) => connection(ConnectionState::SessionEnded, Some(reason.clone()), None),
            None => connection(ConnectionState::Connecting, None, None),
        };
        if let Some(token) = token {
            state.live = Some(self.spawn_live(url, Token(token)));
        }
        drop(state);
        self.wake_deadlines.notify_one();
        Ok(())
    }

    pub(crate) fn session_view(&self, state: &State) -> SessionView {
        let active = state.session.as_ref();
        SessionView {
            server_url: state.server_url.to_string(),
            user: active.map(|a| a.user.clone()),
            signed_in: active.is_some_and(|a| a.ended.is_none()),
            token_remembered: active.is_some_and(|a| a.token_remembered),
            vault_problem: state.vault_problem.clone(),
            ended: active.and_then(|a| {
                a.ended.as_ref().map(|reason| EndedView {
                    reason: reason.clone(),
                    blocked_exam: a.ended_exam.clone(),
                    pending: pending_total(state),
                })
            }),
        }
    }

    /// The server ended the session: forget the token, keep every answer, stop connecting.
    pub(crate) async fn end_session(&self, reason: String) {
        // Serialised with sign-in and sign-out, which write the same note.
        let _session = self.session_lock.lock().await;
        let (note, account) = {
            let mut state = self.lock();
            let sitting = state
                .evaluations
                .values()
                .find(|h| {
                    h.evaluation.phase == Phase::InProgress
                        && matches!(
                            h.participation.status,
                            ParticipationStatus::InProgress | ParticipationStatus::Blocked
                        )
                })
                .map(|h| h.evaluation.title.clone());
            let url = state.server_url.clone();
            let Some(active) = state.session.as_mut() else {
                return;
            };
            if active.ended.is_some() {
                return;
            }
            active.ended = Some(reason.clone());
            active.token = None;
            active.token_remembered = false;
            if reason == "signed_in_elsewhere" {
                active.ended_exam = sitting;
            }
            let note = SessionNote {
                server_url: url.to_string(),
                user: active.user.clone(),
                session_id: active.session_id.clone(),
                ended: Some(reason.clone()),
            };
            state.link = None;
            state.live = None;
            state.connection = connection(ConnectionState::SessionEnded, Some(reason), None);
            self.emit(Event::Session(self.session_view(&state)));
            self.emit(Event::Connection(state.connection.clone()));
            (note, self.account(&url))
        };
        let vault = self.vault.clone();
        let data_dir = self.config.data_dir.clone();
        let result = blocking(move || {
            write_note(&data_dir, &note)?;
            vault.delete(&account)
        })
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "the ended session could not be noted");
        }
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

    fn update_participation(&self, participation: Participation) -> EvaluationView {
        let mut state = self.lock();
        let id = participation.evaluation_id.clone();
        if let Some(held) = state.evaluations.get_mut(&id) {
            held.participation = participation;
        }
        self.emit(Event::Evaluations(evaluation_views(&state)));
        let view = state
            .evaluations
            .get(&id)
            .map(|h| evaluation_view(&state, h));
        drop(state);
        self.wake_deadlines.notify_one();
        view.unwrap_or_else(|| unreachable_view(&id))
    }

    /// Takes in the server's copy of an evaluation's answers.
    fn adopt(&self, evaluation_id: &str, answers: &[invigil_protocol::Answer]) {
        let mut state = self.lock();
        let state = &mut *state;
        let Some(outbox) = state.outbox.as_mut() else {
            return;
        };
        let changed = outbox.adopt_server_answers(evaluation_id, answers);
        let now = Instant::now();
        let mut restage = Vec::new();
        for record in outbox
            .pending()
            .filter(|r| r.evaluation_id == evaluation_id)
        {
            let key = record.key();
            if outbox.collides(&key) && !state.drafts.contains_key(&key) {
                restage.push((key, record.content.clone()));
            }
        }
        for record in &changed {
            state.write_back.insert(record.key());
        }
        for (key, content) in restage {
            state.drafts.insert(
                key,
                Draft {
                    content,
                    since: now.checked_sub(FLUSH_DELAY).unwrap_or(now),
                },
            );
        }
        for record in &changed {
            let event = answer_event(state, &record.key());
            self.emit(Event::Answer(event));
        }
        self.wake_flusher.notify_one();
    }

    /// Sends, on the open socket, every pending answer not already on its way there. Refused
    /// ones are skipped unless `retry_refused` (a reconnect or an unblock may have changed why).
    pub(crate) fn send_pending(
        &self,
        state: &mut State,
        evaluation: Option<&str>,
        retry_refused: bool,
    ) {
        let (Some(outbox), Some(link)) = (state.outbox.as_mut(), state.link.as_mut()) else {
            return;
        };
        if retry_refused {
            match evaluation {
                Some(id) => outbox.clear_rejections(id),
                None => {
                    let ids: BTreeSet<String> =
                        outbox.pending().map(|r| r.evaluation_id.clone()).collect();
                    for id in ids {
                        outbox.clear_rejections(&id);
                    }
                }
            }
        }
        for record in outbox.pending() {
            if evaluation.is_some_and(|id| id != record.evaluation_id)
                || record.rejected.is_some()
                || outbox.collides(&record.key())
            {
                continue;
            }
            let key = record.key();
            if link.inflight.get(&key) == Some(&record.revision) {
                continue;
            }
            if send_record(link, record) {
                link.inflight.insert(key, record.revision);
            } else {
                break;
            }
        }
    }

    /// Handles `ANSWER_ACK`.
    pub(crate) fn acknowledged(&self, state: &mut State, key: Key, revision: u64, late: bool) {
        let Some(outbox) = state.outbox.as_mut() else {
            return;
        };
        let outcome = outbox.acknowledge(&key, revision, late);
        if let Some(link) = state.link.as_mut()
            && link
                .inflight
                .get(&key)
                .is_some_and(|sent| *sent <= revision)
        {
            link.inflight.remove(&key);
        }
        match outcome {
            outbox::Acked::Unknown => return,
            outbox::Acked::Superseded { server_revision } => {
                tracing::info!(
                    question = %key.question_id,
                    server_revision,
                    "the server holds a newer revision from elsewhere; writing this one above it"
                );
                if !state.drafts.contains_key(&key) {
                    let content = state
                        .outbox
                        .as_ref()
                        .and_then(|o| o.get(&key))
                        .map(|r| r.content.clone())
                        .unwrap_or_default();
                    let now = Instant::now();
                    state.drafts.insert(
                        key.clone(),
                        Draft {
                            content,
                            since: now.checked_sub(FLUSH_DELAY).unwrap_or(now),
                        },
                    );
                }
                self.wake_flusher.notify_one();
            }
            outbox::Acked::Stored | outbox::Acked::Earlier => {
                state.write_back.insert(key.clone());
                self.wake_flusher.notify_one();
            }
        }
        let event = answer_event(state, &key);
        self.emit(Event::Answer(event));
    }

    /// Handles `ANSWER_REJECTED`.
    pub(crate) fn rejected(
        &self,
        state: &mut State,
        key: Key,
        revision: u64,
        code: invigil_protocol::RejectCode,
    ) {
        if let Some(link) = state.link.as_mut()
            && link.inflight.get(&key) == Some(&revision)
        {
            link.inflight.remove(&key);
        }
        let Some(outbox) = state.outbox.as_mut() else {
            return;
        };
        if outbox.reject(&key, revision, code) {
            tracing::info!(question = %key.question_id, ?code, "a save was refused; kept on this computer");
            let event = answer_event(state, &key);
            self.emit(Event::Answer(event));
        }
    }

    /// One pass of the flusher: writes due typing (all of it with `all`) and acknowledgements,
    /// then sends what became durable. Returns when the next typing falls due.
    async fn write_pass(&self, all: bool) -> Option<Instant> {
        let _writer = self.write_lock.lock().await;
        let now = Instant::now();
        let (dir, staged, write_back) = {
            let mut state = self.lock();
            let state = &mut *state;
            let Some(outbox) = state.outbox.as_ref() else {
                state.drafts.clear();
                state.write_back.clear();
                return None;
            };
            let due: Vec<Key> = state
                .drafts
                .iter()
                .filter(|(_, d)| all || d.since + FLUSH_DELAY <= now)
                .map(|(k, _)| k.clone())
                .collect();
            let staged: Vec<Record> = due
                .iter()
                .filter_map(|k| {
                    let draft = state.drafts.remove(k)?;
                    // Unchanged typing (the same text again) needs no new revision.
                    let same = outbox
                        .get(k)
                        .is_some_and(|r| r.content == draft.content && !outbox.collides(k));
                    (!same).then(|| outbox.stage(k, draft.content))
                })
                .collect();
            let write_back: Vec<Record> = std::mem::take(&mut state.write_back)
                .into_iter()
                .filter(|k| !due.contains(k))
                .filter_map(|k| outbox.get(&k).cloned())
                .collect();
            for key in &due {
                if !staged.iter().any(|r| &r.key() == key) {
                    let event = answer_event(state, key);
                    self.emit(Event::Answer(event));
                }
            }
            (outbox.dir().to_owned(), staged, write_back)
        };
        if !staged.is_empty() || !write_back.is_empty() {
            let results = blocking(move || {
                let staged: Vec<(Record, Result<()>)> = staged
                    .into_iter()
                    .map(|r| {
                        let result = outbox::persist(&dir, &r);
                        (r, result)
                    })
                    .collect();
                for record in &write_back {
                    if let Err(e) = outbox::persist(&dir, record) {
                        tracing::warn!(error = %e, "an acknowledgement could not be noted on disk");
                    }
                }
                Ok((dir, staged))
            })
            .await;
            if let Ok((dir, staged)) = results {
                self.committed(&dir, staged);
            }
        }
        let state = self.lock();
        state.drafts.values().map(|d| d.since + FLUSH_DELAY).min()
    }

    /// Takes in records the flusher wrote, sends them, and reports disk trouble.
    fn committed(&self, dir: &Path, staged: Vec<(Record, Result<()>)>) {
        let mut state = self.lock();
        let state = &mut *state;
        if state.outbox.as_ref().map(|o| o.dir()) != Some(dir) {
            // Signed out (or in as someone else) meanwhile: the files are in their folder.
            return;
        }
        let mut problem = None;
        for (record, result) in staged {
            let key = record.key();
            match result {
                Ok(()) => {
                    let outbox = state.outbox.as_mut().expect("checked above");
                    outbox.commit(record);
                    if let (Some(link), Some(record)) = (state.link.as_mut(), outbox.get(&key))
                        && record.is_pending()
                        && send_record(link, record)
                    {
                        link.inflight.insert(key.clone(), record.revision);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "typing could not be written to disk; retrying");
                    problem = Some(e.to_string());
                    let retry_at = Instant::now() + STORAGE_RETRY;
                    state.drafts.entry(key.clone()).or_insert(Draft {
                        content: record.content,
                        since: retry_at.checked_sub(FLUSH_DELAY).unwrap_or(retry_at),
                    });
                }
            }
            let event = answer_event(state, &key);
            self.emit(Event::Answer(event));
        }
        if state.storage_problem != problem {
            state.storage_problem.clone_from(&problem);
            self.emit(Event::Storage(problem));
        }
    }

    async fn flusher(self: Arc<Self>) {
        loop {
            let notified = self.wake_flusher.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.write_pass(false).await {
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = &mut notified => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Re-sends the evaluations when the next `ends_at` passes, so that editing locks on time.
    async fn deadlines(self: Arc<Self>) {
        loop {
            let notified = self.wake_deadlines.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let next = {
                let state = self.lock();
                let now = server_now_ms(&state);
                state
                    .evaluations
                    .values()
                    .filter(|h| h.evaluation.phase == Phase::InProgress)
                    .filter_map(|h| h.evaluation.ends_at.map(|t| t.unix_ms()))
                    .filter(|at| *at > now)
                    .min()
                    .map(|at| Duration::from_millis(u64::try_from(at - now).unwrap_or(0)))
            };
            match next {
                Some(wait) => {
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {
                            let state = self.lock();
                            self.emit(Event::Evaluations(evaluation_views(&state)));
                        }
                        _ = &mut notified => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Writes the evaluation cache (what the app shows when it starts without the server).
    pub(crate) async fn save_cache(&self) {
        let (dir, cache) = {
            let state = self.lock();
            let Some(active) = state.session.as_ref() else {
                return;
            };
            let cache: Vec<Held> = state.evaluations.values().cloned().collect();
            (active.dir.clone(), cache)
        };
        let result = blocking(move || {
            std::fs::create_dir_all(&dir).map_err(Error::storage("create", &dir))?;
            let path = dir.join("evaluations.json");
            let bytes = serde_json::to_vec(&cache).expect("evaluations serialize");
            std::fs::write(&path, bytes).map_err(Error::storage("write", &path))
        })
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "the evaluation cache could not be written");
        }
    }
}

fn send_record(link: &mut Link, record: &Record) -> bool {
    link.tx
        .try_send(ClientMessage::AnswerSave {
            evaluation_id: record.evaluation_id.clone(),
            question_id: record.question_id.clone(),
            revision: record.revision,
            content: record.content.clone(),
        })
        .is_ok()
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

fn pending_total(state: &State) -> usize {
    let on_disk = state.outbox.as_ref().map_or(0, |o| o.pending_count());
    let typing = state
        .drafts
        .keys()
        .filter(|k| {
            state
                .outbox
                .as_ref()
                .and_then(|o| o.get(k))
                .is_none_or(|r| !r.is_pending())
        })
        .count();
    on_disk + typing
}

fn pending_in(state: &State, evaluation_id: &str) -> usize {
    let on_disk = state.outbox.as_ref().map_or(0, |o| {
        o.pending()
            .filter(|r| r.evaluation_id == evaluation_id)
            .count()
    });
    let typing = state
        .drafts
        .keys()
        .filter(|k| k.evaluation_id == evaluation_id)
        .filter(|k| {
            state
                .outbox
                .as_ref()
                .and_then(|o| o.get(k))
                .is_none_or(|r| !r.is_pending())
        })
        .count();
    on_disk + typing
}

pub(crate) fn answer_view(state: &State, key: &Key) -> AnswerView {
    let record = state.outbox.as_ref().and_then(|o| o.get(key));
    let drafting = state.drafts.contains_key(key);
    let answer_state = match record {
        _ if drafting => AnswerState::Editing,
        Some(r) if r.is_pending() => AnswerState::Waiting,
        Some(_) => AnswerState::Saved,
        None => AnswerState::Editing,
    };
    AnswerView {
        question_id: key.question_id.clone(),
        revision: record.map_or(0, |r| r.revision),
        state: answer_state,
        late: record.is_some_and(|r| r.late),
        rejected: record.and_then(|r| r.rejected),
    }
}

pub(crate) fn answer_event(state: &State, key: &Key) -> AnswerEvent {
    AnswerEvent {
        evaluation_id: key.evaluation_id.clone(),
        answer: answer_view(state, key),
        pending: pending_in(state, &key.evaluation_id),
        pending_total: pending_total(state),
    }
}

/// What the exam screen shows for `held` at the server's time `now_ms`.
pub(crate) fn exam_state(held: &Held, now_ms: i64) -> ExamState {
    let (evaluation, participation) = (&held.evaluation, &held.participation);
    if !participation.access {
        return ExamState::NoAccess;
    }
    if evaluation.phase == Phase::Draft {
        return ExamState::Draft;
    }
    if participation.status == ParticipationStatus::Submitted {
        return ExamState::Submitted;
    }
    if evaluation.phase != Phase::InProgress {
        return ExamState::Closed;
    }
    if participation.status == ParticipationStatus::Blocked {
        return ExamState::Blocked;
    }
    if evaluation.ends_at.is_some_and(|t| t.unix_ms() <= now_ms) {
        return ExamState::Closed;
    }
    match participation.status {
        ParticipationStatus::NotStarted => ExamState::NotStarted,
        _ => ExamState::Open,
    }
}

pub(crate) fn evaluation_view(state: &State, held: &Held) -> EvaluationView {
    let evaluation = &held.evaluation;
    let mut keys: BTreeSet<Key> = BTreeSet::new();
    if let Some(outbox) = &state.outbox {
        keys.extend(
            outbox
                .records()
                .filter(|r| r.evaluation_id == evaluation.id)
                .map(Record::key),
        );
    }
    keys.extend(
        state
            .drafts
            .keys()
            .filter(|k| k.evaluation_id == evaluation.id)
            .cloned(),
    );
    EvaluationView {
        id: evaluation.id.clone(),
        title: evaluation.title.clone(),
        phase: evaluation.phase,
        ends_at: evaluation.ends_at,
        owner: evaluation.owner.clone(),
        status: held.participation.status,
        blocked_reason: held.participation.blocked_reason,
        access: held.participation.access,
        exam: exam_state(held, server_now_ms(state)),
        questions: evaluation.questions.iter().map(QuestionView::new).collect(),
        answers: keys.iter().map(|k| answer_view(state, k)).collect(),
        pending: pending_in(state, &evaluation.id),
    }
}

pub(crate) fn evaluation_views(state: &State) -> Vec<EvaluationView> {
    let mut views: Vec<EvaluationView> = state
        .evaluations
        .values()
        .map(|h| evaluation_view(state, h))
        .collect();
    views.sort_by(|a, b| a.title.cmp(&b.title).then_with(|| a.id.cmp(&b.id)));
    views
}

fn unreachable_view(id: &str) -> EvaluationView {
    EvaluationView {
        id: id.to_owned(),
        title: String::new(),
        phase: Phase::Draft,
        ends_at: None,
        owner: String::new(),
        status: ParticipationStatus::NotStarted,
        blocked_reason: None,
        access: false,
        exam: ExamState::NoAccess,
        questions: Vec::new(),
        answers: Vec::new(),
        pending: 0,
    }
}

/// Runs blocking disk or keyring work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(Error::Protocol(format!("a background task failed: {e}"))))
}

fn install_id(data_dir: &Path) -> Result<String> {
    let path = data_dir.join("install-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
        _ => {
            let id = uuid::Uuid::new_v4().to_string();
            write_durably(&path, id.as_bytes())?;
            Ok(id)
        }
    }
}

fn read_note(data_dir: &Path) -> Option<SessionNote> {
    let bytes = std::fs::read(data_dir.join("session.json")).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(note) => Some(note),
        Err(e) => {
            tracing::warn!(error = %e, "session.json is damaged; starting signed out");
            None
        }
    }
}

fn write_note(data_dir: &Path, note: &SessionNote) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(note).expect("notes serialize");
    write_durably(&data_dir.join("session.json"), &bytes)
}

fn remove_note(data_dir: &Path) -> Result<()> {
    let path = data_dir.join("session.json");
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::storage("remove", &path)(e)),
    }
}

fn read_cache(dir: &Path) -> BTreeMap<String, Held> {
    let Ok(bytes) = std::fs::read(dir.join("evaluations.json")) else {
        return BTreeMap::new();
    };
    serde_json::from_slice::<Vec<Held>>(&bytes)
        .map(|list| {
            list.into_iter()
                .map(|h| (h.evaluation.id.clone(), h))
                .collect()
        })
        .unwrap_or_default()
}

fn write_durably(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    {
        let mut file = std::fs::File::create(&tmp).map_err(Error::storage("write", &tmp))?;
        file.write_all(bytes)
            .map_err(Error::storage("write", &tmp))?;
        file.sync_all().map_err(Error::storage("sync", &tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(Error::storage("rename", path))?;
    if let Some(dir) = path.parent() {
        outbox::sync_dir(dir)?;
    }
    Ok(())
}

/// The contract's code of a refused reconnection, as a session-ended reason.
pub(crate) fn ended_reason(code: Option<ErrorCode>) -> String {
    code.map_or("session_invalidated", ErrorCode::as_str)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use invigil_protocol::{Access, BlockedReason};

    fn held(phase: Phase, status: ParticipationStatus, ends_at: Option<i64>) -> Held {
        Held {
            evaluation: Evaluation {
                id: "e1".into(),
                title: "Midterm".into(),
                phase,
                ends_at: ends_at.and_then(Timestamp::from_unix_ms),
                access: Access::List,
                owner: "prof".into(),
                questions: vec![],
            },
            participation: Participation {
                evaluation_id: "e1".into(),
                username: "alice".into(),
                status,
                blocked_reason: (status == ParticipationStatus::Blocked)
                    .then_some(BlockedReason::SecondSignIn),
                access: true,
            },
        }
    }

    #[test]
    fn editing_is_open_only_while_running_joined_unblocked_and_before_the_end() {
        use ExamState::*;
        use ParticipationStatus as S;
        let now = 1_000_000;
        let cases = [
            (Phase::InProgress, S::InProgress, None, Open),
            (Phase::InProgress, S::InProgress, Some(now + 1), Open),
            (Phase::InProgress, S::InProgress, Some(now), Closed),
            (Phase::InProgress, S::Blocked, None, Blocked),
            (Phase::Grading, S::InProgress, None, Closed),
            (Phase::Grading, S::Blocked, None, Closed),
            (Phase::Finished, S::InProgress, None, Closed),
            (Phase::InProgress, S::NotStarted, None, NotStarted),
            (Phase::InProgress, S::Submitted, None, Submitted),
            (Phase::Draft, S::NotStarted, None, Draft),
        ];
        for (phase, status, ends_at, expected) in cases {
            assert_eq!(
                exam_state(&held(phase, status, ends_at), now),
                expected,
                "{phase:?} {status:?} {ends_at:?}"
            );
        }
        let mut removed = held(Phase::InProgress, S::InProgress, None);
        removed.participation.access = false;
        assert_eq!(exam_state(&removed, now), NoAccess);
    }

    #[test]
    fn a_refused_reconnection_names_its_code() {
        assert_eq!(
            ended_reason(Some(ErrorCode::SessionExpired)),
            "session_expired"
        );
        assert_eq!(ended_reason(None), "session_invalidated");
    }
}

//! The engine: the commands the front end calls (sign in and out, join, open, edit, hand in,
//! export), and start-up. The state they act on is [`crate::state`]; three tasks run beside
//! them:
//!
//! - the **flusher** ([`crate::flusher`]) turns typing into durable outbox records within
//!   [`FLUSH_DELAY`] of the first unsaved keystroke, and sends them;
//! - the **live** task ([`crate::live`]) holds the socket, reconnects, and feeds server frames back
//!   (answers go through [`crate::delivery`]);
//! - the **deadline** task re-evaluates exam states when an `ends_at` passes.

use crate::api::Api;
use crate::clock::ServerClock;
use crate::config::{ClientConfig, ServerUrl};
use crate::delivery::ANSWERS_TIMEOUT;
use crate::error::{Error, Result};
use crate::export::{self, AnswersExport, ExportedAnswer, ExportedDisplaced};
use crate::folder::{self, SessionNote};
use crate::integrity::{self, IntegrityOutbox, IntegrityReport};
use crate::outbox::{self, Key, Outbox, Record};
use crate::show::*;
use crate::state::{Active, Draft, Shared, State, Token, blocking, connection, server_now_ms};
use crate::vault::Vault;
use crate::view::*;
use invigil_protocol::{ErrorCode, Participation, Role, Timestamp};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, broadcast};
use tokio::task::AbortHandle;
use tokio::time::Instant;

pub use crate::state::{DEFAULT_HEARTBEAT_MS, FLUSH_DELAY, MAX_ANSWER_BYTES};

/// The reason a resumed session is ended when its server is refused as insecure
/// ([`ServerUrl::check_secure`]); the same name as the error's kind.
pub const INSECURE_SERVER: &str = "insecure_server";

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

impl Engine {
    /// Starts the engine on `config`'s data folder, resuming the session a previous run left
    /// (its token from `vault`) and connecting at once when there is one.
    pub async fn start(config: ClientConfig, vault: Arc<dyn Vault>) -> Result<Engine> {
        let data_dir = config.data_dir.clone();
        let ca_file = config.ca_file.clone();
        let (install_id, note, tls) = blocking(move || {
            // A CA file that cannot be used stops the engine: without it the school's server
            // would be refused at every sign-in, for a reason the student cannot fix.
            let tls = crate::trust::client_config(ca_file.as_deref())?;
            outbox::create_dir_durably(&data_dir)?;
            let install_id = folder::install_id(&data_dir)?;
            let note = folder::read_note(&data_dir);
            Ok((install_id, note, tls))
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
                integrity: None,
                drafts: BTreeMap::new(),
                write_back: BTreeSet::new(),
                unwritten: BTreeSet::new(),
                retry_at: None,
                clock: ServerClock::new(),
                link: None,
                live: None,
                storage_problem: None,
                heartbeat_ms: DEFAULT_HEARTBEAT_MS,
                frame_limit: invigil_protocol::MAX_MESSAGE_BYTES,
                snapshot: None,
            }),
            config,
            tls,
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
            session: session_view(&state),
            connection: state.connection.clone(),
            evaluations: evaluation_views(&state),
            pending: pending_total(&state),
            server_now_ms: server_now_ms(&state),
            clock_synced: state.clock.is_known(),
            storage_problem: state.storage_problem.clone(),
            only_in_memory: only_in_memory(&state),
            integrity_pending: integrity_total(&state),
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
        // Typing of the previous session goes to its own outbox first; what its disk refused
        // stays tied to it: no other sign-in while it exists only in memory.
        shared.write_pass(true).await;
        {
            // The same student again on the same server takes their answers over from memory.
            let state = shared.lock();
            let same = state.server_url == url
                && state
                    .session
                    .as_ref()
                    .is_some_and(|a| a.user.username == username.trim());
            let unsaved = only_in_memory(&state);
            if unsaved > 0 && !same {
                return Err(Error::OnlyInMemory(unsaved));
            }
        }
        let api = Api::new(url.clone(), &shared.tls);
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
        let (outbox, integrity, cache) = {
            let (dir, data_dir) = (dir.clone(), shared.config.data_dir.clone());
            blocking(move || {
                folder::write_note(&data_dir, &note)?;
                let outbox = Outbox::open(dir.join("answers"))?;
                let integrity = IntegrityOutbox::open(dir.join("integrity"))?;
                Ok((outbox, integrity, folder::read_cache(&dir)))
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
            // The same student on the same server: the outbox in memory (a superset of the one
            // on disk when the disk refused something) stays.
            if state.outbox.as_ref().map(Outbox::dir) != Some(outbox.dir()) {
                state.outbox = Some(outbox);
                state.drafts.clear();
                state.write_back.clear();
                state.unwritten.clear();
            }
            if state.integrity.as_ref().map(IntegrityOutbox::dir) != Some(integrity.dir()) {
                state.integrity = Some(integrity);
            }
            state.evaluations = cache;
            state.link = None;
            state.clock = ServerClock::new();
            state.connection = connection(ConnectionState::Connecting, None, None);
            state.live = Some(shared.spawn_live(url, Token(login.token)));
            let view = session_view(&state);
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
            let unsaved = only_in_memory(&state);
            if unsaved > 0 {
                return Err(Error::OnlyInMemory(unsaved));
            }
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
            folder::remove_note(&data_dir)
        })
        .await?;
        let mut state = shared.lock();
        if let Some(live) = state.live.take() {
            live.abort();
        }
        state.session = None;
        state.outbox = None;
        state.integrity = None;
        state.evaluations.clear();
        state.drafts.clear();
        state.write_back.clear();
        state.unwritten.clear();
        state.link = None;
        state.connection = connection(ConnectionState::SignedOut, None, None);
        shared.emit(Event::Session(session_view(&state)));
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
        let mut displaced = BTreeMap::new();
        if let Some(outbox) = &state.outbox {
            for record in outbox
                .records()
                .filter(|r| r.evaluation_id == evaluation_id)
            {
                answers.insert(record.question_id.clone(), record.content.clone());
                if !record.displaced.is_empty() {
                    displaced.insert(record.question_id.clone(), record.displaced.clone());
                }
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
            displaced,
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
            let events = state
                .integrity
                .as_ref()
                .map(|i| i.events().cloned().collect())
                .unwrap_or_default();
            answers_export(
                state.server_url.to_string(),
                active.user.username.clone(),
                self.shared.config.device.clone(),
                active.ended.clone(),
                outbox.records().collect(),
                events,
                |id| title_of(&state, id),
            )
        };
        let (count, events) = (export.answers.len(), export.integrity.len());
        let path = export::path_in(
            folder,
            &export::file_name(&export.username, export.exported_at),
        )?;
        let target = path.clone();
        blocking(move || export::write(&target, &export)).await?;
        Ok(ExportSummary {
            path: path.display().to_string(),
            answers: count,
            integrity_events: events,
        })
    }

    /// Keeps a proctoring observation of the desktop shell for `evaluation_id` and sends it: it
    /// becomes an integrity event under a new UUID, written to disk (as an answer is) before it
    /// is sent, and kept until the server acknowledges it, sent again on every new connection,
    /// and written to the answers file if it never reaches the server. Returns the event's id.
    ///
    /// A disk that refuses the write does not lose the event: it is sent from memory and
    /// written again with the answers the disk refused.
    pub async fn report_integrity(
        &self,
        evaluation_id: &str,
        report: IntegrityReport,
    ) -> Result<String> {
        let event = report.into_event(evaluation_id, uuid::Uuid::new_v4().to_string())?;
        let dir = {
            let state = self.shared.lock();
            state
                .integrity
                .as_ref()
                .ok_or(Error::NotSignedIn)?
                .dir()
                .to_owned()
        };
        let written = {
            let (dir, event) = (dir.clone(), event.clone());
            blocking(move || integrity::persist(&dir, &event)).await
        };
        let mut state = self.shared.lock();
        let state = &mut *state;
        let Some(outbox) = state.integrity.as_mut().filter(|i| i.dir() == dir) else {
            // Signed out meanwhile: the event is in its student's folder, for their next
            // sign-in here (or lost with the memory if the disk refused it).
            return written.map(|()| event.event_id);
        };
        if let Err(e) = &written {
            tracing::error!(error = %e, "a proctoring event could not be written to disk; sending it from memory");
            state.retry_at = Some(Instant::now() + crate::flusher::STORAGE_RETRY);
            self.shared.wake_flusher.notify_one();
        }
        outbox.insert(event.clone(), written.is_ok());
        self.shared.send_integrity(state);
        self.shared
            .emit(Event::Integrity(integrity_count(state, evaluation_id)));
        Ok(event.event_id)
    }
}

impl Engine {
    /// Answers waiting on this computer for every server and user that left some, the one
    /// signed in included (what its disk holds), by server then user.
    pub async fn waiting_on_this_computer(&self) -> Result<Vec<WaitingView>> {
        self.flush().await;
        let data_dir = self.shared.config.data_dir.clone();
        blocking(move || {
            Ok(folder::left_on_disk(&data_dir)
                .into_iter()
                .filter_map(|(server_url, username, records)| {
                    let waiting: Vec<&Record> = records.iter().filter(|r| r.is_pending()).collect();
                    Some(WaitingView {
                        server_url,
                        username,
                        answers: waiting.len(),
                        since: waiting.iter().map(|r| r.edited_at).min()?,
                    })
                })
                .collect())
        })
        .await
    }

    /// Writes the answers waiting on this computer for `username` on `server_url` to a new file
    /// in `folder`, as [`export`](Self::export) does for the student signed in (any student:
    /// their answers must not become invisible when someone else signs in here).
    pub async fn export_waiting(
        &self,
        server_url: &str,
        username: &str,
        folder: &Path,
    ) -> Result<ExportSummary> {
        let url = ServerUrl::parse(server_url)?;
        let current = {
            let state = self.shared.lock();
            state.server_url == url
                && state
                    .session
                    .as_ref()
                    .is_some_and(|a| a.user.username == username)
        };
        if current {
            return self.export(folder).await;
        }
        let dir = self.shared.user_dir(&url, username);
        let (device, username) = (self.shared.config.device.clone(), username.to_owned());
        let path = export::path_in(folder, &export::file_name(&username, Timestamp::now()))?;
        let target = path.clone();
        let (count, events) = blocking(move || {
            let records = outbox::read_records(&dir.join("answers"));
            let events = integrity::read_events(&dir.join("integrity"));
            let titles = folder::read_cache(&dir);
            let export = answers_export(
                url.to_string(),
                username,
                device,
                None,
                records.iter().collect(),
                events,
                |id| titles.get(id).map(|h| h.evaluation.title.clone()),
            );
            export::write(&target, &export)?;
            Ok((export.answers.len(), export.integrity.len()))
        })
        .await?;
        Ok(ExportSummary {
            path: path.display().to_string(),
            answers: count,
            integrity_events: events,
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
        // Typing still in memory, and what the disk refused before, goes to disk now,
        // synchronously: the app is closing.
        let drafts = std::mem::take(&mut state.drafts);
        let unwritten = std::mem::take(&mut state.unwritten);
        if let Some(outbox) = state.outbox.as_mut() {
            for (key, draft) in drafts {
                let record = outbox.stage(&key, draft.content);
                match outbox::persist(outbox.dir(), &record) {
                    Ok(()) => outbox.commit(record),
                    Err(e) => tracing::error!(error = %e, "typing could not be saved at exit"),
                }
            }
            for record in unwritten.iter().filter_map(|k| outbox.get(k)) {
                if let Err(e) = outbox::persist(outbox.dir(), record) {
                    tracing::error!(error = %e, "an answer could not be saved at exit");
                }
            }
        }
        if let Some(events) = state.integrity.as_ref() {
            for event in events.unwritten() {
                if let Err(e) = integrity::persist(events.dir(), &event) {
                    tracing::error!(error = %e, "a proctoring event could not be saved at exit");
                }
            }
        }
    }
}

impl Shared {
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
        let (outbox, integrity, cache, token) = {
            let dir = dir.clone();
            blocking(move || {
                let outbox = Outbox::open(dir.join("answers"))?;
                let integrity = IntegrityOutbox::open(dir.join("integrity"))?;
                let token = if wants_token {
                    vault.load(&account)
                } else {
                    Ok(None)
                };
                Ok((outbox, integrity, folder::read_cache(&dir), token))
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
            api: Api::new(url.clone(), &self.tls),
        });
        state.outbox = Some(outbox);
        state.integrity = Some(integrity);
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
}

/// An answers file of `records` (the waiting ones, and the texts they displaced).
fn answers_export(
    server_url: String,
    username: String,
    device: String,
    session_ended: Option<String>,
    records: Vec<&Record>,
    integrity: Vec<invigil_protocol::IntegrityEvent>,
    title: impl Fn(&str) -> Option<String>,
) -> AnswersExport {
    AnswersExport {
        format: export::FORMAT.to_owned(),
        version: export::VERSION,
        exported_at: Timestamp::now(),
        server_url,
        username,
        device,
        session_ended,
        answers: records
            .iter()
            .filter(|r| r.is_pending())
            .map(|r| ExportedAnswer::new(r, title(&r.evaluation_id)))
            .collect(),
        displaced: records
            .iter()
            .flat_map(|r| {
                r.displaced
                    .iter()
                    .map(|text| ExportedDisplaced::new(r, title(&r.evaluation_id), text))
                    .collect::<Vec<_>>()
            })
            .collect(),
        integrity,
    }
}

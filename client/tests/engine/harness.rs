//! The test bench: the real server, proxy and staff of `invigil_e2e::server`, and students driving
//! an [`Engine`]. Waiting is always for an engine event, bounded by [`WAIT`]; nothing sleeps to
//! synchronise.

#![allow(dead_code)]

use invigil_client::view::{AnswerState, AnswerView, ConnectionState, Event, Numbered, Overview};
use invigil_client::{ClientConfig, Engine, KeyringVault, ServerUrl, Vault};
pub use invigil_e2e::server::*;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// A vault that keeps tokens in a file, so that a test can hand a session from a killed process
/// to a new one; in-process tests use the keyring's mock store.
pub struct FileVault(pub PathBuf);

impl Vault for FileVault {
    fn load(&self, account: &str) -> invigil_client::Result<Option<String>> {
        let all: std::collections::BTreeMap<String, String> = std::fs::read(&self.0)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Ok(all.get(account).cloned())
    }

    fn save(&self, account: &str, token: &str) -> invigil_client::Result<()> {
        let mut all: std::collections::BTreeMap<String, String> = std::fs::read(&self.0)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        all.insert(account.to_owned(), token.to_owned());
        std::fs::write(&self.0, serde_json::to_vec(&all).unwrap()).unwrap();
        Ok(())
    }

    fn delete(&self, account: &str) -> invigil_client::Result<()> {
        let mut all: std::collections::BTreeMap<String, String> = std::fs::read(&self.0)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        all.remove(account);
        std::fs::write(&self.0, serde_json::to_vec(&all).unwrap()).unwrap();
        Ok(())
    }

    fn describe(&self) -> String {
        format!("test file vault at {}", self.0.display())
    }
}

/// The keyring's mock store, shared by the engines of one test (as the OS keyring is shared by
/// the runs of an app).
pub fn mock_vault() -> Arc<dyn Vault> {
    Arc::new(KeyringVault::with_store(
        keyring_core::mock::Store::new().unwrap(),
    ))
}

/// A student's desktop app, headless: an engine and the events it sent.
pub struct Student {
    /// The engine.
    pub engine: Engine,
    /// Its data folder.
    pub dir: PathBuf,
    events: broadcast::Receiver<Numbered>,
    /// Every event received so far, oldest first.
    pub seen: Arc<Mutex<Vec<Event>>>,
}

impl Student {
    /// Starts an app on `data_dir` pointed at `server_url`.
    pub async fn start(server_url: &str, data_dir: &Path, vault: Arc<dyn Vault>) -> Self {
        let config = ClientConfig::new(ServerUrl::parse(server_url).unwrap(), data_dir);
        Self::start_with(config, vault).await
    }

    /// Starts an app as `config` says.
    pub async fn start_with(config: ClientConfig, vault: Arc<dyn Vault>) -> Self {
        let data_dir = config.data_dir.clone();
        let engine = Engine::start(config, vault)
            .await
            .expect("the engine starts");
        let events = engine.subscribe();
        Self {
            engine,
            dir: data_dir,
            events,
            seen: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Signs in with [`PASSWORD`].
    pub async fn sign_in(&self, username: &str) {
        self.engine
            .sign_in(None, username, PASSWORD)
            .await
            .expect("sign-in");
    }

    /// Waits until `check` holds of the overview, re-checking after every event.
    pub async fn until(&mut self, what: &str, check: impl Fn(&Overview) -> bool) -> Overview {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let overview = self.engine.overview();
            if check(&overview) {
                return overview;
            }
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Ok(numbered)) => self.seen.lock().unwrap().push(numbered.event),
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(broadcast::error::RecvError::Closed)) => panic!("the engine stopped"),
                Err(_) => panic!("timed out waiting for {what}; last overview: {overview:#?}"),
            }
        }
    }

    /// Waits until the connection is in `state`.
    pub async fn until_connection(&mut self, state: ConnectionState) -> Overview {
        self.until(&format!("connection {state:?}"), |o| {
            o.connection.state == state
        })
        .await
    }

    /// Waits until the evaluation is known and returns its id.
    pub async fn until_evaluation(&mut self, id: &str) {
        self.until("the evaluation", |o| {
            o.evaluations.iter().any(|e| e.id == id)
        })
        .await;
    }

    /// Waits until the answer is in `state`.
    pub async fn until_answer(&mut self, evaluation: &str, question: &str, state: AnswerState) {
        self.until(&format!("{question} {state:?}"), |o| {
            answer_state(o, evaluation, question) == Some(state)
        })
        .await;
    }

    /// The events received so far (including those not yet read), still recorded.
    pub fn seen_so_far(&mut self) -> Vec<Event> {
        while let Ok(numbered) = self.events.try_recv() {
            self.seen.lock().unwrap().push(numbered.event);
        }
        self.seen.lock().unwrap().clone()
    }

    /// The events received so far (including those not yet read), from now on recorded afresh.
    pub fn take_seen(&mut self) -> Vec<Event> {
        while let Ok(numbered) = self.events.try_recv() {
            self.seen.lock().unwrap().push(numbered.event);
        }
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

/// The state of an answer in an overview.
pub fn answer_state(overview: &Overview, evaluation: &str, question: &str) -> Option<AnswerState> {
    overview
        .evaluations
        .iter()
        .find(|e| e.id == evaluation)?
        .answers
        .iter()
        .find(|a| a.question_id == question)
        .map(|a| a.state)
}

/// An answer's view in an overview (it must be there).
pub fn answer_view(overview: &Overview, evaluation: &str, question: &str) -> AnswerView {
    overview
        .evaluations
        .iter()
        .find(|e| e.id == evaluation)
        .and_then(|e| e.answers.iter().find(|a| a.question_id == question))
        .unwrap_or_else(|| panic!("no answer to {question} in {evaluation}"))
        .clone()
}

/// The outbox folder of a student on a server, as the engine lays it out.
pub fn outbox_dir(data_dir: &Path, server_url: &str, username: &str) -> PathBuf {
    data_dir
        .join("servers")
        .join(ServerUrl::parse(server_url).unwrap().storage_key())
        .join(invigil_client::outbox::encode_name(username))
        .join("answers")
}

/// A running evaluation open to `students` (each created) on `server`: its professor and id.
pub async fn running_exam(server: &Server, students: &[&str]) -> (Staff, String) {
    let admin = Staff::admin(server).await;
    let prof = admin.professor("prof").await;
    for student in students {
        admin.create_user(student, "student").await;
    }
    let evaluation = prof.running(students).await;
    (prof, evaluation.id)
}

/// A student's app on `data_dir`, signed in to `server_url`, joined to `evaluation` and online.
pub async fn sitting(
    server_url: &str,
    data_dir: &Path,
    username: &str,
    evaluation: &str,
) -> Student {
    let mut student = Student::start(server_url, data_dir, mock_vault()).await;
    student.sign_in(username).await;
    student.until_evaluation(evaluation).await;
    student.engine.join(evaluation).await.unwrap();
    student.until_connection(ConnectionState::Online).await;
    student
}

/// Where a [`ChildApp`] finds its server, data folder, vault file and evaluation.
const CHILD_URL: &str = "INVIGIL_TEST_CHILD_URL";
const CHILD_DIR: &str = "INVIGIL_TEST_CHILD_DIR";
const CHILD_VAULT: &str = "INVIGIL_TEST_CHILD_VAULT";
const CHILD_EVALUATION: &str = "INVIGIL_TEST_CHILD_EVALUATION";

/// A student's app in a child process, to be killed outright: this test binary again, running
/// only the ignored test `test`, which starts with [`child_student`] and reports its progress
/// as lines on stdout.
pub struct ChildApp {
    child: tokio::process::Child,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl ChildApp {
    /// Starts `test` as the app of the student of `vault` on `url`, in `data`, sitting
    /// `evaluation`.
    pub fn spawn(test: &str, url: &str, data: &Path, vault: &Path, evaluation: &str) -> Self {
        use tokio::io::AsyncBufReadExt;
        let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", test, "--ignored", "--nocapture"])
            .env(CHILD_URL, url)
            .env(CHILD_DIR, data)
            .env(CHILD_VAULT, vault)
            .env(CHILD_EVALUATION, evaluation)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        Self { child, lines }
    }

    /// Waits for a line containing `marker`.
    pub async fn expect(&mut self, marker: &str) {
        let lines = &mut self.lines;
        tokio::time::timeout(WAIT, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if line.contains(marker) {
                    return;
                }
            }
            panic!("the app process ended before {marker}");
        })
        .await
        .unwrap_or_else(|_| panic!("the app process did not report {marker}"));
    }

    /// Kills it with SIGKILL.
    pub async fn kill(mut self) {
        self.child.start_kill().unwrap();
        let status = self.child.wait().await.unwrap();
        assert!(!status.success(), "killed, not finished");
    }
}

/// In a [`ChildApp`]: the student signed in (the token in the parent's vault file), joined to
/// the evaluation and online, and the evaluation's id. `parent` names the test that starts it.
pub async fn child_student(parent: &str) -> (Student, String) {
    let (Ok(url), Some(dir), Some(vault), Ok(id)) = (
        std::env::var(CHILD_URL),
        std::env::var_os(CHILD_DIR),
        std::env::var_os(CHILD_VAULT),
        std::env::var(CHILD_EVALUATION),
    ) else {
        panic!("run by {parent}");
    };
    let mut student = Student::start(
        &url,
        &PathBuf::from(dir),
        Arc::new(FileVault(PathBuf::from(vault))),
    )
    .await;
    student.sign_in("alice").await;
    student.until_evaluation(&id).await;
    student.engine.join(&id).await.unwrap();
    student.until_connection(ConnectionState::Online).await;
    (student, id)
}

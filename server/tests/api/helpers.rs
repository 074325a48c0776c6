//! `TestApp`: the real `invigil-server` binary on port 0 with a fresh database, and typed helpers
//! to drive it over HTTP and the live socket.
//!
//! Waiting is always for an event (a line on stdout, a frame, a close), bounded by [`WAIT`] so that
//! a broken server fails the test instead of hanging it; nothing sleeps to synchronise.
//!
//! The engine comes from `INVIGIL_TEST_ENGINE`: `postgres` gives every `TestApp` a fresh database
//! on the server at `INVIGIL_TEST_POSTGRES_URL` (dropped with it); anything else, a SQLite file.

#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use invigil_e2e::tls::{Identity, client_trusting, http_trusting};
use invigil_protocol::{ClientMessage, Evaluation, LoginResponse, Role, ServerMessage, User};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

/// The longest any single wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(15);
/// The bootstrap admin every test server has.
pub const ADMIN: (&str, &str) = ("admin", "admin-password");
/// The password of every user made by [`TestApp::user`].
pub const PASSWORD: &str = "correct horse battery";

/// How to start a test server.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--heartbeat-ms`.
    pub heartbeat_ms: u64,
    /// Extra flags.
    pub args: Vec<String>,
    /// Serve HTTPS and WSS with this certificate (`--tls-cert`, `--tls-key`).
    pub tls: Option<Identity>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            heartbeat_ms: 5000,
            args: Vec::new(),
            tls: None,
        }
    }
}

impl Options {
    fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// An HTTP client that trusts the server.
    fn http(&self) -> reqwest::Client {
        match &self.tls {
            Some(identity) => http_trusting(&identity.ca_pem),
            None => reqwest::Client::new(),
        }
    }
}

/// A signed-in user.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The bearer token.
    pub token: String,
    /// The session id.
    pub session_id: String,
    /// The user.
    pub user: User,
}

impl Actor {
    /// The username.
    pub fn name(&self) -> &str {
        &self.user.username
    }
}

/// A running server process with its own database.
pub struct TestApp {
    /// The base URL, `http://127.0.0.1:PORT`.
    pub base: String,
    /// The bound address.
    pub addr: SocketAddr,
    /// The HTTP client.
    pub http: reqwest::Client,
    child: Option<Child>,
    dir: tempfile::TempDir,
    options: Options,
    admin: Option<Actor>,
    postgres: Option<Arc<PgDatabase>>,
    /// A database URL given as it is (a database the test made itself), before `postgres`.
    database: Option<String>,
}

impl TestApp {
    /// A server with default options.
    pub async fn spawn() -> Self {
        Self::spawn_with(Options::default()).await
    }

    /// A server with these options.
    pub async fn spawn_with(options: Options) -> Self {
        let postgres = match engine() {
            Engine::Sqlite => None,
            Engine::Postgres => Some(Arc::new(PgDatabase::create().await.expect(
                "INVIGIL_TEST_ENGINE=postgres needs INVIGIL_TEST_POSTGRES_URL to name a reachable server",
            ))),
        };
        Self::spawn_on(postgres, options).await
    }

    /// A server on this PostgreSQL database (`None`: a fresh SQLite file): several servers on one
    /// database make a cluster.
    pub async fn spawn_on(postgres: Option<Arc<PgDatabase>>, options: Options) -> Self {
        Self::launch(postgres, None, options).await
    }

    /// A server on the database at `url`, which the test made and will remove itself.
    pub async fn spawn_at(url: &str, options: Options) -> Self {
        Self::launch(None, Some(url.to_owned()), options).await
    }

    async fn launch(
        postgres: Option<Arc<PgDatabase>>,
        database: Option<String>,
        options: Options,
    ) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut app = Self {
            base: String::new(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            http: options.http(),
            child: None,
            dir,
            options,
            admin: None,
            postgres,
            database,
        };
        app.restart().await;
        app
    }

    /// The server process's id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// The database file (SQLite).
    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("invigil.db")
    }

    /// The `--database` URL.
    pub fn database_url(&self) -> String {
        if let Some(url) = &self.database {
            return url.clone();
        }
        match &self.postgres {
            Some(db) => db.url.clone(),
            None => format!("sqlite://{}", self.db_path().display()),
        }
    }

    /// The PostgreSQL database, when the server runs on one.
    pub fn postgres(&self) -> Option<Arc<PgDatabase>> {
        self.postgres.clone()
    }

    /// Lets `ms` milliseconds pass for every stored session: moves each one's last use back (the
    /// server must be stopped), on whichever engine the server runs.
    pub async fn move_sessions_back(&self, ms: i64) {
        use sqlx::Connection as _;
        match &self.postgres {
            Some(db) => {
                let mut conn = sqlx::PgConnection::connect(&db.url)
                    .await
                    .expect("the database opens");
                sqlx::query("UPDATE sessions SET last_used_at = last_used_at - $1")
                    .bind(ms)
                    .execute(&mut conn)
                    .await
                    .expect("the update runs");
            }
            None => {
                let options = sqlx::sqlite::SqliteConnectOptions::new().filename(self.db_path());
                let mut conn = sqlx::SqliteConnection::connect_with(&options)
                    .await
                    .expect("the database opens");
                sqlx::query("UPDATE sessions SET last_used_at = last_used_at - ?1")
                    .bind(ms)
                    .execute(&mut conn)
                    .await
                    .expect("the update runs");
            }
        }
    }

    /// The server's own folder: its database, its log, and a TLS server's `cert.pem`/`key.pem`.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Sends the running server `signal` (SIGHUP: read the TLS certificate again).
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let child = self.child.as_ref().expect("a running server");
        let pid = nix::unistd::Pid::from_raw(child.id().expect("a running child") as i32);
        nix::sys::signal::kill(pid, signal).expect("the signal is sent");
    }

    /// Waits (at most [`WAIT`]) until the server's log holds `text`.
    pub async fn until_logged(&self, text: &str) {
        tokio::time::timeout(WAIT, async {
            while !self.log().contains(text) {
                // The log is a file the server appends to: nothing to wait on but the file.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("the server logs {text:?}; its log:\n{}", self.log()));
    }

    /// The server's log so far (stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Kills the server with SIGKILL: no chance to flush anything.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().expect("SIGKILL");
            let _ = child.wait().await;
        }
    }

    /// Stops the server with SIGTERM and waits for it to exit; returns whether it exited cleanly.
    pub async fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let pid = nix::unistd::Pid::from_raw(child.id().expect("a running child") as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        let status = tokio::time::timeout(WAIT, child.wait())
            .await
            .expect("the server exits after SIGTERM")
            .expect("wait");
        status.success()
    }

    /// Starts the server again on the same database (after [`kill`](Self::kill) or
    /// [`terminate`](Self::terminate)); the port may change.
    pub async fn restart(&mut self) {
        if self.child.is_some() {
            self.kill().await;
        }
        let (child, addr) = start(&self.database_url(), &self.options, self.dir.path()).await;
        self.child = Some(child);
        self.addr = addr;
        self.base = format!("{}://{addr}", self.options.scheme());
    }

    /// A URL on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request and returns the status and JSON body (`Value::Null` when empty).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status();
        let text = response.text().await.expect("a body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("a JSON body, got {text:?}"))
        };
        (status, value)
    }

    /// `GET` as `actor`.
    pub async fn get(&self, actor: &Actor, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, Some(&actor.token), None)
            .await
    }

    /// `POST` as `actor`.
    pub async fn post(&self, actor: &Actor, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, Some(&actor.token), Some(body))
            .await
    }

    /// `PUT` as `actor`.
    pub async fn put(&self, actor: &Actor, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::PUT, path, Some(&actor.token), Some(body))
            .await
    }

    /// `POST /api/login`; panics unless it succeeds.
    pub async fn login(&self, username: &str, password: &str) -> Actor {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/api/login",
                None,
                Some(json!({"username": username, "password": password})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "login of {username}: {body}");
        let login: LoginResponse = serde_json::from_value(body).expect("a login response");
        Actor {
            token: login.token,
            session_id: login.session_id,
            user: login.user,
        }
    }

    /// The bootstrap admin, signed in once.
    pub async fn admin(&mut self) -> Actor {
        if self.admin.is_none() {
            self.admin = Some(self.login(ADMIN.0, ADMIN.1).await);
        }
        self.admin.clone().unwrap()
    }

    /// Creates a user (password [`PASSWORD`]) without signing in.
    pub async fn create_user(&mut self, username: &str, role: Role) -> User {
        let admin = self.admin().await;
        let (status, body) = self
            .post(
                &admin,
                "/api/users",
                json!({"username": username, "password": PASSWORD, "role": role}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "creating {username}: {body}");
        serde_json::from_value(body).unwrap()
    }

    /// Creates a user and signs them in.
    pub async fn user(&mut self, username: &str, role: Role) -> Actor {
        self.create_user(username, role).await;
        self.login(username, PASSWORD).await
    }

    /// A signed-in student.
    pub async fn student(&mut self, username: &str) -> Actor {
        self.user(username, Role::Student).await
    }

    /// A signed-in professor.
    pub async fn professor(&mut self, username: &str) -> Actor {
        self.user(username, Role::Professor).await
    }

    /// Creates a draft evaluation with a text, a code and a choice question (`q1`, `q2`, `q3`).
    pub async fn evaluation(&self, owner: &Actor, extra: Value) -> Evaluation {
        let mut body = json!({
            "title": "Algorithms midterm",
            "questions": [
                {"id": "q1", "prompt": "Explain quicksort", "kind": "text"},
                {"id": "q2", "prompt": "Write binary search", "kind": "code"},
                {"id": "q3", "prompt": "Mergesort worst case?", "kind": "choice",
                 "choices": [{"id": "a", "label": "O(n)"}, {"id": "b", "label": "O(n log n)"}]}
            ]
        });
        if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
            body.extend(extra);
        }
        let (status, body) = self.post(owner, "/api/evaluations", body).await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "creating an evaluation: {body}"
        );
        serde_json::from_value(body).unwrap()
    }

    /// Replaces an evaluation's access list.
    pub async fn set_access(&self, owner: &Actor, evaluation: &str, students: &[&Actor]) {
        let names: Vec<&str> = students.iter().map(|s| s.name()).collect();
        let (status, body) = self
            .put(
                owner,
                &format!("/api/evaluations/{evaluation}/access"),
                json!({"students": names}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "setting the access list: {body}");
    }

    /// Moves an evaluation's phase; panics unless it succeeds.
    pub async fn set_phase(&self, owner: &Actor, evaluation: &str, phase: &str) -> Evaluation {
        let (status, body) = self
            .post(
                owner,
                &format!("/api/evaluations/{evaluation}/phase"),
                json!({"phase": phase}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "moving to {phase}: {body}");
        serde_json::from_value(body).unwrap()
    }

    /// A list evaluation with these students on it, in progress.
    pub async fn running(&self, owner: &Actor, students: &[&Actor]) -> Evaluation {
        let evaluation = self.evaluation(owner, json!({})).await;
        self.set_access(owner, &evaluation.id, students).await;
        self.set_phase(owner, &evaluation.id, "in_progress").await
    }

    /// A student joins; panics unless it succeeds.
    pub async fn join(&self, student: &Actor, evaluation: &str) {
        let (status, body) = self
            .post(
                student,
                &format!("/api/evaluations/{evaluation}/join"),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "joining: {body}");
    }

    /// Opens the live socket with a bearer token (over TLS when the server serves it).
    pub async fn socket(&self, actor: &Actor) -> Socket {
        let scheme = if self.options.tls.is_some() {
            "wss"
        } else {
            "ws"
        };
        let mut request = format!("{scheme}://{}/api/ws", self.addr)
            .into_client_request()
            .unwrap();
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {}", actor.token).parse().unwrap(),
        );
        let connector = self
            .options
            .tls
            .as_ref()
            .map(|identity| Connector::Rustls(client_trusting(&identity.ca_pem)));
        Socket::connect_with(request, connector)
            .await
            .expect("the socket opens")
    }

    /// Opens the live socket and reads `WELCOME` and the snapshot up to `SNAPSHOT_END`.
    pub async fn socket_ready(&self, actor: &Actor) -> (Socket, Vec<ServerMessage>) {
        let mut socket = self.socket(actor).await;
        let snapshot = socket.snapshot().await;
        (socket, snapshot)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

async fn start(database: &str, options: &Options, dir: &std::path::Path) -> (Child, SocketAddr) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))
        .expect("a log file");
    let mut command = Command::new(env!("CARGO_BIN_EXE_invigil-server"));
    command
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--database")
        .arg(database)
        .arg("--heartbeat-ms")
        .arg(options.heartbeat_ms.to_string())
        .args(&options.args);
    if let Some(identity) = &options.tls {
        let (cert, key) = identity.write(dir);
        command
            .arg("--tls-cert")
            .arg(cert)
            .arg("--tls-key")
            .arg(key);
    }
    let mut child = command
        .env(
            "INVIGIL_BOOTSTRAP_ADMIN",
            format!("{}:{}", ADMIN.0, ADMIN.1),
        )
        .env("INVIGIL_LOG", "info,sqlx=warn")
        .env_remove("INVIGIL_LISTEN")
        .env_remove("INVIGIL_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .expect("the server starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let announced = format!("invigil-server listening on {}://", options.scheme());
    let addr = tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.expect("stdout") {
            if let Some(url) = line.strip_prefix(&announced) {
                return url.parse::<SocketAddr>().expect("an address");
            }
        }
        panic!("the server exited before listening; see its log");
    })
    .await
    .expect("the server prints its address");
    // Keep reading stdout so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    // The port is printed before the database is open; wait until requests are served.
    let client = options.http();
    let health = format!("{}://{addr}/healthz", options.scheme());
    tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(r) = client.get(&health).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the server becomes healthy");
    (child, addr)
}

/// What came out of a socket.
#[derive(Debug)]
pub enum Received {
    /// A server message.
    Message(ServerMessage),
    /// The close, with its code.
    Closed(Option<u16>),
}

/// A client end of the live socket.
pub struct Socket {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Whether `HEARTBEAT` frames are passed to the test (they are skipped by default).
    pub keep_heartbeats: bool,
}

impl Socket {
    /// Connects with a prepared request (headers already set).
    pub async fn connect(
        request: tokio_tungstenite::tungstenite::handshake::client::Request,
    ) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        Self::connect_with(request, None).await
    }

    /// Connects with a prepared request, over TLS with `connector` for a `wss://` URL.
    pub async fn connect_with(
        request: tokio_tungstenite::tungstenite::handshake::client::Request,
        connector: Option<Connector>,
    ) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        let (ws, _) =
            tokio_tungstenite::connect_async_tls_with_config(request, None, false, connector)
                .await?;
        Ok(Self {
            ws,
            keep_heartbeats: false,
        })
    }

    /// The next message or the close (heartbeats skipped unless kept).
    pub async fn receive(&mut self) -> Received {
        tokio::time::timeout(WAIT, async {
            loop {
                match self.ws.next().await {
                    None => return Received::Closed(None),
                    Some(Err(_)) => return Received::Closed(None),
                    Some(Ok(Message::Text(text))) => {
                        let message: ServerMessage = serde_json::from_str(text.as_str())
                            .unwrap_or_else(|e| panic!("a contract message, got {text} ({e})"));
                        if matches!(message, ServerMessage::Heartbeat { .. })
                            && !self.keep_heartbeats
                        {
                            continue;
                        }
                        return Received::Message(message);
                    }
                    Some(Ok(Message::Close(frame))) => {
                        return Received::Closed(frame.map(|f: CloseFrame| u16::from(f.code)));
                    }
                    Some(Ok(_)) => continue,
                }
            }
        })
        .await
        .expect("the server sends something in time")
    }

    /// The next message; panics on a close.
    pub async fn next(&mut self) -> ServerMessage {
        match self.receive().await {
            Received::Message(m) => m,
            Received::Closed(code) => {
                panic!("the socket closed ({code:?}) while a message was expected")
            }
        }
    }

    /// Skips messages until one matches; panics on a close.
    pub async fn until(&mut self, mut pred: impl FnMut(&ServerMessage) -> bool) -> ServerMessage {
        loop {
            let m = self.next().await;
            if pred(&m) {
                return m;
            }
        }
    }

    /// Reads until the socket closes, returning the close code; panics if it stays open.
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            if let Received::Closed(code) = self.receive().await {
                return code;
            }
        }
    }

    /// Reads `WELCOME` and everything up to `SNAPSHOT_END`; returns them all (`WELCOME` first).
    pub async fn snapshot(&mut self) -> Vec<ServerMessage> {
        let mut out = vec![self.next().await];
        assert!(
            matches!(out[0], ServerMessage::Welcome { .. }),
            "WELCOME comes first, got {:?}",
            out[0]
        );
        loop {
            let m = self.next().await;
            let end = m == ServerMessage::SnapshotEnd;
            out.push(m);
            if end {
                return out;
            }
        }
    }

    /// Sends a client message.
    pub async fn send(&mut self, message: &ClientMessage) {
        self.send_text(&serde_json::to_string(message).unwrap())
            .await;
    }

    /// Sends raw text.
    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::text(text))
            .await
            .expect("the socket accepts a frame");
    }

    /// Sends a raw frame.
    pub async fn send_raw(
        &mut self,
        message: Message,
    ) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        self.ws.send(message).await
    }

    /// Saves an answer over the socket.
    pub async fn save(&mut self, evaluation: &str, question: &str, revision: u64, content: &str) {
        self.send(&ClientMessage::AnswerSave {
            evaluation_id: evaluation.into(),
            question_id: question.into(),
            revision,
            content: content.into(),
        })
        .await;
    }

    /// Waits for the acknowledgement of (question, revision) and returns it (skipping other messages).
    pub async fn ack(&mut self, question: &str) -> ServerMessage {
        self.until(|m| match m {
            ServerMessage::AnswerAck { question_id, .. }
            | ServerMessage::AnswerRejected { question_id, .. } => question_id == question,
            _ => false,
        })
        .await
    }
}

/// Shortens `Role::Student` in tests.
pub const STUDENT: Role = Role::Student;
/// Shortens `Role::Professor` in tests.
pub const PROFESSOR: Role = Role::Professor;

// ---- Live connections: raw upgrades, keeping a socket alive, closing, and the event stream ----

impl TestApp {
    /// An upgrade request for `ws://…/api/ws` without credentials: add headers, then
    /// [`Socket::connect`].
    pub fn ws_request(&self) -> tokio_tungstenite::tungstenite::handshake::client::Request {
        format!("ws://{}/api/ws", self.addr)
            .into_client_request()
            .unwrap()
    }

    /// Opens `GET /api/events` with a bearer token; panics unless it answers 200 with
    /// `text/event-stream`.
    pub async fn events(&self, actor: &Actor) -> EventStream {
        let response = self
            .http
            .get(self.url("/api/events"))
            .bearer_auth(&actor.token)
            .send()
            .await
            .expect("the server answers");
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "opening the event stream"
        );
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            content_type.starts_with("text/event-stream"),
            "an event stream, got {content_type:?}"
        );
        EventStream {
            response,
            buffer: Vec::new(),
            keep_heartbeats: false,
        }
    }

    /// Opens `GET /api/events` and reads `WELCOME` and the snapshot up to `SNAPSHOT_END`.
    pub async fn events_ready(&self, actor: &Actor) -> (EventStream, Vec<ServerMessage>) {
        let mut stream = self.events(actor).await;
        let snapshot = stream.snapshot().await;
        (stream, snapshot)
    }
}

impl Socket {
    /// The next message, answering every server `HEARTBEAT` with a client one on the way, so that
    /// the socket stays alive however long the wait (heartbeats are never returned); panics on a
    /// close.
    pub async fn next_alive(&mut self) -> ServerMessage {
        let keep = std::mem::replace(&mut self.keep_heartbeats, true);
        let message = tokio::time::timeout(WAIT, async {
            loop {
                match self.receive().await {
                    Received::Message(ServerMessage::Heartbeat { .. }) => {
                        self.send(&ClientMessage::Heartbeat).await;
                    }
                    Received::Message(m) => break m,
                    Received::Closed(code) => {
                        panic!("the socket closed ({code:?}) while a message was expected")
                    }
                }
            }
        })
        .await
        .expect("a message other than a heartbeat arrives in time");
        self.keep_heartbeats = keep;
        message
    }

    /// [`until`](Self::until), answering heartbeats as [`next_alive`](Self::next_alive) does;
    /// the whole wait is bounded by [`WAIT`], since heartbeats alone never end it.
    pub async fn until_alive(
        &mut self,
        mut pred: impl FnMut(&ServerMessage) -> bool,
    ) -> ServerMessage {
        tokio::time::timeout(WAIT, async {
            loop {
                let m = self.next_alive().await;
                if pred(&m) {
                    return m;
                }
            }
        })
        .await
        .expect("the awaited message arrives in time")
    }

    /// Closes from the client side (1000) and returns the code of the server's closing answer.
    pub async fn close(&mut self) -> Option<u16> {
        let normal = CloseFrame {
            code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
            reason: "".into(),
        };
        let _ = self.ws.close(Some(normal)).await;
        self.closed().await
    }
}

/// A client of `GET /api/events`: parses `event: TYPE` / `data: JSON` blocks.
pub struct EventStream {
    response: reqwest::Response,
    buffer: Vec<u8>,
    /// Whether `HEARTBEAT` events are passed to the test (they are skipped by default).
    pub keep_heartbeats: bool,
}

impl EventStream {
    /// The next message, or `None` once the stream has ended (heartbeats skipped unless kept).
    /// Checks that each event's name is its message's `type`.
    pub async fn receive(&mut self) -> Option<ServerMessage> {
        tokio::time::timeout(WAIT, async {
            loop {
                while let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                    let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
                    let block = String::from_utf8(block).expect("an event stream is UTF-8");
                    let (mut name, mut data) = (None, Vec::new());
                    for line in block.lines() {
                        if let Some(value) = line.strip_prefix("event:") {
                            name = Some(value.strip_prefix(' ').unwrap_or(value).to_owned());
                        } else if let Some(value) = line.strip_prefix("data:") {
                            data.push(value.strip_prefix(' ').unwrap_or(value));
                        }
                    }
                    if data.is_empty() {
                        continue; // A comment or keep-alive.
                    }
                    let data = data.join("\n");
                    let message: ServerMessage = serde_json::from_str(&data)
                        .unwrap_or_else(|e| panic!("a contract message, got {data} ({e})"));
                    assert_eq!(
                        name.as_deref(),
                        Some(message.kind()),
                        "the event name is the message type"
                    );
                    if matches!(message, ServerMessage::Heartbeat { .. }) && !self.keep_heartbeats {
                        continue;
                    }
                    return Some(message);
                }
                match self.response.chunk().await {
                    Ok(Some(bytes)) => self
                        .buffer
                        .extend(bytes.iter().copied().filter(|b| *b != b'\r')),
                    Ok(None) | Err(_) => return None,
                }
            }
        })
        .await
        .expect("the server sends something in time")
    }

    /// The next message; panics when the stream ends.
    pub async fn next(&mut self) -> ServerMessage {
        self.receive()
            .await
            .expect("the event stream ended while a message was expected")
    }

    /// Skips messages until one matches; panics when the stream ends.
    pub async fn until(&mut self, mut pred: impl FnMut(&ServerMessage) -> bool) -> ServerMessage {
        loop {
            let m = self.next().await;
            if pred(&m) {
                return m;
            }
        }
    }

    /// Reads `WELCOME` and everything up to `SNAPSHOT_END`; returns them all (`WELCOME` first).
    pub async fn snapshot(&mut self) -> Vec<ServerMessage> {
        let mut out = vec![self.next().await];
        assert!(
            matches!(out[0], ServerMessage::Welcome { .. }),
            "WELCOME comes first, got {:?}",
            out[0]
        );
        loop {
            let m = self.next().await;
            let end = m == ServerMessage::SnapshotEnd;
            out.push(m);
            if end {
                return out;
            }
        }
    }

    /// Reads until the stream ends, skipping whatever comes before; panics if it stays open.
    pub async fn ended(&mut self) {
        while self.receive().await.is_some() {}
    }
}

impl Socket {
    /// Connects like [`connect`](Self::connect) but with `TCP_NODELAY`, so that every frame leaves
    /// at once: with Nagle's algorithm a burst of small frames waits for the first one's TCP
    /// acknowledgement, and "sent" would not yet mean "arrived".
    pub async fn connect_nodelay(
        request: tokio_tungstenite::tungstenite::handshake::client::Request,
    ) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        let (ws, _) = tokio_tungstenite::connect_async_with_config(request, None, true).await?;
        Ok(Self {
            ws,
            keep_heartbeats: false,
        })
    }
}

impl TestApp {
    /// Opens the live socket with a bearer token and `TCP_NODELAY` (see
    /// [`Socket::connect_nodelay`]) and reads `WELCOME` and the snapshot.
    pub async fn socket_ready_nodelay(&self, actor: &Actor) -> (Socket, Vec<ServerMessage>) {
        let mut request = self.ws_request();
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {}", actor.token).parse().unwrap(),
        );
        let mut socket = Socket::connect_nodelay(request)
            .await
            .expect("the socket opens");
        let snapshot = socket.snapshot().await;
        (socket, snapshot)
    }
}

impl Socket {
    /// Waits until the server's TCP stack has acknowledged every byte this socket wrote (its send
    /// queue in `/proc/net/tcp` is empty, Linux): from then on, what was sent has arrived and the
    /// server can read it, whatever it does next.
    pub async fn wait_delivered(&self) {
        let MaybeTlsStream::Plain(tcp) = self.ws.get_ref() else {
            panic!("a plain TCP socket")
        };
        let local = format!(":{:04X}", tcp.local_addr().unwrap().port());
        let peer = format!(":{:04X}", tcp.peer_addr().unwrap().port());
        tokio::time::timeout(WAIT, async {
            loop {
                let table =
                    std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp (Linux)");
                let queued = table
                    .lines()
                    .skip(1)
                    .find_map(|line| {
                        let fields: Vec<&str> = line.split_whitespace().collect();
                        let ours = fields.len() > 4
                            && fields[1].ends_with(&local)
                            && fields[2].ends_with(&peer);
                        let tx_queue = fields.get(4)?.split(':').next()?;
                        ours.then(|| u64::from_str_radix(tx_queue, 16).ok())?
                    })
                    .expect("the socket is listed in /proc/net/tcp");
                if queued == 0 {
                    return;
                }
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the server receives what was sent in time");
    }
}

// ---- the database engine -----------------------------------------------------------------------

/// The engine test servers run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// A SQLite file per server (the default).
    Sqlite,
    /// A fresh PostgreSQL database per server (`INVIGIL_TEST_ENGINE=postgres`).
    Postgres,
}

/// The engine named by `INVIGIL_TEST_ENGINE`.
pub fn engine() -> Engine {
    match std::env::var("INVIGIL_TEST_ENGINE").as_deref() {
        Ok("postgres") => Engine::Postgres,
        _ => Engine::Sqlite,
    }
}

/// A fresh database on the PostgreSQL server of `INVIGIL_TEST_POSTGRES_URL`, dropped (with every
/// connection to it) when the last holder lets go.
pub struct PgDatabase {
    /// Its URL, for `--database`.
    pub url: String,
    name: String,
    admin: String,
}

impl PgDatabase {
    /// Creates one; `None` (with a line saying why) when the URL is unset or the server cannot be
    /// reached.
    pub async fn create() -> Option<Self> {
        use sqlx::Connection as _;
        let Ok(admin) = std::env::var("INVIGIL_TEST_POSTGRES_URL") else {
            eprintln!("INVIGIL_TEST_POSTGRES_URL is not set");
            return None;
        };
        let mut conn = match tokio::time::timeout(WAIT, sqlx::PgConnection::connect(&admin)).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                eprintln!("PostgreSQL at INVIGIL_TEST_POSTGRES_URL is unreachable: {e}");
                return None;
            }
            Err(_) => {
                eprintln!("PostgreSQL at INVIGIL_TEST_POSTGRES_URL did not answer in time");
                return None;
            }
        };
        let name = format!("invigil_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("CREATE DATABASE");
        let _ = conn.close().await;
        Some(Self {
            url: with_database(&admin, &name),
            name,
            admin,
        })
    }
}

impl PgDatabase {
    /// Ends every connection to this database, as a restart of PostgreSQL would; returns how
    /// many there were.
    pub async fn terminate_connections(&self) -> usize {
        use sqlx::Connection as _;
        let mut conn = sqlx::PgConnection::connect(&self.admin)
            .await
            .expect("the PostgreSQL server answers");
        let ended: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&self.name)
        .fetch_all(&mut conn)
        .await
        .expect("the connections end");
        let _ = conn.close().await;
        ended.into_iter().filter(|e| *e).count()
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop runs inside the test's runtime, which must not block on itself: drop the database
        // from a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                use sqlx::Connection as _;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                    let _ = conn.close().await;
                }
            });
        });
        let _ = dropped.join();
    }
}

/// `url` naming the database `name` instead of its own.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let root = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{root}/{name}?{query}"),
        None => format!("{root}/{name}"),
    }
}

// ---- The console's additions: raw frames and sockets that ask for additions ----

impl Socket {
    /// The text of the next text frame, whatever it holds (the console's added message types
    /// are not [`ServerMessage`]s); `None` once the socket has closed.
    pub async fn receive_text(&mut self) -> Option<String> {
        tokio::time::timeout(WAIT, async {
            loop {
                match self.ws.next().await {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return None,
                    Some(Ok(Message::Text(text))) => return Some(text.as_str().to_owned()),
                    Some(Ok(_)) => continue,
                }
            }
        })
        .await
        .expect("the server sends something in time")
    }
}

impl TestApp {
    /// Opens the live socket with `?additions=1` (the console's added message types) and reads
    /// the snapshot.
    pub async fn console_socket(&self, actor: &Actor) -> Socket {
        let mut request = format!("ws://{}/api/ws?additions=1", self.addr)
            .into_client_request()
            .unwrap();
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {}", actor.token).parse().unwrap(),
        );
        let mut socket = Socket::connect(request).await.expect("the socket opens");
        socket.snapshot().await;
        socket
    }
}

/// The value of an un-labelled sample in the Prometheus text format.
pub fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (key, value) = line.split_once(' ')?;
        (key == name).then(|| value.trim().parse().ok())?
    })
}

//! The real server for tests: the `invigil-server` binary on a free port with its own database,
//! restartable on the same port; a TCP proxy in front of it that can cut or freeze the network;
//! and staff driving it over HTTP.
//!
//! The server binary belongs to another package, so `CARGO_BIN_EXE_*` cannot name it: it is built
//! once per test process with `cargo build -p invigil-server` (a no-op when it is fresh; `.ci/run`
//! builds it beforehand) and run from `<target>/debug/invigil-server`. Waiting is always for an
//! event (a line on stdout, a healthy answer), bounded by [`WAIT`]; nothing sleeps to synchronise.

use crate::tls::{Identity, http_trusting};
use invigil_protocol::{Answer, AuditEntry, Evaluation, LoginResponse, Participation};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::watch;

/// The longest any single wait may take before a test fails.
pub const WAIT: Duration = Duration::from_secs(20);
/// The bootstrap admin of every test server.
pub const ADMIN: (&str, &str) = ("admin", "admin-password");
/// The password of every user the tests create.
pub const PASSWORD: &str = "correct horse battery";

/// The workspace's root folder.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace")
        .to_owned()
}

/// The cargo target folder.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}

/// The server binary: `INVIGIL_SERVER_BIN` when set (`.ci/run` points it at the binary that
/// `cargo test --workspace` builds, so that nothing is compiled twice), else built once per test
/// run.
pub fn server_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            if let Some(given) = given_binary("INVIGIL_SERVER_BIN") {
                return given;
            }
            let workspace = workspace();
            let target = target_dir();
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let status = std::process::Command::new(cargo)
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "invigil-server",
                    "--bin",
                    "invigil-server",
                ])
                .current_dir(&workspace)
                .status()
                .expect("cargo runs");
            let binary = target.join("debug").join("invigil-server");
            if !status.success() {
                // In CI the server must build. On a workstation where someone is editing the
                // server, the last binary built is still a server to test against.
                assert!(
                    std::env::var_os("CI").is_none() && binary.exists(),
                    "building invigil-server failed"
                );
                eprintln!(
                    "WARNING: building invigil-server failed; testing against the last binary built, {}",
                    binary.display()
                );
            }
            assert!(binary.exists(), "{} is missing", binary.display());
            binary
        })
        .clone()
}

/// The binary an environment variable names, if it does (and then it must exist).
pub fn given_binary(variable: &str) -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var_os(variable)?);
    assert!(
        path.is_file(),
        "{variable} names {}, which does not exist",
        path.display()
    );
    Some(path)
}

/// A running server with its own database, restartable on the same port.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its heartbeat.
    pub heartbeat_ms: u64,
    /// An HTTP client that trusts the server (its certificate's authority, when it serves TLS).
    pub http: reqwest::Client,
    tls: bool,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Server {
    /// Starts a server with this heartbeat on a free port.
    pub async fn start(heartbeat_ms: u64) -> Self {
        Self::start_with(heartbeat_ms, None).await
    }

    /// Starts a server serving HTTPS and WSS itself with `identity`.
    pub async fn start_tls(heartbeat_ms: u64, identity: &Identity) -> Self {
        Self::start_with(heartbeat_ms, Some(identity)).await
    }

    async fn start_with(heartbeat_ms: u64, tls: Option<&Identity>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let http = match tls {
            Some(identity) => {
                identity.write(dir.path());
                http_trusting(&identity.ca_pem)
            }
            None => reqwest::Client::new(),
        };
        let mut server = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            heartbeat_ms,
            http,
            tls: tls.is_some(),
            child: None,
            dir,
        };
        let (child, addr) = server.launch("127.0.0.1:0").await;
        server.child = Some(child);
        server.addr = addr;
        server
    }

    /// `http://127.0.0.1:PORT`, or `https://` when it serves TLS.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme(), self.addr)
    }

    fn scheme(&self) -> &'static str {
        if self.tls { "https" } else { "http" }
    }

    /// Kills the server with SIGKILL.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().expect("SIGKILL");
            let _ = child.wait().await;
        }
    }

    /// Starts it again on the same port and database.
    pub async fn restart(&mut self) {
        self.kill().await;
        let (child, addr) = self.launch(&self.addr.to_string()).await;
        assert_eq!(addr, self.addr);
        self.child = Some(child);
    }

    /// Stops the server and copies its database aside as `name`, then starts it again: a backup
    /// taken now, for [`restore`](Self::restore).
    pub async fn back_up(&mut self, name: &str) {
        self.kill().await;
        let backup = self.dir.path().join(name);
        std::fs::create_dir_all(&backup).unwrap();
        for file in database_files(self.dir.path()) {
            std::fs::copy(&file, backup.join(file.file_name().unwrap())).unwrap();
        }
        self.restart().await;
    }

    /// Stops the server, puts back the database backed up as `name` (whatever was stored since
    /// is gone, as after a restore from a backup), and starts it again.
    pub async fn restore(&mut self, name: &str) {
        self.kill().await;
        for file in database_files(self.dir.path()) {
            std::fs::remove_file(file).unwrap();
        }
        for file in database_files(&self.dir.path().join(name)) {
            std::fs::copy(&file, self.dir.path().join(file.file_name().unwrap())).unwrap();
        }
        self.restart().await;
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

/// The SQLite database and its journal files in `dir`.
fn database_files(dir: &Path) -> Vec<PathBuf> {
    ["invigil.db", "invigil.db-wal", "invigil.db-shm"]
        .iter()
        .map(|name| dir.join(name))
        .filter(|path| path.exists())
        .collect()
}

impl Server {
    async fn launch(&self, listen: &str) -> (Child, SocketAddr) {
        let dir = self.dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.log"))
            .unwrap();
        let mut command = Command::new(server_binary());
        command
            .arg("--listen")
            .arg(listen)
            .arg("--database")
            .arg(format!("sqlite://{}", dir.join("invigil.db").display()))
            .arg("--heartbeat-ms")
            .arg(self.heartbeat_ms.to_string());
        if self.tls {
            command
                .arg("--tls-cert")
                .arg(dir.join("cert.pem"))
                .arg("--tls-key")
                .arg(dir.join("key.pem"));
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
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let announced = format!("invigil-server listening on {}://", self.scheme());
        let addr = tokio::time::timeout(WAIT, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(url) = line.strip_prefix(&announced) {
                    return url.parse::<SocketAddr>().unwrap();
                }
            }
            panic!("the server exited before listening");
        })
        .await
        .expect("the server prints its address");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let health = format!("{}://{addr}/healthz", self.scheme());
        tokio::time::timeout(WAIT, async {
            loop {
                if let Ok(r) = self.http.get(&health).send().await
                    && r.status().is_success()
                {
                    return;
                }
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the server becomes healthy");
        (child, addr)
    }
}

/// What the network between the student and the server does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// Bytes flow.
    Up,
    /// Every connection is closed and new ones are refused (cable pulled, server host down).
    Cut,
    /// Connections stay open but nothing flows (a machine asleep, a dead Wi-Fi).
    Frozen,
    /// What the student sends reaches the server, but nothing comes back: a save is stored and
    /// its acknowledgement is lost. A connection that lost bytes this way is closed at the next
    /// change of the network (a TCP stream cannot lose bytes and go on).
    AcksLost,
    /// Every chunk, either way, arrives [`SLOW`] late, in order (a congested link).
    Slow,
}

/// How late [`Network::Slow`] delivers each chunk.
pub const SLOW: Duration = Duration::from_millis(150);

/// A TCP proxy in front of the server.
pub struct Proxy {
    /// Where the students connect.
    pub addr: SocketAddr,
    mode: watch::Sender<Network>,
    cuts: Arc<Mutex<Option<RequestCut>>>,
}

/// HTTP requests the proxy cuts: their connection is closed as the request passes.
#[derive(Debug, Clone)]
struct RequestCut {
    method: String,
    path_ends_with: String,
    left: usize,
}

impl RequestCut {
    /// Whether `chunk`, bytes from the client, starts a request to cut (and counts it).
    fn cuts(cut: &Mutex<Option<RequestCut>>, chunk: &[u8]) -> bool {
        let mut cut = cut.lock().unwrap();
        let Some(rule) = cut.as_mut().filter(|r| r.left > 0) else {
            return false;
        };
        let line = chunk.split(|b| *b == b'\r').next().unwrap_or_default();
        let line = String::from_utf8_lossy(line);
        let mut parts = line.split(' ');
        let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
            return false;
        };
        let path = target.split('?').next().unwrap_or_default();
        if method != rule.method || !path.ends_with(&rule.path_ends_with) {
            return false;
        }
        rule.left -= 1;
        true
    }
}

impl Proxy {
    /// A proxy to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (mode, _) = watch::channel(Network::Up);
        let modes = mode.clone();
        let cuts: Arc<Mutex<Option<RequestCut>>> = Arc::default();
        let cutting = cuts.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mut watch = modes.subscribe();
                if *watch.borrow() == Network::Cut {
                    drop(client);
                    continue;
                }
                let cuts = cutting.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    pipe(client, server, &mut watch, &cuts).await;
                });
            }
        });
        Self { addr, mode, cuts }
    }

    /// Cuts the connection of each of the next `times` HTTP requests `method` whose path ends
    /// with `path_ends_with` (a failed or timed-out read, say), and lets everything else pass.
    pub fn cut_requests(&self, method: &str, path_ends_with: &str, times: usize) {
        *self.cuts.lock().unwrap() = Some(RequestCut {
            method: method.to_owned(),
            path_ends_with: path_ends_with.to_owned(),
            left: times,
        });
    }

    /// How many of the requests [`cut_requests`](Self::cut_requests) named are still to be cut.
    pub fn requests_left_to_cut(&self) -> usize {
        self.cuts.lock().unwrap().as_ref().map_or(0, |r| r.left)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Changes what the network does.
    pub fn set(&self, network: Network) {
        self.mode.send_replace(network);
    }
}

async fn pipe(
    client: TcpStream,
    server: TcpStream,
    mode: &mut watch::Receiver<Network>,
    cuts: &Mutex<Option<RequestCut>>,
) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let mut up = [0u8; 16 * 1024];
    let mut down = [0u8; 16 * 1024];
    let mut lost_down = false;
    loop {
        let network = *mode.borrow_and_update();
        match network {
            Network::Cut => return,
            Network::Frozen => {
                if mode.changed().await.is_err() {
                    return;
                }
                continue;
            }
            Network::Up | Network::Slow if lost_down => return,
            Network::Up | Network::Slow | Network::AcksLost => {}
        }
        // The fault itself, not a wait for something: a slow link holds each chunk this long.
        let late = || async {
            if network == Network::Slow {
                tokio::time::sleep(SLOW).await;
            }
        };
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        tokio::select! {
            _ = mode.changed() => continue,
            n = client_read.read(&mut up) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) if RequestCut::cuts(cuts, &up[..n]) => return,
                Ok(n) => {
                    late().await;
                    if server_write.write_all(&up[..n]).await.is_err() { return }
                }
            },
            n = server_read.read(&mut down) => match n {
                Ok(0) | Err(_) => return,
                Ok(_) if network == Network::AcksLost => lost_down = true,
                Ok(n) => {
                    late().await;
                    if client_write.write_all(&down[..n]).await.is_err() { return }
                }
            },
        }
    }
}

/// A professor or admin driving the server over HTTP.
#[derive(Clone)]
pub struct Staff {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Staff {
    /// The bootstrap admin.
    pub async fn admin(server: &Server) -> Self {
        Self::login_with(server.http.clone(), &server.url(), ADMIN.0, ADMIN.1).await
    }

    /// Signs anyone in directly at the server (for a student: a sign-in on another device).
    pub async fn login(base: &str, username: &str, password: &str) -> Self {
        Self::login_with(reqwest::Client::new(), base, username, password).await
    }

    /// Signs in with `http` (a client that trusts the server's certificate, say).
    pub async fn login_with(
        http: reqwest::Client,
        base: &str,
        username: &str,
        password: &str,
    ) -> Self {
        let response = http
            .post(format!("{base}/api/login"))
            .json(&json!({"username": username, "password": password, "device": "elsewhere"}))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "login of {username}");
        let login: LoginResponse = response.json().await.unwrap();
        Self {
            base: base.to_owned(),
            token: login.token,
            http,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {text}");
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        }
    }

    /// Creates a user with [`PASSWORD`].
    pub async fn create_user(&self, username: &str, role: &str) {
        self.call(
            reqwest::Method::POST,
            "/api/users",
            Some(json!({"username": username, "password": PASSWORD, "role": role})),
        )
        .await;
    }

    /// Creates a professor and signs them in.
    pub async fn professor(&self, username: &str) -> Staff {
        self.create_user(username, "professor").await;
        Staff::login_with(self.http.clone(), &self.base, username, PASSWORD).await
    }

    /// An evaluation (text, code and choice questions `q1`–`q3`) with these students, running.
    pub async fn running(&self, students: &[&str]) -> Evaluation {
        let evaluation: Evaluation = serde_json::from_value(
            self.call(
                reqwest::Method::POST,
                "/api/evaluations",
                Some(json!({
                    "title": "Algorithms midterm",
                    "questions": [
                        {"id": "q1", "prompt": "Explain quicksort", "kind": "text"},
                        {"id": "q2", "prompt": "Write binary search", "kind": "code"},
                        {"id": "q3", "prompt": "Mergesort worst case?", "kind": "choice",
                         "choices": [{"id": "a", "label": "O(n)"}, {"id": "b", "label": "O(n log n)"}]}
                    ]
                })),
            )
            .await,
        )
        .unwrap();
        self.call(
            reqwest::Method::PUT,
            &format!("/api/evaluations/{}/access", evaluation.id),
            Some(json!({ "students": students })),
        )
        .await;
        self.set_phase(&evaluation.id, "in_progress").await
    }

    /// Moves the phase.
    pub async fn set_phase(&self, evaluation: &str, phase: &str) -> Evaluation {
        serde_json::from_value(
            self.call(
                reqwest::Method::POST,
                &format!("/api/evaluations/{evaluation}/phase"),
                Some(json!({ "phase": phase })),
            )
            .await,
        )
        .unwrap()
    }

    /// Sets `ends_at`.
    pub async fn set_ends_at(&self, evaluation: &str, ends_at: &str) {
        self.call(
            reqwest::Method::PUT,
            &format!("/api/evaluations/{evaluation}/ends_at"),
            Some(json!({ "ends_at": ends_at })),
        )
        .await;
    }

    /// Unblocks a student.
    pub async fn unblock(&self, evaluation: &str, username: &str) -> Participation {
        serde_json::from_value(
            self.call(
                reqwest::Method::POST,
                &format!("/api/evaluations/{evaluation}/participants/{username}/unblock"),
                Some(json!({"note": "checked the student's identity"})),
            )
            .await,
        )
        .unwrap()
    }

    /// A student's stored answers, as the owner sees them.
    pub async fn answers(&self, evaluation: &str, username: &str) -> Vec<Answer> {
        serde_json::from_value(
            self.call(
                reqwest::Method::GET,
                &format!("/api/evaluations/{evaluation}/answers?username={username}"),
                None,
            )
            .await,
        )
        .unwrap()
    }

    /// Changes an evaluation's proctoring settings (`PATCH`, only the keys given).
    pub async fn set_proctoring(&self, evaluation: &str, proctoring: Value) -> Evaluation {
        serde_json::from_value(
            self.call(
                reqwest::Method::PATCH,
                &format!("/api/evaluations/{evaluation}"),
                Some(json!({ "proctoring": proctoring })),
            )
            .await,
        )
        .unwrap()
    }

    /// Exempts `username` from `exempt` (proctoring settings by name) in an evaluation, for
    /// `reason`; an empty list ends the accommodation.
    pub async fn accommodate(
        &self,
        evaluation: &str,
        username: &str,
        exempt: &[&str],
        reason: &str,
    ) {
        self.call(
            reqwest::Method::PUT,
            &format!("/api/evaluations/{evaluation}/participants/{username}/accommodation"),
            Some(json!({ "exempt": exempt, "reason": reason })),
        )
        .await;
    }

    /// The participant rows of an evaluation (the board's), as JSON.
    pub async fn participants(&self, evaluation: &str) -> Vec<Value> {
        serde_json::from_value(
            self.call(
                reqwest::Method::GET,
                &format!("/api/evaluations/{evaluation}/participants"),
                None,
            )
            .await,
        )
        .unwrap()
    }

    /// The `integrity` summary of `username`'s participant row.
    pub async fn integrity(&self, evaluation: &str, username: &str) -> Value {
        self.participants(evaluation)
            .await
            .into_iter()
            .find(|row| row["username"] == username)
            .unwrap_or_else(|| panic!("{username} takes part in {evaluation}"))["integrity"]
            .clone()
    }

    /// The audit log of an evaluation.
    pub async fn audit(&self, evaluation: &str) -> Vec<AuditEntry> {
        serde_json::from_value(
            self.call(
                reqwest::Method::GET,
                &format!("/api/evaluations/{evaluation}/audit"),
                None,
            )
            .await,
        )
        .unwrap()
    }
}

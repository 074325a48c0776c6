//! The desktop app in a real window, driven over WebDriver: Xvfb (the display, given by
//! `DISPLAY`), `tauri-driver` (started here, inside a fresh kernel session keyring when `keyctl`
//! is installed) and WebKitWebDriver, which starts the built `invigil-desktop`. And the staff
//! console in headless Chromium under `chromedriver`, to watch what the app does reach the board.
//!
//! The client is a small typed one over the W3C protocol (JSON over HTTP with reqwest), the same
//! [`Session`] for both drivers: [`App`] and [`Browser`] add what is particular to each. Waiting
//! for the page is event-driven: [`Session::until`] runs an asynchronous script that resolves when
//! a `MutationObserver` sees the condition hold, bounded by the session's script timeout.

use crate::server::{WAIT, target_dir, workspace};
use base64::Engine as _;
use serde_json::{Value, json};
use std::net::TcpListener;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The W3C key codes of Enter and Tab, for [`App::type_into`].
pub const ENTER: &str = "\u{E007}";
/// Tab.
pub const TAB: &str = "\u{E004}";

/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// What the end-to-end tests need from the machine, or why it is missing.
pub fn tooling() -> Result<Tooling, String> {
    let display = std::env::var("DISPLAY")
        .ok()
        .filter(|d| !d.is_empty())
        .ok_or("DISPLAY is not set (start Xvfb, e.g. `Xvfb :99 -screen 0 1920x1080x24 &` and export DISPLAY=:99)")?;
    let driver = which("tauri-driver").ok_or(
        "tauri-driver is not installed (`cargo install tauri-driver --version '^2' --locked`)",
    )?;
    which("WebKitWebDriver")
        .ok_or("WebKitWebDriver is not installed (Debian package webkit2gtk-driver)")?;
    Ok(Tooling {
        display,
        driver,
        keyctl: which("keyctl"),
    })
}

/// The machine's tooling for a real window.
#[derive(Debug, Clone)]
pub struct Tooling {
    /// The X display.
    pub display: String,
    /// `tauri-driver`.
    pub driver: PathBuf,
    /// `keyctl`, to give the app a session keyring of its own.
    pub keyctl: Option<PathBuf>,
}

/// What driving the staff console in headless Chromium needs, or why it is missing.
pub fn chromium() -> Result<Chromium, String> {
    Ok(Chromium {
        driver: which("chromedriver")
            .ok_or("chromedriver is not installed (Debian package chromium-driver)")?,
        binary: which("chromium").ok_or("Chromium is not installed (Debian package chromium)")?,
    })
}

/// The machine's Chromium and its WebDriver.
#[derive(Debug, Clone)]
pub struct Chromium {
    /// `chromedriver`.
    pub driver: PathBuf,
    /// The browser it starts.
    pub binary: PathBuf,
}

fn which(program: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(program))
        .chain(std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo/bin").join(program)))
        .find(|p| p.is_file())
}

/// The app binary: `INVIGIL_DESKTOP_BIN` when set (as `.ci/run` does), else built once per test
/// process (`cargo build -p invigil-desktop`, a no-op when fresh).
pub fn app_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            if let Some(given) = crate::server::given_binary("INVIGIL_DESKTOP_BIN") {
                return given;
            }
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let status = Command::new(cargo)
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "invigil-desktop",
                    "--bin",
                    "invigil-desktop",
                ])
                .current_dir(workspace())
                .status()
                .expect("cargo runs");
            assert!(status.success(), "building invigil-desktop failed");
            target_dir().join("debug").join("invigil-desktop")
        })
        .clone()
}

/// Where screenshots go: `target/e2e/`.
pub fn screenshot_dir() -> PathBuf {
    let dir = target_dir().join("e2e");
    std::fs::create_dir_all(&dir).expect("target/e2e");
    dir
}

/// A running WebDriver (its process, stopped with whatever it started when this is dropped) with
/// one session.
pub struct Session {
    http: reqwest::Client,
    base: String,
    session: Option<String>,
    driver: Child,
}

/// A running `tauri-driver` with one session of the app.
pub struct App {
    session: Session,
}

/// A running `chromedriver` with one session of headless Chromium, on a profile of its own.
pub struct Browser {
    // Declared first so that it is dropped first: Chromium is stopped before its profile goes.
    session: Session,
    _profile: tempfile::TempDir,
}

/// An element of the page.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Deref for App {
    type Target = Session;

    fn deref(&self) -> &Session {
        &self.session
    }
}

impl Deref for Browser {
    type Target = Session;

    fn deref(&self) -> &Session {
        &self.session
    }
}

impl Browser {
    /// Starts `chromedriver` on a free port and headless Chromium on a fresh profile.
    pub async fn launch(chromium: &Chromium) -> Browser {
        let profile = tempfile::tempdir().expect("a Chromium profile folder");
        let port = free_port();
        let mut command = Command::new(&chromium.driver);
        command
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let user_data = format!(
            "--user-data-dir={}",
            profile.path().to_str().expect("a UTF-8 profile folder")
        );
        let session = Session::start(
            command,
            port,
            json!({
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": chromium.binary,
                    "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                        "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", user_data]
                }
            }),
        )
        .await;
        Browser {
            session,
            _profile: profile,
        }
    }

    /// Ends the session (Chromium closes), then stops chromedriver.
    pub async fn quit(self) {
        self.session.quit().await;
    }
}

impl App {
    /// Starts `tauri-driver` and the app, with `env` (server URL, data folder) for the app.
    pub async fn launch(tooling: &Tooling, env: &[(&str, &str)]) -> App {
        let port = free_port();
        let native = free_port();
        let mut command = match &tooling.keyctl {
            Some(keyctl) => {
                let mut c = Command::new(keyctl);
                c.args(["session", "-"]).arg(&tooling.driver);
                c
            }
            None => Command::new(&tooling.driver),
        };
        command
            .args([
                "--port",
                &port.to_string(),
                "--native-port",
                &native.to_string(),
            ])
            .env("DISPLAY", &tooling.display)
            .env("INVIGIL_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (key, value) in env {
            command.env(key, value);
        }
        let session = Session::start(
            command,
            port,
            json!({
                "browserName": "wry",
                "tauri:options": {"application": app_binary()}
            }),
        )
        .await;
        App { session }
    }

    /// Starts the app on `server_url` with its data in `data_dir`.
    pub async fn launch_on(tooling: &Tooling, server_url: &str, data_dir: &Path) -> App {
        let data_dir = data_dir.to_str().expect("a UTF-8 data folder");
        Self::launch(
            tooling,
            &[
                ("INVIGIL_SERVER_URL", server_url),
                ("INVIGIL_DATA_DIR", data_dir),
            ],
        )
        .await
    }

    /// The app's own process (WebKitWebDriver starts it, below tauri-driver).
    pub fn app_pid(&self) -> u32 {
        let name = app_binary();
        let name = name.file_name().expect("the app binary's name");
        descendants(self.session.driver.id())
            .into_iter()
            .find(|pid| {
                std::fs::read_link(format!("/proc/{pid}/exe"))
                    .is_ok_and(|exe| exe.file_name() == Some(name))
            })
            .expect("the app is running")
    }

    /// Sends `signal` to the app's process.
    pub fn signal_app(&self, pid: u32, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal)
            .unwrap_or_else(|e| panic!("{signal} to the app: {e}"));
    }

    /// Waits until the app's process `pid` has exited (it is gone, or a zombie its parent has not
    /// reaped yet). Its parent is WebKitWebDriver, so this reads /proc, within [`WAIT`].
    pub async fn until_app_exited(&self, pid: u32) {
        let deadline = Instant::now() + WAIT;
        loop {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let (_, rest) = stat.rsplit_once(')')?;
                    rest.split_whitespace().next().map(str::to_owned)
                });
            if state.as_deref().is_none_or(|s| s == "Z" || s == "X") {
                return;
            }
            assert!(Instant::now() < deadline, "the app did not exit");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Ends the session (the app closes), then stops tauri-driver and whatever it started.
    pub async fn quit(self) {
        self.session.quit().await;
    }
}

impl Session {
    /// Spawns the WebDriver `command` (listening on `port`) and opens a session with these
    /// capabilities, its script timeout [`WAIT`].
    async fn start(mut command: Command, port: u16, capabilities: Value) -> Session {
        let program = command.get_program().to_string_lossy().into_owned();
        let driver = command
            .spawn()
            .unwrap_or_else(|e| panic!("{program} starts: {e}"));
        let mut session = Session {
            http: reqwest::Client::new(),
            base: format!("http://127.0.0.1:{port}"),
            session: None,
            driver,
        };
        // A WebDriver has no readiness signal but its /status endpoint.
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(r) = session
                .http
                .get(format!("{}/status", session.base))
                .send()
                .await
                && r.status().is_success()
            {
                break;
            }
            assert!(Instant::now() < deadline, "{program} did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let created = session
            .call(
                reqwest::Method::POST,
                "/session",
                json!({"capabilities": {"alwaysMatch": capabilities}}),
            )
            .await;
        session.session = Some(
            created["sessionId"]
                .as_str()
                .expect("a session id")
                .to_owned(),
        );
        session
            .command(
                reqwest::Method::POST,
                "/timeouts",
                json!({"script": WAIT.as_millis() as u64, "implicit": 0}),
            )
            .await;
        session
    }

    async fn try_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> Result<Value, Value> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if method != reqwest::Method::GET && method != reqwest::Method::DELETE {
            request = request.json(&body);
        }
        let response = request
            .timeout(WAIT + Duration::from_secs(10))
            .send()
            .await
            .unwrap_or_else(|e| panic!("WebDriver {path}: {e}"));
        let status = response.status();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            Ok(value["value"].clone())
        } else {
            Err(value["value"].clone())
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        self.try_call(method.clone(), path, body)
            .await
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"))
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let session = self.session.as_deref().expect("a session");
        self.call(method, &format!("/session/{session}{path}"), body)
            .await
    }

    /// The first element matching a CSS selector.
    pub async fn find(&self, css: &str) -> Element {
        let found = self
            .command(
                reqwest::Method::POST,
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        Element(found[ELEMENT].as_str().expect("an element").to_owned())
    }

    /// Clicks an element. The page re-renders as the engine reports changes, so an element found
    /// a moment ago may have been replaced: it is then found again.
    pub async fn click(&self, css: &str) {
        let session = self.session.as_deref().expect("a session");
        for _ in 0..10 {
            let element = self.find(css).await;
            let path = format!("/session/{session}/element/{}/click", element.0);
            match self.try_call(reqwest::Method::POST, &path, json!({})).await {
                Ok(_) => return,
                Err(e) if e["error"] == "stale element reference" => continue,
                Err(e) => panic!("clicking {css}: {e}"),
            }
        }
        panic!("{css} kept being replaced before it could be clicked");
    }

    /// Types into an element, as keystrokes.
    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{}/value", element.0),
            json!({"text": text}),
        )
        .await;
    }

    /// Clears a field.
    pub async fn clear(&self, css: &str) {
        let element = self.find(css).await;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{}/clear", element.0),
            json!({}),
        )
        .await;
    }

    /// The rendered text of an element.
    pub async fn text(&self, css: &str) -> String {
        let element = self.find(css).await;
        self.command(
            reqwest::Method::GET,
            &format!("/element/{}/text", element.0),
            Value::Null,
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// Runs a script in the page and returns its value.
    pub async fn script(&self, script: &str) -> Value {
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    /// Runs an asynchronous script in the page (it ends by calling
    /// `arguments[arguments.length - 1]` with its value) and returns that value.
    pub async fn script_async(&self, script: &str) -> Value {
        self.command(
            reqwest::Method::POST,
            "/execute/async",
            json!({"script": script, "args": []}),
        )
        .await
    }

    /// Waits until the JavaScript expression `condition` is true in the page: checked at once,
    /// then at every change of the document. Panics after [`WAIT`] with what the page showed.
    pub async fn until(&self, what: &str, condition: &str) {
        let script = format!(
            r#"const done = arguments[arguments.length - 1];
            const check = () => {{ try {{ return !!({condition}); }} catch (e) {{ return false; }} }};
            if (check()) {{ done(true); return; }}
            const observer = new MutationObserver(() => {{
              if (check()) {{ observer.disconnect(); done(true); }}
            }});
            observer.observe(document, {{subtree: true, childList: true, characterData: true, attributes: true}});"#
        );
        let session = self.session.as_deref().expect("a session");
        let response = self
            .http
            .post(format!("{}/session/{session}/execute/async", self.base))
            .json(&json!({"script": script, "args": []}))
            .timeout(WAIT + Duration::from_secs(10))
            .send()
            .await
            .expect("WebDriver answers");
        if !response.status().is_success() {
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let page = self.script("return document.body.innerText").await;
            panic!(
                "timed out waiting for {what} ({condition}): {}\n--- the page ---\n{}",
                body["value"]["message"],
                page.as_str().unwrap_or_default()
            );
        }
    }

    /// Waits as [`Session::until`] does until the JavaScript expression `value` is truthy, and
    /// returns its value.
    pub async fn until_value(&self, what: &str, value: &str) -> Value {
        self.until(what, value).await;
        self.script(&format!("return {value}")).await
    }

    /// Sets the window's size.
    pub async fn resize(&self, width: u32, height: u32) {
        self.command(
            reqwest::Method::POST,
            "/window/rect",
            json!({"width": width, "height": height}),
        )
        .await;
    }

    /// Saves a screenshot as `target/e2e/<name>.png`, after two animation frames so that it shows
    /// the current frame.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        self.command(
            reqwest::Method::POST,
            "/execute/async",
            json!({"script": "const done = arguments[0]; requestAnimationFrame(() => requestAnimationFrame(() => done(true)));", "args": []}),
        )
        .await;
        let data = self
            .command(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().expect("base64"))
            .expect("a PNG");
        let path = screenshot_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).expect("the screenshot is written");
        path
    }

    /// Opens `url` in the page.
    pub async fn navigate(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", json!({"url": url}))
            .await;
    }

    /// Ends the session (the app or browser closes), then stops the driver and whatever it
    /// started.
    pub async fn quit(mut self) {
        if self.session.is_some() {
            let session = self.session.take().unwrap();
            let _ = self
                .http
                .delete(format!("{}/session/{session}", self.base))
                .timeout(WAIT)
                .send()
                .await;
        }
        self.stop_driver();
    }

    fn stop_driver(&mut self) {
        let root = self.driver.id();
        for pid in descendants(root).into_iter().rev() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // A failed test still leaves no app, browser or driver behind.
        self.stop_driver();
    }
}

/// Every process below `root`, parents before children (read from /proc).
fn descendants(root: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // The command name is in parentheses and may hold spaces: read after the last ')'.
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
                continue;
            };
            if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
                parents.push((pid, ppid));
            }
        }
    }
    let mut found = vec![];
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for (pid, _) in parents.iter().filter(|(_, ppid)| *ppid == parent) {
            found.push(*pid);
            frontier.push(*pid);
        }
    }
    found
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

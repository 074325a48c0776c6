//! End to end, in a real window: the built desktop app under Xvfb, driven through tauri-driver
//! and WebKitWebDriver, against the real server. Screenshots go to `target/e2e/`.
//!
//! Without a display or the drivers these tests say that they skip, except in CI (`CI` set),
//! where they fail: `.ci/run` provides all of it.

#![allow(missing_docs)]

use invigil_e2e::server::{PASSWORD, Server, Staff, WAIT};
use invigil_e2e::webdriver::{App, Browser, Chromium, ENTER, TAB, Tooling, chromium, tooling};
use std::time::{Duration, Instant};

/// One app window at a time: tauri-driver sessions and the display are shared.
static WINDOW: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn tools(test: &str) -> Option<Tooling> {
    needed(test, tooling())
}

/// What `test` needs from the machine, or None when it is missing: the test says that it skips,
/// except in CI, where it fails.
fn needed<T>(test: &str, found: Result<T, String>) -> Option<T> {
    match found {
        Ok(t) => Some(t),
        Err(missing) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run the end-to-end tests: {missing}"
            );
            eprintln!("SKIPPED {test}: {missing}");
            None
        }
    }
}

/// The state of a question's answer as the page shows it.
fn answer(question: &str, state: &str) -> String {
    format!(
        r#"document.querySelector('#questions [data-question="{question}"] .answer-status').dataset.state === '{state}'"#
    )
}

/// The app on a fresh data folder, `username` signed in and `evaluation` started from the list.
async fn starting_exam(
    tooling: &Tooling,
    server: &Server,
    username: &str,
    evaluation: &str,
) -> (App, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let app = App::launch_on(tooling, &server.url(), data.path()).await;
    sign_in(&app, username).await;
    start_exam(&app, evaluation).await;
    (app, data)
}

async fn sign_in(app: &App, username: &str) {
    app.until(
        "the sign-in form",
        "!document.getElementById('screen-sign-in').hidden",
    )
    .await;
    app.clear("#login-username").await;
    app.type_into("#login-username", username).await;
    app.type_into("#login-password", PASSWORD).await;
    app.click("#sign-in-button").await;
}

/// Starts the evaluation from the list and waits for its open exam.
async fn start_exam(app: &App, evaluation_id: &str) {
    let start = format!("#evaluations [data-evaluation=\"{evaluation_id}\"] button");
    app.until(
        "the evaluation",
        &format!("document.querySelector('{start}')"),
    )
    .await;
    app.click(&start).await;
    app.until(
        "the open exam",
        "document.getElementById('screen-exam').dataset.exam === 'open'",
    )
    .await;
}

#[tokio::test]
async fn answers_survive_a_server_outage_in_a_real_window() {
    let Some(tooling) = tools("answers_survive_a_server_outage_in_a_real_window") else {
        return;
    };
    let _window = WINDOW.lock().await;
    let heartbeat = Duration::from_millis(1000);
    let mut server = Server::start(heartbeat.as_millis() as u64).await;
    let admin = Staff::admin(&server).await;
    let prof = admin.professor("prof").await;
    admin.create_user("alice", "student").await;
    let evaluation = prof.running(&["alice"]).await;
    let data = tempfile::tempdir().unwrap();
    let app = App::launch_on(&tooling, &server.url(), data.path()).await;

    // Sign in, wrongly first: the error is clear.
    app.until(
        "the sign-in form",
        "!document.getElementById('screen-sign-in').hidden",
    )
    .await;
    app.type_into("#login-username", "alice").await;
    app.type_into("#login-password", "wrong").await;
    app.click("#sign-in-button").await;
    app.until(
        "the sign-in error",
        "!document.getElementById('sign-in-error').hidden",
    )
    .await;
    assert_eq!(
        app.text("#sign-in-error").await,
        "Wrong username or password."
    );
    app.screenshot("01-sign-in-error").await;
    app.clear("#login-password").await;
    app.type_into("#login-password", PASSWORD).await;
    app.click("#sign-in-button").await;

    // The list, then the exam.
    app.until(
        "the evaluation in the list",
        &format!(
            "document.querySelector('#evaluations [data-evaluation=\"{}\"] button')",
            evaluation.id
        ),
    )
    .await;
    app.until(
        "online",
        "document.getElementById('banner').dataset.state === 'online'",
    )
    .await;
    app.screenshot("02-evaluations").await;
    app.click(&format!(
        "#evaluations [data-evaluation=\"{}\"] button",
        evaluation.id
    ))
    .await;
    app.until("the exam", "!document.getElementById('screen-exam').hidden")
        .await;
    app.type_into(
        "#questions [data-question=\"q1\"] textarea",
        "Quicksort picks a pivot",
    )
    .await;
    app.click("#questions [data-question=\"q3\"] input[value=\"b\"]")
        .await;
    app.until("q1 saved on the server", &answer("q1", "saved"))
        .await;
    app.until("q3 saved on the server", &answer("q3", "saved"))
        .await;
    assert_eq!(
        app.text("#questions [data-question=\"q1\"] .answer-status")
            .await,
        "Saved on the server"
    );
    app.screenshot("03-exam-online").await;

    // The server stops: the banner names the lost connection within three heartbeats, and new
    // typing is saved on this computer, waiting.
    server.kill().await;
    let stopped = Instant::now();
    app.until(
        "the banner to show the lost connection",
        "document.getElementById('banner').dataset.state === 'unreachable'",
    )
    .await;
    let noticed = stopped.elapsed();
    assert!(
        noticed <= heartbeat * 3,
        "the banner showed the lost connection after {noticed:?}"
    );
    assert!(app.text("#banner").await.contains("Server unreachable"));
    app.type_into(
        "#questions [data-question=\"q1\"] textarea",
        " and partitions around it.",
    )
    .await;
    app.until("q1 waiting on this computer", &answer("q1", "waiting"))
        .await;
    assert_eq!(
        app.text("#questions [data-question=\"q1\"] .answer-status")
            .await,
        "Saved on this computer, waiting for the server"
    );
    // Keep typing: the code editor (Tab indents there).
    app.type_into(
        "#questions [data-question=\"q2\"] textarea",
        &format!("def binary_search(xs, x):{ENTER}{TAB}return -1"),
    )
    .await;
    app.until("q2 waiting on this computer", &answer("q2", "waiting"))
        .await;
    app.until(
        "two answers waiting",
        "document.getElementById('waiting-count').dataset.count === '2'",
    )
    .await;
    app.screenshot("04-exam-server-unreachable").await;

    // The server comes back: every answer is acknowledged and stored.
    server.restart().await;
    app.until(
        "online again",
        "document.getElementById('banner').dataset.state === 'online'",
    )
    .await;
    app.until(
        "nothing waiting",
        "document.getElementById('waiting-count').dataset.count === '0'",
    )
    .await;
    for q in ["q1", "q2", "q3"] {
        app.until(&format!("{q} saved"), &answer(q, "saved")).await;
    }
    app.screenshot("05-exam-back-online").await;
    let mut stored: Vec<(String, String)> = prof
        .answers(&evaluation.id, "alice")
        .await
        .into_iter()
        .map(|a| (a.question_id, a.content))
        .collect();
    stored.sort();
    assert_eq!(
        stored,
        [
            (
                "q1".to_owned(),
                "Quicksort picks a pivot and partitions around it.".to_owned()
            ),
            (
                "q2".to_owned(),
                "def binary_search(xs, x):\n    return -1".to_owned()
            ),
            ("q3".to_owned(), "b".to_owned()),
        ]
    );

    app.resize(1920, 1080).await;
    app.screenshot("06-exam-1920x1080").await;
    app.quit().await;
}

#[tokio::test]
async fn phase_changes_and_a_second_sign_in_show_live() {
    let Some(tooling) = tools("phase_changes_and_a_second_sign_in_show_live") else {
        return;
    };
    let _window = WINDOW.lock().await;
    let server = Server::start(1000).await;
    let admin = Staff::admin(&server).await;
    let prof = admin.professor("prof").await;
    admin.create_user("bob", "student").await;
    let evaluation = prof.running(&["bob"]).await;
    let data = tempfile::tempdir().unwrap();
    let app = App::launch_on(&tooling, &server.url(), data.path()).await;
    sign_in(&app, "bob").await;
    start_exam(&app, &evaluation.id).await;
    app.type_into("#questions [data-question=\"q1\"] textarea", "Mine.")
        .await;
    app.until("q1 saved", &answer("q1", "saved")).await;

    // The professor closes the evaluation: the exam locks at once.
    prof.set_phase(&evaluation.id, "grading").await;
    app.until(
        "the closed exam",
        "document.getElementById('screen-exam').dataset.exam === 'closed' && document.querySelector('#questions textarea').readOnly",
    )
    .await;
    assert!(
        app.text("#exam-lock")
            .await
            .contains("The evaluation is closed")
    );
    app.screenshot("07-exam-closed-by-professor").await;
    prof.set_phase(&evaluation.id, "in_progress").await;
    app.until(
        "the exam open again",
        "document.getElementById('screen-exam').dataset.exam === 'open' && !document.querySelector('#questions textarea').readOnly",
    )
    .await;

    // Someone signs in as bob elsewhere: this app shows the block.
    Staff::login(&server.url(), "bob", PASSWORD).await;
    app.until(
        "the session-ended screen naming the block",
        "!document.getElementById('screen-ended').hidden",
    )
    .await;
    assert_eq!(
        app.text("#ended-title").await,
        "A second sign-in was detected: ask your professor to unblock you"
    );
    app.screenshot("08-signed-in-elsewhere").await;

    // Bob signs in again here: blocked, live, until the professor unblocks him.
    app.click("#ended-sign-in").await;
    app.until(
        "the sign-in form",
        "!document.getElementById('screen-sign-in').hidden",
    )
    .await;
    app.type_into("#login-password", PASSWORD).await;
    app.click("#sign-in-button").await;
    app.until(
        "the blocked screen",
        "!document.getElementById('screen-blocked').hidden",
    )
    .await;
    assert!(
        app.text("#screen-blocked h1")
            .await
            .contains("ask your professor to unblock you")
    );
    app.screenshot("09-blocked").await;
    prof.unblock(&evaluation.id, "bob").await;
    app.until(
        "the exam, unblocked",
        "!document.getElementById('screen-exam').hidden && document.getElementById('screen-exam').dataset.exam === 'open'",
    )
    .await;
    app.screenshot("10-unblocked").await;
    app.quit().await;
}

/// Alice in the open exam of a running evaluation of `server`, in an app with its data in `data`;
/// then the server is killed, and what she types from now on waits on this computer.
async fn alice_offline_in_her_exam(
    tooling: &Tooling,
    server: &mut Server,
    data: &std::path::Path,
) -> (App, invigil_protocol::Evaluation) {
    let admin = Staff::admin(server).await;
    let prof = admin.professor("prof").await;
    admin.create_user("alice", "student").await;
    let evaluation = prof.running(&["alice"]).await;
    let app = App::launch_on(tooling, &server.url(), data).await;
    sign_in(&app, "alice").await;
    start_exam(&app, &evaluation.id).await;
    server.kill().await;
    app.until(
        "unreachable",
        "document.getElementById('banner').dataset.state === 'unreachable'",
    )
    .await;
    (app, evaluation)
}

/// Replaces the page's `confirm` with one that records each question on `<body data-asked>` (a
/// change the page's observers see) and answers yes unless the question contains `refuse`.
fn answer_questions(refuse: &str) -> String {
    format!(
        r#"window.asked = window.asked || [];
        window.confirm = (question) => {{
          window.asked.push(question);
          document.body.dataset.asked = String(window.asked.length);
          return {refuse:?} === '' || !question.includes({refuse:?});
        }};
        return true;"#
    )
}

/// A file an export wrote, as JSON.
fn exported(path: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[tokio::test]
async fn answers_another_student_left_waiting_are_listed_at_sign_in_and_exported() {
    let Some(tooling) =
        tools("answers_another_student_left_waiting_are_listed_at_sign_in_and_exported")
    else {
        return;
    };
    let _window = WINDOW.lock().await;
    let mut first = Server::start(1000).await;
    let second = Server::start(1000).await;
    Staff::admin(&second)
        .await
        .create_user("bob", "student")
        .await;
    let data = tempfile::tempdir().unwrap();

    // Alice's server goes away while she types: her answer waits on this computer.
    let (app, _) = alice_offline_in_her_exam(&tooling, &mut first, data.path()).await;
    app.type_into(
        "#questions [data-question=\"q1\"] textarea",
        "Written by alice, left behind",
    )
    .await;
    app.until("q1 waiting", &answer("q1", "waiting")).await;

    // Signing out asks first (the running exam, then the waiting answer); saying no keeps her
    // signed in.
    app.script(&answer_questions("not reached the server"))
        .await;
    app.click("#sign-out").await;
    app.until("two questions", "document.body.dataset.asked === '2'")
        .await;
    let asked = app.script("return window.asked").await;
    assert!(
        asked[1]
            .as_str()
            .unwrap()
            .starts_with("1 answer has not reached the server yet"),
        "{asked}"
    );
    assert!(
        !app.script("return document.getElementById('screen-exam').hidden")
            .await
            .as_bool()
            .unwrap()
    );
    app.script(&answer_questions("")).await;
    app.click("#sign-out").await;

    // The sign-in screen lists her waiting answer: who, which server, how many, since when.
    let alice = "#left-behind-list li[data-username=\"alice\"]";
    app.until(
        "alice's answer on the sign-in screen",
        &format!(
            "!document.getElementById('screen-sign-in').hidden && document.querySelector('{alice}')"
        ),
    )
    .await;
    let listed = app.text(alice).await;
    assert!(listed.contains(&first.addr.to_string()), "{listed}");
    assert!(listed.contains("1 answer waiting since"), "{listed}");

    // Bob signs in here, on another server, and signs out: alice's answer is still listed.
    app.click("#server-details summary").await;
    app.clear("#login-server").await;
    app.type_into("#login-server", &second.url()).await;
    sign_in(&app, "bob").await;
    app.until(
        "bob's evaluations",
        "!document.getElementById('screen-list').hidden",
    )
    .await;
    app.click("#sign-out").await;
    app.until(
        "alice's answer on the sign-in screen again",
        &format!(
            "!document.getElementById('screen-sign-in').hidden && document.querySelector('{alice}')"
        ),
    )
    .await;
    app.script("document.getElementById('left-behind').scrollIntoView(); return true")
        .await;
    app.screenshot("11-sign-in-answers-left-behind").await;

    // The export writes her answer to a file for the professor.
    app.click(&format!("{alice} button")).await;
    let path = app
        .until_value(
            "the export's path",
            &format!("document.querySelector('{alice} .export-result').dataset.path"),
        )
        .await;
    let path = path.as_str().unwrap();
    let file = exported(path);
    assert_eq!(file["username"], "alice");
    assert_eq!(
        file["answers"][0]["content"],
        "Written by alice, left behind"
    );
    std::fs::remove_file(path).unwrap();
    app.quit().await;
}

/// Typing that reached the engine but not yet the disk when the app is told to stop by `signal`
/// is on disk when it has stopped, and waiting at the next start.
async fn typing_is_written_when(signal: nix::sys::signal::Signal) {
    let test = format!("typing_is_written_on_{signal}");
    let Some(tooling) = tools(&test) else {
        return;
    };
    let _window = WINDOW.lock().await;
    let mut server = Server::start(1000).await;
    let data = tempfile::tempdir().unwrap();
    // No server: what is written stays waiting on this computer, where the test reads it.
    let (app, evaluation) = alice_offline_in_her_exam(&tooling, &mut server, data.path()).await;
    app.type_into("#questions [data-question=\"q1\"] textarea", "Typed")
        .await;

    // The signal must arrive while the engine holds the last keystrokes in memory only (the
    // flusher writes them within FLUSH_DELAY): the app is stopped (SIGSTOP) once the engine has
    // them and the disk is read; if the flusher was quicker, another keystroke and again.
    let pid = app.app_pid();
    let mut text = "Typed".to_owned();
    let mut attempts = 0;
    loop {
        attempts += 1;
        assert!(attempts <= 20, "the flusher always wrote first");
        app.type_into("#questions [data-question=\"q1\"] textarea", "!")
            .await;
        text.push('!');
        app.script_async(&format!(
            r#"const done = arguments[arguments.length - 1];
            const {{ invoke }} = window.__TAURI__.core;
            (async () => {{
              for (;;) {{
                const exam = await invoke('open_exam', {{ evaluationId: {id:?} }});
                if (exam.answers.q1 === {text:?}) return done(true);
              }}
            }})();"#,
            id = evaluation.id
        ))
        .await;
        app.signal_app(pid, nix::sys::signal::Signal::SIGSTOP);
        if !on_disk(data.path(), &text) {
            break;
        }
        app.signal_app(pid, nix::sys::signal::Signal::SIGCONT);
    }
    app.signal_app(pid, signal);
    app.signal_app(pid, nix::sys::signal::Signal::SIGCONT);
    app.until_app_exited(pid).await;

    assert!(on_disk(data.path(), &text), "{signal} lost {text:?}");
    let marker = std::fs::read_to_string(data.path().join("last-run.json")).unwrap();
    assert!(marker.contains("\"ended\""), "{marker}");
    drop(app);

    // The next start: the answer is waiting (whether the sign-in was kept or not), and its
    // export carries the text.
    let app = App::launch_on(&tooling, &server.url(), data.path()).await;
    app.until("the app", "document.getElementById('banner') !== null")
        .await;
    let waiting = app
        .script_async(
            r#"const done = arguments[arguments.length - 1];
            window.__TAURI__.core.invoke('waiting_answers').then(done, (e) => done({error: e}));"#,
        )
        .await;
    assert_eq!(waiting[0]["username"], "alice", "{waiting}");
    assert_eq!(waiting[0]["answers"], 1, "{waiting}");
    let summary = app
        .script_async(&format!(
            r#"const done = arguments[arguments.length - 1];
            window.__TAURI__.core
              .invoke('export_waiting_answers', {{ serverUrl: {server:?}, username: 'alice' }})
              .then(done, (e) => done({{error: e}}));"#,
            server = waiting[0]["serverUrl"].as_str().unwrap()
        ))
        .await;
    let path = summary["path"].as_str().expect("an export");
    assert_eq!(exported(path)["answers"][0]["content"], text.as_str());
    std::fs::remove_file(path).unwrap();
    app.quit().await;
}

/// Whether a file in the data folder holds `text` (an answer's record is JSON: `text` has no
/// character JSON escapes).
fn on_disk(dir: &std::path::Path, text: &str) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|entry| {
        let path = entry.path();
        if path.is_dir() {
            on_disk(&path, text)
        } else {
            std::fs::read_to_string(&path).is_ok_and(|s| s.contains(&format!("\"{text}\"")))
        }
    })
}

#[tokio::test]
async fn typing_is_written_on_sigterm() {
    typing_is_written_when(nix::sys::signal::Signal::SIGTERM).await;
}

#[tokio::test]
async fn typing_is_written_on_sighup() {
    typing_is_written_when(nix::sys::signal::Signal::SIGHUP).await;
}

/// A window manager and another program on the test display, for as long as a test needs them:
/// without a window manager nothing takes or gives the focus. Both are stopped (by their own
/// PIDs) when it is dropped, pass or fail.
struct Focusable {
    display: String,
    processes: Vec<std::process::Child>,
    _dir: tempfile::TempDir,
}

impl Focusable {
    /// openbox (unless a window manager already runs there) and an xmessage titled `other`; None
    /// when they are not installed (scripts/setup installs them).
    fn start(display: &str, other: &str) -> Option<Self> {
        let missing: Vec<&str> = ["openbox", "xdotool", "xmessage", "xprop"]
            .into_iter()
            .filter(|tool| {
                !std::env::var_os("PATH").is_some_and(|path| {
                    std::env::split_paths(&path).any(|dir| dir.join(tool).is_file())
                })
            })
            .collect();
        if !missing.is_empty() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run the proctoring test in a real window: missing {missing:?}"
            );
            eprintln!("SKIPPED the proctoring test in a real window: missing {missing:?}");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut focusable = Focusable {
            display: display.to_owned(),
            processes: Vec::new(),
            _dir: dir,
        };
        if !focusable.has_window_manager() {
            let rc = focusable._dir.path().join("openbox.xml");
            std::fs::write(
                &rc,
                r#"<?xml version="1.0" encoding="UTF-8"?>
<openbox_config xmlns="http://openbox.org/3.4/rc">
  <focus><focusNew>yes</focusNew><followMouse>no</followMouse></focus>
</openbox_config>
"#,
            )
            .unwrap();
            focusable.start_window_manager(&rc);
        }
        let xmessage = focusable
            .command("xmessage")
            .args(["-geometry", "+40+40", "-title", other, "another program"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("xmessage starts");
        focusable.processes.push(xmessage);
        Some(focusable)
    }

    /// Starts openbox with the configuration `rc` and waits until it manages the screen. An
    /// openbox that exits before it does (seen once in CI, at random) is started again, twice at
    /// most; what it printed is in the failure's message.
    fn start_window_manager(&mut self, rc: &std::path::Path) {
        let log = self._dir.path().join("openbox.log");
        let deadline = Instant::now() + WAIT;
        for attempt in 1..=3 {
            let mut openbox = self
                .command("openbox")
                .args(["--sm-disable", "--config-file"])
                .arg(rc)
                .stdout(std::process::Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .expect("openbox starts");
            let exited = loop {
                if self.has_window_manager() {
                    self.processes.push(openbox);
                    return;
                }
                if let Some(status) = openbox.try_wait().unwrap() {
                    break status;
                }
                if Instant::now() >= deadline {
                    let _ = openbox.kill();
                    let _ = openbox.wait();
                    panic!(
                        "timed out waiting for openbox to manage the screen; it printed: {}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            eprintln!(
                "openbox exited ({exited}) before managing the screen (attempt {attempt}): {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        panic!("openbox exited three times before managing the screen");
    }

    fn command(&self, program: &str) -> std::process::Command {
        let mut command = std::process::Command::new(program);
        command.env("DISPLAY", &self.display);
        command
    }

    fn output(&self, program: &str, args: &[&str]) -> String {
        let out = self.command(program).args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn has_window_manager(&self) -> bool {
        self.output("xprop", &["-root", "_NET_SUPPORTING_WM_CHECK"])
            .contains("window id")
    }

    /// The visible window titled exactly `title`.
    fn window(&self, title: &str) -> String {
        poll(&format!("the window {title:?}"), || {
            let pattern = format!("^{title}$");
            self.output("xdotool", &["search", "--onlyvisible", "--name", &pattern])
                .lines()
                .next()
                .map(str::to_owned)
        })
    }

    fn activate(&self, window: &str) {
        let status = self
            .command("xdotool")
            .args(["windowactivate", "--sync", window])
            .status()
            .unwrap();
        assert!(status.success(), "xdotool windowactivate {window}");
    }

    fn active_window(&self) -> String {
        self.output("xdotool", &["getactivewindow"])
            .trim()
            .to_owned()
    }
}

impl Drop for Focusable {
    fn drop(&mut self) {
        for process in self.processes.iter_mut().rev() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}

/// Waits (at most [`WAIT`]) until `check` gives something, checking every 50 ms.
fn poll<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn leaving_a_proctored_exam_window_reaches_the_professor_live() {
    let Some(tooling) = tools("leaving_a_proctored_exam_window_reaches_the_professor_live") else {
        return;
    };
    let Some(chromium) = needed(
        "leaving_a_proctored_exam_window_reaches_the_professor_live",
        chromium(),
    ) else {
        return;
    };
    let _window = WINDOW.lock().await;
    let Some(desktop) = Focusable::start(&tooling.display, "other program") else {
        return;
    };
    let server = Server::start(1000).await;
    let admin = Staff::admin(&server).await;
    let prof = admin.professor("prof").await;
    admin.create_user("carol", "student").await;
    let evaluation = prof.running(&["carol"]).await;
    prof.set_proctoring(&evaluation.id, serde_json::json!({"report_focus": true}))
        .await;
    // The professor watches the board in a browser from before the student leaves: what follows
    // has to reach it live.
    let board = professor_board(&chromium, &server, "prof", &evaluation.id).await;
    let carol = board_row("carol");
    let (app, _data) = starting_exam(&tooling, &server, "carol", &evaluation.id).await;
    let line = "document.querySelector('#proctor li')?.textContent";
    app.until(
        "the line of what the exam reports",
        &format!("{line} === 'This exam reports when you leave the window: 0 times so far.'"),
    )
    .await;

    // The student switches to another program, then comes back.
    let exam = desktop.window("invigil");
    let other = desktop.window("other program");
    desktop.activate(&exam);
    poll("the exam to have the focus", || {
        (desktop.active_window() == exam).then_some(())
    });
    let left = Instant::now();
    desktop.activate(&other);
    // Live: the professor's board has it while the student is still away.
    let away = wait_for_integrity(&prof, &evaluation.id, "carol", |i| i["focus_lost"] == 1).await;
    assert_eq!(away["last"]["kind"], "focus_lost", "{away}");
    board
        .until(
            "the board to show carol away",
            &format!("{carol}.textContent.includes('Left the window 1× · away now')"),
        )
        .await;
    desktop.activate(&exam);
    let back = left.elapsed();
    let integrity = wait_for_integrity(&prof, &evaluation.id, "carol", |i| {
        i["last"]["kind"] == "focus_regained"
    })
    .await;
    assert_eq!(integrity["focus_lost"], 1, "{integrity}");
    let away_ms = integrity["away_ms"].as_u64().unwrap();
    assert!(
        away_ms > 0 && away_ms <= back.as_millis() as u64 + 100,
        "away {away_ms} ms, at most {back:?}"
    );
    app.until(
        "the line to count it",
        &format!(
            "{line}?.startsWith('This exam reports when you leave the window: 1 time so far')"
        ),
    )
    .await;
    app.screenshot("12-proctored-exam-left-once").await;

    // The board, never reloaded, shows that she came back and how long she was away (a short
    // absence, under the evaluation's `brief_ms`, is counted apart as brief).
    let brief = match integrity["brief"].as_u64() {
        Some(0) => "",
        Some(1) => r" \(1 brief\)",
        _ => panic!("one absence, brief or not: {integrity}"),
    };
    let left_once = format!("/Left the window 1×{brief} · ([0-9.]+) (ms|s) away/");
    let shown = board
        .until_value(
            "the board to show carol back",
            &format!("{carol}.textContent.match({left_once})?.slice(1)"),
        )
        .await;
    let (number, unit) = (shown[0].as_str().unwrap(), shown[1].as_str().unwrap());
    let number: f64 = number.parse().unwrap();
    // The board rounds: to the millisecond, to a tenth of a second below 10 s, then to the second.
    let (shown_ms, rounding) = match unit {
        "ms" => (number, 0.0),
        _ if number < 10.0 => (number * 1000.0, 50.0),
        _ => (number * 1000.0, 500.0),
    };
    assert!(
        (shown_ms - away_ms as f64).abs() <= rounding,
        "the board shows {number} {unit} away, the server {away_ms} ms"
    );
    assert_eq!(
        board.script("return window.__marker").await,
        1,
        "the board was reloaded"
    );
    board.screenshot("13-board-left-the-window").await;
    board.quit().await;
    app.quit().await;
    drop(desktop);
}

/// The staff console in headless Chromium: `username` signs in on the live board of
/// `evaluation`, which is then marked (`window.__marker`) so that a reload would show.
async fn professor_board(
    chromium: &Chromium,
    server: &Server,
    username: &str,
    evaluation: &str,
) -> Browser {
    let board = Browser::launch(chromium).await;
    board.resize(1600, 900).await;
    board
        .navigate(&format!(
            "{}/#/evaluations/{evaluation}/board",
            server.url()
        ))
        .await;
    board
        .until(
            "the console's sign-in",
            "document.querySelector('form.sign-in')",
        )
        .await;
    board
        .type_into("form.sign-in input[autocomplete=username]", username)
        .await;
    board
        .type_into("form.sign-in input[type=password]", PASSWORD)
        .await;
    board.click("form.sign-in button[type=submit]").await;
    board
        .until(
            "the live board",
            "document.getElementById('live-status').textContent === 'Live' \
             && document.querySelector('table.board tbody tr[data-username]')",
        )
        .await;
    board.script("window.__marker = 1").await;
    board
}

/// A JavaScript expression: `username`'s row on the board.
fn board_row(username: &str) -> String {
    format!("document.querySelector('table.board tbody tr[data-username=\"{username}\"]')")
}

/// Polls the professor's board until `check` holds of `username`'s integrity summary.
async fn wait_for_integrity(
    prof: &Staff,
    evaluation: &str,
    username: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let integrity = prof.integrity(evaluation, username).await;
        if check(&integrity) {
            return integrity;
        }
        assert!(Instant::now() < deadline, "the board showed {integrity}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

//! The commands through Tauri's mock runtime: the app as built for students (its real
//! `tauri.conf.json` and capability), no display, a real server behind it.
//!
//! The mock runtime answers IPC synchronously, so these are plain tests that start the server on
//! Tauri's own async runtime.

#![allow(missing_docs)]

use invigil_client::view::Overview;
use invigil_client::{ClientConfig, KeyringVault, ServerUrl};
use invigil_desktop::{EVENT, Startup, build};
use invigil_e2e::server::{PASSWORD, Server, Staff, WAIT};
use invigil_e2e::tls::Authority;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::mpsc;
use tauri::ipc::{CallbackFn, InvokeBody};
use tauri::test::{INVOKE_KEY, MockRuntime, get_ipc_response, mock_builder};
use tauri::webview::InvokeRequest;
use tauri::{App, Listener, Manager, WebviewWindow};

struct Desktop {
    app: App<MockRuntime>,
    window: WebviewWindow<MockRuntime>,
    _dir: tempfile::TempDir,
}

impl Desktop {
    fn start(server_url: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = ClientConfig::new(ServerUrl::parse(server_url).unwrap(), dir.path());
        let vault = Arc::new(KeyringVault::with_store(
            keyring_core::mock::Store::new().unwrap(),
        ));
        let app = build(
            mock_builder(),
            tauri::generate_context!("../tauri.conf.json"),
            Startup::With { config, vault },
        )
        .expect("the app builds");
        // The mock runtime does not open the configured windows; open the one the capability
        // names, as the real app does from tauri.conf.json.
        let window = tauri::WebviewWindowBuilder::new(&app, "main", Default::default())
            .build()
            .expect("the main window");
        Self {
            app,
            window,
            _dir: dir,
        }
    }

    fn invoke(&self, cmd: &str, args: Value) -> Result<Value, Value> {
        get_ipc_response(
            &self.window,
            InvokeRequest {
                cmd: cmd.into(),
                callback: CallbackFn(0),
                error: CallbackFn(1),
                url: "tauri://localhost".parse().unwrap(),
                body: InvokeBody::Json(args),
                headers: Default::default(),
                invoke_key: INVOKE_KEY.to_string(),
            },
        )
        .map(|body| body.deserialize::<Value>().unwrap())
    }

    fn overview(&self) -> Overview {
        let value = self.invoke("overview", json!({})).expect("overview");
        // The front end reads camelCase; check a few names, then compare with the engine's own.
        assert!(value["session"].get("serverUrl").is_some(), "{value}");
        assert!(value.get("serverNowMs").is_some(), "{value}");
        let engine = self.app.state::<invigil_client::Engine>().overview();
        // The two readings are a moment apart and the server's clock moves on between them:
        // compare the clock within a bound and everything else exactly.
        let mut value = value;
        let mut expected = serde_json::to_value(&engine).unwrap();
        let then = value["serverNowMs"].take().as_i64().unwrap();
        let now = expected["serverNowMs"].take().as_i64().unwrap();
        assert!(
            (0..=WAIT.as_millis() as i64).contains(&(now - then)),
            "the clock went from {then} to {now}"
        );
        assert_eq!(value, expected);
        engine
    }

    /// Signs `username` in and joins `evaluation_id` once the engine lists it.
    fn sign_in_and_join(
        &self,
        events: &mpsc::Receiver<Value>,
        username: &str,
        evaluation_id: &str,
    ) {
        self.invoke(
            "sign_in",
            json!({"username": username, "password": PASSWORD}),
        )
        .unwrap();
        until(events, "the evaluation", |e| {
            e["type"] == "evaluations" && e["data"][0].is_object()
        });
        self.invoke("join", json!({"evaluationId": evaluation_id}))
            .unwrap();
    }

    /// Engine events as the window receives them.
    fn events(&self) -> mpsc::Receiver<Value> {
        let (tx, rx) = mpsc::channel();
        self.app.listen(EVENT, move |event| {
            let _ = tx.send(serde_json::from_str(event.payload()).unwrap());
        });
        rx
    }
}

fn until(events: &mpsc::Receiver<Value>, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match events.recv_timeout(left) {
            Ok(event) if check(&event) => return event,
            Ok(_) => {}
            Err(_) => panic!("no event: {what}"),
        }
    }
}

#[test]
fn before_sign_in_commands_answer_with_a_kind_and_a_message() {
    let desktop = Desktop::start("http://127.0.0.1:9");

    let overview = desktop.overview();
    let error = desktop
        .invoke(
            "edit_answer",
            json!({"evaluationId": "e1", "questionId": "q1", "content": "x"}),
        )
        .unwrap_err();

    assert_eq!(
        overview.connection.state,
        invigil_client::view::ConnectionState::SignedOut
    );
    assert_eq!(error["kind"], "not_signed_in");
    assert!(error["message"].as_str().unwrap().contains("not signed in"));
}

#[test]
fn sign_in_errors_name_their_cause() {
    let server = tauri::async_runtime::block_on(async {
        let server = Server::start(5000).await;
        Staff::admin(&server)
            .await
            .create_user("alice", "student")
            .await;
        server
    });
    let desktop = Desktop::start(&server.url());

    let wrong = desktop
        .invoke("sign_in", json!({"username": "alice", "password": "nope"}))
        .unwrap_err();
    let unreachable = desktop
        .invoke(
            "sign_in",
            json!({"serverUrl": "http://127.0.0.1:9", "username": "alice", "password": PASSWORD}),
        )
        .unwrap_err();

    let insecure = desktop
        .invoke(
            "sign_in",
            json!({"serverUrl": "http://exams.example.org", "username": "alice", "password": PASSWORD}),
        )
        .unwrap_err();

    assert_eq!(wrong["kind"], "invalid_credentials");
    assert_eq!(unreachable["kind"], "network");
    // The engine's typed refusal reaches the sign-in screen as it is, with its reason.
    assert_eq!(insecure["kind"], "insecure_server");
    let message = insecure["message"].as_str().unwrap();
    assert!(
        message.contains("not encrypted") && message.contains("INVIGIL_ALLOW_INSECURE=1"),
        "{message}"
    );
}

#[test]
fn a_server_certificate_this_computer_does_not_trust_is_refused_in_words_for_the_sign_in_screen() {
    let server = tauri::async_runtime::block_on(async {
        let server = Server::start_tls(5000, &Authority::new("A school's CA").issue()).await;
        Staff::admin(&server)
            .await
            .create_user("alice", "student")
            .await;
        server
    });
    // The platform's authorities only: no INVIGIL_CA_FILE.
    let desktop = Desktop::start(&server.url());

    let error = desktop
        .invoke(
            "sign_in",
            json!({"username": "alice", "password": PASSWORD}),
        )
        .unwrap_err();

    assert_eq!(error["kind"], "untrusted_certificate");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.starts_with("The server's certificate is not trusted by this computer"),
        "{message}"
    );
    assert!(message.contains("INVIGIL_CA_FILE"), "{message}");
}

#[test]
fn a_student_signs_in_answers_and_sees_it_saved_through_forwarded_events() {
    let (server, prof, evaluation) = tauri::async_runtime::block_on(async {
        let server = Server::start(5000).await;
        let admin = Staff::admin(&server).await;
        let prof = admin.professor("prof").await;
        admin.create_user("alice", "student").await;
        let evaluation = prof.running(&["alice"]).await;
        (server, prof, evaluation)
    });
    let desktop = Desktop::start(&server.url());
    let events = desktop.events();

    let session = desktop
        .invoke(
            "sign_in",
            json!({"username": "alice", "password": PASSWORD}),
        )
        .expect("signed in");
    assert_eq!(session["user"]["username"], "alice");
    until(&events, "online", |e| {
        e["type"] == "connection" && e["data"]["state"] == "online"
    });
    until(&events, "the evaluation", |e| {
        e["type"] == "evaluations" && e["data"][0]["id"] == evaluation.id.as_str()
    });
    let joined = desktop
        .invoke("join", json!({"evaluationId": evaluation.id}))
        .expect("joined");
    assert_eq!(joined["exam"], "open");
    let exam = desktop
        .invoke("open_exam", json!({"evaluationId": evaluation.id}))
        .expect("opened");
    assert_eq!(exam["evaluation"]["questions"][1]["kind"], "code");
    desktop
        .invoke(
            "edit_answer",
            json!({"evaluationId": evaluation.id, "questionId": "q2", "content": "def f(): pass"}),
        )
        .expect("edited");
    until(&events, "q2 saved on the server", |e| {
        e["type"] == "answer"
            && e["data"]["answer"]["questionId"] == "q2"
            && e["data"]["answer"]["state"] == "saved"
    });

    let stored = tauri::async_runtime::block_on(prof.answers(&evaluation.id, "alice"));
    assert_eq!(stored[0].content, "def f(): pass");
    assert!(
        desktop
            .invoke("server_now", json!({}))
            .unwrap()
            .as_i64()
            .unwrap()
            > 0
    );
    let reopened = desktop
        .invoke("open_exam", json!({"evaluationId": evaluation.id}))
        .unwrap();
    assert_eq!(reopened["answers"]["q2"], "def f(): pass");
}

#[test]
fn export_writes_the_waiting_answers_to_a_file_and_says_where() {
    let (server, evaluation) = tauri::async_runtime::block_on(async {
        let server = Server::start(5000).await;
        let admin = Staff::admin(&server).await;
        let prof = admin.professor("prof").await;
        admin.create_user("alice", "student").await;
        let evaluation = prof.running(&["alice"]).await;
        (server, evaluation)
    });
    let desktop = Desktop::start(&server.url());
    let events = desktop.events();
    desktop.sign_in_and_join(&events, "alice", &evaluation.id);
    // Nothing is waiting: the export is empty, but still a valid file the console can read.
    let summary = desktop.invoke("export_answers", json!({})).unwrap();
    let path = summary["path"].as_str().unwrap();
    let name = std::path::Path::new(path)
        .file_name()
        .unwrap()
        .to_str()
        .unwrap();
    assert!(name.starts_with("invigil-answers-alice-"), "{name}");
    assert!(
        name.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')),
        "{name}"
    );
    let export = invigil_client::export::read(std::path::Path::new(path)).unwrap();
    assert_eq!(export.username, "alice");
    assert_eq!(summary["answers"], export.answers.len());
    std::fs::remove_file(path).unwrap();
    desktop.invoke("sign_out", json!({})).unwrap();
    assert!(!desktop.overview().session.signed_in);
}

#[test]
fn answers_another_student_left_waiting_are_listed_and_exported_after_a_sign_in_elsewhere() {
    let (mut first, evaluation, second) = tauri::async_runtime::block_on(async {
        let first = Server::start(5000).await;
        let admin = Staff::admin(&first).await;
        let prof = admin.professor("prof").await;
        admin.create_user("alice", "student").await;
        let evaluation = prof.running(&["alice"]).await;
        let second = Server::start(5000).await;
        Staff::admin(&second)
            .await
            .create_user("bob", "student")
            .await;
        (first, evaluation, second)
    });
    let desktop = Desktop::start(&first.url());
    let events = desktop.events();
    desktop.sign_in_and_join(&events, "alice", &evaluation.id);
    // Alice's server goes away: her answer waits on this computer, and she signs out.
    tauri::async_runtime::block_on(first.kill());
    until(&events, "unreachable", |e| {
        e["type"] == "connection" && e["data"]["state"] == "unreachable"
    });
    desktop
        .invoke(
            "edit_answer",
            json!({"evaluationId": evaluation.id, "questionId": "q1", "content": "alice's text"}),
        )
        .unwrap();
    until(&events, "q1 waiting", |e| {
        e["type"] == "answer" && e["data"]["answer"]["state"] == "waiting"
    });
    desktop.invoke("sign_out", json!({})).unwrap();
    // Bob signs in here, on another server.
    desktop
        .invoke(
            "sign_in",
            json!({"serverUrl": second.url(), "username": "bob", "password": PASSWORD}),
        )
        .unwrap();

    let waiting = desktop.invoke("waiting_answers", json!({})).unwrap();
    let alices_server = ServerUrl::parse(&first.url()).unwrap().to_string();
    assert_eq!(waiting.as_array().unwrap().len(), 1, "{waiting}");
    assert_eq!(waiting[0]["serverUrl"], alices_server.as_str());
    assert_eq!(waiting[0]["username"], "alice");
    assert_eq!(waiting[0]["answers"], 1);
    assert!(
        waiting[0]["since"].as_str().unwrap().ends_with('Z'),
        "{waiting}"
    );

    let summary = desktop
        .invoke(
            "export_waiting_answers",
            json!({"serverUrl": alices_server, "username": "alice"}),
        )
        .unwrap();
    let path = std::path::PathBuf::from(summary["path"].as_str().unwrap());
    // The folder the export of the student signed in uses too.
    let folder = desktop
        .app
        .path()
        .document_dir()
        .ok()
        .filter(|d| d.is_dir())
        .unwrap_or_else(|| desktop._dir.path().to_owned());
    assert_eq!(path.parent(), Some(folder.as_path()));
    let export = invigil_client::export::read(&path).unwrap();
    assert_eq!(export.username, "alice");
    assert_eq!(export.server_url, alices_server);
    assert_eq!(summary["answers"], 1);
    assert_eq!(export.answers[0].content, "alice's text");
    std::fs::remove_file(&path).unwrap();

    // A name from the page never leads the file out of that folder.
    let hostile = desktop
        .invoke(
            "export_waiting_answers",
            json!({"serverUrl": alices_server, "username": "../../x/.."}),
        )
        .unwrap();
    let hostile = std::path::PathBuf::from(hostile["path"].as_str().unwrap());
    assert_eq!(hostile.parent(), Some(folder.as_path()));
    let name = hostile.file_name().unwrap().to_str().unwrap();
    assert!(
        name.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            && !name.starts_with('.'),
        "{name}"
    );
    std::fs::remove_file(&hostile).unwrap();
    let refused = desktop
        .invoke(
            "export_waiting_answers",
            json!({"serverUrl": "not a url", "username": "alice"}),
        )
        .unwrap_err();
    assert_eq!(refused["kind"], "invalid_server_url", "{refused}");
}

#[test]
fn the_window_may_not_call_what_its_capability_does_not_grant() {
    let desktop = Desktop::start("http://127.0.0.1:9");

    let refused = desktop
        .invoke(
            "plugin:path|resolve_directory",
            json!({"directory": 6, "path": "x"}),
        )
        .unwrap_err();

    assert!(
        refused.to_string().contains("not allowed"),
        "refused with {refused}"
    );
}

#[test]
fn the_page_may_report_to_the_proctor_but_not_steer_it() {
    let desktop = Desktop::start("http://127.0.0.1:9");

    // No proctored exam is being sat: the page is told so.
    let status = desktop.invoke("proctor_attach", json!({})).unwrap();
    assert_eq!(status["active"], false, "{status}");
    desktop
        .invoke("proctor_refused", json!({"what": "paste_from_outside"}))
        .unwrap();
    let refused = desktop
        .invoke(
            "proctor_refused",
            json!({"what": "anything the page likes"}),
        )
        .unwrap_err();
    assert!(refused.to_string().contains("unknown variant"), "{refused}");

    // The run is marked in the data folder, for the next start to read.
    let marker = desktop
        ._dir
        .path()
        .join(invigil_desktop::proctor::MARKER_FILE);
    let text = std::fs::read_to_string(marker).unwrap();
    assert!(text.contains("\"running\""), "{text}");
}

#[test]
fn opening_a_proctored_exam_proctors_it_and_its_signals_reach_the_server() {
    let (server, prof, evaluation) = tauri::async_runtime::block_on(async {
        let server = Server::start(5000).await;
        let admin = Staff::admin(&server).await;
        let prof = admin.professor("prof").await;
        admin.create_user("alice", "student").await;
        let evaluation = prof.running(&["alice"]).await;
        prof.set_proctoring(&evaluation.id, json!({"report_focus": true}))
            .await;
        (server, prof, evaluation)
    });
    let desktop = Desktop::start(&server.url());
    invigil_desktop::sitting::start_proctor(&desktop.window);
    let events = desktop.events();
    let host = desktop.app.state::<invigil_desktop::proctor::ProctorHost>();
    let proctoring = |active: bool| {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let status = host.status();
            if status.active == active {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "proctoring never became {active}: {status:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    desktop
        .invoke(
            "sign_in",
            json!({"username": "alice", "password": PASSWORD}),
        )
        .unwrap();
    let listed = until(&events, "the evaluation", |e| {
        e["type"] == "evaluations" && e["data"][0].is_object()
    });
    assert_eq!(listed["data"][0]["proctoring"]["report_focus"], true);
    desktop
        .invoke("join", json!({"evaluationId": evaluation.id}))
        .unwrap();
    assert!(!host.status().active, "not on screen yet");

    desktop
        .invoke("open_exam", json!({"evaluationId": evaluation.id}))
        .unwrap();
    let status = proctoring(true);
    assert_eq!(
        status.evaluation_id.as_deref(),
        Some(evaluation.id.as_str())
    );
    assert!(status.settings.unwrap().report_focus);
    // The exam's capabilities, reported as it opened, reach the professor's board through the
    // engine's integrity outbox; joining here is not a restart.
    let integrity = tauri::async_runtime::block_on(async {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let integrity = prof.integrity(&evaluation.id, "alice").await;
            if !integrity["capabilities"].is_null() {
                return integrity;
            }
            assert!(tokio::time::Instant::now() < deadline, "{integrity}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    });
    assert_eq!(integrity["capabilities"]["report_focus"], "enforced");
    let audit = tauri::async_runtime::block_on(prof.audit(&evaluation.id));
    assert!(!audit.iter().any(|e| e.kind.as_str() == "app_restarted"));

    // Back to the list: released. Opened again, then the professor turns proctoring off:
    // released by the settings' change alone.
    desktop.invoke("close_exam", json!({})).unwrap();
    proctoring(false);
    desktop
        .invoke("open_exam", json!({"evaluationId": evaluation.id}))
        .unwrap();
    proctoring(true);
    tauri::async_runtime::block_on(
        prof.set_proctoring(&evaluation.id, json!({"report_focus": false})),
    );
    proctoring(false);
}

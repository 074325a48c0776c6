//! Proctoring events, durable like answers: on disk before they are sent, through a SIGKILL of
//! the app and a SIGKILL of the server, sent again after every reconnect, and stored by the
//! server exactly once.
//!
//! The app that is killed runs in a child process ([`child_integrity_process`]: this test
//! binary again), as in `crash.rs`.

use crate::harness::*;
use invigil_client::integrity::IntegrityReport;
use invigil_client::view::ConnectionState;
use invigil_protocol::{IntegrityKind, Timestamp};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn focus_lost() -> IntegrityReport {
    IntegrityReport {
        kind: IntegrityKind::FocusLost,
        at: Timestamp::now(),
        away_ms: None,
        displays: None,
        capabilities: None,
        detail: None,
    }
}

fn focus_regained(away_ms: u64) -> IntegrityReport {
    IntegrityReport {
        kind: IntegrityKind::FocusRegained,
        away_ms: Some(away_ms),
        ..focus_lost()
    }
}

/// The integrity outbox folder of `username` on `server_url`.
fn integrity_dir(data_dir: &Path, server_url: &str, username: &str) -> PathBuf {
    outbox_dir(data_dir, server_url, username).with_file_name("integrity")
}

fn event_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "json"));
    files.sort();
    files
}

/// A running evaluation for alice whose professor asks for focus reports.
async fn proctored_exam(server: &Server) -> (Staff, String) {
    let (prof, id) = running_exam(server, &["alice"]).await;
    let evaluation = prof
        .set_proctoring(&id, json!({"report_focus": true}))
        .await;
    assert!(evaluation.proctoring.report_focus);
    (prof, id)
}

#[tokio::test]
async fn events_survive_an_app_kill_and_a_server_kill_and_are_stored_exactly_once() {
    // Invariant: every event reported is stored by the server once (its `events` count equals the
    // number of distinct events), whatever was killed in between, and nothing waits at the end.
    let mut server = Server::start(500).await;
    let proxy = Proxy::start(server.addr).await;
    let (prof, id) = proctored_exam(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let vault_file = dir.path().join("vault.json");
    let data = dir.path().join("app");

    let mut child = ChildApp::spawn(
        "integrity::child_integrity_process",
        &proxy.url(),
        &data,
        &vault_file,
        &id,
    );
    // One event delivered live, then the network goes and three more are written to disk.
    child.expect("APP DELIVERED").await;
    assert_eq!(prof.integrity(&id, "alice").await["events"], 1);
    proxy.set(Network::Cut);
    child.expect("APP PERSISTED").await;
    child.kill().await;
    let files = event_files(&integrity_dir(&data, &proxy.url(), "alice"));
    assert_eq!(files.len(), 3, "the three undelivered events are on disk");
    // Kept aside to be sent again once delivered: a resend must not count twice.
    let copies: Vec<(PathBuf, Vec<u8>)> = files
        .iter()
        .map(|f| (f.clone(), std::fs::read(f).unwrap()))
        .collect();

    // The server dies too; the network comes back to a dead server.
    server.kill().await;
    proxy.set(Network::Up);
    let mut alice =
        Student::start(&proxy.url(), &data, Arc::new(FileVault(vault_file.clone()))).await;
    assert_eq!(
        alice.engine.overview().integrity_pending,
        3,
        "found on disk"
    );
    // Reported while the server is down: kept with the others.
    alice
        .engine
        .report_integrity(&id, focus_lost())
        .await
        .unwrap();
    assert_eq!(alice.engine.overview().integrity_pending, 4);

    server.restart().await;
    alice.until_connection(ConnectionState::Online).await;
    alice
        .until("every event acknowledged", |o| o.integrity_pending == 0)
        .await;
    // The files go off the async threads, just after the acknowledgement.
    let folder = integrity_dir(&data, &proxy.url(), "alice");
    let deadline = tokio::time::Instant::now() + WAIT;
    while !event_files(&folder).is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "acknowledged events leave the disk: {:?}",
            event_files(&folder)
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let integrity = prof.integrity(&id, "alice").await;
    assert_eq!(integrity["events"], 5, "{integrity}");
    assert_eq!(integrity["focus_lost"], 3, "{integrity}");
    assert_eq!(integrity["away_ms"], 1500 + 700, "{integrity}");
    assert_eq!(integrity["longest_away_ms"], 1500, "{integrity}");

    // The same three events again (an acknowledgement lost with the connection looks like
    // this to the server): acknowledged again, stored once.
    drop(alice);
    for (path, bytes) in &copies {
        std::fs::write(path, bytes).unwrap();
    }
    let mut alice = Student::start(&proxy.url(), &data, Arc::new(FileVault(vault_file))).await;
    assert_eq!(alice.engine.overview().integrity_pending, 3);
    alice
        .until("the resent events acknowledged", |o| {
            o.integrity_pending == 0
        })
        .await;
    assert_eq!(prof.integrity(&id, "alice").await["events"], 5);
    let audited = prof
        .audit(&id)
        .await
        .into_iter()
        .filter(|e| e.kind.as_str() == "focus_lost" || e.kind.as_str() == "focus_regained")
        .count();
    assert_eq!(audited, 5, "one audit entry per event");
}

/// The app process of the test above; does nothing unless started by it.
#[tokio::test]
#[ignore = "the child process of events_survive_an_app_kill_and_a_server_kill_and_are_stored_exactly_once"]
async fn child_integrity_process() {
    let (mut alice, id) =
        child_student("events_survive_an_app_kill_and_a_server_kill_and_are_stored_exactly_once")
            .await;
    alice
        .engine
        .report_integrity(&id, focus_lost())
        .await
        .unwrap();
    alice
        .until("the first event acknowledged", |o| o.integrity_pending == 0)
        .await;
    println!("APP DELIVERED");
    alice
        .until("the network cut", |o| {
            o.connection.state != ConnectionState::Online
        })
        .await;
    for report in [focus_regained(1500), focus_lost(), focus_regained(700)] {
        alice.engine.report_integrity(&id, report).await.unwrap();
    }
    assert_eq!(alice.engine.overview().integrity_pending, 3);
    println!("APP PERSISTED");
    std::future::pending::<()>().await;
}

#[tokio::test]
async fn a_refused_event_is_dropped_and_waiting_events_go_into_the_answers_file() {
    let server = Server::start(500).await;
    let proxy = Proxy::start(server.addr).await;
    let (prof, id) = proctored_exam(&server).await;
    // Alice may take the second exam but has not started it: its events are refused.
    let other = prof.running(&["alice"]).await.id;
    let dir = tempfile::tempdir().unwrap();
    let mut alice = sitting(&proxy.url(), dir.path(), "alice", &id).await;

    alice
        .engine
        .report_integrity(&other, focus_lost())
        .await
        .unwrap();
    alice
        .until("the refused event dropped", |o| o.integrity_pending == 0)
        .await;
    assert_eq!(prof.integrity(&other, "alice").await["events"], 0);

    // Offline, an event waits; the answers file carries it for the professor.
    proxy.set(Network::Cut);
    alice
        .until("offline", |o| o.connection.state != ConnectionState::Online)
        .await;
    let event_id = alice
        .engine
        .report_integrity(&id, focus_regained(4200))
        .await
        .unwrap();
    let export_dir = tempfile::tempdir().unwrap();
    let summary = alice.engine.export(export_dir.path()).await.unwrap();
    assert_eq!(summary.integrity_events, 1);
    let file = invigil_client::export::read(Path::new(&summary.path)).unwrap();
    assert_eq!(file.integrity.len(), 1);
    let event = &file.integrity[0];
    assert_eq!(
        (event.event_id.as_str(), event.kind, event.away_ms),
        (event_id.as_str(), IntegrityKind::FocusRegained, Some(4200))
    );
    assert_eq!(event.evaluation_id, id);

    proxy.set(Network::Up);
    alice
        .until("delivered once online", |o| o.integrity_pending == 0)
        .await;
    assert_eq!(prof.integrity(&id, "alice").await["away_ms"], 4200);
}

#[tokio::test]
async fn an_accommodation_granted_during_the_exam_turns_only_its_settings_off_in_the_open_app() {
    // Invariant: the app proctors by the settings that apply to its student: an exemption granted
    // while the exam runs reaches the running app without a restart and turns exactly the
    // exempted setting off; ending it turns the setting on again.
    let server = Server::start(500).await;
    let (prof, id) = proctored_exam(&server).await;
    prof.set_proctoring(&id, json!({"block_clipboard": true}))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let mut alice = Student::start(&server.url(), dir.path(), mock_vault()).await;
    alice.sign_in("alice").await;
    alice.until_evaluation(&id).await;
    alice.engine.join(&id).await.unwrap();
    let settings = |overview: &invigil_client::view::Overview| {
        overview
            .evaluations
            .iter()
            .find(|e| e.id == id)
            .map(|e| (e.proctoring.report_focus, e.proctoring.block_clipboard))
    };
    alice
        .until("both settings", |o| settings(o) == Some((true, true)))
        .await;

    prof.accommodate(
        &id,
        "alice",
        &["block_clipboard"],
        "A screen reader needs the clipboard.",
    )
    .await;
    alice
        .until("the clipboard exemption", |o| {
            settings(o) == Some((true, false))
        })
        .await;

    prof.accommodate(&id, "alice", &[], "The screen reader is no longer used.")
        .await;
    alice
        .until("the exemption ended", |o| settings(o) == Some((true, true)))
        .await;
}

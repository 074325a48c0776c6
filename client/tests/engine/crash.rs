//! The outbox survives the app being killed outright.
//!
//! The app runs in a child process: this test binary again, running only
//! [`child_app_process`], which signs in, types while the network is cut, reports once the
//! answers are on disk, and is then killed with SIGKILL. A new engine on the same data folder
//! (and the same keyring entry, here a file) resumes the session and delivers them.

use crate::harness::*;
use invigil_client::view::{AnswerState, ConnectionState};
use std::sync::Arc;

#[tokio::test]
async fn the_outbox_survives_a_sigkill_of_the_app_and_is_delivered_by_the_next_run() {
    let server = Server::start(1000).await;
    let proxy = Proxy::start(server.addr).await;
    let admin = Staff::admin(&server).await;
    let prof = admin.professor("prof").await;
    admin.create_user("alice", "student").await;
    let evaluation = prof.running(&["alice"]).await;
    let dir = tempfile::tempdir().unwrap();
    let vault_file = dir.path().join("vault.json");
    let data = dir.path().join("app");

    let mut child = ChildApp::spawn(
        "crash::child_app_process",
        &proxy.url(),
        &data,
        &vault_file,
        &evaluation.id,
    );
    child.expect("APP ONLINE").await;
    proxy.set(Network::Cut);
    child.expect("APP PERSISTED").await;
    child.kill().await;
    proxy.set(Network::Up);

    let mut alice = Student::start(&proxy.url(), &data, Arc::new(FileVault(vault_file))).await;
    let resumed = alice.engine.overview();
    assert_eq!(resumed.pending, 2, "both answers found on disk");
    alice.until_connection(ConnectionState::Online).await;
    alice.until("every answer saved", |o| o.pending == 0).await;

    let mut stored: Vec<_> = prof
        .answers(&evaluation.id, "alice")
        .await
        .into_iter()
        .map(|a| (a.question_id, a.content))
        .collect();
    stored.sort();
    assert_eq!(
        stored,
        [
            ("q1".to_owned(), "written just before the crash".to_owned()),
            ("q3".to_owned(), "b".to_owned())
        ]
    );
    let participation = alice.engine.overview().evaluations[0].status;
    assert_eq!(
        participation,
        invigil_protocol::ParticipationStatus::InProgress,
        "the same session resumed: not a second sign-in"
    );
}

/// The app process of the test above; does nothing unless started by it.
#[tokio::test]
#[ignore = "the child process of the_outbox_survives_a_sigkill_of_the_app_and_is_delivered_by_the_next_run"]
async fn child_app_process() {
    let (mut alice, id) =
        child_student("the_outbox_survives_a_sigkill_of_the_app_and_is_delivered_by_the_next_run")
            .await;
    println!("APP ONLINE");
    alice
        .until("the network cut", |o| {
            o.connection.state != ConnectionState::Online
        })
        .await;
    alice
        .engine
        .edit(&id, "q1", "written just before the crash".into())
        .unwrap();
    alice.engine.edit(&id, "q3", "b".into()).unwrap();
    alice
        .until("both answers on disk", |o| {
            ["q1", "q3"]
                .iter()
                .all(|q| answer_state(o, &id, q) == Some(AnswerState::Waiting))
        })
        .await;
    println!("APP PERSISTED");
    std::future::pending::<()>().await;
}

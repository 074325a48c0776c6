//! The connection: lost within three heartbeats, found again, and the server's clock.

use crate::harness::*;
use invigil_client::view::{AnswerState, ConnectionState};
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_silent_connection_is_lost_within_three_heartbeats_and_answers_wait_on_disk() {
    let heartbeat = Duration::from_millis(1000);
    let server = Server::start(heartbeat.as_millis() as u64).await;
    let proxy = Proxy::start(server.addr).await;
    let admin = Staff::admin(&server).await;
    let prof = admin.professor("prof").await;
    admin.create_user("alice", "student").await;
    let evaluation = prof.running(&["alice"]).await;
    let id = evaluation.id.clone();
    let dir = tempfile::tempdir().unwrap();
    let mut alice = Student::start(&proxy.url(), dir.path(), mock_vault()).await;
    alice.sign_in("alice").await;
    alice.until_evaluation(&id).await;
    alice.engine.join(&id).await.unwrap();
    alice.until_connection(ConnectionState::Online).await;

    // Nothing flows, nothing is closed: what a sleeping laptop or a dead Wi-Fi looks like.
    proxy.set(Network::Frozen);
    let frozen = Instant::now();
    alice
        .engine
        .edit(&id, "q1", "typed while frozen".into())
        .unwrap();
    let lost = alice.until_connection(ConnectionState::Unreachable).await;
    let detected = frozen.elapsed();

    assert!(
        detected <= heartbeat * 3 + Duration::from_millis(300),
        "detected after {detected:?}"
    );
    assert_eq!(answer_state(&lost, &id, "q1"), Some(AnswerState::Waiting));

    proxy.set(Network::Up);
    alice.until_connection(ConnectionState::Online).await;
    alice.until_answer(&id, "q1", AnswerState::Saved).await;
    assert_eq!(
        prof.answers(&id, "alice").await[0].content,
        "typed while frozen"
    );
}

#[tokio::test]
async fn a_cut_network_is_shown_as_unreachable_since_it_happened_and_reconnects_by_itself() {
    let server = Server::start(5000).await;
    let proxy = Proxy::start(server.addr).await;
    let admin = Staff::admin(&server).await;
    admin.create_user("alice", "student").await;
    let dir = tempfile::tempdir().unwrap();
    let mut alice = Student::start(&proxy.url(), dir.path(), mock_vault()).await;
    alice.sign_in("alice").await;
    alice.until_connection(ConnectionState::Online).await;

    let before = invigil_protocol::Timestamp::now();
    proxy.set(Network::Cut);
    let cut = alice.until_connection(ConnectionState::Unreachable).await;
    assert!(cut.connection.since >= before);
    assert!(cut.connection.detail.is_some());

    proxy.set(Network::Up);
    alice.until_connection(ConnectionState::Online).await;
}

#[tokio::test]
async fn the_server_clock_is_known_once_connected() {
    let server = Server::start(5000).await;
    let admin = Staff::admin(&server).await;
    admin.create_user("alice", "student").await;
    let dir = tempfile::tempdir().unwrap();
    let mut alice = Student::start(&server.url(), dir.path(), mock_vault()).await;
    assert!(!alice.engine.overview().clock_synced);
    alice.sign_in("alice").await;
    let online = alice.until_connection(ConnectionState::Online).await;

    assert!(online.clock_synced);
    // The server runs on this machine: its clock and this one agree.
    let drift = (alice.engine.server_now_ms() - invigil_protocol::Timestamp::now().unix_ms()).abs();
    assert!(drift < 1000, "drift {drift} ms");
}

//! Tests: the live socket and the event stream.

use crate::helpers::*;
use invigil_protocol::ServerMessage;

#[tokio::test]
async fn a_socket_starts_with_welcome_then_the_snapshot_then_snapshot_end() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;

    let (_socket, frames) = app.socket_ready(&alice).await;

    let ServerMessage::Welcome {
        session_id,
        user,
        heartbeat_ms,
        ..
    } = &frames[0]
    else {
        panic!("WELCOME first")
    };
    assert_eq!(session_id, &alice.session_id);
    assert_eq!(user.username, "alice");
    assert_eq!(*heartbeat_ms, 5000);
    assert!(
        matches!(&frames[1], ServerMessage::EvaluationUpdate { evaluation: e, .. } if e.id == evaluation.id)
    );
    assert_eq!(frames.last(), Some(&ServerMessage::SnapshotEnd));
}

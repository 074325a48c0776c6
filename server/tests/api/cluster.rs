//! Tests: several server nodes on one PostgreSQL database, behind no sticky load balancer — a
//! sign-in on one node invalidates a socket held by another, a newer socket of a session on one
//! node closes the older on another (4002), failed sign-ins are counted across nodes, a phase change on one reaches students
//! on every node, the participants board is right across nodes, concurrent saves of one answer on
//! two nodes stay idempotent, and a node killed while students are connected leaves them shown
//! disconnected once its heartbeat expires, after which they reconnect to another node without
//! losing an answer; and a node that loses its link to the database (events sent meanwhile are
//! lost to it) asks every client to reconnect for a fresh snapshot.
//!
//! They need PostgreSQL (`INVIGIL_TEST_POSTGRES_URL`) whatever `INVIGIL_TEST_ENGINE` says, and say
//! that they skip when it is unset or unreachable. The chaos tests ([`chaos`]) start a PostgreSQL
//! server of their own instead.

mod chaos;

use crate::helpers::*;
use invigil_protocol::{
    Answer, AuditEntry, AuditKind, InvalidationReason, Participant, Phase, ServerMessage,
    UpdateReason, close,
};
use reqwest::StatusCode;
use serde_json::json;
use std::collections::HashSet;

/// Two nodes on one fresh database, or `None` (having said so) without PostgreSQL.
async fn two_nodes(options: Options) -> Option<(TestApp, TestApp)> {
    let Some(db) = PgDatabase::create().await else {
        eprintln!("skipped: the cluster tests need PostgreSQL (INVIGIL_TEST_POSTGRES_URL)");
        return None;
    };
    let db = std::sync::Arc::new(db);
    let a = TestApp::spawn_on(Some(db.clone()), options.clone()).await;
    let b = TestApp::spawn_on(Some(db), options).await;
    Some((a, b))
}

/// `PARTICIPANT_UPDATE`'s row for `username` in `evaluation`.
fn row_of<'m>(m: &'m ServerMessage, evaluation: &str, username: &str) -> Option<&'m Participant> {
    match m {
        ServerMessage::ParticipantUpdate {
            evaluation_id,
            participant,
        } if evaluation_id == evaluation && participant.username == username => Some(participant),
        _ => None,
    }
}

/// The participants list as one node serves it.
async fn participants(app: &TestApp, staff: &Actor, evaluation: &str) -> Vec<Participant> {
    let (status, body) = app
        .get(
            staff,
            &format!("/api/evaluations/{evaluation}/participants"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_value(body).unwrap()
}

async fn connected(app: &TestApp, staff: &Actor, evaluation: &str, username: &str) -> bool {
    participants(app, staff, evaluation)
        .await
        .into_iter()
        .find(|p| p.username == username)
        .unwrap_or_else(|| panic!("{username} is a participant"))
        .connected
}

/// Saves over the socket and checks the acknowledgement.
async fn saved(socket: &mut Socket, evaluation: &str, question: &str, revision: u64) {
    socket
        .save(
            evaluation,
            question,
            revision,
            &format!("{question} r{revision}"),
        )
        .await;
    let ack = socket
        .until_alive(|m| matches!(m, ServerMessage::AnswerAck { question_id, .. } if question_id == question))
        .await;
    assert_eq!(
        ack,
        ServerMessage::AnswerAck {
            evaluation_id: evaluation.into(),
            question_id: question.into(),
            revision,
            late: false,
        }
    );
}

#[tokio::test]
async fn a_sign_in_on_one_node_invalidates_a_socket_held_by_another() {
    let Some((mut a, b)) = two_nodes(Options::default()).await else {
        return;
    };
    let old = a.student("alice").await;
    let (mut socket, _) = a.socket_ready(&old).await;

    b.login("alice", PASSWORD).await;

    assert_eq!(
        socket.next().await,
        ServerMessage::SessionInvalidated {
            reason: InvalidationReason::SignedInElsewhere
        }
    );
    assert_eq!(socket.closed().await, Some(close::SESSION_INVALIDATED));
    for node in [&a, &b] {
        let (status, body) = node.get(&old, "/api/me").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error"]["code"], "session_invalidated");
    }
}

#[tokio::test]
async fn a_newer_socket_of_a_session_on_another_node_closes_the_older_with_4002() {
    let Some((mut a, b)) = two_nodes(Options::default()).await else {
        return;
    };
    let prof = a.professor("prof1").await;
    let alice = a.student("alice").await;
    let evaluation = a.running(&prof, &[&alice]).await;
    a.join(&alice, &evaluation.id).await;
    let (mut older, _) = a.socket_ready(&alice).await;

    let (mut newer, _) = b.socket_ready(&alice).await;

    assert_eq!(older.closed().await, Some(close::REPLACED));
    saved(&mut newer, &evaluation.id, "q1", 1).await;
    assert!(connected(&a, &prof, &evaluation.id, "alice").await);
}

#[tokio::test]
async fn failed_sign_ins_are_counted_across_nodes() {
    let Some((mut a, b)) = two_nodes(Options::default()).await else {
        return;
    };
    a.create_user("alice", STUDENT).await;
    let login = |password: &str| json!({"username": "alice", "password": password});

    for i in 0..10 {
        let node = if i % 2 == 0 { &a } else { &b };
        let (status, body) = node
            .call(
                reqwest::Method::POST,
                "/api/login",
                None,
                Some(login("wrong")),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "failure {i}: {body}");
    }

    for node in [&a, &b] {
        let response = node
            .http
            .post(node.url("/api/login"))
            .json(&login(PASSWORD))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry_after: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (1..=300).contains(&retry_after),
            "Retry-After: {retry_after}"
        );
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "too_many_attempts");
    }
}

#[tokio::test]
async fn a_phase_change_on_one_node_reaches_a_student_on_another() {
    let Some((mut a, b)) = two_nodes(Options::default()).await else {
        return;
    };
    let prof = a.professor("prof1").await;
    let alice = a.student("alice").await;
    let evaluation = a.evaluation(&prof, json!({})).await;
    a.set_access(&prof, &evaluation.id, &[&alice]).await;
    let (mut socket, snapshot) = b.socket_ready(&alice).await;
    assert!(
        snapshot.iter().any(|m| matches!(m, ServerMessage::EvaluationUpdate { evaluation: e, .. } if e.id == evaluation.id && e.phase == Phase::Draft)),
        "{snapshot:?}"
    );

    a.set_phase(&prof, &evaluation.id, "in_progress").await;

    let update = socket
        .until(|m| {
            matches!(
                m,
                ServerMessage::EvaluationUpdate {
                    reason: UpdateReason::PhaseChanged,
                    ..
                }
            )
        })
        .await;
    let ServerMessage::EvaluationUpdate { evaluation: e, .. } = update else {
        unreachable!()
    };
    assert_eq!(e.id, evaluation.id);
    assert_eq!(e.phase, Phase::InProgress);
    assert_eq!(e.questions.len(), 3, "the questions come with the start");
}

#[tokio::test]
async fn the_participants_board_is_right_across_nodes() {
    let Some((mut a, b)) = two_nodes(Options::default()).await else {
        return;
    };
    let prof = a.professor("prof1").await;
    let alice = a.student("alice").await;
    let evaluation = a.running(&prof, &[&alice]).await;
    let id = evaluation.id.as_str();
    a.join(&alice, id).await;
    let (mut board, _) = a.socket_ready(&prof).await;

    // alice connects to the other node.
    let (mut socket, _) = b.socket_ready(&alice).await;
    board
        .until(|m| row_of(m, id, "alice").is_some_and(|p| p.connected))
        .await;
    assert!(connected(&a, &prof, id, "alice").await);
    assert!(connected(&b, &prof, id, "alice").await);

    // Her first answer, through the other node.
    saved(&mut socket, id, "q1", 1).await;
    let m = board
        .until(|m| row_of(m, id, "alice").is_some_and(|p| p.answered == 1))
        .await;
    assert!(row_of(&m, id, "alice").unwrap().connected);

    // She leaves.
    assert_eq!(socket.close().await, Some(1000));
    let m = board
        .until(|m| row_of(m, id, "alice").is_some_and(|p| !p.connected))
        .await;
    let pushed = row_of(&m, id, "alice").unwrap().clone();
    assert!(pushed.last_seen.is_some());
    for node in [&a, &b] {
        let row = participants(node, &prof, id)
            .await
            .into_iter()
            .find(|p| p.username == "alice")
            .unwrap();
        assert_eq!(row, pushed, "every node serves the pushed row");
    }
}

#[tokio::test]
async fn concurrent_saves_of_one_answer_on_two_nodes_keep_the_highest_revision() {
    let Some((mut a, b)) = two_nodes(Options::default()).await else {
        return;
    };
    let prof = a.professor("prof1").await;
    let alice = a.student("alice").await;
    let evaluation = a.running(&prof, &[&alice]).await;
    let id = evaluation.id.as_str();
    a.join(&alice, id).await;
    let path = format!("/api/evaluations/{id}/answers/q1");

    // The same revisions reach both nodes at once, as a client retrying through a load balancer
    // would send them.
    for revision in 1..=20u64 {
        let body = json!({"revision": revision, "content": format!("r{revision}")});
        let (on_a, on_b) = tokio::join!(
            a.put(&alice, &path, body.clone()),
            b.put(&alice, &path, body)
        );
        for (status, ack) in [on_a, on_b] {
            assert_eq!(status, StatusCode::OK, "{ack}");
            assert_eq!(
                ack["revision"], revision,
                "each save of a revision is acknowledged with it"
            );
        }
    }

    let (status, body) = a
        .get(
            &prof,
            &format!("/api/evaluations/{id}/answers?username=alice"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answers: Vec<Answer> = serde_json::from_value(body).unwrap();
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].revision, 20);
    assert_eq!(answers[0].content, "r20");
}

#[tokio::test]
async fn a_killed_nodes_students_are_shown_disconnected_and_reconnect_to_another_without_losing_an_answer()
 {
    // Short heartbeats, so that the dead node's heartbeat expires soon (after its floor of 3 s).
    let options = Options {
        heartbeat_ms: 1000,
        ..Options::default()
    };
    let Some((mut a, b)) = two_nodes(options).await else {
        return;
    };
    let prof = a.professor("prof1").await;
    let alice = a.student("alice").await;
    let bob = a.student("bob").await;
    let evaluation = a.running(&prof, &[&alice, &bob]).await;
    let id = evaluation.id.as_str();
    a.join(&alice, id).await;
    a.join(&bob, id).await;
    let (mut board, _) = b.socket_ready(&prof).await;
    let (mut alice_socket, _) = a.socket_ready(&alice).await;
    let (mut bob_socket, _) = a.socket_ready(&bob).await;
    let mut waiting: HashSet<&str> = HashSet::from(["alice", "bob"]);
    while !waiting.is_empty() {
        let m = board.next_alive().await;
        for name in ["alice", "bob"] {
            if row_of(&m, id, name).is_some_and(|p| p.connected) {
                waiting.remove(name);
            }
        }
    }
    // Acknowledged answers, on the node about to die.
    saved(&mut alice_socket, id, "q1", 1).await;
    saved(&mut alice_socket, id, "q1", 2).await;
    saved(&mut alice_socket, id, "q2", 1).await;
    saved(&mut bob_socket, id, "q1", 1).await;
    // A save sent but never acknowledged: the client keeps it and sends it again.
    bob_socket.save(id, "q3", 1, "q3 r1").await;

    a.kill().await;

    // Act 1: the board on the live node shows both gone once the dead node's heartbeat expires.
    let mut waiting: HashSet<&str> = HashSet::from(["alice", "bob"]);
    while !waiting.is_empty() {
        let m = board.next_alive().await;
        for name in ["alice", "bob"] {
            if row_of(&m, id, name).is_some_and(|p| !p.connected) {
                waiting.remove(name);
            }
        }
    }
    assert!(!connected(&b, &prof, id, "alice").await);
    assert!(!connected(&b, &prof, id, "bob").await);

    // Act 2: they reconnect to the live node with the same sessions, send again what was never
    // acknowledged (and, to be sure, something that was), and go on.
    let (mut alice_socket, snapshot) = b.socket_ready(&alice).await;
    assert!(
        snapshot.iter().any(
            |m| matches!(m, ServerMessage::EvaluationUpdate { evaluation: e, .. } if e.id == id)
        ),
        "{snapshot:?}"
    );
    let (mut bob_socket, _) = b.socket_ready(&bob).await;
    saved(&mut bob_socket, id, "q3", 1).await;
    saved(&mut alice_socket, id, "q1", 2).await;
    saved(&mut alice_socket, id, "q2", 2).await;
    board
        .until_alive(|m| row_of(m, id, "alice").is_some_and(|p| p.connected))
        .await;

    // Assert: every acknowledged answer is stored, once, at its revision.
    let stored = |name: &'static str| {
        let (b, prof) = (&b, &prof);
        async move {
            let (status, body) = b
                .get(
                    prof,
                    &format!("/api/evaluations/{id}/answers?username={name}"),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let answers: Vec<Answer> = serde_json::from_value(body).unwrap();
            answers
                .into_iter()
                .map(|a| (a.question_id, a.revision, a.content))
                .collect::<Vec<_>>()
        }
    };
    let entry = |q: &str, r: u64| (q.to_owned(), r, format!("{q} r{r}"));
    assert_eq!(stored("alice").await, [entry("q1", 2), entry("q2", 2)]);
    assert_eq!(stored("bob").await, [entry("q1", 1), entry("q3", 1)]);
    let rows = participants(&b, &prof, id).await;
    let answered: Vec<(String, u32)> = rows
        .iter()
        .map(|p| (p.username.clone(), p.answered))
        .collect();
    assert_eq!(answered, [("alice".to_owned(), 2), ("bob".to_owned(), 2)]);

    // The audit log tells the story: lost with the node, back on another.
    let (status, body) = b.get(&prof, &format!("/api/evaluations/{id}/audit")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let audit: Vec<AuditEntry> = serde_json::from_value(body).unwrap();
    let alice_kinds: Vec<AuditKind> = audit
        .iter()
        .filter(|e| e.username.as_deref() == Some("alice"))
        .map(|e| e.kind)
        .filter(|k| matches!(k, AuditKind::Disconnected | AuditKind::Reconnected))
        .collect();
    assert_eq!(
        alice_kinds,
        [AuditKind::Disconnected, AuditKind::Reconnected]
    );
}

#[tokio::test]
async fn a_node_that_loses_its_database_link_asks_every_client_to_reconnect_for_a_fresh_snapshot() {
    let Some(db) = PgDatabase::create().await else {
        eprintln!("skipped: the cluster tests need PostgreSQL (INVIGIL_TEST_POSTGRES_URL)");
        return;
    };
    let db = std::sync::Arc::new(db);
    let mut app = TestApp::spawn_on(Some(db.clone()), Options::default()).await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.evaluation(&prof, json!({})).await;
    app.set_access(&prof, &evaluation.id, &[&alice]).await;
    let (mut socket, _) = app.socket_ready(&alice).await;

    // Act: every connection of the node to the database ends, its event listener's too.
    assert!(db.terminate_connections().await > 0);

    // Assert: once it listens again, the node closes the socket with 1012 ...
    assert_eq!(socket.closed().await, Some(close::SERVICE_RESTART));
    // ... and the client that reconnects is served a snapshot and hears of changes again.
    let (mut socket, _) = app.socket_ready(&alice).await;
    app.set_phase(&prof, &evaluation.id, "in_progress").await;
    socket
        .until(|m| matches!(m, ServerMessage::EvaluationUpdate { reason: UpdateReason::PhaseChanged, evaluation: e, .. } if e.id == evaluation.id))
        .await;
}

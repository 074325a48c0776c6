//! Tests: durability — what was acknowledged survives a crash (SIGKILL) and a restart; sessions
//! survive too, so a student never signs in again; a graceful shutdown (SIGTERM) acknowledges every
//! save it received before closing sockets with 1001, ends event streams, and exits 0.

use crate::helpers::*;
use invigil_protocol::{
    Answer, Evaluation, ParticipationStatus, ServerMessage, UpdateReason, User, close,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A running evaluation with `count` text questions `q1`…, `alice` on its list and joined.
async fn exam_with(app: &mut TestApp, count: usize) -> (Actor, Actor, Evaluation) {
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let questions: Vec<Value> = (1..=count)
        .map(|i| json!({"id": format!("q{i}"), "prompt": format!("Question {i}"), "kind": "text"}))
        .collect();
    let evaluation = app.evaluation(&prof, json!({"questions": questions})).await;
    app.set_access(&prof, &evaluation.id, &[&alice]).await;
    app.set_phase(&prof, &evaluation.id, "in_progress").await;
    app.join(&alice, &evaluation.id).await;
    (prof, alice, evaluation)
}

/// What a save writes: distinct for every question and revision.
fn content(question: &str, revision: u64) -> String {
    format!(
        "answer to {question}, revision {revision}: {}",
        "é".repeat(revision as usize)
    )
}

/// Sends every save at once (pipelined), in order.
async fn send_all(socket: &mut Socket, evaluation: &str, saves: &[(String, u64)]) {
    for (question, revision) in saves {
        socket
            .save(
                evaluation,
                question,
                *revision,
                &content(question, *revision),
            )
            .await;
    }
}

/// Reads acknowledgements until every save has one; returns the highest revision acknowledged per
/// question. Panics on a refusal or a revision that was not sent.
async fn acknowledged(socket: &mut Socket, saves: &[(String, u64)]) -> BTreeMap<String, u64> {
    let mut pending: Vec<(String, u64)> = saves.to_vec();
    let mut highest = BTreeMap::new();
    while !pending.is_empty() {
        match socket.next().await {
            ServerMessage::AnswerAck {
                question_id,
                revision,
                late,
                ..
            } => {
                assert!(!late, "nothing here is late");
                let at = pending
                    .iter()
                    .position(|(q, r)| *q == question_id && *r == revision)
                    .unwrap_or_else(|| {
                        panic!("an acknowledgement of a save that is pending: {question_id} r{revision}")
                    });
                pending.swap_remove(at);
                let best = highest.entry(question_id).or_insert(0);
                *best = (*best).max(revision);
            }
            // The join's update may reach the socket after its snapshot.
            ServerMessage::EvaluationUpdate { .. } => {}
            other => panic!("only acknowledgements were expected, got {other:?}"),
        }
    }
    highest
}

/// `saves` revisions 1..=`revisions` of `questions` questions, revision-major (q1 r1, q2 r1, …).
fn plan(questions: usize, revisions: u64) -> Vec<(String, u64)> {
    (1..=revisions)
        .flat_map(|r| (1..=questions).map(move |q| (format!("q{q}"), r)))
        .collect()
}

/// The student's stored answers, by question.
pub(crate) async fn stored(
    app: &TestApp,
    student: &Actor,
    evaluation: &str,
) -> BTreeMap<String, Answer> {
    let (status, body) = app
        .get(student, &format!("/api/evaluations/{evaluation}/answers"))
        .await;
    assert_eq!(status, StatusCode::OK, "reading the answers: {body}");
    let answers: Vec<Answer> = serde_json::from_value(body).unwrap();
    answers
        .into_iter()
        .map(|a| (a.question_id.clone(), a))
        .collect()
}

/// Checks that every acknowledged answer is stored with its revision and content.
async fn all_stored(
    app: &TestApp,
    student: &Actor,
    evaluation: &str,
    acknowledged: &BTreeMap<String, u64>,
) {
    let answers = stored(app, student, evaluation).await;
    assert_eq!(
        answers.keys().collect::<Vec<_>>(),
        acknowledged.keys().collect::<Vec<_>>(),
        "an answer for every acknowledged question"
    );
    for (question, revision) in acknowledged {
        let answer = &answers[question];
        assert_eq!(answer.revision, *revision, "the revision of {question}");
        assert_eq!(
            answer.content,
            content(question, *revision),
            "the content of {question}"
        );
        assert!(!answer.late);
    }
}

#[tokio::test]
async fn acknowledged_answers_and_the_session_survive_a_sigkill() {
    // Arrange: fifty saves over the socket, every one acknowledged.
    let mut app = TestApp::spawn().await;
    let (_prof, alice, evaluation) = exam_with(&mut app, 10).await;
    let (mut socket, _) = app.socket_ready(&alice).await;
    let saves = plan(10, 5);
    assert_eq!(saves.len(), 50);
    send_all(&mut socket, &evaluation.id, &saves).await;
    let acked = acknowledged(&mut socket, &saves).await;

    // Act: the server dies at once, with no chance to flush anything.
    app.kill().await;
    assert_eq!(
        socket.closed().await,
        None,
        "no close frame from a killed server"
    );
    app.restart().await;

    // Assert: every acknowledged answer is there, and alice is still signed in and not blocked.
    all_stored(&app, &alice, &evaluation.id, &acked).await;
    let (status, me) = app.get(&alice, "/api/me").await;
    assert_eq!(status, StatusCode::OK, "the session survives: {me}");
    let me: User = serde_json::from_value(me).unwrap();
    assert_eq!(me, alice.user);
    let (_socket, frames) = app.socket_ready(&alice).await;
    assert!(
        matches!(&frames[0], ServerMessage::Welcome { session_id, .. } if *session_id == alice.session_id)
    );
    let participation = frames
        .iter()
        .find_map(|m| match m {
            ServerMessage::EvaluationUpdate {
                reason: UpdateReason::Snapshot,
                evaluation: e,
                participation,
            } if e.id == evaluation.id => Some(participation.clone()),
            _ => None,
        })
        .expect("the evaluation is in the new snapshot");
    assert_eq!(participation.status, ParticipationStatus::InProgress);
    assert_eq!(participation.blocked_reason, None);
}

#[tokio::test]
async fn sigterm_acknowledges_every_save_before_closing_sockets_with_1001_and_exits_cleanly() {
    // Arrange: saves sent, arrived at the server, and (mostly) not yet acknowledged.
    let mut app = TestApp::spawn().await;
    let (_prof, alice, evaluation) = exam_with(&mut app, 10).await;
    // Without Nagle's algorithm, each save is at the server by the time it has been sent.
    let (mut socket, _) = app.socket_ready_nodelay(&alice).await;
    let saves = plan(10, 3);
    send_all(&mut socket, &evaluation.id, &saves).await;
    socket.wait_delivered().await;

    // Act
    let clean = app.terminate().await;

    // Assert: every save was acknowledged, then the close came with 1001; the exit was clean.
    let acked = acknowledged(&mut socket, &saves).await;
    assert_eq!(
        socket.closed().await,
        Some(close::GOING_AWAY),
        "the close follows the acknowledgements and says the server is going away"
    );
    assert!(clean, "the server exits 0 after SIGTERM");
    app.restart().await;
    all_stored(&app, &alice, &evaluation.id, &acked).await;
}

#[tokio::test]
async fn a_socket_left_open_during_a_restart_reconnects_with_the_same_token_and_a_fresh_snapshot() {
    let mut app = TestApp::spawn().await;
    let (prof, alice, evaluation) = exam_with(&mut app, 3).await;
    let (mut socket, _) = app.socket_ready(&alice).await;
    socket
        .save(&evaluation.id, "q1", 1, &content("q1", 1))
        .await;
    assert!(matches!(
        socket.ack("q1").await,
        ServerMessage::AnswerAck { revision: 1, .. }
    ));

    assert!(app.terminate().await);
    assert_eq!(socket.closed().await, Some(close::GOING_AWAY));
    app.restart().await;
    // A change while alice is away.
    app.set_phase(&prof, &evaluation.id, "grading").await;

    let (mut socket, frames) = app.socket_ready(&alice).await;

    assert!(
        matches!(&frames[0], ServerMessage::Welcome { session_id, .. } if *session_id == alice.session_id)
    );
    let (phase, status) = frames
        .iter()
        .find_map(|m| match m {
            ServerMessage::EvaluationUpdate {
                reason: UpdateReason::Snapshot,
                evaluation: e,
                participation,
            } if e.id == evaluation.id => Some((e.phase, participation.status)),
            _ => None,
        })
        .expect("the evaluation is in the new snapshot");
    assert_eq!(phase, invigil_protocol::Phase::Grading);
    assert_eq!(status, ParticipationStatus::InProgress);
    // The new socket is fully live: a save after the end is kept, marked late.
    socket
        .save(&evaluation.id, "q2", 1, &content("q2", 1))
        .await;
    assert!(matches!(
        socket.ack("q2").await,
        ServerMessage::AnswerAck {
            revision: 1,
            late: true,
            ..
        }
    ));
}

#[tokio::test]
async fn event_streams_end_on_sigterm_so_the_server_exits_promptly() {
    let mut app = TestApp::spawn().await;
    let (prof, alice, _evaluation) = exam_with(&mut app, 1).await;
    let (mut student_stream, _) = app.events_ready(&alice).await;
    let (mut staff_stream, _) = app.events_ready(&prof).await;

    let started = Instant::now();
    let clean = app.terminate().await;
    let took = started.elapsed();

    assert!(clean, "the server exits 0 after SIGTERM");
    assert!(
        took < Duration::from_secs(5),
        "open event streams do not hold the shutdown up (took {took:?})"
    );
    student_stream.ended().await;
    staff_stream.ended().await;
}

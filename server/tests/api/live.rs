//! Tests: the live socket and the event stream — the opening (`WELCOME`, snapshot, `SNAPSHOT_END`)
//! for students, professors and admins; heartbeats and the silence rule; replacement of an older
//! socket; bad frames; the 1 MiB limit; live pushes to students and to owners; convergence after a
//! reconnect; authentication and the Origin check on the upgrade; SSE; health and metrics.

use crate::helpers::*;
use invigil_protocol::{
    AuditEntry, AuditKind, BlockedReason, ClientMessage, Evaluation, EvaluationDetail,
    InvalidationReason, MAX_MESSAGE_BYTES, Participant, Participation, ParticipationStatus, Phase,
    ServerMessage, Timestamp, UpdateReason, close,
};
use reqwest::StatusCode;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// A heartbeat short enough that the liveness tests finish in about a second.
const HEARTBEAT_MS: u64 = 300;

/// A server with [`HEARTBEAT_MS`].
async fn fast_app() -> TestApp {
    TestApp::spawn_with(Options {
        heartbeat_ms: HEARTBEAT_MS,
        ..Options::default()
    })
    .await
}

/// The evaluation and participation a student reads over HTTP: what every update must carry.
async fn seen_by(app: &TestApp, student: &Actor, evaluation: &str) -> (Evaluation, Participation) {
    let (status, body) = app
        .get(student, &format!("/api/evaluations/{evaluation}"))
        .await;
    assert_eq!(status, StatusCode::OK, "reading {evaluation}: {body}");
    let detail: EvaluationDetail = serde_json::from_value(body).unwrap();
    (
        detail.evaluation,
        detail
            .participation
            .expect("a student's read has a participation"),
    )
}

/// The participants list as staff read it.
async fn participants(app: &TestApp, staff: &Actor, evaluation: &str) -> Vec<Participant> {
    let (status, body) = app
        .get(
            staff,
            &format!("/api/evaluations/{evaluation}/participants"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "reading the participants: {body}");
    serde_json::from_value(body).unwrap()
}

/// One participant's row.
async fn participant(
    app: &TestApp,
    staff: &Actor,
    evaluation: &str,
    username: &str,
) -> Participant {
    participants(app, staff, evaluation)
        .await
        .into_iter()
        .find(|p| p.username == username)
        .unwrap_or_else(|| panic!("{username} is a participant of {evaluation}"))
}

/// The audit log.
async fn audit(app: &TestApp, staff: &Actor, evaluation: &str) -> Vec<AuditEntry> {
    let (status, body) = app
        .get(staff, &format!("/api/evaluations/{evaluation}/audit"))
        .await;
    assert_eq!(status, StatusCode::OK, "reading the audit log: {body}");
    serde_json::from_value(body).unwrap()
}

/// The row of a `PARTICIPANT_UPDATE` about `username` in `evaluation`.
fn row_of<'m>(m: &'m ServerMessage, evaluation: &str, username: &str) -> Option<&'m Participant> {
    match m {
        ServerMessage::ParticipantUpdate {
            evaluation_id,
            participant,
        } if evaluation_id == evaluation && participant.username == username => Some(participant),
        _ => None,
    }
}

/// Whether `m` is an `EVALUATION_UPDATE` of `evaluation` for this reason.
fn is_update(m: &ServerMessage, evaluation: &str, why: UpdateReason) -> bool {
    matches!(m, ServerMessage::EvaluationUpdate { reason, evaluation: e, .. } if *reason == why && e.id == evaluation)
}

/// Waits on a student's socket for the update of `evaluation` for this reason, and checks that it
/// carries the full current evaluation and participation, as the student reads them over HTTP.
async fn pushed(
    app: &TestApp,
    student: &Actor,
    socket: &mut Socket,
    evaluation: &str,
    why: UpdateReason,
) -> (Evaluation, Participation) {
    let m = socket.until(|m| is_update(m, evaluation, why)).await;
    let ServerMessage::EvaluationUpdate {
        evaluation: pushed,
        participation,
        ..
    } = m
    else {
        unreachable!()
    };
    let (current, current_participation) = seen_by(app, student, evaluation).await;
    assert_eq!(pushed, current, "the update carries the whole evaluation");
    assert_eq!(
        participation, current_participation,
        "the update carries the student's participation"
    );
    (pushed, participation)
}

/// The `EVALUATION_UPDATE`s between `WELCOME` and `SNAPSHOT_END`; panics on anything else there.
fn snapshot_updates(frames: &[ServerMessage]) -> Vec<(Evaluation, Participation)> {
    assert_eq!(frames.last(), Some(&ServerMessage::SnapshotEnd));
    frames[1..frames.len() - 1]
        .iter()
        .map(|m| match m {
            ServerMessage::EvaluationUpdate {
                reason: UpdateReason::Snapshot,
                evaluation,
                participation,
            } => (evaluation.clone(), participation.clone()),
            other => panic!("a student's snapshot holds only snapshot updates, got {other:?}"),
        })
        .collect()
}

/// The `PARTICIPANT_UPDATE`s between `WELCOME` and `SNAPSHOT_END`; panics on anything else there.
fn snapshot_rows(frames: &[ServerMessage]) -> Vec<(String, Participant)> {
    assert_eq!(frames.last(), Some(&ServerMessage::SnapshotEnd));
    frames[1..frames.len() - 1]
        .iter()
        .map(|m| match m {
            ServerMessage::ParticipantUpdate {
                evaluation_id,
                participant,
            } => (evaluation_id.clone(), participant.clone()),
            other => panic!("a staff snapshot holds only participant updates, got {other:?}"),
        })
        .collect()
}

/// Saves over the socket and checks that exactly that revision was acknowledged.
async fn saved(socket: &mut Socket, evaluation: &str, question: &str, revision: u64) {
    socket
        .save(
            evaluation,
            question,
            revision,
            &format!("{question} r{revision}"),
        )
        .await;
    let ack = socket.ack(question).await;
    assert_eq!(
        ack,
        ServerMessage::AnswerAck {
            evaluation_id: evaluation.into(),
            question_id: question.into(),
            revision,
            late: false
        }
    );
}

/// `GET /metrics` (an admin's, on the main address).
async fn metrics(app: &TestApp, admin: &Actor) -> String {
    let response = app
        .http
        .get(app.url("/metrics"))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.unwrap()
}

// ---- The opening ----------------------------------------------------------------------------

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

#[tokio::test]
async fn welcome_names_the_session_the_user_the_server_time_and_the_heartbeat() {
    let mut app = fast_app().await;
    let alice = app.student("alice").await;

    let before = Timestamp::now();
    let mut socket = app.socket(&alice).await;
    let first = socket.next().await;
    let after = Timestamp::now();

    let ServerMessage::Welcome {
        session_id,
        user,
        server_time,
        heartbeat_ms,
    } = first
    else {
        panic!("WELCOME is the first frame, got {first:?}")
    };
    assert_eq!(session_id, alice.session_id);
    assert_eq!(user, alice.user);
    assert!(
        before <= server_time && server_time <= after,
        "server_time {server_time} is the time of the opening ({before} … {after})"
    );
    assert_eq!(heartbeat_ms, HEARTBEAT_MS, "the configured heartbeat");
}

#[tokio::test]
async fn a_students_snapshot_is_one_snapshot_update_per_evaluation_they_can_see() {
    // Arrange: alice can see a running evaluation she joined, a draft and one in grading (on
    // their lists) and an open one; she cannot see one listing only bob.
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let bob = app.student("bob").await;
    let running = app.running(&prof, &[&alice]).await;
    app.join(&alice, &running.id).await;
    let draft = app.evaluation(&prof, json!({})).await;
    app.set_access(&prof, &draft.id, &[&alice]).await;
    let grading = app.running(&prof, &[&alice, &bob]).await;
    app.set_phase(&prof, &grading.id, "grading").await;
    let open = app.evaluation(&prof, json!({"access": "open"})).await;
    app.set_phase(&prof, &open.id, "in_progress").await;
    let hidden = app.running(&prof, &[&bob]).await;

    // Act
    let (_socket, frames) = app.socket_ready(&alice).await;

    // Assert: exactly one snapshot update per visible evaluation, each the full current state.
    let updates = snapshot_updates(&frames);
    let ids: Vec<&str> = updates.iter().map(|(e, _)| e.id.as_str()).collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(
        ids.len(),
        unique.len(),
        "one update per evaluation: {ids:?}"
    );
    let expected: BTreeSet<&str> = [&running, &draft, &grading, &open]
        .iter()
        .map(|e| e.id.as_str())
        .collect();
    assert_eq!(unique, expected);
    assert!(!unique.contains(hidden.id.as_str()));
    for (evaluation, participation) in &updates {
        assert_eq!(
            (evaluation.clone(), participation.clone()),
            seen_by(&app, &alice, &evaluation.id).await,
            "the snapshot of {} is what alice reads",
            evaluation.id
        );
        assert!(participation.access);
        assert_eq!(participation.username, "alice");
        let status = if evaluation.id == running.id {
            ParticipationStatus::InProgress
        } else {
            ParticipationStatus::NotStarted
        };
        assert_eq!(participation.status, status, "in {}", evaluation.id);
        if evaluation.id == draft.id {
            assert_eq!(evaluation.phase, Phase::Draft);
            assert!(evaluation.questions.is_empty(), "no questions in draft");
        } else {
            assert_eq!(evaluation.questions.len(), 3);
        }
    }
}

#[tokio::test]
async fn a_professors_snapshot_has_a_participant_update_for_each_participant_of_their_evaluations()
{
    // Arrange: prof1 owns a running list evaluation (alice joined, bob listed), a draft (carol
    // listed) and an open one bob joined; prof2 owns one with dave.
    let mut app = TestApp::spawn().await;
    let prof1 = app.professor("prof1").await;
    let prof2 = app.professor("prof2").await;
    let alice = app.student("alice").await;
    let bob = app.student("bob").await;
    let carol = app.student("carol").await;
    let dave = app.student("dave").await;
    let listed = app.running(&prof1, &[&alice, &bob]).await;
    app.join(&alice, &listed.id).await;
    let draft = app.evaluation(&prof1, json!({})).await;
    app.set_access(&prof1, &draft.id, &[&carol]).await;
    let open = app.evaluation(&prof1, json!({"access": "open"})).await;
    app.set_phase(&prof1, &open.id, "in_progress").await;
    app.join(&bob, &open.id).await;
    let others = app.running(&prof2, &[&dave]).await;

    // Act
    let (_socket, frames) = app.socket_ready(&prof1).await;

    // Assert
    let rows = snapshot_rows(&frames);
    let named: BTreeSet<(String, String)> = rows
        .iter()
        .map(|(e, p)| (e.clone(), p.username.clone()))
        .collect();
    assert_eq!(named.len(), rows.len(), "one update per participant");
    let expected: BTreeSet<(String, String)> = [
        (&listed, "alice"),
        (&listed, "bob"),
        (&draft, "carol"),
        (&open, "bob"),
    ]
    .iter()
    .map(|(e, u)| (e.id.clone(), (*u).to_owned()))
    .collect();
    assert_eq!(named, expected);
    assert!(rows.iter().all(|(e, _)| *e != others.id));
    for (evaluation, row) in &rows {
        assert_eq!(
            row,
            &participant(&app, &prof1, evaluation, &row.username).await,
            "the snapshot row is the participants list's row"
        );
        assert!(!row.connected, "no student is connected");
    }
    let alice_row = &rows
        .iter()
        .find(|(e, p)| *e == listed.id && p.username == "alice")
        .unwrap()
        .1;
    assert_eq!(alice_row.status, ParticipationStatus::InProgress);
}

#[tokio::test]
async fn an_admins_snapshot_has_a_participant_update_for_each_participant_of_every_running_evaluation()
 {
    let mut app = TestApp::spawn().await;
    let admin = app.admin().await;
    let prof1 = app.professor("prof1").await;
    let prof2 = app.professor("prof2").await;
    let alice = app.student("alice").await;
    let bob = app.student("bob").await;
    let carol = app.student("carol").await;
    let dave = app.student("dave").await;
    let first = app.running(&prof1, &[&alice]).await;
    let second = app.running(&prof2, &[&bob, &carol]).await;
    app.join(&bob, &second.id).await;
    let draft = app.evaluation(&prof1, json!({})).await;
    app.set_access(&prof1, &draft.id, &[&carol]).await;
    let grading = app.running(&prof2, &[&dave]).await;
    app.set_phase(&prof2, &grading.id, "grading").await;

    let (_socket, frames) = app.socket_ready(&admin).await;

    let rows = snapshot_rows(&frames);
    let named: BTreeSet<(String, String)> = rows
        .iter()
        .map(|(e, p)| (e.clone(), p.username.clone()))
        .collect();
    assert_eq!(named.len(), rows.len(), "one update per participant");
    let expected: BTreeSet<(String, String)> =
        [(&first, "alice"), (&second, "bob"), (&second, "carol")]
            .iter()
            .map(|(e, u)| (e.id.clone(), (*u).to_owned()))
            .collect();
    assert_eq!(
        named, expected,
        "only evaluations in progress, of every owner"
    );
    for (evaluation, row) in &rows {
        assert_eq!(
            row,
            &participant(&app, &admin, evaluation, &row.username).await
        );
    }
}

// ---- Liveness -------------------------------------------------------------------------------

#[tokio::test]
async fn heartbeats_arrive_every_heartbeat_ms() {
    let mut app = fast_app().await;
    let alice = app.student("alice").await;
    let (mut socket, _) = app.socket_ready(&alice).await;
    socket.keep_heartbeats = true;

    let mut times = Vec::new();
    while times.len() < 2 {
        match socket.next().await {
            ServerMessage::Heartbeat { server_time } => times.push(server_time),
            other => panic!("only heartbeats were expected, got {other:?}"),
        }
        // Stay alive for the server too.
        socket.send(&ClientMessage::Heartbeat).await;
    }

    let gap = (times[1].unix_ms() - times[0].unix_ms()) as u64;
    assert!(
        gap >= HEARTBEAT_MS * 5 / 6,
        "heartbeats are at least about {HEARTBEAT_MS} ms apart, got {gap} ms"
    );
    assert!(
        gap < HEARTBEAT_MS * 5,
        "heartbeats follow the configured period ({HEARTBEAT_MS} ms), got {gap} ms"
    );
}

#[tokio::test]
async fn a_silent_socket_is_closed_with_4008_and_the_owner_sees_the_student_disconnected() {
    // Arrange: alice sits a running evaluation; her professor watches.
    let mut app = fast_app().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;
    app.join(&alice, &evaluation.id).await;
    let (mut board, _) = app.socket_ready(&prof).await;

    // Act: alice's socket opens and then never sends anything.
    let opened = Instant::now();
    let (mut socket, _) = app.socket_ready(&alice).await;
    board
        .until_alive(|m| row_of(m, &evaluation.id, "alice").is_some_and(|p| p.connected))
        .await;
    let (code, update) = tokio::join!(
        socket.closed(),
        board.until_alive(|m| row_of(m, &evaluation.id, "alice").is_some_and(|p| !p.connected))
    );

    // Assert
    assert_eq!(code, Some(close::SILENT), "closed for silence");
    assert!(
        opened.elapsed() >= Duration::from_millis(3 * HEARTBEAT_MS),
        "not before three heartbeats of silence"
    );
    let row = row_of(&update, &evaluation.id, "alice").unwrap();
    assert_eq!(row.status, ParticipationStatus::InProgress);
    assert!(
        row.last_seen.is_some(),
        "the server says when it last heard"
    );
    assert!(
        !participant(&app, &prof, &evaluation.id, "alice")
            .await
            .connected
    );
    let log = audit(&app, &prof, &evaluation.id).await;
    let lost = log
        .iter()
        .find(|e| e.kind == AuditKind::Disconnected)
        .expect("the audit log records the disconnect");
    assert_eq!(lost.username.as_deref(), Some("alice"));
    assert_eq!(lost.actor, None, "the server itself noticed");
}

#[tokio::test]
async fn a_socket_that_sends_heartbeats_stays_open_past_three_heartbeats() {
    let mut app = fast_app().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;
    app.join(&alice, &evaluation.id).await;
    let (mut socket, _) = app.socket_ready(&alice).await;
    socket.keep_heartbeats = true;

    // The server's heartbeats are the clock: five of them are well past 3 × heartbeat_ms.
    let mut beats = 0;
    while beats < 5 {
        match socket.receive().await {
            Received::Message(ServerMessage::Heartbeat { .. }) => {
                beats += 1;
                socket.send(&ClientMessage::Heartbeat).await;
            }
            // The join's update may reach the socket after its snapshot.
            Received::Message(_) => {}
            Received::Closed(code) => panic!("the socket stays open, but closed with {code:?}"),
        }
    }

    socket.keep_heartbeats = false;
    saved(&mut socket, &evaluation.id, "q1", 1).await;
}

// ---- One socket per session -----------------------------------------------------------------

#[tokio::test]
async fn a_newer_socket_of_the_same_session_closes_the_older_one_with_4002() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;
    app.join(&alice, &evaluation.id).await;
    let (mut older, _) = app.socket_ready(&alice).await;

    let (mut newer, frames) = app.socket_ready(&alice).await;

    assert_eq!(older.closed().await, Some(close::REPLACED));
    assert!(
        matches!(&frames[0], ServerMessage::Welcome { session_id, .. } if *session_id == alice.session_id)
    );
    saved(&mut newer, &evaluation.id, "q1", 1).await;
    assert!(
        participant(&app, &prof, &evaluation.id, "alice")
            .await
            .connected,
        "a replaced socket does not disconnect the student"
    );
}

// ---- Bad frames -----------------------------------------------------------------------------

#[tokio::test]
async fn unknown_types_malformed_json_and_binary_frames_get_an_error_and_the_socket_stays_open() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;
    app.join(&alice, &evaluation.id).await;
    let (mut socket, _) = app.socket_ready(&alice).await;

    let bad_texts = [
        r#"{"type": "LAUNCH_MISSILES"}"#,
        r#"{"type": "ANSWER_SAVE", "evaluation_id": "#,
        "not json at all",
        "42",
        r#"{"no_type": true}"#,
        r#"{"type": "ANSWER_SAVE", "question_id": "q1"}"#,
    ];
    for text in bad_texts {
        socket.send_text(text).await;
        let m = socket
            .until(|m| !is_update(m, &evaluation.id, UpdateReason::StatusChanged))
            .await;
        assert!(
            matches!(&m, ServerMessage::Error { message, .. } if !message.is_empty()),
            "{text:?} gets an ERROR, got {m:?}"
        );
    }
    socket
        .send_raw(Message::binary(b"{\"type\":\"HEARTBEAT\"}".to_vec()))
        .await
        .expect("a binary frame is sent");
    let m = socket
        .until(|m| !is_update(m, &evaluation.id, UpdateReason::StatusChanged))
        .await;
    assert!(
        matches!(m, ServerMessage::Error { .. }),
        "a binary frame gets an ERROR, got {m:?}"
    );

    saved(&mut socket, &evaluation.id, "q1", 1).await;
}

#[tokio::test]
async fn a_message_of_exactly_1_mib_is_read() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;
    app.join(&alice, &evaluation.id).await;
    let (mut socket, _) = app.socket_ready(&alice).await;

    socket.send_text(&"x".repeat(MAX_MESSAGE_BYTES)).await;

    let m = socket
        .until(|m| !is_update(m, &evaluation.id, UpdateReason::StatusChanged))
        .await;
    assert!(
        matches!(m, ServerMessage::Error { .. }),
        "a 1 MiB frame is read (and, not being JSON, answered with an ERROR), got {m:?}"
    );
    saved(&mut socket, &evaluation.id, "q1", 1).await;
}

#[tokio::test]
async fn a_message_over_1_mib_closes_the_socket_with_1009() {
    let mut app = TestApp::spawn().await;
    let alice = app.student("alice").await;
    let (mut socket, _) = app.socket_ready(&alice).await;

    // The server may stop reading (and close) before the whole frame is written.
    let _ = socket
        .send_raw(Message::text("x".repeat(MAX_MESSAGE_BYTES + 1)))
        .await;

    assert_eq!(socket.closed().await, Some(close::MESSAGE_TOO_BIG));
}

#[tokio::test]
async fn a_message_over_1_mib_in_fragments_each_under_it_also_closes_the_socket_with_1009() {
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    let mut app = TestApp::spawn().await;
    let alice = app.student("alice").await;
    let (mut socket, _) = app.socket_ready(&alice).await;
    let half = "x".repeat(MAX_MESSAGE_BYTES / 2 + 1);

    let _ = socket
        .send_raw(Message::Frame(Frame::message(
            half.clone(),
            OpCode::Data(Data::Text),
            false,
        )))
        .await;
    let _ = socket
        .send_raw(Message::Frame(Frame::message(
            half,
            OpCode::Data(Data::Continue),
            true,
        )))
        .await;

    assert_eq!(socket.closed().await, Some(close::MESSAGE_TOO_BIG));
}

// ---- Live pushes to students ----------------------------------------------------------------

#[tokio::test]
async fn phase_changes_are_pushed_to_students_with_the_full_evaluation() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.evaluation(&prof, json!({})).await;
    app.set_access(&prof, &evaluation.id, &[&alice]).await;
    let (mut socket, _) = app.socket_ready(&alice).await;

    app.set_phase(&prof, &evaluation.id, "in_progress").await;
    let (opened, participation) = pushed(
        &app,
        &alice,
        &mut socket,
        &evaluation.id,
        UpdateReason::PhaseChanged,
    )
    .await;
    assert_eq!(opened.phase, Phase::InProgress);
    assert_eq!(
        opened.questions.len(),
        3,
        "the questions appear once it runs"
    );
    assert_eq!(participation.status, ParticipationStatus::NotStarted);

    app.set_phase(&prof, &evaluation.id, "grading").await;
    let (closed, _) = pushed(
        &app,
        &alice,
        &mut socket,
        &evaluation.id,
        UpdateReason::PhaseChanged,
    )
    .await;
    assert_eq!(closed.phase, Phase::Grading);
}

#[tokio::test]
async fn end_time_changes_are_pushed_to_students() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;
    let (mut socket, _) = app.socket_ready(&alice).await;
    let path = format!("/api/evaluations/{}/ends_at", evaluation.id);

    let (status, body) = app
        .put(&prof, &path, json!({"ends_at": "2031-05-04T10:30:00.000Z"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (changed, _) = pushed(
        &app,
        &alice,
        &mut socket,
        &evaluation.id,
        UpdateReason::EndsAtChanged,
    )
    .await;
    assert_eq!(
        changed.ends_at,
        Some(Timestamp::parse("2031-05-04T10:30:00.000Z").unwrap())
    );

    let (status, body) = app.put(&prof, &path, json!({"ends_at": null})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (cleared, _) = pushed(
        &app,
        &alice,
        &mut socket,
        &evaluation.id,
        UpdateReason::EndsAtChanged,
    )
    .await;
    assert_eq!(cleared.ends_at, None);
}

#[tokio::test]
async fn joining_and_submitting_are_pushed_to_the_student_as_status_changes() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;
    let (mut socket, _) = app.socket_ready(&alice).await;

    app.join(&alice, &evaluation.id).await;
    let (_, joined) = pushed(
        &app,
        &alice,
        &mut socket,
        &evaluation.id,
        UpdateReason::StatusChanged,
    )
    .await;
    assert_eq!(joined.status, ParticipationStatus::InProgress);

    let (status, body) = app
        .post(
            &alice,
            &format!("/api/evaluations/{}/submit", evaluation.id),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, submitted) = pushed(
        &app,
        &alice,
        &mut socket,
        &evaluation.id,
        UpdateReason::StatusChanged,
    )
    .await;
    assert_eq!(submitted.status, ParticipationStatus::Submitted);
}

#[tokio::test]
async fn a_second_sign_in_during_an_exam_pushes_blocked_to_the_older_session_before_closing_it() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;
    app.join(&alice, &evaluation.id).await;
    let (mut socket, _) = app.socket_ready(&alice).await;

    let again = app.login("alice", PASSWORD).await;

    // (The join's own update may still be on its way to this socket: skip it.)
    let m = socket
        .until(|m| {
            is_update(m, &evaluation.id, UpdateReason::Blocked)
                || matches!(m, ServerMessage::SessionInvalidated { .. })
        })
        .await;
    let ServerMessage::EvaluationUpdate {
        reason: UpdateReason::Blocked,
        evaluation: pushed,
        participation,
    } = m
    else {
        panic!("the blocked update comes before the session ends, got {m:?}")
    };
    assert_eq!(pushed, seen_by(&app, &again, &evaluation.id).await.0);
    assert_eq!(participation.status, ParticipationStatus::Blocked);
    assert_eq!(
        participation.blocked_reason,
        Some(BlockedReason::SecondSignIn)
    );
    assert_eq!(
        socket.next().await,
        ServerMessage::SessionInvalidated {
            reason: InvalidationReason::SignedInElsewhere
        }
    );
    assert_eq!(socket.closed().await, Some(close::SESSION_INVALIDATED));
}

#[tokio::test]
async fn an_unblock_is_pushed_to_the_student() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;
    app.join(&alice, &evaluation.id).await;
    let alice = app.login("alice", PASSWORD).await;
    let (mut socket, frames) = app.socket_ready(&alice).await;
    let (_, blocked) = &snapshot_updates(&frames)[0];
    assert_eq!(blocked.status, ParticipationStatus::Blocked);

    let (status, body) = app
        .post(
            &prof,
            &format!(
                "/api/evaluations/{}/participants/alice/unblock",
                evaluation.id
            ),
            json!({"note": "same laptop, browser restarted"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (_, unblocked) = pushed(
        &app,
        &alice,
        &mut socket,
        &evaluation.id,
        UpdateReason::Unblocked,
    )
    .await;
    assert_eq!(unblocked.status, ParticipationStatus::InProgress);
    assert_eq!(unblocked.blocked_reason, None);
    saved(&mut socket, &evaluation.id, "q1", 1).await;
}

// ---- Live pushes to owners ------------------------------------------------------------------

#[tokio::test]
async fn the_owner_hears_when_a_student_connects_answers_and_disconnects() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;
    app.join(&alice, &evaluation.id).await;
    let id = evaluation.id.as_str();
    let (mut board, frames) = app.socket_ready(&prof).await;
    let (_, before) = &snapshot_rows(&frames)[0];
    assert_eq!((before.connected, before.answered), (false, 0));

    // Connects.
    let (mut socket, _) = app.socket_ready(&alice).await;
    let m = board
        .until(|m| row_of(m, id, "alice").is_some_and(|p| p.connected))
        .await;
    let row = row_of(&m, id, "alice").unwrap();
    assert_eq!(
        (row.status, row.answered),
        (ParticipationStatus::InProgress, 0)
    );

    // A first answer.
    saved(&mut socket, id, "q1", 1).await;
    let m = board
        .until(|m| row_of(m, id, "alice").is_some_and(|p| p.answered == 1))
        .await;
    assert!(row_of(&m, id, "alice").unwrap().connected);
    // Another question.
    saved(&mut socket, id, "q1", 2).await;
    saved(&mut socket, id, "q2", 1).await;
    let m = board
        .until(|m| row_of(m, id, "alice").is_some_and(|p| p.answered != 1))
        .await;
    assert_eq!(row_of(&m, id, "alice").unwrap().answered, 2);

    // Disconnects.
    assert_eq!(socket.close().await, Some(1000));
    let m = board
        .until(|m| row_of(m, id, "alice").is_some_and(|p| !p.connected))
        .await;
    let row = row_of(&m, id, "alice").unwrap();
    assert_eq!(row.answered, 2);
    assert!(row.last_seen.is_some());
    assert_eq!(
        row,
        &participant(&app, &prof, id, "alice").await,
        "the pushed row is the participants list's row"
    );
}

/// Waits on a board until the last row pushed for each of `usernames` says `connected`.
async fn board_shows(board: &mut Socket, evaluation: &str, usernames: &[String], connected: bool) {
    let mut last: BTreeMap<&str, bool> =
        usernames.iter().map(|u| (u.as_str(), !connected)).collect();
    while last.values().any(|c| *c != connected) {
        if let ServerMessage::ParticipantUpdate {
            evaluation_id,
            participant,
        } = board.next().await
            && evaluation_id == evaluation
            && let Some(seen) = last.get_mut(participant.username.as_str())
        {
            *seen = participant.connected;
        }
    }
}

#[tokio::test]
async fn a_whole_room_leaving_and_coming_back_at_once_records_each_student_once() {
    // Arrange: a room sits an exam while the owner watches the board. The server records
    // connections in runs when many arrive together: this room arrives, leaves and comes back
    // all at once, so that the records are made in runs and not one by one.
    const ROOM: usize = 40;
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let mut students = Vec::new();
    for n in 0..ROOM {
        students.push(app.student(&format!("student{n:02}")).await);
    }
    let evaluation = app
        .running(&prof, &students.iter().collect::<Vec<_>>())
        .await;
    for student in &students {
        app.join(student, &evaluation.id).await;
    }
    let id = evaluation.id.as_str();
    let usernames: Vec<String> = students.iter().map(|s| s.user.username.clone()).collect();
    let (mut board, _) = app.socket_ready(&prof).await;

    // Act: everyone connects at once, everyone's link drops, everyone comes back at once.
    let first = futures_util::future::join_all(students.iter().map(|s| app.socket_ready(s))).await;
    board_shows(&mut board, id, &usernames, true).await;
    drop(first);
    board_shows(&mut board, id, &usernames, false).await;
    let again = futures_util::future::join_all(students.iter().map(|s| app.socket_ready(s))).await;
    board_shows(&mut board, id, &usernames, true).await;

    // Assert: a first connection is not a reconnection; the loss and the return are recorded
    // once each, for each student, and the board agrees with the participants list.
    let entries = audit(&app, &prof, id).await;
    for username in &usernames {
        let kinds: Vec<AuditKind> = entries
            .iter()
            .filter(|e| e.username.as_deref() == Some(username.as_str()))
            .map(|e| e.kind)
            .filter(|k| matches!(k, AuditKind::Disconnected | AuditKind::Reconnected))
            .collect();
        assert_eq!(
            kinds,
            [AuditKind::Disconnected, AuditKind::Reconnected],
            "{username}'s connection records"
        );
    }
    let rows = participants(&app, &prof, id).await;
    assert_eq!(rows.len(), ROOM);
    for row in &rows {
        assert!(row.connected, "{} is back", row.username);
        assert!(row.last_seen.is_some(), "{} was seen", row.username);
        assert_eq!(
            row.disconnected_since, None,
            "{} is connected",
            row.username
        );
    }
    assert_eq!(again.len(), ROOM);
}

// ---- Reconnecting ---------------------------------------------------------------------------

#[tokio::test]
async fn a_reconnecting_socket_converges_on_what_changed_while_it_was_closed() {
    // Arrange: alice sits one evaluation and can see a draft; her socket closes.
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let bob = app.student("bob").await;
    let sitting = app.running(&prof, &[&alice]).await;
    app.join(&alice, &sitting.id).await;
    let removed = app.evaluation(&prof, json!({})).await;
    app.set_access(&prof, &removed.id, &[&alice]).await;
    let (mut socket, frames) = app.socket_ready(&alice).await;
    assert_eq!(snapshot_updates(&frames).len(), 2);
    assert_eq!(socket.close().await, Some(1000));

    // Act: while she is away the evaluation ends and gets an end time, she is taken off the
    // draft's list, and a new evaluation lists her.
    app.set_phase(&prof, &sitting.id, "grading").await;
    let (status, body) = app
        .put(
            &prof,
            &format!("/api/evaluations/{}/ends_at", sitting.id),
            json!({"ends_at": "2030-01-01T12:00:00.000Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.set_access(&prof, &removed.id, &[&bob]).await;
    let added = app.evaluation(&prof, json!({})).await;
    app.set_access(&prof, &added.id, &[&alice]).await;
    let (_socket, frames) = app.socket_ready(&alice).await;

    // Assert: the new snapshot is the current state.
    let updates = snapshot_updates(&frames);
    let ids: BTreeSet<&str> = updates.iter().map(|(e, _)| e.id.as_str()).collect();
    assert_eq!(
        ids,
        BTreeSet::from([sitting.id.as_str(), added.id.as_str()]),
        "the removed evaluation is gone, the new one is there"
    );
    for (evaluation, participation) in &updates {
        assert_eq!(
            (evaluation.clone(), participation.clone()),
            seen_by(&app, &alice, &evaluation.id).await
        );
    }
    let (ended, participation) = updates.iter().find(|(e, _)| e.id == sitting.id).unwrap();
    assert_eq!(ended.phase, Phase::Grading);
    assert!(ended.ends_at.is_some());
    assert_eq!(participation.status, ParticipationStatus::InProgress);
}

// ---- Authenticating the upgrade -------------------------------------------------------------

/// The HTTP status a refused upgrade answered with.
async fn refused(request: tokio_tungstenite::tungstenite::handshake::client::Request) -> u16 {
    match Socket::connect(request).await {
        Ok(_) => panic!("the upgrade should have been refused"),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("the upgrade should have been refused with an HTTP status, got {e}"),
    }
}

#[tokio::test]
async fn a_cookie_authenticated_upgrade_from_a_foreign_origin_is_refused_with_403() {
    let mut app = TestApp::spawn().await;
    let alice = app.student("alice").await;
    let cookie = format!("invigil_session={}", alice.token);

    let mut foreign = app.ws_request();
    foreign
        .headers_mut()
        .insert("cookie", cookie.parse().unwrap());
    foreign
        .headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    assert_eq!(refused(foreign).await, 403);

    let mut without_origin = app.ws_request();
    without_origin
        .headers_mut()
        .insert("cookie", cookie.parse().unwrap());
    assert_eq!(refused(without_origin).await, 403);
}

#[tokio::test]
async fn a_cookie_authenticated_upgrade_from_the_servers_own_origin_works() {
    let mut app = TestApp::spawn().await;
    let alice = app.student("alice").await;
    let mut request = app.ws_request();
    request.headers_mut().insert(
        "cookie",
        format!("theme=dark; invigil_session={}", alice.token)
            .parse()
            .unwrap(),
    );
    request
        .headers_mut()
        .insert("origin", app.base.parse().unwrap());

    let mut socket = Socket::connect(request).await.expect("the socket opens");

    let frames = socket.snapshot().await;
    assert!(
        matches!(&frames[0], ServerMessage::Welcome { session_id, .. } if *session_id == alice.session_id)
    );
}

#[tokio::test]
async fn a_bearer_authenticated_upgrade_is_not_subject_to_the_origin_check() {
    let mut app = TestApp::spawn().await;
    let alice = app.student("alice").await;
    let mut request = app.ws_request();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", alice.token).parse().unwrap(),
    );
    request
        .headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());

    let mut socket = Socket::connect(request).await.expect("the socket opens");

    assert!(matches!(socket.next().await, ServerMessage::Welcome { .. }));
}

#[tokio::test]
async fn an_upgrade_without_valid_credentials_is_refused_with_401() {
    let mut app = TestApp::spawn().await;
    let alice = app.student("alice").await;

    assert_eq!(refused(app.ws_request()).await, 401, "no credentials");

    let mut bogus = app.ws_request();
    bogus
        .headers_mut()
        .insert("authorization", "Bearer not-a-token".parse().unwrap());
    assert_eq!(refused(bogus).await, 401, "a token the server never issued");

    app.login("alice", PASSWORD).await;
    let mut revoked = app.ws_request();
    revoked.headers_mut().insert(
        "authorization",
        format!("Bearer {}", alice.token).parse().unwrap(),
    );
    assert_eq!(refused(revoked).await, 401, "a revoked session");
}

// ---- Server-sent events ---------------------------------------------------------------------

#[tokio::test]
async fn the_event_stream_sends_welcome_the_snapshot_and_then_live_updates() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let running = app.running(&prof, &[&alice]).await;
    let draft = app.evaluation(&prof, json!({})).await;
    app.set_access(&prof, &draft.id, &[&alice]).await;

    let (mut stream, frames) = app.events_ready(&alice).await;

    assert!(
        matches!(&frames[0], ServerMessage::Welcome { session_id, heartbeat_ms: 5000, .. } if *session_id == alice.session_id)
    );
    let ids: BTreeSet<String> = snapshot_updates(&frames)
        .into_iter()
        .map(|(e, _)| e.id)
        .collect();
    assert_eq!(ids, BTreeSet::from([running.id.clone(), draft.id.clone()]));

    app.set_phase(&prof, &draft.id, "in_progress").await;
    let m = stream
        .until(|m| is_update(m, &draft.id, UpdateReason::PhaseChanged))
        .await;
    let ServerMessage::EvaluationUpdate {
        evaluation,
        participation,
        ..
    } = m
    else {
        unreachable!()
    };
    assert_eq!(
        (evaluation, participation),
        seen_by(&app, &alice, &draft.id).await
    );
}

#[tokio::test]
async fn a_professors_event_stream_starts_with_the_participants() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;

    let (_stream, frames) = app.events_ready(&prof).await;

    let rows = snapshot_rows(&frames);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, evaluation.id);
    assert_eq!(rows[0].1.username, "alice");
}

#[tokio::test]
async fn an_open_event_stream_counts_as_connected_until_it_closes() {
    let mut app = fast_app().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;
    app.join(&alice, &evaluation.id).await;
    let (mut board, _) = app.socket_ready(&prof).await;

    let (stream, _) = app.events_ready(&alice).await;

    assert!(
        participant(&app, &prof, &evaluation.id, "alice")
            .await
            .connected,
        "an open stream counts as connected"
    );
    board
        .until_alive(|m| row_of(m, &evaluation.id, "alice").is_some_and(|p| p.connected))
        .await;

    drop(stream);
    board
        .until_alive(|m| row_of(m, &evaluation.id, "alice").is_some_and(|p| !p.connected))
        .await;
    assert!(
        !participant(&app, &prof, &evaluation.id, "alice")
            .await
            .connected
    );
}

#[tokio::test]
async fn an_event_stream_does_not_replace_a_socket_of_the_same_session() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;
    let (mut socket, _) = app.socket_ready(&alice).await;

    let (mut stream, _) = app.events_ready(&alice).await;

    // The socket still works and, like the stream, hears the join.
    app.join(&alice, &evaluation.id).await;
    socket
        .until(|m| is_update(m, &evaluation.id, UpdateReason::StatusChanged))
        .await;
    stream
        .until(|m| is_update(m, &evaluation.id, UpdateReason::StatusChanged))
        .await;
    saved(&mut socket, &evaluation.id, "q1", 1).await;
}

// ---- Health and metrics ---------------------------------------------------------------------

#[tokio::test]
async fn healthz_answers_200() {
    let app = TestApp::spawn().await;

    let response = app.http.get(app.url("/healthz")).send().await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn metrics_count_connections_frames_acknowledgements_sign_ins_blocks_and_invalidations() {
    // Arrange: a socket that saves an answer, then a second sign-in that blocks its student.
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;
    app.join(&alice, &evaluation.id).await;
    let (mut board, _) = app.socket_ready(&prof).await;
    let (mut socket, _) = app.socket_ready(&alice).await;
    saved(&mut socket, &evaluation.id, "q1", 1).await;
    let admin = app.admin().await;
    let before = metrics(&app, &admin).await;
    app.login("alice", PASSWORD).await;
    assert_eq!(socket.closed().await, Some(close::SESSION_INVALIDATED));
    // The blocked row is the last event of that sign-in: every counter has seen it.
    board
        .until(|m| {
            row_of(m, &evaluation.id, "alice")
                .is_some_and(|p| p.status == ParticipationStatus::Blocked && !p.connected)
        })
        .await;

    // Act
    let text = metrics(&app, &admin).await;

    // Assert
    assert!(
        before.contains(r#"invigil_open_connections{kind="socket"} 2"#),
        "both sockets were open:\n{before}"
    );
    for name in [
        "invigil_open_connections",
        "invigil_frames_in_total",
        "invigil_answer_ack_seconds",
        "invigil_sign_ins_total",
        "invigil_blocks_total",
        "invigil_session_invalidations_total",
    ] {
        assert!(text.contains(name), "/metrics has {name}:\n{text}");
    }
    assert!(sample(&text, "invigil_frames_in_total").unwrap() >= 1.0);
    assert_eq!(sample(&text, "invigil_answer_ack_seconds_count"), Some(1.0));
    // The admin, the professor, and alice twice.
    assert_eq!(sample(&text, "invigil_sign_ins_total"), Some(4.0));
    assert_eq!(sample(&text, "invigil_blocks_total"), Some(1.0));
    assert_eq!(
        sample(&text, "invigil_session_invalidations_total"),
        Some(1.0)
    );
}

//! Tests: the single-session rule — a student's new sign-in ends every other session of theirs
//! (`SESSION_INVALIDATED`, then close 4001), a second sign-in during an exam blocks the student
//! until the owner or an admin unblocks them, and what never counts as a sign-in.

use crate::helpers::*;
use invigil_protocol::{
    BlockedReason, Evaluation, InvalidationReason, Participation, ParticipationStatus, RejectCode,
    ServerMessage, UpdateReason, close,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The path of an evaluation, or of something under it (`tail` starts with `/` or is empty).
fn at(evaluation: &Evaluation, tail: &str) -> String {
    format!("/api/evaluations/{}{tail}", evaluation.id)
}

/// The contract error code of a response body.
fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

/// Asserts that the socket receives `SESSION_INVALIDATED` with `reason` and that close 4001
/// follows it at once.
async fn assert_invalidated(socket: &mut Socket, reason: InvalidationReason) {
    assert_eq!(
        socket
            .until(|m| matches!(m, ServerMessage::SessionInvalidated { .. }))
            .await,
        ServerMessage::SessionInvalidated { reason },
        "the revoked session's socket is told why"
    );
    match socket.receive().await {
        Received::Closed(code) => assert_eq!(
            code,
            Some(close::SESSION_INVALIDATED),
            "the socket closes with 4001"
        ),
        Received::Message(m) => panic!("close 4001 follows SESSION_INVALIDATED, got {m:?}"),
    }
}

/// The student's participation, as `GET /api/evaluations/{id}` shows it to them.
async fn participation(app: &TestApp, student: &Actor, evaluation: &Evaluation) -> Participation {
    let (status, body) = app.get(student, &at(evaluation, "")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_value(body["participation"].clone()).expect("a participation")
}

/// The participant row of `username` in the owner's participants list.
async fn participant_row(
    app: &TestApp,
    owner: &Actor,
    evaluation: &Evaluation,
    username: &str,
) -> Value {
    let (status, body) = app.get(owner, &at(evaluation, "/participants")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array()
        .expect("a list of participants")
        .iter()
        .find(|p| p["username"] == username)
        .unwrap_or_else(|| panic!("{username} is a participant: {body}"))
        .clone()
}

/// The audit entries about `username`, oldest first.
async fn audit_of(
    app: &TestApp,
    owner: &Actor,
    evaluation: &Evaluation,
    username: &str,
) -> Vec<Value> {
    let (status, body) = app.get(owner, &at(evaluation, "/audit")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array()
        .expect("an audit list")
        .iter()
        .filter(|e| e["username"] == username)
        .cloned()
        .collect()
}

/// The kinds of some audit entries.
fn kinds(entries: &[Value]) -> Vec<&str> {
    entries
        .iter()
        .map(|e| e["kind"].as_str().expect("a kind"))
        .collect()
}

/// The position of the first entry of `kind`, if any.
fn position(entries: &[Value], kind: &str) -> Option<usize> {
    entries.iter().position(|e| e["kind"] == kind)
}

/// Asserts that a participation is blocked for a second sign-in.
#[track_caller]
fn assert_blocked(participation: &Participation) {
    assert_eq!(
        participation.status,
        ParticipationStatus::Blocked,
        "{participation:?}"
    );
    assert_eq!(
        participation.blocked_reason,
        Some(BlockedReason::SecondSignIn),
        "{participation:?}"
    );
}

/// Asserts that a participation is in progress and not blocked.
#[track_caller]
fn assert_sitting(participation: &Participation) {
    assert_eq!(
        participation.status,
        ParticipationStatus::InProgress,
        "{participation:?}"
    );
    assert_eq!(participation.blocked_reason, None, "{participation:?}");
}

/// Saves an answer over HTTP, returning the status and body.
async fn save(
    app: &TestApp,
    student: &Actor,
    evaluation: &Evaluation,
    revision: u64,
) -> (StatusCode, Value) {
    app.put(
        student,
        &at(evaluation, "/answers/q1"),
        json!({"revision": revision, "content": format!("draft {revision}")}),
    )
    .await
}

/// Unblocks a student, returning the status and body.
async fn unblock(
    app: &TestApp,
    actor: &Actor,
    evaluation: &Evaluation,
    username: &str,
    body: Value,
) -> (StatusCode, Value) {
    app.post(
        actor,
        &at(evaluation, &format!("/participants/{username}/unblock")),
        body,
    )
    .await
}

/// The next `EVALUATION_UPDATE` about this evaluation with this reason; its participation.
async fn update(socket: &mut Socket, evaluation: &Evaluation, why: UpdateReason) -> Participation {
    match socket
        .until(|m| {
            matches!(m, ServerMessage::EvaluationUpdate { reason, evaluation: e, .. }
                if *reason == why && e.id == evaluation.id)
        })
        .await
    {
        ServerMessage::EvaluationUpdate { participation, .. } => participation,
        _ => unreachable!("matched above"),
    }
}

/// The next `PARTICIPANT_UPDATE` about `username` in this evaluation with this status.
async fn participant_update(
    socket: &mut Socket,
    evaluation: &Evaluation,
    username: &str,
    status: ParticipationStatus,
) -> invigil_protocol::Participant {
    match socket
        .until(|m| {
            matches!(m, ServerMessage::ParticipantUpdate { evaluation_id, participant }
                if *evaluation_id == evaluation.id && participant.username == username
                    && participant.status == status)
        })
        .await
    {
        ServerMessage::ParticipantUpdate { participant, .. } => participant,
        _ => unreachable!("matched above"),
    }
}

/// An exam in progress, owned by `prof1`, that `alice` has joined.
struct Exam {
    app: TestApp,
    prof: Actor,
    alice: Actor,
    evaluation: Evaluation,
}

async fn exam() -> Exam {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;
    app.join(&alice, &evaluation.id).await;
    Exam {
        app,
        prof,
        alice,
        evaluation,
    }
}

/// An exam in which `alice` has signed in a second time: returns the exam and her new session.
async fn blocked_exam() -> (Exam, Actor) {
    let exam = exam().await;
    let again = exam.app.login("alice", PASSWORD).await;
    assert_blocked(&participation(&exam.app, &again, &exam.evaluation).await);
    (exam, again)
}

// ---- one session per student ---------------------------------------------------------------

#[tokio::test]
async fn a_students_new_sign_in_sends_signed_in_elsewhere_to_the_old_socket_then_closes_it_with_4001()
 {
    let mut app = TestApp::spawn().await;
    let old = app.student("alice").await;
    let (mut socket, _) = app.socket_ready(&old).await;

    app.login("alice", PASSWORD).await;

    assert_invalidated(&mut socket, InvalidationReason::SignedInElsewhere).await;
}

#[tokio::test]
async fn a_students_old_token_gets_401_session_invalidated_after_a_new_sign_in() {
    let mut app = TestApp::spawn().await;
    let old = app.student("alice").await;

    let new = app.login("alice", PASSWORD).await;

    let (status, body) = app.get(&old, "/api/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(code(&body), "session_invalidated", "{body}");
    let (status, body) = app.get(&old, "/api/evaluations").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(code(&body), "session_invalidated", "{body}");
    let (status, body) = app.get(&new, "/api/me").await;
    assert_eq!(status, StatusCode::OK, "the new session works: {body}");
}

#[tokio::test]
async fn a_students_old_token_can_no_longer_open_the_socket() {
    let mut app = TestApp::spawn().await;
    let old = app.student("alice").await;
    let new = app.login("alice", PASSWORD).await;

    let mut request = format!("ws://{}/api/ws", app.addr)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", old.token).parse().unwrap(),
    );
    let refused = Socket::connect(request).await;

    match refused {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 401)
        }
        Err(e) => panic!("the upgrade is refused with 401, got {e}"),
        Ok(_) => panic!("a revoked session cannot open the socket"),
    }
    let (_, frames) = app.socket_ready(&new).await;
    assert!(
        matches!(&frames[0], ServerMessage::Welcome { session_id, .. } if *session_id == new.session_id)
    );
}

#[tokio::test]
async fn every_earlier_session_of_a_student_ends_at_a_new_sign_in() {
    let mut app = TestApp::spawn().await;
    let first = app.student("alice").await;
    let second = app.login("alice", PASSWORD).await;
    let (mut second_socket, _) = app.socket_ready(&second).await;

    let third = app.login("alice", PASSWORD).await;

    assert_invalidated(&mut second_socket, InvalidationReason::SignedInElsewhere).await;
    for ended in [&first, &second] {
        let (status, body) = app.get(ended, "/api/me").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(code(&body), "session_invalidated", "{body}");
    }
    let (status, _) = app.get(&third, "/api/me").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_sign_in_after_a_restart_still_ends_the_session_from_before() {
    let mut app = TestApp::spawn().await;
    let old = app.student("alice").await;
    app.kill().await;
    app.restart().await;
    let (mut socket, _) = app.socket_ready(&old).await;

    app.login("alice", PASSWORD).await;

    assert_invalidated(&mut socket, InvalidationReason::SignedInElsewhere).await;
    let (status, body) = app.get(&old, "/api/me").await;
    assert_eq!(code(&body), "session_invalidated", "{status} {body}");
}

#[tokio::test]
async fn signing_out_sends_signed_out_to_that_sessions_socket_then_closes_it_with_4001() {
    let mut app = TestApp::spawn().await;
    let alice = app.student("alice").await;
    let (mut socket, _) = app.socket_ready(&alice).await;

    let (status, body) = app.post(&alice, "/api/logout", json!({})).await;

    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_invalidated(&mut socket, InvalidationReason::SignedOut).await;
}

#[tokio::test]
async fn a_professors_sign_out_closes_only_that_sessions_socket() {
    let mut app = TestApp::spawn().await;
    let laptop = app.professor("prof1").await;
    let phone = app.login("prof1", PASSWORD).await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&laptop, &[&alice]).await;
    let (mut laptop_socket, _) = app.socket_ready(&laptop).await;
    let (mut phone_socket, _) = app.socket_ready(&phone).await;

    app.post(&laptop, "/api/logout", json!({})).await;

    assert_invalidated(&mut laptop_socket, InvalidationReason::SignedOut).await;
    // Anything pushed after the logout reaches the phone, so the logout did not end its session.
    app.join(&alice, &evaluation.id).await;
    let row = participant_update(
        &mut phone_socket,
        &evaluation,
        "alice",
        ParticipationStatus::InProgress,
    )
    .await;
    assert_eq!(row.username, "alice");
}

/// Waits for the next `PARTICIPANT_UPDATE`, failing if the session is invalidated first.
async fn next_board_update(socket: &mut Socket) -> ServerMessage {
    socket
        .until(|m| {
            assert!(
                !matches!(m, ServerMessage::SessionInvalidated { .. }),
                "the session was invalidated: {m:?}"
            );
            matches!(m, ServerMessage::ParticipantUpdate { .. })
        })
        .await
}

#[tokio::test]
async fn a_professor_may_hold_several_sessions() {
    let mut app = TestApp::spawn().await;
    let first = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&first, &[&alice]).await;
    let (mut first_socket, _) = app.socket_ready(&first).await;

    let second = app.login("prof1", PASSWORD).await;

    // A change made after the second sign-in still reaches the first session's socket: the
    // sign-in, committed before it, did not end that session. Each session has its own socket.
    let (mut second_socket, _) = app.socket_ready(&second).await;
    app.join(&alice, &evaluation.id).await;
    next_board_update(&mut first_socket).await;
    next_board_update(&mut second_socket).await;
    for session in [&first, &second] {
        let (status, body) = app.get(session, "/api/me").await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

#[tokio::test]
async fn an_admin_may_hold_several_sessions() {
    let mut app = TestApp::spawn().await;
    let first = app.admin().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;
    let (mut first_socket, _) = app.socket_ready(&first).await;

    let second = app.login(ADMIN.0, ADMIN.1).await;

    app.join(&alice, &evaluation.id).await;
    next_board_update(&mut first_socket).await;
    for session in [&first, &second] {
        let (status, body) = app.get(session, "/api/me").await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

// ---- a second sign-in during an exam -------------------------------------------------------

#[tokio::test]
async fn a_second_sign_in_during_an_exam_succeeds_and_blocks_the_participation() {
    let Exam {
        app,
        alice,
        evaluation,
        ..
    } = exam().await;

    let again = app.login("alice", PASSWORD).await;

    let (status, body) = app.get(&again, "/api/me").await;
    assert_eq!(status, StatusCode::OK, "the new session works: {body}");
    let (status, body) = app.get(&again, &at(&evaluation, "")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["participation"]["status"], "blocked", "{body}");
    assert_eq!(
        body["participation"]["blocked_reason"], "second_sign_in",
        "{body}"
    );
    assert_eq!(body["participation"]["username"], "alice", "{body}");
    assert_eq!(
        body["participation"]["evaluation_id"],
        evaluation.id.as_str()
    );
    let (_, body) = app.get(&alice, "/api/me").await;
    assert_eq!(
        code(&body),
        "session_invalidated",
        "the old session ended: {body}"
    );
}

#[tokio::test]
async fn a_second_sign_in_during_an_exam_closes_the_old_socket_with_4001() {
    let Exam { app, alice, .. } = exam().await;
    let (mut socket, _) = app.socket_ready(&alice).await;

    app.login("alice", PASSWORD).await;

    assert_invalidated(&mut socket, InvalidationReason::SignedInElsewhere).await;
}

#[tokio::test]
async fn a_second_sign_in_during_an_exam_shows_blocked_on_the_owners_participants_list() {
    let (exam, _) = blocked_exam().await;

    let row = participant_row(&exam.app, &exam.prof, &exam.evaluation, "alice").await;

    assert_eq!(row["status"], "blocked", "{row}");
    assert_eq!(row["blocked_reason"], "second_sign_in", "{row}");
}

#[tokio::test]
async fn a_second_sign_in_during_an_exam_is_recorded_in_the_audit_log() {
    let (exam, _) = blocked_exam().await;

    let entries = audit_of(&exam.app, &exam.prof, &exam.evaluation, "alice").await;

    let kinds = kinds(&entries);
    for kind in ["signed_in", "session_invalidated", "blocked"] {
        assert!(kinds.contains(&kind), "{kind} is recorded: {kinds:?}");
    }
    assert!(
        position(&entries, "signed_in") < position(&entries, "blocked"),
        "the sign-in comes before the block it caused: {kinds:?}"
    );
    for entry in &entries {
        assert!(entry["at"].is_string(), "{entry}");
        assert!(
            entry["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{entry}"
        );
    }
}

#[tokio::test]
async fn a_blocked_student_cannot_save_answers_over_http() {
    let (exam, again) = blocked_exam().await;

    let (status, body) = save(&exam.app, &again, &exam.evaluation, 1).await;

    assert_eq!(status, StatusCode::LOCKED, "{body}");
    assert_eq!(code(&body), "blocked", "{body}");
    let (status, answers) = exam
        .app
        .get(&exam.prof, &at(&exam.evaluation, "/answers?username=alice"))
        .await;
    assert_eq!(status, StatusCode::OK, "{answers}");
    assert_eq!(answers, json!([]), "nothing was stored");
}

#[tokio::test]
async fn a_blocked_student_cannot_join_or_submit() {
    let (exam, again) = blocked_exam().await;

    for action in ["/join", "/submit"] {
        let (status, body) = exam
            .app
            .post(&again, &at(&exam.evaluation, action), json!({}))
            .await;

        assert_eq!(status, StatusCode::LOCKED, "{action}: {body}");
        assert_eq!(code(&body), "blocked", "{action}: {body}");
    }
    assert_blocked(&participation(&exam.app, &again, &exam.evaluation).await);
}

#[tokio::test]
async fn a_blocked_students_socket_saves_are_rejected_as_blocked() {
    let (exam, again) = blocked_exam().await;
    let (mut socket, _) = exam.app.socket_ready(&again).await;

    socket.save(&exam.evaluation.id, "q1", 1, "pivot").await;

    match socket.ack("q1").await {
        ServerMessage::AnswerRejected {
            evaluation_id,
            revision,
            code,
            ..
        } => {
            assert_eq!(evaluation_id, exam.evaluation.id);
            assert_eq!(revision, 1);
            assert_eq!(code, RejectCode::Blocked);
        }
        other => panic!("ANSWER_REJECTED, got {other:?}"),
    }
}

#[tokio::test]
async fn a_socket_opened_with_the_new_token_starts_with_a_blocked_snapshot() {
    let (exam, again) = blocked_exam().await;

    let (_, frames) = exam.app.socket_ready(&again).await;

    let snapshot = frames
        .iter()
        .find_map(|m| match m {
            ServerMessage::EvaluationUpdate {
                reason: UpdateReason::Snapshot,
                evaluation,
                participation,
            } if evaluation.id == exam.evaluation.id => Some(participation),
            _ => None,
        })
        .expect("the snapshot names the evaluation");
    assert_blocked(snapshot);
}

#[tokio::test]
async fn signing_out_and_in_again_during_an_exam_also_blocks() {
    let Exam {
        app,
        prof,
        alice,
        evaluation,
    } = exam().await;
    let (status, _) = app.post(&alice, "/api/logout", json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let row = participant_row(&app, &prof, &evaluation, "alice").await;
    assert_eq!(
        row["status"], "in_progress",
        "signing out alone blocks nobody: {row}"
    );

    let again = app.login("alice", PASSWORD).await;

    assert_blocked(&participation(&app, &again, &evaluation).await);
    let entries = audit_of(&app, &prof, &evaluation, "alice").await;
    let kinds = kinds(&entries);
    for kind in ["session_invalidated", "signed_in", "blocked"] {
        assert!(kinds.contains(&kind), "{kind} is recorded: {kinds:?}");
    }
}

#[tokio::test]
async fn a_second_sign_in_blocks_the_student_in_every_running_exam_they_sit() {
    let Exam {
        app,
        prof,
        alice,
        evaluation: first,
    } = exam().await;
    let second = app.running(&prof, &[&alice]).await;
    app.join(&alice, &second.id).await;
    let not_joined = app.running(&prof, &[&alice]).await;

    let again = app.login("alice", PASSWORD).await;

    assert_blocked(&participation(&app, &again, &first).await);
    assert_blocked(&participation(&app, &again, &second).await);
    let untouched = participation(&app, &again, &not_joined).await;
    assert_eq!(
        untouched.status,
        ParticipationStatus::NotStarted,
        "an exam not joined is not blocked: {untouched:?}"
    );
    assert_eq!(untouched.blocked_reason, None);
    let (status, body) = app.post(&again, &at(&not_joined, "/join"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_blocked_student_who_signs_in_again_stays_blocked_and_the_sign_in_is_recorded() {
    let (exam, _) = blocked_exam().await;

    let third = exam.app.login("alice", PASSWORD).await;

    assert_blocked(&participation(&exam.app, &third, &exam.evaluation).await);
    let entries = audit_of(&exam.app, &exam.prof, &exam.evaluation, "alice").await;
    let sign_ins = kinds(&entries)
        .into_iter()
        .filter(|k| *k == "signed_in")
        .count();
    assert_eq!(sign_ins, 2, "both sign-ins are recorded: {entries:?}");
}

// ---- what does not block -------------------------------------------------------------------

#[tokio::test]
async fn a_sign_in_while_the_exam_is_still_a_draft_does_not_block() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.evaluation(&prof, json!({})).await;
    app.set_access(&prof, &evaluation.id, &[&alice]).await;

    let again = app.login("alice", PASSWORD).await;

    app.set_phase(&prof, &evaluation.id, "in_progress").await;
    let (status, body) = app.post(&again, &at(&evaluation, "/join"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_sitting(&participation(&app, &again, &evaluation).await);
}

#[tokio::test]
async fn a_sign_in_before_joining_a_running_exam_does_not_block() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;

    let again = app.login("alice", PASSWORD).await;

    let before = participation(&app, &again, &evaluation).await;
    assert_eq!(before.status, ParticipationStatus::NotStarted, "{before:?}");
    app.join(&again, &evaluation.id).await;
    assert_sitting(&participation(&app, &again, &evaluation).await);
    let (status, body) = save(&app, &again, &evaluation, 1).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_sign_in_after_submitting_does_not_block() {
    let Exam {
        app,
        alice,
        evaluation,
        ..
    } = exam().await;
    let (status, body) = app
        .post(&alice, &at(&evaluation, "/submit"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let again = app.login("alice", PASSWORD).await;

    let after = participation(&app, &again, &evaluation).await;
    assert_eq!(after.status, ParticipationStatus::Submitted, "{after:?}");
    assert_eq!(after.blocked_reason, None);
}

#[tokio::test]
async fn a_sign_in_while_the_exam_is_grading_does_not_block() {
    let Exam {
        app,
        prof,
        evaluation,
        ..
    } = exam().await;
    app.set_phase(&prof, &evaluation.id, "grading").await;

    let again = app.login("alice", PASSWORD).await;

    app.set_phase(&prof, &evaluation.id, "in_progress").await;
    assert_sitting(&participation(&app, &again, &evaluation).await);
    let (status, body) = save(&app, &again, &evaluation, 1).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_professors_second_sign_in_during_their_exam_blocks_nobody() {
    let Exam {
        app,
        alice,
        evaluation,
        ..
    } = exam().await;

    app.login("prof1", PASSWORD).await;

    assert_sitting(&participation(&app, &alice, &evaluation).await);
}

#[tokio::test]
async fn reconnecting_with_the_same_token_never_blocks() {
    let Exam {
        app,
        prof,
        alice,
        evaluation,
    } = exam().await;
    let (first, _) = app.socket_ready(&alice).await;
    drop(first);

    // A new socket after the old one went away, then one that replaces a socket still open.
    let (mut second, frames) = app.socket_ready(&alice).await;
    let (mut third, more) = app.socket_ready(&alice).await;

    assert!(
        matches!(second.closed().await, Some(close::REPLACED)),
        "the older socket of the session is replaced"
    );
    for snapshot in [&frames, &more] {
        let participation = snapshot
            .iter()
            .find_map(|m| match m {
                ServerMessage::EvaluationUpdate {
                    evaluation: e,
                    participation,
                    ..
                } if e.id == evaluation.id => Some(participation),
                _ => None,
            })
            .expect("the snapshot names the exam");
        assert_sitting(participation);
    }
    third.save(&evaluation.id, "q1", 1, "pivot").await;
    assert!(
        matches!(
            third.ack("q1").await,
            ServerMessage::AnswerAck { revision: 1, .. }
        ),
        "the reconnected student still saves"
    );
    assert_sitting(&participation(&app, &alice, &evaluation).await);
    let entries = audit_of(&app, &prof, &evaluation, "alice").await;
    let kinds = kinds(&entries);
    assert!(
        !kinds.contains(&"blocked") && !kinds.contains(&"signed_in"),
        "a reconnect is not a sign-in: {kinds:?}"
    );
}

// ---- unblocking ----------------------------------------------------------------------------

#[tokio::test]
async fn the_owner_unblocks_a_student_with_a_note_and_they_can_save_again() {
    let (exam, again) = blocked_exam().await;

    let (status, body) = unblock(
        &exam.app,
        &exam.prof,
        &exam.evaluation,
        "alice",
        json!({"note": "Laptop crashed; checked ID at the desk"}),
    )
    .await;

    assert_eq!(status, StatusCode::OK, "{body}");
    let returned: Participation = serde_json::from_value(body.clone()).expect("a participation");
    assert_sitting(&returned);
    assert_eq!(returned.username, "alice");
    assert_eq!(returned.evaluation_id, exam.evaluation.id);
    assert_sitting(&participation(&exam.app, &again, &exam.evaluation).await);
    let row = participant_row(&exam.app, &exam.prof, &exam.evaluation, "alice").await;
    assert_eq!(row["status"], "in_progress", "{row}");
    assert!(row["blocked_reason"].is_null(), "{row}");
    let (status, body) = save(&exam.app, &again, &exam.evaluation, 1).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn the_unblock_note_appears_in_the_audit_log() {
    let (exam, _) = blocked_exam().await;
    let note = "Laptop crashed; checked ID at the desk";

    unblock(
        &exam.app,
        &exam.prof,
        &exam.evaluation,
        "alice",
        json!({"note": note}),
    )
    .await;

    let entries = audit_of(&exam.app, &exam.prof, &exam.evaluation, "alice").await;
    let entry = entries
        .iter()
        .rev()
        .find(|e| e["kind"] == "unblocked")
        .unwrap_or_else(|| panic!("the unblock is recorded: {entries:?}"));
    assert!(
        entry["detail"].as_str().is_some_and(|d| d.contains(note)),
        "the note is in the detail: {entry}"
    );
    assert_eq!(entry["actor"], "prof1", "{entry}");
    assert!(
        position(&entries, "blocked") < position(&entries, "unblocked"),
        "{entries:?}"
    );
}

#[tokio::test]
async fn an_unblocked_students_socket_receives_evaluation_update_unblocked() {
    let (exam, again) = blocked_exam().await;
    let (mut socket, _) = exam.app.socket_ready(&again).await;

    unblock(
        &exam.app,
        &exam.prof,
        &exam.evaluation,
        "alice",
        json!({"note": "ok"}),
    )
    .await;

    let participation = update(&mut socket, &exam.evaluation, UpdateReason::Unblocked).await;
    assert_sitting(&participation);
    socket.save(&exam.evaluation.id, "q1", 1, "pivot").await;
    assert!(
        matches!(
            socket.ack("q1").await,
            ServerMessage::AnswerAck { revision: 1, .. }
        ),
        "saves are acknowledged again"
    );
}

#[tokio::test]
async fn an_admin_may_unblock_a_student() {
    let (mut exam, again) = blocked_exam().await;
    let admin = exam.app.admin().await;

    let (status, body) = unblock(&exam.app, &admin, &exam.evaluation, "alice", json!({})).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "in_progress", "{body}");
    assert_sitting(&participation(&exam.app, &again, &exam.evaluation).await);
    let entries = audit_of(&exam.app, &exam.prof, &exam.evaluation, "alice").await;
    let entry = entries
        .iter()
        .rev()
        .find(|e| e["kind"] == "unblocked")
        .expect("the unblock is recorded");
    assert_eq!(entry["actor"], ADMIN.0, "{entry}");
}

#[tokio::test]
async fn a_professor_who_does_not_own_the_exam_cannot_unblock() {
    let (mut exam, again) = blocked_exam().await;
    let other = exam.app.professor("prof2").await;

    let (status, body) = unblock(&exam.app, &other, &exam.evaluation, "alice", json!({})).await;

    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(code(&body), "forbidden", "{body}");
    assert_blocked(&participation(&exam.app, &again, &exam.evaluation).await);
}

#[tokio::test]
async fn a_student_cannot_unblock_themselves() {
    let (exam, again) = blocked_exam().await;

    let (status, body) = unblock(&exam.app, &again, &exam.evaluation, "alice", json!({})).await;

    assert!(
        status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND,
        "{status} {body}"
    );
    assert_blocked(&participation(&exam.app, &again, &exam.evaluation).await);
}

#[tokio::test]
async fn unblocking_an_unknown_student_is_404_not_found() {
    let (exam, _) = blocked_exam().await;

    let (status, body) =
        unblock(&exam.app, &exam.prof, &exam.evaluation, "nobody", json!({})).await;

    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(code(&body), "not_found", "{body}");
}

#[tokio::test]
async fn unblocking_a_student_who_is_not_blocked_is_409_conflict() {
    let Exam {
        app,
        prof,
        alice,
        evaluation,
    } = exam().await;

    let (status, body) = unblock(&app, &prof, &evaluation, "alice", json!({})).await;

    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(code(&body), "conflict", "{body}");
    assert_sitting(&participation(&app, &alice, &evaluation).await);
}

#[tokio::test]
async fn unblocking_twice_is_409_conflict_the_second_time() {
    let (exam, _) = blocked_exam().await;
    let (status, _) = unblock(&exam.app, &exam.prof, &exam.evaluation, "alice", json!({})).await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = unblock(&exam.app, &exam.prof, &exam.evaluation, "alice", json!({})).await;

    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(code(&body), "conflict", "{body}");
}

// ---- the owner's board ---------------------------------------------------------------------

#[tokio::test]
async fn the_owners_socket_receives_participant_update_when_the_student_is_blocked_and_unblocked() {
    let Exam {
        mut app,
        prof,
        evaluation,
        ..
    } = exam().await;
    let admin = app.admin().await;
    let (mut owner_socket, _) = app.socket_ready(&prof).await;
    let (mut admin_socket, _) = app.socket_ready(&admin).await;

    app.login("alice", PASSWORD).await;

    for socket in [&mut owner_socket, &mut admin_socket] {
        let row =
            participant_update(socket, &evaluation, "alice", ParticipationStatus::Blocked).await;
        assert_eq!(row.blocked_reason, Some(BlockedReason::SecondSignIn));
    }

    unblock(&app, &prof, &evaluation, "alice", json!({"note": "ok"})).await;

    for socket in [&mut owner_socket, &mut admin_socket] {
        let row = participant_update(
            socket,
            &evaluation,
            "alice",
            ParticipationStatus::InProgress,
        )
        .await;
        assert_eq!(row.blocked_reason, None);
    }
}

// ---- more about blocks and revocations -----------------------------------------------------

#[tokio::test]
async fn a_blocked_student_cannot_save_even_once_the_exam_is_grading() {
    let (exam, again) = blocked_exam().await;
    exam.app
        .set_phase(&exam.prof, &exam.evaluation.id, "grading")
        .await;

    let (status, body) = save(&exam.app, &again, &exam.evaluation, 1).await;

    assert_eq!(
        status,
        StatusCode::LOCKED,
        "a late save is no way around a block: {body}"
    );
    assert_eq!(code(&body), "blocked", "{body}");
}

#[tokio::test]
async fn unblocking_in_an_unknown_evaluation_is_404_not_found() {
    let (exam, _) = blocked_exam().await;

    let (status, body) = exam
        .app
        .post(
            &exam.prof,
            "/api/evaluations/no-such-evaluation/participants/alice/unblock",
            json!({}),
        )
        .await;

    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(code(&body), "not_found", "{body}");
}

#[tokio::test]
async fn an_unblock_answers_with_the_whole_participation_object() {
    let (exam, _) = blocked_exam().await;

    let (status, body) = unblock(
        &exam.app,
        &exam.prof,
        &exam.evaluation,
        "alice",
        json!({"note": "ok"}),
    )
    .await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"evaluation_id": exam.evaluation.id, "username": "alice",
               "status": "in_progress", "blocked_reason": null, "access": true})
    );
}

#[tokio::test]
async fn an_admin_revoke_during_an_exam_is_recorded_but_does_not_block() {
    let Exam {
        mut app,
        prof,
        alice,
        evaluation,
    } = exam().await;
    let admin = app.admin().await;

    let (status, _) = app.post(&admin, "/api/users/alice/revoke", json!({})).await;

    assert_eq!(status, StatusCode::NO_CONTENT);
    let row = participant_row(&app, &prof, &evaluation, "alice").await;
    assert_eq!(
        row["status"], "in_progress",
        "a revoke alone blocks nobody: {row}"
    );
    let entries = audit_of(&app, &prof, &evaluation, "alice").await;
    assert!(
        kinds(&entries).contains(&"session_invalidated"),
        "the revoke is recorded: {entries:?}"
    );
    let (_, body) = app.get(&alice, "/api/me").await;
    assert_eq!(code(&body), "session_invalidated", "{body}");
}

#[tokio::test]
async fn signing_in_after_an_admin_revoke_during_an_exam_blocks() {
    let Exam {
        mut app,
        evaluation,
        ..
    } = exam().await;
    let admin = app.admin().await;
    app.post(&admin, "/api/users/alice/revoke", json!({})).await;

    let again = app.login("alice", PASSWORD).await;

    assert_blocked(&participation(&app, &again, &evaluation).await);
}

#[tokio::test]
async fn the_old_sessions_socket_stops_counting_as_connected_after_a_new_sign_in() {
    let Exam {
        app,
        prof,
        alice,
        evaluation,
    } = exam().await;
    let (mut old_socket, _) = app.socket_ready(&alice).await;
    let row = participant_row(&app, &prof, &evaluation, "alice").await;
    assert_eq!(row["connected"], true, "{row}");
    let (mut owner_socket, _) = app.socket_ready(&prof).await;

    let again = app.login("alice", PASSWORD).await;

    assert_invalidated(&mut old_socket, InvalidationReason::SignedInElsewhere).await;
    let row = participant_row(&app, &prof, &evaluation, "alice").await;
    assert_eq!(
        row["connected"], false,
        "only the current session's sockets count: {row}"
    );
    let update = owner_socket
        .until(|m| {
            matches!(m, ServerMessage::ParticipantUpdate { participant, .. }
                if participant.username == "alice" && !participant.connected)
        })
        .await;
    assert!(matches!(update, ServerMessage::ParticipantUpdate { .. }));

    let (_new_socket, _) = app.socket_ready(&again).await;

    let row = participant_row(&app, &prof, &evaluation, "alice").await;
    assert_eq!(
        row["connected"], true,
        "the new session's socket counts: {row}"
    );
}

//! Tests: answers — saving over HTTP and the socket, idempotent revisions, the late rule with its
//! kept on-time revision, refusals, and who may read whose answers.

use crate::helpers::*;
use invigil_protocol::{Evaluation, RejectCode, ServerMessage};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// An end time safely in the past.
const PAST: &str = "2000-01-01T00:00:00.000Z";

/// The path of something under an evaluation (`tail` starts with `/`).
fn at(evaluation: &Evaluation, tail: &str) -> String {
    format!("/api/evaluations/{}{tail}", evaluation.id)
}

/// The contract error code of a response body.
fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

/// `PUT .../answers/{question}` as `student`.
async fn save(
    app: &TestApp,
    student: &Actor,
    evaluation: &Evaluation,
    question: &str,
    revision: i64,
    content: &str,
) -> (StatusCode, Value) {
    app.put(
        student,
        &at(evaluation, &format!("/answers/{question}")),
        json!({"revision": revision, "content": content}),
    )
    .await
}

/// Saves on time and checks the acknowledgement: the revision sent is stored, not late.
async fn saved(
    app: &TestApp,
    student: &Actor,
    evaluation: &Evaluation,
    question: &str,
    revision: i64,
    content: &str,
) {
    saved_as(
        app,
        student,
        evaluation,
        (question, revision, content),
        false,
    )
    .await;
}

/// Saves after the end and checks the acknowledgement: the revision sent is stored, late.
async fn saved_late(
    app: &TestApp,
    student: &Actor,
    evaluation: &Evaluation,
    question: &str,
    revision: i64,
    content: &str,
) {
    saved_as(
        app,
        student,
        evaluation,
        (question, revision, content),
        true,
    )
    .await;
}

async fn saved_as(
    app: &TestApp,
    student: &Actor,
    evaluation: &Evaluation,
    (question, revision, content): (&str, i64, &str),
    late: bool,
) {
    let (status, body) = save(app, student, evaluation, question, revision, content).await;
    assert_eq!(status, StatusCode::OK, "saving r{revision}: {body}");
    assert_eq!(
        body,
        json!({"question_id": question, "revision": revision, "late": late}),
        "saving r{revision}"
    );
}

/// The student's own answers.
async fn answers(app: &TestApp, student: &Actor, evaluation: &Evaluation) -> Vec<Value> {
    let (status, body) = app.get(student, &at(evaluation, "/answers")).await;
    assert_eq!(status, StatusCode::OK, "reading answers: {body}");
    body.as_array().expect("a list of answers").clone()
}

/// The student's answer to one question; panics if there is none.
async fn answer(app: &TestApp, student: &Actor, evaluation: &Evaluation, question: &str) -> Value {
    answers(app, student, evaluation)
        .await
        .into_iter()
        .find(|a| a["question_id"] == question)
        .unwrap_or_else(|| panic!("an answer to {question}"))
}

/// Sets the end time; panics unless it succeeds.
async fn set_ends_at(app: &TestApp, owner: &Actor, evaluation: &Evaluation, ends_at: Value) {
    let (status, body) = app
        .put(
            owner,
            &at(evaluation, "/ends_at"),
            json!({"ends_at": ends_at}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "setting ends_at: {body}");
}

/// A running evaluation that alice has joined.
async fn sitting(app: &mut TestApp) -> (Actor, Actor, Evaluation) {
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;
    app.join(&alice, &evaluation.id).await;
    (prof, alice, evaluation)
}

// ---- saving over HTTP ----------------------------------------------------------------------

#[tokio::test]
async fn a_participating_student_saves_an_answer_and_reads_it_back() {
    let mut app = TestApp::spawn().await;
    let (_prof, alice, evaluation) = sitting(&mut app).await;

    let (status, ack) = save(&app, &alice, &evaluation, "q1", 1, "pivot and partition").await;

    assert_eq!(status, StatusCode::OK, "{ack}");
    assert_eq!(
        ack,
        json!({"question_id": "q1", "revision": 1, "late": false})
    );
    let stored = answers(&app, &alice, &evaluation).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    let a = &stored[0];
    assert_eq!(a["question_id"], "q1");
    assert_eq!(a["revision"], 1);
    assert_eq!(a["content"], "pivot and partition");
    assert_eq!(a["late"], false);
    assert!(a["on_time"].is_null(), "{a}");
    invigil_protocol::Timestamp::parse(a["saved_at"].as_str().expect("saved_at")).unwrap();
}

#[tokio::test]
async fn saving_the_same_revision_with_the_same_content_again_changes_nothing() {
    let mut app = TestApp::spawn().await;
    let (_prof, alice, evaluation) = sitting(&mut app).await;
    saved(&app, &alice, &evaluation, "q1", 4, "first").await;
    let before = answer(&app, &alice, &evaluation, "q1").await;

    let (status, ack) = save(&app, &alice, &evaluation, "q1", 4, "first").await;

    assert_eq!(status, StatusCode::OK, "{ack}");
    assert_eq!(
        ack,
        json!({"question_id": "q1", "revision": 4, "late": false})
    );
    assert_eq!(answer(&app, &alice, &evaluation, "q1").await, before);
}

#[tokio::test]
async fn saving_the_stored_revision_with_other_content_is_a_conflict_and_changes_nothing() {
    let mut app = TestApp::spawn().await;
    let (_prof, alice, evaluation) = sitting(&mut app).await;
    saved(&app, &alice, &evaluation, "q1", 4, "first").await;
    let before = answer(&app, &alice, &evaluation, "q1").await;

    let (status, body) = save(&app, &alice, &evaluation, "q1", 4, "second").await;

    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(code(&body), "conflict");
    assert_eq!(answer(&app, &alice, &evaluation, "q1").await, before);
    // The next revision is stored as usual.
    saved(&app, &alice, &evaluation, "q1", 5, "second").await;
}

#[tokio::test]
async fn a_conflict_is_judged_against_the_latest_stored_revision_not_a_kept_on_time_one() {
    let mut app = TestApp::spawn().await;
    let (prof, alice, evaluation) = sitting(&mut app).await;
    saved(&app, &alice, &evaluation, "q1", 1, "on time").await;
    set_ends_at(&app, &prof, &evaluation, json!(PAST)).await;
    saved_late(&app, &alice, &evaluation, "q1", 2, "late").await;

    // Revision 1 (kept on time) with other content is older than the stored one: acknowledged
    // with the stored revision, as any stale save.
    let (status, ack) = save(&app, &alice, &evaluation, "q1", 1, "rewritten").await;
    assert_eq!(status, StatusCode::OK, "{ack}");
    assert_eq!(
        ack,
        json!({"question_id": "q1", "revision": 2, "late": true})
    );
    // Revision 2 with other content is a conflict; with its own content, acknowledged.
    let (status, body) = save(&app, &alice, &evaluation, "q1", 2, "rewritten").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, ack) = save(&app, &alice, &evaluation, "q1", 2, "late").await;
    assert_eq!(status, StatusCode::OK, "{ack}");
    let stored = answer(&app, &alice, &evaluation, "q1").await;
    assert_eq!(
        (stored["revision"].clone(), stored["content"].clone()),
        (json!(2), json!("late"))
    );
    assert_eq!(stored["on_time"]["content"], "on time");
}

#[tokio::test]
async fn a_lower_revision_is_acknowledged_with_the_stored_one_and_changes_nothing() {
    let mut app = TestApp::spawn().await;
    let (_prof, alice, evaluation) = sitting(&mut app).await;
    saved(&app, &alice, &evaluation, "q1", 7, "newest").await;
    let before = answer(&app, &alice, &evaluation, "q1").await;

    let (status, ack) = save(&app, &alice, &evaluation, "q1", 3, "stale").await;

    assert_eq!(status, StatusCode::OK, "{ack}");
    assert_eq!(
        ack,
        json!({"question_id": "q1", "revision": 7, "late": false}),
        "the stored revision, not the one sent"
    );
    let after = answer(&app, &alice, &evaluation, "q1").await;
    assert_eq!(after, before);
    assert_eq!(after["content"], "newest");
}

#[tokio::test]
async fn a_revision_of_zero_or_below_is_a_bad_request() {
    let mut app = TestApp::spawn().await;
    let (_prof, alice, evaluation) = sitting(&mut app).await;

    for revision in [0, -1] {
        let (status, body) = save(&app, &alice, &evaluation, "q1", revision, "x").await;

        assert_eq!(status, StatusCode::BAD_REQUEST, "r{revision}: {body}");
        assert_eq!(code(&body), "bad_request");
    }
    assert!(answers(&app, &alice, &evaluation).await.is_empty());
}

#[tokio::test]
async fn a_save_to_an_unknown_question_is_not_found() {
    let mut app = TestApp::spawn().await;
    let (_prof, alice, evaluation) = sitting(&mut app).await;

    let (status, body) = save(&app, &alice, &evaluation, "q99", 1, "x").await;

    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(code(&body), "not_found");
    assert!(answers(&app, &alice, &evaluation).await.is_empty());
}

#[tokio::test]
async fn a_student_who_has_not_joined_cannot_save() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;

    let (status, body) = save(&app, &alice, &evaluation, "q1", 1, "x").await;

    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(code(&body), "not_participating");
    assert!(answers(&app, &alice, &evaluation).await.is_empty());
}

#[tokio::test]
async fn a_student_who_has_submitted_cannot_save() {
    let mut app = TestApp::spawn().await;
    let (_prof, alice, evaluation) = sitting(&mut app).await;
    saved(&app, &alice, &evaluation, "q1", 1, "handed in").await;
    let (status, _) = app
        .post(&alice, &at(&evaluation, "/submit"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = save(&app, &alice, &evaluation, "q1", 2, "second thoughts").await;

    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(code(&body), "not_participating");
    assert_eq!(
        answer(&app, &alice, &evaluation, "q1").await["content"],
        "handed in"
    );
}

#[tokio::test]
async fn a_blocked_student_cannot_save() {
    let mut app = TestApp::spawn().await;
    let (_prof, _alice, evaluation) = sitting(&mut app).await;
    let alice = app.login("alice", PASSWORD).await;

    let (status, body) = save(&app, &alice, &evaluation, "q1", 1, "x").await;

    assert_eq!(status, StatusCode::LOCKED, "{body}");
    assert_eq!(code(&body), "blocked");
}

#[tokio::test]
async fn a_professor_cannot_save_an_answer() {
    let mut app = TestApp::spawn().await;
    let (prof, _alice, evaluation) = sitting(&mut app).await;

    let (status, body) = save(&app, &prof, &evaluation, "q1", 1, "the model answer").await;

    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(code(&body), "forbidden");
}

#[tokio::test]
async fn an_answer_over_one_mebibyte_is_too_large() {
    let mut app = TestApp::spawn().await;
    let (_prof, alice, evaluation) = sitting(&mut app).await;
    let huge = "x".repeat(1024 * 1024 + 1);

    let (status, body) = save(&app, &alice, &evaluation, "q1", 1, &huge).await;

    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(code(&body), "payload_too_large");
    assert!(answers(&app, &alice, &evaluation).await.is_empty());
}

// ---- the late rule -------------------------------------------------------------------------

#[tokio::test]
async fn a_save_after_the_end_is_stored_late_beside_the_last_on_time_one() {
    let mut app = TestApp::spawn().await;
    let (prof, alice, evaluation) = sitting(&mut app).await;
    saved(&app, &alice, &evaluation, "q1", 1, "draft").await;
    saved(&app, &alice, &evaluation, "q1", 2, "on time").await;
    let on_time = answer(&app, &alice, &evaluation, "q1").await;
    set_ends_at(&app, &prof, &evaluation, json!(PAST)).await;

    let (status, ack) = save(&app, &alice, &evaluation, "q1", 3, "after the bell").await;

    assert_eq!(
        status,
        StatusCode::OK,
        "a late save is stored, not refused: {ack}"
    );
    assert_eq!(
        ack,
        json!({"question_id": "q1", "revision": 3, "late": true})
    );
    let late = answer(&app, &alice, &evaluation, "q1").await;
    assert_eq!(late["revision"], 3);
    assert_eq!(late["content"], "after the bell");
    assert_eq!(late["late"], true);
    assert_eq!(
        late["on_time"],
        json!({"revision": 2, "content": "on time", "saved_at": on_time["saved_at"]})
    );
}

#[tokio::test]
async fn a_second_late_save_keeps_the_same_on_time_revision() {
    let mut app = TestApp::spawn().await;
    let (prof, alice, evaluation) = sitting(&mut app).await;
    saved(&app, &alice, &evaluation, "q1", 1, "on time").await;
    let on_time = answer(&app, &alice, &evaluation, "q1").await;
    set_ends_at(&app, &prof, &evaluation, json!(PAST)).await;
    saved_late(&app, &alice, &evaluation, "q1", 2, "late once").await;

    saved_late(&app, &alice, &evaluation, "q1", 3, "late twice").await;

    let late = answer(&app, &alice, &evaluation, "q1").await;
    assert_eq!(late["revision"], 3);
    assert_eq!(late["content"], "late twice");
    assert_eq!(late["late"], true);
    assert_eq!(
        late["on_time"],
        json!({"revision": 1, "content": "on time", "saved_at": on_time["saved_at"]})
    );
}

#[tokio::test]
async fn a_save_while_the_evaluation_is_grading_or_finished_is_late() {
    let mut app = TestApp::spawn().await;
    let (prof, alice, evaluation) = sitting(&mut app).await;
    saved(&app, &alice, &evaluation, "q1", 1, "on time").await;

    app.set_phase(&prof, &evaluation.id, "grading").await;
    saved_late(&app, &alice, &evaluation, "q1", 2, "while grading").await;
    app.set_phase(&prof, &evaluation.id, "finished").await;
    saved_late(&app, &alice, &evaluation, "q2", 1, "after the end").await;

    let q1 = answer(&app, &alice, &evaluation, "q1").await;
    assert_eq!(q1["late"], true);
    assert_eq!(q1["on_time"]["revision"], 1);
    assert_eq!(q1["on_time"]["content"], "on time");
    let q2 = answer(&app, &alice, &evaluation, "q2").await;
    assert_eq!(q2["late"], true);
}

#[tokio::test]
async fn a_save_that_is_on_time_again_is_not_late_and_keeps_no_on_time_revision() {
    let mut app = TestApp::spawn().await;
    let (prof, alice, evaluation) = sitting(&mut app).await;
    saved(&app, &alice, &evaluation, "q1", 1, "on time").await;
    app.set_phase(&prof, &evaluation.id, "grading").await;
    saved_late(&app, &alice, &evaluation, "q1", 2, "late").await;
    app.set_phase(&prof, &evaluation.id, "in_progress").await;

    saved(&app, &alice, &evaluation, "q1", 3, "on time again").await;

    let a = answer(&app, &alice, &evaluation, "q1").await;
    assert_eq!(a["revision"], 3);
    assert_eq!(a["content"], "on time again");
    assert_eq!(a["late"], false);
    assert!(a["on_time"].is_null(), "{a}");
}

#[tokio::test]
async fn a_late_save_without_an_earlier_on_time_one_keeps_no_on_time_revision() {
    let mut app = TestApp::spawn().await;
    let (prof, alice, evaluation) = sitting(&mut app).await;
    set_ends_at(&app, &prof, &evaluation, json!(PAST)).await;

    saved_late(&app, &alice, &evaluation, "q1", 1, "only late").await;

    let a = answer(&app, &alice, &evaluation, "q1").await;
    assert_eq!(a["late"], true);
    assert!(a["on_time"].is_null(), "{a}");
}

#[tokio::test]
async fn a_late_save_is_recorded_in_the_audit_log() {
    let mut app = TestApp::spawn().await;
    let (prof, alice, evaluation) = sitting(&mut app).await;
    set_ends_at(&app, &prof, &evaluation, json!(PAST)).await;

    saved_late(&app, &alice, &evaluation, "q2", 5, "fn f() {}").await;

    let (status, audit) = app.get(&prof, &at(&evaluation, "/audit")).await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    let late: Vec<&Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "late_answer")
        .collect();
    assert_eq!(late.len(), 1, "{audit}");
    assert_eq!(late[0]["username"], "alice");
    let last = audit.as_array().unwrap().last().unwrap();
    assert_eq!(last["kind"], "late_answer", "the newest entry is last");
}

// ---- saving over the socket ----------------------------------------------------------------

#[tokio::test]
async fn a_save_over_the_socket_is_acknowledged_once_stored() {
    let mut app = TestApp::spawn().await;
    let (_prof, alice, evaluation) = sitting(&mut app).await;
    let (mut socket, _) = app.socket_ready(&alice).await;

    socket.save(&evaluation.id, "q3", 2, "b").await;
    let ack = socket.ack("q3").await;

    assert_eq!(
        ack,
        ServerMessage::AnswerAck {
            evaluation_id: evaluation.id.clone(),
            question_id: "q3".into(),
            revision: 2,
            late: false
        }
    );
    let a = answer(&app, &alice, &evaluation, "q3").await;
    assert_eq!(
        (a["revision"].clone(), a["content"].clone()),
        (json!(2), json!("b"))
    );
}

#[tokio::test]
async fn a_stale_save_over_the_socket_is_acknowledged_with_the_stored_revision() {
    let mut app = TestApp::spawn().await;
    let (_prof, alice, evaluation) = sitting(&mut app).await;
    saved(&app, &alice, &evaluation, "q1", 9, "kept").await;
    let (mut socket, _) = app.socket_ready(&alice).await;

    socket.save(&evaluation.id, "q1", 8, "older").await;
    let ack = socket.ack("q1").await;

    assert!(
        matches!(
            ack,
            ServerMessage::AnswerAck {
                revision: 9,
                late: false,
                ..
            }
        ),
        "{ack:?}"
    );
    assert_eq!(
        answer(&app, &alice, &evaluation, "q1").await["content"],
        "kept"
    );
}

#[tokio::test]
async fn a_late_save_over_the_socket_is_acknowledged_as_late() {
    let mut app = TestApp::spawn().await;
    let (prof, alice, evaluation) = sitting(&mut app).await;
    set_ends_at(&app, &prof, &evaluation, json!(PAST)).await;
    let (mut socket, _) = app.socket_ready(&alice).await;

    socket.save(&evaluation.id, "q1", 1, "late").await;
    let ack = socket.ack("q1").await;

    assert!(
        matches!(
            ack,
            ServerMessage::AnswerAck {
                revision: 1,
                late: true,
                ..
            }
        ),
        "{ack:?}"
    );
}

#[tokio::test]
async fn a_save_over_the_socket_of_the_stored_revision_with_other_content_is_rejected_as_a_conflict()
 {
    let mut app = TestApp::spawn().await;
    let (_prof, alice, evaluation) = sitting(&mut app).await;
    saved(&app, &alice, &evaluation, "q1", 3, "typed on the laptop").await;
    let before = answer(&app, &alice, &evaluation, "q1").await;
    let (mut socket, _) = app.socket_ready(&alice).await;

    socket
        .save(&evaluation.id, "q1", 3, "typed on the tablet")
        .await;
    let refused = socket.ack("q1").await;
    // The same revision with the stored content is acknowledged as before.
    socket
        .save(&evaluation.id, "q1", 3, "typed on the laptop")
        .await;
    let acknowledged = socket.ack("q1").await;

    assert_eq!(
        refused,
        ServerMessage::AnswerRejected {
            evaluation_id: evaluation.id.clone(),
            question_id: "q1".into(),
            revision: 3,
            code: RejectCode::Conflict,
        }
    );
    assert_eq!(
        acknowledged,
        ServerMessage::AnswerAck {
            evaluation_id: evaluation.id.clone(),
            question_id: "q1".into(),
            revision: 3,
            late: false,
        }
    );
    assert_eq!(answer(&app, &alice, &evaluation, "q1").await, before);
}

#[tokio::test]
async fn pipelined_saves_of_one_revision_with_two_contents_store_the_first_and_refuse_the_second() {
    let mut app = TestApp::spawn().await;
    let (_prof, alice, evaluation) = sitting(&mut app).await;
    let (mut socket, _) = app.socket_ready(&alice).await;

    // Both reach the server before either is acknowledged: they are judged in arrival order
    // (on SQLite, in one run of the writer's batch).
    socket.save(&evaluation.id, "q2", 1, "first").await;
    socket.save(&evaluation.id, "q2", 1, "second").await;
    let first = socket.ack("q2").await;
    let second = socket.ack("q2").await;

    assert!(
        matches!(first, ServerMessage::AnswerAck { revision: 1, .. }),
        "{first:?}"
    );
    assert!(
        matches!(
            second,
            ServerMessage::AnswerRejected {
                revision: 1,
                code: RejectCode::Conflict,
                ..
            }
        ),
        "{second:?}"
    );
    assert_eq!(
        answer(&app, &alice, &evaluation, "q2").await["content"],
        "first"
    );
}

/// Sends a save over `student`'s socket and returns the rejection code it gets.
async fn rejection(app: &TestApp, student: &Actor, evaluation: &str, question: &str) -> RejectCode {
    let (mut socket, _) = app.socket_ready(student).await;
    socket.save(evaluation, question, 1, "refused").await;
    match socket.ack(question).await {
        ServerMessage::AnswerRejected {
            evaluation_id,
            question_id,
            revision,
            code,
        } => {
            assert_eq!(evaluation_id, evaluation);
            assert_eq!(question_id, question);
            assert_eq!(revision, 1);
            code
        }
        other => panic!("a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn a_save_over_the_socket_before_joining_is_rejected_as_not_participating() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;

    let code = rejection(&app, &alice, &evaluation.id, "q1").await;

    assert_eq!(code, RejectCode::NotParticipating);
}

#[tokio::test]
async fn a_save_over_the_socket_after_submitting_is_rejected_as_not_participating() {
    let mut app = TestApp::spawn().await;
    let (_prof, alice, evaluation) = sitting(&mut app).await;
    let (status, _) = app
        .post(&alice, &at(&evaluation, "/submit"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);

    let code = rejection(&app, &alice, &evaluation.id, "q1").await;

    assert_eq!(code, RejectCode::NotParticipating);
}

#[tokio::test]
async fn a_save_over_the_socket_by_a_student_off_the_list_is_rejected_as_not_on_access_list() {
    let mut app = TestApp::spawn().await;
    let (prof, alice, evaluation) = sitting(&mut app).await;
    app.set_access(&prof, &evaluation.id, &[]).await;

    let code = rejection(&app, &alice, &evaluation.id, "q1").await;

    assert_eq!(code, RejectCode::NotOnAccessList);
}

#[tokio::test]
async fn a_save_over_the_socket_to_an_unknown_question_is_rejected_as_not_found() {
    let mut app = TestApp::spawn().await;
    let (_prof, alice, evaluation) = sitting(&mut app).await;

    let code = rejection(&app, &alice, &evaluation.id, "q99").await;

    assert_eq!(code, RejectCode::NotFound);
}

#[tokio::test]
async fn a_save_over_the_socket_to_an_unknown_evaluation_is_rejected_as_not_found() {
    let mut app = TestApp::spawn().await;
    let (_prof, alice, _evaluation) = sitting(&mut app).await;

    let code = rejection(&app, &alice, "no-such-evaluation", "q1").await;

    assert_eq!(code, RejectCode::NotFound);
}

#[tokio::test]
async fn a_save_over_the_socket_by_a_blocked_student_is_rejected_as_blocked() {
    let mut app = TestApp::spawn().await;
    let (_prof, _alice, evaluation) = sitting(&mut app).await;
    let alice = app.login("alice", PASSWORD).await;

    let code = rejection(&app, &alice, &evaluation.id, "q1").await;

    assert_eq!(code, RejectCode::Blocked);
}

// ---- reading answers -----------------------------------------------------------------------

#[tokio::test]
async fn the_owner_and_an_admin_read_a_students_answers_by_username() {
    let mut app = TestApp::spawn().await;
    let (prof, alice, evaluation) = sitting(&mut app).await;
    let admin = app.admin().await;
    saved(&app, &alice, &evaluation, "q1", 1, "alice's answer").await;
    let own = answers(&app, &alice, &evaluation).await;

    let (owner_status, owner_view) = app
        .get(&prof, &at(&evaluation, "/answers?username=alice"))
        .await;
    let (admin_status, admin_view) = app
        .get(&admin, &at(&evaluation, "/answers?username=alice"))
        .await;

    assert_eq!(owner_status, StatusCode::OK, "{owner_view}");
    assert_eq!(admin_status, StatusCode::OK, "{admin_view}");
    assert_eq!(owner_view, json!(own));
    assert_eq!(admin_view, json!(own));
}

#[tokio::test]
async fn a_professor_who_does_not_own_the_evaluation_cannot_read_answers() {
    let mut app = TestApp::spawn().await;
    let (_prof, alice, evaluation) = sitting(&mut app).await;
    let other = app.professor("prof2").await;
    saved(&app, &alice, &evaluation, "q1", 1, "alice's answer").await;

    let (status, body) = app
        .get(&other, &at(&evaluation, "/answers?username=alice"))
        .await;

    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(code(&body), "forbidden");
}

#[tokio::test]
async fn a_student_cannot_read_another_students_answers() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let bob = app.student("bob").await;
    let evaluation = app.running(&prof, &[&alice, &bob]).await;
    app.join(&alice, &evaluation.id).await;
    app.join(&bob, &evaluation.id).await;
    saved(&app, &bob, &evaluation, "q1", 1, "bob's secret").await;

    let (status, body) = app
        .get(&alice, &at(&evaluation, "/answers?username=bob"))
        .await;

    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(code(&body), "forbidden");
    assert!(!body.to_string().contains("bob's secret"));
    let (own_status, own) = app
        .get(&alice, &at(&evaluation, "/answers?username=alice"))
        .await;
    assert_eq!(own_status, StatusCode::OK, "naming oneself is fine: {own}");
    assert_eq!(own, json!([]));
}

#[tokio::test]
async fn a_late_save_after_an_on_time_return_keeps_the_newest_on_time_revision() {
    let mut app = TestApp::spawn().await;
    let (prof, alice, evaluation) = sitting(&mut app).await;
    saved(&app, &alice, &evaluation, "q1", 1, "first on time").await;
    app.set_phase(&prof, &evaluation.id, "grading").await;
    saved_late(&app, &alice, &evaluation, "q1", 2, "late").await;
    app.set_phase(&prof, &evaluation.id, "in_progress").await;
    saved(&app, &alice, &evaluation, "q1", 3, "second on time").await;
    let on_time = answer(&app, &alice, &evaluation, "q1").await;
    set_ends_at(&app, &prof, &evaluation, json!(PAST)).await;

    saved_late(&app, &alice, &evaluation, "q1", 4, "late again").await;

    let a = answer(&app, &alice, &evaluation, "q1").await;
    assert_eq!(a["late"], true);
    assert_eq!(
        a["on_time"],
        json!({"revision": 3, "content": "second on time", "saved_at": on_time["saved_at"]})
    );
}

#[tokio::test]
async fn a_save_to_an_unknown_evaluation_is_not_found() {
    let mut app = TestApp::spawn().await;
    let alice = app.student("alice").await;

    let (status, body) = app
        .put(
            &alice,
            "/api/evaluations/no-such-evaluation/answers/q1",
            json!({"revision": 1, "content": "x"}),
        )
        .await;

    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(code(&body), "not_found");
}

#[tokio::test]
async fn the_participants_list_counts_the_questions_with_a_stored_answer() {
    let mut app = TestApp::spawn().await;
    let (prof, alice, evaluation) = sitting(&mut app).await;
    saved(&app, &alice, &evaluation, "q1", 1, "a").await;
    saved(&app, &alice, &evaluation, "q1", 2, "b").await;

    saved(&app, &alice, &evaluation, "q3", 1, "b").await;

    let (_, participants) = app.get(&prof, &at(&evaluation, "/participants")).await;
    let row = participants
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["username"] == "alice")
        .expect("alice's row");
    assert_eq!(row["answered"], 2, "two questions, however many revisions");
}

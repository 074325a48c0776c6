//! Tests: evaluations — create, list, read, phases, end times, access lists, join, submit,
//! participants, the audit log, and the `EVALUATION_UPDATE`s a connected student receives.

use crate::helpers::*;
use invigil_protocol::{Evaluation, ParticipationStatus, Phase, ServerMessage, UpdateReason};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// An end time safely in the past.
const PAST: &str = "2000-01-01T00:00:00.000Z";
/// An end time safely in the future.
const FUTURE: &str = "2999-01-01T09:30:00.000Z";

/// The path of an evaluation, or of something under it (`tail` starts with `/` or is empty).
fn at(evaluation: &Evaluation, tail: &str) -> String {
    format!("/api/evaluations/{}{tail}", evaluation.id)
}

/// The contract error code of a response body.
fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

/// The ids of a list of evaluations.
fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("a list of evaluations")
        .iter()
        .map(|e| e["id"].as_str().expect("an id").to_owned())
        .collect()
}

/// The `kind`s of an audit log, oldest first.
fn kinds(audit: &Value) -> Vec<&str> {
    audit
        .as_array()
        .expect("an audit list")
        .iter()
        .map(|e| e["kind"].as_str().expect("a kind"))
        .collect()
}

/// The participant row of `username`, if any.
fn row<'a>(participants: &'a Value, username: &str) -> Option<&'a Value> {
    participants
        .as_array()
        .expect("a list of participants")
        .iter()
        .find(|p| p["username"] == username)
}

/// The sorted usernames of a participants list.
fn usernames(participants: &Value) -> Vec<&str> {
    let mut names: Vec<&str> = participants
        .as_array()
        .expect("a list of participants")
        .iter()
        .map(|p| p["username"].as_str().expect("a username"))
        .collect();
    names.sort();
    names
}

/// The questions every evaluation made by [`TestApp::evaluation`] has.
fn standard_questions() -> Value {
    json!([
        {"id": "q1", "prompt": "Explain quicksort", "kind": "text"},
        {"id": "q2", "prompt": "Write binary search", "kind": "code"},
        {"id": "q3", "prompt": "Mergesort worst case?", "kind": "choice",
         "choices": [{"id": "a", "label": "O(n)"}, {"id": "b", "label": "O(n log n)"}]}
    ])
}

/// Waits for the next `EVALUATION_UPDATE` with this reason about this evaluation.
async fn update(
    socket: &mut Socket,
    evaluation: &Evaluation,
    why: UpdateReason,
) -> (Evaluation, invigil_protocol::Participation) {
    match socket
        .until(|m| {
            matches!(m, ServerMessage::EvaluationUpdate { reason, evaluation: e, .. }
                if *reason == why && e.id == evaluation.id)
        })
        .await
    {
        ServerMessage::EvaluationUpdate {
            evaluation,
            participation,
            ..
        } => (evaluation, participation),
        _ => unreachable!("matched above"),
    }
}

// ---- create --------------------------------------------------------------------------------

#[tokio::test]
async fn a_professor_creates_a_draft_evaluation_that_they_own() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;

    let (status, body) = app
        .post(
            &prof,
            "/api/evaluations",
            json!({"title": "Algorithms midterm", "questions": standard_questions()}),
        )
        .await;

    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body["id"].is_string(), "{body}");
    assert_eq!(body["title"], "Algorithms midterm");
    assert_eq!(body["phase"], "draft");
    assert_eq!(body["owner"], "prof1");
    assert_eq!(body["access"], "list", "access defaults to list");
    assert!(body["ends_at"].is_null(), "ends_at is optional: {body}");
    assert_eq!(body["questions"], standard_questions());
}

#[tokio::test]
async fn an_admin_creates_an_evaluation_that_the_admin_owns() {
    let mut app = TestApp::spawn().await;
    let admin = app.admin().await;

    let (status, body) = app
        .post(
            &admin,
            "/api/evaluations",
            json!({"title": "Final", "questions": standard_questions(),
                   "ends_at": FUTURE, "access": "open"}),
        )
        .await;

    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["phase"], "draft");
    assert_eq!(body["owner"], ADMIN.0);
    assert_eq!(body["access"], "open");
    assert_eq!(body["ends_at"], FUTURE);
}

#[tokio::test]
async fn questions_without_ids_are_numbered_q1_q2_in_order() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;

    let (status, body) = app
        .post(
            &prof,
            "/api/evaluations",
            json!({"title": "Quiz", "questions": [
                {"prompt": "First", "kind": "text"},
                {"prompt": "Second", "kind": "code"}
            ]}),
        )
        .await;

    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body["questions"],
        json!([
            {"id": "q1", "prompt": "First", "kind": "text"},
            {"id": "q2", "prompt": "Second", "kind": "code"}
        ])
    );
}

#[tokio::test]
async fn a_student_cannot_create_an_evaluation() {
    let mut app = TestApp::spawn().await;
    let alice = app.student("alice").await;

    let (status, body) = app
        .post(
            &alice,
            "/api/evaluations",
            json!({"title": "Mine", "questions": standard_questions()}),
        )
        .await;

    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(code(&body), "forbidden");
}

/// Posts a body that must be refused with 400 `bad_request`, and checks nothing was created.
async fn assert_refused(app: &mut TestApp, body: Value) {
    let prof = app.professor("prof1").await;

    let (status, answer) = app.post(&prof, "/api/evaluations", body.clone()).await;

    assert_eq!(status, StatusCode::BAD_REQUEST, "{body} → {answer}");
    assert_eq!(code(&answer), "bad_request", "{answer}");
    let (_, list) = app.get(&prof, "/api/evaluations").await;
    assert_eq!(list, json!([]), "nothing was created");
}

#[tokio::test]
async fn an_evaluation_without_a_title_is_a_bad_request() {
    let mut app = TestApp::spawn().await;
    assert_refused(&mut app, json!({"questions": standard_questions()})).await;
}

#[tokio::test]
async fn an_evaluation_with_two_questions_of_the_same_id_is_a_bad_request() {
    let mut app = TestApp::spawn().await;
    assert_refused(
        &mut app,
        json!({"title": "Quiz", "questions": [
            {"id": "q1", "prompt": "First", "kind": "text"},
            {"id": "q1", "prompt": "Second", "kind": "text"}
        ]}),
    )
    .await;
}

#[tokio::test]
async fn a_choice_question_without_choices_is_a_bad_request() {
    let mut app = TestApp::spawn().await;
    assert_refused(
        &mut app,
        json!({"title": "Quiz", "questions": [{"id": "q1", "prompt": "Pick", "kind": "choice"}]}),
    )
    .await;
}

#[tokio::test]
async fn a_question_of_an_unknown_kind_is_a_bad_request() {
    let mut app = TestApp::spawn().await;
    assert_refused(
        &mut app,
        json!({"title": "Quiz", "questions": [{"id": "q1", "prompt": "Draw", "kind": "drawing"}]}),
    )
    .await;
}

// ---- list and read -------------------------------------------------------------------------

#[tokio::test]
async fn a_student_lists_only_the_evaluations_they_are_eligible_for() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let other = app.professor("prof2").await;
    let admin = app.admin().await;
    let alice = app.student("alice").await;
    let bob = app.student("bob").await;
    let for_alice = app.evaluation(&prof, json!({"title": "For alice"})).await;
    app.set_access(&prof, &for_alice.id, &[&alice]).await;
    let for_bob = app.evaluation(&prof, json!({"title": "For bob"})).await;
    app.set_access(&prof, &for_bob.id, &[&bob]).await;
    let open = app.evaluation(&other, json!({"access": "open"})).await;

    let (status, seen_by_alice) = app.get(&alice, "/api/evaluations").await;
    let (_, seen_by_prof) = app.get(&prof, "/api/evaluations").await;
    let (_, seen_by_other) = app.get(&other, "/api/evaluations").await;
    let (_, seen_by_admin) = app.get(&admin, "/api/evaluations").await;

    assert_eq!(status, StatusCode::OK);
    let mut expected = vec![for_alice.id.clone(), open.id.clone()];
    expected.sort();
    let mut got = ids(&seen_by_alice);
    got.sort();
    assert_eq!(got, expected, "alice sees hers and the open one, not bob's");
    let mut all = vec![for_alice.id, for_bob.id, open.id];
    all.sort();
    for list in [seen_by_prof, seen_by_other, seen_by_admin] {
        let mut got = ids(&list);
        got.sort();
        assert_eq!(got, all, "staff see every evaluation");
    }
}

#[tokio::test]
async fn a_student_sees_an_evaluation_in_every_phase_but_without_questions_while_draft() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.evaluation(&prof, json!({})).await;
    app.set_access(&prof, &evaluation.id, &[&alice]).await;

    for phase in ["draft", "in_progress", "grading", "finished"] {
        if phase != "draft" {
            app.set_phase(&prof, &evaluation.id, phase).await;
        }

        let (list_status, list) = app.get(&alice, "/api/evaluations").await;
        let (read_status, read) = app.get(&alice, &at(&evaluation, "")).await;

        assert_eq!(list_status, StatusCode::OK);
        assert_eq!(read_status, StatusCode::OK, "{phase}: {read}");
        let listed = list
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == evaluation.id.as_str())
            .unwrap_or_else(|| panic!("listed while {phase}: {list}"))
            .clone();
        for seen in [&listed, &read] {
            assert_eq!(seen["phase"], phase);
            if phase == "draft" {
                assert_eq!(
                    seen["questions"],
                    json!([]),
                    "no questions in draft: {seen}"
                );
            } else {
                assert_eq!(seen["questions"], standard_questions(), "{phase}: {seen}");
            }
        }
    }
}

#[tokio::test]
async fn a_student_reading_an_evaluation_also_gets_their_participation() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;

    let (status, body) = app.get(&alice, &at(&evaluation, "")).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], evaluation.id.as_str());
    assert_eq!(body["title"], "Algorithms midterm");
    assert_eq!(body["owner"], "prof1");
    assert_eq!(
        body["participation"],
        json!({"evaluation_id": evaluation.id, "username": "alice",
               "status": "not_started", "blocked_reason": null, "access": true})
    );
}

#[tokio::test]
async fn a_student_who_is_not_eligible_gets_not_found() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let bob = app.student("bob").await;
    let evaluation = app.running(&prof, &[&alice]).await;

    let (status, body) = app.get(&bob, &at(&evaluation, "")).await;

    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(code(&body), "not_found");
}

#[tokio::test]
async fn a_professor_who_does_not_own_an_evaluation_may_read_it() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let other = app.professor("prof2").await;
    let evaluation = app.evaluation(&prof, json!({})).await;

    let (status, body) = app.get(&other, &at(&evaluation, "")).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], evaluation.id.as_str());
    assert_eq!(body["owner"], "prof1");
    assert_eq!(
        body["questions"],
        standard_questions(),
        "staff see the questions even in draft"
    );
}

#[tokio::test]
async fn an_unknown_evaluation_is_not_found() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;

    for actor in [&prof, &alice] {
        let (status, body) = app.get(actor, "/api/evaluations/no-such-evaluation").await;

        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(code(&body), "not_found");
    }
}

// ---- phases --------------------------------------------------------------------------------

#[tokio::test]
async fn every_allowed_phase_change_answers_the_evaluation_in_its_new_phase() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let evaluation = app.evaluation(&prof, json!({})).await;

    for phase in [
        "in_progress",
        "grading",
        "in_progress",
        "grading",
        "finished",
    ] {
        let (status, body) = app
            .post(&prof, &at(&evaluation, "/phase"), json!({"phase": phase}))
            .await;

        assert_eq!(status, StatusCode::OK, "moving to {phase}: {body}");
        assert_eq!(body["phase"], phase);
        assert_eq!(body["id"], evaluation.id.as_str());
        assert_eq!(body["questions"], standard_questions());
    }
}

#[tokio::test]
async fn a_phase_change_the_contract_does_not_allow_is_an_invalid_transition() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let evaluation = app.evaluation(&prof, json!({})).await;
    // From each phase (reached in order), the changes that are not allowed.
    let forbidden: [(&str, &[&str]); 4] = [
        ("draft", &["draft", "grading", "finished"]),
        ("in_progress", &["draft", "in_progress", "finished"]),
        ("grading", &["draft", "grading"]),
        ("finished", &["draft", "in_progress", "grading", "finished"]),
    ];

    for (from, targets) in forbidden {
        if from != "draft" {
            app.set_phase(&prof, &evaluation.id, from).await;
        }
        for to in targets {
            let (status, body) = app
                .post(&prof, &at(&evaluation, "/phase"), json!({"phase": to}))
                .await;

            assert_eq!(status, StatusCode::CONFLICT, "{from} → {to}: {body}");
            assert_eq!(code(&body), "invalid_transition", "{from} → {to}");
            let (_, now) = app.get(&prof, &at(&evaluation, "")).await;
            assert_eq!(now["phase"], from, "a refused change changes nothing");
        }
    }
}

#[tokio::test]
async fn an_unknown_phase_is_a_bad_request() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let evaluation = app.evaluation(&prof, json!({})).await;

    let (status, body) = app
        .post(
            &prof,
            &at(&evaluation, "/phase"),
            json!({"phase": "archived"}),
        )
        .await;

    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(code(&body), "bad_request");
    let (_, now) = app.get(&prof, &at(&evaluation, "")).await;
    assert_eq!(now["phase"], "draft");
}

#[tokio::test]
async fn a_professor_who_does_not_own_an_evaluation_cannot_change_it() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let other = app.professor("prof2").await;
    let alice = app.student("alice").await;
    let evaluation = app.evaluation(&prof, json!({})).await;

    let attempts = [
        app.post(
            &other,
            &at(&evaluation, "/phase"),
            json!({"phase": "in_progress"}),
        )
        .await,
        app.put(
            &other,
            &at(&evaluation, "/ends_at"),
            json!({"ends_at": FUTURE}),
        )
        .await,
        app.put(
            &other,
            &at(&evaluation, "/access"),
            json!({"students": ["alice"]}),
        )
        .await,
    ];

    for (status, body) in attempts {
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(code(&body), "forbidden");
    }
    let (_, now) = app.get(&prof, &at(&evaluation, "")).await;
    assert_eq!(now["phase"], "draft");
    assert!(now["ends_at"].is_null());
    let (status, _) = app.get(&alice, &at(&evaluation, "")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "alice was not added");
}

#[tokio::test]
async fn an_admin_may_change_any_evaluation() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let admin = app.admin().await;
    let alice = app.student("alice").await;
    let evaluation = app.evaluation(&prof, json!({})).await;

    let (phase_status, phase) = app
        .post(
            &admin,
            &at(&evaluation, "/phase"),
            json!({"phase": "in_progress"}),
        )
        .await;
    let (ends_status, ends) = app
        .put(
            &admin,
            &at(&evaluation, "/ends_at"),
            json!({"ends_at": FUTURE}),
        )
        .await;
    let (access_status, access) = app
        .put(
            &admin,
            &at(&evaluation, "/access"),
            json!({"students": ["alice"]}),
        )
        .await;

    assert_eq!(phase_status, StatusCode::OK, "{phase}");
    assert_eq!(phase["phase"], "in_progress");
    assert_eq!(ends_status, StatusCode::OK, "{ends}");
    assert_eq!(ends["ends_at"], FUTURE);
    assert_eq!(access_status, StatusCode::OK, "{access}");
    assert_eq!(access, json!({"students": ["alice"]}));
    assert_eq!(phase["owner"], "prof1", "the owner stays the same");
    let (status, _) = app.get(&alice, &at(&evaluation, "")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_student_cannot_change_an_evaluation() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let _bob = app.student("bob").await;
    let evaluation = app.evaluation(&prof, json!({})).await;
    app.set_access(&prof, &evaluation.id, &[&alice]).await;

    let attempts = [
        app.post(
            &alice,
            &at(&evaluation, "/phase"),
            json!({"phase": "in_progress"}),
        )
        .await,
        app.put(
            &alice,
            &at(&evaluation, "/ends_at"),
            json!({"ends_at": FUTURE}),
        )
        .await,
        app.put(
            &alice,
            &at(&evaluation, "/access"),
            json!({"students": ["alice", "bob"]}),
        )
        .await,
    ];

    for (status, body) in attempts {
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(code(&body), "forbidden");
    }
    let (_, now) = app.get(&prof, &at(&evaluation, "")).await;
    assert_eq!(now["phase"], "draft");
    assert!(now["ends_at"].is_null());
    let (_, participants) = app.get(&prof, &at(&evaluation, "/participants")).await;
    assert_eq!(usernames(&participants), ["alice"]);
}

#[tokio::test]
async fn changing_an_unknown_evaluation_is_not_found() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let path = "/api/evaluations/no-such-evaluation";

    let attempts = [
        app.post(
            &prof,
            &format!("{path}/phase"),
            json!({"phase": "in_progress"}),
        )
        .await,
        app.put(
            &prof,
            &format!("{path}/ends_at"),
            json!({"ends_at": FUTURE}),
        )
        .await,
        app.put(&prof, &format!("{path}/access"), json!({"students": []}))
            .await,
    ];

    for (status, body) in attempts {
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(code(&body), "not_found");
    }
}

// ---- end time ------------------------------------------------------------------------------

#[tokio::test]
async fn the_owner_sets_and_clears_the_end_time() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let evaluation = app.evaluation(&prof, json!({})).await;

    let (set_status, set) = app
        .put(
            &prof,
            &at(&evaluation, "/ends_at"),
            json!({"ends_at": FUTURE}),
        )
        .await;
    let (_, read_after_set) = app.get(&prof, &at(&evaluation, "")).await;
    let (clear_status, cleared) = app
        .put(
            &prof,
            &at(&evaluation, "/ends_at"),
            json!({"ends_at": null}),
        )
        .await;
    let (_, read_after_clear) = app.get(&prof, &at(&evaluation, "")).await;

    assert_eq!(set_status, StatusCode::OK, "{set}");
    assert_eq!(set["ends_at"], FUTURE);
    assert_eq!(set["id"], evaluation.id.as_str());
    assert_eq!(read_after_set["ends_at"], FUTURE);
    assert_eq!(clear_status, StatusCode::OK, "{cleared}");
    assert!(cleared["ends_at"].is_null(), "{cleared}");
    assert!(read_after_clear["ends_at"].is_null());
}

#[tokio::test]
async fn an_end_time_that_is_not_a_time_is_a_bad_request() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let evaluation = app.evaluation(&prof, json!({"ends_at": FUTURE})).await;

    let (status, body) = app
        .put(
            &prof,
            &at(&evaluation, "/ends_at"),
            json!({"ends_at": "tomorrow at nine"}),
        )
        .await;

    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(code(&body), "bad_request");
    let (_, now) = app.get(&prof, &at(&evaluation, "")).await;
    assert_eq!(now["ends_at"], FUTURE);
}

// ---- access lists --------------------------------------------------------------------------

#[tokio::test]
async fn setting_the_access_list_replaces_it() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let bob = app.student("bob").await;
    let carol = app.student("carol").await;
    let evaluation = app.evaluation(&prof, json!({})).await;
    app.set_access(&prof, &evaluation.id, &[&alice, &bob]).await;

    let (status, body) = app
        .put(
            &prof,
            &at(&evaluation, "/access"),
            json!({"students": ["carol", "bob"]}),
        )
        .await;

    assert_eq!(status, StatusCode::OK, "{body}");
    let mut listed: Vec<&str> = body["students"]
        .as_array()
        .expect("{\"students\": [...]}")
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    listed.sort();
    assert_eq!(listed, ["bob", "carol"]);
    let (alice_status, _) = app.get(&alice, &at(&evaluation, "")).await;
    let (bob_status, _) = app.get(&bob, &at(&evaluation, "")).await;
    let (carol_status, _) = app.get(&carol, &at(&evaluation, "")).await;
    assert_eq!(alice_status, StatusCode::NOT_FOUND, "alice is off the list");
    assert_eq!(bob_status, StatusCode::OK);
    assert_eq!(carol_status, StatusCode::OK);
    let (_, participants) = app.get(&prof, &at(&evaluation, "/participants")).await;
    assert_eq!(usernames(&participants), ["bob", "carol"]);
}

#[tokio::test]
async fn an_access_list_naming_unknown_users_or_non_students_is_refused_and_changes_nothing() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let _colleague = app.professor("prof2").await;
    let alice = app.student("alice").await;
    let bob = app.student("bob").await;
    let evaluation = app.evaluation(&prof, json!({})).await;
    app.set_access(&prof, &evaluation.id, &[&bob]).await;

    let (status, body) = app
        .put(
            &prof,
            &at(&evaluation, "/access"),
            json!({"students": ["alice", "ghost", "prof2", "admin"]}),
        )
        .await;

    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(code(&body), "bad_request");
    let message = body["error"]["message"].as_str().unwrap();
    for bad in ["ghost", "prof2", "admin"] {
        assert!(message.contains(bad), "the message names {bad}: {message}");
    }
    let (alice_status, _) = app.get(&alice, &at(&evaluation, "")).await;
    let (bob_status, _) = app.get(&bob, &at(&evaluation, "")).await;
    assert_eq!(alice_status, StatusCode::NOT_FOUND, "alice was not added");
    assert_eq!(bob_status, StatusCode::OK, "bob was not removed");
    let (_, participants) = app.get(&prof, &at(&evaluation, "/participants")).await;
    assert_eq!(usernames(&participants), ["bob"]);
}

#[tokio::test]
async fn a_student_removed_from_the_list_while_connected_is_told_they_lost_access() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;
    app.join(&alice, &evaluation.id).await;
    let (mut socket, _) = app.socket_ready(&alice).await;

    app.set_access(&prof, &evaluation.id, &[]).await;

    let (seen, participation) = update(&mut socket, &evaluation, UpdateReason::AccessChanged).await;
    assert_eq!(seen.id, evaluation.id);
    assert!(!participation.access, "{participation:?}");
    assert_eq!(participation.username, "alice");
    assert_eq!(participation.evaluation_id, evaluation.id);
}

#[tokio::test]
async fn an_evaluation_is_hidden_from_a_student_removed_from_its_list() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;
    app.join(&alice, &evaluation.id).await;

    app.set_access(&prof, &evaluation.id, &[]).await;

    let (status, body) = app.get(&alice, &at(&evaluation, "")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(code(&body), "not_found");
    let (_, list) = app.get(&alice, "/api/evaluations").await;
    assert!(
        !ids(&list).contains(&evaluation.id),
        "absent from the list: {list}"
    );
}

#[tokio::test]
async fn a_student_removed_from_the_list_can_no_longer_save() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;
    app.join(&alice, &evaluation.id).await;

    app.set_access(&prof, &evaluation.id, &[]).await;

    let (status, body) = app
        .put(
            &alice,
            &at(&evaluation, "/answers/q1"),
            json!({"revision": 1, "content": "too late to be let in"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(code(&body), "not_on_access_list");
}

#[tokio::test]
async fn what_a_removed_student_saved_stays_stored_and_visible_to_the_professor() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;
    app.join(&alice, &evaluation.id).await;
    let (status, body) = app
        .put(
            &alice,
            &at(&evaluation, "/answers/q1"),
            json!({"revision": 3, "content": "pivot, partition, recurse"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    app.set_access(&prof, &evaluation.id, &[]).await;

    let (status, answers) = app
        .get(&prof, &at(&evaluation, "/answers?username=alice"))
        .await;
    assert_eq!(status, StatusCode::OK, "{answers}");
    let answers = answers.as_array().expect("a list of answers");
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0]["question_id"], "q1");
    assert_eq!(answers[0]["revision"], 3);
    assert_eq!(answers[0]["content"], "pivot, partition, recurse");
}

#[tokio::test]
async fn a_student_added_while_connected_is_told_they_have_access() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.evaluation(&prof, json!({})).await;
    app.set_phase(&prof, &evaluation.id, "in_progress").await;
    let (mut socket, snapshot) = app.socket_ready(&alice).await;
    assert!(
        !snapshot.iter().any(
            |m| matches!(m, ServerMessage::EvaluationUpdate { evaluation: e, .. } if e.id == evaluation.id)
        ),
        "not eligible yet"
    );

    app.set_access(&prof, &evaluation.id, &[&alice]).await;

    let (seen, participation) = update(&mut socket, &evaluation, UpdateReason::AccessChanged).await;
    assert!(participation.access, "{participation:?}");
    assert_eq!(participation.status, ParticipationStatus::NotStarted);
    assert_eq!(seen.phase, Phase::InProgress);
    assert_eq!(seen.questions.len(), 3, "the full evaluation: {seen:?}");
}

#[tokio::test]
async fn an_open_evaluation_is_visible_to_every_student() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.evaluation(&prof, json!({"access": "open"})).await;
    let latecomer = app.student("latecomer").await;

    for student in [&alice, &latecomer] {
        let (_, list) = app.get(student, "/api/evaluations").await;
        let (status, read) = app.get(student, &at(&evaluation, "")).await;

        assert_eq!(ids(&list), [evaluation.id.as_str()], "{}", student.name());
        assert_eq!(status, StatusCode::OK, "{read}");
        assert_eq!(read["access"], "open");
        assert_eq!(read["participation"]["access"], true);
    }
}

// ---- join and submit -----------------------------------------------------------------------

#[tokio::test]
async fn a_student_on_the_list_joins_a_running_evaluation() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;

    let (status, body) = app.post(&alice, &at(&evaluation, "/join"), json!({})).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"evaluation_id": evaluation.id, "username": "alice",
               "status": "in_progress", "blocked_reason": null, "access": true})
    );
    let (_, read) = app.get(&alice, &at(&evaluation, "")).await;
    assert_eq!(read["participation"]["status"], "in_progress");
}

#[tokio::test]
async fn joining_again_while_in_progress_changes_nothing() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;
    app.join(&alice, &evaluation.id).await;

    let (status, body) = app.post(&alice, &at(&evaluation, "/join"), json!({})).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "in_progress");
    let (_, audit) = app.get(&prof, &at(&evaluation, "/audit")).await;
    assert_eq!(
        kinds(&audit).iter().filter(|k| **k == "joined").count(),
        1,
        "one join recorded: {audit}"
    );
}

#[tokio::test]
async fn a_student_who_is_not_eligible_cannot_join() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let bob = app.student("bob").await;
    let evaluation = app.running(&prof, &[&alice]).await;

    let (status, body) = app.post(&bob, &at(&evaluation, "/join"), json!({})).await;

    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(code(&body), "not_on_access_list");
}

#[tokio::test]
async fn joining_an_evaluation_that_is_not_in_progress_is_not_open() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.evaluation(&prof, json!({})).await;
    app.set_access(&prof, &evaluation.id, &[&alice]).await;

    let (draft_status, draft) = app.post(&alice, &at(&evaluation, "/join"), json!({})).await;
    app.set_phase(&prof, &evaluation.id, "in_progress").await;
    app.set_phase(&prof, &evaluation.id, "grading").await;
    let (grading_status, grading) = app.post(&alice, &at(&evaluation, "/join"), json!({})).await;

    for (status, body) in [(draft_status, draft), (grading_status, grading)] {
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(code(&body), "not_open");
    }
    let (_, read) = app.get(&alice, &at(&evaluation, "")).await;
    assert_eq!(read["participation"]["status"], "not_started");
}

#[tokio::test]
async fn a_student_who_has_submitted_cannot_join_again() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;
    app.join(&alice, &evaluation.id).await;
    let (status, _) = app
        .post(&alice, &at(&evaluation, "/submit"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = app.post(&alice, &at(&evaluation, "/join"), json!({})).await;

    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(code(&body), "conflict");
    let (_, read) = app.get(&alice, &at(&evaluation, "")).await;
    assert_eq!(read["participation"]["status"], "submitted");
}

#[tokio::test]
async fn a_student_blocked_by_a_second_sign_in_cannot_join() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;
    app.join(&alice, &evaluation.id).await;
    let alice = app.login("alice", PASSWORD).await;

    let (status, body) = app.post(&alice, &at(&evaluation, "/join"), json!({})).await;

    assert_eq!(status, StatusCode::LOCKED, "{body}");
    assert_eq!(code(&body), "blocked");
    let (_, read) = app.get(&alice, &at(&evaluation, "")).await;
    assert_eq!(read["participation"]["status"], "blocked");
    assert_eq!(read["participation"]["blocked_reason"], "second_sign_in");
}

#[tokio::test]
async fn a_student_submits_and_submitting_again_changes_nothing() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;
    app.join(&alice, &evaluation.id).await;

    let (first_status, first) = app
        .post(&alice, &at(&evaluation, "/submit"), json!({}))
        .await;
    let (again_status, again) = app
        .post(&alice, &at(&evaluation, "/submit"), json!({}))
        .await;

    let submitted = json!({"evaluation_id": evaluation.id, "username": "alice",
                           "status": "submitted", "blocked_reason": null, "access": true});
    assert_eq!(first_status, StatusCode::OK, "{first}");
    assert_eq!(first, submitted);
    assert_eq!(again_status, StatusCode::OK, "{again}");
    assert_eq!(again, submitted);
    let (_, audit) = app.get(&prof, &at(&evaluation, "/audit")).await;
    assert_eq!(
        kinds(&audit).iter().filter(|k| **k == "submitted").count(),
        1,
        "one submission recorded: {audit}"
    );
}

#[tokio::test]
async fn a_student_who_has_not_joined_cannot_submit() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;

    let (status, body) = app
        .post(&alice, &at(&evaluation, "/submit"), json!({}))
        .await;

    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(code(&body), "not_participating");
}

// ---- participants --------------------------------------------------------------------------

#[tokio::test]
async fn the_participants_are_the_students_on_the_list_and_those_who_joined() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let bob = app.student("bob").await;
    let carol = app.student("carol").await;
    let _dave = app.student("dave").await;
    let evaluation = app.running(&prof, &[&alice, &bob]).await;
    app.join(&alice, &evaluation.id).await;
    let (status, _) = app
        .put(
            &alice,
            &at(&evaluation, "/answers/q2"),
            json!({"revision": 1, "content": "fn search() {}"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // Alice leaves the list after joining; carol joins it.
    app.set_access(&prof, &evaluation.id, &[&bob, &carol]).await;

    let (status, participants) = app.get(&prof, &at(&evaluation, "/participants")).await;

    assert_eq!(status, StatusCode::OK, "{participants}");
    assert_eq!(usernames(&participants), ["alice", "bob", "carol"]);
    let alice_row = row(&participants, "alice").unwrap();
    assert_eq!(alice_row["display_name"], "alice");
    assert_eq!(alice_row["status"], "in_progress");
    assert!(alice_row["blocked_reason"].is_null());
    assert_eq!(alice_row["connected"], false);
    assert_eq!(alice_row["answered"], 1);
    assert!(alice_row.get("last_seen").is_some(), "{alice_row}");
    let bob_row = row(&participants, "bob").unwrap();
    assert_eq!(bob_row["status"], "not_started");
    assert_eq!(bob_row["answered"], 0);
    assert_eq!(bob_row["connected"], false);
}

#[tokio::test]
async fn the_participants_of_an_open_evaluation_are_those_who_joined() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let _bob = app.student("bob").await;
    let evaluation = app.evaluation(&prof, json!({"access": "open"})).await;
    app.set_phase(&prof, &evaluation.id, "in_progress").await;
    app.join(&alice, &evaluation.id).await;

    let (status, participants) = app.get(&prof, &at(&evaluation, "/participants")).await;

    assert_eq!(status, StatusCode::OK, "{participants}");
    assert_eq!(usernames(&participants), ["alice"]);
    assert_eq!(
        row(&participants, "alice").unwrap()["status"],
        "in_progress"
    );
}

#[tokio::test]
async fn only_the_owner_or_an_admin_may_list_participants() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let other = app.professor("prof2").await;
    let admin = app.admin().await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;

    let (owner_status, owner_view) = app.get(&prof, &at(&evaluation, "/participants")).await;
    let (admin_status, admin_view) = app.get(&admin, &at(&evaluation, "/participants")).await;
    let (other_status, other_body) = app.get(&other, &at(&evaluation, "/participants")).await;
    let (student_status, student_body) = app.get(&alice, &at(&evaluation, "/participants")).await;

    assert_eq!(owner_status, StatusCode::OK, "{owner_view}");
    assert_eq!(admin_status, StatusCode::OK, "{admin_view}");
    assert_eq!(usernames(&admin_view), ["alice"]);
    for (status, body) in [(other_status, other_body), (student_status, student_body)] {
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(code(&body), "forbidden");
    }
}

#[tokio::test]
async fn a_participant_is_connected_while_their_socket_is_open() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;
    app.join(&alice, &evaluation.id).await;
    let (alice_socket, _) = app.socket_ready(&alice).await;

    let (_, while_open) = app.get(&prof, &at(&evaluation, "/participants")).await;
    let open_row = row(&while_open, "alice").unwrap();
    assert_eq!(open_row["connected"], true, "{open_row}");
    assert!(open_row["last_seen"].is_string(), "{open_row}");

    let (mut board, _) = app.socket_ready(&prof).await;
    drop(alice_socket);
    board
        .until(|m| {
            matches!(m, ServerMessage::ParticipantUpdate { evaluation_id, participant }
                if *evaluation_id == evaluation.id && participant.username == "alice" && !participant.connected)
        })
        .await;

    let (_, after_close) = app.get(&prof, &at(&evaluation, "/participants")).await;
    let closed_row = row(&after_close, "alice").unwrap();
    assert_eq!(closed_row["connected"], false, "{closed_row}");
    assert!(closed_row["last_seen"].is_string(), "{closed_row}");
}

// ---- audit ---------------------------------------------------------------------------------

#[tokio::test]
async fn the_audit_log_records_the_evaluations_history_oldest_first() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.evaluation(&prof, json!({})).await;
    app.set_access(&prof, &evaluation.id, &[&alice]).await;
    app.set_phase(&prof, &evaluation.id, "in_progress").await;
    app.join(&alice, &evaluation.id).await;
    let (status, _) = app
        .put(
            &prof,
            &at(&evaluation, "/ends_at"),
            json!({"ends_at": PAST}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, ack) = app
        .put(
            &alice,
            &at(&evaluation, "/answers/q1"),
            json!({"revision": 1, "content": "after the bell"}),
        )
        .await;
    assert_eq!((status, &ack["late"]), (StatusCode::OK, &json!(true)));
    let (status, _) = app
        .post(&alice, &at(&evaluation, "/submit"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, audit) = app.get(&prof, &at(&evaluation, "/audit")).await;

    assert_eq!(status, StatusCode::OK, "{audit}");
    assert_eq!(
        kinds(&audit),
        [
            "access_changed",
            "phase_changed",
            "joined",
            "ends_at_changed",
            "late_answer",
            "submitted"
        ],
        "{audit}"
    );
    let entries = audit.as_array().unwrap();
    let who = |i: usize| (entries[i]["username"].clone(), entries[i]["actor"].clone());
    assert_eq!(who(0), (json!("alice"), json!("prof1")), "access_changed");
    assert_eq!(who(1), (Value::Null, json!("prof1")), "phase_changed");
    assert_eq!(entries[2]["username"], "alice", "joined");
    assert_eq!(who(3), (Value::Null, json!("prof1")), "ends_at_changed");
    assert_eq!(entries[4]["username"], "alice", "late_answer");
    assert_eq!(entries[5]["username"], "alice", "submitted");
    let mut previous = String::new();
    for entry in entries {
        let when = entry["at"].as_str().expect("an `at` time");
        invigil_protocol::Timestamp::parse(when).expect("an RFC 3339 time");
        assert!(when >= previous.as_str(), "oldest first: {audit}");
        previous = when.to_owned();
        assert!(
            !entry["detail"].as_str().expect("a detail").is_empty(),
            "{entry}"
        );
    }
}

#[tokio::test]
async fn only_the_owner_or_an_admin_may_read_the_audit_log() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let other = app.professor("prof2").await;
    let admin = app.admin().await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;

    let (admin_status, admin_view) = app.get(&admin, &at(&evaluation, "/audit")).await;
    let (other_status, other_body) = app.get(&other, &at(&evaluation, "/audit")).await;
    let (student_status, student_body) = app.get(&alice, &at(&evaluation, "/audit")).await;

    assert_eq!(admin_status, StatusCode::OK, "{admin_view}");
    assert_eq!(kinds(&admin_view), ["access_changed", "phase_changed"]);
    for (status, body) in [(other_status, other_body), (student_status, student_body)] {
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(code(&body), "forbidden");
    }
}

// ---- updates to a connected student --------------------------------------------------------

#[tokio::test]
async fn a_connected_student_is_told_when_the_phase_changes() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.evaluation(&prof, json!({})).await;
    app.set_access(&prof, &evaluation.id, &[&alice]).await;
    let (mut socket, _) = app.socket_ready(&alice).await;

    let moved = app.set_phase(&prof, &evaluation.id, "in_progress").await;

    let (seen, participation) = update(&mut socket, &evaluation, UpdateReason::PhaseChanged).await;
    assert_eq!(seen, moved, "the full evaluation, questions included");
    assert_eq!(participation.status, ParticipationStatus::NotStarted);
    assert!(participation.access);
    assert_eq!(participation.username, "alice");
}

#[tokio::test]
async fn a_connected_student_is_told_when_the_end_time_changes() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;
    app.join(&alice, &evaluation.id).await;
    let (mut socket, _) = app.socket_ready(&alice).await;

    let (status, changed) = app
        .put(
            &prof,
            &at(&evaluation, "/ends_at"),
            json!({"ends_at": FUTURE}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let (seen, participation) = update(&mut socket, &evaluation, UpdateReason::EndsAtChanged).await;
    assert_eq!(serde_json::to_value(&seen).unwrap(), changed);
    assert_eq!(participation.status, ParticipationStatus::InProgress);
}

#[tokio::test]
async fn a_connected_student_is_told_when_they_join_and_when_they_submit() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;
    let (mut socket, _) = app.socket_ready(&alice).await;

    app.join(&alice, &evaluation.id).await;
    let (joined_evaluation, joined) =
        update(&mut socket, &evaluation, UpdateReason::StatusChanged).await;
    let (status, _) = app
        .post(&alice, &at(&evaluation, "/submit"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, submitted) = update(&mut socket, &evaluation, UpdateReason::StatusChanged).await;

    assert_eq!(joined_evaluation, evaluation);
    assert_eq!(joined.status, ParticipationStatus::InProgress);
    assert_eq!(submitted.status, ParticipationStatus::Submitted);
}

#[tokio::test]
async fn a_student_removed_from_the_list_hears_nothing_more_about_the_evaluation() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let removed_from = app.running(&prof, &[&alice]).await;
    let still_on = app.running(&prof, &[&alice]).await;
    let (mut socket, _) = app.socket_ready(&alice).await;
    app.set_access(&prof, &removed_from.id, &[]).await;
    update(&mut socket, &removed_from, UpdateReason::AccessChanged).await;

    app.set_phase(&prof, &removed_from.id, "grading").await;
    app.set_phase(&prof, &still_on.id, "grading").await;

    // Events reach a socket in commit order: anything about the first change would come first.
    let next = socket
        .until(|m| matches!(m, ServerMessage::EvaluationUpdate { .. }))
        .await;
    let ServerMessage::EvaluationUpdate {
        reason, evaluation, ..
    } = next
    else {
        unreachable!("matched above")
    };
    assert_eq!(evaluation.id, still_on.id, "nothing about the hidden one");
    assert_eq!(reason, UpdateReason::PhaseChanged);
}

#[tokio::test]
async fn a_connected_student_is_told_of_changes_to_a_draft_without_its_questions() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.evaluation(&prof, json!({})).await;
    let (mut socket, _) = app.socket_ready(&alice).await;

    app.set_access(&prof, &evaluation.id, &[&alice]).await;
    let (added, _) = update(&mut socket, &evaluation, UpdateReason::AccessChanged).await;
    let (status, _) = app
        .put(
            &prof,
            &at(&evaluation, "/ends_at"),
            json!({"ends_at": FUTURE}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (changed, _) = update(&mut socket, &evaluation, UpdateReason::EndsAtChanged).await;

    for seen in [&added, &changed] {
        assert_eq!(seen.phase, Phase::Draft);
        assert!(seen.questions.is_empty(), "no questions in draft: {seen:?}");
    }
    assert_eq!(
        changed.ends_at.map(|t| t.to_string()).as_deref(),
        Some(FUTURE)
    );
}

#[tokio::test]
async fn every_connected_student_is_told_when_an_open_evaluation_changes_phase() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let bob = app.student("bob").await;
    let evaluation = app.evaluation(&prof, json!({"access": "open"})).await;
    let (mut alice_socket, _) = app.socket_ready(&alice).await;
    let (mut bob_socket, _) = app.socket_ready(&bob).await;

    app.set_phase(&prof, &evaluation.id, "in_progress").await;

    for (socket, name) in [(&mut alice_socket, "alice"), (&mut bob_socket, "bob")] {
        let (seen, participation) = update(socket, &evaluation, UpdateReason::PhaseChanged).await;
        assert_eq!(seen.phase, Phase::InProgress);
        assert_eq!(seen.questions.len(), 3);
        assert_eq!(participation.username, name);
        assert!(participation.access);
    }
}

#[tokio::test]
async fn a_student_joins_an_open_evaluation_without_being_on_any_list() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.evaluation(&prof, json!({"access": "open"})).await;
    app.set_phase(&prof, &evaluation.id, "in_progress").await;

    let (status, body) = app.post(&alice, &at(&evaluation, "/join"), json!({})).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "in_progress");
    assert_eq!(body["access"], true);
}

//! Tests: what the staff console adds — its embedded page, editing evaluations, the users list,
//! roster imports, password resets, CSV exports, audit filters, imports of the desktop app's answer
//! files, the board's added fields and message types, the Origin check on sign-in — and the
//! `users` and `evaluations` subcommands of `invigil-server`.

use crate::helpers::*;
use invigil_protocol::{
    ConsoleMessage, Evaluation, ParticipationStatus, ServerMessage, Timestamp, UpdateReason,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// An end time safely in the past.
const PAST: &str = "2000-01-01T00:00:00.000Z";

fn at(evaluation: &Evaluation, tail: &str) -> String {
    format!("/api/evaluations/{}{tail}", evaluation.id)
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

/// Sends a raw body as `actor`; returns the status, the `Content-Type` and the body text.
async fn send_raw(
    app: &TestApp,
    method: reqwest::Method,
    actor: &Actor,
    path: &str,
    body: &str,
) -> (StatusCode, String, String) {
    let response = app
        .http
        .request(method, app.url(path))
        .bearer_auth(&actor.token)
        .body(body.to_owned())
        .send()
        .await
        .expect("the server answers");
    let status = response.status();
    let kind = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, kind, response.text().await.unwrap())
}

/// A GET returning text (CSV downloads).
async fn get_text(app: &TestApp, actor: &Actor, path: &str) -> (StatusCode, String, String) {
    send_raw(app, reqwest::Method::GET, actor, path, "").await
}

/// The next console frame (skipping contract messages and heartbeats).
async fn console_message(socket: &mut Socket) -> ConsoleMessage {
    loop {
        match socket.receive_text().await {
            Some(text) => {
                if let Ok(m) = serde_json::from_str::<ConsoleMessage>(&text) {
                    return m;
                }
            }
            None => panic!("the socket closed while a console message was expected"),
        }
    }
}

// ---- The page ---------------------------------------------------------------------------------

#[tokio::test]
async fn the_console_is_served_at_the_root_with_a_strict_content_security_policy() {
    let app = TestApp::spawn().await;
    let page = app.http.get(app.url("/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let headers = page.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert!(!csp.contains("unsafe-inline"));
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<script type="module" src="/console/app.js">"#));

    let script = app
        .http
        .get(app.url("/console/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    assert_eq!(
        script.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    let etag = script.headers()["etag"].clone();
    let again = app
        .http
        .get(app.url("/console/app.js"))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

    let (status, body) = app
        .call(reqwest::Method::GET, "/console/nothing.js", None, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&body), "not_found");
}

#[tokio::test]
async fn a_sign_in_from_another_sites_page_is_refused_but_one_from_the_console_is_not() {
    let app = TestApp::spawn().await;
    let login = |origin: String| {
        app.http
            .post(app.url("/api/login"))
            .header("origin", origin)
            .json(&json!({"username": ADMIN.0, "password": ADMIN.1}))
            .send()
    };
    let foreign = login("http://evil.example".into()).await.unwrap();
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    let own = login(app.base.clone()).await.unwrap();
    assert_eq!(own.status(), StatusCode::OK);
    let cookie = own.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
}

// ---- Editing evaluations ----------------------------------------------------------------------

#[tokio::test]
async fn an_owner_edits_a_draft_and_its_questions_are_fixed_once_it_runs() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let other = app.professor("prof2").await;
    let student = app.student("alice").await;
    let evaluation = app.evaluation(&prof, json!({})).await;

    let (status, body) = app
        .call(
            reqwest::Method::PATCH,
            &at(&evaluation, ""),
            Some(&prof.token),
            Some(
                json!({"title": "  Final exam ", "ends_at": "2999-01-01T10:00:00.000Z",
                        "access": "open",
                        "questions": [{"id": "q1", "prompt": "Why?", "kind": "text"}]}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["title"], "Final exam");
    assert_eq!(body["access"], "open");
    assert_eq!(body["ends_at"], "2999-01-01T10:00:00.000Z");
    assert_eq!(body["questions"].as_array().unwrap().len(), 1);

    for (who, expected) in [
        (&other, StatusCode::FORBIDDEN),
        (&student, StatusCode::FORBIDDEN),
    ] {
        let (status, _) = app
            .call(
                reqwest::Method::PATCH,
                &at(&evaluation, ""),
                Some(&who.token),
                Some(json!({"title": "Mine"})),
            )
            .await;
        assert_eq!(status, expected);
    }
    let (status, body) = app
        .call(
            reqwest::Method::PATCH,
            &at(&evaluation, ""),
            Some(&prof.token),
            Some(json!({"questions": [{"prompt": "", "kind": "text"}]})),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    let (status, _) = app
        .call(
            reqwest::Method::PATCH,
            "/api/evaluations/nope",
            Some(&prof.token),
            Some(json!({"title": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    app.set_phase(&prof, &evaluation.id, "in_progress").await;
    let (status, body) = app
        .call(
            reqwest::Method::PATCH,
            &at(&evaluation, ""),
            Some(&prof.token),
            Some(json!({"questions": [{"id": "q1", "prompt": "Why not?", "kind": "text"}]})),
        )
        .await;
    assert_eq!((status, code(&body)), (StatusCode::CONFLICT, "conflict"));
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("only while the evaluation is a draft")
            || body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("only be changed while the evaluation is a draft"),
        "{body}"
    );
    // The same questions again, with a new end: fine.
    let (status, body) = app
        .call(
            reqwest::Method::PATCH,
            &at(&evaluation, ""),
            Some(&prof.token),
            Some(
                json!({"questions": [{"id": "q1", "prompt": "Why?", "kind": "text"}],
                        "ends_at": null}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ends_at"], Value::Null);
    let (_, audit) = app
        .get(&prof, &at(&evaluation, "/audit?kind=ends_at_changed"))
        .await;
    let details: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["detail"].as_str().unwrap())
        .collect();
    assert_eq!(details.len(), 2, "{audit}");
}

#[tokio::test]
async fn changing_the_access_mode_tells_the_students_it_concerns() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[]).await;
    let (mut socket, snapshot) = app.socket_ready(&alice).await;
    assert!(
        !snapshot
            .iter()
            .any(|m| matches!(m, ServerMessage::EvaluationUpdate { .. })),
        "not on the list: nothing to see"
    );

    let (status, _) = app
        .call(
            reqwest::Method::PATCH,
            &at(&evaluation, ""),
            Some(&prof.token),
            Some(json!({"access": "open"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    match socket
        .until(|m| matches!(m, ServerMessage::EvaluationUpdate { .. }))
        .await
    {
        ServerMessage::EvaluationUpdate {
            reason,
            evaluation: seen,
            participation,
        } => {
            assert_eq!(reason, UpdateReason::AccessChanged);
            assert_eq!(seen.id, evaluation.id);
            assert!(participation.access);
        }
        other => panic!("{other:?}"),
    }
    app.join(&alice, &evaluation.id).await;

    let (status, _) = app
        .call(
            reqwest::Method::PATCH,
            &at(&evaluation, ""),
            Some(&prof.token),
            Some(json!({"access": "list"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    match socket
        .until(|m| {
            matches!(m, ServerMessage::EvaluationUpdate { reason: UpdateReason::AccessChanged, participation, .. }
            if !participation.access)
        })
        .await
    {
        ServerMessage::EvaluationUpdate { participation, .. } => {
            assert_eq!(participation.status, ParticipationStatus::InProgress)
        }
        other => panic!("{other:?}"),
    }
    let (_, audit) = app
        .get(&prof, &at(&evaluation, "/audit?kind=access_changed"))
        .await;
    assert_eq!(audit.as_array().unwrap().len(), 2, "{audit}");
}

// ---- The board's additions --------------------------------------------------------------------

#[tokio::test]
async fn staff_who_ask_for_additions_hear_of_edits_and_of_rows_leaving_the_board() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let bob = app.student("bob").await;
    let evaluation = app.running(&prof, &[&alice, &bob]).await;
    let mut console = app.console_socket(&prof).await;
    // Another session of the same professor (one socket per session).
    let elsewhere = app.login("prof1", PASSWORD).await;
    let (mut plain, _) = app.socket_ready(&elsewhere).await;

    let (status, _) = app
        .call(
            reqwest::Method::PATCH,
            &at(&evaluation, ""),
            Some(&prof.token),
            Some(json!({"title": "Renamed"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    match console_message(&mut console).await {
        ConsoleMessage::EvaluationChanged { evaluation: e } => assert_eq!(e.title, "Renamed"),
        other => panic!("{other:?}"),
    }

    app.set_access(&prof, &evaluation.id, &[&alice]).await;
    match console_message(&mut console).await {
        ConsoleMessage::ParticipantRemoved {
            evaluation_id,
            username,
        } => {
            assert_eq!(evaluation_id, evaluation.id);
            assert_eq!(username, "bob");
        }
        other => panic!("{other:?}"),
    }

    // A socket that did not ask never receives them: the next frame after a join is the row.
    app.join(&alice, &evaluation.id).await;
    let next = plain.next().await;
    assert!(
        matches!(&next, ServerMessage::ParticipantUpdate { participant, .. } if participant.username == "alice"),
        "{next:?}"
    );
}

#[tokio::test]
async fn the_board_counts_late_answers_and_tells_since_when_a_student_is_lost() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;
    app.join(&alice, &evaluation.id).await;
    let (mut board, _) = app.socket_ready(&prof).await;
    let (mut student, _) = app.socket_ready(&alice).await;
    student.save(&evaluation.id, "q1", 1, "on time").await;
    student.ack("q1").await;
    let (status, _) = app
        .put(
            &prof,
            &at(&evaluation, "/ends_at"),
            json!({"ends_at": PAST}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    student.save(&evaluation.id, "q1", 2, "late").await;
    student.ack("q1").await;
    let row = board
        .until(|m| matches!(m, ServerMessage::ParticipantUpdate { participant, .. } if participant.late_answers == 1))
        .await;
    let ServerMessage::ParticipantUpdate { participant, .. } = row else {
        unreachable!()
    };
    assert_eq!(participant.answered, 1);
    assert!(participant.connected);
    assert_eq!(participant.disconnected_since, None);

    student.close().await;
    let row = board
        .until(|m| matches!(m, ServerMessage::ParticipantUpdate { participant, .. } if !participant.connected))
        .await;
    let ServerMessage::ParticipantUpdate { participant, .. } = row else {
        unreachable!()
    };
    assert!(participant.disconnected_since.is_some(), "{participant:?}");
    let (_, rows) = app.get(&prof, &at(&evaluation, "/participants")).await;
    assert_eq!(rows[0]["late_answers"], 1);
    assert!(rows[0]["disconnected_since"].is_string(), "{rows}");
}

// ---- Users ------------------------------------------------------------------------------------

#[tokio::test]
async fn admins_list_every_user_with_their_live_sessions_and_nobody_else_may() {
    let mut app = TestApp::spawn().await;
    let admin = app.admin().await;
    let prof = app.professor("prof1").await;
    app.student("alice").await;
    app.login("alice", PASSWORD).await;
    let (status, body) = app.get(&admin, "/api/users").await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["admin", "alice", "prof1"]);
    let alice = &body[1];
    assert_eq!(alice["role"], "student");
    assert_eq!(alice["active_sessions"], 1, "a student holds one session");
    let (status, body) = app.get(&prof, "/api/users").await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));
}

#[tokio::test]
async fn a_roster_import_creates_every_student_or_none_and_names_each_faulty_line() {
    let mut app = TestApp::spawn().await;
    let admin = app.admin().await;
    let prof = app.professor("prof1").await;
    app.student("taken").await;

    let bad =
        "username,display_name,password\ncarol,Carol,pw\nbad name,B,pw\ntaken,T,pw\ncarol,C,pw\n";
    let (status, _, body) = send_raw(
        &app,
        reqwest::Method::POST,
        &admin,
        "/api/users/import",
        bad,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(code(&body), "bad_request");
    let lines: Vec<u64> = body["error"]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, vec![3, 5], "format errors first: {body}");
    let (_, users) = app.get(&admin, "/api/users").await;
    assert_eq!(users.as_array().unwrap().len(), 3, "nothing was created");

    let taken = "username,display_name,password\ncarol,Carol,pw\ntaken,T,pw\n";
    let (status, _, body) = send_raw(
        &app,
        reqwest::Method::POST,
        &admin,
        "/api/users/import",
        taken,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.contains("already taken") && body.contains("\"line\":3"),
        "{body}"
    );

    let good = "username,password,display_name\ncarol,pw-c,Carol King\ndave,pw-d,\n";
    let (status, _, body) = send_raw(
        &app,
        reqwest::Method::POST,
        &prof,
        "/api/users/import",
        good,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _, body) = send_raw(
        &app,
        reqwest::Method::POST,
        &admin,
        "/api/users/import",
        good,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["created"][0]["display_name"], "Carol King");
    assert_eq!(body["created"][1]["display_name"], "dave");
    assert_eq!(body["created"][1]["role"], "student");
    app.login("dave", "pw-d").await;
}

#[tokio::test]
async fn a_password_reset_ends_the_users_sessions_unless_asked_not_to() {
    let mut app = TestApp::spawn().await;
    let admin = app.admin().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let (mut socket, _) = app.socket_ready(&alice).await;

    let (status, body) = app
        .post(
            &admin,
            "/api/users/alice/password",
            json!({"password": "new-pw"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"username": "alice", "revoked_sessions": 1}));
    assert!(matches!(
        socket
            .until(|m| matches!(m, ServerMessage::SessionInvalidated { .. }))
            .await,
        ServerMessage::SessionInvalidated { .. }
    ));
    let (status, body) = app.get(&alice, "/api/me").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "session_invalidated")
    );
    let again = app.login("alice", "new-pw").await;

    let (status, body) = app
        .post(
            &admin,
            "/api/users/alice/password",
            json!({"password": "third-pw", "revoke_sessions": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["revoked_sessions"], 0);
    assert_eq!(app.get(&again, "/api/me").await.0, StatusCode::OK);
    app.login("alice", "third-pw").await;

    let (status, _) = app
        .post(
            &admin,
            "/api/users/nobody/password",
            json!({"password": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .post(&admin, "/api/users/alice/password", json!({"password": ""}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = app
        .post(&prof, "/api/users/alice/password", json!({"password": "x"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

// ---- Exports and audit filters ----------------------------------------------------------------

#[tokio::test]
async fn the_answers_export_has_a_row_per_participant_and_question_with_late_marks() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let bob = app.student("bob").await;
    let evaluation = app.running(&prof, &[&alice, &bob]).await;
    app.join(&alice, &evaluation.id).await;
    let q1 = at(&evaluation, "/answers/q1");
    let save = |revision: u64, content: &str| {
        app.put(
            &alice,
            &q1,
            json!({"revision": revision, "content": content}),
        )
    };
    assert_eq!(save(1, "=1+1, on time").await.0, StatusCode::OK);
    app.put(
        &prof,
        &at(&evaluation, "/ends_at"),
        json!({"ends_at": PAST}),
    )
    .await;
    assert_eq!(save(2, "late, line 1\nline 2").await.0, StatusCode::OK);

    let (status, kind, csv) = get_text(&app, &prof, &at(&evaluation, "/exports/answers.csv")).await;
    assert_eq!(status, StatusCode::OK, "{csv}");
    assert_eq!(kind, "text/csv; charset=utf-8");
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "username,display_name,status,question_id,question_kind,revision,saved_at,late,content,\
         on_time_revision,on_time_saved_at,on_time_content,source,integrity_events,focus_lost,\
         brief_absences,away_ms,longest_away_ms"
    );
    assert_eq!(csv.matches("\nalice,").count(), 3, "{csv}");
    assert_eq!(csv.matches("\nbob,").count(), 3, "{csv}");
    assert!(
        csv.contains(",true,\"late, line 1\nline 2\",1,"),
        "the late revision with the on-time one beside it: {csv}"
    );
    assert!(
        csv.contains(",\"'=1+1, on time\","),
        "formulas are defused: {csv}"
    );
    assert!(
        csv.contains("\nbob,bob,not_started,q1,text,,,,,,,,,0,0,0,0,0\n"),
        "{csv}"
    );

    let other = app.professor("prof2").await;
    let (status, _, _) = get_text(&app, &other, &at(&evaluation, "/exports/answers.csv")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_audit_log_filters_by_kind_student_actor_and_time_and_exports_as_csv() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;
    app.join(&alice, &evaluation.id).await;

    let (_, joined) = app.get(&prof, &at(&evaluation, "/audit?kind=joined")).await;
    assert_eq!(joined.as_array().unwrap().len(), 1);
    assert_eq!(joined[0]["username"], "alice");
    let (_, by_prof) = app.get(&prof, &at(&evaluation, "/audit?actor=prof1")).await;
    assert!(
        by_prof
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["actor"] == "prof1")
    );
    let (_, none) = app
        .get(
            &prof,
            &at(&evaluation, "/audit?since=2999-01-01T00:00:00.000Z"),
        )
        .await;
    assert_eq!(none, json!([]));
    let (status, body) = app
        .get(&prof, &at(&evaluation, "/audit?since=yesterday"))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "bad_request")
    );

    let (status, kind, csv) = get_text(
        &app,
        &prof,
        &at(&evaluation, "/exports/audit.csv?username=alice"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(kind, "text/csv; charset=utf-8");
    let mut lines = csv.lines();
    assert_eq!(lines.next().unwrap(), "at,kind,username,actor,detail");
    let rows: Vec<&str> = lines.collect();
    assert!(
        rows.iter().all(|r| r.split(',').nth(2) == Some("alice")),
        "{csv}"
    );
    assert!(
        rows.iter().any(|r| r.contains(",joined,alice,alice,")),
        "{csv}"
    );
}

// ---- Importing the desktop app's answer files ---------------------------------------------------

/// An answers file exported now (answers written at 09:00 on 2026-11-22 unless they say).
fn export_file(evaluation: &str, answers: Value) -> String {
    export_file_at(evaluation, answers, json!(Timestamp::now()))
}

/// An answers file exported at `exported_at`.
fn export_file_at(evaluation: &str, answers: Value, exported_at: Value) -> String {
    json!({
        "format": "invigil-answers-export", "version": 1,
        "exported_at": exported_at, "server_url": "http://127.0.0.1:8080",
        "username": "alice", "device": "Lab PC 12", "session_ended": "signed_in_elsewhere",
        "answers": answers.as_array().unwrap().iter().map(|a| {
            let mut a = a.clone();
            if a.get("evaluation_id").is_none() { a["evaluation_id"] = json!(evaluation); }
            a["edited_at"] = a.get("edited_at").cloned().unwrap_or(json!("2026-11-22T09:00:00.000Z"));
            a["acknowledged_revision"] = json!(0);
            a["rejected"] = Value::Null;
            a
        }).collect::<Vec<_>>()
    })
    .to_string()
}

#[tokio::test]
async fn an_imported_answer_file_stores_only_newer_revisions_marked_with_their_source() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;
    app.join(&alice, &evaluation.id).await;
    let (status, _) = app
        .put(
            &alice,
            &at(&evaluation, "/answers/q1"),
            json!({"revision": 3, "content": "from the server"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // Written on the device while the evaluation ran: the moment of that save is such a time (a
    // fixed date would fall before the start, and so be late, once it is in the past).
    let (_, answers) = app
        .get(&prof, &at(&evaluation, "/students/alice/answers"))
        .await;
    let while_running = answers[0]["saved_at"].clone();
    let (mut board, _) = app.socket_ready(&prof).await;

    let file = export_file(
        &evaluation.id,
        json!([
            {"question_id": "q1", "revision": 2, "content": "older"},
            {"question_id": "q2", "revision": 4, "content": "fn search() {}", "edited_at": while_running},
            {"question_id": "q2", "revision": 1, "content": "superseded"},
            {"question_id": "q9", "revision": 1, "content": "no such question"},
            {"evaluation_id": "elsewhere", "question_id": "q1", "revision": 9, "content": "x"}
        ]),
    );
    let path = at(&evaluation, "/imports/answers");
    let (status, _, body) = send_raw(&app, reqwest::Method::POST, &prof, &path, &file).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["username"], "alice");
    assert_eq!(report["device"], "Lab PC 12");
    assert_eq!(
        report["stored"],
        json!([{"question_id": "q2", "revision": 4, "late": false}])
    );
    let skipped: Vec<(String, u64)> = report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["question_id"].as_str().unwrap().to_owned(),
                s["revision"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(skipped.len(), 4, "{report}");
    for expected in [("q1", 2), ("q2", 1), ("q9", 1), ("q1", 9)] {
        assert!(
            skipped.contains(&(expected.0.to_owned(), expected.1)),
            "{expected:?} in {report}"
        );
    }

    let (_, answers) = app
        .get(&prof, &at(&evaluation, "/students/alice/answers"))
        .await;
    let q1 = answers
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["question_id"] == "q1")
        .unwrap();
    let q2 = answers
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["question_id"] == "q2")
        .unwrap();
    assert_eq!(q1["content"], "from the server");
    assert_eq!(q1["source"], Value::Null);
    assert_eq!(q2["revision"], 4);
    let source = q2["source"].as_str().unwrap();
    assert!(
        source.starts_with("imported from device \"Lab PC 12\" by prof1 at "),
        "{source}"
    );
    let row = board
        .until(|m| matches!(m, ServerMessage::ParticipantUpdate { participant, .. } if participant.answered == 2))
        .await;
    assert!(matches!(row, ServerMessage::ParticipantUpdate { .. }));
    let (_, audit) = app
        .get(&prof, &at(&evaluation, "/audit?kind=answer_imported"))
        .await;
    assert_eq!(audit.as_array().unwrap().len(), 1);
    assert_eq!(audit[0]["actor"], "prof1");
    assert_eq!(audit[0]["username"], "alice");

    // Again: nothing is newer now.
    let (_, _, body) = send_raw(&app, reqwest::Method::POST, &prof, &path, &file).await;
    let again: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(again["stored"], json!([]));

    // The student's own newer save clears the source.
    app.put(
        &alice,
        &at(&evaluation, "/answers/q2"),
        json!({"revision": 5, "content": "mine"}),
    )
    .await;
    let (_, answers) = app
        .get(&prof, &at(&evaluation, "/students/alice/answers"))
        .await;
    assert_eq!(answers[1]["source"], Value::Null);
}

#[tokio::test]
async fn imported_answers_are_late_when_written_after_the_end_and_keep_the_on_time_one() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;
    app.join(&alice, &evaluation.id).await;
    app.put(
        &alice,
        &at(&evaluation, "/answers/q1"),
        json!({"revision": 1, "content": "on time"}),
    )
    .await;
    // The end is the moment of that save (a server time, after the start): an answer written then
    // is on time, one written at the import (clamped from the device's far-off clock) is late.
    let (_, answers) = app
        .get(&prof, &at(&evaluation, "/students/alice/answers"))
        .await;
    let end = answers[0]["saved_at"].clone();
    let (status, _) = app
        .put(&prof, &at(&evaluation, "/ends_at"), json!({"ends_at": end}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let file = export_file(
        &evaluation.id,
        json!([
            {"question_id": "q1", "revision": 2, "content": "after the end", "edited_at": "2999-01-01T10:30:00.000Z"},
            {"question_id": "q3", "revision": 1, "content": "b", "edited_at": end}
        ]),
    );
    let (status, _, body) = send_raw(
        &app,
        reqwest::Method::POST,
        &prof,
        &at(&evaluation, "/imports/answers"),
        &file,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        report["stored"],
        json!([{"question_id": "q1", "revision": 2, "late": true},
               {"question_id": "q3", "revision": 1, "late": false}])
    );
    let (_, answers) = app
        .get(&prof, &at(&evaluation, "/students/alice/answers"))
        .await;
    assert_eq!(answers[0]["late"], true);
    assert_eq!(answers[0]["on_time"]["content"], "on time");
}

#[tokio::test]
async fn an_import_is_refused_for_a_bad_file_or_a_stranger_and_skips_a_student_who_never_joined() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let other = app.professor("prof2").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;
    let path = at(&evaluation, "/imports/answers");
    let file = export_file(
        &evaluation.id,
        json!([{"question_id": "q1", "revision": 1, "content": "x"}]),
    );

    let (status, _, body) = send_raw(&app, reqwest::Method::POST, &prof, &path, &file).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["stored"], json!([]));
    assert!(
        report["skipped"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("never joined")
    );

    let (status, _, _) = send_raw(&app, reqwest::Method::POST, &other, &path, &file).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, body) = send_raw(
        &app,
        reqwest::Method::POST,
        &prof,
        &path,
        "{\"format\": \"zip\"}",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let stranger = file.replace("\"alice\"", "\"mallory\"");
    let (status, _, body) = send_raw(&app, reqwest::Method::POST, &prof, &path, &stranger).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("mallory"));
}

/// The import of `file` into `evaluation`, with `query` (`""` or `?override=…`): status and body.
async fn import(
    app: &TestApp,
    prof: &Actor,
    evaluation: &Evaluation,
    query: &str,
    file: &str,
) -> (StatusCode, Value) {
    let path = at(evaluation, &format!("/imports/answers{query}"));
    let (status, _, body) = send_raw(app, reqwest::Method::POST, prof, &path, file).await;
    (status, serde_json::from_str(&body).unwrap())
}

#[tokio::test]
async fn an_import_for_a_blocked_or_handed_in_student_needs_an_override_which_is_audited() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let bob = app.student("bob").await;
    let evaluation = app.running(&prof, &[&alice, &bob]).await;
    app.join(&alice, &evaluation.id).await;
    app.join(&bob, &evaluation.id).await;
    // Alice signs in again while sitting it: blocked. Bob hands in.
    app.login("alice", PASSWORD).await;
    let (status, _) = app.post(&bob, &at(&evaluation, "/submit"), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let alice_file = export_file(
        &evaluation.id,
        json!([{"question_id": "q1", "revision": 1, "content": "written while blocked"}]),
    );
    let bob_file = alice_file.replace("\"alice\"", "\"bob\"");

    // Refused without an override, with the code the student's own save gets; nothing stored.
    let (status, body) = import(&app, &prof, &evaluation, "", &alice_file).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::LOCKED, "blocked"),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("override")
    );
    let (status, body) = import(&app, &prof, &evaluation, "", &bob_file).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "not_participating"),
        "{body}"
    );
    for student in ["alice", "bob"] {
        let (_, answers) = app
            .get(
                &prof,
                &at(&evaluation, &format!("/students/{student}/answers")),
            )
            .await;
        assert_eq!(answers, json!([]), "{student}");
    }

    // An override needs a reason.
    for empty in ["?override=", "?override=%20%20"] {
        let (status, body) = import(&app, &prof, &evaluation, empty, &alice_file).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, "bad_request")
        );
    }
    let long = format!("?override={}", "x".repeat(1001));
    let (status, _) = import(&app, &prof, &evaluation, &long, &alice_file).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // With one, the answers are stored, and the audit log says who overrode and why.
    let (status, report) = import(
        &app,
        &prof,
        &evaluation,
        "?override=identity%20checked%20at%20the%20desk",
        &alice_file,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["stored"][0]["question_id"], "q1");
    let (status, report) =
        import(&app, &prof, &evaluation, "?override=late%20bus", &bob_file).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["stored"][0]["question_id"], "q1");
    let (_, audit) = app
        .get(&prof, &at(&evaluation, "/audit?kind=import_overridden"))
        .await;
    let audit = audit.as_array().unwrap();
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert_eq!(
        (&audit[0]["username"], &audit[0]["actor"]),
        (&json!("alice"), &json!("prof1"))
    );
    let detail = audit[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("is blocked") && detail.ends_with("Reason: identity checked at the desk"),
        "{detail}"
    );
    let detail = audit[1]["detail"].as_str().unwrap();
    assert!(
        detail.contains("has handed in") && detail.ends_with("Reason: late bus"),
        "{detail}"
    );
}

#[tokio::test]
async fn an_imported_answer_counts_as_written_no_earlier_than_the_block_before_the_export() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;
    app.join(&alice, &evaluation.id).await;
    let (status, _) = app
        .put(
            &alice,
            &at(&evaluation, "/answers/q1"),
            json!({"revision": 1, "content": "on time"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // `written` is a server time while the evaluation ran; the block comes after it (the second
    // sign-in starts once the save is answered); the end is then set back to `written`, so that
    // an answer written at `written` is on time and one written at the block is late.
    let (_, answers) = app
        .get(&prof, &at(&evaluation, "/students/alice/answers"))
        .await;
    let written = answers[0]["saved_at"].clone();
    app.login("alice", PASSWORD).await;
    let (status, _) = app
        .put(
            &prof,
            &at(&evaluation, "/ends_at"),
            json!({"ends_at": written}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let override_ = "?override=checked";

    // Exported after the block: the file's edit time cannot reach back before it.
    let after_block = export_file(
        &evaluation.id,
        json!([{"question_id": "q2", "revision": 1, "content": "x", "edited_at": written}]),
    );
    let (status, report) = import(&app, &prof, &evaluation, override_, &after_block).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        report["stored"],
        json!([{"question_id": "q2", "revision": 1, "late": true}])
    );
    let (_, audit) = app
        .get(&prof, &at(&evaluation, "/audit?kind=answer_imported"))
        .await;
    let detail = audit[0]["detail"].as_str().unwrap();
    assert!(detail.contains("It counts as written at"), "{detail}");

    // Exported before the block (at `written`): no block precedes it, the edit time stands.
    let before_block = export_file_at(
        &evaluation.id,
        json!([{"question_id": "q3", "revision": 1, "content": "b", "edited_at": written}]),
        written.clone(),
    );
    let (status, report) = import(&app, &prof, &evaluation, override_, &before_block).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        report["stored"],
        json!([{"question_id": "q3", "revision": 1, "late": false}])
    );
    // And an edit time after the export counts as the export's.
    let claimed_later = export_file_at(
        &evaluation.id,
        json!([{"question_id": "q1", "revision": 2, "content": "c", "edited_at": "2999-01-01T00:00:00.000Z"}]),
        written,
    );
    let (status, report) = import(&app, &prof, &evaluation, override_, &claimed_later).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        report["stored"],
        json!([{"question_id": "q1", "revision": 2, "late": false}])
    );
}

// ---- The command line -------------------------------------------------------------------------

/// Runs `invigil-server ARGS --database <the app's database>`, with `stdin`; returns whether it
/// succeeded, its stdout and its stderr.
async fn cli(app: &TestApp, args: &[&str], stdin: &str) -> (bool, String, String) {
    use tokio::io::AsyncWriteExt as _;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_invigil-server"))
        .args(args)
        .arg("--database")
        .arg(app.database_url())
        .env_remove("INVIGIL_DATABASE_URL")
        .env_remove("INVIGIL_BOOTSTRAP_ADMIN")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the command starts");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("the command ends in time")
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test]
async fn the_users_subcommands_create_import_list_reset_and_revoke() {
    let mut app = TestApp::spawn().await;
    app.admin().await;

    let (ok, out, err) = cli(
        &app,
        &[
            "users",
            "create",
            "prof1",
            "--role",
            "professor",
            "--display-name",
            "Prof One",
            "--password-stdin",
        ],
        "prof-pw\n",
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(out, "created prof1 (professor)\n");
    app.login("prof1", "prof-pw").await;
    let (ok, _, err) = cli(&app, &["users", "create", "prof1", "--password", "x"], "").await;
    assert!(!ok);
    assert!(err.contains("already taken"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let roster = dir.path().join("students.csv");
    std::fs::write(
        &roster,
        "username,display_name,password\ncarol,Carol,pw\nbad name,X,pw\n",
    )
    .unwrap();
    let (ok, _, err) = cli(&app, &["users", "import", roster.to_str().unwrap()], "").await;
    assert!(!ok, "a faulty roster fails");
    assert!(err.contains("students.csv:3: "), "{err}");
    let (ok, out, err) = cli(
        &app,
        &["users", "import", "-"],
        "username,display_name,password\ncarol,Carol King,pw-c\ndave,,pw-d\n",
    )
    .await;
    assert!(ok, "{err}");
    assert!(out.ends_with("2 students created\n"), "{out}");
    let carol = app.login("carol", "pw-c").await;

    let (ok, out, _) = cli(&app, &["users", "list", "--role", "student"], "").await;
    assert!(ok);
    assert_eq!(
        out,
        "carol\tstudent\t1\tCarol King\ndave\tstudent\t0\tdave\n"
    );

    let (ok, out, err) = cli(&app, &["users", "reset-password", "carol"], "").await;
    assert!(ok, "{err}");
    let generated = out
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .expect("a generated password is printed");
    assert!(
        out.starts_with("password of carol reset; 1 sessions ended\n"),
        "{out}"
    );
    assert_eq!(app.get(&carol, "/api/me").await.0, StatusCode::UNAUTHORIZED);
    let carol = app.login("carol", generated).await;

    let (ok, out, _) = cli(&app, &["users", "revoke", "carol"], "").await;
    assert!(ok);
    assert_eq!(out, "1 sessions of carol ended\n");
    assert_eq!(app.get(&carol, "/api/me").await.0, StatusCode::UNAUTHORIZED);
    let (ok, _, err) = cli(&app, &["users", "revoke", "nobody"], "").await;
    assert!(!ok);
    assert!(err.contains("no user `nobody`"), "{err}");
}

#[tokio::test]
async fn the_evaluations_subcommands_list_export_unblock_and_import() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    app.professor("prof2").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;
    app.join(&alice, &evaluation.id).await;
    app.put(
        &alice,
        &at(&evaluation, "/answers/q1"),
        json!({"revision": 1, "content": "hello"}),
    )
    .await;
    let again = app.login("alice", PASSWORD).await; // a second sign-in: blocked

    let (ok, out, _) = cli(&app, &["evaluations", "list"], "").await;
    assert!(ok);
    assert_eq!(
        out,
        format!(
            "{}\tin_progress\tprof1\t-\tAlgorithms midterm\n",
            evaluation.id
        )
    );

    let (ok, csv, _) = cli(&app, &["evaluations", "export-answers", &evaluation.id], "").await;
    assert!(ok);
    assert!(csv.contains("\nalice,alice,blocked,q1,text,1,"), "{csv}");
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.csv");
    let (ok, _, _) = cli(
        &app,
        &[
            "evaluations",
            "export-audit",
            &evaluation.id,
            "-o",
            audit.to_str().unwrap(),
        ],
        "",
    )
    .await;
    assert!(ok);
    assert!(
        std::fs::read_to_string(&audit)
            .unwrap()
            .contains(",blocked,alice,")
    );

    let (ok, _, err) = cli(
        &app,
        &[
            "evaluations",
            "unblock",
            &evaluation.id,
            "alice",
            "--as",
            "prof2",
        ],
        "",
    )
    .await;
    assert!(!ok, "prof2 neither owns it nor is an admin");
    assert!(err.contains("neither the owner"), "{err}");
    let (ok, out, err) = cli(
        &app,
        &[
            "evaluations",
            "unblock",
            &evaluation.id,
            "alice",
            "--as",
            "prof1",
            "--note",
            "checked",
        ],
        "",
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(out, "alice is in_progress again\n");
    let (_, log) = app
        .get(&prof, &at(&evaluation, "/audit?kind=unblocked"))
        .await;
    assert_eq!(log[0]["detail"], "Unblocked by prof1: checked");

    let file = export_file(
        &evaluation.id,
        json!([{"question_id": "q2", "revision": 1, "content": "imported"}]),
    );
    let (ok, out, err) = cli(
        &app,
        &[
            "evaluations",
            "import-answers",
            &evaluation.id,
            "-",
            "--as",
            "admin",
        ],
        &file,
    )
    .await;
    assert!(ok, "{err}");
    assert!(
        out.ends_with("1 answers of alice stored, 0 skipped\n"),
        "{out}"
    );

    // Once she has handed in, only an override imports her file.
    let (status, body) = app
        .post(&again, &at(&evaluation, "/submit"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let file = export_file(
        &evaluation.id,
        json!([{"question_id": "q2", "revision": 2, "content": "imported again"}]),
    );
    let args: [&str; 6] = [
        "evaluations",
        "import-answers",
        &evaluation.id,
        "-",
        "--as",
        "admin",
    ];
    let (ok, _, err) = cli(&app, &args, &file).await;
    assert!(!ok);
    assert!(
        err.contains("has handed in") && err.contains("override"),
        "{err}"
    );
    let overriding: Vec<&str> = args
        .iter()
        .copied()
        .chain(["--override", "the lab's file"])
        .collect();
    let (ok, out, err) = cli(&app, &overriding, &file).await;
    assert!(ok, "{err}");
    assert!(
        out.ends_with("1 answers of alice stored, 0 skipped\n"),
        "{out}"
    );

    let (ok, _, err) = cli(&app, &["evaluations", "export-answers", "nope"], "").await;
    assert!(!ok);
    assert!(err.contains("no evaluation `nope`"), "{err}");
}

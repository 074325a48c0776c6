//! Tests: proctoring on the server (contract v2, "Proctoring"): the settings of an evaluation at
//! creation and by `PATCH`, with their audit entry and push; integrity events over the socket and
//! HTTP, stored once per `event_id` and acknowledged once durable, refused with the contract's
//! codes; the board's `integrity` summary pushed on each event; the events in the exports.

use crate::helpers::*;
use invigil_protocol::{
    AuditEntry, AuditKind, CapabilityLevel, ClientMessage, ErrorCode, Evaluation, IntegrityEvent,
    IntegrityKind, IntegrityRejectCode, Participant, Proctoring, ServerMessage, Timestamp,
    UpdateReason,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn patch(app: &TestApp, actor: &Actor, evaluation: &str, body: Value) -> (StatusCode, Value) {
    app.call(
        Method::PATCH,
        &format!("/api/evaluations/{evaluation}"),
        Some(&actor.token),
        Some(body),
    )
    .await
}

async fn audit(app: &TestApp, owner: &Actor, evaluation: &str) -> Vec<AuditEntry> {
    let (status, body) = app
        .get(owner, &format!("/api/evaluations/{evaluation}/audit"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_value(body).unwrap()
}

async fn participants(app: &TestApp, owner: &Actor, evaluation: &str) -> Vec<Participant> {
    let (status, body) = app
        .get(
            owner,
            &format!("/api/evaluations/{evaluation}/participants"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_value(body).unwrap()
}

/// An event of `kind` with a fresh id and the fields its kind carries.
fn event(evaluation: &str, kind: IntegrityKind) -> IntegrityEvent {
    IntegrityEvent {
        evaluation_id: evaluation.to_owned(),
        event_id: uuid::Uuid::new_v4().to_string(),
        kind,
        at: Timestamp::now(),
        away_ms: (kind == IntegrityKind::FocusRegained).then_some(1000),
        displays: (kind == IntegrityKind::DisplaysChanged).then_some(1),
        capabilities: (kind == IntegrityKind::Capabilities).then(Default::default),
        detail: None,
    }
}

/// Sends an event on the socket and returns the server's answer to it (ACK, REJECTED or ERROR).
async fn report(socket: &mut Socket, event: &IntegrityEvent) -> ServerMessage {
    socket
        .send(&ClientMessage::IntegrityEvent(event.clone()))
        .await;
    socket
        .until(|m| {
            matches!(
                m,
                ServerMessage::IntegrityAck(_)
                    | ServerMessage::IntegrityRejected(_)
                    | ServerMessage::Error { .. }
            )
        })
        .await
}

fn integrity_entries(entries: &[AuditEntry]) -> Vec<&AuditEntry> {
    entries
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                AuditKind::FocusLost
                    | AuditKind::FocusRegained
                    | AuditKind::FullscreenExited
                    | AuditKind::ClipboardBlocked
                    | AuditKind::DisplaysChanged
                    | AuditKind::AppRestarted
                    | AuditKind::Capabilities
            )
        })
        .collect()
}

#[tokio::test]
async fn settings_are_given_at_creation_changed_by_patch_audited_and_pushed_to_students() {
    // Arrange: an evaluation created with one switch on, its student connected.
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let created = app
        .evaluation(&prof, json!({"proctoring": {"report_focus": true}}))
        .await;
    assert_eq!(
        created.proctoring,
        Proctoring {
            report_focus: true,
            ..Proctoring::default()
        }
    );
    app.set_access(&prof, &created.id, &[&alice]).await;
    let running = app.set_phase(&prof, &created.id, "in_progress").await;
    assert!(
        running.proctoring.report_focus,
        "kept across a phase change"
    );
    let (mut socket, snapshot) = app.socket_ready(&alice).await;
    assert!(
        snapshot.iter().any(|m| matches!(m,
            ServerMessage::EvaluationUpdate { evaluation, .. } if evaluation.proctoring.report_focus)),
        "the student's snapshot carries the settings: {snapshot:?}"
    );

    // Act: the owner turns fullscreen on and changes brief_ms; absent keys keep their value.
    let (status, body) = patch(
        &app,
        &prof,
        &created.id,
        json!({"proctoring": {"fullscreen": true, "brief_ms": 3000}}),
    )
    .await;

    // Assert
    assert_eq!(status, StatusCode::OK, "{body}");
    let expected = Proctoring {
        fullscreen: true,
        report_focus: true,
        brief_ms: 3000,
        ..Proctoring::default()
    };
    let edited: Evaluation = serde_json::from_value(body).unwrap();
    assert_eq!(edited.proctoring, expected);
    let update = socket
        .until(|m| matches!(m, ServerMessage::EvaluationUpdate { .. }))
        .await;
    match update {
        ServerMessage::EvaluationUpdate {
            reason, evaluation, ..
        } => {
            assert_eq!(reason, UpdateReason::ProctoringChanged);
            assert_eq!(evaluation.proctoring, expected);
        }
        other => panic!("{other:?}"),
    }
    let (_, read) = app
        .get(&alice, &format!("/api/evaluations/{}", created.id))
        .await;
    assert_eq!(read["proctoring"]["brief_ms"], 3000, "{read}");
    let (_, listed) = app.get(&prof, "/api/evaluations").await;
    assert_eq!(listed[0]["proctoring"]["fullscreen"], true, "{listed}");
    let changes: Vec<AuditEntry> = audit(&app, &prof, &created.id)
        .await
        .into_iter()
        .filter(|e| e.kind == AuditKind::ProctoringChanged)
        .collect();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].actor.as_deref(), Some("prof1"));
    assert_eq!(changes[0].username, None);
    assert!(
        changes[0].detail.contains("fullscreen off → on")
            && changes[0].detail.contains("brief_ms 2000 → 3000"),
        "{}",
        changes[0].detail
    );

    // The same settings again change nothing and record nothing.
    let (status, _) = patch(
        &app,
        &prof,
        &created.id,
        json!({"proctoring": {"fullscreen": true}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let changes = audit(&app, &prof, &created.id).await;
    assert_eq!(
        changes
            .iter()
            .filter(|e| e.kind == AuditKind::ProctoringChanged)
            .count(),
        1
    );
}

#[tokio::test]
async fn bad_settings_are_refused_with_a_clear_error_and_change_nothing() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let other = app.professor("prof2").await;
    let evaluation = app.evaluation(&prof, json!({})).await;
    assert_eq!(evaluation.proctoring, Proctoring::default());

    let (status, body) = patch(
        &app,
        &prof,
        &evaluation.id,
        json!({"proctoring": {"brief_ms": 600_001}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "bad_request");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("brief_ms"),
        "{body}"
    );
    let (status, body) = patch(
        &app,
        &prof,
        &evaluation.id,
        json!({"proctoring": {"fullscreen": "yes"}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = app
        .post(
            &prof,
            "/api/evaluations",
            json!({"title": "Quiz", "questions": [], "proctoring": {"brief_ms": -1}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = patch(
        &app,
        &other,
        &evaluation.id,
        json!({"proctoring": {"fullscreen": true}}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (_, read) = app
        .get(&prof, &format!("/api/evaluations/{}", evaluation.id))
        .await;
    let stored: Evaluation = serde_json::from_value(read).unwrap();
    assert_eq!(stored.proctoring, Proctoring::default());
    assert!(
        !audit(&app, &prof, &evaluation.id)
            .await
            .iter()
            .any(|e| e.kind == AuditKind::ProctoringChanged)
    );
}

#[tokio::test]
async fn an_event_is_acknowledged_once_stored_and_a_repeat_is_acknowledged_and_stored_once() {
    // Arrange
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;
    app.join(&alice, &evaluation.id).await;
    let (mut socket, _) = app.socket_ready(&alice).await;
    let lost = IntegrityEvent {
        detail: Some("switched to another program".into()),
        ..event(&evaluation.id, IntegrityKind::FocusLost)
    };

    // Act: the event, the same again on the socket, then over HTTP.
    let first = report(&mut socket, &lost).await;
    let again = report(&mut socket, &lost).await;
    let (status, body) = app
        .post(
            &alice,
            &format!("/api/evaluations/{}/integrity", evaluation.id),
            serde_json::to_value(&lost).unwrap(),
        )
        .await;

    // Assert: three acknowledgements, one stored event, one audit entry.
    for answer in [&first, &again] {
        match answer {
            ServerMessage::IntegrityAck(ack) => assert_eq!(ack.event_id, lost.event_id),
            other => panic!("expected INTEGRITY_ACK, got {other:?}"),
        }
    }
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"event_id": lost.event_id}));
    let entries = audit(&app, &prof, &evaluation.id).await;
    let events = integrity_entries(&entries);
    assert_eq!(events.len(), 1, "{entries:?}");
    let entry = events[0];
    assert_eq!(entry.kind, AuditKind::FocusLost);
    assert_eq!(entry.username.as_deref(), Some("alice"));
    assert_eq!(entry.actor.as_deref(), Some("alice"));
    assert!(
        entry.detail.contains(&format!("device time {}", lost.at))
            && entry.detail.contains("switched to another program"),
        "{}",
        entry.detail
    );
    let board = participants(&app, &prof, &evaluation.id).await;
    assert_eq!(board[0].integrity.events, 1);
    assert_eq!(board[0].integrity.focus_lost, 1);

    // A new event over HTTP is stored too, and survives a restart of the server.
    let back = IntegrityEvent {
        away_ms: Some(4210),
        ..event(&evaluation.id, IntegrityKind::FocusRegained)
    };
    let (status, body) = app
        .post(
            &alice,
            &format!("/api/evaluations/{}/integrity", evaluation.id),
            serde_json::to_value(&back).unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.restart().await;
    let prof = app.login("prof1", PASSWORD).await;
    let board = participants(&app, &prof, &evaluation.id).await;
    assert_eq!(board[0].integrity.events, 2, "{board:?}");
    assert_eq!(board[0].integrity.away_ms, 4210);
}

#[tokio::test]
async fn events_are_refused_with_the_contract_codes_and_bad_ones_get_an_error() {
    // Arrange: alice sits the evaluation, bob is on its list but has not joined, carol is not on
    // it; dave joined and handed in.
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let bob = app.student("bob").await;
    let carol = app.student("carol").await;
    let dave = app.student("dave").await;
    let evaluation = app.running(&prof, &[&alice, &bob, &dave]).await;
    let id = evaluation.id.clone();
    app.join(&alice, &id).await;
    app.join(&dave, &id).await;
    let (status, _) = app
        .post(&dave, &format!("/api/evaluations/{id}/submit"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let rejected = |answer: ServerMessage| match answer {
        ServerMessage::IntegrityRejected(r) => r.code,
        other => panic!("expected INTEGRITY_REJECTED, got {other:?}"),
    };
    let error = |answer: ServerMessage| match answer {
        ServerMessage::Error { code, .. } => code,
        other => panic!("expected ERROR, got {other:?}"),
    };

    // Refusals on the socket.
    let (mut bob_socket, _) = app.socket_ready(&bob).await;
    let (mut carol_socket, _) = app.socket_ready(&carol).await;
    let (mut dave_socket, _) = app.socket_ready(&dave).await;
    let (mut alice_socket, _) = app.socket_ready(&alice).await;
    let (mut prof_socket, _) = app.socket_ready(&prof).await;
    let lost = event(&id, IntegrityKind::FocusLost);
    assert_eq!(
        rejected(report(&mut bob_socket, &lost).await),
        IntegrityRejectCode::NotParticipating
    );
    assert_eq!(
        rejected(report(&mut dave_socket, &lost).await),
        IntegrityRejectCode::NotParticipating
    );
    assert_eq!(
        rejected(report(&mut carol_socket, &lost).await),
        IntegrityRejectCode::NotOnAccessList
    );
    assert_eq!(
        rejected(report(&mut alice_socket, &event("nope", IntegrityKind::FocusLost)).await),
        IntegrityRejectCode::NotFound
    );
    assert_eq!(
        error(report(&mut prof_socket, &lost).await),
        ErrorCode::Forbidden
    );

    // Bad events: an ERROR frame, and the socket stays open.
    let long = IntegrityEvent {
        detail: Some("x".repeat(201)),
        ..lost.clone()
    };
    let no_uuid = IntegrityEvent {
        event_id: "not-a-uuid".into(),
        ..lost.clone()
    };
    let no_away = IntegrityEvent {
        away_ms: None,
        ..event(&id, IntegrityKind::FocusRegained)
    };
    let stray_displays = IntegrityEvent {
        displays: Some(2),
        ..lost.clone()
    };
    for bad in [&long, &no_uuid, &no_away, &stray_displays] {
        assert_eq!(
            error(report(&mut alice_socket, bad).await),
            ErrorCode::BadRequest,
            "{bad:?}"
        );
    }
    let mut unknown = serde_json::to_value(&lost).unwrap();
    unknown["type"] = json!("INTEGRITY_EVENT");
    unknown["kind"] = json!("screenshot_taken");
    alice_socket.send_text(&unknown.to_string()).await;
    let answer = alice_socket
        .until(|m| matches!(m, ServerMessage::Error { .. }))
        .await;
    assert_eq!(error(answer), ErrorCode::BadRequest);
    let exactly_200 = IntegrityEvent {
        detail: Some("é".repeat(200)),
        ..event(&id, IntegrityKind::ClipboardBlocked)
    };
    assert!(matches!(
        report(&mut alice_socket, &exactly_200).await,
        ServerMessage::IntegrityAck(_)
    ));

    // The same refusals over HTTP.
    let post = |actor: &Actor, path_id: &str, body: Value| {
        let path = format!("/api/evaluations/{path_id}/integrity");
        let actor = actor.clone();
        let app = &app;
        async move { app.post(&actor, &path, body).await }
    };
    let as_json = |e: &IntegrityEvent| serde_json::to_value(e).unwrap();
    let (status, body) = post(&bob, &id, as_json(&lost)).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (StatusCode::CONFLICT, json!("not_participating"))
    );
    let (status, body) = post(&carol, &id, as_json(&lost)).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (StatusCode::FORBIDDEN, json!("not_on_access_list"))
    );
    let (status, body) = post(
        &alice,
        "nope",
        as_json(&event("nope", IntegrityKind::FocusLost)),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (StatusCode::NOT_FOUND, json!("not_found"))
    );
    let (status, body) = post(&alice, &id, as_json(&long)).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("bad_request"))
    );
    let (status, body) = post(&alice, &id, {
        let mut v = as_json(&lost);
        v["kind"] = json!("screenshot_taken");
        v
    })
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = post(
        &alice,
        &id,
        as_json(&event("other", IntegrityKind::FocusLost)),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "the body names another evaluation: {body}"
    );
    let (status, _) = post(&prof, &id, as_json(&lost)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Nothing refused was stored: only alice's accepted event is in the audit log.
    let entries = audit(&app, &prof, &id).await;
    let events = integrity_entries(&entries);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].kind, AuditKind::ClipboardBlocked);
}

#[tokio::test]
async fn a_blocked_student_still_reports_and_an_event_never_changes_the_participation() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;
    app.join(&alice, &evaluation.id).await;
    // A second sign-in blocks her; the new session still reports.
    let alice = app.login("alice", PASSWORD).await;
    let path = format!("/api/evaluations/{}/integrity", evaluation.id);
    let restarted = IntegrityEvent {
        detail: Some("the previous run did not end cleanly".into()),
        ..event(&evaluation.id, IntegrityKind::AppRestarted)
    };
    let (status, body) = app
        .post(&alice, &path, serde_json::to_value(&restarted).unwrap())
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let board = participants(&app, &prof, &evaluation.id).await;
    assert_eq!(board[0].status.as_str(), "blocked");
    assert_eq!(board[0].integrity.events, 1);

    // Unblocked, in grading: a late event is still evidence; the status stays.
    let (status, _) = app
        .post(
            &prof,
            &format!(
                "/api/evaluations/{}/participants/alice/unblock",
                evaluation.id
            ),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    app.set_phase(&prof, &evaluation.id, "grading").await;
    let (status, body) = app
        .post(
            &alice,
            &path,
            serde_json::to_value(event(&evaluation.id, IntegrityKind::FullscreenExited)).unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let board = participants(&app, &prof, &evaluation.id).await;
    assert_eq!(board[0].status.as_str(), "in_progress");
    assert_eq!(board[0].integrity.events, 2);
}

#[tokio::test]
async fn the_board_sums_up_each_students_events_and_is_pushed_on_each() {
    // Arrange: brief absences are those under 2 s (the default).
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let bob = app.student("bob").await;
    let evaluation = app.running(&prof, &[&alice, &bob]).await;
    let id = evaluation.id.clone();
    app.join(&alice, &id).await;
    let (mut board, snapshot) = app.socket_ready(&prof).await;
    assert!(snapshot.iter().any(|m| matches!(m,
        ServerMessage::ParticipantUpdate { participant, .. }
            if participant.username == "alice" && participant.integrity.events == 0)));
    let (mut socket, _) = app.socket_ready(&alice).await;
    let away = |ms: u64| IntegrityEvent {
        away_ms: Some(ms),
        ..event(&id, IntegrityKind::FocusRegained)
    };
    let capabilities = IntegrityEvent {
        capabilities: Some(invigil_protocol::Capabilities {
            fullscreen: Some(CapabilityLevel::DetectOnly),
            report_focus: Some(CapabilityLevel::Enforced),
            block_clipboard: Some(CapabilityLevel::Enforced),
            single_display: Some(CapabilityLevel::Unavailable),
        }),
        detail: Some("always-on-top refused by a Wayland compositor".into()),
        ..event(&id, IntegrityKind::Capabilities)
    };
    let sent = [
        capabilities.clone(),
        event(&id, IntegrityKind::FocusLost),
        away(1500),
        event(&id, IntegrityKind::FocusLost),
        away(8000),
        IntegrityEvent {
            displays: Some(2),
            ..event(&id, IntegrityKind::DisplaysChanged)
        },
    ];

    // Act and Assert: each stored event reaches the board, summed up.
    for (n, e) in sent.iter().enumerate() {
        assert!(matches!(
            report(&mut socket, e).await,
            ServerMessage::IntegrityAck(_)
        ));
        let update = board
            .until(|m| matches!(m,
                ServerMessage::ParticipantUpdate { participant, .. }
                    if participant.username == "alice" && participant.integrity.events as usize == n + 1))
            .await;
        let ServerMessage::ParticipantUpdate {
            evaluation_id,
            participant,
        } = update
        else {
            unreachable!()
        };
        assert_eq!(evaluation_id, id);
        let last = participant.integrity.last.expect("a last event");
        assert_eq!((last.kind, last.at), (e.kind, e.at));
    }
    let rows = participants(&app, &prof, &id).await;
    let alice_row = rows.iter().find(|p| p.username == "alice").unwrap();
    let summary = &alice_row.integrity;
    assert_eq!(summary.events, 6);
    assert_eq!(summary.focus_lost, 2);
    assert_eq!(summary.brief, 1);
    assert_eq!(summary.away_ms, 9500);
    assert_eq!(summary.longest_away_ms, 8000);
    assert_eq!(summary.last.unwrap().kind, IntegrityKind::DisplaysChanged);
    assert_eq!(summary.capabilities, capabilities.capabilities);
    let bob_row = rows.iter().find(|p| p.username == "bob").unwrap();
    assert_eq!(bob_row.integrity, Default::default());
    let (_, raw) = app
        .get(&prof, &format!("/api/evaluations/{id}/participants"))
        .await;
    assert_eq!(
        raw[0]["integrity"]["capabilities"],
        json!({"fullscreen": "detect_only", "report_focus": "enforced",
               "block_clipboard": "enforced", "single_display": "unavailable"})
    );

    // A longer brief_ms counts the 8 s absence as brief too, from then on.
    let (status, _) = patch(
        &app,
        &prof,
        &id,
        json!({"proctoring": {"brief_ms": 10_000}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let rows = participants(&app, &prof, &id).await;
    let alice_row = rows.iter().find(|p| p.username == "alice").unwrap();
    assert_eq!(alice_row.integrity.brief, 2);
}

#[tokio::test]
async fn the_exports_carry_the_events_and_each_students_counts() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;
    let id = evaluation.id.clone();
    app.join(&alice, &id).await;
    let path = format!("/api/evaluations/{id}/integrity");
    for e in [
        event(&id, IntegrityKind::FocusLost),
        IntegrityEvent {
            away_ms: Some(3000),
            ..event(&id, IntegrityKind::FocusRegained)
        },
    ] {
        let (status, body) = app
            .post(&alice, &path, serde_json::to_value(&e).unwrap())
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let text = |path: String| {
        let request = app.http.get(app.url(&path)).bearer_auth(&prof.token);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response.text().await.unwrap()
        }
    };

    let audit_csv = text(format!("/api/evaluations/{id}/exports/audit.csv")).await;
    assert!(
        audit_csv.contains(",focus_lost,alice,alice,")
            && audit_csv.contains(",focus_regained,alice,alice,"),
        "{audit_csv}"
    );
    assert!(audit_csv.contains("3000 ms away"), "{audit_csv}");
    let only = text(format!(
        "/api/evaluations/{id}/exports/audit.csv?kind=focus_regained"
    ))
    .await;
    assert_eq!(only.lines().count(), 2, "{only}");

    let answers_csv = text(format!("/api/evaluations/{id}/exports/answers.csv")).await;
    let header = answers_csv.lines().next().unwrap();
    assert!(
        header.ends_with(",integrity_events,focus_lost,brief_absences,away_ms,longest_away_ms"),
        "{header}"
    );
    let alice_lines: Vec<&str> = answers_csv
        .lines()
        .filter(|l| l.starts_with("alice,"))
        .collect();
    assert_eq!(alice_lines.len(), 3, "{answers_csv}");
    for line in alice_lines {
        assert!(line.ends_with(",2,1,0,3000,3000"), "{line}");
    }
}

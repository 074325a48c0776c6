//! Tests: accommodations (an addition to the contract): the owner or an admin exempts one student
//! from chosen proctoring settings, before or during the exam, with a reason that only staff read
//! (the accommodations list and the audit log); the student is told with `EVALUATION_UPDATE`
//! `accommodation_changed` and their participation's `proctoring_exempt`, the board's row lists the
//! settings but never the reason. And a student's timeline of integrity events
//! (`GET .../integrity?username=`), with the device's time and the server's.

use crate::helpers::*;
use invigil_protocol::{
    Accommodation, AuditEntry, AuditKind, Capabilities, CapabilityLevel, IntegrityEvent,
    IntegrityKind, IntegrityRecord, Participant, Participation, ProctoringSetting, ServerMessage,
    Timestamp, UpdateReason,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn path(evaluation: &str, username: &str) -> String {
    format!("/api/evaluations/{evaluation}/participants/{username}/accommodation")
}

async fn accommodate(
    app: &TestApp,
    actor: &Actor,
    evaluation: &str,
    username: &str,
    body: Value,
) -> (StatusCode, Value) {
    app.put(actor, &path(evaluation, username), body).await
}

async fn audit(app: &TestApp, owner: &Actor, evaluation: &str) -> Vec<AuditEntry> {
    let (status, body) = app
        .get(owner, &format!("/api/evaluations/{evaluation}/audit"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_value(body).unwrap()
}

fn accommodation_entries(entries: &[AuditEntry]) -> Vec<&AuditEntry> {
    entries
        .iter()
        .filter(|e| e.kind == AuditKind::AccommodationChanged)
        .collect()
}

async fn participation(app: &TestApp, student: &Actor, evaluation: &str) -> Participation {
    let (status, body) = app
        .get(student, &format!("/api/evaluations/{evaluation}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_value(body["participation"].clone()).unwrap()
}

/// The next `EVALUATION_UPDATE` of this reason on a student's socket: its participation.
async fn update(socket: &mut Socket, why: UpdateReason) -> Participation {
    match socket
        .until(|m| matches!(m, ServerMessage::EvaluationUpdate { reason, .. } if *reason == why))
        .await
    {
        ServerMessage::EvaluationUpdate { participation, .. } => participation,
        other => unreachable!("{other:?}"),
    }
}

#[tokio::test]
async fn an_owner_exempts_a_student_who_is_told_and_the_board_shows_it_without_the_reason() {
    // Arrange: a running evaluation that blocks the clipboard and asks for one display; the owner's
    // board and the student's app are connected.
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let bob = app.student("bob").await;
    let evaluation = app
        .evaluation(
            &prof,
            json!({"proctoring": {"block_clipboard": true, "single_display": true}}),
        )
        .await;
    let id = evaluation.id.clone();
    app.set_access(&prof, &id, &[&alice, &bob]).await;
    app.set_phase(&prof, &id, "in_progress").await;
    app.join(&alice, &id).await;
    let (mut board, _) = app.socket_ready(&prof).await;
    let (mut socket, _) = app.socket_ready(&alice).await;

    // Act: a screen reader needs the clipboard.
    let (status, body) = accommodate(
        &app,
        &prof,
        &id,
        "alice",
        json!({"exempt": ["block_clipboard", "block_clipboard"], "reason": "  Screen reader (NVDA)  "}),
    )
    .await;

    // Assert: stored as asked (each setting once, the reason trimmed), with who and when.
    assert_eq!(status, StatusCode::OK, "{body}");
    let stored: Accommodation = serde_json::from_value(body).unwrap();
    assert_eq!(stored.username, "alice");
    assert_eq!(stored.exempt, vec![ProctoringSetting::BlockClipboard]);
    assert_eq!(stored.reason, "Screen reader (NVDA)");
    assert_eq!(stored.actor, "prof1");
    // The student is told which settings no longer apply; the evaluation's settings are unchanged.
    let told = update(&mut socket, UpdateReason::AccommodationChanged).await;
    assert_eq!(
        told.proctoring_exempt.to_vec(),
        vec![ProctoringSetting::BlockClipboard]
    );
    assert_eq!(
        participation(&app, &alice, &id)
            .await
            .proctoring_exempt
            .to_vec(),
        vec![ProctoringSetting::BlockClipboard]
    );
    assert!(
        participation(&app, &bob, &id)
            .await
            .proctoring_exempt
            .is_empty()
    );
    // The board's row says it, live and when read, but never why.
    let pushed = board
        .until(|m| {
            matches!(m, ServerMessage::ParticipantUpdate { participant, .. }
            if participant.username == "alice" && !participant.proctoring_exempt.is_empty())
        })
        .await;
    assert!(
        matches!(pushed, ServerMessage::ParticipantUpdate { evaluation_id, .. } if evaluation_id == id)
    );
    let (status, rows) = app
        .get(&prof, &format!("/api/evaluations/{id}/participants"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !rows.to_string().contains("NVDA"),
        "the board never carries the reason: {rows}"
    );
    let rows: Vec<Participant> = serde_json::from_value(rows).unwrap();
    let exempt = |name: &str| {
        rows.iter()
            .find(|p| p.username == name)
            .unwrap()
            .proctoring_exempt
            .to_vec()
    };
    assert_eq!(exempt("alice"), vec![ProctoringSetting::BlockClipboard]);
    assert!(exempt("bob").is_empty());
    // Staff read the reason in the list and the audit log, with who set it.
    let (status, listed) = app
        .get(&prof, &format!("/api/evaluations/{id}/accommodations"))
        .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let listed: Vec<Accommodation> = serde_json::from_value(listed).unwrap();
    assert_eq!(listed, vec![stored]);
    let entries = audit(&app, &prof, &id).await;
    let changes = accommodation_entries(&entries);
    assert_eq!(changes.len(), 1, "{entries:?}");
    assert_eq!(changes[0].username.as_deref(), Some("alice"));
    assert_eq!(changes[0].actor.as_deref(), Some("prof1"));
    assert!(
        changes[0].detail.contains("block_clipboard")
            && changes[0].detail.contains("Screen reader (NVDA)"),
        "{}",
        changes[0].detail
    );
    // A new connection's snapshot carries it too (the app may have been restarted); an event
    // stream, which leaves the app's socket open.
    let (_, snapshot) = app.events_ready(&alice).await;
    assert!(
        snapshot.iter().any(|m| matches!(m,
            ServerMessage::EvaluationUpdate { participation, .. }
                if participation.evaluation_id == id
                    && participation.proctoring_exempt.to_vec() == vec![ProctoringSetting::BlockClipboard])),
        "{snapshot:?}"
    );

    // Act: an admin widens it (a magnifier needs a second display), then the owner removes it.
    let admin = app.admin().await;
    let (status, body) = accommodate(
        &app,
        &admin,
        &id,
        "alice",
        json!({"exempt": ["single_display", "block_clipboard"], "reason": "Magnifier on a second display"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let told = update(&mut socket, UpdateReason::AccommodationChanged).await;
    assert_eq!(
        told.proctoring_exempt.to_vec(),
        vec![
            ProctoringSetting::BlockClipboard,
            ProctoringSetting::SingleDisplay
        ]
    );
    let (status, body) = accommodate(
        &app,
        &prof,
        &id,
        "alice",
        json!({"exempt": [], "reason": "No longer needed"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Assert: every setting applies again; each change is in the audit log with who and why.
    let told = update(&mut socket, UpdateReason::AccommodationChanged).await;
    assert!(told.proctoring_exempt.is_empty());
    let (_, listed) = app
        .get(&prof, &format!("/api/evaluations/{id}/accommodations"))
        .await;
    assert_eq!(listed, json!([]));
    let entries = audit(&app, &prof, &id).await;
    let actors: Vec<_> = accommodation_entries(&entries)
        .iter()
        .map(|e| (e.actor.clone().unwrap(), e.detail.contains("removed")))
        .collect();
    assert_eq!(
        actors,
        vec![
            ("prof1".to_owned(), false),
            ("admin".to_owned(), false),
            ("prof1".to_owned(), true)
        ]
    );
}

#[tokio::test]
async fn an_accommodation_set_before_the_exam_comes_with_the_join() {
    // Arrange: a draft evaluation with the student on its list.
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app
        .evaluation(&prof, json!({"proctoring": {"fullscreen": true}}))
        .await;
    app.set_access(&prof, &evaluation.id, &[&alice]).await;

    // Act
    let (status, body) = accommodate(
        &app,
        &prof,
        &evaluation.id,
        "alice",
        json!({"exempt": ["fullscreen"], "reason": "Magnifier"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.set_phase(&prof, &evaluation.id, "in_progress").await;
    let (status, joined) = app
        .post(
            &alice,
            &format!("/api/evaluations/{}/join", evaluation.id),
            json!({}),
        )
        .await;

    // Assert
    assert_eq!(status, StatusCode::OK, "{joined}");
    assert_eq!(
        joined["proctoring_exempt"],
        json!(["fullscreen"]),
        "{joined}"
    );
    assert_eq!(joined["status"], "in_progress");
}

#[tokio::test]
async fn bad_accommodations_are_refused_with_a_clear_error_and_change_nothing() {
    // Arrange
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let other = app.professor("prof2").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;
    let id = evaluation.id.clone();
    let good = json!({"exempt": ["report_focus"], "reason": "Screen reader"});

    // Act and Assert: each refusal names what is wrong.
    let refused = [
        (
            &prof,
            "alice",
            json!({"exempt": ["report_focus"], "reason": "   "}),
            StatusCode::BAD_REQUEST,
            "reason",
        ),
        (
            &prof,
            "alice",
            json!({"exempt": ["report_focus"], "reason": "x".repeat(501)}),
            StatusCode::BAD_REQUEST,
            "500",
        ),
        (
            &prof,
            "alice",
            json!({"exempt": ["kiosk"], "reason": "Why not"}),
            StatusCode::BAD_REQUEST,
            "",
        ),
        (
            &prof,
            "alice",
            json!({"reason": "No list"}),
            StatusCode::BAD_REQUEST,
            "",
        ),
        (
            &prof,
            "nobody",
            good.clone(),
            StatusCode::NOT_FOUND,
            "nobody",
        ),
        (&prof, "prof2", good.clone(), StatusCode::NOT_FOUND, "prof2"),
        (&other, "alice", good.clone(), StatusCode::FORBIDDEN, ""),
        (&alice, "alice", good.clone(), StatusCode::FORBIDDEN, ""),
    ];
    for (actor, username, body, expected, names) in refused {
        let (status, answer) = accommodate(&app, actor, &id, username, body.clone()).await;
        assert_eq!(status, expected, "{body} → {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(names), "{message}");
    }
    let (status, answer) =
        accommodate(&app, &prof, "no-such-evaluation", "alice", good.clone()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");

    // A finished evaluation's accommodations stay as they were.
    app.set_phase(&prof, &id, "grading").await;
    app.set_phase(&prof, &id, "finished").await;
    let (status, answer) = accommodate(&app, &prof, &id, "alice", good).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(answer["error"]["code"], "conflict");

    // Nothing was stored or recorded.
    let (_, listed) = app
        .get(&prof, &format!("/api/evaluations/{id}/accommodations"))
        .await;
    assert_eq!(listed, json!([]));
    assert!(accommodation_entries(&audit(&app, &prof, &id).await).is_empty());
    assert!(
        participation(&app, &alice, &id)
            .await
            .proctoring_exempt
            .is_empty()
    );
}

#[tokio::test]
async fn a_students_timeline_gives_each_event_with_the_device_and_the_server_time() {
    // Arrange: the student's device clock is an hour behind.
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let bob = app.student("bob").await;
    let evaluation = app.running(&prof, &[&alice, &bob]).await;
    let id = evaluation.id.clone();
    app.join(&alice, &id).await;
    let device = |offset_ms: i64| {
        Timestamp::from_unix_ms(Timestamp::now().unix_ms() - 3_600_000 + offset_ms).unwrap()
    };
    let base = |kind: IntegrityKind, at: Timestamp| IntegrityEvent {
        evaluation_id: id.clone(),
        event_id: uuid::Uuid::new_v4().to_string(),
        kind,
        at,
        away_ms: None,
        displays: None,
        capabilities: None,
        detail: None,
    };
    let sent = vec![
        IntegrityEvent {
            capabilities: Some(Capabilities {
                fullscreen: Some(CapabilityLevel::DetectOnly),
                ..Capabilities::default()
            }),
            detail: Some("always-on-top refused by a Wayland compositor".into()),
            ..base(IntegrityKind::Capabilities, device(0))
        },
        base(IntegrityKind::FocusLost, device(1000)),
        IntegrityEvent {
            away_ms: Some(4200),
            ..base(IntegrityKind::FocusRegained, device(5200))
        },
    ];
    let before = Timestamp::now();
    for event in &sent {
        let (status, body) = app
            .post(
                &alice,
                &format!("/api/evaluations/{id}/integrity"),
                serde_json::to_value(event).unwrap(),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let after = Timestamp::now();

    // Act
    let (status, body) = app
        .get(
            &prof,
            &format!("/api/evaluations/{id}/integrity?username=alice"),
        )
        .await;

    // Assert: in order, as reported, each with the server's receipt time beside the device's.
    assert_eq!(status, StatusCode::OK, "{body}");
    let timeline: Vec<IntegrityRecord> = serde_json::from_value(body).unwrap();
    assert_eq!(
        timeline.iter().map(|r| r.event.clone()).collect::<Vec<_>>(),
        sent
    );
    for record in &timeline {
        assert!(
            record.received_at >= before && record.received_at <= after,
            "{record:?}"
        );
        assert!(record.event.at < record.received_at, "{record:?}");
    }
    // The board's row names why a setting is not enforced on this computer.
    let (_, rows) = app
        .get(&prof, &format!("/api/evaluations/{id}/participants"))
        .await;
    let rows: Vec<Participant> = serde_json::from_value(rows).unwrap();
    let row = rows.iter().find(|p| p.username == "alice").unwrap();
    assert_eq!(
        row.integrity.capabilities_detail.as_deref(),
        Some("always-on-top refused by a Wayland compositor")
    );
    // Another student's timeline is their own (empty); bad asks are refused.
    let (status, body) = app
        .get(
            &prof,
            &format!("/api/evaluations/{id}/integrity?username=bob"),
        )
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!([])));
    let (status, body) = app
        .get(&prof, &format!("/api/evaluations/{id}/integrity"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("username")
    );
    let (status, _) = app
        .get(
            &prof,
            &format!("/api/evaluations/{id}/integrity?username=nobody"),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .get(
            &alice,
            &format!("/api/evaluations/{id}/integrity?username=alice"),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

//! Sessions: kept in the keyring across restarts, ended by the server with a reason, and never
//! at the cost of an answer.

use crate::harness::*;
use invigil_client::view::{AnswerState, ConnectionState, ExamState};
use invigil_client::{Error, export};
use invigil_protocol::{AuditKind, ErrorCode};

#[tokio::test]
async fn restarting_the_app_resumes_the_same_session_instead_of_signing_in_again() {
    let server = Server::start(5000).await;
    let admin = Staff::admin(&server).await;
    let prof = admin.professor("prof").await;
    admin.create_user("alice", "student").await;
    let evaluation = prof.running(&["alice"]).await;
    let dir = tempfile::tempdir().unwrap();
    let vault = mock_vault();
    let session = {
        let mut alice = Student::start(&server.url(), dir.path(), vault.clone()).await;
        alice.sign_in("alice").await;
        alice.until_evaluation(&evaluation.id).await;
        alice.engine.join(&evaluation.id).await.unwrap();
        let online = alice.until_connection(ConnectionState::Online).await;
        assert!(online.session.token_remembered);
        alice.engine.session_id().unwrap()
    };

    let mut alice = Student::start(&server.url(), dir.path(), vault).await;
    // Online, and the snapshot read (the cache of the first run may predate the join).
    alice
        .until("online with the exam open", |o| {
            o.connection.state == ConnectionState::Online
                && o.evaluations
                    .first()
                    .is_some_and(|e| e.exam == ExamState::Open)
        })
        .await;

    assert_eq!(alice.engine.session_id(), Some(session));
    let audit = prof.audit(&evaluation.id).await;
    assert!(
        !audit.iter().any(|e| e.kind == AuditKind::Blocked),
        "a resumed session is not a second sign-in: {audit:?}"
    );
}

#[tokio::test]
async fn signing_out_forgets_the_token_and_a_restart_starts_signed_out() {
    let server = Server::start(5000).await;
    let admin = Staff::admin(&server).await;
    admin.create_user("alice", "student").await;
    let dir = tempfile::tempdir().unwrap();
    let vault = mock_vault();
    {
        let mut alice = Student::start(&server.url(), dir.path(), vault.clone()).await;
        alice.sign_in("alice").await;
        alice.until_connection(ConnectionState::Online).await;
        alice.engine.sign_out().await.unwrap();
        let out = alice.until_connection(ConnectionState::SignedOut).await;
        assert!(out.session.user.is_none());
    }
    let install = std::fs::read_to_string(dir.path().join("install-id")).unwrap();
    assert_eq!(
        vault
            .load(&format!("{}@{}", install.trim(), server.url()))
            .unwrap(),
        None
    );

    let alice = Student::start(&server.url(), dir.path(), vault).await;
    let overview = alice.engine.overview();
    assert_eq!(overview.connection.state, ConnectionState::SignedOut);
    assert!(!overview.session.signed_in);
}

#[tokio::test]
async fn sign_in_refusals_are_clear_errors() {
    let server = Server::start(5000).await;
    let admin = Staff::admin(&server).await;
    admin.create_user("alice", "student").await;
    admin.create_user("prof", "professor").await;
    let dir = tempfile::tempdir().unwrap();
    let alice = Student::start(&server.url(), dir.path(), mock_vault()).await;

    let wrong = alice
        .engine
        .sign_in(None, "alice", "nope")
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Some(ErrorCode::InvalidCredentials));
    let staff = alice
        .engine
        .sign_in(None, "prof", PASSWORD)
        .await
        .unwrap_err();
    assert!(matches!(staff, Error::NotAStudent { role: "professor" }));
    let nowhere = alice
        .engine
        .sign_in(Some("http://127.0.0.1:1"), "alice", PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(nowhere.kind(), "network");
    let bad = alice
        .engine
        .sign_in(Some("exams"), "alice", PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(bad.kind(), "invalid_server_url");
}

#[tokio::test]
async fn a_sign_in_elsewhere_ends_the_session_with_its_reason_and_names_the_blocked_exam() {
    let server = Server::start(5000).await;
    let admin = Staff::admin(&server).await;
    let prof = admin.professor("prof").await;
    admin.create_user("alice", "student").await;
    let evaluation = prof.running(&["alice"]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut alice = Student::start(&server.url(), dir.path(), mock_vault()).await;
    alice.sign_in("alice").await;
    alice.until_evaluation(&evaluation.id).await;
    alice.engine.join(&evaluation.id).await.unwrap();
    alice.until_connection(ConnectionState::Online).await;

    Staff::login(&server.url(), "alice", PASSWORD).await;
    let ended = alice.until_connection(ConnectionState::SessionEnded).await;

    assert_eq!(
        ended.connection.reason.as_deref(),
        Some("signed_in_elsewhere")
    );
    let view = ended.session.ended.unwrap();
    assert_eq!(view.reason, "signed_in_elsewhere");
    assert_eq!(view.blocked_exam.as_deref(), Some("Algorithms midterm"));
    assert!(!ended.session.signed_in);
}

#[tokio::test]
async fn after_session_invalidated_pending_answers_stay_on_disk_and_reach_the_server_after_signing_in_again()
 {
    let server = Server::start(5000).await;
    let proxy = Proxy::start(server.addr).await;
    let admin = Staff::admin(&server).await;
    let prof = admin.professor("prof").await;
    admin.create_user("alice", "student").await;
    let evaluation = prof.running(&["alice"]).await;
    let id = evaluation.id.clone();
    let dir = tempfile::tempdir().unwrap();
    let vault = mock_vault();
    {
        let mut alice = Student::start(&proxy.url(), dir.path(), vault.clone()).await;
        alice.sign_in("alice").await;
        alice.until_evaluation(&id).await;
        alice.engine.join(&id).await.unwrap();
        alice.until_connection(ConnectionState::Online).await;

        // The app loses the network; the student keeps typing; meanwhile someone signs in as
        // the student elsewhere, which revokes this session and blocks the exam.
        proxy.set(Network::Cut);
        alice.until_connection(ConnectionState::Unreachable).await;
        alice
            .engine
            .edit(&id, "q2", "fn search() {}".into())
            .unwrap();
        alice.until_answer(&id, "q2", AnswerState::Waiting).await;
        Staff::login(&server.url(), "alice", PASSWORD).await;
        proxy.set(Network::Up);

        let ended = alice.until_connection(ConnectionState::SessionEnded).await;
        assert_eq!(
            ended.connection.reason.as_deref(),
            Some("session_invalidated")
        );
        assert_eq!(ended.pending, 1);
        // Typing that races the end is kept too.
        alice
            .engine
            .edit(&id, "q1", "one more line".into())
            .unwrap();
        alice
            .until("two answers waiting", |o| {
                o.pending == 2 && answer_state(o, &id, "q1") == Some(AnswerState::Waiting)
            })
            .await;
    }

    // A restart finds them on disk, and can export them for the professor.
    let mut alice = Student::start(&proxy.url(), dir.path(), vault).await;
    let overview = alice.engine.overview();
    assert_eq!(overview.connection.state, ConnectionState::SessionEnded);
    assert_eq!(overview.pending, 2);
    let folder = dir.path().join("documents");
    std::fs::create_dir(&folder).unwrap();
    let summary = alice.engine.export(&folder).await.unwrap();
    assert_eq!(summary.answers, 2);
    let file = std::path::PathBuf::from(&summary.path);
    assert_eq!(file.parent(), Some(folder.as_path()));
    let name = file.file_name().unwrap().to_str().unwrap();
    assert!(
        name.starts_with("invigil-answers-alice-") && name.ends_with(".json"),
        "{name}"
    );
    let exported = export::read(&file).unwrap();
    assert_eq!(exported.username, "alice");
    assert_eq!(
        exported.session_ended.as_deref(),
        Some("session_invalidated")
    );
    let mut contents: Vec<_> = exported
        .answers
        .iter()
        .map(|a| {
            (
                a.evaluation_id.as_str(),
                a.question_id.as_str(),
                a.content.as_str(),
            )
        })
        .collect();
    contents.sort();
    assert_eq!(
        contents,
        [
            (id.as_str(), "q1", "one more line"),
            (id.as_str(), "q2", "fn search() {}")
        ]
    );

    // Signing in again here is itself a second sign-in: blocked, the answers still wait...
    alice.sign_in("alice").await;
    alice
        .until("the blocked exam", |o| {
            o.connection.state == ConnectionState::Online
                && o.evaluations
                    .first()
                    .is_some_and(|e| e.exam == ExamState::Blocked)
        })
        .await;
    assert_eq!(alice.engine.overview().pending, 2);
    // ...until the professor unblocks the student: then they are delivered, by themselves.
    prof.unblock(&id, "alice").await;
    alice.until("every answer saved", |o| o.pending == 0).await;
    let mut stored: Vec<_> = prof
        .answers(&id, "alice")
        .await
        .into_iter()
        .map(|a| (a.question_id, a.content))
        .collect();
    stored.sort();
    assert_eq!(
        stored,
        [
            ("q1".to_owned(), "one more line".to_owned()),
            ("q2".to_owned(), "fn search() {}".to_owned())
        ]
    );
}

#[tokio::test]
async fn answers_a_student_left_waiting_stay_listed_and_exportable_after_someone_else_signs_in() {
    let server = Server::start(5000).await;
    let proxy = Proxy::start(server.addr).await;
    let (_prof, id) = running_exam(&server, &["alice", "bob"]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut app = sitting(&proxy.url(), dir.path(), "alice", &id).await;
    proxy.set(Network::Cut);
    app.until_connection(ConnectionState::Unreachable).await;
    let before = invigil_protocol::Timestamp::now();
    app.engine.edit(&id, "q1", "alice's answer".into()).unwrap();
    app.until_answer(&id, "q1", AnswerState::Waiting).await;
    app.engine.sign_out().await.unwrap();

    proxy.set(Network::Up);
    app.sign_in("bob").await;
    let waiting = app.engine.waiting_on_this_computer().await.unwrap();

    let url = invigil_client::ServerUrl::parse(&proxy.url())
        .unwrap()
        .to_string();
    let since = waiting.first().map(|w| w.since).unwrap();
    assert_eq!(
        waiting,
        [invigil_client::view::WaitingView {
            server_url: url.clone(),
            username: "alice".into(),
            answers: 1,
            since,
        }]
    );
    // Since the edit was written, by this computer's clock.
    assert!(
        before <= since && since <= invigil_protocol::Timestamp::now(),
        "{since}"
    );
    let summary = app
        .engine
        .export_waiting(&url, "alice", dir.path())
        .await
        .unwrap();
    assert_eq!(summary.answers, 1);
    let exported = export::read(std::path::Path::new(&summary.path)).unwrap();
    assert_eq!(exported.username, "alice");
    assert_eq!(exported.answers[0].content, "alice's answer");
}

//! Reconciling with the server on every `WELCOME`: no text a device typed and no text the server
//! held is dropped, and "Saved on the server" is shown only for text the server holds.

use crate::harness::*;
use invigil_client::view::{AnswerState, ConnectionState, Event, ExamState};
use invigil_protocol::ParticipationStatus;

/// Unblocks `username` when signing in on the new device blocked them.
async fn unblock_if_blocked(student: &mut Student, prof: &Staff, id: &str, username: &str) {
    let overview = student
        .until("the evaluation's status", |o| {
            o.evaluations.iter().any(|e| e.id == id)
        })
        .await;
    let evaluation = overview.evaluations.iter().find(|e| e.id == id).unwrap();
    if evaluation.status == ParticipationStatus::Blocked {
        prof.unblock(id, username).await;
    }
    student
        .until("the exam open", |o| {
            o.evaluations
                .iter()
                .any(|e| e.id == id && e.exam == ExamState::Open)
        })
        .await;
}

#[tokio::test]
async fn a_second_install_whose_first_read_of_the_answers_failed_never_shows_saved_for_text_the_server_does_not_hold()
 {
    // Invariant: "Saved on the server" is never shown for text the server does not hold, and
    // neither computer's text is dropped.
    let server = Server::start(5000).await;
    let proxy = Proxy::start(server.addr).await;
    let (prof, id) = running_exam(&server, &["alice"]).await;

    // The first computer saves revision 1 of q1; then it is gone (a wiped data folder).
    {
        let dir = tempfile::tempdir().unwrap();
        let mut first = sitting(&server.url(), dir.path(), "alice", &id).await;
        first
            .engine
            .edit(&id, "q1", "written on the first computer".into())
            .unwrap();
        first.until_answer(&id, "q1", AnswerState::Saved).await;
    }

    // A second install starts from nothing, and its first read of the server's answers fails:
    // it numbers its own edit 1 too.
    proxy.cut_requests("GET", "/answers", 1);
    let dir = tempfile::tempdir().unwrap();
    let mut second = Student::start(&proxy.url(), dir.path(), mock_vault()).await;
    second.sign_in("alice").await;
    second.until_connection(ConnectionState::Online).await;
    unblock_if_blocked(&mut second, &prof, &id, "alice").await;
    second
        .engine
        .edit(&id, "q1", "written on the second computer".into())
        .unwrap();
    let saved = second
        .until("q1 saved above the server's revision", |o| {
            answer_state(o, &id, "q1") == Some(AnswerState::Saved)
        })
        .await;

    assert_eq!(proxy.requests_left_to_cut(), 0, "the first read was cut");
    let shown_saved: Vec<u64> = second
        .take_seen()
        .into_iter()
        .filter_map(|e| match e {
            Event::Answer(a)
                if a.answer.question_id == "q1" && a.answer.state == AnswerState::Saved =>
            {
                Some(a.answer.revision)
            }
            _ => None,
        })
        .collect();
    assert!(
        shown_saved.iter().all(|revision| *revision >= 2),
        "shown saved at revisions {shown_saved:?}, but the server holds revision 1 with the first computer's text"
    );
    let stored = prof.answers(&id, "alice").await;
    let q1 = stored.iter().find(|a| a.question_id == "q1").unwrap();
    assert_eq!(
        (q1.revision, q1.content.as_str()),
        (2, "written on the second computer")
    );
    // The first computer's text stays with the student and in the export.
    let view = saved.evaluations.iter().find(|e| e.id == id).unwrap();
    let answer = view.answers.iter().find(|a| a.question_id == "q1").unwrap();
    assert_eq!(answer.displaced, 1);
    let exam = second.engine.open(&id).await.unwrap();
    assert_eq!(
        exam.displaced["q1"][0].content,
        "written on the first computer"
    );
    assert_eq!(exam.answers["q1"], "written on the second computer");
    let summary = second.engine.export(dir.path()).await.unwrap();
    let export = invigil_client::export::read(std::path::Path::new(&summary.path)).unwrap();
    assert_eq!(export.displaced.len(), 1);
    assert_eq!(
        (
            export.displaced[0].revision,
            export.displaced[0].content.as_str()
        ),
        (1, "written on the first computer")
    );
}

#[tokio::test]
async fn an_answer_the_server_lost_in_a_restore_from_a_backup_is_sent_again() {
    // Invariant: an acknowledged answer the server no longer holds goes back to waiting and
    // reaches the server again.
    let mut server = Server::start(500).await;
    let (prof, id) = running_exam(&server, &["alice"]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut alice = sitting(&server.url(), dir.path(), "alice", &id).await;
    alice
        .engine
        .edit(&id, "q1", "before the backup".into())
        .unwrap();
    alice.until_answer(&id, "q1", AnswerState::Saved).await;

    server.back_up("nightly").await;
    alice.until_connection(ConnectionState::Online).await;
    alice
        .engine
        .edit(&id, "q1", "after the backup".into())
        .unwrap();
    alice.engine.edit(&id, "q2", "only after".into()).unwrap();
    alice
        .until("both saved", |o| {
            o.pending == 0
                && answer_state(o, &id, "q1") == Some(AnswerState::Saved)
                && answer_state(o, &id, "q2") == Some(AnswerState::Saved)
        })
        .await;
    alice.take_seen();

    server.restore("nightly").await;
    let seen = alice.seen.clone();
    alice
        .until("both sent again and saved", |o| {
            let seen = seen.lock().unwrap();
            let waited = |q: &str| {
                seen.iter().any(|e| {
                    matches!(e, Event::Answer(a)
                        if a.answer.question_id == q && a.answer.state == AnswerState::Waiting)
                })
            };
            waited("q1") && waited("q2") && o.pending == 0
        })
        .await;

    let stored: Vec<(String, String)> = prof
        .answers(&id, "alice")
        .await
        .into_iter()
        .map(|a| (a.question_id, a.content))
        .collect();
    assert_eq!(
        stored,
        [
            ("q1".to_owned(), "after the backup".to_owned()),
            ("q2".to_owned(), "only after".to_owned())
        ]
    );
}

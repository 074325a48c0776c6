//! Answers reach the server exactly once, whatever happens to the server.

use crate::harness::*;
use invigil_client::outbox::Outbox;
use invigil_client::view::{AnswerState, ConnectionState, Event};
use std::collections::BTreeMap;
use std::time::Instant;

#[tokio::test]
async fn every_edit_is_on_disk_within_half_a_second_before_it_is_sent() {
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

    let typed = Instant::now();
    alice
        .engine
        .edit(&evaluation.id, "q1", "Quicksort picks a pivot".into())
        .unwrap();
    alice
        .until("q1 written", |o| {
            answer_state(o, &evaluation.id, "q1").is_some_and(|s| s != AnswerState::Editing)
        })
        .await;
    let elapsed = typed.elapsed();

    assert!(elapsed.as_millis() < 500, "on disk after {elapsed:?}");
    let outbox = Outbox::open(outbox_dir(dir.path(), &server.url(), "alice")).unwrap();
    let record = outbox
        .records()
        .find(|r| r.question_id == "q1")
        .expect("the record is on disk");
    assert_eq!(record.content, "Quicksort picks a pivot");
    // Written before it was sent: the first event after the write says it is waiting or saved,
    // never that it was acknowledged before being written.
    alice
        .until_answer(&evaluation.id, "q1", AnswerState::Saved)
        .await;
}

#[tokio::test]
async fn after_the_server_is_killed_and_restarted_every_pending_answer_arrives_exactly_once() {
    let mut server = Server::start(500).await;
    let admin = Staff::admin(&server).await;
    let prof = admin.professor("prof").await;
    admin.create_user("alice", "student").await;
    let evaluation = prof.running(&["alice"]).await;
    let id = evaluation.id.clone();
    let dir = tempfile::tempdir().unwrap();
    let mut alice = Student::start(&server.url(), dir.path(), mock_vault()).await;
    alice.sign_in("alice").await;
    alice.until_evaluation(&id).await;
    alice.engine.join(&id).await.unwrap();
    alice.until_connection(ConnectionState::Online).await;
    alice.engine.edit(&id, "q1", "first draft".into()).unwrap();
    alice.until_answer(&id, "q1", AnswerState::Saved).await;

    server.kill().await;
    alice.until_connection(ConnectionState::Unreachable).await;
    alice
        .engine
        .edit(&id, "q1", "first draft, improved".into())
        .unwrap();
    alice
        .engine
        .edit(&id, "q2", "def search(xs, x):".into())
        .unwrap();
    alice.engine.edit(&id, "q3", "b".into()).unwrap();
    let waiting = alice
        .until("three answers waiting", |o| {
            o.pending == 3
                && ["q1", "q2", "q3"]
                    .iter()
                    .all(|q| answer_state(o, &id, q) == Some(AnswerState::Waiting))
        })
        .await;
    let revisions: BTreeMap<String, u64> = waiting
        .evaluations
        .iter()
        .find(|e| e.id == id)
        .unwrap()
        .answers
        .iter()
        .map(|a| (a.question_id.clone(), a.revision))
        .collect();
    alice.take_seen();

    server.restart().await;
    alice.until_connection(ConnectionState::Online).await;
    alice.until("every answer saved", |o| o.pending == 0).await;

    let acks: Vec<_> = alice
        .take_seen()
        .into_iter()
        .filter_map(|e| match e {
            Event::Answer(a) if a.answer.state == AnswerState::Saved => Some(a.answer.question_id),
            _ => None,
        })
        .collect();
    let mut sorted = acks.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["q1", "q2", "q3"],
        "one acknowledgement each: {acks:?}"
    );
    let stored: BTreeMap<String, (u64, String)> = prof
        .answers(&id, "alice")
        .await
        .into_iter()
        .map(|a| (a.question_id, (a.revision, a.content)))
        .collect();
    assert_eq!(
        stored["q1"],
        (revisions["q1"], "first draft, improved".into())
    );
    assert_eq!(stored["q2"], (revisions["q2"], "def search(xs, x):".into()));
    assert_eq!(stored["q3"], (revisions["q3"], "b".into()));
}

#[tokio::test]
async fn revisions_keep_rising_across_restarts_of_the_app() {
    let server = Server::start(5000).await;
    let admin = Staff::admin(&server).await;
    let prof = admin.professor("prof").await;
    admin.create_user("alice", "student").await;
    let evaluation = prof.running(&["alice"]).await;
    let id = evaluation.id.clone();
    let dir = tempfile::tempdir().unwrap();
    let vault = mock_vault();
    let first_revision = {
        let mut alice = Student::start(&server.url(), dir.path(), vault.clone()).await;
        alice.sign_in("alice").await;
        alice.until_evaluation(&id).await;
        alice.engine.join(&id).await.unwrap();
        alice.engine.edit(&id, "q1", "one".into()).unwrap();
        alice.until_answer(&id, "q1", AnswerState::Saved).await;
        alice.engine.edit(&id, "q1", "one two".into()).unwrap();
        let o = alice
            .until("q1 saved again", |o| {
                answer_state(o, &id, "q1") == Some(AnswerState::Saved)
                    && o.evaluations[0].answers[0].revision == 2
            })
            .await;
        o.evaluations[0].answers[0].revision
    };

    let mut alice = Student::start(&server.url(), dir.path(), vault).await;
    alice.until_connection(ConnectionState::Online).await;
    alice
        .engine
        .edit(&id, "q1", "one two three".into())
        .unwrap();
    alice.until_answer(&id, "q1", AnswerState::Saved).await;

    let stored = prof.answers(&id, "alice").await;
    assert_eq!(stored[0].content, "one two three");
    assert!(stored[0].revision > first_revision);
}

#[tokio::test]
async fn a_professors_phase_change_locks_editing_live_and_late_typing_is_still_stored() {
    let server = Server::start(5000).await;
    let admin = Staff::admin(&server).await;
    let prof = admin.professor("prof").await;
    admin.create_user("alice", "student").await;
    let evaluation = prof.running(&["alice"]).await;
    let id = evaluation.id.clone();
    let dir = tempfile::tempdir().unwrap();
    let mut alice = Student::start(&server.url(), dir.path(), mock_vault()).await;
    alice.sign_in("alice").await;
    alice.until_evaluation(&id).await;
    alice.engine.join(&id).await.unwrap();
    alice
        .until("the exam open", |o| {
            o.evaluations[0].exam == invigil_client::view::ExamState::Open
        })
        .await;

    prof.set_phase(&id, "grading").await;
    alice
        .until("the exam closed", |o| {
            o.evaluations[0].exam == invigil_client::view::ExamState::Closed
        })
        .await;
    // A keystroke that raced the lock is kept and stored, marked late.
    alice.engine.edit(&id, "q1", "last words".into()).unwrap();
    alice.until_answer(&id, "q1", AnswerState::Saved).await;
    let stored = prof.answers(&id, "alice").await;
    assert_eq!(stored[0].content, "last words");
    assert!(stored[0].late);

    prof.set_phase(&id, "in_progress").await;
    alice
        .until("the exam open again", |o| {
            o.evaluations[0].exam == invigil_client::view::ExamState::Open
        })
        .await;
}

#[tokio::test]
async fn editing_locks_when_ends_at_passes_by_the_servers_clock() {
    let server = Server::start(5000).await;
    let admin = Staff::admin(&server).await;
    let prof = admin.professor("prof").await;
    admin.create_user("alice", "student").await;
    let evaluation = prof.running(&["alice"]).await;
    let id = evaluation.id.clone();
    let dir = tempfile::tempdir().unwrap();
    let mut alice = Student::start(&server.url(), dir.path(), mock_vault()).await;
    alice.sign_in("alice").await;
    alice.until_evaluation(&id).await;
    alice.engine.join(&id).await.unwrap();
    let online = alice.until_connection(ConnectionState::Online).await;
    assert!(online.clock_synced);

    let ends =
        invigil_protocol::Timestamp::from_unix_ms(alice.engine.server_now_ms() + 1500).unwrap();
    prof.set_ends_at(&id, &ends.to_string()).await;
    let open = alice
        .until("the new end", |o| o.evaluations[0].ends_at == Some(ends))
        .await;
    assert_eq!(
        open.evaluations[0].exam,
        invigil_client::view::ExamState::Open
    );
    let closed = alice
        .until("the end to pass", |o| {
            o.evaluations[0].exam == invigil_client::view::ExamState::Closed
        })
        .await;
    assert!(closed.server_now_ms >= ends.unix_ms());
}

#[tokio::test]
async fn an_answer_too_large_for_one_frame_is_stored_and_the_answers_after_it_keep_flowing() {
    // Invariant (chaos, "oversized answer"): no answer is resent forever on sockets the server
    // closes with 1009; the large one is stored and every answer after it arrives.
    let server = Server::start(5000).await;
    let (prof, id) = running_exam(&server, &["alice"]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut alice = sitting(&server.url(), dir.path(), "alice", &id).await;
    alice.take_seen();

    // Within the content limit, but JSON escaping doubles it past the 1 MiB frame limit.
    let large = "\"\\".repeat(invigil_client::engine::MAX_ANSWER_BYTES / 2);
    assert!(large.len() <= invigil_client::engine::MAX_ANSWER_BYTES);
    alice.engine.edit(&id, "q1", large.clone()).unwrap();
    alice
        .until("q1 written", |o| {
            answer_state(o, &id, "q1").is_some_and(|s| s != AnswerState::Editing)
        })
        .await;
    alice
        .engine
        .edit(&id, "q2", "after the large one".into())
        .unwrap();
    alice
        .until("both saved", |o| {
            o.pending == 0
                && answer_state(o, &id, "q1") == Some(AnswerState::Saved)
                && answer_state(o, &id, "q2") == Some(AnswerState::Saved)
        })
        .await;

    let dropped: Vec<_> = alice
        .take_seen()
        .into_iter()
        .filter(|e| matches!(e, Event::Connection(c) if c.state != ConnectionState::Online))
        .collect();
    assert!(dropped.is_empty(), "the socket was closed: {dropped:?}");
    let stored: BTreeMap<String, String> = prof
        .answers(&id, "alice")
        .await
        .into_iter()
        .map(|a| (a.question_id, a.content))
        .collect();
    assert!(stored["q1"] == large, "q1 is stored exactly");
    assert_eq!(stored["q2"], "after the large one");
}

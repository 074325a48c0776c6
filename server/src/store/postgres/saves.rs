//! Answer saves in groups: the saves that reach a node together are judged and stored in one
//! transaction, with a few statements for the whole group, and acknowledged once it commits.
//!
//! A transaction per save (a lock, a read, a write, an audit entry when late, the commit) held a
//! node near 4,000 acknowledgements a second however many students saved: every save paid its
//! round trips and its commit. Here each node keeps [`SHARDS`] queues; a student's saves always go
//! to the same one, in the order they arrived, and each queue's task takes everything waiting (at
//! most [`MAX_BATCH`]) into one transaction:
//!
//! 1. the participations of the group are locked in one statement, in key order, so that two
//!    groups (of this node's other queues, or of other nodes) that share participations take them
//!    in the same order and never deadlock; saves, submits, blocks and imports of one participation
//!    still run one at a time across every node;
//! 2. what decides each save is read in one statement, after the locks (so that it sees whatever
//!    committed before them), with the database's clock at the transaction's start: the arrival
//!    time of every save of the group, by which it is judged late on every node alike;
//! 3. each save is judged in order by [`rules`], against the stored answer as the saves before it
//!    in the group left it, exactly as the same saves one by one would be, and the new revisions
//!    and the late ones' audit entries are written with SQLite's statements ([`shared::store`]:
//!    one per round, a round holding at most one revision of each answer, so that a student's
//!    two revisions of one answer are applied in order, and one for the audit entries).
//!
//! A group that meets a deadlock or a serialization failure runs again whole, judged by its first
//! arrival time. A group that fails otherwise is stored again save by save, so that the one save
//! the database refuses gets the error it would have had alone and the others still commit.

use super::{ARRIVED_MS, Engine};
use crate::error::{Error, Result};
use crate::live::event::Event;
use crate::store::NewAnswer;
use crate::store::rows::{access, opt_ts, phase};
use crate::store::rules;
use crate::store::saves::{self as shared, Prior, Target};
use crate::store::tx::Row;
use invigil_protocol::{SaveAck, Timestamp, User};
use sqlx::Row as _;
use sqlx::postgres::PgConnection;
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub(super) use shared::SaveJob;

/// Queues (and so transactions at once) per node. One would leave the database idle while its
/// group commits; a few let one group's round trips overlap another's and its commit's flush.
pub(super) const SHARDS: usize = 4;
/// At most this many saves share one transaction.
pub(super) const MAX_BATCH: usize = 1024;

/// The node's save queues.
///
/// Unbounded, so that a save is queued at once when its future is first polled: a bounded queue's
/// `send` can be put off by tokio's cooperative budget, and a connection polling several saves at
/// once would then queue a later one before an earlier one. They are bounded all the same, by
/// the saves each connection may have in flight (`MAX_SAVES_IN_FLIGHT`) and the HTTP
/// connections' cap.
pub(super) struct Batcher {
    queues: Vec<mpsc::UnboundedSender<SaveJob>>,
}

impl Batcher {
    /// Starts one task per queue; they stop once `stop` is cancelled and what was queued is
    /// stored.
    pub(super) fn start(engine: &Engine, stop: &CancellationToken) -> (Self, Vec<JoinHandle<()>>) {
        let (queues, tasks) = (0..SHARDS)
            .map(|_| {
                let (queue, rx) = mpsc::unbounded_channel();
                let task = tokio::spawn(drain(engine.clone(), rx, stop.clone()));
                (queue, task)
            })
            .unzip();
        (Self { queues }, tasks)
    }

    /// Queues a save behind this student's earlier ones; its answer, once committed.
    pub(super) async fn save(&self, student: &User, answer: NewAnswer) -> Result<SaveAck> {
        let (done, answered) = oneshot::channel();
        let job = SaveJob {
            student: student.clone(),
            answer,
            done,
        };
        self.queues[queue_of(&student.id, self.queues.len())]
            .send(job)
            .map_err(|_| Error::internal("the node is shutting down"))?;
        answered
            .await
            .map_err(|_| Error::internal("the save was dropped before it was stored"))?
    }
}

/// The queue of a student: always the same one, so that their saves keep their order.
fn queue_of(user_id: &str, queues: usize) -> usize {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    user_id.hash(&mut hasher);
    (hasher.finish() % queues as u64) as usize
}

async fn drain(engine: Engine, mut rx: mpsc::UnboundedReceiver<SaveJob>, stop: CancellationToken) {
    let mut stopping = false;
    loop {
        let first = if stopping {
            rx.recv().await
        } else {
            tokio::select! {
                job = rx.recv() => job,
                () = stop.cancelled() => {
                    // Refuse new saves; store those already queued.
                    rx.close();
                    stopping = true;
                    continue;
                }
            }
        };
        let Some(first) = first else { break };
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        run(&engine, jobs).await;
    }
}

/// Stores a group of saves and answers each of them.
pub(super) async fn run(engine: &Engine, jobs: Vec<SaveJob>) {
    match store(engine, &jobs).await {
        Ok(results) => {
            for (job, result) in jobs.into_iter().zip(results) {
                let _ = job.done.send(result);
            }
        }
        Err(e) if jobs.len() > 1 => {
            tracing::warn!(error = %e, saves = jobs.len(), "a group of saves failed; storing each alone");
            for job in jobs {
                let result = store(engine, std::slice::from_ref(&job))
                    .await
                    .and_then(|mut results| results.pop().unwrap_or_else(|| Err(incomplete())));
                let _ = job.done.send(result);
            }
        }
        Err(e) => {
            if let Some(job) = jobs.into_iter().next() {
                let _ = job.done.send(Err(e));
            }
        }
    }
}

fn incomplete() -> Error {
    Error::internal("the saves' stored state came back incomplete")
}

/// One transaction for `jobs` (run again on a deadlock or serialization failure); each save's
/// answer, or the error that undid them all.
async fn store(engine: &Engine, jobs: &[SaveJob]) -> Result<Vec<Result<SaveAck>>> {
    // The arrival time of the first attempt: a group that runs again is judged as it arrived.
    let arrived = OnceLock::new();
    atomically!(engine, |conn, events| apply(conn, events, jobs, &arrived))
}

async fn apply(
    conn: &mut PgConnection,
    events: &mut Vec<Event>,
    jobs: &[SaveJob],
    arrived: &OnceLock<i64>,
) -> Result<Vec<Result<SaveAck>>> {
    lock(conn, jobs).await?;
    let (arrived_ms, priors) = priors(conn, jobs, arrived).await?;
    let now = Timestamp::from_unix_ms(arrived_ms)
        .ok_or_else(|| Error::internal("the database's clock is out of range"))?;
    let (results, stored_events) = shared::store(conn, jobs, &priors, now).await?;
    events.extend(stored_events);
    Ok(results)
}

/// Locks the group's participations until the commit, in key order.
async fn lock(conn: &mut PgConnection, jobs: &[SaveJob]) -> Result<()> {
    let mut keys: Vec<(&str, &str)> = jobs
        .iter()
        .map(|j| (j.answer.evaluation_id.as_str(), j.student.id.as_str()))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let (evaluations, users): (Vec<&str>, Vec<&str>) = keys.into_iter().unzip();
    sqlx::query(
        "SELECT 1 FROM participations p
         JOIN unnest($1::TEXT[], $2::TEXT[]) AS k(eid, uid) ON p.evaluation_id = k.eid AND p.user_id = k.uid
         ORDER BY p.evaluation_id, p.user_id
         FOR NO KEY UPDATE OF p",
    )
    .bind(evaluations)
    .bind(users)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The group's arrival time (the first attempt's) and, for every save in order, what decides it.
async fn priors(
    conn: &mut PgConnection,
    jobs: &[SaveJob],
    arrived: &OnceLock<i64>,
) -> Result<(i64, Vec<Prior>)> {
    let evaluations: Vec<&str> = jobs
        .iter()
        .map(|j| j.answer.evaluation_id.as_str())
        .collect();
    let students: Vec<&str> = jobs.iter().map(|j| j.student.id.as_str()).collect();
    let questions: Vec<&str> = jobs.iter().map(|j| j.answer.question_id.as_str()).collect();
    let rows = sqlx::query(&format!(
        "SELECT {ARRIVED_MS} AS arrived_ms, e.id IS NOT NULL AS found,
            e.phase, e.ends_at, e.access, e.owner_id,
            EXISTS (SELECT 1 FROM access_list al WHERE al.evaluation_id = r.eid AND al.user_id = r.uid) AS on_list,
            COALESCE(e.questions @> jsonb_build_array(jsonb_build_object('id', r.qid)), FALSE) AS has_question,
            p.status, a.revision, a.late, a.content_sha256,
            CASE WHEN a.content_sha256 IS NULL THEN a.content END AS legacy_content
         FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[]) WITH ORDINALITY AS r(eid, uid, qid, idx)
         LEFT JOIN evaluations e ON e.id = r.eid
         LEFT JOIN participations p ON p.evaluation_id = r.eid AND p.user_id = r.uid
         LEFT JOIN answers a ON a.evaluation_id = r.eid AND a.user_id = r.uid AND a.question_id = r.qid
         ORDER BY r.idx"
    ))
    .bind(evaluations)
    .bind(students)
    .bind(questions)
    .fetch_all(&mut *conn)
    .await?;
    let first = rows.first().ok_or_else(incomplete)?;
    let this_attempt: i64 = first.try_get("arrived_ms")?;
    let arrived_ms = *arrived.get_or_init(|| this_attempt);
    let now = Timestamp::from_unix_ms(arrived_ms)
        .ok_or_else(|| Error::internal("the database's clock is out of range"))?;
    let mut priors = Vec::with_capacity(rows.len());
    for row in rows {
        let found: bool = row.try_get("found")?;
        let evaluation = if found {
            let late = rules::is_late(
                phase(row.try_get("phase")?)?,
                opt_ts(row.try_get("ends_at")?)?,
                now,
            );
            Some(Target {
                late,
                owner_id: row.try_get("owner_id")?,
                access: access(row.try_get("access")?),
                has_question: row.try_get("has_question")?,
            })
        } else {
            None
        };
        priors.push(Prior::from_row(&Row::Postgres(row), evaluation)?);
    }
    if priors.len() != jobs.len() {
        return Err(incomplete());
    }
    Ok((arrived_ms, priors))
}

#[cfg(test)]
mod tests {
    //! Groups run against a fresh database on the PostgreSQL server of
    //! `INVIGIL_TEST_POSTGRES_URL`; without one each test says so and passes.

    use super::*;
    use crate::domain::Revision;
    use crate::live::event::Bus;
    use crate::store::Store;
    use crate::store::postgres::{NOW_MS, PostgresStore};
    use crate::store::saves::testing::{self, job};
    use invigil_protocol::ErrorCode;
    use sqlx::Connection as _;
    use std::time::Duration;

    /// A node on a database of its own, with an evaluation running and two students in it.
    struct Node {
        store: PostgresStore,
        professor: User,
        alice: User,
        bob: User,
        evaluation: String,
        _database: Database,
    }

    /// A database dropped (with every connection to it) when the test ends, however it ends.
    struct Database {
        admin: String,
        name: String,
    }

    impl Drop for Database {
        fn drop(&mut self) {
            let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
            let admin = &self.admin;
            // The tests' runtime has several threads: this one may wait while the others serve.
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(async {
                    if let Ok(mut conn) = sqlx::PgConnection::connect(admin).await {
                        let _ = sqlx::query(&drop).execute(&mut conn).await;
                    }
                })
            });
        }
    }

    async fn node() -> Option<Node> {
        let Ok(admin) = std::env::var("INVIGIL_TEST_POSTGRES_URL") else {
            eprintln!("skipped: INVIGIL_TEST_POSTGRES_URL is not set");
            return None;
        };
        let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await else {
            eprintln!("skipped: PostgreSQL at INVIGIL_TEST_POSTGRES_URL is unreachable");
            return None;
        };
        let name = format!("invigil_unit_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("CREATE DATABASE");
        let _ = conn.close().await;
        let database = Database {
            admin: admin.clone(),
            name: name.clone(),
        };
        let (server, _) = admin.rsplit_once('/').expect("the URL names a database");
        let (bus, _events) = Bus::new();
        let store = PostgresStore::open(&format!("{server}/{name}"), bus, Duration::from_secs(5))
            .await
            .expect("the node opens");
        let sitting = testing::sitting(&store, &["alice", "bob"]).await;
        let [alice, bob] = <[User; 2]>::try_from(sitting.students).unwrap();
        let (professor, evaluation) = (sitting.professor, sitting.evaluation);
        Some(Node {
            store,
            professor,
            alice,
            bob,
            evaluation,
            _database: database,
        })
    }

    /// Runs `saves` as one group; each one's answer, in order.
    async fn group(node: &Node, saves: &[(&User, &str, u64, &str)]) -> Vec<Result<SaveAck>> {
        let (jobs, answers): (Vec<_>, Vec<_>) = saves
            .iter()
            .map(|(student, question, revision, content)| {
                job(student, &node.evaluation, question, *revision, content)
            })
            .unzip();
        run(&node.store.engine, jobs).await;
        let mut results = Vec::new();
        for answer in answers {
            results.push(answer.await.expect("every save of a group is answered"));
        }
        results
    }

    /// The revision and lateness acknowledged, or the refusal's code.
    fn outcome(result: &Result<SaveAck>) -> std::result::Result<(u64, bool), ErrorCode> {
        match result {
            Ok(ack) => Ok((ack.revision, ack.late)),
            Err(e) => Err(e.code()),
        }
    }

    async fn stored_answer(
        node: &Node,
        student: &User,
        question: &str,
    ) -> invigil_protocol::Answer {
        node.store
            .answers(&node.evaluation, &student.id)
            .await
            .unwrap()
            .into_iter()
            .find(|a| a.question_id == question)
            .expect("the answer is stored")
    }

    async fn database_now(node: &Node) -> i64 {
        sqlx::query_scalar(&format!("SELECT {NOW_MS}"))
            .fetch_one(&node.store.engine.pool)
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_students_saves_in_one_group_are_judged_in_order_as_one_by_one() {
        let Some(node) = node().await else { return };
        let (alice, bob) = (&node.alice, &node.bob);
        let results = group(
            &node,
            &[
                (alice, "q1", 1, "a1"),
                (alice, "q1", 2, "a2"),
                // The revision just stored with other content: a conflict.
                (alice, "q1", 2, "other"),
                // Older than the stored one: acknowledged with the stored revision.
                (alice, "q1", 1, "a1"),
                (bob, "q1", 1, "b1"),
                (alice, "q1", 3, "a3"),
                (alice, "q9", 1, "no such question"),
                (bob, "q2", 1, "b2"),
            ],
        )
        .await;
        let outcomes: Vec<_> = results.iter().map(outcome).collect();
        assert_eq!(
            outcomes,
            [
                Ok((1, false)),
                Ok((2, false)),
                Err(ErrorCode::Conflict),
                Ok((2, false)),
                Ok((1, false)),
                Ok((3, false)),
                Err(ErrorCode::NotFound),
                Ok((1, false)),
            ]
        );
        let a = stored_answer(&node, alice, "q1").await;
        assert_eq!((a.revision, a.content.as_str()), (3, "a3"));
        assert_eq!(stored_answer(&node, bob, "q2").await.content, "b2");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_stored_revision_with_other_content_is_a_conflict_in_a_later_group() {
        let Some(node) = node().await else { return };
        let alice = &node.alice;
        let first = group(&node, &[(alice, "q1", 4, "kept")]).await;
        assert_eq!(outcome(&first[0]), Ok((4, false)));
        let second = group(
            &node,
            &[
                (alice, "q1", 4, "changed"),
                (alice, "q1", 4, "kept"),
                (alice, "q1", 3, "older"),
            ],
        )
        .await;
        let outcomes: Vec<_> = second.iter().map(outcome).collect();
        assert_eq!(
            outcomes,
            [Err(ErrorCode::Conflict), Ok((4, false)), Ok((4, false))]
        );
        assert_eq!(stored_answer(&node, alice, "q1").await.content, "kept");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_saves_of_one_student_are_stored_and_acknowledged_in_arrival_order() {
        let Some(node) = node().await else { return };
        // Queued all at once: whatever groups they fall into, each is judged after the one
        // before it, so each is newer than what is stored and acknowledged with its own revision
        // (one overtaken by a later revision would be acknowledged with that one's).
        let saves = (1..=200u64).map(|revision| {
            let student = if revision % 2 == 0 {
                &node.alice
            } else {
                &node.bob
            };
            let answer = NewAnswer {
                evaluation_id: node.evaluation.clone(),
                question_id: "q1".to_owned(),
                revision: Revision::new(revision).unwrap(),
                content: format!("r{revision}"),
            };
            node.store.save_answer(student, answer)
        });
        let acks = futures_util::future::join_all(saves).await;
        for (i, ack) in acks.iter().enumerate() {
            assert_eq!(outcome(ack), Ok((i as u64 + 1, false)), "save {}", i + 1);
        }
        assert_eq!(stored_answer(&node, &node.alice, "q1").await.revision, 200);
        assert_eq!(stored_answer(&node, &node.bob, "q1").await.revision, 199);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_group_is_judged_late_by_the_databases_clock_at_its_arrival() {
        let Some(node) = node().await else { return };
        let alice = &node.alice;
        let on_time = group(&node, &[(alice, "q1", 1, "on time")]).await;
        assert_eq!(outcome(&on_time[0]), Ok((1, false)));
        // Ended a minute ago by the database's clock (whatever this machine's says).
        let ended = Timestamp::from_unix_ms(database_now(&node).await - 60_000).unwrap();
        node.store
            .set_ends_at(&node.evaluation, Some(ended), &node.professor)
            .await
            .unwrap();
        let before = database_now(&node).await;
        let late = group(
            &node,
            &[(alice, "q1", 2, "late 2"), (alice, "q1", 3, "late 3")],
        )
        .await;
        let after = database_now(&node).await;
        let outcomes: Vec<_> = late.iter().map(outcome).collect();
        assert_eq!(outcomes, [Ok((2, true)), Ok((3, true))]);
        let answer = stored_answer(&node, alice, "q1").await;
        assert_eq!((answer.revision, answer.late), (3, true));
        let saved_at = answer.saved_at.unix_ms();
        assert!(
            (before..=after).contains(&saved_at),
            "stored at its arrival by the database's clock: {before} <= {saved_at} <= {after}"
        );
        // The first late revision kept the on-time one; the second left it as it was.
        let kept = answer.on_time.expect("the on-time revision is kept");
        assert_eq!((kept.revision, kept.content.as_str()), (1, "on time"));
        assert_eq!(
            testing::late_details(&node.store, &node.evaluation).await,
            [
                rules::late_answer_detail("q1", 2),
                rules::late_answer_detail("q1", 3)
            ]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_save_the_database_refuses_fails_alone_and_the_rest_of_its_group_is_stored() {
        let Some(node) = node().await else { return };
        // PostgreSQL's text holds no NUL character: this save fails in the database.
        let results = group(
            &node,
            &[
                (&node.alice, "q1", 1, "fine"),
                (&node.bob, "q1", 1, "nul \0 inside"),
                (&node.bob, "q2", 1, "fine too"),
            ],
        )
        .await;
        assert_eq!(outcome(&results[0]), Ok((1, false)));
        assert_eq!(outcome(&results[1]), Err(ErrorCode::Internal));
        assert_eq!(outcome(&results[2]), Ok((1, false)));
        assert_eq!(
            stored_answer(&node, &node.bob, "q2").await.content,
            "fine too"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_group_that_cannot_be_stored_answers_every_waiter_with_an_error() {
        let Some(node) = node().await else { return };
        // No connection can be had any more: every attempt fails.
        node.store.engine.pool.close().await;
        let results = group(
            &node,
            &[
                (&node.alice, "q1", 1, "a"),
                (&node.alice, "q2", 1, "b"),
                (&node.bob, "q1", 1, "c"),
            ],
        )
        .await;
        assert_eq!(results.len(), 3);
        for result in &results {
            assert_eq!(outcome(result), Err(ErrorCode::Internal));
        }
    }

    #[test]
    fn a_students_saves_always_go_to_the_same_queue() {
        let queue = queue_of("alice", SHARDS);
        assert!(queue < SHARDS);
        assert!((0..10).all(|_| queue_of("alice", SHARDS) == queue));
        let spread: std::collections::HashSet<usize> = (0..64)
            .map(|i| queue_of(&format!("student{i}"), SHARDS))
            .collect();
        assert_eq!(spread.len(), SHARDS, "students are spread over every queue");
    }
}

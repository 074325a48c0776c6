//! Answer saves in bulk: a run of consecutive saves in the writer's batch is read with two
//! queries, then judged and written by [`shared::store`] (a statement per round of new
//! revisions, usually one), inside the batch's transaction.
//!
//! Every statement costs a round trip to sqlx's SQLite worker thread, two thread wake-ups that
//! dwarf SQLite's own work: a save done alone (a savepoint, its read, its write, the release)
//! spent four, which held the server near 15,000 acknowledgements a second whatever the group
//! commit saved. The decisions are the contract's, taken in order by the same rules as a single
//! save, against the stored state as each earlier save of the run left it; so a run gives
//! exactly the answers and the rows that the same saves one by one would.

use super::{Completion, repeated, savepoint, settle};
use crate::error::{Error, Result};
use crate::live::event::Event;
use crate::store::rows::{access, opt_ts, phase};
use crate::store::rules;
use crate::store::saves::{self as shared, Prior, Target};
use crate::store::tx::Row;
use futures_util::future::BoxFuture;
use invigil_protocol::{Access, Phase, Question, SaveAck, Timestamp};
use sqlx::Row as _;
use sqlx::sqlite::SqliteConnection;
use std::collections::{HashMap, HashSet};
use tokio::sync::oneshot;

pub(super) use shared::SaveJob;

/// Rows per read, largest first. A run is cut into pieces of these sizes so that every statement
/// is one of a few, prepared once and cached: preparing a statement of a thousand rows anew for
/// every batch took a fifth of the writer's time. (SQLite takes at most 32,766 bound values; a
/// save's prior binds 4.)
const PIECES: [usize; 5] = [256, 64, 16, 4, 1];

/// Cuts `items` into consecutive pieces of the sizes of [`PIECES`], largest first.
fn pieces<T>(mut items: &[T]) -> Vec<&[T]> {
    let mut out = Vec::new();
    for size in PIECES {
        while items.len() >= size {
            let (piece, rest) = items.split_at(size);
            out.push(piece);
            items = rest;
        }
    }
    out
}

/// What the saves of one evaluation are judged against.
struct EvaluationState {
    phase: Phase,
    ends_at: Option<Timestamp>,
    access: Access,
    owner_id: String,
    questions: HashSet<String>,
}

/// Runs `saves` in order; one completion each, in the same order. A failure of the database
/// undoes the whole run and answers every save of it with an error (its client sends it again).
/// (Boxed, as the writer's other operations: the writer task must be `Send` for any borrow of
/// the connection, which the compiler proves only through a boxed future.)
pub(super) fn run(
    conn: &mut SqliteConnection,
    saves: Vec<SaveJob>,
) -> BoxFuture<'_, Vec<Completion>> {
    Box::pin(run_saves(conn, saves))
}

async fn run_saves(conn: &mut SqliteConnection, saves: Vec<SaveJob>) -> Vec<Completion> {
    let outcome = match savepoint(conn, "saves").await {
        Ok(()) => {
            let outcome = apply(conn, &saves).await;
            settle(conn, "saves", outcome).await
        }
        Err(e) => Err(e),
    };
    match outcome {
        Ok((results, events)) => {
            let last = saves.len().saturating_sub(1);
            let mut events = Some(events);
            saves
                .into_iter()
                .zip(results)
                .enumerate()
                .map(|(i, (save, result))| {
                    // The board's rows are published once, with the run's last save.
                    let events = if i == last {
                        events.take().unwrap_or_default()
                    } else {
                        Vec::new()
                    };
                    // A refusal is this save's alone; the others of the run still commit.
                    completion(save.done, result, events)
                })
                .collect()
        }
        Err(e) => {
            tracing::error!(error = ?e, saves = saves.len(), "a run of saves failed");
            saves
                .into_iter()
                .map(|save| {
                    let error = Error::internal("the database could not store this answer");
                    completion(save.done, Err(error), Vec::new())
                })
                .collect()
        }
    }
}

fn completion(
    done: oneshot::Sender<Result<SaveAck>>,
    result: Result<SaveAck>,
    events: Vec<Event>,
) -> Completion {
    Completion {
        events,
        done: Box::new(move |commit: Result<()>| {
            let _ = done.send(commit.and(result));
        }),
    }
}

/// Reads what decides the run, then judges and stores it ([`crate::store::saves::store`]);
/// each save's result, and the events of the whole run.
async fn apply(
    conn: &mut SqliteConnection,
    saves: &[SaveJob],
) -> Result<(Vec<Result<SaveAck>>, Vec<Event>)> {
    let evaluations = evaluations(conn, saves).await?;
    let now = Timestamp::now();
    let priors = priors(conn, saves, &evaluations, now).await?;
    shared::store(conn, saves, &priors, now).await
}

/// The evaluations the saves name, with their question ids.
async fn evaluations<'s>(
    conn: &mut SqliteConnection,
    saves: &'s [SaveJob],
) -> Result<HashMap<&'s str, EvaluationState>> {
    let mut ids: Vec<&str> = saves
        .iter()
        .map(|s| s.answer.evaluation_id.as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut found = HashMap::with_capacity(ids.len());
    for chunk in pieces(&ids) {
        let marks = repeated("?", chunk.len());
        let sql = format!(
            "SELECT id, phase, ends_at, access, owner_id, questions FROM evaluations \
             WHERE id IN ({marks})"
        );
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&mut *conn).await? {
            let id: String = row.try_get("id")?;
            let questions: String = row.try_get("questions")?;
            let questions: Vec<Question> = serde_json::from_str(&questions)
                .map_err(|e| Error::internal(format!("stored questions are not valid: {e}")))?;
            let Some(&key) = chunk.iter().find(|c| **c == id) else {
                continue;
            };
            found.insert(
                key,
                EvaluationState {
                    phase: phase(row.try_get("phase")?)?,
                    ends_at: opt_ts(row.try_get("ends_at")?)?,
                    access: access(row.try_get("access")?),
                    owner_id: row.try_get("owner_id")?,
                    questions: questions.into_iter().map(|q| q.id).collect(),
                },
            );
        }
    }
    Ok(found)
}

/// For every save, in order: its evaluation as a save at `now` is judged against, whether its
/// student is on the access list, their participation's status, and what is stored for the
/// question, as the batch found them.
async fn priors(
    conn: &mut SqliteConnection,
    saves: &[SaveJob],
    evaluations: &HashMap<&str, EvaluationState>,
    now: Timestamp,
) -> Result<Vec<Prior>> {
    let mut priors = Vec::with_capacity(saves.len());
    for chunk in pieces(saves) {
        let values = repeated("(?, ?, ?, ?)", chunk.len());
        let sql = format!(
            "WITH req(idx, eid, uid, qid) AS (VALUES {values})
             SELECT req.idx,
                EXISTS (SELECT 1 FROM access_list al WHERE al.evaluation_id = req.eid AND al.user_id = req.uid) AS on_list,
                p.status, a.revision, a.late, a.content_sha256,
                CASE WHEN a.content_sha256 IS NULL THEN a.content END AS legacy_content
             FROM req
             LEFT JOIN participations p ON p.evaluation_id = req.eid AND p.user_id = req.uid
             LEFT JOIN answers a ON a.evaluation_id = req.eid AND a.user_id = req.uid AND a.question_id = req.qid
             ORDER BY req.idx"
        );
        let mut query = sqlx::query(&sql);
        for (i, save) in chunk.iter().enumerate() {
            query = query
                .bind(i as i64)
                .bind(&save.answer.evaluation_id)
                .bind(&save.student.id)
                .bind(&save.answer.question_id);
        }
        for (row, save) in query.fetch_all(&mut *conn).await?.into_iter().zip(chunk) {
            let answer = &save.answer;
            let evaluation = evaluations
                .get(answer.evaluation_id.as_str())
                .map(|e| Target {
                    late: rules::is_late(e.phase, e.ends_at, now),
                    access: e.access,
                    owner_id: e.owner_id.clone(),
                    has_question: e.questions.contains(&answer.question_id),
                });
            priors.push(Prior::from_row(&Row::Sqlite(row), evaluation)?);
        }
    }
    if priors.len() != saves.len() {
        return Err(Error::internal(
            "the saves' stored state came back incomplete",
        ));
    }
    Ok(priors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::event::Bus;
    use crate::store::Store;
    use crate::store::saves::testing::{self, job};
    use crate::store::sqlite::SqliteStore;
    use invigil_protocol::{Answer, User};
    use sqlx::ConnectOptions as _;
    use sqlx::sqlite::SqliteConnectOptions;
    use std::str::FromStr as _;

    /// A database with an evaluation running and one student in it, and a connection of the
    /// test's own to run saves on as the writer runs them (the store's writer stays idle between
    /// the test's calls, so each run is exactly the saves given, in one savepoint).
    struct Exam {
        store: SqliteStore,
        conn: SqliteConnection,
        professor: User,
        alice: User,
        evaluation: String,
        _dir: tempfile::TempDir,
    }

    async fn exam() -> Exam {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("invigil.db");
        let path = path.to_str().unwrap();
        let (bus, _events) = Bus::new();
        let store = SqliteStore::open(path, bus).await.unwrap();
        let conn = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
            .unwrap()
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(30))
            .connect()
            .await
            .unwrap();
        let sitting = testing::sitting(&store, &["alice"]).await;
        Exam {
            store,
            conn,
            professor: sitting.professor,
            alice: sitting.students[0].clone(),
            evaluation: sitting.evaluation,
            _dir: dir,
        }
    }

    impl Exam {
        /// Runs these revisions of alice's answer to q1 as one run of the writer's; each one's
        /// revision and lateness as acknowledged.
        async fn run(&mut self, saves: &[(u64, &str)]) -> Vec<(u64, bool)> {
            let (jobs, answers): (Vec<_>, Vec<_>) = saves
                .iter()
                .map(|&(revision, content)| {
                    job(&self.alice, &self.evaluation, "q1", revision, content)
                })
                .unzip();
            for completion in run(&mut self.conn, jobs).await {
                (completion.done)(Ok(()));
            }
            let mut acks = Vec::new();
            for answer in answers {
                let ack = answer.await.unwrap().unwrap();
                acks.push((ack.revision, ack.late));
            }
            acks
        }

        /// Moves the end to `offset_ms` from now.
        async fn end_in(&self, offset_ms: i64) {
            let end = Timestamp::from_unix_ms(Timestamp::now().unix_ms() + offset_ms).unwrap();
            self.store
                .set_ends_at(&self.evaluation, Some(end), &self.professor)
                .await
                .unwrap();
        }

        async fn stored(&self) -> Answer {
            let answers = self
                .store
                .answers(&self.evaluation, &self.alice.id)
                .await
                .unwrap();
            answers.into_iter().find(|a| a.question_id == "q1").unwrap()
        }
    }

    /// The revision and content kept on time, if any.
    fn kept(answer: &Answer) -> Option<(u64, &str)> {
        answer
            .on_time
            .as_ref()
            .map(|kept| (kept.revision, kept.content.as_str()))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_keep_the_on_time_revision_as_the_rules_say() {
        let mut exam = exam().await;
        assert_eq!(exam.run(&[(1, "on time")]).await, [(1, false)]);
        let on_time = exam.stored().await;
        exam.end_in(-60_000).await;

        // On time, then late: the on-time revision is kept beside the late one.
        assert_eq!(exam.run(&[(2, "late 2")]).await, [(2, true)]);
        let answer = exam.stored().await;
        assert_eq!((answer.revision, answer.late), (2, true));
        assert_eq!(kept(&answer), Some((1, "on time")));
        let kept_at = answer.on_time.as_ref().unwrap().saved_at;
        assert_eq!(kept_at, on_time.saved_at);

        // Late, then late: the kept revision is left as it was.
        assert_eq!(exam.run(&[(3, "late 3")]).await, [(3, true)]);
        let answer = exam.stored().await;
        assert_eq!((answer.revision, answer.late), (3, true));
        assert_eq!(kept(&answer), Some((1, "on time")));

        // Late, then on time once the end has moved: nothing is kept any more.
        exam.end_in(3_600_000).await;
        assert_eq!(exam.run(&[(4, "on time again")]).await, [(4, false)]);
        let answer = exam.stored().await;
        assert_eq!((answer.revision, answer.late), (4, false));
        assert_eq!(kept(&answer), None);

        // Each late revision is audited, once.
        let lates = testing::late_details(&exam.store, &exam.evaluation).await;
        assert_eq!(lates, [2, 3].map(|r| rules::late_answer_detail("q1", r)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn saves_of_one_answer_in_one_run_are_applied_in_order() {
        let mut exam = exam().await;
        // A first answer and a newer revision of it, in one run.
        assert_eq!(
            exam.run(&[(1, "first"), (2, "on time")]).await,
            [(1, false), (2, false)]
        );
        let answer = exam.stored().await;
        assert_eq!((answer.revision, answer.content.as_str()), (2, "on time"));
        assert_eq!(kept(&answer), None);

        // After the end, two late revisions in one run: the first keeps revision 2 (as stored
        // before the run), the second leaves that as the first left it.
        exam.end_in(-60_000).await;
        assert_eq!(
            exam.run(&[(3, "late 3"), (4, "late 4"), (4, "late 4")])
                .await,
            [(3, true), (4, true), (4, true)]
        );
        let answer = exam.stored().await;
        assert_eq!(
            (answer.revision, answer.content.as_str(), answer.late),
            (4, "late 4", true)
        );
        assert_eq!(kept(&answer), Some((2, "on time")));
    }

    #[test]
    fn a_run_is_cut_into_pieces_of_the_cached_sizes_in_order() {
        let items: Vec<u32> = (0..600).collect();
        let sizes: Vec<usize> = pieces(&items).iter().map(|p| p.len()).collect();
        assert_eq!(sizes, vec![256, 256, 64, 16, 4, 4]);
        let joined: Vec<u32> = pieces(&items).concat();
        assert_eq!(joined, items);
        assert!(pieces::<u32>(&[]).is_empty());
    }
}

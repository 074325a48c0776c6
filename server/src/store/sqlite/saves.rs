//! Answer saves in bulk: a run of consecutive saves in the writer's batch is read with two
//! queries and written with one statement, inside the batch's transaction.
//!
//! Every statement costs a round trip to sqlx's SQLite worker thread, two thread wake-ups that
//! dwarf SQLite's own work: a save done alone (a savepoint, its read, its write, the release)
//! spent four, which held the server near 15,000 acknowledgements a second whatever the group
//! commit saved. The decisions are the contract's, taken in order by the same rules as a single
//! save ([`rules::check_save`], [`rules::is_late`], [`rules::decide_save`]), against the stored
//! state as each earlier save of the run left it; so a run gives exactly the answers and the rows
//! that the same saves one by one would.

use super::{Completion, audit, participant_row, repeated, savepoint, settle};
use crate::error::{Error, Result};
use crate::live::event::{Event, ParticipantEvent};
use crate::store::NewAnswer;
use crate::store::rows::{access, opt_ts, phase, status, stored};
use crate::store::rules::{self, Digest, SaveDecision, Stored};
use futures_util::future::BoxFuture;
use invigil_protocol::{Access, AuditKind, Phase, Question, SaveAck, Timestamp, User};
use sqlx::Row;
use sqlx::sqlite::SqliteConnection;
use std::collections::{HashMap, HashSet};
use tokio::sync::oneshot;

/// Rows per statement, largest first. A run is cut into pieces of these sizes so that every
/// statement is one of a few, prepared once and cached: preparing a statement of a thousand rows
/// anew for every batch took a fifth of the writer's time. (SQLite takes at most 32,766 bound
/// values; a written answer binds 8.)
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

/// A save waiting for the writer.
pub(super) struct SaveJob {
    pub(super) student: User,
    pub(super) answer: NewAnswer,
    pub(super) done: oneshot::Sender<Result<SaveAck>>,
}

/// What the saves of one evaluation are judged against.
struct EvaluationState {
    phase: Phase,
    ends_at: Option<Timestamp>,
    access: Access,
    owner_id: String,
    questions: HashSet<String>,
}

/// What is stored for one save's student and question.
struct Prior {
    on_list: bool,
    status: Option<String>,
    stored: Option<Stored>,
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

/// Judges and writes the run; each save's result, and the events of the whole run.
async fn apply(
    conn: &mut SqliteConnection,
    saves: &[SaveJob],
) -> Result<(Vec<Result<SaveAck>>, Vec<Event>)> {
    let evaluations = evaluations(conn, saves).await?;
    let priors = priors(conn, saves).await?;
    let now = Timestamp::now();
    // What is stored for each (evaluation, student, question) as the saves before left it.
    let mut current: HashMap<(&str, &str, &str), Option<Stored>> = HashMap::new();
    let mut results = Vec::with_capacity(saves.len());
    let digests: Vec<Digest> = saves
        .iter()
        .map(|s| Digest::of(&s.answer.content))
        .collect();
    let mut writes: Vec<(usize, bool)> = Vec::new();
    // Participants whose board row changes (a first answer, or late becoming on time or back).
    let mut changed: Vec<(&str, &str, &str)> = Vec::new();
    for (i, (save, prior)) in saves.iter().zip(priors).enumerate() {
        let answer = &save.answer;
        let Some(evaluation) = evaluations.get(answer.evaluation_id.as_str()) else {
            results.push(Err(Error::not_found(format!(
                "There is no evaluation `{}`.",
                answer.evaluation_id
            ))));
            continue;
        };
        let eligible = rules::eligible(evaluation.access, prior.on_list);
        let has_question = evaluation.questions.contains(&answer.question_id);
        let status = status(prior.status.as_deref())?;
        if let Err(code) = rules::check_save(eligible, has_question, status) {
            results.push(Err(rules::reject_error(code)));
            continue;
        }
        let late = rules::is_late(evaluation.phase, evaluation.ends_at, now);
        let key = (
            answer.evaluation_id.as_str(),
            save.student.id.as_str(),
            answer.question_id.as_str(),
        );
        let stored = *current.entry(key).or_insert(prior.stored);
        let revision = answer.revision.get();
        let digest = digests[i];
        let (revision, late) = match rules::decide_save(stored, revision, digest, late) {
            SaveDecision::Conflict => {
                results.push(Err(rules::reject_error(
                    invigil_protocol::RejectCode::Conflict,
                )));
                continue;
            }
            SaveDecision::Keep { revision, late } => (revision, late),
            SaveDecision::Write { late, .. } => {
                writes.push((i, late));
                current.insert(
                    key,
                    Some(Stored {
                        revision,
                        late,
                        digest,
                    }),
                );
                let pair = (key.0, key.1, evaluation.owner_id.as_str());
                if stored.is_none_or(|s| s.late != late) && !changed.contains(&pair) {
                    changed.push(pair);
                }
                (revision, late)
            }
        };
        results.push(Ok(SaveAck {
            question_id: answer.question_id.clone(),
            revision,
            late,
        }));
    }
    write(conn, saves, &digests, &writes, now).await?;
    for &(i, late) in &writes {
        if late {
            let (save, answer) = (&saves[i], &saves[i].answer);
            let detail = rules::late_answer_detail(&answer.question_id, answer.revision.get());
            audit(
                conn,
                &answer.evaluation_id,
                AuditKind::LateAnswer,
                Some(&save.student.username),
                None,
                &detail,
            )
            .await?;
        }
    }
    let mut events = Vec::with_capacity(changed.len());
    for (evaluation_id, user_id, owner_id) in changed {
        events.push(Event::Participant(ParticipantEvent {
            evaluation_id: evaluation_id.to_owned(),
            owner_id: owner_id.to_owned(),
            row: participant_row(conn, evaluation_id, user_id).await?,
        }));
    }
    Ok((results, events))
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

/// For every save, in order: whether its student is on the access list, their participation's
/// status, and what is stored for the question, as the batch found them.
async fn priors(conn: &mut SqliteConnection, saves: &[SaveJob]) -> Result<Vec<Prior>> {
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
        for row in query.fetch_all(&mut *conn).await? {
            let stored = stored(
                row.try_get("revision")?,
                row.try_get("late")?,
                row.try_get("content_sha256")?,
                row.try_get("legacy_content")?,
            )?;
            priors.push(Prior {
                on_list: row.try_get("on_list")?,
                status: row.try_get("status")?,
                stored,
            });
        }
    }
    if priors.len() != saves.len() {
        return Err(Error::internal(
            "the saves' stored state came back incomplete",
        ));
    }
    Ok(priors)
}

/// Writes the saves that store a new revision, in order. The kept on-time revision follows the
/// late rule of [`rules::decide_save`], from the new save's lateness and the stored one's: an
/// on-time save clears it; a late one over an on-time one keeps that one; a late one over a late
/// one leaves it as it was. Two saves of one answer in one statement are applied in order.
async fn write(
    conn: &mut SqliteConnection,
    saves: &[SaveJob],
    digests: &[Digest],
    writes: &[(usize, bool)],
    now: Timestamp,
) -> Result<()> {
    for chunk in pieces(writes) {
        let values = repeated("(?, ?, ?, ?, ?, ?, ?, ?)", chunk.len());
        let sql = format!(
            "INSERT INTO answers (evaluation_id, user_id, question_id, revision, content, saved_at, late, content_sha256)
             VALUES {values}
             ON CONFLICT (evaluation_id, user_id, question_id) DO UPDATE SET
               on_time_revision = CASE WHEN excluded.late = 0 THEN NULL WHEN answers.late = 1 THEN answers.on_time_revision ELSE answers.revision END,
               on_time_content = CASE WHEN excluded.late = 0 THEN NULL WHEN answers.late = 1 THEN answers.on_time_content ELSE answers.content END,
               on_time_saved_at = CASE WHEN excluded.late = 0 THEN NULL WHEN answers.late = 1 THEN answers.on_time_saved_at ELSE answers.saved_at END,
               revision = excluded.revision, content = excluded.content,
               saved_at = excluded.saved_at, late = excluded.late, source = NULL,
               content_sha256 = excluded.content_sha256"
        );
        let mut query = sqlx::query(&sql);
        for &(i, late) in chunk {
            let (save, answer) = (&saves[i], &saves[i].answer);
            query = query
                .bind(&answer.evaluation_id)
                .bind(&save.student.id)
                .bind(&answer.question_id)
                .bind(answer.revision.get() as i64)
                .bind(&answer.content)
                .bind(now.unix_ms())
                .bind(late)
                .bind(digests[i].as_bytes());
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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

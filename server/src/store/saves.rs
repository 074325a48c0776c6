//! Answer saves judged and written once for every engine. Each engine gathers the saves that
//! arrive together its own way (SQLite: a run of the writer's batch; PostgreSQL: a queue's
//! group) and reads what decides them with its own statements; then this module judges them in
//! order by [`rules`] and writes the new revisions, the late audit entries and the board's rows
//! with the same statements on both.
//!
//! A run's rows go in as one `VALUES` list per statement, padded with rows of NULLs up to one of
//! a few [`SIZES`]: every statement is then one of a few texts, prepared once and kept in each
//! connection's statement cache (preparing a statement of a thousand rows anew for every run
//! took a fifth of SQLite's writer's time), and a run takes one statement where pieces of those
//! sizes took several.

use super::NewAnswer;
use super::participants::participant_row;
use super::rows::{status, stored};
use super::rules::{self, Digest, OnTimeAction, SaveDecision, Stored};
use super::tx::{Arg, Args, Row, Tx};
use crate::error::{Error, Result};
use crate::live::event::{Event, ParticipantEvent};
use invigil_protocol::{Access, AuditKind, RejectCode, SaveAck, Timestamp, User};
use std::collections::HashMap;
use std::sync::OnceLock;
use tokio::sync::oneshot;

/// Rows per statement. A statement's rows are padded up to the smallest that holds them; a
/// round of more than the largest is cut into pieces of the largest. (SQLite takes at most
/// 32,766 bound values, PostgreSQL 65,535; a written answer binds 8.)
const SIZES: [usize; 6] = [1, 4, 16, 64, 256, 1024];

/// A save waiting for its run.
pub struct SaveJob {
    /// Who saves.
    pub student: User,
    /// What.
    pub answer: NewAnswer,
    /// Where its answer goes once its run is committed (or undone).
    pub done: oneshot::Sender<Result<SaveAck>>,
}

/// The evaluation a save names, as far as judging it needs.
pub struct Target {
    /// Whether a save arriving now is late.
    pub late: bool,
    /// Who may take part.
    pub access: Access,
    /// Its owner (whose board shows the student's row).
    pub owner_id: String,
    /// Whether the saved question is one of its questions.
    pub has_question: bool,
}

/// What decides one save, as its run found it.
pub struct Prior {
    /// `None` when the evaluation does not exist.
    pub evaluation: Option<Target>,
    /// Whether the student is on the evaluation's access list.
    pub on_list: bool,
    /// Their participation's stored status, if they have one.
    pub status: Option<String>,
    /// The stored answer to the question.
    pub stored: Option<Stored>,
}

impl Prior {
    /// The prior of a save to `evaluation`, from a row of the columns `on_list`, `status`,
    /// `revision`, `late`, `content_sha256` and `legacy_content` (see [`stored`]).
    pub fn from_row(row: &Row, evaluation: Option<Target>) -> Result<Self> {
        Ok(Self {
            evaluation,
            on_list: row.get("on_list")?,
            status: row.get("status")?,
            stored: stored(
                row.get("revision")?,
                row.get("late")?,
                row.get("content_sha256")?,
                row.get("legacy_content")?,
            )?,
        })
    }
}

/// A new revision to write.
struct NewRevision {
    /// Its save's index in the run.
    index: usize,
    late: bool,
    /// `None` for a first answer to the question (inserted); else what [`rules::decide_save`]
    /// chose for the kept on-time revision.
    on_time: Option<OnTimeAction>,
    /// The how-manyth write of its answer in the run.
    round: usize,
}

/// Judges `saves` in order against `priors` (one each), as the same saves one by one would be,
/// and stores the ones that write a new revision; each save's answer, and the board's events.
/// `now` is the run's arrival time, stored as the new revisions' time.
pub async fn store(
    tx: &mut dyn Tx,
    saves: &[SaveJob],
    priors: &[Prior],
    now: Timestamp,
) -> Result<(Vec<Result<SaveAck>>, Vec<Event>)> {
    if priors.len() != saves.len() {
        return Err(Error::internal(
            "the saves' stored state came back incomplete",
        ));
    }
    let digests: Vec<Digest> = saves
        .iter()
        .map(|s| Digest::of(&s.answer.content))
        .collect();
    // What is stored for each answer as the saves before left it, and how often it was written.
    let mut current: HashMap<(&str, &str, &str), (Option<Stored>, usize)> = HashMap::new();
    let mut results = Vec::with_capacity(saves.len());
    let mut writes = Vec::new();
    // Participants whose board row changes (a first answer, or late becoming on time or back).
    let mut changed: Vec<(&str, &str, &str)> = Vec::new();
    for (index, (save, prior)) in saves.iter().zip(priors).enumerate() {
        let answer = &save.answer;
        let Some(evaluation) = &prior.evaluation else {
            results.push(Err(Error::not_found(format!(
                "There is no evaluation `{}`.",
                answer.evaluation_id
            ))));
            continue;
        };
        let eligible = rules::eligible(evaluation.access, prior.on_list);
        let status = status(prior.status.as_deref())?;
        if let Err(code) = rules::check_save(eligible, evaluation.has_question, status) {
            results.push(Err(rules::reject_error(code)));
            continue;
        }
        let key = (
            answer.evaluation_id.as_str(),
            save.student.id.as_str(),
            answer.question_id.as_str(),
        );
        let (stored, written) = *current.entry(key).or_insert((prior.stored, 0));
        let revision = answer.revision.get();
        let digest = digests[index];
        match rules::decide_save(stored, revision, digest, evaluation.late) {
            SaveDecision::Conflict => {
                results.push(Err(rules::reject_error(RejectCode::Conflict)));
            }
            SaveDecision::Keep { revision, late } => {
                results.push(Ok(ack(answer, revision, late)));
            }
            SaveDecision::Write { late, on_time } => {
                writes.push(NewRevision {
                    index,
                    late,
                    on_time: stored.map(|_| on_time),
                    round: written,
                });
                let now_stored = Stored {
                    revision,
                    late,
                    digest,
                };
                current.insert(key, (Some(now_stored), written + 1));
                let pair = (key.0, key.1, evaluation.owner_id.as_str());
                if stored.is_none_or(|s| s.late != late) && !changed.contains(&pair) {
                    changed.push(pair);
                }
                results.push(Ok(ack(answer, revision, late)));
            }
        }
    }
    write(tx, saves, &digests, &writes, now).await?;
    audit_late(tx, saves, &writes).await?;
    let mut events = Vec::with_capacity(changed.len());
    for (evaluation_id, user_id, owner_id) in changed {
        events.push(Event::Participant(ParticipantEvent {
            evaluation_id: evaluation_id.to_owned(),
            owner_id: owner_id.to_owned(),
            row: participant_row(tx, evaluation_id, user_id).await?,
        }));
    }
    Ok((results, events))
}

fn ack(answer: &NewAnswer, revision: u64, late: bool) -> SaveAck {
    SaveAck {
        question_id: answer.question_id.clone(),
        revision,
        late,
    }
}

/// `rows` cut into statements: pieces of the largest of [`SIZES`], then the rest; each with the
/// size it is padded to.
fn statements<T>(mut rows: &[T]) -> Vec<(&[T], usize)> {
    let largest = SIZES[SIZES.len() - 1];
    let mut out = Vec::new();
    while !rows.is_empty() {
        let (piece, rest) = rows.split_at(rows.len().min(largest));
        let size = SIZES
            .into_iter()
            .find(|&size| size >= piece.len())
            .unwrap_or(largest);
        out.push((piece, size));
        rows = rest;
    }
    out
}

/// `rows` rows of `columns` placeholders each, numbered from `$first`: a `VALUES` list.
fn values(rows: usize, columns: usize, first: usize) -> String {
    let mut out = String::with_capacity(rows * columns * 6);
    for row in 0..rows {
        if row > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for column in 0..columns {
            if column > 0 {
                out.push_str(", ");
            }
            out.push('$');
            out.push_str(&(first + row * columns + column).to_string());
        }
        out.push(')');
    }
    out
}

/// A statement of a few rows at a time: its text for each of [`SIZES`] (made once), and a row
/// of typed NULLs to pad with (PostgreSQL wants every parameter's type).
struct Multirow {
    texts: OnceLock<Vec<String>>,
    make: fn(usize) -> String,
    nulls: &'static [Arg],
}

impl Multirow {
    const fn new(make: fn(usize) -> String, nulls: &'static [Arg]) -> Self {
        Self {
            texts: OnceLock::new(),
            make,
            nulls,
        }
    }

    /// Runs the statement over `rows`, as few times as [`statements`] cuts them: `head` binds
    /// the placeholders before the rows', `bind` each row's.
    async fn run<T>(
        &'static self,
        tx: &mut dyn Tx,
        head: &[Arg],
        rows: &[T],
        mut bind: impl FnMut(usize, &T, &mut Args),
    ) -> Result<()> {
        let texts = self
            .texts
            .get_or_init(|| SIZES.into_iter().map(self.make).collect());
        for (piece, size) in statements(rows) {
            let mut args: Args = Vec::with_capacity(head.len() + size * self.nulls.len());
            args.extend_from_slice(head);
            for (i, row) in piece.iter().enumerate() {
                bind(i, row, &mut args);
            }
            for _ in piece.len()..size {
                args.extend_from_slice(self.nulls);
            }
            let text = SIZES.iter().position(|&s| s == size).map(|i| &texts[i]);
            let text = text.ok_or_else(|| Error::internal("a statement of no known size"))?;
            tx.execute(text, args).await?;
        }
        Ok(())
    }
}

/// The new revisions (`$1` their time). The kept on-time revision is what the save's action
/// makes of the stored row: the stored revision (1), the kept one as it is (2), or nothing (a
/// first answer, or a clear: 0). (Applied in the `SELECT`, which reads the row as the statement
/// found it: hence rounds.)
static WRITE: Multirow = Multirow::new(
    |rows| {
        format!(
            "WITH r (eid, uid, qid, revision, content, late, on_time, sha) AS (VALUES {})
             INSERT INTO answers (evaluation_id, user_id, question_id, revision, content, saved_at,
                                  late, content_sha256, on_time_revision, on_time_content,
                                  on_time_saved_at)
             SELECT r.eid, r.uid, r.qid, r.revision, r.content, $1, r.late, r.sha,
               CASE r.on_time WHEN 1 THEN a.revision WHEN 2 THEN a.on_time_revision END,
               CASE r.on_time WHEN 1 THEN a.content WHEN 2 THEN a.on_time_content END,
               CASE r.on_time WHEN 1 THEN a.saved_at WHEN 2 THEN a.on_time_saved_at END
             FROM r LEFT JOIN answers a
               ON a.evaluation_id = r.eid AND a.user_id = r.uid AND a.question_id = r.qid
             WHERE r.eid IS NOT NULL
             ON CONFLICT (evaluation_id, user_id, question_id) DO UPDATE SET
               revision = excluded.revision, content = excluded.content,
               saved_at = excluded.saved_at, late = excluded.late, source = NULL,
               content_sha256 = excluded.content_sha256,
               on_time_revision = excluded.on_time_revision,
               on_time_content = excluded.on_time_content,
               on_time_saved_at = excluded.on_time_saved_at",
            values(rows, 8, 2)
        )
    },
    &WRITE_NULLS,
);

static WRITE_NULLS: [Arg; 8] = [
    Arg::Text(None),
    Arg::Text(None),
    Arg::Text(None),
    Arg::Int(None),
    Arg::Text(None),
    Arg::Bool(None),
    Arg::Int(None),
    Arg::Bytes(None),
];

/// Audit entries (`$1` their time, `$2` their kind), in order.
static AUDIT: Multirow = Multirow::new(
    |rows| {
        format!(
            "WITH l (idx, eid, username, detail) AS (VALUES {})
             INSERT INTO audit (evaluation_id, at, kind, username, actor, detail)
             SELECT eid, $1, $2, username, NULL, detail FROM l WHERE eid IS NOT NULL ORDER BY idx",
            values(rows, 4, 3)
        )
    },
    &AUDIT_NULLS,
);

static AUDIT_NULLS: [Arg; 4] = [
    Arg::Int(None),
    Arg::Text(None),
    Arg::Text(None),
    Arg::Text(None),
];

/// Writes the new revisions, one statement per round: a round holds at most one revision of
/// each answer, so that each reads the stored row as the round before left it (and PostgreSQL
/// updates no row twice in one statement).
async fn write(
    tx: &mut dyn Tx,
    saves: &[SaveJob],
    digests: &[Digest],
    writes: &[NewRevision],
    now: Timestamp,
) -> Result<()> {
    let rounds = writes.iter().map(|w| w.round + 1).max().unwrap_or(0);
    for round in 0..rounds {
        let these: Vec<&NewRevision> = writes.iter().filter(|w| w.round == round).collect();
        WRITE
            .run(tx, &[Arg::from(now.unix_ms())], &these, |_, w, args| {
                let (save, answer) = (&saves[w.index], &saves[w.index].answer);
                args.push(Arg::from(&answer.evaluation_id));
                args.push(Arg::from(&save.student.id));
                args.push(Arg::from(&answer.question_id));
                args.push(Arg::from(answer.revision.get() as i64));
                args.push(Arg::from(&answer.content));
                args.push(Arg::from(w.late));
                args.push(Arg::from(w.on_time.map(|action| match action {
                    OnTimeAction::Clear => 0,
                    OnTimeAction::KeepStored => 1,
                    OnTimeAction::Unchanged => 2,
                })));
                args.push(Arg::from(digests[w.index].as_bytes()));
            })
            .await?;
    }
    Ok(())
}

/// One audit entry per late revision written, in the order of the saves.
async fn audit_late(tx: &mut dyn Tx, saves: &[SaveJob], writes: &[NewRevision]) -> Result<()> {
    let late: Vec<&SaveJob> = writes
        .iter()
        .filter(|w| w.late)
        .map(|w| &saves[w.index])
        .collect();
    let head = [
        Arg::from(Timestamp::now().unix_ms()),
        Arg::from(AuditKind::LateAnswer.as_str()),
    ];
    AUDIT
        .run(tx, &head, &late, |i, save, args| {
            let answer = &save.answer;
            args.push(Arg::from(i as i64));
            args.push(Arg::from(&answer.evaluation_id));
            args.push(Arg::from(&save.student.username));
            args.push(Arg::from(rules::late_answer_detail(
                &answer.question_id,
                answer.revision.get(),
            )));
        })
        .await
}

/// What both engines' tests of saves start from.
#[cfg(test)]
pub mod testing {
    use super::SaveJob;
    use crate::domain::Revision;
    use crate::error::Result;
    use crate::store::{NewAccount, NewAnswer, NewEvaluation, Store};
    use invigil_protocol::{
        Access, AuditKind, Phase, Proctoring, Question, QuestionKind, Role, SaveAck, User,
    };
    use tokio::sync::oneshot;

    /// An evaluation running (questions q1 and q2, no end) with students in it.
    pub struct Sitting {
        /// Its owner.
        pub professor: User,
        /// The students who joined, in the order named.
        pub students: Vec<User>,
        /// Its id.
        pub evaluation: String,
    }

    /// Makes a [`Sitting`] of these students on `store`.
    pub async fn sitting(store: &impl Store, students: &[&str]) -> Sitting {
        let account = |username: &str, role| NewAccount {
            id: uuid::Uuid::new_v4().to_string(),
            username: username.to_owned(),
            display_name: username.to_owned(),
            role,
            password_hash: "unused".to_owned(),
        };
        let professor = store
            .create_account(account("prof", Role::Professor))
            .await
            .unwrap();
        let question = |id: &str| Question {
            id: id.to_owned(),
            prompt: format!("Question {id}"),
            kind: QuestionKind::Text,
        };
        let evaluation = store
            .create_evaluation(
                &professor,
                NewEvaluation {
                    id: "e1".to_owned(),
                    title: "Saves".to_owned(),
                    questions: vec![question("q1"), question("q2")],
                    ends_at: None,
                    access: Access::Open,
                    proctoring: Proctoring::default(),
                },
            )
            .await
            .unwrap()
            .id;
        store
            .set_phase(&evaluation, Phase::InProgress, &professor)
            .await
            .unwrap();
        let mut joined = Vec::new();
        for username in students {
            let student = store
                .create_account(account(username, Role::Student))
                .await
                .unwrap();
            store.join(&evaluation, &student).await.unwrap();
            joined.push(student);
        }
        Sitting {
            professor,
            students: joined,
            evaluation,
        }
    }

    /// A save and where its answer will come.
    pub fn job(
        student: &User,
        evaluation: &str,
        question: &str,
        revision: u64,
        content: &str,
    ) -> (SaveJob, oneshot::Receiver<Result<SaveAck>>) {
        let (done, answered) = oneshot::channel();
        let job = SaveJob {
            student: student.clone(),
            answer: NewAnswer {
                evaluation_id: evaluation.to_owned(),
                question_id: question.to_owned(),
                revision: Revision::new(revision).unwrap(),
                content: content.to_owned(),
            },
            done,
        };
        (job, answered)
    }

    /// The details of the evaluation's late-answer audit entries, oldest first.
    pub async fn late_details(store: &impl Store, evaluation: &str) -> Vec<String> {
        store
            .audit(evaluation)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == AuditKind::LateAnswer)
            .map(|e| e.detail)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(rows: &[u32]) -> Vec<(usize, usize)> {
        statements(rows)
            .iter()
            .map(|(p, s)| (p.len(), *s))
            .collect()
    }

    #[test]
    fn rows_are_cut_at_the_largest_size_and_padded_to_the_next_one() {
        let rows: Vec<u32> = (0..2100).collect();
        assert_eq!(cut(&rows), [(1024, 1024), (1024, 1024), (52, 64)]);
        let joined: Vec<u32> = statements(&rows)
            .iter()
            .flat_map(|(p, _)| p.iter().copied())
            .collect();
        assert_eq!(joined, rows);
        assert_eq!(cut(&rows[..1]), [(1, 1)]);
        assert_eq!(cut(&rows[..5]), [(5, 16)]);
        assert!(cut(&[]).is_empty());
    }

    #[test]
    fn a_values_list_numbers_its_placeholders_row_by_row() {
        assert_eq!(values(2, 3, 2), "($2, $3, $4), ($5, $6, $7)");
    }

    #[test]
    fn every_statement_binds_its_rows_and_stays_within_both_engines_limits() {
        // SQLite binds at most 32,766 values, PostgreSQL 65,535.
        for (statement, head) in [(&WRITE, 1), (&AUDIT, 2)] {
            for size in SIZES {
                let text = (statement.make)(size);
                let binds = head + size * statement.nulls.len();
                assert!(text.contains(&format!("${binds})")), "{binds}");
                assert!(!text.contains(&format!("${}", binds + 1)), "{binds}");
                assert!(binds <= 32_766, "{binds}");
            }
        }
    }
}

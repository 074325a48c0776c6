//! Answers as staff and students read them back, and answers staff import from the desktop app's
//! export file, written once for every engine. (Saving them is each engine's own group commit:
//! [`super::sqlite`]'s writer, [`super::postgres`]'s batcher; the import's decisions are
//! [`super::imports`]'.)

use super::evaluations;
use super::imports::{self, ImportDecision};
use super::participants::{audit, participant_row};
use super::rows::{phase, status, stored, ts};
use super::rules::{self, Digest, OnTimeAction};
use super::sessions::{USER_COLS, user_from};
use super::tx::{Lock, Row, Tx, args};
use super::{AnswerImport, AnswerRecord, ImportedAnswer};
use crate::error::Result;
use crate::live::event::{Event, ParticipantEvent};
use invigil_protocol::{
    Answer, AuditKind, ImportReport, ImportSkipped, ImportStored, OnTime, ParticipationStatus,
    Phase, Timestamp, User,
};

/// The columns [`answer_from`] reads, from `answers`.
pub const ANSWER_COLS: &str = "question_id, revision, content, saved_at, late, on_time_revision, \
     on_time_content, on_time_saved_at";

/// A stored answer read with [`ANSWER_COLS`]: the on-time revision kept beside a late one.
pub fn answer_from(r: &Row) -> Result<Answer> {
    let late: bool = r.get("late")?;
    let on_time = match r.get::<Option<i64>>("on_time_revision")? {
        Some(revision) if late => Some(OnTime {
            revision: revision as u64,
            content: r
                .get::<Option<String>>("on_time_content")?
                .unwrap_or_default(),
            saved_at: ts(r
                .get::<Option<i64>>("on_time_saved_at")?
                .unwrap_or_default())?,
        }),
        _ => None,
    };
    Ok(Answer {
        question_id: r.get("question_id")?,
        revision: r.get::<i64>("revision")? as u64,
        content: r.get("content")?,
        saved_at: ts(r.get("saved_at")?)?,
        late,
        on_time,
    })
}

/// A student's stored answers in an evaluation, by question.
pub async fn of_student(
    tx: &mut dyn Tx,
    (evaluation_id, student_id): &(&str, &str),
) -> Result<Vec<Answer>> {
    let sql = format!(
        "SELECT {ANSWER_COLS} FROM answers WHERE evaluation_id = $1 AND user_id = $2 ORDER BY question_id"
    );
    tx.fetch_all(&sql, args![*evaluation_id, *student_id])
        .await?
        .iter()
        .map(answer_from)
        .collect()
}

/// Stored answers with their source: one student's (by user id), or everyone's; by username,
/// then question id.
pub async fn records(
    tx: &mut dyn Tx,
    (evaluation_id, student_id): &(&str, Option<&str>),
) -> Result<Vec<AnswerRecord>> {
    let sql = format!(
        "SELECT u.username, {ANSWER_COLS}, a.source
         FROM answers a JOIN users u ON u.id = a.user_id
         WHERE a.evaluation_id = $1 AND (CAST($2 AS TEXT) IS NULL OR a.user_id = $2)
         ORDER BY u.username, a.question_id"
    );
    tx.fetch_all(&sql, args![*evaluation_id, *student_id])
        .await?
        .iter()
        .map(|r| {
            Ok(AnswerRecord {
                username: r.get("username")?,
                answer: answer_from(r)?,
                source: r.get("source")?,
            })
        })
        .collect()
}

/// Stores the answers of an export file that are newer than the stored revisions, judged late by
/// the time they count as written, marked with their source, with an audit entry each; reports
/// what was stored and what was skipped (see [`super::Store::import_answers`]).
pub async fn import(
    tx: &mut dyn Tx,
    events: &mut Vec<Event>,
    (id, import, actor): &(String, AnswerImport, User),
) -> Result<ImportReport> {
    let id = id.as_str();
    let record = evaluations::must(tx, id).await?;
    rules::check_owner_or_admin(&record.owner_id, actor)?;
    let sql =
        format!("SELECT {USER_COLS} FROM users u WHERE u.username = $1 AND u.role = 'student'");
    let student = tx
        .fetch_optional(&sql, args![&import.username])
        .await?
        .map(|r| user_from(&r))
        .transpose()?
        .ok_or_else(|| imports::not_a_student(&import.username))?;
    let mut report = ImportReport {
        username: student.username.clone(),
        device: import.device.clone(),
        stored: Vec::new(),
        skipped: Vec::new(),
    };
    let skip = |answer: &ImportedAnswer, reason: String| ImportSkipped {
        evaluation_id: id.to_owned(),
        question_id: answer.question_id.clone(),
        revision: answer.revision.get(),
        reason,
    };
    // The student's own saves of this evaluation wait for the import, and it for them.
    tx.lock(Lock::Participation(id, &student.id)).await?;
    let standing = tx
        .fetch_optional(
            "SELECT status FROM participations WHERE evaluation_id = $1 AND user_id = $2",
            args![id, &student.id],
        )
        .await?
        .map(|r| r.get::<String>("status"))
        .transpose()?;
    let standing = status(standing.as_deref())?;
    let overridden = imports::admit(
        &student.username,
        &import.device,
        standing,
        import.overriding.as_ref(),
    )?;
    if standing == ParticipationStatus::NotStarted {
        let reason = imports::never_joined(&student.username);
        report.skipped = import
            .answers
            .iter()
            .map(|a| skip(a, reason.clone()))
            .collect();
        return Ok(report);
    }
    if let Some(detail) = &overridden {
        audit(
            tx,
            id,
            AuditKind::ImportOverridden,
            Some(&student.username),
            Some(&actor.username),
            detail,
        )
        .await?;
    }
    let history: Vec<(Timestamp, Phase)> = tx
        .fetch_all(
            "SELECT at, phase FROM phase_history WHERE evaluation_id = $1 ORDER BY at, id",
            args![id],
        )
        .await?
        .iter()
        .map(|r| Ok((ts(r.get("at")?)?, phase(&r.get::<String>("phase")?)?)))
        .collect::<Result<_>>()?;
    let now = Timestamp::now();
    let exported = imports::export_time(import.exported_at, now);
    let sql = format!(
        "SELECT MAX(at) FROM audit WHERE evaluation_id = $1 AND username = $2 AND at <= $3
         AND kind IN ({})",
        imports::cutoff_kinds_sql()
    );
    let cutoff: Option<i64> = tx
        .fetch_one(&sql, args![id, &student.username, exported.unix_ms()])
        .await?
        .first()?;
    let cutoff = cutoff.map(ts).transpose()?;
    let source = imports::source(&import.device, &actor.username, now);
    let evaluation = &record.evaluation;
    for answer in &import.answers {
        if !evaluation
            .questions
            .iter()
            .any(|q| q.id == answer.question_id)
        {
            report
                .skipped
                .push(skip(answer, imports::no_such_question(&answer.question_id)));
            continue;
        }
        let edited_at = answer.edited_at;
        let counted_at = imports::counted_at(edited_at, exported, cutoff);
        let late =
            imports::late_when_written(&history, evaluation.phase, evaluation.ends_at, counted_at);
        let row = tx
            .fetch_optional(
                "SELECT revision, late, content_sha256,
                    CASE WHEN content_sha256 IS NULL THEN content END AS legacy_content
                 FROM answers WHERE evaluation_id = $1 AND user_id = $2 AND question_id = $3",
                args![id, &student.id, &answer.question_id],
            )
            .await?;
        let stored = match row {
            Some(r) => stored(
                r.get("revision")?,
                r.get("late")?,
                r.get("content_sha256")?,
                r.get("legacy_content")?,
            )?,
            None => None,
        };
        let revision = answer.revision.get();
        let digest = Digest::of(&answer.content);
        let on_time = match imports::decide(stored, revision, digest, late) {
            ImportDecision::Skip(reason) => {
                report.skipped.push(skip(answer, reason));
                continue;
            }
            ImportDecision::Store(on_time) => on_time,
        };
        let sql = format!(
            "INSERT INTO answers (evaluation_id, user_id, question_id, revision, content, saved_at,
               late, source, content_sha256)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (evaluation_id, user_id, question_id) DO UPDATE SET {}
               revision = excluded.revision, content = excluded.content,
               saved_at = excluded.saved_at, late = excluded.late, source = excluded.source,
               content_sha256 = excluded.content_sha256",
            kept_on_time(on_time)
        );
        tx.execute(
            &sql,
            args![
                id,
                &student.id,
                &answer.question_id,
                revision as i64,
                &answer.content,
                now.unix_ms(),
                late,
                &source,
                digest.as_bytes()
            ],
        )
        .await?;
        let detail = imports::audit_detail(
            &answer.question_id,
            revision,
            late,
            edited_at,
            counted_at,
            &source,
        );
        audit(
            tx,
            id,
            AuditKind::AnswerImported,
            Some(&student.username),
            Some(&actor.username),
            &detail,
        )
        .await?;
        report.stored.push(ImportStored {
            question_id: answer.question_id.clone(),
            revision,
            late,
        });
    }
    if !report.stored.is_empty() {
        let row = participant_row(tx, id, &student.id).await?;
        events.push(Event::Participant(ParticipantEvent {
            evaluation_id: id.to_owned(),
            owner_id: record.owner_id.clone(),
            row,
        }));
    }
    Ok(report)
}

/// The assignments of an answer update that carry out what the late rule decided for the kept
/// on-time revision (the stored row's columns are the old ones on the right-hand side).
fn kept_on_time(action: OnTimeAction) -> &'static str {
    match action {
        OnTimeAction::Clear => {
            "on_time_revision = NULL, on_time_content = NULL, on_time_saved_at = NULL,"
        }
        OnTimeAction::KeepStored => {
            "on_time_revision = answers.revision, on_time_content = answers.content,
               on_time_saved_at = answers.saved_at,"
        }
        OnTimeAction::Unchanged => "",
    }
}

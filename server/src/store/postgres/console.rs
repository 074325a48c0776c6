//! The PostgreSQL engine's operations for the staff console: users, evaluation edits, answers with
//! their source, and imports of the desktop app's answers-export file. Each mirrors the SQLite
//! engine's (`sqlite/console.rs`) in one transaction, locking the rows that decide.

use super::{
    Engine, PostgresStore, USER_COLS, audience, audit, is_unique_violation, load_participation,
    lock_evaluation, lock_participation, lock_user, participant_row, revoke, user_from,
};
use crate::error::{Error, Result};
use crate::live::event::{Audience, EvaluationEvent, Event, ParticipantEvent};
use crate::store::evaluations::staff_event;
use crate::store::rows::stored;
use crate::store::rows::{phase, status, ts};
use crate::store::rules::{self, Digest, OnTimeAction};
use crate::store::{
    AnswerImport, AnswerRecord, EvaluationEdit, EvaluationRecord, ImportedAnswer, NewAccount,
    SESSION_IDLE_LIMIT_MS, imports,
};
use invigil_protocol::{
    Access, Answer, AuditKind, Evaluation, ImportReport, ImportSkipped, ImportStored,
    InvalidationReason, OnTime, Participation, ParticipationStatus, Phase, Timestamp, UpdateReason,
    User, UserSummary,
};
use sqlx::Row;
use sqlx::postgres::{PgConnection, PgRow};
use std::collections::HashMap;

fn answer_from(r: &PgRow) -> Result<Answer> {
    let late: bool = r.try_get("late")?;
    let on_time = match r.try_get::<Option<i64>, _>("on_time_revision")? {
        Some(revision) if late => Some(OnTime {
            revision: revision as u64,
            content: r
                .try_get::<Option<String>, _>("on_time_content")?
                .unwrap_or_default(),
            saved_at: ts(r
                .try_get::<Option<i64>, _>("on_time_saved_at")?
                .unwrap_or_default())?,
        }),
        _ => None,
    };
    Ok(Answer {
        question_id: r.try_get("question_id")?,
        revision: r.try_get::<i64, _>("revision")? as u64,
        content: r.try_get("content")?,
        saved_at: ts(r.try_get("saved_at")?)?,
        late,
        on_time,
    })
}

impl PostgresStore {
    pub(super) async fn console_users(&self) -> Result<Vec<UserSummary>> {
        let mut conn = self.read().await?;
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLS},
                (SELECT COUNT(*) FROM sessions s WHERE s.user_id = u.id AND s.revoked_at IS NULL
                   AND s.last_used_at >= $1) AS active
             FROM users u ORDER BY u.username"
        ))
        .bind(Timestamp::now().unix_ms() - SESSION_IDLE_LIMIT_MS)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(UserSummary {
                    user: user_from(r)?,
                    active_sessions: u32::try_from(r.try_get::<i64, _>("active")?)
                        .unwrap_or(u32::MAX),
                })
            })
            .collect()
    }

    pub(super) async fn console_create_accounts(&self, new: &[NewAccount]) -> Result<Vec<User>> {
        atomically!(&self.engine, |conn, _events| create_accounts_op(conn, new))
    }

    pub(super) async fn console_set_password(
        &self,
        user: &User,
        password_hash: &str,
        revoke_sessions: bool,
    ) -> Result<usize> {
        atomically!(&self.engine, |conn, events| set_password_op(
            conn,
            events,
            user,
            password_hash,
            revoke_sessions
        ))
    }

    pub(super) async fn console_edit_evaluation(
        &self,
        evaluation_id: &str,
        edit: &EvaluationEdit,
        actor: &User,
    ) -> Result<Evaluation> {
        atomically!(&self.engine, |conn, events| edit_evaluation_op(
            conn,
            events,
            evaluation_id,
            edit,
            actor
        ))
    }

    pub(super) async fn console_answer_records(
        &self,
        evaluation_id: &str,
        student_id: Option<&str>,
    ) -> Result<Vec<AnswerRecord>> {
        let mut conn = self.read().await?;
        let rows = sqlx::query(
            "SELECT u.username, a.question_id, a.revision, a.content, a.saved_at, a.late,
                a.on_time_revision, a.on_time_content, a.on_time_saved_at, a.source
             FROM answers a JOIN users u ON u.id = a.user_id
             WHERE a.evaluation_id = $1 AND ($2::TEXT IS NULL OR a.user_id = $2)
             ORDER BY u.username, a.question_id",
        )
        .bind(evaluation_id)
        .bind(student_id)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AnswerRecord {
                    username: r.try_get("username")?,
                    answer: answer_from(r)?,
                    source: r.try_get("source")?,
                })
            })
            .collect()
    }

    pub(super) async fn console_import_answers(
        &self,
        evaluation_id: &str,
        import: &AnswerImport,
        actor: &User,
    ) -> Result<ImportReport> {
        let engine: &Engine = &self.engine;
        atomically!(engine, |conn, events| import_answers_op(
            conn,
            events,
            evaluation_id,
            import,
            actor
        ))
    }
}

async fn create_accounts_op(conn: &mut PgConnection, new: &[NewAccount]) -> Result<Vec<User>> {
    let now = Timestamp::now().unix_ms();
    let mut users = Vec::with_capacity(new.len());
    for account in new {
        let result = sqlx::query(
            "INSERT INTO users (id, username, display_name, role, password_hash, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&account.id)
        .bind(&account.username)
        .bind(&account.display_name)
        .bind(account.role.as_str())
        .bind(&account.password_hash)
        .bind(now)
        .execute(&mut *conn)
        .await;
        match result {
            // The transaction is rolled back whole: nothing was created.
            Err(e) if is_unique_violation(&e) => {
                return Err(Error::conflict(format!(
                    "The username `{}` is already taken; nothing was created.",
                    account.username
                )));
            }
            Err(e) => return Err(e.into()),
            Ok(_) => users.push(User {
                id: account.id.clone(),
                username: account.username.clone(),
                display_name: account.display_name.clone(),
                role: account.role,
            }),
        }
    }
    Ok(users)
}

async fn set_password_op(
    conn: &mut PgConnection,
    events: &mut Vec<Event>,
    user: &User,
    password_hash: &str,
    revoke_sessions: bool,
) -> Result<usize> {
    if lock_user(conn, &user.id).await?.is_none() {
        return Err(Error::not_found(format!(
            "There is no user `{}`.",
            user.username
        )));
    }
    sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
        .bind(&user.id)
        .bind(password_hash)
        .execute(&mut *conn)
        .await?;
    if !revoke_sessions {
        return Ok(0);
    }
    let revoked = revoke(
        conn,
        user,
        None,
        None,
        InvalidationReason::RevokedByAdmin,
        events,
    )
    .await?;
    Ok(revoked.len())
}

async fn edit_evaluation_op(
    conn: &mut PgConnection,
    events: &mut Vec<Event>,
    id: &str,
    edit: &EvaluationEdit,
    actor: &User,
) -> Result<Evaluation> {
    let mut record = lock_evaluation(conn, id).await?;
    rules::check_owner_or_admin(&record.owner_id, actor)?;
    let before = record.evaluation.clone();
    let after = &mut record.evaluation;
    if let Some(questions) = &edit.questions {
        if *questions != before.questions && before.phase != Phase::Draft {
            return Err(Error::conflict(format!(
                "Questions can only be changed while the evaluation is a draft; it is \
                 {}. The title, the end time and the access mode can still change.",
                before.phase
            )));
        }
        after.questions = questions.clone();
    }
    if let Some(title) = &edit.title {
        after.title = title.clone();
    }
    if let Some(ends_at) = edit.ends_at {
        after.ends_at = ends_at;
    }
    if let Some(mode) = edit.access {
        after.access = mode;
    }
    if let Some(change) = edit.proctoring {
        after.proctoring = after.proctoring.apply(change);
    }
    if *after == before {
        return Ok(before);
    }
    let questions = serde_json::to_string(&after.questions).map_err(Error::internal)?;
    sqlx::query(
        "UPDATE evaluations SET title = $2, questions = $3::jsonb, ends_at = $4, access = $5,
         proctoring = $6::jsonb WHERE id = $1",
    )
    .bind(id)
    .bind(&after.title)
    .bind(questions)
    .bind(after.ends_at.map(Timestamp::unix_ms))
    .bind(after.access.as_str())
    .bind(crate::store::integrity::proctoring_json(&after.proctoring)?)
    .execute(&mut *conn)
    .await?;
    let after = record.evaluation.clone();
    events.push(staff_event(&record));
    if after.ends_at != before.ends_at {
        let detail = rules::ends_at_detail(before.ends_at, after.ends_at);
        audit(
            conn,
            id,
            AuditKind::EndsAtChanged,
            None,
            Some(&actor.username),
            &detail,
        )
        .await?;
        let audience = audience(conn, &after).await?;
        events.push(Event::Evaluation(EvaluationEvent::new(
            UpdateReason::EndsAtChanged,
            rules::student_view(after.clone()),
            audience,
            HashMap::new(),
        )));
    }
    if after.access != before.access {
        let detail = format!(
            "The access mode changed from {} to {}.",
            before.access.as_str(),
            after.access.as_str()
        );
        audit(
            conn,
            id,
            AuditKind::AccessChanged,
            None,
            Some(&actor.username),
            &detail,
        )
        .await?;
        access_mode_events(conn, &record, events).await?;
    }
    if after.proctoring != before.proctoring {
        crate::store::integrity::proctoring_changed(conn, &record, &before, actor, events).await?;
    }
    Ok(after)
}

async fn import_answers_op(
    conn: &mut PgConnection,
    events: &mut Vec<Event>,
    id: &str,
    import: &AnswerImport,
    actor: &User,
) -> Result<ImportReport> {
    let record = super::must_evaluation(conn, id).await?;
    rules::check_owner_or_admin(&record.owner_id, actor)?;
    let student = sqlx::query(&format!(
        "SELECT {USER_COLS} FROM users u WHERE u.username = $1 AND u.role = 'student'"
    ))
    .bind(&import.username)
    .fetch_optional(&mut *conn)
    .await?
    .map(|r| user_from(&r))
    .transpose()?
    .ok_or_else(|| {
        Error::bad_request(format!(
            "The file is from `{}`, who is not a student of this server.",
            import.username
        ))
    })?;
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
    lock_participation(conn, id, &student.id).await?;
    let standing: Option<String> = sqlx::query_scalar(
        "SELECT status FROM participations WHERE evaluation_id = $1 AND user_id = $2",
    )
    .bind(id)
    .bind(&student.id)
    .fetch_optional(&mut *conn)
    .await?;
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
            conn,
            id,
            AuditKind::ImportOverridden,
            Some(&student.username),
            Some(&actor.username),
            detail,
        )
        .await?;
    }
    let history: Vec<(Timestamp, Phase)> =
        sqlx::query("SELECT at, phase FROM phase_history WHERE evaluation_id = $1 ORDER BY at, id")
            .bind(id)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| Ok((ts(r.try_get("at")?)?, phase(r.try_get("phase")?)?)))
            .collect::<Result<_>>()?;
    let now = Timestamp::now();
    let exported = imports::export_time(import.exported_at, now);
    let cutoff: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT MAX(at) FROM audit WHERE evaluation_id = $1 AND username = $2 AND at <= $3
         AND kind IN ({})",
        imports::cutoff_kinds_sql()
    ))
    .bind(id)
    .bind(&student.username)
    .bind(exported.unix_ms())
    .fetch_one(&mut *conn)
    .await?;
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
        let row = sqlx::query(
            "SELECT revision, late, content_sha256,
                CASE WHEN content_sha256 IS NULL THEN content END AS legacy_content
             FROM answers WHERE evaluation_id = $1 AND user_id = $2 AND question_id = $3",
        )
        .bind(id)
        .bind(&student.id)
        .bind(&answer.question_id)
        .fetch_optional(&mut *conn)
        .await?;
        let stored = match row {
            Some(r) => stored(
                r.try_get("revision")?,
                r.try_get("late")?,
                r.try_get("content_sha256")?,
                r.try_get("legacy_content")?,
            )?,
            None => None,
        };
        let revision = answer.revision.get();
        let digest = Digest::of(&answer.content);
        let on_time = match imports::decide(stored, revision, digest, late) {
            imports::ImportDecision::Skip(reason) => {
                report.skipped.push(skip(answer, reason));
                continue;
            }
            imports::ImportDecision::Store(on_time) => on_time,
        };
        let action: i32 = match on_time {
            OnTimeAction::Clear => 0,
            OnTimeAction::KeepStored => 1,
            OnTimeAction::Unchanged => 2,
        };
        sqlx::query(
            "INSERT INTO answers (evaluation_id, user_id, question_id, revision, content, saved_at, late, source, content_sha256)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $9, $10)
             ON CONFLICT (evaluation_id, user_id, question_id) DO UPDATE SET
               on_time_revision = CASE $8 WHEN 1 THEN answers.revision WHEN 2 THEN answers.on_time_revision END,
               on_time_content = CASE $8 WHEN 1 THEN answers.content WHEN 2 THEN answers.on_time_content END,
               on_time_saved_at = CASE $8 WHEN 1 THEN answers.saved_at WHEN 2 THEN answers.on_time_saved_at END,
               revision = excluded.revision, content = excluded.content,
               saved_at = excluded.saved_at, late = excluded.late, source = excluded.source,
               content_sha256 = excluded.content_sha256",
        )
        .bind(id)
        .bind(&student.id)
        .bind(&answer.question_id)
        .bind(revision as i64)
        .bind(&answer.content)
        .bind(now.unix_ms())
        .bind(late)
        .bind(action)
        .bind(&source)
        .bind(digest.as_bytes())
        .execute(&mut *conn)
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
            conn,
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
        let row = participant_row(conn, id, &student.id).await?;
        events.push(Event::Participant(ParticipantEvent {
            evaluation_id: id.to_owned(),
            owner_id: record.owner_id.clone(),
            row,
        }));
    }
    Ok(report)
}

/// After an access mode change: every student not on the list gains or loses access (their
/// participations go with the update), and the boards gain or drop the listed students who never
/// joined (an open evaluation's participants are only those who joined).
async fn access_mode_events(
    conn: &mut PgConnection,
    record: &EvaluationRecord,
    events: &mut Vec<Event>,
) -> Result<()> {
    let evaluation = &record.evaluation;
    let unlisted = sqlx::query(&format!(
        "SELECT {USER_COLS} FROM users u WHERE u.role = 'student' AND NOT EXISTS
           (SELECT 1 FROM access_list a WHERE a.evaluation_id = $1 AND a.user_id = u.id)"
    ))
    .bind(&evaluation.id)
    .fetch_all(&mut *conn)
    .await?;
    let mut changed: HashMap<String, Participation> = HashMap::new();
    for row in &unlisted {
        let user = user_from(row)?;
        let participation = load_participation(conn, evaluation, &user).await?;
        changed.insert(user.id, participation);
    }
    events.push(Event::Evaluation(EvaluationEvent::new(
        UpdateReason::AccessChanged,
        rules::student_view(evaluation.clone()),
        Audience::AllStudents,
        changed,
    )));
    let listed_not_joined = sqlx::query(
        "SELECT u.id, u.username FROM access_list a JOIN users u ON u.id = a.user_id
         WHERE a.evaluation_id = $1 AND NOT EXISTS
           (SELECT 1 FROM participations p WHERE p.evaluation_id = $1 AND p.user_id = u.id)
         ORDER BY u.username",
    )
    .bind(&evaluation.id)
    .fetch_all(&mut *conn)
    .await?;
    for r in &listed_not_joined {
        let (user_id, username): (String, String) = (r.try_get("id")?, r.try_get("username")?);
        match evaluation.access {
            Access::List => {
                let row = participant_row(conn, &evaluation.id, &user_id).await?;
                events.push(Event::Participant(ParticipantEvent {
                    evaluation_id: evaluation.id.clone(),
                    owner_id: record.owner_id.clone(),
                    row,
                }));
            }
            Access::Open => events.push(Event::ParticipantRemoved {
                evaluation_id: evaluation.id.clone(),
                owner_id: record.owner_id.clone(),
                username,
            }),
        }
    }
    Ok(())
}

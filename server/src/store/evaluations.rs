//! Evaluations, written once for every engine: reading them, creating them, and the changes staff
//! make (phase, end time, access list, the console's edits) with their audit entries and pushes.

use super::participants::{audit, load_participation, participant_row};
use super::rows::{access, blocked_reason, opt_ts, phase, status};
use super::sessions::{USER_COLS, user_from};
use super::tx::{Dialect, Lock, Tx, args};
use super::{EvaluationEdit, EvaluationRecord, NewEvaluation, rules};
use crate::error::{Error, Result};
use crate::live::event::{Audience, EvaluationEvent, Event, ParticipantEvent};
use invigil_protocol::{
    Access, AuditKind, Evaluation, Participation, Phase, Question, Timestamp, UpdateReason, User,
};
use std::collections::{HashMap, HashSet};

/// The columns [`evaluation_from`] reads, from [`EVAL_FROM`]. JSON columns are read as text on
/// both engines (jsonb on PostgreSQL).
pub const EVAL_COLS: &str = "e.id AS e_id, e.title, e.phase, e.ends_at, e.access, \
     o.username AS owner, CAST(e.questions AS TEXT) AS questions, e.owner_id, \
     CAST(e.proctoring AS TEXT) AS proctoring";
/// An evaluation with its owner.
pub const EVAL_FROM: &str = "evaluations e JOIN users o ON o.id = e.owner_id";

/// An evaluation read with [`EVAL_COLS`].
pub fn evaluation_from(row: &super::tx::Row) -> Result<EvaluationRecord> {
    let questions: String = row.get("questions")?;
    let questions: Vec<Question> = serde_json::from_str(&questions)
        .map_err(|e| Error::internal(format!("stored questions are not valid: {e}")))?;
    Ok(EvaluationRecord {
        evaluation: Evaluation {
            id: row.get("e_id")?,
            title: row.get("title")?,
            phase: phase(&row.get::<String>("phase")?)?,
            ends_at: opt_ts(row.get("ends_at")?)?,
            access: access(&row.get::<String>("access")?),
            owner: row.get("owner")?,
            questions,
            proctoring: super::integrity::parse_proctoring(&row.get::<String>("proctoring")?)?,
        },
        owner_id: row.get("owner_id")?,
    })
}

/// One evaluation, if it exists.
pub async fn load(tx: &mut dyn Tx, id: &str) -> Result<Option<EvaluationRecord>> {
    let sql = format!("SELECT {EVAL_COLS} FROM {EVAL_FROM} WHERE e.id = $1");
    let row = tx.fetch_optional(&sql, args![id]).await?;
    row.as_ref().map(evaluation_from).transpose()
}

/// One evaluation; `not_found` without it.
pub async fn must(tx: &mut dyn Tx, id: &str) -> Result<EvaluationRecord> {
    load(tx, id)
        .await?
        .ok_or_else(|| Error::not_found(format!("There is no evaluation `{id}`.")))
}

/// The evaluation, locked until the end of the transaction: changes to it run one at a time.
pub async fn lock(tx: &mut dyn Tx, id: &str) -> Result<EvaluationRecord> {
    tx.lock(Lock::Evaluation(id)).await?;
    must(tx, id).await
}

/// Every evaluation, oldest first.
pub async fn all(tx: &mut dyn Tx) -> Result<Vec<Evaluation>> {
    let sql = format!("SELECT {EVAL_COLS} FROM {EVAL_FROM} ORDER BY e.created_at, e.id");
    tx.fetch_all(&sql, args![])
        .await?
        .iter()
        .map(|r| Ok(evaluation_from(r)?.evaluation))
        .collect()
}

/// A JSON value bound to `param`, as the engine's JSON column wants it.
fn json(dialect: Dialect, param: &str) -> String {
    match dialect {
        Dialect::Sqlite => param.to_owned(),
        Dialect::Postgres => format!("CAST({param} AS jsonb)"),
    }
}

/// Who hears of a change to an evaluation: every student if it is open, else those on its list.
pub async fn audience(tx: &mut dyn Tx, evaluation: &Evaluation) -> Result<Audience> {
    if evaluation.access == Access::Open {
        return Ok(Audience::AllStudents);
    }
    let ids: Vec<String> = tx
        .scalars(
            "SELECT user_id FROM access_list WHERE evaluation_id = $1",
            args![&evaluation.id],
        )
        .await?;
    Ok(Audience::Students(ids.into_iter().collect()))
}

/// What staff consoles hear of an evaluation that changed.
pub fn staff_event(record: &EvaluationRecord) -> Event {
    Event::StaffEvaluation {
        evaluation: record.evaluation.clone(),
        owner_id: record.owner_id.clone(),
    }
}

/// Records that an evaluation entered a phase (for judging imported answers by their edit time).
pub async fn record_phase(tx: &mut dyn Tx, id: &str, to: Phase) -> Result<()> {
    tx.execute(
        "INSERT INTO phase_history (evaluation_id, at, phase) VALUES ($1, $2, $3)",
        args![id, Timestamp::now().unix_ms(), to.as_str()],
    )
    .await?;
    Ok(())
}

/// Whether a student has joined an evaluation.
pub async fn joined(tx: &mut dyn Tx, evaluation_id: &str, user_id: &str) -> Result<bool> {
    tx.fetch_one(
        "SELECT EXISTS (SELECT 1 FROM participations WHERE evaluation_id = $1 AND user_id = $2)",
        args![evaluation_id, user_id],
    )
    .await?
    .first()
}

/// The push of a change to an evaluation every student who may see it hears of.
fn update(reason: UpdateReason, evaluation: &Evaluation, audience: Audience) -> Event {
    Event::Evaluation(EvaluationEvent::new(
        reason,
        rules::student_view(evaluation.clone()),
        audience,
        HashMap::new(),
    ))
}

/// Creates an evaluation in draft.
pub async fn create(
    tx: &mut dyn Tx,
    events: &mut Vec<Event>,
    (owner, new): &(User, NewEvaluation),
) -> Result<Evaluation> {
    let dialect = tx.dialect();
    let questions = serde_json::to_string(&new.questions).map_err(Error::internal)?;
    let sql = format!(
        "INSERT INTO evaluations (id, title, phase, ends_at, access, owner_id, questions, created_at, proctoring)
         VALUES ($1, $2, 'draft', $3, $4, $5, {}, $7, {})",
        json(dialect, "$6"),
        json(dialect, "$8")
    );
    tx.execute(
        &sql,
        args![
            &new.id,
            &new.title,
            new.ends_at.map(Timestamp::unix_ms),
            new.access.as_str(),
            &owner.id,
            questions,
            Timestamp::now().unix_ms(),
            super::integrity::proctoring_json(&new.proctoring)?,
        ],
    )
    .await?;
    let evaluation = Evaluation {
        id: new.id.clone(),
        title: new.title.clone(),
        phase: Phase::Draft,
        ends_at: new.ends_at,
        access: new.access,
        owner: owner.username.clone(),
        questions: new.questions.clone(),
        proctoring: new.proctoring,
    };
    events.push(Event::StaffEvaluation {
        evaluation: evaluation.clone(),
        owner_id: owner.id.clone(),
    });
    if evaluation.access == Access::Open {
        // Every student gains access to an open evaluation the moment it exists.
        events.push(update(
            UpdateReason::AccessChanged,
            &evaluation,
            Audience::AllStudents,
        ));
    }
    Ok(evaluation)
}

/// Moves the phase, as the contract allows.
pub async fn set_phase(
    tx: &mut dyn Tx,
    events: &mut Vec<Event>,
    (id, to, actor): &(String, Phase, User),
) -> Result<Evaluation> {
    let (id, to) = (id.as_str(), *to);
    let mut record = lock(tx, id).await?;
    rules::check_owner_or_admin(&record.owner_id, actor)?;
    let from = record.evaluation.phase;
    rules::check_transition(from, to)?;
    tx.execute(
        "UPDATE evaluations SET phase = $2 WHERE id = $1",
        args![id, to.as_str()],
    )
    .await?;
    record_phase(tx, id, to).await?;
    audit(
        tx,
        id,
        AuditKind::PhaseChanged,
        None,
        Some(&actor.username),
        &rules::phase_detail(from, to),
    )
    .await?;
    record.evaluation.phase = to;
    events.push(staff_event(&record));
    let audience = audience(tx, &record.evaluation).await?;
    events.push(update(
        UpdateReason::PhaseChanged,
        &record.evaluation,
        audience,
    ));
    Ok(record.evaluation)
}

/// Sets or clears the end.
pub async fn set_ends_at(
    tx: &mut dyn Tx,
    events: &mut Vec<Event>,
    (id, ends_at, actor): &(String, Option<Timestamp>, User),
) -> Result<Evaluation> {
    let (id, ends_at) = (id.as_str(), *ends_at);
    let mut record = lock(tx, id).await?;
    rules::check_owner_or_admin(&record.owner_id, actor)?;
    tx.execute(
        "UPDATE evaluations SET ends_at = $2 WHERE id = $1",
        args![id, ends_at.map(Timestamp::unix_ms)],
    )
    .await?;
    let from = record.evaluation.ends_at;
    record.evaluation.ends_at = ends_at;
    events.push(staff_event(&record));
    ends_at_changed(tx, &record.evaluation, from, actor, events).await?;
    Ok(record.evaluation)
}

/// What a new end time (already written) means: an audit entry `ends_at_changed` and
/// `EVALUATION_UPDATE` `ends_at_changed` to the evaluation's students.
async fn ends_at_changed(
    tx: &mut dyn Tx,
    evaluation: &Evaluation,
    from: Option<Timestamp>,
    actor: &User,
    events: &mut Vec<Event>,
) -> Result<()> {
    let detail = rules::ends_at_detail(from, evaluation.ends_at);
    audit(
        tx,
        &evaluation.id,
        AuditKind::EndsAtChanged,
        None,
        Some(&actor.username),
        &detail,
    )
    .await?;
    let audience = audience(tx, evaluation).await?;
    events.push(update(UpdateReason::EndsAtChanged, evaluation, audience));
    Ok(())
}

/// Replaces the access list; returns the usernames now on it, sorted.
pub async fn set_access_list(
    tx: &mut dyn Tx,
    events: &mut Vec<Event>,
    (id, students, actor): &(String, Vec<User>, User),
) -> Result<Vec<String>> {
    let id = id.as_str();
    let dialect = tx.dialect();
    let record = lock(tx, id).await?;
    rules::check_owner_or_admin(&record.owner_id, actor)?;
    let old: HashSet<String> = tx
        .scalars(
            "SELECT user_id FROM access_list WHERE evaluation_id = $1",
            args![id],
        )
        .await?
        .into_iter()
        .collect();
    let new: HashMap<&str, &User> = students.iter().map(|u| (u.id.as_str(), u)).collect();
    let mut removed: Vec<String> = old
        .iter()
        .filter(|u| !new.contains_key(u.as_str()))
        .cloned()
        .collect();
    removed.sort();
    let mut added_seen = HashSet::new();
    let added: Vec<&User> = students
        .iter()
        .filter(|u| !old.contains(&u.id) && added_seen.insert(u.id.as_str()))
        .collect();
    // Each change is one statement, whatever the number of students: the ids go in as one JSON
    // array (one bound value, so no bind limit), in order, for the audit's.
    let json_ids = |items: Vec<&str>| serde_json::to_string(&items).map_err(Error::internal);
    let added_ids = json_ids(added.iter().map(|u| u.id.as_str()).collect())?;
    let removed_ids = json_ids(removed.iter().map(String::as_str).collect())?;
    let now = Timestamp::now().unix_ms();
    let sql = format!(
        "INSERT INTO access_list (evaluation_id, user_id) SELECT $1, j.value FROM {}",
        dialect.json_list("$2", "j")
    );
    tx.execute(&sql, args![id, &added_ids]).await?;
    let sql = format!(
        "DELETE FROM access_list WHERE evaluation_id = $1
         AND user_id IN (SELECT j.value FROM {})",
        dialect.json_list("$2", "j")
    );
    tx.execute(&sql, args![id, &removed_ids]).await?;
    let sql = format!(
        "INSERT INTO audit (evaluation_id, at, kind, username, actor, detail)
         SELECT $1, $2, $3, u.username, $4, CASE c.change WHEN 0 THEN $7 ELSE $8 END
         FROM (SELECT 0 AS change, a.key, a.value FROM {}
               UNION ALL SELECT 1, r.key, r.value FROM {}) c
         JOIN users u ON u.id = c.value
         ORDER BY c.change, c.key",
        dialect.json_list("$5", "a"),
        dialect.json_list("$6", "r")
    );
    tx.execute(
        &sql,
        args![
            id,
            now,
            AuditKind::AccessChanged.as_str(),
            &actor.username,
            &added_ids,
            &removed_ids,
            rules::ACCESS_ADDED_DETAIL,
            rules::ACCESS_REMOVED_DETAIL,
        ],
    )
    .await?;
    let sql = format!(
        "SELECT {USER_COLS} FROM users u JOIN {} ON u.id = j.value ORDER BY j.key",
        dialect.json_list("$1", "j")
    );
    let removed_users: Vec<User> = tx
        .fetch_all(&sql, args![&removed_ids])
        .await?
        .iter()
        .map(user_from)
        .collect::<Result<_>>()?;
    if record.evaluation.access == Access::List {
        let view = rules::student_view(record.evaluation.clone());
        let mut changed = HashMap::new();
        for user in added.iter().copied().chain(removed_users.iter()) {
            changed.insert(
                user.id.clone(),
                load_participation(tx, &record.evaluation, user).await?,
            );
        }
        if !changed.is_empty() {
            events.push(Event::Evaluation(EvaluationEvent::new(
                UpdateReason::AccessChanged,
                view,
                Audience::Students(changed.keys().cloned().collect()),
                changed,
            )));
        }
        for user in &added {
            let row = participant_row(tx, id, &user.id).await?;
            events.push(Event::Participant(ParticipantEvent {
                evaluation_id: id.to_owned(),
                owner_id: record.owner_id.clone(),
                row,
            }));
        }
        // Those who never joined are participants no more.
        for user in &removed_users {
            if !joined(tx, id, &user.id).await? {
                events.push(Event::ParticipantRemoved {
                    evaluation_id: id.to_owned(),
                    owner_id: record.owner_id.clone(),
                    username: user.username.clone(),
                });
            }
        }
    }
    let mut names: Vec<String> = students.iter().map(|u| u.username.clone()).collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// The usernames on the access list, sorted.
pub async fn access_list(tx: &mut dyn Tx, evaluation_id: &str) -> Result<Vec<String>> {
    tx.scalars(
        "SELECT u.username FROM access_list a JOIN users u ON u.id = a.user_id
         WHERE a.evaluation_id = $1 ORDER BY u.username",
        args![evaluation_id],
    )
    .await
}

/// Changes an evaluation's title, questions (draft only: [`rules::edited`]), end, access mode or
/// proctoring settings, with an audit entry and a push for each change students see.
pub async fn edit(
    tx: &mut dyn Tx,
    events: &mut Vec<Event>,
    (id, edit, actor): &(String, EvaluationEdit, User),
) -> Result<Evaluation> {
    let id = id.as_str();
    let dialect = tx.dialect();
    let mut record = lock(tx, id).await?;
    rules::check_owner_or_admin(&record.owner_id, actor)?;
    let before = record.evaluation.clone();
    let after = rules::edited(&before, edit)?;
    if after == before {
        return Ok(before);
    }
    let questions = serde_json::to_string(&after.questions).map_err(Error::internal)?;
    let sql = format!(
        "UPDATE evaluations SET title = $2, questions = {}, ends_at = $4, access = $5,
         proctoring = {} WHERE id = $1",
        json(dialect, "$3"),
        json(dialect, "$6")
    );
    tx.execute(
        &sql,
        args![
            id,
            &after.title,
            questions,
            after.ends_at.map(Timestamp::unix_ms),
            after.access.as_str(),
            super::integrity::proctoring_json(&after.proctoring)?
        ],
    )
    .await?;
    record.evaluation = after.clone();
    events.push(staff_event(&record));
    if after.ends_at != before.ends_at {
        ends_at_changed(tx, &after, before.ends_at, actor, events).await?;
    }
    if after.access != before.access {
        let detail = rules::access_mode_detail(before.access, after.access);
        let kind = AuditKind::AccessChanged;
        audit(tx, id, kind, None, Some(&actor.username), &detail).await?;
        access_mode_events(tx, &record, events).await?;
    }
    if after.proctoring != before.proctoring {
        super::integrity::proctoring_changed(tx, &record, &before, actor, events).await?;
    }
    Ok(after)
}

/// After an access mode change: every student not on the list gains or loses access (their
/// participations go with the update), and the boards gain or drop the listed students who never
/// joined (an open evaluation's participants are only those who joined).
async fn access_mode_events(
    tx: &mut dyn Tx,
    record: &EvaluationRecord,
    events: &mut Vec<Event>,
) -> Result<()> {
    let evaluation = &record.evaluation;
    // One statement for every student not on the list, whatever their number.
    let unlisted = tx
        .fetch_all(
            "SELECT u.id, u.username, p.status, p.blocked_reason,
               (SELECT x.exempt FROM accommodations x WHERE x.evaluation_id = $1 AND x.user_id = u.id) AS exempt
             FROM users u
             LEFT JOIN participations p ON p.evaluation_id = $1 AND p.user_id = u.id
             WHERE u.role = 'student' AND NOT EXISTS
               (SELECT 1 FROM access_list a WHERE a.evaluation_id = $1 AND a.user_id = u.id)",
            args![&evaluation.id],
        )
        .await?;
    let mut changed: HashMap<String, Participation> = HashMap::with_capacity(unlisted.len());
    for r in &unlisted {
        changed.insert(
            r.get("id")?,
            Participation {
                evaluation_id: evaluation.id.clone(),
                username: r.get("username")?,
                status: status(r.get::<Option<String>>("status")?.as_deref())?,
                blocked_reason: blocked_reason(
                    r.get::<Option<String>>("blocked_reason")?.as_deref(),
                ),
                access: rules::eligible(evaluation.access, false),
                proctoring_exempt: super::accommodations::parse_exempt(
                    r.get::<Option<String>>("exempt")?.as_deref(),
                )?,
            },
        );
    }
    events.push(Event::Evaluation(EvaluationEvent::new(
        UpdateReason::AccessChanged,
        rules::student_view(evaluation.clone()),
        Audience::AllStudents,
        changed,
    )));
    let listed_not_joined = tx
        .fetch_all(
            "SELECT u.id, u.username FROM access_list a JOIN users u ON u.id = a.user_id
             WHERE a.evaluation_id = $1 AND NOT EXISTS
               (SELECT 1 FROM participations p WHERE p.evaluation_id = $1 AND p.user_id = u.id)
             ORDER BY u.username",
            args![&evaluation.id],
        )
        .await?;
    for r in &listed_not_joined {
        let (user_id, username): (String, String) = (r.get("id")?, r.get("username")?);
        match evaluation.access {
            Access::List => {
                let row = participant_row(tx, &evaluation.id, &user_id).await?;
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

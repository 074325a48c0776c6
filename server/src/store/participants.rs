//! Taking part, participants, unblocking and the audit log, written once for every engine: a
//! student's participation, joining and handing in, the rows of the professor's board, and the
//! audit entries every operation writes.

use super::evaluations::{self, EVAL_COLS, EVAL_FROM, evaluation_from};
use super::rows::{blocked_reason, opt_ts, status, ts};
use super::sessions::{USER_COLS, user_from};
use super::tx::{Dialect, Lock, Row, Tx, args};
use super::{Board, EvaluationRecord, StudentView, rules};
use crate::error::{Error, Result};
use crate::live::event::{
    ClusterPresence, EvaluationEvent, Event, ParticipantEvent, ParticipantRow,
};
use invigil_protocol::{
    Access, AuditEntry, AuditKind, Evaluation, Participation, ParticipationStatus, Role, Timestamp,
    UpdateReason, User,
};

/// Writes an audit entry.
pub async fn audit(
    tx: &mut dyn Tx,
    evaluation_id: &str,
    kind: AuditKind,
    username: Option<&str>,
    actor: Option<&str>,
    detail: &str,
) -> Result<()> {
    tx.execute(
        "INSERT INTO audit (evaluation_id, at, kind, username, actor, detail)
         VALUES ($1, $2, $3, $4, $5, $6)",
        args![
            evaluation_id,
            Timestamp::now().unix_ms(),
            kind.as_str(),
            username,
            actor,
            detail
        ],
    )
    .await?;
    Ok(())
}

/// The audit log of an evaluation, oldest first.
pub async fn audit_log(tx: &mut dyn Tx, evaluation_id: &str) -> Result<Vec<AuditEntry>> {
    let rows = tx
        .fetch_all(
            "SELECT at, kind, username, actor, detail FROM audit WHERE evaluation_id = $1 ORDER BY id",
            args![evaluation_id],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let kind: String = r.get("kind")?;
            Ok(AuditEntry {
                at: ts(r.get("at")?)?,
                kind: AuditKind::parse(&kind).ok_or_else(|| {
                    Error::internal(format!("stored audit kind `{kind}` is unknown"))
                })?,
                username: r.get("username")?,
                actor: r.get("actor")?,
                detail: r.get("detail")?,
            })
        })
        .collect()
}

/// The participation of one student (eligible or not) in a loaded evaluation.
pub async fn load_participation(
    tx: &mut dyn Tx,
    evaluation: &Evaluation,
    student: &User,
) -> Result<Participation> {
    let row = tx
        .fetch_one(
            "SELECT EXISTS (SELECT 1 FROM access_list WHERE evaluation_id = $1 AND user_id = $2) AS on_list,
                (SELECT status FROM participations WHERE evaluation_id = $1 AND user_id = $2) AS status,
                (SELECT blocked_reason FROM participations WHERE evaluation_id = $1 AND user_id = $2) AS reason,
                (SELECT exempt FROM accommodations WHERE evaluation_id = $1 AND user_id = $2) AS exempt",
            args![&evaluation.id, &student.id],
        )
        .await?;
    let on_list: bool = row.get("on_list")?;
    Ok(Participation {
        evaluation_id: evaluation.id.clone(),
        username: student.username.clone(),
        status: status(row.get::<Option<String>>("status")?.as_deref())?,
        blocked_reason: blocked_reason(row.get::<Option<String>>("reason")?.as_deref()),
        access: rules::eligible(evaluation.access, on_list),
        proctoring_exempt: super::accommodations::parse_exempt(
            row.get::<Option<String>>("exempt")?.as_deref(),
        )?,
    })
}

/// A student's participation; `None` when the evaluation does not exist.
pub async fn participation(
    tx: &mut dyn Tx,
    (evaluation_id, student): &(&str, &User),
) -> Result<Option<Participation>> {
    let Some(record) = evaluations::load(tx, evaluation_id).await? else {
        return Ok(None);
    };
    Ok(Some(
        load_participation(tx, &record.evaluation, student).await?,
    ))
}

/// The evaluations a student may see, as they see them, with their participations.
pub async fn student_views(tx: &mut dyn Tx, student: &User) -> Result<Vec<StudentView>> {
    let sql = format!(
        "SELECT {EVAL_COLS}, p.status AS p_status, p.blocked_reason AS p_reason,
           (SELECT x.exempt FROM accommodations x WHERE x.evaluation_id = e.id AND x.user_id = $1) AS exempt
         FROM {EVAL_FROM}
         LEFT JOIN participations p ON p.evaluation_id = e.id AND p.user_id = $1
         WHERE e.access = 'open' OR EXISTS (SELECT 1 FROM access_list a WHERE a.evaluation_id = e.id AND a.user_id = $1)
         ORDER BY e.created_at, e.id"
    );
    let rows = tx.fetch_all(&sql, args![&student.id]).await?;
    rows.iter()
        .map(|r| {
            let record = evaluation_from(r)?;
            let participation = Participation {
                evaluation_id: record.evaluation.id.clone(),
                username: student.username.clone(),
                status: status(r.get::<Option<String>>("p_status")?.as_deref())?,
                blocked_reason: blocked_reason(r.get::<Option<String>>("p_reason")?.as_deref()),
                access: true,
                proctoring_exempt: super::accommodations::parse_exempt(
                    r.get::<Option<String>>("exempt")?.as_deref(),
                )?,
            };
            Ok(StudentView {
                evaluation: rules::student_view(record.evaluation),
                participation,
            })
        })
        .collect()
}

/// The board's rows, `$1` being the evaluation. On PostgreSQL they carry the cluster's presence:
/// when a live node last vouched for a connection of a session of theirs that is not revoked.
pub fn row_select(dialect: Dialect) -> String {
    let live_seen = match dialect {
        Dialect::Sqlite => String::new(),
        Dialect::Postgres => format!(
            ", (SELECT MAX(GREATEST(pr.opened_at, n.heartbeat_at)) {}) AS live_seen",
            super::postgres::live_rows("u.id")
        ),
    };
    format!(
        "SELECT u.id, u.username, u.display_name, p.status, p.blocked_reason, u.last_seen_at,
            (SELECT COUNT(*) FROM answers a WHERE a.evaluation_id = $1 AND a.user_id = u.id) AS answered,
            (SELECT COUNT(*) FROM answers a WHERE a.evaluation_id = $1 AND a.user_id = u.id AND a.late) AS late_answers,
            (SELECT x.exempt FROM accommodations x WHERE x.evaluation_id = $1 AND x.user_id = u.id) AS exempt
            {live_seen}
         FROM users u LEFT JOIN participations p ON p.evaluation_id = $1 AND p.user_id = u.id"
    )
}

/// A board row read with [`row_select`].
pub fn participant_row_from(dialect: Dialect, row: &Row) -> Result<ParticipantRow> {
    let answered: i64 = row.get("answered")?;
    let last_seen = opt_ts(row.get("last_seen_at")?)?;
    // A single node's presence is its hub's to add; a cluster's is in the database.
    let presence = match dialect {
        Dialect::Sqlite => None,
        Dialect::Postgres => {
            let live_seen = opt_ts(row.get("live_seen")?)?;
            Some(ClusterPresence {
                connected: live_seen.is_some(),
                last_seen: live_seen.or(last_seen),
            })
        }
    };
    Ok(ParticipantRow {
        user_id: row.get("id")?,
        username: row.get("username")?,
        display_name: row.get("display_name")?,
        status: status(row.get::<Option<String>>("status")?.as_deref())?,
        blocked_reason: blocked_reason(row.get::<Option<String>>("blocked_reason")?.as_deref()),
        last_seen,
        answered: u32::try_from(answered).unwrap_or(u32::MAX),
        late_answers: u32::try_from(row.get::<i64>("late_answers")?).unwrap_or(u32::MAX),
        integrity: Default::default(),
        proctoring_exempt: super::accommodations::parse_exempt(
            row.get::<Option<String>>("exempt")?.as_deref(),
        )?,
        presence,
    })
}

/// One student's row on an evaluation's board.
pub async fn participant_row(
    tx: &mut dyn Tx,
    evaluation_id: &str,
    user_id: &str,
) -> Result<ParticipantRow> {
    let dialect = tx.dialect();
    let sql = format!("{} WHERE u.id = $2", row_select(dialect));
    let row = tx.fetch_one(&sql, args![evaluation_id, user_id]).await?;
    let mut row = participant_row_from(dialect, &row)?;
    super::integrity::fill(
        tx,
        evaluation_id,
        Some(user_id),
        std::slice::from_mut(&mut row),
    )
    .await?;
    Ok(row)
}

/// Every row of an evaluation's board: the students on the list (for a list evaluation) and all
/// who joined, by username.
pub async fn participant_rows(
    tx: &mut dyn Tx,
    evaluation: &Evaluation,
) -> Result<Vec<ParticipantRow>> {
    let dialect = tx.dialect();
    let listed = if evaluation.access == Access::List {
        "SELECT user_id FROM access_list WHERE evaluation_id = $1 UNION "
    } else {
        ""
    };
    let sql = format!(
        "{} WHERE u.id IN ({listed}SELECT user_id FROM participations WHERE evaluation_id = $1)
         ORDER BY u.username",
        row_select(dialect)
    );
    let rows = tx.fetch_all(&sql, args![&evaluation.id]).await?;
    let mut rows = rows
        .iter()
        .map(|r| participant_row_from(dialect, r))
        .collect::<Result<Vec<_>>>()?;
    super::integrity::fill(tx, &evaluation.id, None, &mut rows).await?;
    Ok(rows)
}

/// The rows of one evaluation's board.
pub async fn participants(tx: &mut dyn Tx, evaluation_id: &str) -> Result<Vec<ParticipantRow>> {
    let record = evaluations::must(tx, evaluation_id).await?;
    participant_rows(tx, &record.evaluation).await
}

/// The boards a staff member's socket starts with: the evaluations a professor owns, or for an
/// admin those in progress.
pub async fn boards(tx: &mut dyn Tx, staff: &User) -> Result<Vec<Board>> {
    let (filter, args) = match staff.role {
        Role::Admin => ("e.phase = 'in_progress'", args![]),
        _ => ("e.owner_id = $1", args![&staff.id]),
    };
    let sql =
        format!("SELECT {EVAL_COLS} FROM {EVAL_FROM} WHERE {filter} ORDER BY e.created_at, e.id");
    let rows = tx.fetch_all(&sql, args).await?;
    let mut boards = Vec::with_capacity(rows.len());
    for r in &rows {
        let record = evaluation_from(r)?;
        let rows = participant_rows(tx, &record.evaluation).await?;
        boards.push(Board {
            evaluation_id: record.evaluation.id,
            rows,
        });
    }
    Ok(boards)
}

/// Board updates for every unfinished evaluation in which the student is a participant.
pub async fn board_events(tx: &mut dyn Tx, user_id: &str, events: &mut Vec<Event>) -> Result<()> {
    let rows = tx
        .fetch_all(
            "SELECT e.id, e.owner_id FROM evaluations e WHERE e.phase <> 'finished' AND (
                 EXISTS (SELECT 1 FROM participations p WHERE p.evaluation_id = e.id AND p.user_id = $1)
                 OR (e.access = 'list' AND EXISTS (SELECT 1 FROM access_list a WHERE a.evaluation_id = e.id AND a.user_id = $1)))
             ORDER BY e.id",
            args![user_id],
        )
        .await?;
    for r in rows {
        let evaluation_id: String = r.get("id")?;
        let owner_id: String = r.get("owner_id")?;
        let row = participant_row(tx, &evaluation_id, user_id).await?;
        events.push(Event::Participant(ParticipantEvent {
            evaluation_id,
            owner_id,
            row,
        }));
    }
    Ok(())
}

/// The events of one student's participation changing: their own update and the board's.
pub async fn participation_events(
    tx: &mut dyn Tx,
    record: &EvaluationRecord,
    student: &User,
    reason: UpdateReason,
    events: &mut Vec<Event>,
) -> Result<Participation> {
    let participation = load_participation(tx, &record.evaluation, student).await?;
    events.push(Event::Evaluation(EvaluationEvent::for_student(
        reason,
        rules::student_view(record.evaluation.clone()),
        &student.id,
        participation.clone(),
    )));
    let row = participant_row(tx, &record.evaluation.id, &student.id).await?;
    events.push(Event::Participant(ParticipantEvent {
        evaluation_id: record.evaluation.id.clone(),
        owner_id: record.owner_id.clone(),
        row,
    }));
    Ok(participation)
}

/// A student joins.
pub async fn join(
    tx: &mut dyn Tx,
    events: &mut Vec<Event>,
    (id, student): &(String, User),
) -> Result<Participation> {
    let record = evaluations::must(tx, id).await?;
    let current = load_participation(tx, &record.evaluation, student).await?;
    if !current.access {
        // Not eligible: the evaluation is hidden from this student.
        return Err(rules::reject_error(
            invigil_protocol::RejectCode::NotOnAccessList,
        ));
    }
    match rules::decide_join(current.access, record.evaluation.phase, current.status)? {
        rules::Join::Already => Ok(current),
        rules::Join::Start => {
            let inserted = tx
                .execute(
                    "INSERT INTO participations (evaluation_id, user_id, status, joined_at, updated_at)
                     VALUES ($1, $2, 'in_progress', $3, $3) ON CONFLICT DO NOTHING",
                    args![id, &student.id, Timestamp::now().unix_ms()],
                )
                .await?;
            if inserted == 0 {
                // A join of the same student on another node committed first: decide again on
                // what it wrote (this statement saw it).
                let current = load_participation(tx, &record.evaluation, student).await?;
                rules::decide_join(current.access, record.evaluation.phase, current.status)?;
                return Ok(current);
            }
            let name = Some(student.username.as_str());
            audit(tx, id, AuditKind::Joined, name, name, rules::JOINED_DETAIL).await?;
            participation_events(tx, &record, student, UpdateReason::StatusChanged, events).await
        }
    }
}

/// A student hands in.
pub async fn submit(
    tx: &mut dyn Tx,
    events: &mut Vec<Event>,
    (id, student): &(String, User),
) -> Result<Participation> {
    let record = evaluations::must(tx, id).await?;
    tx.lock(Lock::Participation(id, &student.id)).await?;
    let current = load_participation(tx, &record.evaluation, student).await?;
    if !rules::decide_submit(current.status)? {
        return Ok(current);
    }
    tx.execute(
        "UPDATE participations SET status = 'submitted', updated_at = $3
         WHERE evaluation_id = $1 AND user_id = $2",
        args![id, &student.id, Timestamp::now().unix_ms()],
    )
    .await?;
    let name = Some(student.username.as_str());
    audit(
        tx,
        id,
        AuditKind::Submitted,
        name,
        name,
        rules::SUBMITTED_DETAIL,
    )
    .await?;
    participation_events(tx, &record, student, UpdateReason::StatusChanged, events).await
}

/// Staff unblock a student, with a note for the audit log.
pub async fn unblock(
    tx: &mut dyn Tx,
    events: &mut Vec<Event>,
    (id, username, note, actor): &(String, String, Option<String>, User),
) -> Result<Participation> {
    let record = evaluations::must(tx, id).await?;
    rules::check_owner_or_admin(&record.owner_id, actor)?;
    let not_taking_part = || {
        Error::not_found(format!(
            "No student `{username}` takes part in this evaluation."
        ))
    };
    let student = tx
        .fetch_optional(
            &format!(
                "SELECT {USER_COLS} FROM users u
                 JOIN participations p ON p.user_id = u.id AND p.evaluation_id = $1
                 WHERE u.username = $2 AND u.role = 'student'"
            ),
            args![id, username],
        )
        .await?
        .ok_or_else(not_taking_part)?;
    let student = user_from(&student)?;
    tx.lock(Lock::Participation(id, &student.id)).await?;
    // Read under the lock: a block or an unblock on another node may have just committed.
    let current = load_participation(tx, &record.evaluation, &student).await?;
    if current.status != ParticipationStatus::Blocked {
        return Err(Error::conflict(format!("`{username}` is not blocked.")));
    }
    tx.execute(
        "UPDATE participations SET status = 'in_progress', blocked_reason = NULL, updated_at = $3
         WHERE evaluation_id = $1 AND user_id = $2",
        args![id, &student.id, Timestamp::now().unix_ms()],
    )
    .await?;
    let detail = rules::unblock_detail(&actor.username, note.as_deref());
    audit(
        tx,
        id,
        AuditKind::Unblocked,
        Some(&student.username),
        Some(&actor.username),
        &detail,
    )
    .await?;
    participation_events(tx, &record, &student, UpdateReason::Unblocked, events).await
}

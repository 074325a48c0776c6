//! Connections opening and closing, in bulk: a run of consecutive presence changes in the
//! writer's batch is recorded with a handful of statements, whatever its length.
//!
//! When a room comes back after a restart, every socket opening records a change (and a
//! `reconnected` entry in the audit log of each exam its student sits); one by one, each took
//! eight statements, eight round trips to sqlx's SQLite thread, and those round trips, not
//! SQLite, set how fast a room could come back. A run makes the same records, in the same order,
//! as its changes would one by one: the first socket of a session is a connection, every later
//! one a reconnection; a loss sets when the student was last seen; the audit gets an entry per
//! exam the student sits; the boards get each concerned participant's row once, after the run.

use super::{Completion, repeated, savepoint, settle};
use crate::error::Result;
use crate::live::event::{Event, ParticipantEvent};
use crate::store::participants;
use crate::store::tx::{Arg, Dialect, Tx, args};
use crate::store::{Presence, Session, rules};
use futures_util::future::BoxFuture;
use invigil_protocol::{AuditKind, Timestamp};
use sqlx::Row;
use sqlx::sqlite::{SqliteArguments, SqliteConnection};
use std::collections::{HashMap, HashSet};
use tokio::sync::oneshot;

/// A query on SQLite, arguments bound one by one.
type SqliteQuery<'q> = sqlx::query::Query<'q, sqlx::Sqlite, SqliteArguments<'q>>;

/// Values bound per statement at most (SQLite takes 32,766).
const MAX_BOUND: usize = 30_000;

/// A presence change waiting for the writer.
pub(super) struct PresenceJob {
    pub(super) session: Session,
    pub(super) presence: Presence,
    pub(super) done: oneshot::Sender<Result<()>>,
}

/// Records the run; one completion per change, in order. A failure of the database undoes the
/// whole run and answers each change with the error.
pub(super) fn run(
    conn: &mut SqliteConnection,
    jobs: Vec<PresenceJob>,
) -> BoxFuture<'_, Vec<Completion>> {
    Box::pin(run_jobs(conn, jobs))
}

async fn run_jobs(conn: &mut SqliteConnection, jobs: Vec<PresenceJob>) -> Vec<Completion> {
    let outcome = match savepoint(conn, "presence").await {
        Ok(()) => {
            let outcome = apply(conn, &jobs).await;
            settle(conn, "presence", outcome).await
        }
        Err(e) => Err(e),
    };
    let (mut events, failure) = match outcome {
        Ok(events) => (Some(events), None),
        Err(e) => {
            tracing::error!(error = ?e, changes = jobs.len(), "a run of presence changes failed");
            (None, Some(e))
        }
    };
    let last = jobs.len().saturating_sub(1);
    jobs.into_iter()
        .enumerate()
        .map(|(i, job)| {
            let result = match &failure {
                None => Ok(()),
                Some(e) => Err(crate::error::Error::internal(format!(
                    "could not record a connection change: {e}"
                ))),
            };
            let events = if i == last {
                events.take().unwrap_or_default()
            } else {
                Vec::new()
            };
            let done = job.done;
            Completion {
                events,
                done: Box::new(move |commit: Result<()>| {
                    let _ = done.send(commit.and(result));
                }),
            }
        })
        .collect()
}

async fn apply(conn: &mut SqliteConnection, jobs: &[PresenceJob]) -> Result<Vec<Event>> {
    let now = Timestamp::now().unix_ms();

    // Which sessions had connected before, as the batch found them.
    let opened: Vec<&str> = distinct(
        jobs.iter()
            .filter(|j| j.presence == Presence::Connected)
            .map(|j| j.session.id.as_str()),
    );
    let mut connected_before: HashMap<String, bool> = HashMap::new();
    for chunk in opened.chunks(MAX_BOUND) {
        let sql = format!(
            "SELECT id, connected_before FROM sessions WHERE id IN ({})",
            repeated("?", chunk.len())
        );
        let query = bind_all(sqlx::query(&sql).persistent(false), chunk);
        for row in query.fetch_all(&mut *conn).await? {
            connected_before.insert(row.try_get("id")?, row.try_get("connected_before")?);
        }
        let sql = format!(
            "UPDATE sessions SET connected_before = 1 WHERE id IN ({})",
            repeated("?", chunk.len())
        );
        bind_all(sqlx::query(&sql).persistent(false), chunk)
            .execute(&mut *conn)
            .await?;
    }

    // When lost students were last seen.
    let lost: Vec<&str> = distinct(
        jobs.iter()
            .filter(|j| j.presence == Presence::Disconnected)
            .map(|j| j.session.user.id.as_str()),
    );
    for chunk in lost.chunks(MAX_BOUND - 1) {
        let sql = format!(
            "UPDATE users SET last_seen_at = ? WHERE id IN ({})",
            repeated("?", chunk.len())
        );
        bind_all(sqlx::query(&sql).persistent(false).bind(now), chunk)
            .execute(&mut *conn)
            .await?;
    }

    // What each change records, in order: a loss always, a connection only when it is a
    // reconnection (a session's first socket is not).
    let mut entries: Vec<(&PresenceJob, AuditKind, &str)> = Vec::new();
    for job in jobs {
        match job.presence {
            Presence::Connected => {
                if let Some(before) = connected_before.get_mut(&job.session.id) {
                    if *before {
                        entries.push((job, AuditKind::Reconnected, rules::RECONNECTED_DETAIL));
                    }
                    *before = true;
                }
            }
            Presence::Disconnected => {
                entries.push((job, AuditKind::Disconnected, rules::DISCONNECTED_DETAIL));
            }
        }
    }
    let recording: Vec<&str> = distinct(entries.iter().map(|(j, _, _)| j.session.user.id.as_str()));
    let sitting = sitting(conn, &recording).await?;
    let mut rows: Vec<(&str, AuditKind, &str, &str)> = Vec::new();
    for (job, kind, detail) in &entries {
        for evaluation_id in sitting
            .get(job.session.user.id.as_str())
            .into_iter()
            .flatten()
        {
            rows.push((evaluation_id, *kind, &job.session.user.username, detail));
        }
    }
    for chunk in rows.chunks(MAX_BOUND / 5) {
        let values = repeated("(?, ?, ?, ?, NULL, ?)", chunk.len());
        let sql = format!(
            "INSERT INTO audit (evaluation_id, at, kind, username, actor, detail) VALUES {values}"
        );
        let mut query = sqlx::query(&sql).persistent(false);
        for (evaluation_id, kind, username, detail) in chunk {
            query = query
                .bind(*evaluation_id)
                .bind(now)
                .bind(kind.as_str())
                .bind(*username)
                .bind(*detail);
        }
        query.execute(&mut *conn).await?;
    }

    // The boards: each concerned participant's row, once.
    let users: Vec<&str> = distinct(jobs.iter().map(|j| j.session.user.id.as_str()));
    board_events(conn, &users).await
}

/// The evaluations in progress each user sits (in progress or blocked), by evaluation id.
async fn sitting(
    conn: &mut SqliteConnection,
    users: &[&str],
) -> Result<HashMap<String, Vec<String>>> {
    let mut sitting: HashMap<String, Vec<String>> = HashMap::new();
    for chunk in users.chunks(MAX_BOUND) {
        let sql = format!(
            "SELECT p.user_id, p.evaluation_id FROM participations p
             JOIN evaluations e ON e.id = p.evaluation_id
             WHERE p.user_id IN ({}) AND e.phase = 'in_progress'
               AND p.status IN ('in_progress', 'blocked')
             ORDER BY p.user_id, p.evaluation_id",
            repeated("?", chunk.len())
        );
        let query = bind_all(sqlx::query(&sql).persistent(false), chunk);
        for row in query.fetch_all(&mut *conn).await? {
            sitting
                .entry(row.try_get("user_id")?)
                .or_default()
                .push(row.try_get("evaluation_id")?);
        }
    }
    Ok(sitting)
}

/// A board row for every unfinished evaluation each user takes part in (joined it, or on the
/// list of a list evaluation), grouped by evaluation.
async fn board_events(conn: &mut SqliteConnection, users: &[&str]) -> Result<Vec<Event>> {
    let mut concerned: Vec<(String, String, String)> = Vec::new();
    for chunk in users.chunks(MAX_BOUND / 2) {
        let list = repeated("?", chunk.len());
        let sql = format!(
            "SELECT e.id AS evaluation_id, e.owner_id, t.user_id FROM (
                 SELECT p.evaluation_id, p.user_id FROM participations p WHERE p.user_id IN ({list})
                 UNION
                 SELECT a.evaluation_id, a.user_id FROM access_list a
                 JOIN evaluations l ON l.id = a.evaluation_id AND l.access = 'list'
                 WHERE a.user_id IN ({list})
             ) t JOIN evaluations e ON e.id = t.evaluation_id
             WHERE e.phase != 'finished'
             ORDER BY e.id, t.user_id"
        );
        let query = bind_all(bind_all(sqlx::query(&sql).persistent(false), chunk), chunk);
        for row in query.fetch_all(&mut *conn).await? {
            concerned.push((
                row.try_get("evaluation_id")?,
                row.try_get("owner_id")?,
                row.try_get("user_id")?,
            ));
        }
    }
    let mut events = Vec::with_capacity(concerned.len());
    let mut i = 0;
    while i < concerned.len() {
        let (evaluation_id, owner_id) = (concerned[i].0.clone(), concerned[i].1.clone());
        let end = concerned[i..]
            .iter()
            .position(|c| c.0 != evaluation_id)
            .map_or(concerned.len(), |n| i + n);
        for chunk in concerned[i..end].chunks(MAX_BOUND - 1) {
            let users = (2..chunk.len() + 2)
                .map(|n| format!("${n}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "{} WHERE u.id IN ({users})",
                participants::row_select(Dialect::Sqlite)
            );
            let mut args = args![&evaluation_id];
            args.extend(chunk.iter().map(|(_, _, user_id)| Arg::from(user_id)));
            let mut rows = Tx::fetch_all(&mut *conn, &sql, args)
                .await?
                .iter()
                .map(|row| participants::participant_row_from(Dialect::Sqlite, row))
                .collect::<Result<Vec<_>>>()?;
            // A row carries every part of the board, its integrity summary too.
            crate::store::integrity::fill(conn, &evaluation_id, None, &mut rows).await?;
            for row in rows {
                events.push(Event::Participant(ParticipantEvent {
                    evaluation_id: evaluation_id.clone(),
                    owner_id: owner_id.clone(),
                    row,
                }));
            }
        }
        i = end;
    }
    Ok(events)
}

/// `query` with each of `ids` bound after what it has.
fn bind_all<'q>(mut query: SqliteQuery<'q>, ids: &[&'q str]) -> SqliteQuery<'q> {
    for id in ids {
        query = query.bind(*id);
    }
    query
}

/// The items in their first order, each once.
fn distinct<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = HashSet::new();
    items.filter(|i| seen.insert(*i)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_keeps_the_first_order() {
        let items = ["b", "a", "b", "c", "a"];
        assert_eq!(distinct(items.into_iter()), vec!["b", "a", "c"]);
    }
}

//! Accounts, signing in and sessions, written once for every engine: the single-session rule (a
//! new sign-in revokes every other session of a student), the second-sign-in block, the idle
//! rule of a session lookup, and revocations with their audit entries and board updates.

use super::evaluations;
use super::participants::{audit, board_events, participation_events};
use super::rows::{role, status};
use super::tx::{Lock, Row, Tx, args, is_unique_violation};
use super::{Account, NewAccount, SESSION_IDLE_LIMIT_MS, Session, SessionLookup, SignIn, rules};
use crate::error::{Error, Result};
use crate::live::event::Event;
use invigil_protocol::{
    AuditKind, BlockedReason, InvalidationReason, ParticipationStatus, Role, Timestamp,
    UpdateReason, User,
};

/// A session's last use is written again only after this long, so that busy sessions do not cost
/// a write per request.
pub const TOUCH_EVERY_MS: i64 = 60_000;

/// The columns [`user_from`] reads, from `users u`.
pub const USER_COLS: &str = "u.id, u.username, u.display_name, u.role";

/// A user read with [`USER_COLS`].
pub fn user_from(row: &Row) -> Result<User> {
    Ok(User {
        id: row.get("id")?,
        username: row.get("username")?,
        display_name: row.get("display_name")?,
        role: role(&row.get::<String>("role")?)?,
    })
}

/// Creates an account; `conflict` when the name is taken.
pub async fn create_account(
    tx: &mut dyn Tx,
    _events: &mut Vec<Event>,
    new: &NewAccount,
) -> Result<User> {
    let inserted = tx
        .execute(
            "INSERT INTO users (id, username, display_name, role, password_hash, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            args![
                &new.id,
                &new.username,
                &new.display_name,
                new.role.as_str(),
                &new.password_hash,
                Timestamp::now().unix_ms()
            ],
        )
        .await;
    match inserted {
        Err(e) if is_unique_violation(&e) => Err(rules::username_taken(&new.username)),
        Err(e) => Err(e),
        Ok(_) => Ok(User {
            id: new.id.clone(),
            username: new.username.clone(),
            display_name: new.display_name.clone(),
            role: new.role,
        }),
    }
}

/// The account with this sign-in name.
pub async fn account(tx: &mut dyn Tx, username: &str) -> Result<Option<Account>> {
    let sql = format!("SELECT {USER_COLS}, u.password_hash FROM users u WHERE u.username = $1");
    let row = tx.fetch_optional(&sql, args![username]).await?;
    row.map(|r| {
        Ok(Account {
            user: user_from(&r)?,
            password_hash: r.get("password_hash")?,
        })
    })
    .transpose()
}

/// The user with this id.
pub async fn user_by_id(tx: &mut dyn Tx, user_id: &str) -> Result<Option<User>> {
    let sql = format!("SELECT {USER_COLS} FROM users u WHERE u.id = $1");
    let row = tx.fetch_optional(&sql, args![user_id]).await?;
    row.as_ref().map(user_from).transpose()
}

/// The users with these names (missing names are left out).
pub async fn users_named(tx: &mut dyn Tx, usernames: &[String]) -> Result<Vec<User>> {
    let names = serde_json::to_string(usernames).map_err(Error::internal)?;
    let sql = format!(
        "SELECT {USER_COLS} FROM users u WHERE u.username IN (SELECT j.value FROM {})",
        tx.dialect().json_list("$1", "j")
    );
    tx.fetch_all(&sql, args![names])
        .await?
        .iter()
        .map(user_from)
        .collect()
}

/// The running evaluations in which a student is sitting or blocked: where their sign-ins,
/// invalidations and connections are recorded.
pub async fn sitting(tx: &mut dyn Tx, user_id: &str) -> Result<Vec<(String, ParticipationStatus)>> {
    let rows = tx
        .fetch_all(
            "SELECT p.evaluation_id, p.status FROM participations p
             JOIN evaluations e ON e.id = p.evaluation_id
             WHERE p.user_id = $1 AND e.phase = 'in_progress' AND p.status IN ('in_progress', 'blocked')
             ORDER BY p.evaluation_id",
            args![user_id],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.get("evaluation_id")?,
                status(r.get::<Option<String>>("status")?.as_deref())?,
            ))
        })
        .collect()
}

/// Writes the same audit entry about a student in every evaluation they are sitting.
pub async fn audit_sitting(
    tx: &mut dyn Tx,
    user: &User,
    kind: AuditKind,
    actor: Option<&str>,
    detail: &str,
) -> Result<()> {
    for (evaluation_id, _) in sitting(tx, &user.id).await? {
        audit(
            tx,
            &evaluation_id,
            kind,
            Some(&user.username),
            actor,
            detail,
        )
        .await?;
    }
    Ok(())
}

/// Revokes sessions of a user (every live one, or `only` that one, never `keep`), recording it
/// where the student is sitting. The caller holds the user's lock.
pub async fn revoke(
    tx: &mut dyn Tx,
    user: &User,
    only: Option<&str>,
    keep: Option<&str>,
    reason: InvalidationReason,
    events: &mut Vec<Event>,
) -> Result<Vec<String>> {
    let ids: Vec<String> = tx
        .scalars(
            "UPDATE sessions SET revoked_at = $2, revoked_reason = $3
             WHERE user_id = $1 AND revoked_at IS NULL
               AND (CAST($4 AS TEXT) IS NULL OR id = $4) AND (CAST($5 AS TEXT) IS NULL OR id <> $5)
             RETURNING id",
            args![
                &user.id,
                Timestamp::now().unix_ms(),
                reason.as_str(),
                only,
                keep
            ],
        )
        .await?;
    if ids.is_empty() {
        return Ok(ids);
    }
    let student = user.role == Role::Student;
    if student {
        let detail = rules::invalidation_detail(reason);
        audit_sitting(tx, user, AuditKind::SessionInvalidated, None, detail).await?;
    }
    events.push(Event::Revoked {
        user_id: user.id.clone(),
        session_ids: ids.clone(),
        reason,
    });
    if student {
        // The boards must show that the revoked session's connections no longer count (they are
        // computed here, after the revocation, so they already do).
        board_events(tx, &user.id, events).await?;
    }
    Ok(ids)
}

/// Revokes one session of a user, or all of them; returns how many.
pub async fn revoke_op(
    tx: &mut dyn Tx,
    events: &mut Vec<Event>,
    (user, only, reason): &(User, Option<String>, InvalidationReason),
) -> Result<usize> {
    tx.lock(Lock::User(&user.id)).await?;
    Ok(revoke(tx, user, only.as_deref(), None, *reason, events)
        .await?
        .len())
}

/// Records a sign-in: for a student, revokes every other session and blocks them in every
/// running evaluation they are sitting. Returns the revoked session ids.
pub async fn sign_in(
    tx: &mut dyn Tx,
    events: &mut Vec<Event>,
    sign_in: &SignIn,
) -> Result<Vec<String>> {
    let now = Timestamp::now().unix_ms();
    let user = &sign_in.user;
    tx.lock(Lock::User(&user.id)).await?;
    tx.execute(
        "INSERT INTO sessions (id, user_id, token_hash, device, created_at, last_used_at)
         VALUES ($1, $2, $3, $4, $5, $5)",
        args![
            &sign_in.session_id,
            &user.id,
            &sign_in.token_hash,
            &sign_in.device,
            now
        ],
    )
    .await?;
    if user.role != Role::Student {
        return Ok(Vec::new());
    }
    let sitting = sitting(tx, &user.id).await?;
    let detail = rules::sign_in_detail(sign_in.device.as_deref());
    for (evaluation_id, _) in &sitting {
        let name = Some(user.username.as_str());
        audit(tx, evaluation_id, AuditKind::SignedIn, name, name, &detail).await?;
    }
    let mut revocation = Vec::new();
    let revoked = revoke(
        tx,
        user,
        None,
        Some(&sign_in.session_id),
        InvalidationReason::SignedInElsewhere,
        &mut revocation,
    )
    .await?;
    let mut blocks = Vec::new();
    for (evaluation_id, _) in sitting {
        tx.lock(Lock::Participation(&evaluation_id, &user.id))
            .await?;
        // Under the lock, and only if still sitting: a submit may have just committed.
        let blocked = tx
            .execute(
                "UPDATE participations SET status = 'blocked', blocked_reason = $3, updated_at = $4
                 WHERE evaluation_id = $1 AND user_id = $2 AND status = 'in_progress'",
                args![
                    &evaluation_id,
                    &user.id,
                    BlockedReason::SecondSignIn.as_str(),
                    now
                ],
            )
            .await?;
        if blocked == 0 {
            continue;
        }
        audit(
            tx,
            &evaluation_id,
            AuditKind::Blocked,
            Some(&user.username),
            None,
            rules::SECOND_SIGN_IN_DETAIL,
        )
        .await?;
        let record = evaluations::must(tx, &evaluation_id).await?;
        participation_events(tx, &record, user, UpdateReason::Blocked, &mut blocks).await?;
    }
    events.extend(rules::sign_in_events(blocks, revocation));
    Ok(revoked)
}

/// What a token hash names, by the idle rule; with whether its last use should be written again
/// (at most once a [`TOUCH_EVERY_MS`]).
pub async fn lookup(tx: &mut dyn Tx, token_hash: &str) -> Result<(SessionLookup, Option<i64>)> {
    let sql = format!(
        "SELECT s.id AS session_id, s.last_used_at, s.revoked_at, s.revoked_reason, {USER_COLS}
         FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1"
    );
    let Some(row) = tx.fetch_optional(&sql, args![token_hash]).await? else {
        return Ok((SessionLookup::Unknown, None));
    };
    if row.get::<Option<i64>>("revoked_at")?.is_some() {
        let reason: Option<String> = row.get("revoked_reason")?;
        let reason = reason
            .as_deref()
            .and_then(InvalidationReason::parse)
            .unwrap_or(InvalidationReason::RevokedByAdmin);
        return Ok((SessionLookup::Invalidated(reason), None));
    }
    let now = Timestamp::now().unix_ms();
    let last_used: i64 = row.get("last_used_at")?;
    if now - last_used > SESSION_IDLE_LIMIT_MS {
        return Ok((SessionLookup::Expired, None));
    }
    let session = Session {
        id: row.get("session_id")?,
        user: user_from(&row)?,
    };
    let touch = (now - last_used > TOUCH_EVERY_MS).then_some(now);
    Ok((SessionLookup::Active(session), touch))
}

/// Notes that a session was used at `now` (never moving its last use back).
pub async fn touch(
    tx: &mut dyn Tx,
    _events: &mut Vec<Event>,
    (id, now): &(String, i64),
) -> Result<()> {
    tx.execute(
        "UPDATE sessions SET last_used_at = $2 WHERE id = $1 AND last_used_at < $2",
        args![id, *now],
    )
    .await?;
    Ok(())
}

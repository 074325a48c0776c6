//! The staff console's accounts, written once for every engine: the user list with live session
//! counts, accounts created in bulk (all or none), and passwords set by an admin. (One account
//! and signing in are [`super::sessions`]'.)

use super::sessions::{self, USER_COLS, revoke, user_from};
use super::tx::{Lock, Tx, args};
use super::{NewAccount, SESSION_IDLE_LIMIT_MS, rules};
use crate::error::{Error, Result};
use crate::live::event::Event;
use invigil_protocol::{ErrorCode, InvalidationReason, Timestamp, User, UserSummary};

/// Every user, by username, with how many live sessions each holds.
pub async fn users(tx: &mut dyn Tx) -> Result<Vec<UserSummary>> {
    let sql = format!(
        "SELECT {USER_COLS},
            (SELECT COUNT(*) FROM sessions s WHERE s.user_id = u.id AND s.revoked_at IS NULL
               AND s.last_used_at >= $1) AS active
         FROM users u ORDER BY u.username"
    );
    let rows = tx
        .fetch_all(
            &sql,
            args![Timestamp::now().unix_ms() - SESSION_IDLE_LIMIT_MS],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(UserSummary {
                user: user_from(r)?,
                active_sessions: u32::try_from(r.get::<i64>("active")?).unwrap_or(u32::MAX),
            })
        })
        .collect()
}

/// Creates several accounts in one transaction: a name taken refuses them all.
pub async fn create_accounts(
    tx: &mut dyn Tx,
    events: &mut Vec<Event>,
    new: &[NewAccount],
) -> Result<Vec<User>> {
    let mut users = Vec::with_capacity(new.len());
    for account in new {
        match sessions::create_account(tx, events, account).await {
            // The engine rolls the whole transaction back: nothing was created.
            Err(e) if e.code() == ErrorCode::Conflict => {
                return Err(rules::usernames_taken(&account.username));
            }
            created => users.push(created?),
        }
    }
    Ok(users)
}

/// Sets a user's password and, if asked, ends every session of theirs (`revoked_by_admin`);
/// returns how many sessions ended.
pub async fn set_password(
    tx: &mut dyn Tx,
    events: &mut Vec<Event>,
    (user, password_hash, revoke_sessions): &(User, String, bool),
) -> Result<usize> {
    tx.lock(Lock::User(&user.id)).await?;
    let changed = tx
        .execute(
            "UPDATE users SET password_hash = $2 WHERE id = $1",
            args![&user.id, password_hash],
        )
        .await?;
    if changed == 0 {
        return Err(Error::not_found(format!(
            "There is no user `{}`.",
            user.username
        )));
    }
    if !revoke_sessions {
        return Ok(0);
    }
    let revoked = revoke(
        tx,
        user,
        None,
        None,
        InvalidationReason::RevokedByAdmin,
        events,
    )
    .await?;
    Ok(revoked.len())
}

//! Sign-in throttling across nodes: every attempt is a row of `sign_in_failures`, written before
//! its password is checked and deleted again if it was no failure, so that the contract's limits
//! hold whichever node a request reaches, and simultaneous guesses on several nodes cannot pass
//! more checks than the limits allow. Attempts from one address are judged and counted under a
//! transaction-scoped advisory lock on that address (on the address and username in an exam
//! network): two nodes never both see room for one more.
//! (Kept apart from the rest of the engine: it is the throttle's, not the contract's data.)

use super::{NOW_MS, PostgresStore};
use crate::auth::throttle::judge;
use crate::error::Result;
use crate::store::{Counted, SignInAttempt};

/// Rows older than this are deleted as new attempts arrive (far past any window).
const KEPT_MS: i64 = 3_600_000;

impl PostgresStore {
    pub(super) async fn throttle_count(&self, attempt: &SignInAttempt<'_>) -> Result<Counted> {
        let limits = attempt.limits;
        let window_ms = i64::try_from(limits.window.as_millis()).unwrap_or(i64::MAX);
        let mut tx = self.engine.pool.begin().await?;
        // What is judged is locked: the address's attempts, or, for an exam network (a room
        // behind one address, whose attempts are not counted together), one username's only.
        let locked = if attempt.count_address {
            attempt.address.to_owned()
        } else {
            format!("{} {}", attempt.address, attempt.username)
        };
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('invigil sign-in ' || $1, 0))")
            .bind(locked)
            .execute(&mut *tx)
            .await?;
        let now: i64 = sqlx::query_scalar(&format!("SELECT {NOW_MS}"))
            .fetch_one(&mut *tx)
            .await?;
        // The latest `limit` attempts in the window, for the username and for the address.
        let latest = |username: Option<&str>, limit: usize| {
            sqlx::query_scalar::<_, i64>(
                "SELECT at FROM sign_in_failures
                  WHERE address = $1 AND ($2::TEXT IS NULL OR username = $2) AND at > $3 - $4
                  ORDER BY at DESC LIMIT $5",
            )
            .bind(attempt.address)
            .bind(username.map(str::to_owned))
            .bind(now)
            .bind(window_ms)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        };
        let for_user = latest(Some(attempt.username), limits.per_user)
            .fetch_all(&mut *tx)
            .await?;
        let for_address = if attempt.count_address {
            latest(None, limits.per_address).fetch_all(&mut *tx).await?
        } else {
            Vec::new()
        };
        if let Err(wait) = judge(limits, &for_user, &for_address, now) {
            tx.rollback().await?;
            return Ok(Counted::Refused(wait));
        }
        // An attempt from an exam network is stored under its address like any other, but its
        // address count is never asked for.
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO sign_in_failures (address, username, at) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(attempt.address)
        .bind(attempt.username)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM sign_in_failures WHERE at < $1 - $2")
            .bind(now)
            .bind(KEPT_MS)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Counted::Admitted(id))
    }

    pub(super) async fn throttle_uncount(&self, id: i64) -> Result<()> {
        sqlx::query("DELETE FROM sign_in_failures WHERE id = $1")
            .bind(id)
            .execute(&self.engine.pool)
            .await?;
        Ok(())
    }
}

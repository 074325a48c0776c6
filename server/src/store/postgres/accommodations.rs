//! The PostgreSQL engine's accommodations: set in a transaction of their own (answered once
//! committed), listed from the pool. The operations, the decisions and the SQL are
//! [`crate::store::accommodations`]'s.

use super::PostgresStore;
use sqlx::postgres::PgConnection;

impl PostgresStore {
    pub(super) async fn accommodation_set(
        &self,
        evaluation_id: &str,
        student: &User,
        exempt: Vec<ProctoringSetting>,
        reason: String,
        actor: &User,
    ) -> Result<Accommodation> {
        atomically!(&self.engine, |conn, events| set(
            conn,
            events,
            evaluation_id.to_owned(),
            student.clone(),
            exempt.clone(),
            reason.clone(),
            actor.clone()
        ))
    }

    pub(super) async fn accommodation_list(
        &self,
        evaluation_id: &str,
    ) -> Result<Vec<Accommodation>> {
        let mut conn = self.read().await?;
        list(&mut conn, evaluation_id).await
    }
}

crate::store::accommodations::engine_operations!(PgConnection);

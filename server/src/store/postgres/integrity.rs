//! The PostgreSQL engine's proctoring: integrity events stored in a transaction of their own
//! (acknowledged once committed), and the summaries on participant rows. The operations, the
//! decisions and the SQL are [`crate::store::integrity`]'s.

use super::PostgresStore;
use sqlx::postgres::PgConnection;

impl PostgresStore {
    pub(super) async fn integrity_record(
        &self,
        student: &invigil_protocol::User,
        event: invigil_protocol::IntegrityEvent,
    ) -> crate::error::Result<()> {
        atomically!(&self.engine, |conn, events| record(
            conn,
            events,
            student.clone(),
            event.clone()
        ))
    }
}

crate::store::integrity::engine_operations!(PgConnection);

//! The SQLite engine's proctoring: integrity events stored through the writer (acknowledged once
//! committed), and the summaries on participant rows. The operations, the decisions and the SQL
//! are [`crate::store::integrity`]'s.

use super::SqliteStore;
use sqlx::sqlite::SqliteConnection;

impl SqliteStore {
    pub(super) async fn integrity_record(
        &self,
        student: &invigil_protocol::User,
        event: invigil_protocol::IntegrityEvent,
    ) -> crate::error::Result<()> {
        let student = student.clone();
        self.write(move |conn, events| Box::pin(record(conn, events, student, event)))
            .await
    }
}

crate::store::integrity::engine_operations!(SqliteConnection);

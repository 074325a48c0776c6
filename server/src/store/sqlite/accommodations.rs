//! The SQLite engine's accommodations: set through the writer (answered once committed), listed
//! from a reader. The operations, the decisions and the SQL are
//! [`crate::store::accommodations`]'s.

use super::SqliteStore;
use sqlx::sqlite::SqliteConnection;

impl SqliteStore {
    pub(super) async fn accommodation_set(
        &self,
        evaluation_id: &str,
        student: &User,
        exempt: Vec<ProctoringSetting>,
        reason: String,
        actor: &User,
    ) -> Result<Accommodation> {
        let (id, student, actor) = (evaluation_id.to_owned(), student.clone(), actor.clone());
        self.write_op(move |conn, events| {
            Box::pin(set(conn, events, id, student, exempt, reason, actor))
        })
        .await
    }

    pub(super) async fn accommodation_list(
        &self,
        evaluation_id: &str,
    ) -> Result<Vec<Accommodation>> {
        let mut conn = self.reader().await?;
        list(&mut conn, evaluation_id).await
    }
}

crate::store::accommodations::engine_operations!(SqliteConnection);

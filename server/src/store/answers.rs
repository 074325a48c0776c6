//! Answers as staff and students read them back, written once for every engine. (Saving them is
//! each engine's own group commit: [`super::sqlite`]'s writer, [`super::postgres`]'s batcher.)

use super::rows::ts;
use super::tx::{Row, Tx, args};
use crate::error::Result;
use invigil_protocol::{Answer, OnTime};

/// The columns [`answer_from`] reads, from `answers`.
pub const ANSWER_COLS: &str = "question_id, revision, content, saved_at, late, on_time_revision, \
     on_time_content, on_time_saved_at";

/// A stored answer read with [`ANSWER_COLS`]: the on-time revision kept beside a late one.
pub fn answer_from(r: &Row) -> Result<Answer> {
    let late: bool = r.get("late")?;
    let on_time = match r.get::<Option<i64>>("on_time_revision")? {
        Some(revision) if late => Some(OnTime {
            revision: revision as u64,
            content: r
                .get::<Option<String>>("on_time_content")?
                .unwrap_or_default(),
            saved_at: ts(r
                .get::<Option<i64>>("on_time_saved_at")?
                .unwrap_or_default())?,
        }),
        _ => None,
    };
    Ok(Answer {
        question_id: r.get("question_id")?,
        revision: r.get::<i64>("revision")? as u64,
        content: r.get("content")?,
        saved_at: ts(r.get("saved_at")?)?,
        late,
        on_time,
    })
}

/// A student's stored answers in an evaluation, by question.
pub async fn of_student(
    tx: &mut dyn Tx,
    (evaluation_id, student_id): &(&str, &str),
) -> Result<Vec<Answer>> {
    let sql = format!(
        "SELECT {ANSWER_COLS} FROM answers WHERE evaluation_id = $1 AND user_id = $2 ORDER BY question_id"
    );
    tx.fetch_all(&sql, args![*evaluation_id, *student_id])
        .await?
        .iter()
        .map(answer_from)
        .collect()
}

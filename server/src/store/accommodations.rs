//! Accommodations in storage, shared by every engine: the proctoring settings one student is
//! exempt from in one evaluation (a screen reader needs the clipboard, a magnifier a second
//! display), who granted it and why, and the SQL both engines run on the `accommodations` table
//! (written with `$n` placeholders, which SQLite binds by number too).
//!
//! The reason is staff's: it is kept here and written in the audit log, never sent to the student
//! nor shown on the board, which only learn *which* settings the student is exempt from (the
//! participation's and the participant row's `proctoring_exempt`). The student's app applies the
//! evaluation's other settings.

use crate::error::{Error, Result};
use invigil_protocol::{ErrorCode, Phase, ProctoringSetting, SettingSet};

/// Reads a stored list of exempt settings (JSON); no row is no exemption.
pub fn parse_exempt(text: Option<&str>) -> Result<SettingSet> {
    match text {
        None => Ok(SettingSet::default()),
        Some(text) => serde_json::from_str(text)
            .map_err(|e| Error::internal(format!("a stored accommodation is not valid: {e}"))),
    }
}

/// Writes a list of exempt settings for storage.
pub fn exempt_json(exempt: &[ProctoringSetting]) -> Result<String> {
    serde_json::to_string(exempt).map_err(Error::internal)
}

/// Accommodations are set until the evaluation is finished: after that there is no exam left to
/// apply them to, and the record of what applied must stay as it was.
pub fn check_phase(phase: Phase) -> Result<()> {
    if phase == Phase::Finished {
        return Err(Error::api(
            ErrorCode::Conflict,
            "This evaluation is finished: its accommodations can no longer change.",
        ));
    }
    Ok(())
}

/// The audit sentence of an accommodation set or removed, with its reason.
pub fn audit_detail(exempt: &[ProctoringSetting], reason: &str) -> String {
    if exempt.is_empty() {
        format!("Accommodation removed: every proctoring setting applies again. Reason: {reason}")
    } else {
        let names: Vec<&str> = exempt.iter().map(|s| s.as_str()).collect();
        format!(
            "Accommodation: exempt from {}. Reason: {reason}",
            names.join(", ")
        )
    }
}

/// Stores or replaces an accommodation. Binds: `$1` evaluation, `$2` user id, `$3` exempt
/// (JSON), `$4` reason, `$5` actor's username, `$6` time (unix ms).
pub const UPSERT: &str = "INSERT INTO accommodations
     (evaluation_id, user_id, exempt, reason, actor, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (evaluation_id, user_id) DO UPDATE SET exempt = excluded.exempt,
       reason = excluded.reason, actor = excluded.actor, updated_at = excluded.updated_at";

/// Removes an accommodation: `$1` evaluation, `$2` user id.
pub const DELETE: &str = "DELETE FROM accommodations WHERE evaluation_id = $1 AND user_id = $2";

/// Every accommodation of an evaluation (`$1`), by username.
pub const LIST: &str = "SELECT u.username, x.exempt, x.reason, x.actor, x.updated_at
     FROM accommodations x JOIN users u ON u.id = x.user_id
     WHERE x.evaluation_id = $1 ORDER BY u.username";

/// A row of [`LIST`]: username, exempt (JSON), reason, actor, time.
pub type Listed = (String, String, String, String, i64);

/// The engine operations of accommodations, written once: each engine expands this in its own
/// `accommodations` module, for its connection type, over its own helpers of the same names
/// (`must_evaluation`, `load_participation`, `participant_row`, `audit`), which run the same
/// statements there. It defines `set` (store or remove one, in the caller's transaction, with its
/// audit entry and pushes) and `list`.
macro_rules! engine_operations {
    ($conn:ty) => {
        use super::{audit, load_participation, must_evaluation, participant_row};
        use invigil_protocol::{
            Access, Accommodation, AuditKind, ParticipationStatus, ProctoringSetting, Timestamp,
            UpdateReason, User,
        };
        use $crate::error::Result;
        use $crate::live::event::{EvaluationEvent, Event, ParticipantEvent};
        use $crate::store::accommodations as rules;

        /// Sets (or, with nothing exempt, removes) a student's accommodation: an audit entry
        /// `accommodation_changed` saying who and why, `EVALUATION_UPDATE`
        /// `accommodation_changed` to the student if they can see the evaluation, and their board
        /// row if they are a participant.
        async fn set(
            conn: &mut $conn,
            events: &mut Vec<Event>,
            evaluation_id: String,
            student: User,
            exempt: Vec<ProctoringSetting>,
            reason: String,
            actor: User,
        ) -> Result<Accommodation> {
            let record = must_evaluation(conn, &evaluation_id).await?;
            rules::check_phase(record.evaluation.phase)?;
            let at = Timestamp::now();
            if exempt.is_empty() {
                sqlx::query(rules::DELETE)
                    .bind(&evaluation_id)
                    .bind(&student.id)
                    .execute(&mut *conn)
                    .await?;
            } else {
                sqlx::query(rules::UPSERT)
                    .bind(&evaluation_id)
                    .bind(&student.id)
                    .bind(rules::exempt_json(&exempt)?)
                    .bind(&reason)
                    .bind(&actor.username)
                    .bind(at.unix_ms())
                    .execute(&mut *conn)
                    .await?;
            }
            audit(
                conn,
                &evaluation_id,
                AuditKind::AccommodationChanged,
                Some(&student.username),
                Some(&actor.username),
                &rules::audit_detail(&exempt, &reason),
            )
            .await?;
            let participation = load_participation(conn, &record.evaluation, &student).await?;
            let participant = participation.status != ParticipationStatus::NotStarted
                || (record.evaluation.access == Access::List && participation.access);
            if participant {
                let row = participant_row(conn, &evaluation_id, &student.id).await?;
                events.push(Event::Participant(ParticipantEvent {
                    evaluation_id: evaluation_id.clone(),
                    owner_id: record.owner_id.clone(),
                    row,
                }));
            }
            // A student who cannot see the evaluation must not learn of it this way.
            if participation.access {
                events.push(Event::Evaluation(EvaluationEvent::for_student(
                    UpdateReason::AccommodationChanged,
                    $crate::store::rules::student_view(record.evaluation),
                    &student.id,
                    participation,
                )));
            }
            Ok(Accommodation {
                username: student.username,
                exempt,
                reason,
                actor: actor.username,
                at,
            })
        }

        /// Every accommodation of an evaluation, by username.
        async fn list(conn: &mut $conn, evaluation_id: &str) -> Result<Vec<Accommodation>> {
            let rows: Vec<rules::Listed> = sqlx::query_as(rules::LIST)
                .bind(evaluation_id)
                .fetch_all(&mut *conn)
                .await?;
            rows.into_iter()
                .map(|(username, exempt, reason, actor, at)| {
                    Ok(Accommodation {
                        username,
                        exempt: rules::parse_exempt(Some(&exempt))?.to_vec(),
                        reason,
                        actor,
                        at: $crate::store::rows::ts(at)?,
                    })
                })
                .collect()
        }
    };
}
pub(crate) use engine_operations;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_list_reads_back_and_no_row_is_no_exemption() {
        let exempt = vec![
            ProctoringSetting::BlockClipboard,
            ProctoringSetting::SingleDisplay,
        ];
        let json = exempt_json(&exempt).unwrap();
        assert_eq!(json, r#"["block_clipboard","single_display"]"#);
        assert_eq!(parse_exempt(Some(&json)).unwrap().to_vec(), exempt);
        assert!(parse_exempt(None).unwrap().is_empty());
        assert!(parse_exempt(Some("[\"kiosk\"]")).is_err());
    }

    #[test]
    fn the_audit_sentence_names_the_settings_and_the_reason() {
        assert_eq!(
            audit_detail(&[ProctoringSetting::BlockClipboard], "Screen reader (NVDA)"),
            "Accommodation: exempt from block_clipboard. Reason: Screen reader (NVDA)"
        );
        assert!(audit_detail(&[], "No longer needed").starts_with("Accommodation removed"));
    }

    #[test]
    fn a_finished_evaluation_keeps_its_accommodations() {
        assert!(check_phase(Phase::InProgress).is_ok());
        assert!(check_phase(Phase::Draft).is_ok());
        assert_eq!(
            check_phase(Phase::Finished).unwrap_err().code(),
            ErrorCode::Conflict
        );
    }
}

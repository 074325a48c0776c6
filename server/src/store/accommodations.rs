//! Accommodations, written once for every engine: the proctoring settings one student is exempt
//! from in one evaluation (a screen reader needs the clipboard, a magnifier a second display),
//! who granted it and why.
//!
//! The reason is staff's: it is kept here and written in the audit log, never sent to the student
//! nor shown on the board, which only learn *which* settings the student is exempt from (the
//! participation's and the participant row's `proctoring_exempt`). The student's app applies the
//! evaluation's other settings.

use super::evaluations;
use super::participants::{audit, load_participation, participant_row};
use super::rows::ts;
use super::tx::{Tx, args};
use crate::error::{Error, Result};
use crate::live::event::{EvaluationEvent, Event, ParticipantEvent};
use invigil_protocol::{
    Access, Accommodation, AuditKind, ErrorCode, ParticipationStatus, Phase, ProctoringSetting,
    SettingSet, Timestamp, UpdateReason, User,
};

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

/// Sets (or, with nothing exempt, removes) a student's accommodation: an audit entry
/// `accommodation_changed` saying who and why, `EVALUATION_UPDATE` `accommodation_changed` to the
/// student if they can see the evaluation, and their board row if they are a participant.
pub async fn set(
    tx: &mut dyn Tx,
    events: &mut Vec<Event>,
    (evaluation_id, student, exempt, reason, actor): &(
        String,
        User,
        Vec<ProctoringSetting>,
        String,
        User,
    ),
) -> Result<Accommodation> {
    let evaluation_id = evaluation_id.as_str();
    // Locked: a finish committing at the same moment on another node must not slip past the
    // phase check.
    let record = evaluations::lock(tx, evaluation_id).await?;
    check_phase(record.evaluation.phase)?;
    let at = Timestamp::now();
    if exempt.is_empty() {
        tx.execute(
            "DELETE FROM accommodations WHERE evaluation_id = $1 AND user_id = $2",
            args![evaluation_id, &student.id],
        )
        .await?;
    } else {
        tx.execute(
            "INSERT INTO accommodations
               (evaluation_id, user_id, exempt, reason, actor, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (evaluation_id, user_id) DO UPDATE SET exempt = excluded.exempt,
               reason = excluded.reason, actor = excluded.actor, updated_at = excluded.updated_at",
            args![
                evaluation_id,
                &student.id,
                exempt_json(exempt)?,
                reason,
                &actor.username,
                at.unix_ms()
            ],
        )
        .await?;
    }
    audit(
        tx,
        evaluation_id,
        AuditKind::AccommodationChanged,
        Some(&student.username),
        Some(&actor.username),
        &audit_detail(exempt, reason),
    )
    .await?;
    let participation = load_participation(tx, &record.evaluation, student).await?;
    let participant = participation.status != ParticipationStatus::NotStarted
        || (record.evaluation.access == Access::List && participation.access);
    if participant {
        let row = participant_row(tx, evaluation_id, &student.id).await?;
        events.push(Event::Participant(ParticipantEvent {
            evaluation_id: evaluation_id.to_owned(),
            owner_id: record.owner_id.clone(),
            row,
        }));
    }
    // A student who cannot see the evaluation must not learn of it this way.
    if participation.access {
        events.push(Event::Evaluation(EvaluationEvent::for_student(
            UpdateReason::AccommodationChanged,
            super::rules::student_view(record.evaluation),
            &student.id,
            participation,
        )));
    }
    Ok(Accommodation {
        username: student.username.clone(),
        exempt: exempt.clone(),
        reason: reason.clone(),
        actor: actor.username.clone(),
        at,
    })
}

/// Every accommodation of an evaluation, by username.
pub async fn list(tx: &mut dyn Tx, evaluation_id: &str) -> Result<Vec<Accommodation>> {
    let rows = tx
        .fetch_all(
            "SELECT u.username, x.exempt, x.reason, x.actor, x.updated_at
             FROM accommodations x JOIN users u ON u.id = x.user_id
             WHERE x.evaluation_id = $1 ORDER BY u.username",
            args![evaluation_id],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Accommodation {
                username: r.get("username")?,
                exempt: parse_exempt(Some(&r.get::<String>("exempt")?))?.to_vec(),
                reason: r.get("reason")?,
                actor: r.get("actor")?,
                at: ts(r.get("updated_at")?)?,
            })
        })
        .collect()
}

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

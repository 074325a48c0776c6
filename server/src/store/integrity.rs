//! Proctoring in storage, shared by every engine: who may report an integrity event, the audit
//! sentences of events and of settings changes, and the SQL both engines run on the
//! `integrity_events` table (written with `$n` placeholders, which SQLite binds by number too).
//!
//! An event is stored once per (evaluation, student, `event_id`): a repeat is acknowledged again
//! and changes nothing, whatever changed since (the student may have submitted meanwhile, and the
//! app sends what it did not see acknowledged again after a reconnect). Events never change a
//! participation: proctoring observes, the professor judges.

use super::EvaluationRecord;
use super::evaluations;
use super::participants::{audit, load_participation, participant_row};
use super::rows::ts;
use super::tx::{Tx, args};
use crate::error::{Error, Result};
use crate::live::event::{EvaluationEvent, Event, ParticipantEvent, ParticipantRow};
use invigil_protocol::{
    AuditKind, Capabilities, CapabilityLevel, ErrorCode, Evaluation, IntegrityEvent, IntegrityKind,
    IntegrityLast, IntegrityRecord, IntegrityRejectCode, IntegritySummary, ParticipationStatus,
    Proctoring, Timestamp, UpdateReason, User,
};
use std::collections::HashMap;

/// Whether a student may report an event in an evaluation they are (or are not) eligible for:
/// eligible, and sitting it or blocked in it, whatever the phase (a late event is still evidence).
pub fn check(eligible: bool, status: ParticipationStatus) -> Result<(), IntegrityRejectCode> {
    if !eligible {
        return Err(IntegrityRejectCode::NotOnAccessList);
    }
    match status {
        ParticipationStatus::InProgress | ParticipationStatus::Blocked => Ok(()),
        ParticipationStatus::NotStarted | ParticipationStatus::Submitted => {
            Err(IntegrityRejectCode::NotParticipating)
        }
    }
}

/// The API error of a refused event (over HTTP; the socket answers `INTEGRITY_REJECTED`).
pub fn reject_error(code: IntegrityRejectCode) -> Error {
    match code {
        IntegrityRejectCode::NotParticipating => Error::api(
            ErrorCode::NotParticipating,
            "Integrity events are taken only while you are sitting this evaluation (or blocked \
             in it): you have not joined it, or you have submitted it.",
        ),
        IntegrityRejectCode::NotFound => Error::not_found("There is no such evaluation."),
        IntegrityRejectCode::NotOnAccessList => Error::api(
            ErrorCode::NotOnAccessList,
            "You are not on the access list of this evaluation.",
        ),
    }
}

/// The refusal code of an error met while storing an event, if it is a refusal.
pub fn reject_code(error: &Error) -> Option<IntegrityRejectCode> {
    Some(match error.code() {
        ErrorCode::NotParticipating => IntegrityRejectCode::NotParticipating,
        ErrorCode::NotFound => IntegrityRejectCode::NotFound,
        ErrorCode::NotOnAccessList => IntegrityRejectCode::NotOnAccessList,
        _ => return None,
    })
}

/// The audit sentence of a stored event: what happened, with the device's time (the entry's own
/// time is the server's).
pub fn event_detail(event: &IntegrityEvent) -> String {
    let what = match event.kind {
        IntegrityKind::FocusLost => "Left the exam window".to_owned(),
        IntegrityKind::FocusRegained => format!(
            "Came back to the exam window after {} ms away",
            event.away_ms.unwrap_or_default()
        ),
        IntegrityKind::FullscreenExited => "Left fullscreen".to_owned(),
        IntegrityKind::ClipboardBlocked => {
            "A copy or paste between the exam and another program was refused".to_owned()
        }
        IntegrityKind::DisplaysChanged => {
            let n = event.displays.unwrap_or_default();
            format!("{n} display{} connected", if n == 1 { "" } else { "s" })
        }
        IntegrityKind::AppRestarted => "The app was started again".to_owned(),
        IntegrityKind::Capabilities => format!(
            "The app reported what it can do on this computer: {}",
            capabilities_text(&event.capabilities.unwrap_or_default())
        ),
    };
    let detail = event
        .detail
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| format!(": {d}"))
        .unwrap_or_default();
    format!("{what} (device time {}){detail}.", event.at)
}

fn capabilities_text(capabilities: &Capabilities) -> String {
    let named = [
        ("fullscreen", capabilities.fullscreen),
        ("report_focus", capabilities.report_focus),
        ("block_clipboard", capabilities.block_clipboard),
        ("single_display", capabilities.single_display),
    ];
    let parts: Vec<String> = named
        .iter()
        .filter_map(|(name, level)| {
            level.map(|level| {
                let level = match level {
                    CapabilityLevel::Enforced => "enforced",
                    CapabilityLevel::DetectOnly => "detect only",
                    CapabilityLevel::Unavailable => "unavailable",
                };
                format!("{name} {level}")
            })
        })
        .collect();
    if parts.is_empty() {
        "nothing named".to_owned()
    } else {
        parts.join(", ")
    }
}

/// The audit sentence of a change of proctoring settings: each setting that changed, before and
/// after.
pub fn proctoring_detail(before: &Proctoring, after: &Proctoring) -> String {
    let onoff = |on: bool| if on { "on" } else { "off" };
    let mut changes = Vec::new();
    for (name, from, to) in [
        ("fullscreen", before.fullscreen, after.fullscreen),
        ("report_focus", before.report_focus, after.report_focus),
        (
            "block_clipboard",
            before.block_clipboard,
            after.block_clipboard,
        ),
        (
            "single_display",
            before.single_display,
            after.single_display,
        ),
    ] {
        if from != to {
            changes.push(format!("{name} {} → {}", onoff(from), onoff(to)));
        }
    }
    if before.brief_ms != after.brief_ms {
        changes.push(format!("brief_ms {} → {}", before.brief_ms, after.brief_ms));
    }
    format!("Proctoring changed: {}.", changes.join(", "))
}

/// Reads stored proctoring settings (JSON; absent keys are the defaults).
pub fn parse_proctoring(text: &str) -> Result<Proctoring> {
    serde_json::from_str(text)
        .map_err(|e| Error::internal(format!("stored proctoring settings are not valid: {e}")))
}

/// Writes proctoring settings for storage.
pub fn proctoring_json(proctoring: &Proctoring) -> Result<String> {
    serde_json::to_string(proctoring).map_err(Error::internal)
}

/// Whether a student already reported this event: `$1` evaluation, `$2` user id, `$3` event id.
pub const STORED: &str = "SELECT EXISTS (SELECT 1 FROM integrity_events
     WHERE evaluation_id = $1 AND user_id = $2 AND event_id = $3)";

/// Stores an event unless it is stored already; returns its `seq` when it was new. Binds: `$1`
/// evaluation, `$2` user id, `$3` event id, `$4` kind, `$5` device time, `$6` server time,
/// `$7` away_ms, `$8` displays, `$9` capabilities (JSON), `$10` detail.
pub const INSERT: &str = "INSERT INTO integrity_events
     (evaluation_id, user_id, event_id, kind, at, received_at, away_ms, displays, capabilities, detail)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
     ON CONFLICT (evaluation_id, user_id, event_id) DO NOTHING
     RETURNING seq";

/// The counts of every student of an evaluation (`$1`), or of one (`$2`, else null), with
/// `$3` the evaluation's `brief_ms`.
pub const TOTALS: &str = "SELECT user_id,
     CAST(COUNT(*) AS BIGINT) AS events,
     CAST(COALESCE(SUM(CASE WHEN kind = 'focus_lost' THEN 1 ELSE 0 END), 0) AS BIGINT) AS focus_lost,
     CAST(COALESCE(SUM(CASE WHEN kind = 'focus_regained' AND away_ms < $3 THEN 1 ELSE 0 END), 0) AS BIGINT) AS brief,
     CAST(COALESCE(SUM(away_ms), 0) AS BIGINT) AS away_ms,
     CAST(COALESCE(MAX(away_ms), 0) AS BIGINT) AS longest_away_ms
     FROM integrity_events WHERE evaluation_id = $1 AND ($2 IS NULL OR user_id = $2)
     GROUP BY user_id";

/// The last event of every student of an evaluation (`$1`), or of one (`$2`, else null).
pub const LAST: &str = "SELECT user_id, kind, at FROM integrity_events WHERE seq IN (
     SELECT MAX(seq) FROM integrity_events WHERE evaluation_id = $1 AND ($2 IS NULL OR user_id = $2)
     GROUP BY user_id)";

/// The last `capabilities` event of every student of an evaluation (`$1`), or of one (`$2`).
pub const CAPABILITIES: &str =
    "SELECT user_id, capabilities, detail FROM integrity_events WHERE seq IN (
     SELECT MAX(seq) FROM integrity_events WHERE evaluation_id = $1 AND ($2 IS NULL OR user_id = $2)
       AND kind = 'capabilities'
     GROUP BY user_id)";

/// One student's events (`$1` evaluation, `$2` user id) in the order they were stored, with
/// both times.
pub const TIMELINE: &str =
    "SELECT event_id, kind, at, received_at, away_ms, displays, capabilities, detail
     FROM integrity_events WHERE evaluation_id = $1 AND user_id = $2 ORDER BY seq";

/// A row of [`TIMELINE`]: event id, kind, device time, server time, away_ms, displays,
/// capabilities (JSON), detail.
pub type TimelineRow = (
    String,
    String,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
);

/// A stored event as the timeline shows it.
pub fn timeline_record(evaluation_id: &str, row: TimelineRow) -> Result<IntegrityRecord> {
    let (event_id, stored_kind, at, received_at, away_ms, displays, capabilities, detail) = row;
    let capabilities = capabilities
        .map(|json| serde_json::from_str::<Capabilities>(&json))
        .transpose()
        .map_err(|e| Error::internal(format!("stored capabilities are not valid: {e}")))?;
    Ok(IntegrityRecord {
        event: IntegrityEvent {
            evaluation_id: evaluation_id.to_owned(),
            event_id,
            kind: kind(&stored_kind)?,
            at: ts(at)?,
            away_ms: away_ms.map(|ms| u64::try_from(ms).unwrap_or_default()),
            displays: displays.map(|n| u32::try_from(n).unwrap_or_default()),
            capabilities,
            detail,
        },
        received_at: ts(received_at)?,
    })
}

/// A row of [`TOTALS`]: user id, events, focus_lost, brief, away_ms, longest_away_ms.
pub type Totals = (String, i64, i64, i64, i64, i64);
/// A row of [`LAST`]: user id, kind, device time.
pub type Last = (String, String, i64);
/// A row of [`CAPABILITIES`]: user id, capabilities (JSON), detail.
pub type LastCapabilities = (String, String, Option<String>);

/// The summaries of students, by user id, made of what the three queries read.
pub fn summaries(
    totals: Vec<Totals>,
    last: Vec<Last>,
    capabilities: Vec<LastCapabilities>,
) -> Result<HashMap<String, IntegritySummary>> {
    let count = |n: i64| u32::try_from(n.max(0)).unwrap_or(u32::MAX);
    let ms = |n: i64| u64::try_from(n).unwrap_or_default();
    let mut by_user: HashMap<String, IntegritySummary> = totals
        .into_iter()
        .map(
            |(user, events, focus_lost, brief, away_ms, longest_away_ms)| {
                let summary = IntegritySummary {
                    events: count(events),
                    focus_lost: count(focus_lost),
                    brief: count(brief),
                    away_ms: ms(away_ms),
                    longest_away_ms: ms(longest_away_ms),
                    last: None,
                    capabilities: None,
                    capabilities_detail: None,
                };
                (user, summary)
            },
        )
        .collect();
    for (user, stored_kind, at) in last {
        by_user.entry(user).or_default().last = Some(IntegrityLast {
            kind: kind(&stored_kind)?,
            at: ts(at)?,
        });
    }
    for (user, json, detail) in capabilities {
        let read: Capabilities = serde_json::from_str(&json)
            .map_err(|e| Error::internal(format!("stored capabilities are not valid: {e}")))?;
        let summary = by_user.entry(user).or_default();
        summary.capabilities = Some(read);
        summary.capabilities_detail = detail.map(String::into_boxed_str);
    }
    Ok(by_user)
}

/// Gives each row its student's summary (the empty one when they reported nothing).
pub fn attach(rows: &mut [ParticipantRow], mut by_user: HashMap<String, IntegritySummary>) {
    for row in rows {
        row.integrity = by_user.remove(&row.user_id).unwrap_or_default();
    }
}

/// Reads a stored kind.
pub fn kind(text: &str) -> Result<IntegrityKind> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .map_err(|_| Error::internal(format!("stored integrity kind `{text}` is unknown")))
}

/// Stores one integrity event of a student, in the caller's transaction (see
/// [`crate::store::Store::record_integrity`]).
pub async fn record(
    tx: &mut dyn Tx,
    events: &mut Vec<Event>,
    (student, event): &(User, IntegrityEvent),
) -> Result<()> {
    let record = evaluations::load(tx, &event.evaluation_id)
        .await?
        .ok_or_else(|| reject_error(IntegrityRejectCode::NotFound))?;
    let id = record.evaluation.id.clone();
    let stored: bool = tx
        .fetch_one(STORED, args![&id, &student.id, &event.event_id])
        .await?
        .first()?;
    if stored {
        return Ok(());
    }
    let participation = load_participation(tx, &record.evaluation, student).await?;
    check(participation.access, participation.status).map_err(reject_error)?;
    let capabilities = event
        .capabilities
        .map(|c| serde_json::to_string(&c))
        .transpose()
        .map_err(Error::internal)?;
    let inserted = tx
        .fetch_optional(
            INSERT,
            args![
                &id,
                &student.id,
                &event.event_id,
                event.kind.as_str(),
                event.at.unix_ms(),
                Timestamp::now().unix_ms(),
                event
                    .away_ms
                    .map(|ms| i64::try_from(ms).unwrap_or(i64::MAX)),
                event.displays.map(i64::from),
                capabilities,
                &event.detail,
            ],
        )
        .await?;
    if inserted.is_none() {
        return Ok(());
    }
    let name = Some(student.username.as_str());
    audit(
        tx,
        &id,
        event.kind.audit_kind(),
        name,
        name,
        &event_detail(event),
    )
    .await?;
    let row = participant_row(tx, &id, &student.id).await?;
    events.push(Event::Participant(ParticipantEvent {
        evaluation_id: id,
        owner_id: record.owner_id,
        row,
    }));
    Ok(())
}

/// One student's stored events, in the order they were stored, with both times.
pub async fn timeline(
    tx: &mut dyn Tx,
    (evaluation_id, user_id): &(&str, &str),
) -> Result<Vec<IntegrityRecord>> {
    let rows = tx
        .fetch_all(TIMELINE, args![*evaluation_id, *user_id])
        .await?;
    rows.iter()
        .map(|r| {
            let row: TimelineRow = (
                r.get("event_id")?,
                r.get("kind")?,
                r.get("at")?,
                r.get("received_at")?,
                r.get("away_ms")?,
                r.get("displays")?,
                r.get("capabilities")?,
                r.get("detail")?,
            );
            timeline_record(evaluation_id, row)
        })
        .collect()
}

/// Gives rows of one evaluation their integrity summaries (`user`: the rows are that student's).
pub async fn fill(
    tx: &mut dyn Tx,
    evaluation_id: &str,
    user: Option<&str>,
    rows: &mut [ParticipantRow],
) -> Result<()> {
    let settings = tx.fetch_optional(SETTINGS, args![evaluation_id]).await?;
    let brief_ms = match settings {
        Some(row) => parse_proctoring(&row.first::<String>()?)?.brief_ms,
        None => return Ok(()),
    };
    let brief_ms = i64::try_from(brief_ms).unwrap_or(i64::MAX);
    let totals = tx
        .fetch_all(TOTALS, args![evaluation_id, user, brief_ms])
        .await?
        .iter()
        .map(|r| {
            Ok((
                r.get("user_id")?,
                r.get("events")?,
                r.get("focus_lost")?,
                r.get("brief")?,
                r.get("away_ms")?,
                r.get("longest_away_ms")?,
            ))
        })
        .collect::<Result<Vec<Totals>>>()?;
    let last = tx
        .fetch_all(LAST, args![evaluation_id, user])
        .await?
        .iter()
        .map(|r| Ok((r.get("user_id")?, r.get("kind")?, r.get("at")?)))
        .collect::<Result<Vec<Last>>>()?;
    let capabilities = tx
        .fetch_all(CAPABILITIES, args![evaluation_id, user])
        .await?
        .iter()
        .map(|r| Ok((r.get("user_id")?, r.get("capabilities")?, r.get("detail")?)))
        .collect::<Result<Vec<LastCapabilities>>>()?;
    attach(rows, summaries(totals, last, capabilities)?);
    Ok(())
}

/// What a change of an evaluation's proctoring settings (already written) means: an audit entry
/// `proctoring_changed` saying who changed what, and `EVALUATION_UPDATE` `proctoring_changed` to
/// its students.
pub async fn proctoring_changed(
    tx: &mut dyn Tx,
    record: &EvaluationRecord,
    before: &Evaluation,
    actor: &User,
    events: &mut Vec<Event>,
) -> Result<()> {
    let after = &record.evaluation;
    audit(
        tx,
        &after.id,
        AuditKind::ProctoringChanged,
        None,
        Some(&actor.username),
        &proctoring_detail(&before.proctoring, &after.proctoring),
    )
    .await?;
    let audience = evaluations::audience(tx, after).await?;
    events.push(Event::Evaluation(EvaluationEvent::new(
        UpdateReason::ProctoringChanged,
        super::rules::student_view(after.clone()),
        audience,
        HashMap::new(),
    )));
    Ok(())
}

/// The stored settings of an evaluation (`$1`), as JSON text on either engine.
pub const SETTINGS: &str = "SELECT CAST(proctoring AS TEXT) FROM evaluations WHERE id = $1";

#[cfg(test)]
mod tests {
    use super::*;
    use invigil_protocol::Timestamp;

    fn event(kind: IntegrityKind) -> IntegrityEvent {
        IntegrityEvent {
            evaluation_id: "e1".into(),
            event_id: "0f8b2c1e-7d4a-4b7e-9a51-3c2d1e0f9a8b".into(),
            kind,
            at: Timestamp::from_unix_ms(1_795_338_000_000).unwrap(),
            away_ms: None,
            displays: None,
            capabilities: None,
            detail: None,
        }
    }

    #[test]
    fn events_are_taken_from_sitting_and_blocked_students_only() {
        assert_eq!(check(true, ParticipationStatus::InProgress), Ok(()));
        assert_eq!(check(true, ParticipationStatus::Blocked), Ok(()));
        assert_eq!(
            check(true, ParticipationStatus::Submitted),
            Err(IntegrityRejectCode::NotParticipating)
        );
        assert_eq!(
            check(true, ParticipationStatus::NotStarted),
            Err(IntegrityRejectCode::NotParticipating)
        );
        assert_eq!(
            check(false, ParticipationStatus::InProgress),
            Err(IntegrityRejectCode::NotOnAccessList)
        );
    }

    #[test]
    fn a_refusal_survives_the_trip_through_an_api_error() {
        for code in [
            IntegrityRejectCode::NotParticipating,
            IntegrityRejectCode::NotFound,
            IntegrityRejectCode::NotOnAccessList,
        ] {
            assert_eq!(reject_code(&reject_error(code)), Some(code));
        }
    }

    #[test]
    fn the_audit_sentence_names_the_device_time_and_what_was_measured() {
        let back = IntegrityEvent {
            away_ms: Some(4210),
            detail: Some("  ".into()),
            ..event(IntegrityKind::FocusRegained)
        };
        let sentence = event_detail(&back);
        assert!(sentence.contains("4210 ms"), "{sentence}");
        assert!(sentence.contains("device time 2026-"), "{sentence}");
        let screens = IntegrityEvent {
            displays: Some(2),
            detail: Some("HDMI-1 added".into()),
            ..event(IntegrityKind::DisplaysChanged)
        };
        let sentence = event_detail(&screens);
        assert!(sentence.contains("2 displays"), "{sentence}");
        assert!(sentence.ends_with(": HDMI-1 added."), "{sentence}");
    }

    #[test]
    fn a_settings_sentence_names_each_change() {
        let before = Proctoring::default();
        let after = Proctoring {
            report_focus: true,
            brief_ms: 3000,
            ..before
        };
        assert_eq!(
            proctoring_detail(&before, &after),
            "Proctoring changed: report_focus off → on, brief_ms 2000 → 3000."
        );
    }
}

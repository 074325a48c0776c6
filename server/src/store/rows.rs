//! Reading stored values back into domain values, shared by every engine: times kept as
//! milliseconds since the epoch, and the text forms of roles, phases, statuses and access modes.

use super::rules::Stored;
use crate::error::{Error, Result};
use invigil_protocol::{Access, BlockedReason, ParticipationStatus, Phase, Role, Timestamp};

/// A stored time.
pub fn ts(ms: i64) -> Result<Timestamp> {
    Timestamp::from_unix_ms(ms)
        .ok_or_else(|| Error::internal(format!("stored time {ms} is out of range")))
}

/// A stored time that may be absent.
pub fn opt_ts(ms: Option<i64>) -> Result<Option<Timestamp>> {
    ms.map(ts).transpose()
}

/// A stored answer's revision and late mark, read beside other columns of a row (both null
/// when no answer is stored).
pub fn stored(revision: Option<i64>, late: Option<bool>) -> Result<Option<Stored>> {
    match (revision, late) {
        (None, _) => Ok(None),
        (Some(revision), Some(late)) => Ok(Some(Stored {
            revision: revision as u64,
            late,
        })),
        (Some(revision), None) => Err(Error::internal(format!(
            "stored answer revision {revision} has no late mark"
        ))),
    }
}

/// A stored role.
pub fn role(text: &str) -> Result<Role> {
    Ok(match text {
        "student" => Role::Student,
        "professor" => Role::Professor,
        "admin" => Role::Admin,
        other => return Err(Error::internal(format!("stored role `{other}` is unknown"))),
    })
}

/// A stored phase.
pub fn phase(text: &str) -> Result<Phase> {
    Phase::parse(text).ok_or_else(|| Error::internal(format!("stored phase `{text}` is unknown")))
}

/// A stored participation status; no row means not started.
pub fn status(text: Option<&str>) -> Result<ParticipationStatus> {
    match text {
        None => Ok(ParticipationStatus::NotStarted),
        Some(t) => ParticipationStatus::parse(t)
            .ok_or_else(|| Error::internal(format!("stored status `{t}` is unknown"))),
    }
}

/// A stored reason for a block.
pub fn blocked_reason(text: Option<&str>) -> Option<BlockedReason> {
    text.and_then(BlockedReason::parse)
}

/// A stored access mode.
pub fn access(text: &str) -> Access {
    if text == "open" {
        Access::Open
    } else {
        Access::List
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_answer_is_its_revision_with_its_late_mark_and_none_without_a_revision() {
        assert_eq!(
            stored(Some(3), Some(true)).unwrap(),
            Some(Stored {
                revision: 3,
                late: true
            })
        );
        assert_eq!(stored(None, None).unwrap(), None);
        assert!(
            stored(Some(3), None).is_err(),
            "a revision needs its late mark"
        );
    }
}

//! Reading stored values back into domain values, shared by every engine: times kept as
//! milliseconds since the epoch, and the text forms of roles, phases, statuses and access modes.

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

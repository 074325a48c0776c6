//! Reading stored values back into domain values, shared by every engine: times kept as
//! milliseconds since the epoch, and the text forms of roles, phases, statuses and access modes.

use super::rules::{Digest, Stored};
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

/// A stored answer's revision, late mark and content digest, read beside other columns of a row
/// (all null when no answer is stored). An answer stored before digests were kept has none: its
/// content (`legacy_content`, selected only then) is digested instead.
pub fn stored(
    revision: Option<i64>,
    late: Option<bool>,
    digest: Option<Vec<u8>>,
    legacy_content: Option<String>,
) -> Result<Option<Stored>> {
    let Some(revision) = revision else {
        return Ok(None);
    };
    let late = late.ok_or_else(|| {
        Error::internal(format!(
            "stored answer revision {revision} has no late mark"
        ))
    })?;
    let digest = match (digest, legacy_content) {
        (Some(bytes), _) => Digest(bytes.try_into().map_err(|bytes: Vec<u8>| {
            Error::internal(format!("a stored content digest has {} bytes", bytes.len()))
        })?),
        (None, Some(content)) => Digest::of(&content),
        (None, None) => {
            return Err(Error::internal(format!(
                "stored answer revision {revision} has neither a digest nor its content"
            )));
        }
    };
    Ok(Some(Stored {
        revision: revision as u64,
        late,
        digest,
    }))
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
        let digest = Digest::of("text");
        assert_eq!(
            stored(Some(3), Some(true), Some(digest.0.to_vec()), None).unwrap(),
            Some(Stored {
                revision: 3,
                late: true,
                digest
            })
        );
        assert_eq!(stored(None, None, None, None).unwrap(), None);
        assert!(
            stored(Some(3), None, Some(digest.0.to_vec()), None).is_err(),
            "a revision needs its late mark"
        );
    }

    #[test]
    fn an_answer_stored_before_digests_is_digested_from_its_content() {
        assert_eq!(
            stored(Some(3), Some(false), None, Some("text".into()))
                .unwrap()
                .map(|s| s.digest),
            Some(Digest::of("text"))
        );
        assert!(stored(Some(3), Some(false), Some(vec![1, 2]), None).is_err());
    }
}

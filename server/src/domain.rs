//! Domain values parsed at the edge, so that inner code never takes a raw string for them.

use crate::error::Error;
use invigil_protocol::{
    Choice, IntegrityEvent, IntegrityKind, MAX_ACCOMMODATION_REASON_CHARS,
    MAX_INTEGRITY_DETAIL_CHARS, NewQuestion, ProctoringChange, ProctoringSetting, Question,
    QuestionKind, SetAccommodation,
};
use std::collections::HashSet;
use std::fmt;

/// A sign-in name: 1 to 64 characters of letters, digits and `. _ - @`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    /// Checks a sign-in name.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let ok = !text.is_empty()
            && text.chars().count() <= 64
            && text
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(Error::bad_request(format!(
                "`{text}` is not a valid username: use 1 to 64 letters, digits, `.`, `_`, `-` or `@`."
            )))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A name given by a client, as logs show it: at most 64 characters (a longer one is cut and
/// marked), so that nobody can fill the log with a name.
pub fn loggable(name: &str) -> std::borrow::Cow<'_, str> {
    match name.char_indices().nth(64) {
        None => name.into(),
        Some((end, _)) => format!("{}…", &name[..end]).into(),
    }
}

/// The longest reason for overriding a refused import, in characters.
pub const MAX_OVERRIDE_CHARS: usize = 1000;

/// Why staff import answers for a student who is blocked or has handed in: trimmed, 1 to 1000
/// characters. It goes to the audit log beside who gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverrideReason(String);

impl OverrideReason {
    /// Checks a reason.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let text = text.trim();
        if text.is_empty() {
            return Err(Error::bad_request(
                "An override needs a reason: say why these answers should be stored anyway.",
            ));
        }
        if text.chars().count() > MAX_OVERRIDE_CHARS {
            return Err(Error::bad_request(format!(
                "An override's reason may be at most {MAX_OVERRIDE_CHARS} characters."
            )));
        }
        Ok(Self(text.to_owned()))
    }

    /// The reason.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password as given at account creation: not empty, at most 1024 bytes (argon2 input stays cheap).
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Checks a new password.
    pub fn parse(text: String) -> Result<Self, Error> {
        if text.is_empty() {
            return Err(Error::bad_request("The password may not be empty."));
        }
        if text.len() > 1024 {
            return Err(Error::bad_request(
                "The password may be at most 1024 bytes long.",
            ));
        }
        Ok(Self(text))
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// A revision of an answer: a positive integer that fits storage's signed 64 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Revision(u64);

impl Revision {
    /// Checks a revision sent by a client.
    pub fn new(value: u64) -> Result<Self, Error> {
        if value == 0 || value > i64::MAX as u64 {
            Err(Error::bad_request(format!(
                "Revision {value} is out of range: it must be a positive integer below 2^63."
            )))
        } else {
            Ok(Self(value))
        }
    }

    /// The number.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// The largest answer content accepted, in bytes (the socket's message limit bounds it anyway).
pub const MAX_CONTENT_BYTES: usize = 1024 * 1024 - 1024;

/// Checks answer content.
pub fn check_content(content: &str) -> Result<(), Error> {
    if content.len() > MAX_CONTENT_BYTES {
        Err(Error::api(
            invigil_protocol::ErrorCode::PayloadTooLarge,
            format!("An answer may hold at most {MAX_CONTENT_BYTES} bytes."),
        ))
    } else {
        Ok(())
    }
}

/// A display name: trimmed, 1 to 200 characters; the username when absent or blank.
pub fn display_name(given: Option<String>, username: &Username) -> Result<String, Error> {
    let name = given
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| username.as_str().to_owned());
    if name.chars().count() > 200 {
        return Err(Error::bad_request(
            "A display name may be at most 200 characters.",
        ));
    }
    Ok(name)
}

/// The longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// The most questions an evaluation may have.
pub const MAX_QUESTIONS: usize = 500;
/// The longest prompt, in bytes (64 KiB).
pub const MAX_PROMPT_BYTES: usize = 64 * 1024;
/// The most choices a choice question may have.
pub const MAX_CHOICES: usize = 100;
/// The longest choice label, in bytes (1 KiB).
pub const MAX_LABEL_BYTES: usize = 1024;
/// The most names an access list may hold.
pub const MAX_ACCESS_LIST: usize = 50_000;

/// A title: trimmed, 1 to 200 characters.
pub fn title(text: &str) -> Result<String, Error> {
    let t = text.trim();
    if t.is_empty() || t.chars().nth(MAX_TITLE_CHARS).is_some() {
        return Err(Error::bad_request(format!(
            "The title must be 1 to {MAX_TITLE_CHARS} characters long."
        )));
    }
    Ok(t.to_owned())
}

/// Checks a professor's questions and gives each an id (`q1`, `q2`, … by position where none is set).
/// Every size limit is checked before anything else, so that an oversized evaluation is refused
/// naming the limit it broke, whatever else is wrong with it.
pub fn questions(new: Vec<NewQuestion>) -> Result<Vec<Question>, Error> {
    if new.len() > MAX_QUESTIONS {
        return Err(Error::bad_request(format!(
            "An evaluation may have at most {MAX_QUESTIONS} questions; this one has {}.",
            new.len()
        )));
    }
    for (i, q) in new.iter().enumerate() {
        check_sizes(i, q)?;
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(new.len());
    for (i, q) in new.into_iter().enumerate() {
        let id = q.id.unwrap_or_else(|| format!("q{}", i + 1));
        if id.trim().is_empty() || id.len() > 64 {
            return Err(Error::bad_request(format!(
                "Question {} has an invalid id: use 1 to 64 characters.",
                i + 1
            )));
        }
        if !seen.insert(id.clone()) {
            return Err(Error::bad_request(format!(
                "Two questions have the id `{id}`; ids must be unique."
            )));
        }
        if q.prompt.trim().is_empty() {
            return Err(Error::bad_request(format!(
                "Question `{id}` has an empty prompt."
            )));
        }
        if let QuestionKind::Choice { choices } = &q.kind {
            check_choices(&id, choices)?;
        }
        out.push(Question {
            id,
            prompt: q.prompt,
            kind: q.kind,
        });
    }
    Ok(out)
}

/// The size limits of question `i` (0-based).
fn check_sizes(i: usize, q: &NewQuestion) -> Result<(), Error> {
    let n = i + 1;
    if q.prompt.len() > MAX_PROMPT_BYTES {
        return Err(Error::bad_request(format!(
            "The prompt of question {n} is {} bytes; a prompt may be at most {MAX_PROMPT_BYTES} bytes (64 KiB).",
            q.prompt.len()
        )));
    }
    if let QuestionKind::Choice { choices } = &q.kind {
        if choices.len() > MAX_CHOICES {
            return Err(Error::bad_request(format!(
                "Question {n} has {} choices; a question may have at most {MAX_CHOICES}.",
                choices.len()
            )));
        }
        if let Some(c) = choices.iter().position(|c| c.label.len() > MAX_LABEL_BYTES) {
            return Err(Error::bad_request(format!(
                "Choice {} of question {n} has a label of {} bytes; a label may be at most {MAX_LABEL_BYTES} bytes (1 KiB).",
                c + 1,
                choices[c].label.len()
            )));
        }
    }
    Ok(())
}

fn check_choices(question: &str, choices: &[Choice]) -> Result<(), Error> {
    if choices.len() < 2 {
        return Err(Error::bad_request(format!(
            "Choice question `{question}` needs at least two choices."
        )));
    }
    let mut seen = HashSet::new();
    for c in choices {
        if c.id.trim().is_empty() || !seen.insert(c.id.as_str()) {
            return Err(Error::bad_request(format!(
                "Choice question `{question}` has an empty or repeated choice id `{}`.",
                c.id
            )));
        }
    }
    Ok(())
}

/// A new random id: 128 bits, as 32 hex digits, ordered by creation time (UUID v7).
pub fn new_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// The longest `brief_ms` a professor may set: a minute (an absence longer than that is never
/// "brief").
pub const MAX_BRIEF_MS: u64 = 60_000;
/// The longest `away_ms` an integrity event may report: a week (more is a broken clock).
pub const MAX_AWAY_MS: u64 = 7 * 24 * 3600 * 1000;
/// The most displays an integrity event may report.
pub const MAX_DISPLAYS: u32 = 64;

/// Checks proctoring settings given at creation or in a `PATCH`: `brief_ms` at most
/// [`MAX_BRIEF_MS`].
pub fn proctoring_change(change: ProctoringChange) -> Result<ProctoringChange, Error> {
    match change.brief_ms {
        Some(ms) if ms > MAX_BRIEF_MS => Err(Error::bad_request(format!(
            "`proctoring.brief_ms` is {ms}: it may be at most {MAX_BRIEF_MS} (milliseconds)."
        ))),
        _ => Ok(change),
    }
}

/// Checks an accommodation as staff sent it: the settings sorted, each once; the reason trimmed,
/// 1 to [`MAX_ACCOMMODATION_REASON_CHARS`] characters (a removal needs one too: the audit log
/// says why every change was made).
pub fn accommodation(body: SetAccommodation) -> Result<(Vec<ProctoringSetting>, String), Error> {
    let reason = body.reason.trim();
    if reason.is_empty() {
        return Err(Error::bad_request(
            "An accommodation needs a `reason` (for the audit log; the student and the board \
             never see it).",
        ));
    }
    if reason.chars().nth(MAX_ACCOMMODATION_REASON_CHARS).is_some() {
        return Err(Error::bad_request(format!(
            "The `reason` may be at most {MAX_ACCOMMODATION_REASON_CHARS} characters long."
        )));
    }
    let mut exempt = body.exempt;
    exempt.sort();
    exempt.dedup();
    Ok((exempt, reason.to_owned()))
}

/// Checks an integrity event as a client sent it: `event_id` a UUID, `detail` at most
/// [`MAX_INTEGRITY_DETAIL_CHARS`] characters, and exactly the fields its kind carries
/// (`away_ms` for `focus_regained`, `displays` for `displays_changed`, `capabilities` for
/// `capabilities`), within their limits.
pub fn integrity_event(event: IntegrityEvent) -> Result<IntegrityEvent, Error> {
    if uuid::Uuid::try_parse(&event.event_id).is_err() {
        return Err(Error::bad_request(
            "`event_id` must be a UUID made by the client (e.g. 0f8b2c1e-7d4a-4b7e-9a51-3c2d1e0f9a8b).",
        ));
    }
    if event
        .detail
        .as_ref()
        .is_some_and(|d| d.chars().count() > MAX_INTEGRITY_DETAIL_CHARS)
    {
        return Err(Error::bad_request(format!(
            "`detail` may be at most {MAX_INTEGRITY_DETAIL_CHARS} characters long."
        )));
    }
    let kind = event.kind.as_str();
    let carries = |field: &str, given: bool, wanted: bool| -> Result<(), Error> {
        match (given, wanted) {
            (false, true) => Err(Error::bad_request(format!(
                "A `{kind}` event must carry `{field}`."
            ))),
            (true, false) => Err(Error::bad_request(format!(
                "A `{kind}` event carries no `{field}`."
            ))),
            _ => Ok(()),
        }
    };
    carries(
        "away_ms",
        event.away_ms.is_some(),
        event.kind == IntegrityKind::FocusRegained,
    )?;
    carries(
        "displays",
        event.displays.is_some(),
        event.kind == IntegrityKind::DisplaysChanged,
    )?;
    carries(
        "capabilities",
        event.capabilities.is_some(),
        event.kind == IntegrityKind::Capabilities,
    )?;
    if event.away_ms.is_some_and(|ms| ms > MAX_AWAY_MS) {
        return Err(Error::bad_request(format!(
            "`away_ms` may be at most {MAX_AWAY_MS} (a week)."
        )));
    }
    if event.displays.is_some_and(|n| n > MAX_DISPLAYS) {
        return Err(Error::bad_request(format!(
            "`displays` may be at most {MAX_DISPLAYS}."
        )));
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_accommodation_is_sorted_once_each_and_needs_a_short_reason() {
        let body = |exempt: Vec<ProctoringSetting>, reason: &str| SetAccommodation {
            exempt,
            reason: reason.into(),
        };
        let (exempt, reason) = accommodation(body(
            vec![
                ProctoringSetting::SingleDisplay,
                ProctoringSetting::BlockClipboard,
                ProctoringSetting::SingleDisplay,
            ],
            "  Magnifier  ",
        ))
        .unwrap();
        assert_eq!(
            exempt,
            vec![
                ProctoringSetting::BlockClipboard,
                ProctoringSetting::SingleDisplay
            ]
        );
        assert_eq!(reason, "Magnifier");
        assert!(accommodation(body(vec![], "   ")).is_err());
        let long = "x".repeat(MAX_ACCOMMODATION_REASON_CHARS + 1);
        assert!(accommodation(body(vec![], &long)).is_err());
        let longest = "é".repeat(MAX_ACCOMMODATION_REASON_CHARS);
        assert!(accommodation(body(vec![], &longest)).is_ok());
    }

    #[test]
    fn usernames_reject_spaces_and_empty_names() {
        assert!(Username::parse("alice.b-1@uni").is_ok());
        assert!(Username::parse("").is_err());
        assert!(Username::parse("a b").is_err());
        assert!(Username::parse(&"x".repeat(65)).is_err());
    }

    #[test]
    fn an_override_needs_a_reason_of_at_most_1000_characters() {
        assert_eq!(
            OverrideReason::parse("  identity checked ")
                .unwrap()
                .as_str(),
            "identity checked"
        );
        assert!(OverrideReason::parse(" \t ").is_err());
        assert!(OverrideReason::parse(&"é".repeat(MAX_OVERRIDE_CHARS)).is_ok());
        assert!(OverrideReason::parse(&"é".repeat(MAX_OVERRIDE_CHARS + 1)).is_err());
    }

    #[test]
    fn revisions_must_be_positive_and_fit_in_i64() {
        assert!(Revision::new(0).is_err());
        assert_eq!(Revision::new(1).unwrap().get(), 1);
        assert!(Revision::new(i64::MAX as u64).is_ok());
        assert!(Revision::new(i64::MAX as u64 + 1).is_err());
    }

    #[test]
    fn questions_get_ids_by_position_and_must_be_unique() {
        let q = |id: Option<&str>| NewQuestion {
            id: id.map(str::to_owned),
            prompt: "p".into(),
            kind: QuestionKind::Text,
        };
        let out = questions(vec![q(None), q(Some("x"))]).unwrap();
        assert_eq!(out[0].id, "q1");
        assert_eq!(out[1].id, "x");
        assert!(questions(vec![q(Some("a")), q(Some("a"))]).is_err());
    }

    #[test]
    fn every_size_limit_of_an_evaluation_is_refused_naming_it() {
        let text = |prompt: String| NewQuestion {
            id: None,
            prompt,
            kind: QuestionKind::Text,
        };
        let choice = |count: usize, label: usize| NewQuestion {
            id: None,
            prompt: "p".into(),
            kind: QuestionKind::Choice {
                choices: (0..count)
                    .map(|i| Choice {
                        id: format!("c{i}"),
                        label: "l".repeat(label),
                    })
                    .collect(),
            },
        };
        let refused = |r: Result<Vec<Question>, Error>| r.unwrap_err().message();
        assert!(questions(vec![text("p".repeat(MAX_PROMPT_BYTES))]).is_ok());
        assert!(
            refused(questions(vec![text("p".repeat(MAX_PROMPT_BYTES + 1))])).contains("64 KiB")
        );
        assert!(questions(vec![text("p".into()); MAX_QUESTIONS]).is_ok());
        assert!(
            refused(questions(vec![text("p".into()); MAX_QUESTIONS + 1])).contains("at most 500")
        );
        assert!(questions(vec![choice(MAX_CHOICES, MAX_LABEL_BYTES)]).is_ok());
        assert!(refused(questions(vec![choice(MAX_CHOICES + 1, 1)])).contains("at most 100"));
        assert!(refused(questions(vec![choice(2, MAX_LABEL_BYTES + 1)])).contains("1 KiB"));
        assert!(title(&"t".repeat(MAX_TITLE_CHARS)).is_ok());
        assert!(
            title(&"t".repeat(MAX_TITLE_CHARS + 1))
                .unwrap_err()
                .message()
                .contains("200")
        );
    }

    #[test]
    fn choice_questions_need_two_distinct_choices() {
        let choice = |ids: &[&str]| NewQuestion {
            id: None,
            prompt: "p".into(),
            kind: QuestionKind::Choice {
                choices: ids
                    .iter()
                    .map(|i| Choice {
                        id: (*i).into(),
                        label: "l".into(),
                    })
                    .collect(),
            },
        };
        assert!(questions(vec![choice(&["a", "b"])]).is_ok());
        assert!(questions(vec![choice(&["a"])]).is_err());
        assert!(questions(vec![choice(&["a", "a"])]).is_err());
    }

    #[test]
    fn names_in_logs_are_cut_at_64_characters() {
        assert_eq!(loggable("alice"), "alice");
        let long = "é".repeat(1000);
        let shown = loggable(&long);
        assert_eq!(shown.chars().count(), 65);
        assert!(shown.ends_with('…'));
    }

    #[test]
    fn passwords_never_print() {
        let p = Password::parse("hunter2".into()).unwrap();
        assert!(!format!("{p:?}").contains("hunter2"));
    }

    #[test]
    fn an_integrity_event_carries_exactly_its_kinds_fields_within_their_limits() {
        let lost = IntegrityEvent {
            evaluation_id: "e1".into(),
            event_id: "0f8b2c1e-7d4a-4b7e-9a51-3c2d1e0f9a8b".into(),
            kind: IntegrityKind::FocusLost,
            at: invigil_protocol::Timestamp::now(),
            away_ms: None,
            displays: None,
            capabilities: None,
            detail: Some("é".repeat(MAX_INTEGRITY_DETAIL_CHARS)),
        };
        assert!(integrity_event(lost.clone()).is_ok());
        let back = IntegrityEvent {
            kind: IntegrityKind::FocusRegained,
            away_ms: Some(MAX_AWAY_MS),
            ..lost.clone()
        };
        assert!(integrity_event(back.clone()).is_ok());
        for bad in [
            IntegrityEvent {
                event_id: "ev-1".into(),
                ..lost.clone()
            },
            IntegrityEvent {
                detail: Some("x".repeat(MAX_INTEGRITY_DETAIL_CHARS + 1)),
                ..lost.clone()
            },
            IntegrityEvent {
                away_ms: Some(10),
                ..lost.clone()
            },
            IntegrityEvent {
                away_ms: None,
                ..back.clone()
            },
            IntegrityEvent {
                away_ms: Some(MAX_AWAY_MS + 1),
                ..back
            },
            IntegrityEvent {
                kind: IntegrityKind::DisplaysChanged,
                displays: Some(MAX_DISPLAYS + 1),
                ..lost
            },
        ] {
            assert!(integrity_event(bad.clone()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn brief_ms_is_at_most_a_minute() {
        let change = |ms| ProctoringChange {
            brief_ms: Some(ms),
            ..ProctoringChange::default()
        };
        assert!(proctoring_change(change(MAX_BRIEF_MS)).is_ok());
        assert!(proctoring_change(change(MAX_BRIEF_MS + 1)).is_err());
    }
}

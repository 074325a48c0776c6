//! What the proctor observed, as typed signals, and the sink they are handed to.
//!
//! A [`Signal`] is an integrity event without its `event_id`: whoever keeps the events (the
//! engine's durable outbox) makes the UUID when it stores one, so that a signal is never sent
//! twice under two ids.

use invigil_protocol::{
    Capabilities, IntegrityEvent, IntegrityKind, MAX_INTEGRITY_DETAIL_CHARS, Timestamp,
};
use serde::{Deserialize, Serialize};

/// One observation, ready to become an `INTEGRITY_EVENT`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signal {
    /// The evaluation being sat.
    pub evaluation_id: String,
    /// What happened.
    pub kind: IntegrityKind,
    /// When, by the device's clock.
    pub at: Timestamp,
    /// For `focus_regained`: how long the window was away, on the monotonic clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub away_ms: Option<u64>,
    /// For `displays_changed`: how many displays there are now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub displays: Option<u32>,
    /// For `capabilities`: what the app can do on this computer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    /// A sentence for the professor, at most [`MAX_INTEGRITY_DETAIL_CHARS`] characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Signal {
    /// A signal with no optional field.
    pub(crate) fn new(evaluation_id: &str, kind: IntegrityKind, at: Timestamp) -> Self {
        Self {
            evaluation_id: evaluation_id.to_owned(),
            kind,
            at,
            away_ms: None,
            displays: None,
            capabilities: None,
            detail: None,
        }
    }

    /// The same signal with `detail`, shortened to the contract's limit if it is longer.
    pub(crate) fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(clip(detail.into(), MAX_INTEGRITY_DETAIL_CHARS));
        self
    }

    /// The `INTEGRITY_EVENT` of this signal under `event_id`.
    pub fn into_event(self, event_id: impl Into<String>) -> IntegrityEvent {
        IntegrityEvent {
            evaluation_id: self.evaluation_id,
            event_id: event_id.into(),
            kind: self.kind,
            at: self.at,
            away_ms: self.away_ms,
            displays: self.displays,
            capabilities: self.capabilities,
            detail: self.detail,
        }
    }
}

/// `text` cut to at most `max` characters, the last one an ellipsis when it was cut.
pub(crate) fn clip(text: String, max: usize) -> String {
    if text.chars().count() <= max {
        return text;
    }
    let mut clipped: String = text.chars().take(max.saturating_sub(1)).collect();
    clipped.push('…');
    clipped
}

/// Where signals go. It is called from the proctor's own task, in the order things happened;
/// it must not block for long (hand the signal on to a queue or a durable store).
pub trait SignalSink: Send + Sync + 'static {
    /// Takes one signal.
    fn signal(&self, signal: Signal);
}

impl<F: Fn(Signal) + Send + Sync + 'static> SignalSink for F {
    fn signal(&self, signal: Signal) {
        self(signal)
    }
}

impl SignalSink for tokio::sync::mpsc::UnboundedSender<Signal> {
    fn signal(&self, signal: Signal) {
        if let Err(lost) = self.send(signal) {
            tracing::warn!(
                kind = lost.0.kind.as_str(),
                "nobody takes proctoring signals any more"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_detail_is_clipped_to_the_contract_limit_on_a_character_boundary() {
        let long = "é".repeat(300);
        let signal =
            Signal::new("e1", IntegrityKind::ClipboardBlocked, Timestamp::now()).with_detail(long);
        let detail = signal.detail.unwrap();
        assert_eq!(detail.chars().count(), MAX_INTEGRITY_DETAIL_CHARS);
        assert!(detail.ends_with('…'));
    }

    #[test]
    fn a_signal_becomes_the_event_of_the_contract_under_the_id_it_is_given() {
        let at = Timestamp::parse("2026-11-22T09:40:58.003Z").unwrap();
        let mut signal = Signal::new("e1", IntegrityKind::FocusRegained, at);
        signal.away_ms = Some(8200);
        let event = signal.into_event("5b0e8d3c-2f7a-4c61-9e0b-7d4f1a2c3b4d");
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            serde_json::json!({"evaluation_id": "e1", "event_id": "5b0e8d3c-2f7a-4c61-9e0b-7d4f1a2c3b4d",
                "kind": "focus_regained", "at": "2026-11-22T09:40:58.003Z", "away_ms": 8200})
        );
    }
}

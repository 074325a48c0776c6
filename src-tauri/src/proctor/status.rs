//! What the exam page shows of proctoring: the `proctor` Tauri event and the answer of the
//! `proctor_attach` command, in the camelCase the front end reads.

use crate::proctor::capability::Capability;
use crate::proctor::fullscreen::FullscreenState;
use invigil_protocol::Proctoring;
use serde::Serialize;

/// Proctoring as the student sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProctorStatus {
    /// Whether an exam is being proctored now.
    pub active: bool,
    /// The evaluation being proctored.
    pub evaluation_id: Option<String>,
    /// Its settings (as they apply to this student).
    pub settings: Option<SettingsView>,
    /// Leaving the window, as reported so far during this exam on this computer.
    pub focus: FocusView,
    /// The number of displays last seen, when `single_display` is on.
    pub displays: Option<u32>,
    /// Fullscreen, when it is asked for.
    pub fullscreen: Option<FullscreenState>,
    /// How many copies, pastes and drops were refused.
    pub refusals: u32,
    /// What this computer can do of each setting, as sent to the professor; empty until known.
    pub capabilities: Vec<Capability>,
}

/// The evaluation's proctoring settings, for the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingsView {
    /// `fullscreen`.
    pub fullscreen: bool,
    /// `report_focus`.
    pub report_focus: bool,
    /// `block_clipboard`.
    pub block_clipboard: bool,
    /// `single_display`.
    pub single_display: bool,
    /// `brief_ms`.
    pub brief_ms: u64,
}

impl From<Proctoring> for SettingsView {
    fn from(p: Proctoring) -> Self {
        Self {
            fullscreen: p.fullscreen,
            report_focus: p.report_focus,
            block_clipboard: p.block_clipboard,
            single_display: p.single_display,
            brief_ms: p.brief_ms,
        }
    }
}

/// Leaving the window, counted as the server counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct FocusView {
    /// Whether the window is away now.
    pub away: bool,
    /// How many times the window was left (`focus_lost` reported).
    pub left: u32,
    /// How many of the returns came within `brief_ms` (counted apart by the server).
    pub brief: u32,
    /// The total time away, in milliseconds.
    pub away_ms: u64,
    /// The longest time away, in milliseconds.
    pub longest_away_ms: u64,
}

//! One proctored sitting, without any I/O: what the window and the page report goes in as an
//! [`Input`] with the [`Moment`] it happened, and what to do comes out as [`Effect`]s (a signal
//! to hand on, a window change, a look at the window or its monitors). The driver
//! (`driver.rs`) carries the effects out and feeds the looks back, so that everything here runs
//! under a fake clock in tests.

use crate::proctor::capability::{self, Capability, Observed, WindowSystem};
use crate::proctor::clock::Moment;
use crate::proctor::displays::{self, DisplayWatch, Rect};
use crate::proctor::focus::{FocusFilter, FocusReport};
use crate::proctor::fullscreen::{self, FullscreenGuard, GuardEvent, NotHeld, WindowProbe};
use crate::proctor::refusals::{Coalesced, Coalescer, Refusal};
use crate::proctor::signal::Signal;
use crate::proctor::status::{FocusView, ProctorStatus};
use invigil_protocol::{IntegrityKind, Proctoring};
use std::time::{Duration, Instant};

/// The latest the `capabilities` signal waits, after the exam opens, for what it depends on
/// (the window manager's answer to fullscreen, the display list, the page's guard).
pub(crate) const CAPABILITIES_WAIT: Duration =
    Duration::from_millis(fullscreen::GRACE.as_millis() as u64 + 500);

/// The exam on screen, as the app knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExamContext {
    /// The evaluation.
    pub evaluation_id: String,
    /// Its proctoring settings, as they apply to this student (after any accommodation).
    pub proctoring: Proctoring,
    /// Whether the student is sitting it: `in_progress`, the exam open on screen.
    pub sitting: bool,
}

impl ExamContext {
    /// Whether there is anything to proctor.
    pub fn proctored(&self) -> bool {
        let p = &self.proctoring;
        self.sitting && (p.fullscreen || p.report_focus || p.block_clipboard || p.single_display)
    }
}

/// Something that happened, at the moment it was observed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Input {
    /// The window's `Focused` event.
    Focused(bool),
    /// The window moved.
    Moved,
    /// The window was resized.
    Resized,
    /// A look at the window, asked for by [`Effect::Probe`].
    Probe(WindowProbe),
    /// The monitors' rectangles, asked for by [`Effect::ReadMonitors`]; `None`: unreadable.
    Monitors(Option<Vec<Rect>>),
    /// The page (or the window, for a dropped file) refused something.
    Refused(Refusal),
    /// The page's clipboard guard is running.
    PageGuard,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Effect {
    /// Hand the signal to the sink.
    Emit(Signal),
    /// Make the window fullscreen, or not.
    Fullscreen(bool),
    /// Keep the window above the others, or not.
    AlwaysOnTop(bool),
    /// Look at the window and answer with [`Input::Probe`].
    Probe,
    /// Read the monitors and answer with [`Input::Monitors`].
    ReadMonitors,
}

/// One proctored sitting (see the module's text).
#[derive(Debug)]
pub(crate) struct Session {
    evaluation_id: String,
    settings: Proctoring,
    system: WindowSystem,
    page_guard: bool,
    focus: Option<FocusFilter>,
    /// Whether the first look at the window has told the focus filter where the focus is.
    focus_seeded: bool,
    fullscreen: Option<FullscreenGuard>,
    displays: Option<DisplayWatch>,
    monitors_readable: Option<bool>,
    refusals: Option<Coalescer>,
    /// Until when the `capabilities` signal may wait, while it is due.
    capabilities_due: Option<Instant>,
    capabilities_sent: Option<Vec<Capability>>,
    next_poll: Instant,
    left: u32,
    brief: u32,
    away_ms: u64,
    longest_away_ms: u64,
    refused: u32,
}

const NOTHING: Proctoring = Proctoring {
    fullscreen: false,
    report_focus: false,
    block_clipboard: false,
    single_display: false,
    brief_ms: Proctoring::DEFAULT_BRIEF_MS,
};

impl Session {
    /// Starts proctoring `exam`; `page_guard` says whether the page's guard already runs.
    pub(crate) fn open(
        exam: &ExamContext,
        system: WindowSystem,
        page_guard: bool,
        now: Moment,
    ) -> (Self, Vec<Effect>) {
        let mut session = Self {
            evaluation_id: exam.evaluation_id.clone(),
            settings: NOTHING,
            system,
            page_guard,
            focus: None,
            focus_seeded: false,
            fullscreen: None,
            displays: None,
            monitors_readable: None,
            refusals: None,
            capabilities_due: None,
            capabilities_sent: None,
            next_poll: now.mono + displays::POLL,
            left: 0,
            brief: 0,
            away_ms: 0,
            longest_away_ms: 0,
            refused: 0,
        };
        let effects = session.change(exam.proctoring, now);
        (session, effects)
    }

    /// The evaluation.
    pub(crate) fn evaluation_id(&self) -> &str {
        &self.evaluation_id
    }

    /// The professor changed the settings during the exam: what was turned on starts, what was
    /// turned off is released, and the capabilities are sent again.
    pub(crate) fn change(&mut self, settings: Proctoring, now: Moment) -> Vec<Effect> {
        let old = self.settings;
        self.settings = settings;
        let mut effects = Vec::new();
        if settings.report_focus && !old.report_focus {
            self.focus = Some(FocusFilter::new());
            self.focus_seeded = false;
        } else if !settings.report_focus && old.report_focus {
            let reports = self.focus.take().map(|mut f| f.flush()).unwrap_or_default();
            effects.extend(self.focus_signals(reports));
        }
        if settings.fullscreen != old.fullscreen {
            if let Some(focus) = &mut self.focus {
                focus.own_change(now.mono);
            }
            self.fullscreen = settings
                .fullscreen
                .then(|| FullscreenGuard::requested(now.mono, self.system.reports_always_on_top()));
            // Above the others first, so that the fullscreen window never shows below one.
            if settings.fullscreen {
                effects.extend([Effect::AlwaysOnTop(true), Effect::Fullscreen(true)]);
            } else {
                effects.extend([Effect::Fullscreen(false), Effect::AlwaysOnTop(false)]);
            }
        }
        if settings.report_focus && !old.report_focus {
            // Where the focus is as the exam opens (after the window changes asked above).
            effects.push(Effect::Probe);
        }
        if settings.single_display && !old.single_display {
            self.displays = Some(DisplayWatch::default());
            effects.push(Effect::ReadMonitors);
        } else if !settings.single_display {
            self.displays = None;
        }
        if settings.block_clipboard && !old.block_clipboard {
            self.refusals = Some(Coalescer::default());
        } else if !settings.block_clipboard && old.block_clipboard {
            let kept = self.refusals.take().and_then(|mut r| r.flush());
            effects.extend(kept.map(|c| self.refusal_signal(c)));
        }
        self.capabilities_due = Some(now.mono + CAPABILITIES_WAIT);
        effects.extend(self.capabilities(now));
        effects
    }

    /// Something happened.
    pub(crate) fn handle(&mut self, input: Input, now: Moment) -> Vec<Effect> {
        let mut effects = Vec::new();
        match input {
            Input::Focused(focused) => {
                let reports = match &mut self.focus {
                    Some(focus) => focus.focused(focused, now),
                    None => Vec::new(),
                };
                effects.extend(self.focus_signals(reports));
            }
            Input::Moved => {
                if let Some(focus) = &mut self.focus {
                    focus.moved(now.mono);
                }
                if self.fullscreen.is_some() {
                    effects.push(Effect::Probe);
                }
            }
            Input::Resized => {
                if self.fullscreen.is_some() {
                    effects.push(Effect::Probe);
                }
            }
            Input::Probe(probe) => effects.extend(self.probed(&probe, now)),
            Input::Monitors(monitors) => {
                let readable = monitors.is_some();
                self.monitors_readable = Some(readable || self.monitors_readable == Some(true));
                let report = self
                    .displays
                    .as_mut()
                    .and_then(|watch| watch.observe(monitors.as_deref()));
                if let Some(report) = report {
                    let mut signal = Signal::new(
                        &self.evaluation_id,
                        IntegrityKind::DisplaysChanged,
                        now.wall,
                    )
                    .with_detail(report.detail());
                    signal.displays = Some(report.count());
                    effects.push(Effect::Emit(signal));
                }
            }
            Input::Refused(what) => {
                let report = match &mut self.refusals {
                    Some(refusals) => {
                        self.refused += 1;
                        refusals.refuse(what, now)
                    }
                    None => None,
                };
                effects.extend(report.map(|c| self.refusal_signal(c)));
            }
            Input::PageGuard => self.page_guard = true,
        }
        effects.extend(self.capabilities(now));
        effects
    }

    /// Time passed: held reports fall due, the displays and the window are looked at again.
    pub(crate) fn tick(&mut self, now: Moment) -> Vec<Effect> {
        let mut effects = Vec::new();
        let reports = match &mut self.focus {
            Some(focus) => focus.tick(now.mono),
            None => Vec::new(),
        };
        effects.extend(self.focus_signals(reports));
        let kept = self.refusals.as_mut().and_then(|r| r.tick(now.mono));
        effects.extend(kept.map(|c| self.refusal_signal(c)));
        let guard_due = self
            .fullscreen
            .as_ref()
            .and_then(FullscreenGuard::next_deadline)
            .is_some_and(|due| now.mono >= due);
        if now.mono >= self.next_poll {
            self.next_poll = now.mono + displays::POLL;
            if self.displays.is_some() {
                effects.push(Effect::ReadMonitors);
            }
            if self.fullscreen.is_some() {
                effects.push(Effect::Probe);
            }
        } else if guard_due {
            effects.push(Effect::Probe);
        }
        effects.extend(self.capabilities(now));
        effects
    }

    /// When [`Session::tick`] has something to do.
    pub(crate) fn next_deadline(&self) -> Instant {
        [
            self.focus.as_ref().and_then(FocusFilter::next_deadline),
            self.refusals.as_ref().and_then(Coalescer::next_deadline),
            self.fullscreen
                .as_ref()
                .and_then(FullscreenGuard::next_deadline),
            self.capabilities_due,
        ]
        .into_iter()
        .flatten()
        .fold(self.next_poll, Instant::min)
    }

    /// Proctoring ends (handed in, the phase moved on, back to the list): what was held is
    /// reported and the window is given back.
    pub(crate) fn close(mut self) -> Vec<Effect> {
        let mut effects = Vec::new();
        let reports = self.focus.take().map(|mut f| f.flush()).unwrap_or_default();
        effects.extend(self.focus_signals(reports));
        let kept = self.refusals.take().and_then(|mut r| r.flush());
        effects.extend(kept.map(|c| self.refusal_signal(c)));
        if self.fullscreen.is_some() {
            effects.extend([Effect::Fullscreen(false), Effect::AlwaysOnTop(false)]);
        }
        effects
    }

    /// Proctoring as the page shows it.
    pub(crate) fn status(&self) -> ProctorStatus {
        ProctorStatus {
            active: true,
            evaluation_id: Some(self.evaluation_id.clone()),
            settings: Some(self.settings.into()),
            focus: FocusView {
                away: self.focus.as_ref().is_some_and(FocusFilter::is_away),
                left: self.left,
                brief: self.brief,
                away_ms: self.away_ms,
                longest_away_ms: self.longest_away_ms,
            },
            displays: self.displays.as_ref().and_then(DisplayWatch::count),
            fullscreen: self.fullscreen.as_ref().map(FullscreenGuard::state),
            refusals: self.refused,
            capabilities: self.capabilities_sent.clone().unwrap_or_default(),
        }
    }

    fn probed(&mut self, probe: &WindowProbe, now: Moment) -> Vec<Effect> {
        let mut effects = Vec::new();
        if let Some(focus) = &mut self.focus
            && !self.focus_seeded
        {
            self.focus_seeded = true;
            if !probe.focused {
                // The exam opened on a window that is not the active one.
                let reports = focus.focused(false, now);
                effects.extend(self.focus_signals(reports));
            }
        }
        let event = self
            .fullscreen
            .as_mut()
            .and_then(|guard| guard.probe(probe, now.mono));
        if let Some(GuardEvent::Exited { restore }) = event {
            let detail = if restore {
                "the exam left fullscreen; the app made it fullscreen again"
            } else {
                "the exam left fullscreen; the window manager keeps undoing fullscreen, so the app stopped restoring it"
            };
            effects.push(Effect::Emit(
                Signal::new(
                    &self.evaluation_id,
                    IntegrityKind::FullscreenExited,
                    now.wall,
                )
                .with_detail(detail),
            ));
            if restore {
                if let Some(focus) = &mut self.focus {
                    focus.own_change(now.mono);
                }
                effects.extend([Effect::AlwaysOnTop(true), Effect::Fullscreen(true)]);
            }
        }
        effects
    }

    fn focus_signals(&mut self, reports: Vec<FocusReport>) -> Vec<Effect> {
        reports
            .into_iter()
            .map(|report| match report {
                FocusReport::Lost { at } => {
                    self.left += 1;
                    Signal::new(&self.evaluation_id, IntegrityKind::FocusLost, at)
                }
                FocusReport::Regained { at, away } => {
                    let away_ms = u64::try_from(away.as_millis()).unwrap_or(u64::MAX);
                    self.away_ms = self.away_ms.saturating_add(away_ms);
                    self.longest_away_ms = self.longest_away_ms.max(away_ms);
                    if away_ms < self.settings.brief_ms {
                        self.brief += 1;
                    }
                    let mut signal =
                        Signal::new(&self.evaluation_id, IntegrityKind::FocusRegained, at);
                    signal.away_ms = Some(away_ms);
                    signal
                }
            })
            .map(Effect::Emit)
            .collect()
    }

    fn refusal_signal(&self, coalesced: Coalesced) -> Effect {
        Effect::Emit(
            Signal::new(
                &self.evaluation_id,
                IntegrityKind::ClipboardBlocked,
                coalesced.at,
            )
            .with_detail(coalesced.detail),
        )
    }

    /// The `capabilities` signal: sent once what it depends on is known (or the wait is over),
    /// and again whenever what this computer can do changes.
    fn capabilities(&mut self, now: Moment) -> Vec<Effect> {
        let settings = self.settings;
        let known = (!settings.fullscreen
            || self
                .fullscreen
                .as_ref()
                .is_some_and(FullscreenGuard::decided))
            && (!settings.single_display || self.monitors_readable.is_some())
            && (!settings.block_clipboard || self.page_guard);
        match self.capabilities_due {
            Some(due) if !known && now.mono < due => return Vec::new(),
            None if self.capabilities_sent.is_none() => return Vec::new(),
            _ => {}
        }
        let list = capability::decide(&settings, &self.observed());
        if self.capabilities_due.is_none() && self.capabilities_sent.as_ref() == Some(&list) {
            return Vec::new();
        }
        self.capabilities_due = None;
        if self.capabilities_sent.as_ref() == Some(&list) || list.is_empty() {
            self.capabilities_sent = Some(list);
            return Vec::new();
        }
        let mut signal = Signal::new(&self.evaluation_id, IntegrityKind::Capabilities, now.wall)
            .with_detail(capability::detail(&list));
        signal.capabilities = Some(capability::to_wire(&list));
        self.capabilities_sent = Some(list);
        vec![Effect::Emit(signal)]
    }

    fn observed(&self) -> Observed {
        Observed {
            system: self.system,
            // Still unanswered when the signal can wait no longer: not (yet) granted.
            fullscreen_not_held: self.fullscreen.as_ref().and_then(|guard| {
                let never = !guard.settled() && !guard.confirmed_once();
                guard.not_held().or(never.then_some(NotHeld::NotGranted))
            }),
            always_on_top: self
                .fullscreen
                .as_ref()
                .and_then(FullscreenGuard::always_on_top),
            monitors_readable: self.monitors_readable.unwrap_or(false),
            page_guard: self.page_guard,
        }
    }
}

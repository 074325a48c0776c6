//! The proctor as a whole (driver, session and all its parts) against a fake window and a fake
//! clock: what a sitting looks like from the window manager's side and from the professor's.

use crate::proctor::capability::WindowSystem;
use crate::proctor::clock::fake::FakeClock;
use crate::proctor::clock::{Clock, Moment};
use crate::proctor::displays::Rect;
use crate::proctor::driver::{Command, Driver};
use crate::proctor::fullscreen::{FullscreenState, WindowProbe};
use crate::proctor::host::ProctorHost;
use crate::proctor::refusals::Refusal;
use crate::proctor::restart::PreviousRun;
use crate::proctor::session::{CAPABILITIES_WAIT, ExamContext, Input};
use crate::proctor::signal::{Signal, SignalSink};
use crate::proctor::status::ProctorStatus;
use crate::proctor::window::ExamWindow;
use invigil_protocol::{CapabilityLevel, IntegrityKind, Proctoring};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SCREEN: Rect = Rect {
    x: 0,
    y: 0,
    width: 1920,
    height: 1080,
};
const WINDOWED: Rect = Rect {
    x: 320,
    y: 140,
    width: 1280,
    height: 800,
};

/// A window manager: it grants fullscreen and always-on-top or not, and the student can act
/// on it. Like Tauri on Linux, `is_fullscreen()` says what the app last asked for.
struct Wm {
    grants_fullscreen: bool,
    honours_above: bool,
    fullscreen_flag: bool,
    covering: bool,
    above: bool,
    focused: bool,
    monitors: Vec<Rect>,
    published: Vec<ProctorStatus>,
    /// Window events not yet delivered (a real window manager answers after a moment).
    events: Vec<Input>,
}

struct FakeWindow(Mutex<Wm>);

impl FakeWindow {
    fn new(grants_fullscreen: bool, honours_above: bool) -> Self {
        Self(Mutex::new(Wm {
            grants_fullscreen,
            honours_above,
            fullscreen_flag: false,
            covering: false,
            above: false,
            focused: true,
            monitors: vec![SCREEN],
            published: Vec::new(),
            events: Vec::new(),
        }))
    }

    fn wm(&self) -> std::sync::MutexGuard<'_, Wm> {
        self.0.lock().unwrap()
    }
}

impl ExamWindow for FakeWindow {
    fn set_fullscreen(&self, on: bool) {
        let mut wm = self.wm();
        wm.fullscreen_flag = on;
        let covering = on && wm.grants_fullscreen;
        if covering != wm.covering {
            wm.covering = covering;
            wm.events.push(Input::Resized);
        }
    }

    fn set_always_on_top(&self, on: bool) {
        let mut wm = self.wm();
        wm.above = on && wm.honours_above;
    }

    fn probe(&self) -> WindowProbe {
        let wm = self.wm();
        WindowProbe {
            fullscreen_flag: wm.fullscreen_flag,
            window: Some(if wm.covering { SCREEN } else { WINDOWED }),
            monitor: Some(SCREEN),
            always_on_top: wm.above,
            focused: wm.focused,
        }
    }

    fn monitors(&self) -> Option<Vec<Rect>> {
        Some(self.wm().monitors.clone())
    }

    fn publish(&self, status: &ProctorStatus) {
        self.wm().published.push(status.clone());
    }
}

struct Sitting {
    clock: Arc<FakeClock>,
    window: Arc<FakeWindow>,
    signals: Arc<Mutex<Vec<Signal>>>,
    driver: Driver,
}

impl Sitting {
    fn on(system: WindowSystem, grants_fullscreen: bool, honours_above: bool) -> Self {
        let clock = Arc::new(FakeClock::new());
        let window = Arc::new(FakeWindow::new(grants_fullscreen, honours_above));
        let signals = Arc::new(Mutex::new(Vec::new()));
        let kept = signals.clone();
        let sink: Arc<dyn SignalSink> = Arc::new(move |s: Signal| kept.lock().unwrap().push(s));
        let driver = Driver::new(
            window.clone(),
            sink,
            clock.clone(),
            system,
            Arc::new(Mutex::new(ProctorStatus::default())),
        );
        Self {
            clock,
            window,
            signals,
            driver,
        }
    }

    fn x11() -> Self {
        Self::on(WindowSystem::X11, true, true)
    }

    fn command(&mut self, command: Command) {
        let now = self.clock.now();
        self.driver.command(command, now);
        self.deliver();
    }

    /// The window manager's events, delivered a millisecond after what caused them.
    fn deliver(&mut self) {
        for _ in 0..100 {
            let events = std::mem::take(&mut self.window.wm().events);
            if events.is_empty() {
                return;
            }
            let now = self.clock.advance(1);
            for event in events {
                self.driver.command(Command::Observed(event), now);
            }
        }
    }

    fn observe(&mut self, input: Input) {
        self.command(Command::Observed(input));
    }

    fn sit(&mut self, proctoring: Proctoring) {
        self.command(Command::Exam(Some(ExamContext {
            evaluation_id: "e1".into(),
            proctoring,
            sitting: true,
        })));
    }

    /// Lets `ms` pass as the real driver would: waking at every deadline on the way.
    fn pass(&mut self, ms: u64) -> Moment {
        let until = self.clock.now().mono + Duration::from_millis(ms);
        for _ in 0..10_000 {
            match self.driver.next_deadline() {
                Some(due) if due <= until => {
                    let now = self.clock.now().mono;
                    self.clock.advance_by(due.saturating_duration_since(now));
                    self.driver.tick();
                    self.deliver();
                }
                _ => break,
            }
        }
        let now = self.clock.now().mono;
        self.clock.advance_by(until.saturating_duration_since(now))
    }

    fn take(&self) -> Vec<Signal> {
        std::mem::take(&mut *self.signals.lock().unwrap())
    }

    fn kinds(signals: &[Signal]) -> Vec<IntegrityKind> {
        signals.iter().map(|s| s.kind).collect()
    }

    fn status(&self) -> ProctorStatus {
        self.window
            .wm()
            .published
            .last()
            .cloned()
            .unwrap_or_default()
    }
}

/// Every switch on, `brief_ms` at its default.
pub(crate) fn all_on() -> Proctoring {
    Proctoring {
        fullscreen: true,
        report_focus: true,
        block_clipboard: true,
        single_display: true,
        brief_ms: Proctoring::DEFAULT_BRIEF_MS,
    }
}

fn only(change: impl FnOnce(&mut Proctoring)) -> Proctoring {
    let mut p = Proctoring::default();
    change(&mut p);
    p
}

#[test]
fn a_proctored_exam_opens_fullscreen_above_others_and_says_what_this_computer_can_do() {
    let mut sitting = Sitting::x11();
    sitting.observe(Input::PageGuard);
    sitting.sit(all_on());

    {
        let wm = sitting.window.wm();
        assert!(wm.covering && wm.above, "fullscreen and above the others");
    }
    let signals = sitting.take();
    assert_eq!(
        Sitting::kinds(&signals),
        vec![IntegrityKind::DisplaysChanged, IntegrityKind::Capabilities]
    );
    assert_eq!(signals[0].displays, Some(1));
    let capabilities = signals[1].capabilities.unwrap();
    assert_eq!(capabilities.fullscreen, Some(CapabilityLevel::Enforced));
    assert_eq!(capabilities.report_focus, Some(CapabilityLevel::Enforced));
    assert_eq!(
        capabilities.block_clipboard,
        Some(CapabilityLevel::Enforced)
    );
    assert_eq!(
        capabilities.single_display,
        Some(CapabilityLevel::DetectOnly)
    );
    assert!(signals.iter().all(|s| s.evaluation_id == "e1"));

    let status = sitting.status();
    assert!(status.active);
    assert_eq!(status.fullscreen, Some(FullscreenState::On));
    assert_eq!(status.displays, Some(1));
    assert_eq!(
        status.capabilities.len(),
        4,
        "the student sees the same list"
    );

    // Nothing more while nothing happens.
    sitting.pass(60_000);
    assert!(sitting.take().is_empty());
}

#[test]
fn the_window_is_given_back_on_hand_in_and_on_the_way_back_to_the_list() {
    let mut sitting = Sitting::x11();
    sitting.sit(all_on());
    sitting.command(Command::Exam(Some(ExamContext {
        evaluation_id: "e1".into(),
        proctoring: all_on(),
        sitting: false, // handed in
    })));
    {
        let wm = sitting.window.wm();
        assert!(!wm.fullscreen_flag && !wm.covering && !wm.above);
    }
    assert!(!sitting.status().active);

    sitting.sit(all_on());
    assert!(sitting.window.wm().covering);
    sitting.command(Command::Exam(None)); // back to the list
    assert!(!sitting.window.wm().covering);
    sitting.take();
    sitting.pass(10_000);
    sitting.observe(Input::Focused(false));
    sitting.pass(10_000);
    assert!(sitting.take().is_empty(), "nothing is watched any more");
}

#[test]
fn leaving_the_window_is_reported_with_the_time_away_and_brief_ones_counted_apart() {
    let mut sitting = Sitting::x11();
    sitting.sit(only(|p| p.report_focus = true));
    sitting.take();

    sitting.pass(60_000);
    let left = sitting.clock.now();
    sitting.observe(Input::Focused(false));
    sitting.pass(1000);
    assert!(sitting.status().focus.away);
    sitting.pass(7200);
    sitting.observe(Input::Focused(true));
    sitting.pass(1000);
    // A notification steals the focus for half a second.
    sitting.observe(Input::Focused(false));
    sitting.pass(500);
    sitting.observe(Input::Focused(true));
    sitting.pass(1000);

    let signals = sitting.take();
    assert_eq!(
        Sitting::kinds(&signals),
        vec![
            IntegrityKind::FocusLost,
            IntegrityKind::FocusRegained,
            IntegrityKind::FocusLost,
            IntegrityKind::FocusRegained
        ]
    );
    assert_eq!(
        signals[0].at, left.wall,
        "dated when it happened, not when reported"
    );
    assert_eq!(signals[1].away_ms, Some(8200));
    assert_eq!(signals[3].away_ms, Some(500));
    let focus = sitting.status().focus;
    assert_eq!((focus.left, focus.brief), (2, 1));
    assert_eq!((focus.away_ms, focus.longest_away_ms), (8700, 8200));
    assert!(!focus.away);
}

#[test]
fn the_focus_pair_caused_by_the_apps_own_fullscreen_change_is_not_reported() {
    let mut sitting = Sitting::x11();
    sitting.sit(only(|p| {
        p.report_focus = true;
        p.fullscreen = true;
    }));
    sitting.pass(50);
    sitting.observe(Input::Focused(false));
    sitting.pass(350);
    sitting.observe(Input::Focused(true));
    sitting.pass(10_000);
    let kinds = Sitting::kinds(&sitting.take());
    assert_eq!(kinds, vec![IntegrityKind::Capabilities]);
    assert_eq!(sitting.status().focus.left, 0);
}

#[test]
fn a_title_bar_drag_is_not_reported_but_leaving_right_after_is() {
    let mut sitting = Sitting::x11();
    sitting.sit(only(|p| p.report_focus = true));
    sitting.take();
    sitting.pass(5000);
    sitting.observe(Input::Focused(false));
    sitting.pass(1);
    sitting.observe(Input::Focused(true));
    for _ in 0..20 {
        sitting.pass(16);
        sitting.observe(Input::Moved);
    }
    sitting.pass(5000);
    assert!(sitting.take().is_empty());

    sitting.observe(Input::Focused(false));
    sitting.pass(3000);
    sitting.observe(Input::Focused(true));
    let signals = sitting.take();
    assert_eq!(signals.len(), 2);
    assert_eq!(signals[1].away_ms, Some(3000));
}

#[test]
fn leaving_fullscreen_is_reported_once_and_the_window_put_back() {
    let mut sitting = Sitting::x11();
    sitting.sit(only(|p| p.fullscreen = true));
    sitting.take();
    sitting.pass(30_000);

    // The student takes the window out of fullscreen with a window-manager key: the window
    // shrinks, Tauri's flag still says fullscreen.
    sitting.window.wm().covering = false;
    sitting.observe(Input::Resized);
    sitting.pass(1000);

    let signals = sitting.take();
    assert_eq!(
        Sitting::kinds(&signals),
        vec![IntegrityKind::FullscreenExited]
    );
    assert!(
        signals[0]
            .detail
            .as_deref()
            .unwrap()
            .contains("fullscreen again")
    );
    assert!(sitting.window.wm().covering, "back to fullscreen");
    assert_eq!(sitting.status().fullscreen, Some(FullscreenState::On));
    sitting.pass(30_000);
    assert!(sitting.take().is_empty());
}

#[test]
fn an_exit_is_noticed_by_the_poll_even_without_a_resize_event() {
    let mut sitting = Sitting::x11();
    sitting.sit(only(|p| p.fullscreen = true));
    sitting.take();
    sitting.window.wm().covering = false;
    sitting.pass(5000);
    assert_eq!(
        Sitting::kinds(&sitting.take()),
        vec![IntegrityKind::FullscreenExited]
    );
}

#[test]
fn a_second_display_is_reported_and_the_exam_stays_open_on_screen() {
    let mut sitting = Sitting::x11();
    sitting.sit(only(|p| {
        p.single_display = true;
        p.fullscreen = true;
    }));
    sitting.take();
    sitting.pass(10_000);
    let second = Rect { x: 1920, ..SCREEN };
    sitting.window.wm().monitors.push(second);
    sitting.pass(2000);

    let signals = sitting.take();
    assert_eq!(
        Sitting::kinds(&signals),
        vec![IntegrityKind::DisplaysChanged]
    );
    assert_eq!(signals[0].displays, Some(2));
    assert_eq!(
        signals[0].detail.as_deref(),
        Some("2 displays connected, 1 before")
    );
    assert_eq!(sitting.status().displays, Some(2));
    assert!(sitting.window.wm().covering, "the exam is not hidden");

    sitting.window.wm().monitors.pop();
    sitting.pass(2000);
    let signals = sitting.take();
    assert_eq!(signals[0].displays, Some(1));
    assert_eq!(sitting.status().displays, Some(1));
}

#[test]
fn refusals_in_a_burst_make_at_most_one_signal_a_second() {
    let mut sitting = Sitting::x11();
    sitting.observe(Input::PageGuard);
    sitting.sit(only(|p| p.block_clipboard = true));
    sitting.take();
    for _ in 0..10 {
        sitting.observe(Input::Refused(Refusal::PasteFromOutside));
        sitting.pass(50);
    }
    sitting.observe(Input::Refused(Refusal::FileDrop));
    sitting.pass(2000);
    let signals = sitting.take();
    assert_eq!(
        Sitting::kinds(&signals),
        vec![
            IntegrityKind::ClipboardBlocked,
            IntegrityKind::ClipboardBlocked
        ]
    );
    assert_eq!(
        signals[1].detail.as_deref(),
        Some("10 refusals: 9 pastes from another program, a file dropped onto the exam")
    );
    assert_eq!(sitting.status().refusals, 11);
}

#[test]
fn refusals_are_not_reported_when_the_clipboard_is_not_proctored() {
    let mut sitting = Sitting::x11();
    sitting.sit(only(|p| p.report_focus = true));
    sitting.take();
    sitting.observe(Input::Refused(Refusal::FileDrop));
    sitting.pass(2000);
    assert!(sitting.take().is_empty());
}

#[test]
fn without_the_page_guard_the_clipboard_is_unavailable_until_the_guard_starts() {
    let mut sitting = Sitting::x11();
    sitting.sit(only(|p| p.block_clipboard = true));
    assert!(sitting.take().is_empty(), "waiting for the page");
    sitting.pass(CAPABILITIES_WAIT.as_millis() as u64);
    let signals = sitting.take();
    assert_eq!(
        signals[0].capabilities.unwrap().block_clipboard,
        Some(CapabilityLevel::Unavailable)
    );

    sitting.observe(Input::PageGuard);
    let signals = sitting.take();
    assert_eq!(
        signals[0].capabilities.unwrap().block_clipboard,
        Some(CapabilityLevel::Enforced)
    );
}

#[test]
fn a_window_manager_without_fullscreen_makes_it_unavailable_and_no_exit_is_ever_reported() {
    let mut sitting = Sitting::on(WindowSystem::X11, false, true);
    sitting.sit(only(|p| p.fullscreen = true));
    sitting.pass(60_000);
    let signals = sitting.take();
    assert_eq!(Sitting::kinds(&signals), vec![IntegrityKind::Capabilities]);
    assert_eq!(
        signals[0].capabilities.unwrap().fullscreen,
        Some(CapabilityLevel::Unavailable)
    );
    assert_eq!(
        sitting.status().fullscreen,
        Some(FullscreenState::Unavailable)
    );
}

#[test]
fn on_wayland_always_on_top_is_ignored_and_the_capabilities_say_so() {
    let mut sitting = Sitting::on(WindowSystem::Wayland, true, false);
    sitting.sit(only(|p| p.fullscreen = true));
    fullscreen_detect_only_because(
        &sitting.take(),
        "always-on-top refused by a Wayland compositor",
    );
}

#[test]
fn where_always_on_top_can_be_read_back_a_refusal_is_waited_for_then_said() {
    let mut sitting = Sitting::on(WindowSystem::Windows, true, false);
    sitting.sit(only(|p| p.fullscreen = true));
    assert!(
        sitting.take().is_empty(),
        "the window manager has a moment to answer"
    );
    sitting.pass(1000);
    fullscreen_detect_only_because(
        &sitting.take(),
        "does not keep the exam above other windows",
    );
}

/// The first signal says fullscreen is only detected here, and why.
fn fullscreen_detect_only_because(signals: &[Signal], reason: &str) {
    let capabilities = signals[0].capabilities.expect("the capabilities");
    assert_eq!(capabilities.fullscreen, Some(CapabilityLevel::DetectOnly));
    let detail = signals[0].detail.as_deref().unwrap();
    assert!(detail.contains(reason), "{detail}");
}

#[test]
fn settings_changed_during_the_exam_apply_at_once_and_the_capabilities_follow() {
    let mut sitting = Sitting::x11();
    sitting.sit(only(|p| {
        p.fullscreen = true;
        p.report_focus = true;
    }));
    sitting.take();
    sitting.sit(only(|p| p.report_focus = true));
    assert!(!sitting.window.wm().covering, "fullscreen released");
    let signals = sitting.take();
    let capabilities = signals[0].capabilities.unwrap();
    assert_eq!(capabilities.fullscreen, None);
    assert_eq!(capabilities.report_focus, Some(CapabilityLevel::Enforced));
}

#[test]
fn an_exam_with_every_switch_off_is_not_proctored() {
    let mut sitting = Sitting::x11();
    sitting.sit(Proctoring::default());
    sitting.observe(Input::Focused(false));
    sitting.pass(10_000);
    assert!(sitting.take().is_empty());
    assert!(!sitting.window.wm().fullscreen_flag);
    assert!(!sitting.status().active);
}

#[test]
fn an_exam_opened_on_an_inactive_window_starts_away() {
    let mut sitting = Sitting::x11();
    sitting.window.wm().focused = false;
    sitting.sit(only(|p| p.report_focus = true));
    sitting.pass(1000);
    let kinds = Sitting::kinds(&sitting.take());
    assert_eq!(
        kinds,
        vec![IntegrityKind::Capabilities, IntegrityKind::FocusLost]
    );
}

#[test]
fn a_restart_is_reported_once_per_evaluation_with_how_the_previous_run_ended() {
    let clock = Arc::new(FakeClock::new());
    let host = ProctorHost::with_clock(None, PreviousRun::Abruptly { started_at: None }, clock);
    let (sink, mut signals) = tokio::sync::mpsc::unbounded_channel::<Signal>();
    let window = Arc::new(FakeWindow::new(true, true));
    host.start_on(window, Arc::new(sink), WindowSystem::X11, |_| {})
        .unwrap();

    assert!(host.report_restart("e1"));
    assert!(!host.report_restart("e1"));
    let signal = tauri::async_runtime::block_on(async {
        tokio::time::timeout(Duration::from_secs(10), signals.recv()).await
    })
    .expect("the signal comes")
    .unwrap();
    assert_eq!(signal.kind, IntegrityKind::AppRestarted);
    assert!(signal.detail.unwrap().contains("did not end normally"));
    host.stop();
    let ended = tauri::async_runtime::block_on(async {
        tokio::time::timeout(Duration::from_secs(10), signals.recv()).await
    })
    .expect("the driver ends");
    assert_eq!(
        ended, None,
        "one app_restarted only, then the driver is gone"
    );
}

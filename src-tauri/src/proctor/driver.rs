//! The driver: one task that owns the current [`Session`], takes commands (from the host, the
//! window's events and the page) in the order they happened, wakes up when the session has
//! something due, and carries out its effects on the window and the sink.
//!
//! The window's events are stamped with their [`Moment`] where they are received, on the event
//! loop's thread, so that time away does not include the time a command waits in the queue.

use crate::proctor::capability::WindowSystem;
use crate::proctor::clock::{Clock, Moment};
use crate::proctor::session::{Effect, ExamContext, Input, Session};
use crate::proctor::signal::{Signal, SignalSink};
use crate::proctor::status::ProctorStatus;
use crate::proctor::window::ExamWindow;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;
use tokio::sync::mpsc;

/// What the driver is told.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Command {
    /// The exam on screen changed (or its phase, or its settings); `None`: no exam on screen.
    Exam(Option<ExamContext>),
    /// The window or the page observed something.
    Observed(Input),
    /// Hand this signal on, in order with the others (`app_restarted`).
    Emit(Signal),
    /// Stop proctoring and end the task.
    Stop,
}

/// The session and everything it acts on (see the module's text).
pub(crate) struct Driver {
    window: Arc<dyn ExamWindow>,
    sink: Arc<dyn SignalSink>,
    clock: Arc<dyn Clock>,
    system: WindowSystem,
    page_guard: bool,
    session: Option<Session>,
    status: Arc<Mutex<ProctorStatus>>,
}

impl Driver {
    pub(crate) fn new(
        window: Arc<dyn ExamWindow>,
        sink: Arc<dyn SignalSink>,
        clock: Arc<dyn Clock>,
        system: WindowSystem,
        status: Arc<Mutex<ProctorStatus>>,
    ) -> Self {
        Self {
            window,
            sink,
            clock,
            system,
            page_guard: false,
            session: None,
            status,
        }
    }

    /// Carries out `command`, observed at `at`. Returns `false` once told to stop.
    pub(crate) fn command(&mut self, command: Command, at: Moment) -> bool {
        let running = match command {
            Command::Exam(exam) => {
                let effects = self.exam(exam, at);
                self.execute(effects);
                true
            }
            Command::Observed(input) => {
                if input == Input::PageGuard {
                    self.page_guard = true;
                }
                let effects = match &mut self.session {
                    Some(session) => session.handle(input, at),
                    None => Vec::new(),
                };
                self.execute(effects);
                true
            }
            Command::Emit(signal) => {
                self.execute(vec![Effect::Emit(signal)]);
                true
            }
            Command::Stop => {
                let effects = self.session.take().map(Session::close).unwrap_or_default();
                self.execute(effects);
                false
            }
        };
        self.publish();
        running
    }

    /// Time passed.
    pub(crate) fn tick(&mut self) {
        let now = self.clock.now();
        let effects = match &mut self.session {
            Some(session) => session.tick(now),
            None => Vec::new(),
        };
        self.execute(effects);
        self.publish();
    }

    /// When [`Driver::tick`] has something to do; `None`: nothing until a command comes.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.session.as_ref().map(Session::next_deadline)
    }

    fn exam(&mut self, exam: Option<ExamContext>, at: Moment) -> Vec<Effect> {
        let exam = exam.filter(ExamContext::proctored);
        match (&mut self.session, exam) {
            (Some(session), Some(exam)) if session.evaluation_id() == exam.evaluation_id => {
                session.change(exam.proctoring, at)
            }
            (current, exam) => {
                let mut effects = current.take().map(Session::close).unwrap_or_default();
                if let Some(exam) = exam {
                    let (session, opening) = Session::open(&exam, self.system, self.page_guard, at);
                    self.session = Some(session);
                    effects.extend(opening);
                }
                effects
            }
        }
    }

    /// Carries out `effects`, feeding the looks they ask for back into the session.
    fn execute(&mut self, effects: Vec<Effect>) {
        let mut queue = VecDeque::from(effects);
        while let Some(effect) = queue.pop_front() {
            let answer = match effect {
                Effect::Emit(signal) => {
                    tracing::info!(
                        kind = signal.kind.as_str(),
                        evaluation = %signal.evaluation_id,
                        away_ms = signal.away_ms,
                        displays = signal.displays,
                        "proctoring signal"
                    );
                    self.sink.signal(signal);
                    None
                }
                Effect::Fullscreen(on) => {
                    self.window.set_fullscreen(on);
                    None
                }
                Effect::AlwaysOnTop(on) => {
                    self.window.set_always_on_top(on);
                    None
                }
                Effect::Probe => {
                    let probe = self.window.probe();
                    tracing::debug!(?probe, "looked at the window");
                    Some(Input::Probe(probe))
                }
                Effect::ReadMonitors => Some(Input::Monitors(self.window.monitors())),
            };
            if let (Some(input), Some(session)) = (answer, &mut self.session) {
                queue.extend(session.handle(input, self.clock.now()));
            }
        }
    }

    fn publish(&self) {
        let status = self
            .session
            .as_ref()
            .map(Session::status)
            .unwrap_or_default();
        let mut shown = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        if *shown != status {
            *shown = status.clone();
            drop(shown);
            self.window.publish(&status);
        }
    }
}

/// Runs `driver` until it is told to stop or every sender is gone (then it stops as if told).
pub(crate) async fn run(
    mut driver: Driver,
    mut commands: mpsc::UnboundedReceiver<(Moment, Command)>,
) {
    loop {
        let next = match driver.next_deadline() {
            Some(deadline) => {
                tokio::select! {
                    command = commands.recv() => command,
                    () = tokio::time::sleep_until(deadline.into()) => {
                        driver.tick();
                        continue;
                    }
                }
            }
            None => commands.recv().await,
        };
        let (at, command) = next.unwrap_or_else(|| (driver.clock.now(), Command::Stop));
        if !driver.command(command, at) {
            return;
        }
    }
}

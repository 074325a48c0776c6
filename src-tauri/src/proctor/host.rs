//! [`ProctorHost`]: the proctor as the rest of the app sees it, managed as Tauri state. It holds
//! this run's marker (for `app_restarted`), and once [`ProctorHost::start`]ed on the exam window,
//! the driver task that proctors whatever exam [`ProctorHost::set_exam`] says is on screen.

use crate::proctor::capability::WindowSystem;
use crate::proctor::clock::{Clock, Moment, SystemClock};
use crate::proctor::driver::{self, Command, Driver};
use crate::proctor::refusals::Refusal;
use crate::proctor::restart::{PreviousRun, RunMarker};
use crate::proctor::session::{ExamContext, Input};
use crate::proctor::signal::{Signal, SignalSink};
use crate::proctor::status::ProctorStatus;
use crate::proctor::window::{self, ExamWindow};
use invigil_protocol::IntegrityKind;
use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use tauri::{Runtime, WebviewWindow};
use tokio::sync::mpsc;

/// Why the proctor could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProctorError {
    /// [`ProctorHost::start`] was already called: one window, one driver.
    #[error("the proctor is already started on a window")]
    AlreadyStarted,
}

type Commands = mpsc::UnboundedSender<(Moment, Command)>;

/// The proctor of the exam window (see the module's text).
pub struct ProctorHost {
    marker: Option<RunMarker>,
    previous_run: PreviousRun,
    clock: Arc<dyn Clock>,
    commands: Mutex<Option<Commands>>,
    status: Arc<Mutex<ProctorStatus>>,
    restarts_reported: Mutex<HashSet<String>>,
}

impl ProctorHost {
    /// Reads how the previous run ended from `data_dir` and marks this run there. When the
    /// marker cannot be written, the next start cannot tell how this run ended, and says so.
    pub fn new(data_dir: &Path) -> Self {
        let (marker, previous_run) = match RunMarker::begin(data_dir) {
            Ok((marker, previous)) => (Some(marker), previous),
            Err(e) => {
                tracing::warn!(error = %e, folder = %data_dir.display(), "the run marker could not be written");
                (None, PreviousRun::Unknown)
            }
        };
        Self::with_clock(marker, previous_run, Arc::new(SystemClock))
    }

    pub(crate) fn with_clock(
        marker: Option<RunMarker>,
        previous_run: PreviousRun,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            marker,
            previous_run,
            clock,
            commands: Mutex::new(None),
            status: Arc::new(Mutex::new(ProctorStatus::default())),
            restarts_reported: Mutex::new(HashSet::new()),
        }
    }

    /// Starts proctoring on `window`, handing every signal to `sink`. Nothing is applied until
    /// [`ProctorHost::set_exam`] says a proctored exam is being sat.
    pub fn start<R: Runtime>(
        &self,
        window: &WebviewWindow<R>,
        sink: impl SignalSink,
    ) -> Result<(), ProctorError> {
        let clock = self.clock.clone();
        self.start_on(
            Arc::new(window.clone()),
            Arc::new(sink),
            WindowSystem::detect(),
            |commands| {
                window.on_window_event(move |event| {
                    if let Some(input) = window::input_of(event) {
                        // The driver is gone only once the app stops proctoring.
                        let _ = commands.send((clock.now(), Command::Observed(input)));
                    }
                });
            },
        )
    }

    /// [`ProctorHost::start`] on any window; `listen` hooks the window's events to the sender.
    pub(crate) fn start_on(
        &self,
        window: Arc<dyn ExamWindow>,
        sink: Arc<dyn SignalSink>,
        system: WindowSystem,
        listen: impl FnOnce(Commands),
    ) -> Result<(), ProctorError> {
        let mut slot = self.commands.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_some() {
            return Err(ProctorError::AlreadyStarted);
        }
        let (commands, receiver) = mpsc::unbounded_channel();
        listen(commands.clone());
        let driver = Driver::new(
            window,
            sink,
            self.clock.clone(),
            system,
            self.status.clone(),
        );
        tauri::async_runtime::spawn(driver::run(driver, receiver));
        *slot = Some(commands);
        Ok(())
    }

    /// The exam on screen: `None` (the list, another screen), or an evaluation with its
    /// settings and whether the student is sitting it. Call it whenever any of that changes
    /// (opened, handed in, phase or settings changed, back to the list): proctoring applies
    /// while the student sits a proctored exam and is released as soon as they do not.
    pub fn set_exam(&self, exam: Option<ExamContext>) {
        self.send(Command::Exam(exam));
    }

    /// Proctoring as the page shows it.
    pub fn status(&self) -> ProctorStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How the previous run of the app ended.
    pub fn previous_run(&self) -> PreviousRun {
        self.previous_run
    }

    /// Reports `app_restarted` for `evaluation_id`, once per run: call it when this run finds
    /// the student `in_progress` in a proctored evaluation. Says whether it was reported now.
    pub fn report_restart(&self, evaluation_id: &str) -> bool {
        let first = self
            .restarts_reported
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(evaluation_id.to_owned());
        if first {
            let signal = Signal::new(
                evaluation_id,
                IntegrityKind::AppRestarted,
                self.clock.now().wall,
            )
            .with_detail(self.previous_run.detail());
            self.send(Command::Emit(signal));
        }
        first
    }

    /// The page's clipboard guard is running.
    pub fn page_guard(&self) {
        self.send(Command::Observed(Input::PageGuard));
    }

    /// The page refused a copy, a paste or a drop.
    pub fn refused(&self, what: Refusal) {
        self.send(Command::Observed(Input::Refused(what)));
    }

    /// Releases the window and ends the driver.
    pub fn stop(&self) {
        let commands = self
            .commands
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(commands) = commands {
            let _ = commands.send((self.clock.now(), Command::Stop));
        }
    }

    /// The app exits normally: proctoring stops and the next start will know this run ended
    /// cleanly.
    pub fn clean_exit(&self) {
        self.stop();
        if let Some(marker) = &self.marker
            && let Err(e) = marker.end()
        {
            tracing::warn!(error = %e, "the run marker could not be updated");
        }
    }

    fn send(&self, command: Command) {
        let slot = self.commands.lock().unwrap_or_else(PoisonError::into_inner);
        match slot.as_ref() {
            Some(commands) => {
                if commands.send((self.clock.now(), command)).is_err() {
                    tracing::warn!("the proctor has stopped");
                }
            }
            None => tracing::debug!("the proctor is not started on a window"),
        }
    }
}

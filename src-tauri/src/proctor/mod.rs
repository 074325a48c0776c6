//! Proctoring in the desktop app: the OS and window side of what an evaluation's `proctoring`
//! settings ask for, while the student sits it. It **observes and never punishes**: nothing
//! here blocks, locks, ends or hands in anything; every observation becomes a [`Signal`] for
//! the professor to weigh, and the student sees on the exam screen what is reported.
//!
//! # Layout
//!
//! ```text
//! host        ProctorHost: the API for the rest of the app (Tauri state)
//! commands    proctor_attach / proctor_refused, for the page (ui/proctor.js)
//! driver      the task that owns the session and carries out its effects
//! session     one sitting, no I/O: inputs with their moment in, effects out
//!   focus       Focused events -> focus_lost / focus_regained, false pairs filtered
//!   fullscreen  fullscreen requested, watched (no event: resizes + geometry), restored
//!   displays    the monitor list polled every 2 s, counted, changes reported
//!   refusals    clipboard / drop refusals, at most one signal per second
//!   capability  enforced / detect_only / unavailable per setting, with the reason
//! window      the exam window: Tauri's API behind a trait (a fake one in tests)
//! restart     the run marker: did the previous run end cleanly (app_restarted)
//! signal      Signal and SignalSink: what comes out
//! status      ProctorStatus: what the page shows
//! clock       Moment (monotonic + wall clock), the Clock trait
//! ```
//!
//! # Using it
//!
//! ```text
//! host = ProctorHost::new(data_dir)             at start-up, managed as state
//! host.start(&main_window, sink)                once the window exists; sink: impl SignalSink
//! host.set_exam(Some(ExamContext{..}) | None)   whenever the exam on screen, the student's
//!                                               phase or the settings change
//! host.report_restart(evaluation_id)            when a run finds the student in_progress in a
//!                                               proctored evaluation (uses previous_run())
//! host.clean_exit()                             on a normal exit
//! ```
//!
//! Each [`Signal`] is an `INTEGRITY_EVENT` without its id: the sink makes the UUID and keeps the
//! event until the server acknowledges it.

pub mod capability;
pub mod clock;
pub mod commands;
mod displays;
mod driver;
mod focus;
mod fullscreen;
pub mod host;
pub mod refusals;
pub mod restart;
mod session;
pub mod signal;
pub mod status;
mod window;

#[cfg(test)]
mod tests;

pub use capability::{Capability, Setting, WindowSystem};
pub use fullscreen::FullscreenState;
pub use host::{ProctorError, ProctorHost};
pub use refusals::Refusal;
pub use restart::{MARKER_FILE, PreviousRun, RunMarker};
pub use session::ExamContext;
pub use signal::{Signal, SignalSink};
pub use status::{FocusView, ProctorStatus, SettingsView};
pub use window::STATUS_EVENT;

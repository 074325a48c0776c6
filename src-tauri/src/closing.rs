//! Closing on SIGTERM and SIGHUP (a logout, a shutdown, a terminal closed, a supervisor) as
//! closing the window does: whatever was typed is written to disk first. Without this, the
//! default action of either signal ends the process at once and takes the typing that is not on
//! disk yet (up to [`invigil_client::engine::FLUSH_DELAY`] of it) with it.
//!
//! The page passes every change to the engine as it happens, but a change can be on its way
//! (an IPC call in flight, or merged into the next one): the page is told [`CLOSING`] and
//! answers with [`typing_handed_over`] once nothing is on its way, or the app goes on after
//! [`HANDOVER`] (a page that is not showing an exam has nothing to hand over, or is gone).

use invigil_client::Engine;
use std::time::Duration;
use tauri::{AppHandle, Emitter, Manager, Runtime, State};
use tokio::sync::Notify;

/// Emitted to the window when a signal closes the app.
pub const CLOSING: &str = "app-closing";

/// How long the page is given to hand over typing on its way.
pub const HANDOVER: Duration = Duration::from_millis(500);

/// The page's answer to [`CLOSING`] (managed state).
#[derive(Default)]
pub struct Handover(Notify);

/// The page has handed over every change it had on its way to the engine.
#[tauri::command]
pub fn typing_handed_over(handover: State<'_, Handover>) {
    handover.0.notify_one();
}

/// Waits for SIGTERM or SIGHUP, then writes the typing to disk, marks the run as ended cleanly
/// for proctoring, and exits with status 0.
#[cfg(unix)]
pub fn on_signals<R: Runtime>(app: AppHandle<R>) {
    use tokio::signal::unix::{SignalKind, signal};
    tauri::async_runtime::spawn(async move {
        let (mut term, mut hangup) = match (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) {
            (Ok(term), Ok(hangup)) => (term, hangup),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "SIGTERM and SIGHUP cannot be caught");
                return;
            }
        };
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = hangup.recv() => "SIGHUP",
        };
        tracing::info!(
            signal = name,
            "closing: writing what was typed to disk first"
        );
        close(&app).await;
    });
}

/// Not a Unix: the signals do not exist; closing the window is the way out.
#[cfg(not(unix))]
pub fn on_signals<R: Runtime>(_app: AppHandle<R>) {}

/// What closing the window does at exit, done before asking the event loop to exit.
#[cfg(unix)]
async fn close<R: Runtime>(app: &AppHandle<R>) {
    if let Some(handover) = app.try_state::<Handover>() {
        // A permit given before this wait is not lost (`Notify::notify_one`).
        match app.emit(CLOSING, ()) {
            Ok(()) => {
                if tokio::time::timeout(HANDOVER, handover.0.notified())
                    .await
                    .is_err()
                {
                    tracing::info!("the page did not answer; writing what the engine holds");
                }
            }
            Err(e) => tracing::warn!(error = %e, "the page could not be told"),
        }
    }
    if let Some(engine) = app.try_state::<Engine>() {
        engine.flush().await;
    }
    if let Some(proctor) = app.try_state::<crate::proctor::ProctorHost>() {
        proctor.clean_exit();
    }
    app.exit(0);
}

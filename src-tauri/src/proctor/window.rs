//! The exam window, as the proctor uses it: Tauri 2's own window API behind a small trait, so
//! that the driver runs against a fake window in tests.
//!
//! What is read from Tauri, and why:
//! - focus: the window's `WindowEvent::Focused`, not the page's `blur`;
//! - fullscreen: `set_fullscreen`, `set_always_on_top`, and, as there is no fullscreen-changed
//!   event, `Resized` / `Moved` followed by a look at `is_fullscreen()`, the window's outer
//!   rectangle and its `current_monitor()` (see `fullscreen.rs` for why the flag alone lies);
//! - displays: `available_monitors()`, polled, as there is no monitor-change event;
//! - files dropped on the window: `WindowEvent::DragDrop`, which Tauri handles before the page
//!   (the page never receives the file).

use crate::proctor::displays::Rect;
use crate::proctor::fullscreen::WindowProbe;
use crate::proctor::refusals::Refusal;
use crate::proctor::session::Input;
use crate::proctor::status::ProctorStatus;
use tauri::{DragDropEvent, Emitter, Runtime, WebviewWindow, WindowEvent};

/// The Tauri event that carries [`ProctorStatus`] to the page.
pub const STATUS_EVENT: &str = "proctor";

/// What the proctor does with its window.
pub(crate) trait ExamWindow: Send + Sync + 'static {
    /// Fullscreen on or off.
    fn set_fullscreen(&self, on: bool);
    /// Above other windows, or not.
    fn set_always_on_top(&self, on: bool);
    /// A look at the window.
    fn probe(&self) -> WindowProbe;
    /// The rectangles of the active monitors; `None` when they cannot be read.
    fn monitors(&self) -> Option<Vec<Rect>>;
    /// Shows `status` to the page.
    fn publish(&self, status: &ProctorStatus);
}

fn rect(position: tauri::PhysicalPosition<i32>, size: tauri::PhysicalSize<u32>) -> Rect {
    Rect {
        x: position.x,
        y: position.y,
        width: size.width,
        height: size.height,
    }
}

impl<R: Runtime> ExamWindow for WebviewWindow<R> {
    fn set_fullscreen(&self, on: bool) {
        if let Err(e) = WebviewWindow::set_fullscreen(self, on) {
            tracing::warn!(error = %e, on, "fullscreen could not be changed");
        }
    }

    fn set_always_on_top(&self, on: bool) {
        if let Err(e) = WebviewWindow::set_always_on_top(self, on) {
            tracing::warn!(error = %e, on, "always-on-top could not be changed");
        }
    }

    fn probe(&self) -> WindowProbe {
        let window = match (self.outer_position(), self.outer_size()) {
            (Ok(position), Ok(size)) => Some(rect(position, size)),
            _ => None,
        };
        let monitor = self
            .current_monitor()
            .ok()
            .flatten()
            .map(|m| rect(*m.position(), *m.size()));
        WindowProbe {
            fullscreen_flag: self.is_fullscreen().unwrap_or(false),
            window,
            monitor,
            always_on_top: self.is_always_on_top().unwrap_or(false),
            focused: self.is_focused().unwrap_or(true),
        }
    }

    fn monitors(&self) -> Option<Vec<Rect>> {
        match self.available_monitors() {
            Ok(monitors) => Some(
                monitors
                    .iter()
                    .map(|m| rect(*m.position(), *m.size()))
                    .collect(),
            ),
            Err(e) => {
                tracing::warn!(error = %e, "the monitors could not be read");
                None
            }
        }
    }

    fn publish(&self, status: &ProctorStatus) {
        if let Err(e) = self.emit_to(self.label(), STATUS_EVENT, status) {
            tracing::warn!(error = %e, "the proctoring status could not reach the page");
        }
    }
}

/// What a window event means to the proctor, if anything.
pub(crate) fn input_of(event: &WindowEvent) -> Option<Input> {
    match event {
        WindowEvent::Focused(focused) => Some(Input::Focused(*focused)),
        WindowEvent::Moved(_) => Some(Input::Moved),
        WindowEvent::Resized(_) | WindowEvent::ScaleFactorChanged { .. } => Some(Input::Resized),
        WindowEvent::DragDrop(DragDropEvent::Drop { paths, .. }) if !paths.is_empty() => {
            Some(Input::Refused(Refusal::FileDrop))
        }
        _ => None,
    }
}

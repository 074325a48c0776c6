//! The proctor following the engine: which exam is on screen, what the proctor is told about it,
//! and where its signals go.
//!
//! - The [`ProctorHost`] starts on the main window with a sink that hands every signal, in order,
//!   to the engine's integrity outbox ([`Engine::report_integrity`]): on disk, then sent, kept
//!   until the server acknowledges it.
//! - [`Sitting`] remembers the exam on screen (opened by `open_exam`, left by `close_exam` or a
//!   hand-in) and, on every engine event that changes the evaluations (phase, status, settings,
//!   the end time passing), tells the proctor again with [`exam_context`]: proctoring applies
//!   while the student sits a proctored exam and is released as soon as they do not.
//! - A run that finds the student `in_progress` in a proctored evaluation they did not join in
//!   this run reports `app_restarted` (once per evaluation and run, [`ProctorHost`] sees to it).

use crate::proctor::{ExamContext, ProctorHost, Signal};
use invigil_client::Engine;
use invigil_client::integrity::IntegrityReport;
use invigil_client::view::{EvaluationView, ExamState};
use invigil_protocol::{ParticipationStatus, Phase, Proctoring};
use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};
use tauri::{AppHandle, Manager, Runtime, WebviewWindow};

/// The exam on screen and the evaluations joined in this run; managed as Tauri state.
#[derive(Debug, Default)]
pub struct Sitting {
    on_screen: Mutex<Option<String>>,
    joined_here: Mutex<HashSet<String>>,
}

impl Sitting {
    /// The evaluation on the exam screen, if any.
    pub fn on_screen(&self) -> Option<String> {
        self.on_screen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn show(&self, evaluation_id: Option<&str>) {
        *self
            .on_screen
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = evaluation_id.map(str::to_owned);
    }

    /// The student starts `evaluation_id` in this run (before the engine joins: the update that
    /// says `in_progress` may come before the join's answer).
    pub(crate) fn joining(&self, evaluation_id: &str) {
        self.joined_here
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(evaluation_id.to_owned());
    }

    fn joined_here(&self, evaluation_id: &str) -> bool {
        self.joined_here
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(evaluation_id)
    }
}

/// The proctoring settings the proctor applies for `view`: the engine's, which are already the
/// ones that apply to this student (see `invigil_client`'s `effective_proctoring`).
pub fn settings_of(view: &EvaluationView) -> Proctoring {
    view.proctoring
}

/// The exam of `view` as the proctor sees it: sat while editing is open (the student
/// `in_progress`, the phase `in_progress`, the end not passed).
pub fn exam_context(view: &EvaluationView) -> ExamContext {
    ExamContext {
        evaluation_id: view.id.clone(),
        proctoring: settings_of(view),
        sitting: view.exam == ExamState::Open,
    }
}

fn any_switch(p: &Proctoring) -> bool {
    p.fullscreen || p.report_focus || p.block_clipboard || p.single_display
}

/// Starts the proctor on `window`, its signals going to the engine. Call once, when the main
/// window exists; a second call is refused and logged.
pub fn start_proctor<R: Runtime>(window: &WebviewWindow<R>) {
    let app = window.app_handle().clone();
    let Some(host) = app.try_state::<ProctorHost>() else {
        tracing::warn!("no proctor to start");
        return;
    };
    if let Err(e) = host.start(window, integrity_sink(app.clone())) {
        tracing::warn!(error = %e, "the proctor was not started");
        return;
    }
    // What the engine resumed from the previous run (its cached evaluations) is known now: a
    // restart mid-exam is reported even before the server is reached.
    if let Some(engine) = app.try_state::<Engine>() {
        evaluations_changed(&app, &engine.overview().evaluations);
    }
}

/// A sink that hands signals, one at a time and in order, to the engine's integrity outbox.
fn integrity_sink<R: Runtime>(app: AppHandle<R>) -> tokio::sync::mpsc::UnboundedSender<Signal> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Signal>();
    tauri::async_runtime::spawn(async move {
        while let Some(signal) = rx.recv().await {
            let Some(engine) = app.try_state::<Engine>() else {
                tracing::warn!(
                    kind = signal.kind.as_str(),
                    "no engine for a proctoring signal"
                );
                continue;
            };
            let evaluation_id = signal.evaluation_id.clone();
            let report = IntegrityReport {
                kind: signal.kind,
                at: signal.at,
                away_ms: signal.away_ms,
                displays: signal.displays,
                capabilities: signal.capabilities,
                detail: signal.detail,
            };
            if let Err(e) = engine.report_integrity(&evaluation_id, report).await {
                tracing::warn!(error = %e, evaluation = %evaluation_id, "a proctoring signal was not kept");
            }
        }
    });
    tx
}

/// The student opened `view`'s exam.
pub fn opened<R: Runtime>(app: &AppHandle<R>, view: &EvaluationView) {
    if let Some(sitting) = app.try_state::<Sitting>() {
        sitting.show(Some(&view.id));
    }
    if let Some(host) = app.try_state::<ProctorHost>() {
        host.set_exam(Some(exam_context(view)));
    }
}

/// The student left the exam screen (back to the list, signed out) or handed in.
pub fn closed<R: Runtime>(app: &AppHandle<R>) {
    if let Some(sitting) = app.try_state::<Sitting>() {
        sitting.show(None);
    }
    if let Some(host) = app.try_state::<ProctorHost>() {
        host.set_exam(None);
    }
}

/// The engine's evaluations changed: the exam on screen is told again (its phase, status or
/// settings may have changed; gone from the list, it is released), and a proctored evaluation
/// this run finds the student sitting without having joined it here reports `app_restarted`.
pub fn evaluations_changed<R: Runtime>(app: &AppHandle<R>, views: &[EvaluationView]) {
    let (Some(sitting), Some(host)) = (app.try_state::<Sitting>(), app.try_state::<ProctorHost>())
    else {
        return;
    };
    if let Some(id) = sitting.on_screen() {
        host.set_exam(views.iter().find(|v| v.id == id).map(exam_context));
    }
    for view in views {
        let sat = view.access
            && view.phase == Phase::InProgress
            && view.status == ParticipationStatus::InProgress;
        if sat && any_switch(&settings_of(view)) && !sitting.joined_here(&view.id) {
            host.report_restart(&view.id);
        }
    }
}

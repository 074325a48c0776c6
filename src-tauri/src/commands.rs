//! The commands the front end invokes: thin, each one call on the engine (and, for the ones
//! that open, leave or hand in an exam, a word to the proctor: [`crate::sitting`]).

use crate::error::CommandResult;
use crate::sitting::{self, Sitting};
use invigil_client::Engine;
use invigil_client::view::{
    AnswerView, EvaluationView, ExamContent, ExportSummary, Overview, SessionView, WaitingView,
};
use std::path::PathBuf;
use tauri::{AppHandle, Manager, Runtime, State};

/// Everything the front end shows, at once (at start and after it missed events).
#[tauri::command]
pub fn overview(engine: State<'_, Engine>) -> Overview {
    engine.overview()
}

/// Signs in; `server_url` overrides the configured server when given.
#[tauri::command]
pub async fn sign_in(
    engine: State<'_, Engine>,
    server_url: Option<String>,
    username: String,
    password: String,
) -> CommandResult<SessionView> {
    Ok(engine
        .sign_in(server_url.as_deref(), &username, &password)
        .await?)
}

/// Signs out.
#[tauri::command]
pub async fn sign_out<R: Runtime>(
    app: AppHandle<R>,
    engine: State<'_, Engine>,
) -> CommandResult<()> {
    engine.sign_out().await?;
    sitting::closed(&app);
    Ok(())
}

/// Joins a running evaluation.
#[tauri::command]
pub async fn join(
    sitting: State<'_, Sitting>,
    engine: State<'_, Engine>,
    evaluation_id: String,
) -> CommandResult<EvaluationView> {
    sitting.joining(&evaluation_id);
    Ok(engine.join(&evaluation_id).await?)
}

/// Opens an exam: its questions and the content of each answer. A proctored exam the student
/// is sitting is proctored from now on.
#[tauri::command]
pub async fn open_exam<R: Runtime>(
    app: AppHandle<R>,
    engine: State<'_, Engine>,
    evaluation_id: String,
) -> CommandResult<ExamContent> {
    let content = engine.open(&evaluation_id).await?;
    sitting::opened(&app, &content.evaluation);
    Ok(content)
}

/// The student left the exam screen for the list: proctoring is released.
#[tauri::command]
pub fn close_exam<R: Runtime>(app: AppHandle<R>) {
    sitting::closed(&app);
}

/// The new content of an answer, as the student types.
#[tauri::command]
pub fn edit_answer(
    engine: State<'_, Engine>,
    evaluation_id: String,
    question_id: String,
    content: String,
) -> CommandResult<AnswerView> {
    Ok(engine.edit(&evaluation_id, &question_id, content)?)
}

/// Hands in; proctoring is released.
#[tauri::command]
pub async fn submit<R: Runtime>(
    app: AppHandle<R>,
    engine: State<'_, Engine>,
    evaluation_id: String,
) -> CommandResult<EvaluationView> {
    let view = engine.submit(&evaluation_id).await?;
    sitting::closed(&app);
    Ok(view)
}

/// Writes the answers still waiting to a file for the professor, in [`export_folder`], and says
/// where. The engine names the file (only `[A-Za-z0-9._-]`) and writes it only inside that
/// folder.
#[tauri::command]
pub async fn export_answers<R: Runtime>(
    app: AppHandle<R>,
    engine: State<'_, Engine>,
) -> CommandResult<ExportSummary> {
    let folder = export_folder(&app, &engine);
    Ok(engine.export(&folder).await?)
}

/// The answers waiting on this computer for every student and server (the sign-in screen lists
/// those someone else left behind, so that they can still be exported).
#[tauri::command]
pub async fn waiting_answers(engine: State<'_, Engine>) -> CommandResult<Vec<WaitingView>> {
    Ok(engine.waiting_on_this_computer().await?)
}

/// Writes the answers waiting on this computer for `username` on `server_url` (any student, the
/// one signed in or not) to a file in [`export_folder`], as [`export_answers`] does.
#[tauri::command]
pub async fn export_waiting_answers<R: Runtime>(
    app: AppHandle<R>,
    engine: State<'_, Engine>,
    server_url: String,
    username: String,
) -> CommandResult<ExportSummary> {
    let folder = export_folder(&app, &engine);
    Ok(engine
        .export_waiting(&server_url, &username, &folder)
        .await?)
}

/// Where exports go: the documents folder, or the app's data folder when there is none. The page
/// cannot name a folder: it may call nothing that writes elsewhere.
fn export_folder<R: Runtime>(app: &AppHandle<R>, engine: &Engine) -> PathBuf {
    app.path()
        .document_dir()
        .ok()
        .filter(|d| d.is_dir())
        .unwrap_or_else(|| engine.data_dir().to_owned())
}

/// The server's time now, in milliseconds since the epoch.
#[tauri::command]
pub fn server_now(engine: State<'_, Engine>) -> i64 {
    engine.server_now_ms()
}

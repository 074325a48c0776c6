//! The page's two proctoring commands. Neither can turn proctoring off or change a setting:
//! the page only says its guard runs and what it refused.

use crate::proctor::host::ProctorHost;
use crate::proctor::refusals::Refusal;
use crate::proctor::status::ProctorStatus;
use tauri::ipc::Invoke;
use tauri::{Runtime, State};

/// The page's clipboard guard is running; answers the current status (afterwards the page
/// follows the `proctor` event).
#[tauri::command]
pub fn proctor_attach(host: State<'_, ProctorHost>) -> ProctorStatus {
    host.page_guard();
    host.status()
}

/// The page refused a copy, a paste or a drop.
#[tauri::command]
pub fn proctor_refused(host: State<'_, ProctorHost>, what: Refusal) {
    host.refused(what);
}

/// A handler of these two commands alone, for an app that has no others (the app registers
/// them in its own list, with the engine's).
pub fn handler<R: Runtime>() -> impl Fn(Invoke<R>) -> bool + Send + Sync + 'static {
    tauri::generate_handler![proctor_attach, proctor_refused]
}

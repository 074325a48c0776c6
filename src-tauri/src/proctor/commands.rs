//! The page's two proctoring commands. Neither can turn proctoring off or change a setting:
//! the page only says its guard runs and what it refused.

use crate::proctor::host::ProctorHost;
use crate::proctor::refusals::Refusal;
use crate::proctor::status::ProctorStatus;
use tauri::State;

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

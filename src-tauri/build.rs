//! Builds the Tauri context from the workspace-root `tauri.conf.json` and generates one
//! permission per app command, so that the capability grants exactly the commands the student
//! window uses.

fn main() {
    let manifest = tauri_build::AppManifest::new().commands(invigil_desktop_commands());
    tauri_build::try_build(
        tauri_build::Attributes::new()
            .config_path("../tauri.conf.json")
            .app_manifest(manifest),
    )
    .expect("the Tauri build step succeeds");
}

/// The app's commands; `src/commands.rs`, `src/closing.rs` and `src/proctor/commands.rs` define
/// them and `src/lib.rs` registers them.
fn invigil_desktop_commands() -> &'static [&'static str] {
    &[
        "overview",
        "sign_in",
        "sign_out",
        "join",
        "open_exam",
        "close_exam",
        "edit_answer",
        "submit",
        "export_answers",
        "waiting_answers",
        "export_waiting_answers",
        "server_now",
        "typing_handed_over",
        "proctor_attach",
        "proctor_refused",
    ]
}

//! `invigil-desktop`: the Tauri 2 shell of the student's exam app. It starts the
//! [`invigil_client::Engine`], exposes it to the front end (`ui/`) through thin commands, and
//! forwards the engine's events as the Tauri event [`EVENT`].
//!
//! # Layout
//!
//! ```text
//! lib.rs       build / run_app: engine start-up, event forwarding, flush on exit
//! closing      SIGTERM/SIGHUP close the app as closing its window does (typing written first)
//! commands     the commands, one engine call each
//! error        {kind, message} for the front end
//! proctor      proctoring of the exam window (ProctorHost) and the page's two commands
//! sitting      the proctor following the engine: the exam on screen, signals to the engine's
//!              integrity outbox, app_restarted
//! ```
//!
//! `tauri.conf.json` sits at the workspace root; the capability (`capabilities/default.json`)
//! grants the window the app's commands and event listening, nothing else.

pub mod closing;
pub mod commands;
pub mod error;
pub mod proctor;
pub mod sitting;

use invigil_client::view::Event;
use invigil_client::{ClientConfig, Engine, KeyringVault, NoVault, Vault};
use std::sync::Arc;
use tauri::{App, Builder, Context, Emitter, Manager, RunEvent, Runtime};

/// The Tauri event carrying every engine event (`{type, data}`, see `invigil_client::view::Event`).
pub const EVENT: &str = "engine";
/// Sent instead when the front end fell behind: it should read the overview again.
pub const RESYNC: &str = "engine-resync";

/// How the engine is set up.
pub enum Startup {
    /// As a student's app: `INVIGIL_SERVER_URL`, `INVIGIL_DATA_DIR` (or the app-data folder),
    /// `INVIGIL_ALLOW_INSECURE`, and the OS keyring.
    FromEnvironment,
    /// As given (tests).
    With {
        /// Server and data folder.
        config: ClientConfig,
        /// Where the token is kept.
        vault: Arc<dyn Vault>,
    },
}

/// Why the app could not start.
pub type StartError = Box<dyn std::error::Error + Send + Sync>;

/// Builds the app on `builder` (the real runtime, or `tauri::test::mock_builder()`) and starts
/// the engine, managed as state before any window opens. The proctor starts on the `main`
/// window once the app runs and the window exists ([`sitting::start_proctor`]; the mock runtime
/// opens no window by itself, so a test calls it on the window it opens).
pub fn build<R: Runtime>(
    builder: Builder<R>,
    context: Context<R>,
    startup: Startup,
) -> Result<App<R>, StartError> {
    let app = builder
        .invoke_handler(tauri::generate_handler![
            commands::overview,
            commands::sign_in,
            commands::sign_out,
            commands::join,
            commands::open_exam,
            commands::close_exam,
            commands::edit_answer,
            commands::submit,
            commands::export_answers,
            commands::waiting_answers,
            commands::export_waiting_answers,
            commands::server_now,
            closing::typing_handed_over,
            proctor::commands::proctor_attach,
            proctor::commands::proctor_refused,
        ])
        .setup(|app| {
            if let Some(window) = app.get_webview_window("main") {
                sitting::start_proctor(&window);
            }
            Ok(())
        })
        .build(context)?;
    let (config, vault) = match startup {
        Startup::With { config, vault } => (config, vault),
        Startup::FromEnvironment => {
            let data_dir = app.path().app_data_dir()?;
            (ClientConfig::from_env(&data_dir)?, system_vault())
        }
    };
    tracing::info!(
        server = %config.server_url,
        data = %config.data_dir.display(),
        vault = %vault.describe(),
        "starting"
    );
    // Before the engine starts: the marker says whether the previous run ended cleanly.
    app.manage(proctor::ProctorHost::new(&config.data_dir));
    app.manage(closing::Handover::default());
    app.manage(sitting::Sitting::default());
    let engine = tauri::async_runtime::block_on(Engine::start(config, vault))?;
    forward_events(app.handle().clone(), &engine);
    app.manage(engine);
    Ok(app)
}

/// The OS keyring, or none (the student is told the sign-in cannot be remembered).
fn system_vault() -> Arc<dyn Vault> {
    match KeyringVault::system() {
        Ok(vault) => Arc::new(vault),
        Err(e) => {
            tracing::warn!(error = %e, "no usable keyring");
            Arc::new(NoVault::new(e.to_string()))
        }
    }
}

fn forward_events<R: Runtime>(app: tauri::AppHandle<R>, engine: &Engine) {
    let mut events = engine.subscribe();
    tauri::async_runtime::spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match events.recv().await {
                Ok(event) => {
                    if let Event::Evaluations(views) = &event.event {
                        sitting::evaluations_changed(&app, views);
                    }
                    if let Err(e) = app.emit(EVENT, &event) {
                        tracing::warn!(error = %e, "an event could not reach the window");
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    if let Some(engine) = app.try_state::<Engine>() {
                        sitting::evaluations_changed(&app, &engine.overview().evaluations);
                    }
                    let _ = app.emit(RESYNC, ());
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
}

/// Runs a built app until it exits (its window closed, or SIGTERM or SIGHUP); whatever was typed
/// is written to disk before it does.
pub fn run_app<R: Runtime>(app: App<R>) {
    closing::on_signals(app.handle().clone());
    app.run(|handle, event| {
        if let RunEvent::Exit = event {
            if let Some(engine) = handle.try_state::<Engine>() {
                tauri::async_runtime::block_on(engine.flush());
            }
            if let Some(proctor) = handle.try_state::<proctor::ProctorHost>() {
                proctor.clean_exit();
            }
        }
    });
}

/// The desktop app's entry point.
pub fn run() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("INVIGIL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match build(
        tauri::Builder::default(),
        tauri::generate_context!("../tauri.conf.json"),
        Startup::FromEnvironment,
    ) {
        Ok(app) => run_app(app),
        Err(e) => {
            eprintln!("invigil-desktop could not start: {e}");
            std::process::exit(1);
        }
    }
}

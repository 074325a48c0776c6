//! `invigil-server`: parse the configuration, start logging, serve.

use anyhow::Context as _;
use clap::Parser;
use invigil_server::config::{Cli, Command, LogFormat};
use invigil_server::tls::Certificates;
use std::io::Write;
use std::sync::Arc;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.serve.clock_offset_ms != 0 {
        invigil_protocol::Timestamp::set_clock_offset_ms(cli.serve.clock_offset_ms);
    }
    // Administration commands print their results; their logs only say what went wrong.
    let quiet = !matches!(cli.command, None | Some(Command::Serve));
    let default = if quiet { "warn" } else { "info" };
    let filter = EnvFilter::try_from_env("INVIGIL_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.serve.log_format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Pretty => logs.init(),
    }
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let certificates = match cli.serve.tls() {
                Some((cert, key)) => Some(Arc::new(
                    Certificates::load(cert, key).context("while loading --tls-cert/--tls-key")?,
                )),
                None => None,
            };
            let listener = invigil_server::bind(cli.serve.listen)?;
            // Tests and scripts read the scheme and the chosen port from this line.
            println!(
                "invigil-server listening on {}://{}",
                invigil_server::server::scheme(&cli.serve),
                listener.local_addr()?
            );
            std::io::stdout().flush()?;
            invigil_server::run(cli.serve, listener, certificates, shutdown_signal()).await
        }
        Command::Users(command) => invigil_server::cli::users(&cli.serve.database, command).await,
        Command::Evaluations(command) => {
            invigil_server::cli::evaluations(&cli.serve.database, command).await
        }
        Command::Backup(args) => invigil_server::backup::backup(&cli.serve.database, args).await,
        Command::Restore(args) => invigil_server::backup::restore(&cli.serve.database, args).await,
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

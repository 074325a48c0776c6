//! `invigil-bench`: parse the command line and conduct a run, or play a worker's share of it.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use invigil_bench::run::{self, Mode, Options, Scenario};
use invigil_bench::servers::{Kind, Paths};
use std::path::PathBuf;

/// invigil's load generator.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Plays the scenarios and writes results.json and report.md into the work folder.
    Run {
        /// How much to measure.
        #[arg(long, value_enum, default_value = "quick")]
        mode: Mode,
        /// Only these scenarios (repeatable; all by default).
        #[arg(long = "only", value_enum)]
        scenarios: Vec<Scenario>,
        /// Only these servers in the idle and fan-out scenarios (repeatable; all by default).
        #[arg(long = "target", value_enum)]
        targets: Vec<Kind>,
        /// The numbers of students of the idle and fan-out scenarios, instead of the mode's.
        #[arg(long, value_delimiter = ',')]
        sizes: Vec<usize>,
        /// Phase changes per fan-out measurement, instead of the mode's.
        #[arg(long)]
        changes: Option<usize>,
        /// Students in the storm, instead of the mode's.
        #[arg(long)]
        storm: Option<usize>,
        /// The invigil-server binary (by default the one beside this binary).
        #[arg(long)]
        server: Option<PathBuf>,
        /// The work folder (by default target/bench/MODE).
        #[arg(long)]
        work: Option<PathBuf>,
        /// A PostgreSQL server for the answers scenario on PostgreSQL (a database is created on
        /// it for the run and dropped after).
        #[arg(long, env = "INVIGIL_BENCH_POSTGRES_URL")]
        postgres: Option<String>,
    },
    /// Plays students for a conductor (spawned by `run`; reads commands on stdin).
    #[command(hide = true)]
    Worker,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Worker => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(invigil_bench::worker::run()),
        Command::Run {
            mode,
            scenarios,
            targets,
            sizes,
            changes,
            storm,
            server,
            work,
            postgres,
        } => {
            let here = std::env::current_exe()?;
            let bin = here.parent().context("the bench's folder")?;
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .context("bench/ is in the workspace")?
                .to_owned();
            let mode_name = format!("{mode:?}").to_lowercase();
            let paths = Paths {
                server: server.unwrap_or_else(|| bin.join("invigil-server")),
                work: work.unwrap_or_else(|| root.join("target").join("bench").join(mode_name)),
                root,
            };
            anyhow::ensure!(
                paths.server.exists(),
                "{} is missing: build it (cargo build --release -p invigil-server)",
                paths.server.display()
            );
            let targets = if targets.is_empty() {
                std::iter::once(Kind::Invigil).chain(Kind::PEERS).collect()
            } else {
                targets
            };
            let options = Options {
                mode,
                scenarios,
                targets,
                sizes,
                changes,
                storm,
                postgres,
                paths: paths.clone(),
            };
            let results = tokio::runtime::Runtime::new()?.block_on(run::run(options))?;
            println!("{}", results.markdown());
            eprintln!(
                "bench: results in {}",
                paths.work.join("results.json").display()
            );
            Ok(())
        }
    }
}

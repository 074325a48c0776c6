//! The server's configuration: one typed struct, from flags or their environment variables.

use clap::{Args, Parser, Subcommand};
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// `invigil-server`: with no subcommand it serves.
#[derive(Debug, Parser)]
#[command(name = "invigil-server", version, about = "The invigil exam server")]
pub struct Cli {
    /// How to serve.
    #[command(flatten)]
    pub serve: Config,
    /// An administration task instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Administration tasks run against the database, for scripting.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve (the default).
    Serve,
    /// Manage users: list, create, import students from CSV, reset a password, end sessions.
    #[command(subcommand)]
    Users(crate::cli::UsersCommand),
    /// Evaluations: list, export answers or the audit log as CSV, unblock, import answer files.
    #[command(subcommand)]
    Evaluations(crate::cli::EvaluationsCommand),
    /// Write a consistent copy of a live SQLite database to FILE while the server goes on saving.
    Backup(crate::backup::BackupArgs),
    /// Replace a SQLite database with a backup; refuses while a server has it open.
    Restore(crate::backup::RestoreArgs),
}

/// How the server runs.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port (the chosen address is printed).
    #[arg(
        long,
        env = "INVIGIL_LISTEN",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub listen: SocketAddr,

    /// Database URL: `sqlite://PATH` or `postgres://...`.
    #[arg(
        long,
        env = "INVIGIL_DATABASE_URL",
        default_value = "sqlite://invigil.db",
        global = true
    )]
    pub database: DatabaseUrl,

    /// How often each side of a live connection must send something, in milliseconds.
    #[arg(long, env = "INVIGIL_HEARTBEAT_MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(50..=600_000))]
    pub heartbeat_ms: u64,

    /// An origin, besides the server's own, allowed for cookie-authenticated requests (repeatable).
    #[arg(
        long = "allowed-origin",
        env = "INVIGIL_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,

    /// Seed demo users and a running evaluation, and print how to sign in.
    #[arg(long)]
    pub demo: bool,

    /// `username:password` of an admin created at start if no user with that name exists.
    #[arg(long, env = "INVIGIL_BOOTSTRAP_ADMIN", hide_env_values = true)]
    pub bootstrap_admin: Option<Secret>,

    /// Take the client address for sign-in throttling from `X-Forwarded-For` (only behind a trusted
    /// proxy that sets it).
    #[arg(long, env = "INVIGIL_TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: bool,

    /// Log format: `pretty` for people, `json` for collectors.
    #[arg(
        long,
        env = "INVIGIL_LOG_FORMAT",
        default_value = "pretty",
        global = true
    )]
    pub log_format: LogFormat,
}

impl Config {
    /// The heartbeat period.
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms)
    }

    /// A configuration for tests and embedding: serve `database` on `listen`.
    pub fn new(listen: SocketAddr, database: DatabaseUrl) -> Self {
        Self {
            listen,
            database,
            heartbeat_ms: 5000,
            allowed_origins: Vec::new(),
            demo: false,
            bootstrap_admin: None,
            trust_forwarded_for: false,
            log_format: LogFormat::Pretty,
        }
    }
}

/// The log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object a line.
    Json,
}

/// Where the data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// An embedded SQLite file.
    Sqlite(String),
    /// A PostgreSQL server.
    Postgres(String),
}

impl std::str::FromStr for DatabaseUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s
            .strip_prefix("sqlite://")
            .or_else(|| s.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err("sqlite:// needs a file path, e.g. sqlite://invigil.db".into());
            }
            Ok(DatabaseUrl::Sqlite(path.to_owned()))
        } else if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Ok(DatabaseUrl::Postgres(s.to_owned()))
        } else {
            Err(format!(
                "`{s}` is not a database URL: use sqlite://PATH or postgres://..."
            ))
        }
    }
}

/// A secret that never prints.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_name_their_engine() {
        assert_eq!(
            "sqlite://x.db".parse::<DatabaseUrl>().unwrap(),
            DatabaseUrl::Sqlite("x.db".into())
        );
        assert!(matches!(
            "postgres://h/db".parse::<DatabaseUrl>().unwrap(),
            DatabaseUrl::Postgres(_)
        ));
        assert!("mysql://h".parse::<DatabaseUrl>().is_err());
    }

    #[test]
    fn secrets_never_print() {
        let s: Secret = "admin:pw".parse().unwrap();
        assert!(!format!("{s:?}").contains("pw"));
    }
}

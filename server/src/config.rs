//! The server's configuration: one typed struct, from flags or their environment variables.

use clap::{Args, Parser, Subcommand};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
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

    /// With `--trust-forwarded-for`: how many proxies in front of the server append to
    /// `X-Forwarded-For`; the client is the address the farthest of them saw.
    #[arg(long, env = "INVIGIL_TRUSTED_PROXY_HOPS", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=16))]
    pub trusted_proxy_hops: u8,

    /// Password hashes and verifications run at once, server-wide (default: the number of CPUs).
    #[arg(long, env = "INVIGIL_MAX_HASHING", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub max_hashing: Option<u16>,

    /// How long a sign-in may wait for a hashing worker before it is answered `server_busy`, in
    /// milliseconds (the contract's 10 s; lower only in tests).
    #[arg(
        long,
        env = "INVIGIL_SIGN_IN_WAIT_LIMIT_MS",
        default_value_t = 10_000,
        hide = true
    )]
    pub sign_in_wait_limit_ms: u64,

    /// For tests only: this many milliseconds are added to every reading of the process's clock,
    /// so that one machine can run nodes whose clocks disagree.
    #[arg(
        long,
        env = "INVIGIL_CLOCK_OFFSET_MS",
        default_value_t = 0,
        allow_hyphen_values = true,
        hide = true
    )]
    pub clock_offset_ms: i64,

    /// A network whose addresses are exempt from per-address limits (a room of students behind
    /// one address), as CIDR, e.g. 10.1.0.0/16 (repeatable).
    #[arg(
        long = "exam-network",
        env = "INVIGIL_EXAM_NETWORKS",
        value_delimiter = ','
    )]
    pub exam_networks: Vec<ipnet::IpNet>,

    /// The URL people reach the server at, e.g. `https://exams.example.org`: its origin is the
    /// server's own for the Origin check, and `https` marks the session cookie `Secure` and turns
    /// on HSTS (without it, both are on exactly when the server serves TLS itself).
    #[arg(long, env = "INVIGIL_PUBLIC_URL")]
    pub public_url: Option<PublicUrl>,

    /// Serve HTTPS and WSS with this certificate chain (PEM, the server's certificate first),
    /// with `--tls-key`; both files are read again on SIGHUP.
    #[arg(long, env = "INVIGIL_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of `--tls-cert` (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "INVIGIL_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Also serve `GET /metrics` without authentication on this address (a private network for
    /// a scraper); on the main address it answers admins only.
    #[arg(long, env = "INVIGIL_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Open connections at most, server-wide; past it new ones wait in the listen queue (default:
    /// the open-file limit less a reserve for the database and logs).
    #[arg(long, env = "INVIGIL_MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: Option<u32>,

    /// Open connections at most from one address (an IPv6 /64); past it new ones are closed at
    /// once. Exam networks are exempt; 0 means no limit.
    #[arg(
        long,
        env = "INVIGIL_MAX_CONNECTIONS_PER_ADDRESS",
        default_value_t = 1024
    )]
    pub max_connections_per_address: u32,

    /// How long a client may take to send a request's headers, in milliseconds (from the
    /// connection's start, or from the first byte of a later request on a kept-alive connection).
    #[arg(long, env = "INVIGIL_HEADER_READ_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..))]
    pub header_read_timeout_ms: u64,

    /// How long a client may take to send a request's whole body, in milliseconds.
    #[arg(long, env = "INVIGIL_BODY_READ_TIMEOUT_MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(100..))]
    pub body_read_timeout_ms: u64,

    /// How long a kept-alive connection may stay idle between requests, in milliseconds.
    #[arg(long, env = "INVIGIL_KEEP_ALIVE_TIMEOUT_MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(100..))]
    pub keep_alive_timeout_ms: u64,
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
            trusted_proxy_hops: 1,
            max_hashing: None,
            sign_in_wait_limit_ms: 10_000,
            clock_offset_ms: 0,
            exam_networks: Vec::new(),
            public_url: None,
            tls_cert: None,
            tls_key: None,
            metrics_listen: None,
            max_connections: None,
            max_connections_per_address: 1024,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 60_000,
            keep_alive_timeout_ms: 60_000,
        }
    }

    /// The hashing workers: `--max-hashing`, or one per CPU.
    pub fn hashing_workers(&self) -> usize {
        self.max_hashing.map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| n.get()),
            usize::from,
        )
    }

    /// The certificate and key files when the server serves TLS itself.
    pub fn tls(&self) -> Option<(&Path, &Path)> {
        Some((self.tls_cert.as_deref()?, self.tls_key.as_deref()?))
    }

    /// Whether people reach the server over https: as `--public-url` says, or, without one,
    /// whether the server serves TLS itself.
    pub fn https(&self) -> bool {
        self.public_url
            .as_ref()
            .map_or(self.tls().is_some(), PublicUrl::https)
    }

    /// How many proxies' `X-Forwarded-For` entries are trusted (`None`: the header is ignored).
    pub fn forwarded_hops(&self) -> Option<usize> {
        self.trust_forwarded_for
            .then_some(usize::from(self.trusted_proxy_hops))
    }
}

/// The URL the server is reached at (`--public-url`): its origin and whether it is https.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    origin: String,
    https: bool,
}

impl PublicUrl {
    /// `scheme://host[:port]`, as browsers send it in `Origin`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Whether people reach the server over TLS.
    pub fn https(&self) -> bool {
        self.https
    }
}

impl std::str::FromStr for PublicUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| {
            format!("`{s}` is not a public URL such as https://exams.example.org: {why}")
        };
        let (scheme, rest) = s.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let scheme = scheme.to_ascii_lowercase();
        let https = match scheme.as_str() {
            "https" => true,
            "http" => false,
            _ => return Err(bad("use http or https")),
        };
        let (authority, path) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
        if !(path.is_empty() || path == "/") {
            return Err(bad("give no path"));
        }
        if authority.is_empty() || authority.contains('@') {
            return Err(bad("give a host and no user"));
        }
        let authority = authority.to_ascii_lowercase();
        // The port, unless the host is a bare IPv6 address; the scheme's default is left out, as
        // browsers leave it out of `Origin`.
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') => (host, Some(port)),
            _ => (authority.as_str(), None),
        };
        if host.is_empty() {
            return Err(bad("give a host"));
        }
        let origin = match port {
            Some(p) => {
                let n: u16 = p.parse().map_err(|_| bad("the port is not a number"))?;
                if n == if https { 443 } else { 80 } {
                    format!("{scheme}://{host}")
                } else {
                    format!("{scheme}://{host}:{n}")
                }
            }
            None => format!("{scheme}://{host}"),
        };
        Ok(Self { origin, https })
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
    fn a_public_url_gives_the_origin_browsers_send() {
        let url: PublicUrl = "HTTPS://Exams.Example.org/".parse().unwrap();
        assert_eq!(url.origin(), "https://exams.example.org");
        assert!(url.https());
        let url: PublicUrl = "http://10.0.0.5:8080".parse().unwrap();
        assert_eq!(url.origin(), "http://10.0.0.5:8080");
        assert!(!url.https());
        assert_eq!(
            "https://h:443".parse::<PublicUrl>().unwrap().origin(),
            "https://h"
        );
        assert_eq!(
            "http://[::1]:8080".parse::<PublicUrl>().unwrap().origin(),
            "http://[::1]:8080"
        );
        for bad in [
            "exams.example.org",
            "ftp://h",
            "https://h/exam",
            "https://u@h",
            "https://",
            "http://h:x",
        ] {
            assert!(bad.parse::<PublicUrl>().is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_never_print() {
        let s: Secret = "admin:pw".parse().unwrap();
        assert!(!format!("{s:?}").contains("pw"));
    }
}

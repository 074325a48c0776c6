//! The servers under test as processes: invigil-server on its database, and the peers of
//! `bench/peers/` (Node `ws`, Socket.IO, Python `websockets`). Each prints the address it listens
//! on; each can be stopped (SIGTERM), killed (SIGKILL) and, for the storm, started again on the
//! same address.

use crate::wire::{Endpoint, Flavor};
use anyhow::{Context as _, Result, anyhow, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The longest a server may take to start listening.
const START_LIMIT: Duration = Duration::from_secs(60);

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// invigil-server.
    Invigil,
    /// Node.js with the `ws` package.
    NodeWs,
    /// Node.js with Socket.IO.
    SocketIo,
    /// Python with the `websockets` package.
    PythonWebsockets,
}

impl Kind {
    /// The peers, in report order.
    pub const PEERS: [Kind; 3] = [Kind::NodeWs, Kind::SocketIo, Kind::PythonWebsockets];

    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Invigil => "invigil",
            Kind::NodeWs => "node-ws",
            Kind::SocketIo => "socket.io",
            Kind::PythonWebsockets => "python-websockets",
        }
    }

    /// How it speaks.
    pub fn flavor(self) -> Flavor {
        match self {
            Kind::Invigil => Flavor::Invigil,
            Kind::NodeWs | Kind::PythonWebsockets => Flavor::Plain,
            Kind::SocketIo => Flavor::SocketIo,
        }
    }
}

/// Where the bench finds what it runs.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The workspace.
    pub root: PathBuf,
    /// The invigil-server binary.
    pub server: PathBuf,
    /// A folder for databases, token files and logs.
    pub work: PathBuf,
}

impl Paths {
    /// The peers' folder.
    pub fn peers(&self) -> PathBuf {
        self.root.join("bench").join("peers")
    }

    /// The Python interpreter of the peers' virtual environment.
    pub fn python(&self) -> PathBuf {
        self.peers().join(".venv").join("bin").join("python3")
    }

    /// Whether a peer can run here (its packages are installed).
    pub fn peer_missing(&self, kind: Kind) -> Option<String> {
        let peers = self.peers();
        let needed = match kind {
            Kind::Invigil => return None,
            Kind::NodeWs => peers.join("node_modules").join("ws"),
            Kind::SocketIo => peers.join("node_modules").join("socket.io"),
            Kind::PythonWebsockets => self.python(),
        };
        (!needed.exists()).then(|| {
            format!(
                "{} is missing: run bench/setup (npm ci and a Python virtual environment in bench/peers)",
                needed.display()
            )
        })
    }
}

/// How to start a server (again).
#[derive(Debug, Clone)]
struct Recipe {
    program: PathBuf,
    /// Arguments; `{listen}` is replaced by the address to listen on.
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
}

/// A running server.
pub struct Server {
    /// Which.
    pub kind: Kind,
    /// Where it listens.
    pub addr: SocketAddr,
    recipe: Recipe,
    child: Child,
}

/// What invigil-server runs with.
#[derive(Debug, Clone)]
pub struct InvigilOptions {
    /// `sqlite://…` or `postgres://…`.
    pub database: String,
    /// `--heartbeat-ms`.
    pub heartbeat_ms: u64,
    /// The bootstrap admin, `user:password`.
    pub admin: String,
    /// More flags.
    pub extra: Vec<String>,
}

impl Server {
    /// Starts invigil-server on a free port of 127.0.0.1.
    pub async fn invigil(paths: &Paths, options: &InvigilOptions) -> Result<Server> {
        let recipe = Recipe {
            program: paths.server.clone(),
            args: [
                "--listen",
                "{listen}",
                "--database",
                &options.database,
                "--heartbeat-ms",
                &options.heartbeat_ms.to_string(),
            ]
            .map(str::to_owned)
            .into_iter()
            .chain(options.extra.iter().cloned())
            .collect(),
            env: vec![
                ("INVIGIL_LOG".into(), "warn".into()),
                ("INVIGIL_BOOTSTRAP_ADMIN".into(), options.admin.clone()),
            ],
            log: paths.work.join("invigil-server.log"),
        };
        let server = Server::start(Kind::Invigil, recipe, "127.0.0.1:0").await?;
        server.healthy().await?;
        Ok(server)
    }

    /// Starts a peer on a free port, accepting the tokens of `tokens` (one a line) and
    /// broadcasting the contents of `payload` on `GET /broadcast`.
    pub async fn peer(paths: &Paths, kind: Kind, tokens: &Path, payload: &Path) -> Result<Server> {
        if let Some(missing) = paths.peer_missing(kind) {
            bail!("{} cannot run: {missing}", kind.name());
        }
        let peers = paths.peers();
        let (program, script) = match kind {
            Kind::Invigil => bail!("invigil is not a peer"),
            Kind::NodeWs => (PathBuf::from("node"), peers.join("node-ws.js")),
            Kind::SocketIo => (PathBuf::from("node"), peers.join("socket-io.js")),
            Kind::PythonWebsockets => (paths.python(), peers.join("python_websockets.py")),
        };
        let recipe = Recipe {
            program,
            args: vec![
                script.display().to_string(),
                "--listen".into(),
                "{listen}".into(),
                "--tokens".into(),
                tokens.display().to_string(),
                "--payload".into(),
                payload.display().to_string(),
            ],
            env: Vec::new(),
            log: paths.work.join(format!("{}.log", kind.name())),
        };
        Server::start(kind, recipe, "127.0.0.1:0").await
    }

    async fn start(kind: Kind, recipe: Recipe, listen: &str) -> Result<Server> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&recipe.log)
            .with_context(|| format!("while opening {}", recipe.log.display()))?;
        let args: Vec<String> = recipe
            .args
            .iter()
            .map(|a| a.replace("{listen}", listen))
            .collect();
        let mut child = Command::new(&recipe.program)
            .args(&args)
            .envs(recipe.env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("while starting {}", recipe.program.display()))?;
        let stdout = child.stdout.take().context("the server's stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let addr = tokio::time::timeout(START_LIMIT, async {
            while let Some(line) = lines.next_line().await? {
                if let Some(addr) = listening_address(&line) {
                    return Ok(addr);
                }
            }
            Err(anyhow!(
                "{} stopped before listening; see {}",
                kind.name(),
                recipe.log.display()
            ))
        })
        .await
        .map_err(|_| anyhow!("{} did not start listening", kind.name()))??;
        // Whatever else it prints must not fill the pipe and stall it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Server {
            kind,
            addr,
            recipe,
            child,
        })
    }

    /// Waits until `/healthz` answers 200.
    pub async fn healthy(&self) -> Result<()> {
        let client = reqwest::Client::new();
        let url = format!("http://{}/healthz", self.addr);
        for _ in 0..600 {
            if let Ok(r) = client.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        bail!("{} never answered /healthz", self.kind.name())
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// How workers reach it.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            flavor: self.kind.flavor(),
            addr: self.addr,
        }
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Kills it with SIGKILL, as a crash or a power cut would, and reaps it.
    pub async fn kill(&mut self) -> Result<()> {
        kill(Pid::from_raw(self.pid() as i32), Signal::SIGKILL)?;
        self.child.wait().await?;
        Ok(())
    }

    /// Starts it again on the same address (after [`Server::kill`]).
    pub async fn restart(&mut self) -> Result<()> {
        let again = Server::start(self.kind, self.recipe.clone(), &self.addr.to_string()).await?;
        *self = again;
        Ok(())
    }

    /// Stops it with SIGTERM (SIGKILL after 30 s).
    pub async fn stop(mut self) -> Result<()> {
        if let Some(pid) = self.child.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
            if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
                .await
                .is_err()
            {
                self.kill().await?;
            }
        }
        Ok(())
    }
}

/// The address in a line such as `invigil-server listening on http://127.0.0.1:8080` or
/// `listening on 127.0.0.1:8080`.
fn listening_address(line: &str) -> Option<SocketAddr> {
    let (_, rest) = line.split_once("listening on ")?;
    let rest = rest.trim().trim_start_matches("http://");
    rest.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listening_line_names_the_address() {
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(
            listening_address("invigil-server listening on http://127.0.0.1:8080"),
            Some(addr)
        );
        assert_eq!(
            listening_address("node-ws listening on 127.0.0.1:8080"),
            Some(addr)
        );
        assert_eq!(listening_address("starting"), None);
    }
}

//! The conductor's side of the worker processes: spawn them (this same binary, `worker`), give each
//! a share of the students and a source address of its own, send every one a command and gather
//! their replies.
//!
//! One process may hold at most 20,000 open files, and one source address has about 28,000
//! ephemeral ports towards one server port: [`STUDENTS_PER_WORKER`] keeps each worker well under
//! both, and worker `i` binds its sockets to 127.0.0.(10 + i).

use crate::wire::{Command, Credential, Endpoint, Reply, Traffic};
use anyhow::{Context as _, Result, bail};
use std::net::{IpAddr, Ipv4Addr};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command as Process};

/// The most students one worker plays.
pub const STUDENTS_PER_WORKER: usize = 5000;
/// Handshakes in flight across the whole fleet while a crowd connects: on two cores, 10,000
/// connects at once overflowed a listen queue of 4096 (thousands of SYNs dropped and retried a
/// second later), while 64 at a time connected 10,000 students in about a second.
pub const CONNECTS_IN_FLIGHT: usize = 64;

struct Worker {
    child: Child,
    stdin: ChildStdin,
    replies: Lines<BufReader<ChildStdout>>,
    source: IpAddr,
}

/// A set of worker processes.
pub struct Fleet {
    workers: Vec<Worker>,
}

/// How many workers `students` need.
pub fn workers_for(students: usize) -> usize {
    students.div_ceil(STUDENTS_PER_WORKER).max(1)
}

impl Fleet {
    /// Spawns `count` workers.
    pub fn spawn(count: usize) -> Result<Fleet> {
        let exe = std::env::current_exe().context("while finding the bench's own binary")?;
        let workers = (0..count)
            .map(|i| {
                let mut child = Process::new(&exe)
                    .arg("worker")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .kill_on_drop(true)
                    .spawn()
                    .context("while starting a worker")?;
                let stdin = child.stdin.take().context("a worker's stdin")?;
                let stdout = child.stdout.take().context("a worker's stdout")?;
                Ok(Worker {
                    child,
                    stdin,
                    replies: BufReader::new(stdout).lines(),
                    source: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 10 + i as u8)),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Fleet { workers })
    }

    /// The workers' process ids (their CPU time is the generator's).
    pub fn pids(&self) -> Vec<u32> {
        self.workers.iter().filter_map(|w| w.child.id()).collect()
    }

    /// Number of workers.
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// Sends each worker its command (built from its index and source address), then reads every
    /// reply; a worker's `Failed` reply is an error.
    pub async fn ask(
        &mut self,
        mut command: impl FnMut(usize, IpAddr) -> Command,
    ) -> Result<Vec<Reply>> {
        for (i, w) in self.workers.iter_mut().enumerate() {
            let mut line = serde_json::to_string(&command(i, w.source))?;
            line.push('\n');
            w.stdin
                .write_all(line.as_bytes())
                .await
                .context("while sending a command to a worker")?;
            w.stdin.flush().await?;
        }
        let mut replies = Vec::with_capacity(self.workers.len());
        for w in &mut self.workers {
            let line = w
                .replies
                .next_line()
                .await
                .context("while reading a worker's reply")?
                .context("a worker stopped")?;
            let reply: Reply = serde_json::from_str(&line)
                .with_context(|| format!("a worker's reply is not one: {line}"))?;
            if let Reply::Failed { message } = &reply {
                bail!("a worker failed: {message}");
            }
            replies.push(reply);
        }
        Ok(replies)
    }

    /// Sends every worker the same command.
    pub async fn ask_all(&mut self, command: Command) -> Result<Vec<Reply>> {
        self.ask(|_, _| command.clone()).await
    }

    /// Connects `students` to `endpoint`, split over the workers; the number of sockets ready.
    pub async fn connect(
        &mut self,
        endpoint: &Endpoint,
        students: &[Credential],
        heartbeat_ms: u64,
    ) -> Result<usize> {
        let shares = split(students, self.workers.len());
        let in_flight = (CONNECTS_IN_FLIGHT / self.workers.len()).max(1);
        let replies = self
            .ask(|i, source| Command::Connect {
                endpoint: endpoint.clone(),
                source,
                students: shares[i].to_vec(),
                heartbeat_ms,
                in_flight,
            })
            .await?;
        let (mut ready, mut failed, mut error) = (0, 0, None);
        for reply in replies {
            if let Reply::Connected {
                ready: r,
                failed: f,
                first_error,
            } = reply
            {
                ready += r;
                failed += f;
                error = error.or(first_error);
            }
        }
        if failed > 0 {
            bail!(
                "{failed} of {} sockets could not be opened; the first because: {}",
                students.len(),
                error.unwrap_or_default()
            );
        }
        Ok(ready)
    }

    /// The traffic all workers counted so far.
    pub async fn traffic(&mut self) -> Result<Traffic> {
        let mut total = Traffic::default();
        for reply in self.ask_all(Command::Counters).await? {
            if let Reply::Counters(t) = reply {
                total = total.plus(t);
            }
        }
        Ok(total)
    }

    /// Closes every socket.
    pub async fn disconnect(&mut self) -> Result<()> {
        self.ask_all(Command::Disconnect).await.map(|_| ())
    }

    /// Ends the workers: their stdin closes, they close their sockets and exit.
    pub async fn finish(self) {
        for mut w in self.workers {
            drop(w.stdin);
            let _ = w.child.wait().await;
        }
    }
}

/// `items` in `parts` nearly equal consecutive shares.
pub fn split<T>(items: &[T], parts: usize) -> Vec<&[T]> {
    let parts = parts.max(1);
    let base = items.len() / parts;
    let extra = items.len() % parts;
    let mut shares = Vec::with_capacity(parts);
    let mut start = 0;
    for i in 0..parts {
        let len = base + usize::from(i < extra);
        shares.push(&items[start..start + len]);
        start += len;
    }
    shares
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_consecutive_and_nearly_equal() {
        let items: Vec<u32> = (0..10).collect();
        let shares = split(&items, 3);
        assert_eq!(shares, vec![&items[0..4], &items[4..7], &items[7..10]]);
        assert_eq!(split(&items[..0], 2), vec![&[] as &[u32], &[]]);
    }

    #[test]
    fn a_worker_plays_at_most_five_thousand_students() {
        assert_eq!(workers_for(1), 1);
        assert_eq!(workers_for(5000), 1);
        assert_eq!(workers_for(5001), 2);
        assert_eq!(workers_for(19_500), 4);
    }
}

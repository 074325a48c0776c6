//! What a run measured (`results.json`, which `bench/plot.py` also reads) and its Markdown report:
//! one table per scenario, medians over the runs, and invigil's ratios to each peer.

use crate::stats::{Spread, median};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// Everything one `invigil-bench run` measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Results {
    /// `smoke`, `quick` or `full`.
    pub mode: String,
    /// When the run started (RFC 3339).
    pub started_at: String,
    /// The machine.
    pub machine: Machine,
    /// Students signed in for the run, and how long their sign-ins took.
    pub sign_ins: SignIns,
    /// Sockets held and the server's memory and CPU while idle.
    pub idle: Vec<IdleRow>,
    /// A phase change reaching every socket.
    pub fanout: Vec<FanoutRow>,
    /// Students saving as fast as acknowledgements allow.
    pub answers: Vec<AnswersRow>,
    /// The server killed and started again under a connected crowd.
    pub storm: Vec<StormRow>,
    /// A sign-in elsewhere until `SESSION_INVALIDATED`.
    pub invalidation: Vec<InvalidationRun>,
    /// The same crowd polling every second against our push.
    pub polling: Vec<PollingRow>,
    /// A room signing in at once while sockets are held, then a hostile wave.
    #[serde(default)]
    pub burst: Vec<BurstRow>,
    /// What was not measured, and why.
    pub skipped: Vec<String>,
}

/// The machine a run was on.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Machine {
    /// CPU model.
    pub cpu: String,
    /// Logical CPUs.
    pub cpus: usize,
    /// Memory in GiB.
    pub memory_gib: f64,
    /// Kernel release.
    pub kernel: String,
    /// Node.js version (the JavaScript peers).
    pub node: String,
    /// Python version (the Python peer).
    pub python: String,
}

/// The sign-ins of a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SignIns {
    /// Students signed in.
    pub students: usize,
    /// Seconds all of them took.
    pub seconds: f64,
}

/// One sign-in burst, and the hostile wave after it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BurstRun {
    /// Sockets held meanwhile.
    pub background: usize,
    /// Students signing in at once.
    pub students: usize,
    /// Seconds until every one was signed in.
    pub all_in_s: f64,
    /// `server_busy` answers they were given (each came back after its `Retry-After`).
    pub busy_answers: u64,
    /// Sign-ins that failed otherwise.
    pub failed: usize,
    /// Server resident memory before the burst, with the sockets held, bytes.
    pub rss_idle: u64,
    /// Peak resident memory during the burst (`VmHWM`), bytes.
    pub peak: u64,
    /// Resident memory ten seconds after the last sign-in, bytes.
    pub settled: u64,
    /// How late the held sockets' heartbeats came, until then.
    pub heartbeat_late: Spread,
    /// Held sockets lost meanwhile.
    pub lost: u64,
    /// The hostile wave.
    pub hostile: HostileRun,
}

/// Bad sign-ins of unknown names from many addresses at once.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HostileRun {
    /// Attempts.
    pub attempts: usize,
    /// From how many addresses.
    pub addresses: usize,
    /// Spread over how many seconds.
    pub seconds: f64,
    /// Answers by HTTP status (0: none).
    pub answered: std::collections::BTreeMap<u16, usize>,
    /// Resident memory before, bytes.
    pub rss_before: u64,
    /// Peak resident memory during the wave, bytes.
    pub peak: u64,
    /// Resident memory ten seconds after the last answer, bytes.
    pub settled: u64,
    /// How late the held sockets' heartbeats came meanwhile.
    pub heartbeat_late: Spread,
    /// Held sockets lost meanwhile.
    pub lost: u64,
}

/// Bursts of one size.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BurstRow {
    /// Students signing in at once.
    pub students: usize,
    /// Sockets held meanwhile.
    pub background: usize,
    /// One per run.
    pub runs: Vec<BurstRun>,
}

/// One idle measurement.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IdleRun {
    /// Sockets ready.
    pub sockets: usize,
    /// Seconds to connect them all.
    pub connect_s: f64,
    /// Server resident memory before any socket, bytes.
    pub rss_before: u64,
    /// Server resident memory with every socket held, bytes.
    pub rss_after: u64,
    /// Open files of the server with every socket held.
    pub open_files: usize,
    /// Server CPU while idle, percent of one core.
    pub cpu_percent: f64,
}

impl IdleRun {
    /// Server memory per socket, bytes.
    pub fn per_socket(&self) -> f64 {
        (self.rss_after.saturating_sub(self.rss_before)) as f64 / self.sockets.max(1) as f64
    }
}

/// Idle measurements of one server at one size.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IdleRow {
    /// The server.
    pub target: String,
    /// Students.
    pub students: usize,
    /// One per run.
    pub runs: Vec<IdleRun>,
}

/// Fan-outs of one server at one size.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FanoutRow {
    /// The server.
    pub target: String,
    /// Students.
    pub students: usize,
    /// One per phase change: the latency from the trigger to each socket's receipt.
    pub changes: Vec<Spread>,
    /// Sockets that never received a change.
    pub missing: usize,
    /// Per change, the server's CPU time from the trigger to the last receipt, ms.
    #[serde(default)]
    pub server_cpu_ms: Vec<f64>,
    /// Per change, the generator's CPU time over the same span, ms.
    #[serde(default)]
    pub generator_cpu_ms: Vec<f64>,
}

impl FanoutRow {
    /// Medians over the changes of p50, p99 and max.
    pub fn medians(&self) -> (f64, f64, f64) {
        let of = |f: fn(&Spread) -> f64| median(&self.changes.iter().map(f).collect::<Vec<_>>());
        (of(|s| s.p50), of(|s| s.p99), of(|s| s.max))
    }
}

/// One answers measurement.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AnswersRun {
    /// Acknowledgements per second.
    pub acks_per_s: f64,
    /// Time from sending a save to its acknowledgement.
    pub latency: Spread,
    /// Saves refused or acknowledged with another revision.
    pub refused: u64,
    /// Students whose loop broke.
    pub broken: u64,
    /// Server CPU, percent of one core.
    pub server_cpu_percent: f64,
    /// The generator's CPU, percent of one core.
    pub generator_cpu_percent: f64,
}

/// Answers measurements of one engine and number of writers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AnswersRow {
    /// `sqlite` or `postgres`.
    pub engine: String,
    /// Students saving at once.
    pub writers: usize,
    /// One per run.
    pub runs: Vec<AnswersRun>,
}

/// One storm.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StormRun {
    /// From the kill until the new server process answered `/healthz`, ms.
    pub restart_ms: f64,
    /// From the kill until the last socket was back with its snapshot, ms.
    pub all_back_after_kill_ms: f64,
    /// From `/healthz` answering until the last socket was back, ms.
    pub all_back_after_restart_ms: f64,
    /// Median socket back after the kill, ms.
    pub median_back_after_kill_ms: f64,
    /// Sockets not back at the end.
    pub not_back: usize,
    /// `ListenOverflows` during the storm.
    pub listen_overflows: u64,
    /// `ListenDrops` during the storm.
    pub listen_drops: u64,
    /// Saves sent around the kill.
    pub saves: usize,
    /// Saves the server acknowledged before it was killed or after, that it does not have.
    pub lost: usize,
}

/// Storms of one size.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StormRow {
    /// Students connected.
    pub students: usize,
    /// One per run.
    pub runs: Vec<StormRun>,
}

/// One series of invalidations.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct InvalidationRun {
    /// Other students connected meanwhile.
    pub background: usize,
    /// From sending the new sign-in to `SESSION_INVALIDATED` on the old socket.
    pub latency: Spread,
    /// The sign-in request alone (argon2id included).
    pub sign_in: Spread,
}

/// What a crowd costs the server over a window.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Cost {
    /// Server CPU seconds.
    pub cpu_s: f64,
    /// Bytes both ways.
    pub bytes: u64,
    /// Requests or frames, both ways.
    pub messages: u64,
    /// Changes the students learnt of.
    pub changes: usize,
}

/// One comparison of polling and push.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PollingRun {
    /// Seconds measured.
    pub window_s: f64,
    /// Students holding a socket.
    pub push: Cost,
    /// The same students polling once a second.
    pub poll: Cost,
    /// Polls that failed.
    pub poll_failures: u64,
    /// Time to answer a poll.
    pub poll_latency: Spread,
}

/// Polling comparisons at one size.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PollingRow {
    /// Students.
    pub students: usize,
    /// One per run.
    pub runs: Vec<PollingRun>,
}

fn med(values: impl Iterator<Item = f64>) -> f64 {
    median(&values.collect::<Vec<_>>())
}

fn kb(bytes: f64) -> String {
    format!("{:.1} KB", bytes / 1000.0)
}

fn ratio(ours: f64, theirs: f64) -> String {
    if ours <= 0.0 {
        "—".into()
    } else {
        format!("{:.1}×", theirs / ours)
    }
}

impl Results {
    /// The Markdown report.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let m = &self.machine;
        let _ = writeln!(
            md,
            "Mode `{}`, started {}, on {} ({} logical CPUs, {:.0} GiB, Linux {}; Node.js {}, Python {}). \
             {} students signed in through `POST /api/login` in {:.0} s.\n",
            self.mode,
            self.started_at,
            m.cpu,
            m.cpus,
            m.memory_gib,
            m.kernel,
            m.node,
            m.python,
            self.sign_ins.students,
            self.sign_ins.seconds
        );
        self.idle_table(&mut md);
        self.fanout_table(&mut md);
        self.answers_table(&mut md);
        self.storm_table(&mut md);
        self.invalidation_table(&mut md);
        self.polling_table(&mut md);
        self.burst_table(&mut md);
        if !self.skipped.is_empty() {
            let _ = writeln!(md, "### Not measured\n");
            for s in &self.skipped {
                let _ = writeln!(md, "- {s}");
            }
            md.push('\n');
        }
        md
    }

    fn burst_table(&self, md: &mut String) {
        if self.burst.is_empty() {
            return;
        }
        let mb = |bytes: f64| bytes / 1e6;
        let _ = writeln!(
            md,
            "### Sign-in burst\n\nEvery student of the room signs in at once while the crowd holds its sockets; one answered `server_busy` comes back after its `Retry-After` plus up to half as much again. Memory is the server's above its resident memory just before (peak: `VmHWM`, reset first; settled: ten seconds after the last sign-in). Heartbeat lateness: how much later than one period after a socket's previous `HEARTBEAT` each came. Medians of the runs.\n\n\
             | students | sockets held | all in (s) | server_busy answers | failed | peak above idle | settled above idle | heartbeat late p50 / p99 / max (ms) | sockets lost |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for row in &self.burst {
            let r = &row.runs;
            let late = Spread::median_run(&r.iter().map(|x| x.heartbeat_late).collect::<Vec<_>>())
                .unwrap_or_default();
            let _ = writeln!(
                md,
                "| {} | {} | {:.1} | {:.0} | {:.0} | {:.0} MB | {:.0} MB | {:.0} / {:.0} / {:.0} | {} |",
                row.students,
                row.background,
                med(r.iter().map(|x| x.all_in_s)),
                med(r.iter().map(|x| x.busy_answers as f64)),
                med(r.iter().map(|x| x.failed as f64)),
                mb(med(r
                    .iter()
                    .map(|x| x.peak.saturating_sub(x.rss_idle) as f64))),
                mb(med(r
                    .iter()
                    .map(|x| x.settled.saturating_sub(x.rss_idle) as f64))),
                late.p50,
                late.p99,
                late.max,
                r.iter().map(|x| x.lost).sum::<u64>(),
            );
        }
        let _ = writeln!(
            md,
            "\nThen the hostile wave: sign-ins of unknown names with wrong passwords, spread evenly, from addresses outside the exam network, the crowd still connected.\n\n\
             | attempts | addresses | seconds | answers (status × count) | peak above before | settled above before | heartbeat late p99 (ms) | sockets lost |\n|---:|---:|---:|---|---:|---:|---:|---:|"
        );
        for row in &self.burst {
            for run in &row.runs {
                let h = &run.hostile;
                let answers: Vec<String> = h
                    .answered
                    .iter()
                    .map(|(s, n)| format!("{s} × {n}"))
                    .collect();
                let _ = writeln!(
                    md,
                    "| {} | {} | {:.0} | {} | {:.0} MB | {:.0} MB | {:.0} | {} |",
                    h.attempts,
                    h.addresses,
                    h.seconds,
                    answers.join(", "),
                    mb(h.peak.saturating_sub(h.rss_before) as f64),
                    mb(h.settled.saturating_sub(h.rss_before) as f64),
                    h.heartbeat_late.p99,
                    h.lost,
                );
            }
        }
        md.push('\n');
    }

    fn ours<T>(rows: &[T], students: usize, f: impl Fn(&T) -> (&str, usize)) -> Option<&T> {
        rows.iter().find(|r| f(r) == ("invigil", students))
    }

    fn idle_table(&self, md: &mut String) {
        if self.idle.is_empty() {
            return;
        }
        let _ = writeln!(
            md,
            "### Idle sockets\n\nMedians of {} run(s). Memory per socket is the server's resident memory with every socket held, minus before the first, divided by the sockets.\n\n\
             | server | students | sockets held | connect (s) | memory / socket | server RSS | CPU idle | open files | memory ratio (peer / invigil) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|",
            self.idle.iter().map(|r| r.runs.len()).max().unwrap_or(0)
        );
        for row in &self.idle {
            let per = med(row.runs.iter().map(IdleRun::per_socket));
            let ours = Self::ours(&self.idle, row.students, |r| {
                (r.target.as_str(), r.students)
            })
            .map(|o| med(o.runs.iter().map(IdleRun::per_socket)));
            let _ = writeln!(
                md,
                "| {} | {} | {:.0} | {:.1} | {} | {:.0} MB | {:.1}% | {:.0} | {} |",
                row.target,
                row.students,
                med(row.runs.iter().map(|r| r.sockets as f64)),
                med(row.runs.iter().map(|r| r.connect_s)),
                kb(per),
                med(row.runs.iter().map(|r| r.rss_after as f64)) / 1e6,
                med(row.runs.iter().map(|r| r.cpu_percent)),
                med(row.runs.iter().map(|r| r.open_files as f64)),
                match ours {
                    Some(o) if row.target != "invigil" => ratio(o, per),
                    _ => "—".into(),
                }
            );
        }
        md.push('\n');
    }

    fn fanout_table(&self, md: &mut String) {
        if self.fanout.is_empty() {
            return;
        }
        let _ = writeln!(
            md,
            "### Fan-out\n\nFrom the trigger (invigil: `POST /api/evaluations/{{id}}/phase`; a peer: `GET /broadcast`) to each socket's receipt of the update, in ms: medians over every change of every run.\n\n\
             | server | students | changes | p50 | p99 | max (last receipt) | missing | server CPU / change | generator CPU / change | p99 ratio (peer / invigil) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for row in &self.fanout {
            let (p50, p99, max) = row.medians();
            let ours = Self::ours(&self.fanout, row.students, |r| {
                (r.target.as_str(), r.students)
            })
            .map(|o| o.medians().1);
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {} | {:.1} ms | {:.1} ms | {} |",
                row.target,
                row.students,
                row.changes.len(),
                p50,
                p99,
                max,
                row.missing,
                median(&row.server_cpu_ms),
                median(&row.generator_cpu_ms),
                match ours {
                    Some(o) if row.target != "invigil" => ratio(o, p99),
                    _ => "—".into(),
                }
            );
        }
        md.push('\n');
    }

    fn answers_table(&self, md: &mut String) {
        if self.answers.is_empty() {
            return;
        }
        let _ = writeln!(
            md,
            "### Durable answers\n\nEvery writer keeps one save in flight and sends the next when its `ANSWER_ACK` arrives; acknowledged means committed (SQLite: WAL, `synchronous=FULL`; PostgreSQL: `synchronous_commit=on`). Medians of the runs.\n\n\
             | engine | writers | acks/s | ack p50 (ms) | ack p99 (ms) | refused | broken | server CPU | generator CPU |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for row in &self.answers {
            let r = &row.runs;
            let _ = writeln!(
                md,
                "| {} | {} | {:.0} | {:.1} | {:.1} | {:.0} | {:.0} | {:.0}% | {:.0}% |",
                row.engine,
                row.writers,
                med(r.iter().map(|x| x.acks_per_s)),
                med(r.iter().map(|x| x.latency.p50)),
                med(r.iter().map(|x| x.latency.p99)),
                med(r.iter().map(|x| x.refused as f64)),
                med(r.iter().map(|x| x.broken as f64)),
                med(r.iter().map(|x| x.server_cpu_percent)),
                med(r.iter().map(|x| x.generator_cpu_percent)),
            );
        }
        md.push('\n');
    }

    fn storm_table(&self, md: &mut String) {
        if self.storm.is_empty() {
            return;
        }
        let _ = writeln!(
            md,
            "### Reconnection storm\n\nEvery student sends a save, the server is killed (SIGKILL) and started again; the students come back as the desktop app does (full-jitter backoff from 0.5 s) and resend what was not acknowledged. Medians of the runs; times in ms.\n\n\
             | students | restart | all back after kill | all back after restart | median back | not back | listen overflows | listen drops | saves | lost |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for row in &self.storm {
            let r = &row.runs;
            let _ = writeln!(
                md,
                "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {} |",
                row.students,
                med(r.iter().map(|x| x.restart_ms)),
                med(r.iter().map(|x| x.all_back_after_kill_ms)),
                med(r.iter().map(|x| x.all_back_after_restart_ms)),
                med(r.iter().map(|x| x.median_back_after_kill_ms)),
                med(r.iter().map(|x| x.not_back as f64)),
                med(r.iter().map(|x| x.listen_overflows as f64)),
                med(r.iter().map(|x| x.listen_drops as f64)),
                med(r.iter().map(|x| x.saves as f64)),
                r.iter().map(|x| x.lost).sum::<usize>(),
            );
        }
        let _ = writeln!(md, "\n`lost` is the sum over every run.\n");
    }

    fn invalidation_table(&self, md: &mut String) {
        if self.invalidation.is_empty() {
            return;
        }
        let _ = writeln!(
            md,
            "### Invalidation\n\nA student holds a socket; the same student signs in again; measured until the old socket reads `SESSION_INVALIDATED`. Times in ms.\n\n\
             | other sockets connected | samples | p50 | p99 | max | sign-in alone p50 | sign-in p99 |\n|---:|---:|---:|---:|---:|---:|---:|"
        );
        for run in &self.invalidation {
            let _ = writeln!(
                md,
                "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
                run.background,
                run.latency.count,
                run.latency.p50,
                run.latency.p99,
                run.latency.max,
                run.sign_in.p50,
                run.sign_in.p99
            );
        }
        md.push('\n');
    }

    fn polling_table(&self, md: &mut String) {
        if self.polling.is_empty() {
            return;
        }
        let _ = writeln!(
            md,
            "### Push against 1 Hz polling\n\nThe same students for the same window with the same changes: holding invigil's socket (heartbeats every 5 s both ways, every change pushed), or fetching `GET /api/evaluations/{{id}}` once a second over keep-alive HTTP/1.1. Server CPU from `/proc`; bytes and messages counted at the clients' TCP streams. Medians of the runs.\n\n\
             | students | window (s) | changes | push CPU (s) | poll CPU (s) | CPU ratio | push bytes | poll bytes | bytes ratio | push frames | poll requests + responses | messages ratio |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for row in &self.polling {
            let r = &row.runs;
            let push_cpu = med(r.iter().map(|x| x.push.cpu_s));
            let poll_cpu = med(r.iter().map(|x| x.poll.cpu_s));
            let push_bytes = med(r.iter().map(|x| x.push.bytes as f64));
            let poll_bytes = med(r.iter().map(|x| x.poll.bytes as f64));
            let push_msgs = med(r.iter().map(|x| x.push.messages as f64));
            let poll_msgs = med(r.iter().map(|x| x.poll.messages as f64));
            let _ = writeln!(
                md,
                "| {} | {:.0} | {:.0} | {:.2} | {:.2} | {} | {:.1} MB | {:.1} MB | {} | {:.0} | {:.0} | {} |",
                row.students,
                med(r.iter().map(|x| x.window_s)),
                med(r.iter().map(|x| x.push.changes as f64)),
                push_cpu,
                poll_cpu,
                ratio(push_cpu, poll_cpu),
                push_bytes / 1e6,
                poll_bytes / 1e6,
                ratio(push_bytes, poll_bytes),
                push_msgs,
                poll_msgs,
                ratio(push_msgs, poll_msgs),
            );
        }
        md.push('\n');
    }
}

//! The conductor: prepares the people of a run, then plays each scenario against each server and
//! writes what it measured.
//!
//! Every scenario starts its server afresh on the run's database (sessions survive restarts, so the
//! students' tokens stay good) and spawns its own workers, so that one scenario's leftovers never
//! weigh on the next.

use crate::clock::now_ns;
use crate::fleet::{Fleet, workers_for};
use crate::procfs;
use crate::report::{
    AnswersRow, AnswersRun, BurstRow, BurstRun, Cost, FanoutRow, HostileRun, IdleRow, IdleRun,
    InvalidationRun, Machine, PollingRow, PollingRun, Results, SignIns, StormRow, StormRun,
};
use crate::seed::{self, Api, PROFESSOR};
use crate::servers::{InvigilOptions, Kind, Paths, Server};
use crate::stats::{Spread, median};
use crate::student;
use crate::wire::{Command, Credential, Reply};
use anyhow::{Context as _, Result, bail};
use clap::ValueEnum;
use invigil_protocol::{Participation, ParticipationStatus, ServerMessage, UpdateReason};
use serde_json::json;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How much to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// A few dozen students, one run of everything: checks that every scenario works (CI).
    Smoke,
    /// Up to 5,000 students, one run: under five minutes.
    Quick,
    /// Up to 19,500 students, three runs of everything: the numbers of BENCHMARKS.md.
    Full,
}

/// The sizes and durations of a mode.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Students for the idle and fan-out scenarios.
    pub sizes: Vec<usize>,
    /// Runs of each scenario.
    pub runs: usize,
    /// Phase changes per fan-out measurement.
    pub changes: usize,
    /// Seconds of idle CPU measured.
    pub idle_window_s: u64,
    /// Writers of the answers scenario.
    pub writers: Vec<usize>,
    /// Seconds of saving measured (after 2 s of warm-up).
    pub answers_s: u64,
    /// Students in the storm.
    pub storm: usize,
    /// Invalidations measured per run.
    pub invalidations: usize,
    /// Students of the polling comparison.
    pub pollers: usize,
    /// Seconds of each side of the polling comparison.
    pub poll_s: u64,
    /// The heartbeat of every server and client.
    pub heartbeat_ms: u64,
    /// Sockets held while the burst signs in.
    pub burst_background: usize,
    /// Students signing in at once in the burst.
    pub burst: usize,
    /// Bad sign-ins of the hostile wave, from how many addresses, over how many seconds.
    pub hostile: (usize, usize, u64),
}

impl Plan {
    /// The plan of a mode.
    pub fn of(mode: Mode) -> Plan {
        match mode {
            Mode::Smoke => Plan {
                sizes: vec![40],
                runs: 1,
                changes: 2,
                idle_window_s: 1,
                writers: vec![10],
                answers_s: 1,
                storm: 40,
                invalidations: 5,
                pollers: 20,
                poll_s: 3,
                heartbeat_ms: 1000,
                burst_background: 40,
                burst: 30,
                hostile: (200, 10, 1),
            },
            Mode::Quick => Plan {
                sizes: vec![1000, 5000],
                runs: 1,
                changes: 5,
                idle_window_s: 5,
                writers: vec![1000],
                answers_s: 5,
                storm: 5000,
                invalidations: 50,
                pollers: 1000,
                poll_s: 10,
                heartbeat_ms: 5000,
                burst_background: 5000,
                burst: 1000,
                hostile: (10_000, 100, 10),
            },
            Mode::Full => Plan {
                sizes: vec![1000, 5000, 10_000, 19_500],
                runs: 3,
                changes: 10,
                idle_window_s: 10,
                writers: vec![64, 1000],
                answers_s: 10,
                storm: 10_000,
                invalidations: 200,
                pollers: 2000,
                poll_s: 20,
                heartbeat_ms: 5000,
                burst_background: 5000,
                burst: 1000,
                hostile: (10_000, 100, 10),
            },
        }
    }

    fn students(&self) -> usize {
        let largest = self.sizes.iter().copied().max().unwrap_or(0);
        let writers = self.writers.iter().copied().max().unwrap_or(0);
        largest
            .max(writers)
            .max(self.storm)
            .max(self.pollers)
            .max(self.burst_background)
    }

    fn joined(&self) -> usize {
        self.writers
            .iter()
            .copied()
            .max()
            .unwrap_or(0)
            .max(self.storm)
    }
}

/// Which scenarios to play.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
pub enum Scenario {
    /// Idle sockets (and, on the same crowd, fan-out and invalidation).
    Idle,
    /// Durable answers.
    Answers,
    /// The reconnection storm.
    Storm,
    /// Polling against push.
    Polling,
    /// A room signing in at once while sockets are held, then a hostile wave of bad sign-ins.
    Burst,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// How much.
    pub mode: Mode,
    /// Which scenarios (all when empty).
    pub scenarios: Vec<Scenario>,
    /// Which servers the idle and fan-out scenarios compare.
    pub targets: Vec<Kind>,
    /// The sizes of the idle and fan-out scenarios, instead of the mode's (when not empty).
    pub sizes: Vec<usize>,
    /// Phase changes per fan-out measurement, instead of the mode's.
    pub changes: Option<usize>,
    /// Students in the storm, instead of the mode's.
    pub storm: Option<usize>,
    /// The PostgreSQL server for the answers scenario on PostgreSQL (a database is created on it
    /// and dropped after), if any.
    pub postgres: Option<String>,
    /// Where files go.
    pub paths: Paths,
}

/// The people and evaluations of a run, on its SQLite database.
struct People {
    database: String,
    professor: String,
    /// Students for every scenario; the first `plan.joined()` have joined `answers`.
    students: Vec<Credential>,
    /// Students who sign in again to measure invalidation (never in an exam: a second sign-in
    /// during one would block them).
    others: Vec<Credential>,
    /// Students who have not signed in yet: the burst's.
    burst: Vec<String>,
    fanout: String,
    answers: String,
    tokens_file: PathBuf,
    payload_file: PathBuf,
}

struct Conductor {
    options: Options,
    plan: Plan,
    results: Results,
    /// Fan-outs measured so far, to tell each one's receipts from the last's.
    generation: u64,
    /// Whether the fan-out evaluation is in `grading` (each invigil change flips it).
    grading: bool,
    /// Revisions rise across the whole run: each loop or storm starts above the last.
    revision_base: u64,
}

/// Plays the scenarios and writes `results.json` and `report.md` into the work folder.
pub async fn run(options: Options) -> Result<Results> {
    let mut plan = Plan::of(options.mode);
    if !options.sizes.is_empty() {
        plan.sizes = options.sizes.clone();
    }
    if let Some(changes) = options.changes {
        plan.changes = changes;
    }
    if let Some(storm) = options.storm {
        plan.storm = storm;
    }
    std::fs::create_dir_all(&options.paths.work)?;
    let mut conductor = Conductor {
        results: Results {
            mode: format!("{:?}", options.mode).to_lowercase(),
            started_at: invigil_protocol::Timestamp::now().to_string(),
            machine: machine(&options.paths),
            ..Results::default()
        },
        options,
        plan,
        generation: 0,
        grading: false,
        revision_base: 0,
    };
    let wanted = |s: Scenario| {
        conductor.options.scenarios.is_empty() || conductor.options.scenarios.contains(&s)
    };
    let (idle, answers, storm, polling, burst) = (
        wanted(Scenario::Idle),
        wanted(Scenario::Answers),
        wanted(Scenario::Storm),
        wanted(Scenario::Polling),
        wanted(Scenario::Burst),
    );
    let mut people = conductor.people().await?;
    for kind in conductor.options.targets.clone() {
        if let Some(missing) = conductor.options.paths.peer_missing(kind) {
            conductor
                .results
                .skipped
                .push(format!("{}: {missing}", kind.name()));
        }
    }
    for run in 0..conductor.plan.runs {
        eprintln!("bench: run {} of {}", run + 1, conductor.plan.runs);
        if idle {
            for &n in &conductor.plan.sizes.clone() {
                for kind in conductor.options.targets.clone() {
                    if conductor.options.paths.peer_missing(kind).is_some() {
                        continue;
                    }
                    conductor
                        .idle(&mut people, kind, n)
                        .await
                        .with_context(|| {
                            format!("while measuring {} with {n} students", kind.name())
                        })?;
                }
            }
        }
        if answers {
            for &writers in &conductor.plan.writers.clone() {
                conductor
                    .answers(&people, writers)
                    .await
                    .with_context(|| format!("while measuring {writers} writers on SQLite"))?;
            }
        }
        if storm {
            conductor
                .storm(&people)
                .await
                .context("while measuring the storm")?;
        }
        if polling {
            conductor
                .polling(&people)
                .await
                .context("while comparing polling and push")?;
        }
        if burst {
            conductor
                .burst(&people)
                .await
                .context("while measuring the sign-in burst")?;
        }
    }
    if answers {
        match conductor.options.postgres.clone() {
            Some(url) => conductor
                .answers_on_postgres(&url)
                .await
                .context("while measuring answers on PostgreSQL")?,
            None => conductor.results.skipped.push(
                "answers on PostgreSQL: no server given (--postgres or INVIGIL_BENCH_POSTGRES_URL)"
                    .into(),
            ),
        }
    }
    let work = &conductor.options.paths.work;
    std::fs::write(
        work.join("results.json"),
        serde_json::to_string_pretty(&conductor.results)?,
    )?;
    std::fs::write(work.join("report.md"), conductor.results.markdown())?;
    Ok(conductor.results)
}

impl Conductor {
    fn invigil_options(&self, database: &str) -> InvigilOptions {
        InvigilOptions {
            database: database.to_owned(),
            heartbeat_ms: self.plan.heartbeat_ms,
            admin: seed::ADMIN.to_owned(),
            extra: Vec::new(),
        }
    }

    async fn start(&self, database: &str) -> Result<Server> {
        Server::invigil(&self.options.paths, &self.invigil_options(database)).await
    }

    /// Creates the accounts, signs everyone in, creates the evaluations and writes the peers'
    /// token and payload files.
    async fn people(&mut self) -> Result<People> {
        let paths = &self.options.paths;
        let db_path = paths.work.join("bench.db");
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db_path.display()));
        }
        let database = format!("sqlite://{}", db_path.display());
        let names: Vec<String> = (0..self.plan.students())
            .map(|i| seed::username("s", i))
            .collect();
        let other_names: Vec<String> = (0..self.plan.invalidations)
            .map(|i| seed::username("inv", i))
            .collect();
        let burst: Vec<String> = (0..self.plan.burst)
            .map(|i| seed::username("b", i))
            .collect();
        eprintln!(
            "bench: creating {} accounts",
            names.len() + other_names.len() + burst.len() + 1
        );
        seed::create_accounts(
            &database,
            &names
                .iter()
                .chain(&other_names)
                .chain(&burst)
                .cloned()
                .collect::<Vec<_>>(),
        )
        .await?;
        let server = self.start(&database).await?;
        let api = Api::new(&server.url());
        let professor = api.login(PROFESSOR).await?;
        let fanout = api.running_evaluation(&professor, "Fan-out", 1).await?;
        let answers = api.running_evaluation(&professor, "Answers", 3).await?;
        eprintln!(
            "bench: signing in {} students",
            names.len() + other_names.len()
        );
        let started = Instant::now();
        let students = api.login_all(&names).await?;
        let others = api.login_all(&other_names).await?;
        self.results.sign_ins = SignIns {
            students: students.len() + others.len(),
            seconds: started.elapsed().as_secs_f64(),
        };
        api.join_all(&answers.id, &students[..self.plan.joined()])
            .await?;
        server.stop().await?;

        let tokens_file = paths.work.join("tokens.txt");
        let tokens: String = students.iter().map(|s| format!("{}\n", s.token)).collect();
        std::fs::write(&tokens_file, tokens)?;
        // The peers broadcast what invigil sends on a phase change: the same message, the same size.
        let payload = ServerMessage::EvaluationUpdate {
            reason: UpdateReason::PhaseChanged,
            evaluation: fanout.clone(),
            participation: Participation {
                evaluation_id: fanout.id.clone(),
                username: students[0].username.clone(),
                status: ParticipationStatus::NotStarted,
                blocked_reason: None,
                access: true,
                proctoring_exempt: Default::default(),
            },
        };
        let payload_file = paths.work.join("payload.json");
        std::fs::write(&payload_file, payload.to_json())?;
        Ok(People {
            database,
            professor,
            students,
            others,
            burst,
            fanout: fanout.id,
            answers: answers.id,
            tokens_file,
            payload_file,
        })
    }

    /// Idle sockets of one server and size; on the same crowd, fan-out, and for invigil at the
    /// largest size, invalidation.
    async fn idle(&mut self, people: &mut People, kind: Kind, n: usize) -> Result<()> {
        eprintln!("bench: {} with {n} idle students", kind.name());
        let server = match kind {
            Kind::Invigil => self.start(&people.database).await?,
            _ => {
                Server::peer(
                    &self.options.paths,
                    kind,
                    &people.tokens_file,
                    &people.payload_file,
                )
                .await?
            }
        };
        let pid = server.pid();
        let rss_before = procfs::rss_bytes(pid)?;
        let mut fleet = Fleet::spawn(workers_for(n))?;
        let started = Instant::now();
        let sockets = fleet
            .connect(
                &server.endpoint(),
                &people.students[..n],
                self.plan.heartbeat_ms,
            )
            .await?;
        let connect_s = started.elapsed().as_secs_f64();
        // Let the first heartbeats go by before reading memory: every socket has then sent and
        // received, as an idle exam room does.
        tokio::time::sleep(Duration::from_millis(
            self.plan.heartbeat_ms.min(5000) + 500,
        ))
        .await;
        let rss_after = procfs::rss_bytes(pid)?;
        let open_files = procfs::open_files(pid)?;
        let cpu_before = procfs::cpu_time(pid)?;
        let window = Duration::from_secs(self.plan.idle_window_s);
        tokio::time::sleep(window).await;
        let cpu = procfs::cpu_time(pid)? - cpu_before;
        let run = IdleRun {
            sockets,
            connect_s,
            rss_before,
            rss_after,
            open_files,
            cpu_percent: cpu.as_secs_f64() / window.as_secs_f64() * 100.0,
        };
        eprintln!(
            "bench:   {sockets} sockets, {:.1} KB each, {:.1}% CPU idle",
            run.per_socket() / 1000.0,
            run.cpu_percent
        );
        push_idle(&mut self.results.idle, kind, n, run);

        let api = Api::new(&server.url());
        let workers = fleet.pids();
        let generator_ns = || -> Result<u64> { workers.iter().map(|&p| procfs::cpu_ns(p)).sum() };
        let (mut changes, mut server_cpu_ms, mut generator_cpu_ms) =
            (Vec::new(), Vec::new(), Vec::new());
        let mut missing = 0;
        for _ in 0..self.plan.changes {
            self.generation += 1;
            let generation = self.generation;
            fleet.ask_all(Command::Arm { generation }).await?;
            let (server_before, generator_before) = (procfs::cpu_ns(pid)?, generator_ns()?);
            let start = now_ns();
            match kind {
                Kind::Invigil => {
                    self.grading = !self.grading;
                    let phase = if self.grading {
                        "grading"
                    } else {
                        "in_progress"
                    };
                    api.set_phase(&people.professor, &people.fanout, phase)
                        .await?;
                }
                _ => {
                    let response = reqwest::get(format!("{}/broadcast", server.url())).await?;
                    if !response.status().is_success() {
                        bail!(
                            "{} refused the broadcast: {}",
                            kind.name(),
                            response.status()
                        );
                    }
                }
            }
            let replies = fleet
                .ask_all(Command::Collect {
                    generation,
                    timeout_ms: 30_000,
                })
                .await?;
            server_cpu_ms.push((procfs::cpu_ns(pid)? - server_before) as f64 / 1e6);
            generator_cpu_ms.push((generator_ns()? - generator_before) as f64 / 1e6);
            let mut latencies = Vec::with_capacity(n);
            for reply in replies {
                if let Reply::Received {
                    times_ns,
                    missing: m,
                } = reply
                {
                    missing += m;
                    latencies.extend(times_ns.iter().map(|&t| t.saturating_sub(start) as f64));
                }
            }
            changes.push(Spread::of(latencies, 1e-6));
            // Let the writes of this change drain before the next.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if let Some(last) = changes.last() {
            eprintln!(
                "bench:   fan-out p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; CPU per change: server {:.1} ms, generator {:.1} ms",
                last.p50,
                last.p99,
                last.max,
                median(&server_cpu_ms),
                median(&generator_cpu_ms)
            );
        }
        match self
            .results
            .fanout
            .iter_mut()
            .find(|r| r.target == kind.name() && r.students == n)
        {
            Some(row) => {
                row.changes.extend(changes);
                row.missing += missing;
                row.server_cpu_ms.extend(server_cpu_ms);
                row.generator_cpu_ms.extend(generator_cpu_ms);
            }
            None => self.results.fanout.push(FanoutRow {
                target: kind.name().into(),
                students: n,
                changes,
                missing,
                server_cpu_ms,
                generator_cpu_ms,
            }),
        }
        if kind == Kind::Invigil && Some(&n) == self.plan.sizes.iter().max() {
            let run = self.invalidation(&server, people, sockets).await?;
            self.results.invalidation.push(run);
        }
        fleet.disconnect().await?;
        fleet.finish().await;
        server.stop().await
    }

    /// Signs each of the other students in twice over, one at a time, and times the second
    /// sign-in until the first session's socket reads `SESSION_INVALIDATED`.
    async fn invalidation(
        &mut self,
        server: &Server,
        people: &mut People,
        background: usize,
    ) -> Result<InvalidationRun> {
        eprintln!(
            "bench: {} invalidations with {background} sockets connected",
            people.others.len()
        );
        let api = Api::new(&server.url());
        let meter = std::sync::Arc::new(student::Meter::default());
        let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9));
        let (mut latencies, mut sign_ins) = (Vec::new(), Vec::new());
        for other in &mut people.others {
            let mut ws = student::connect(&server.endpoint(), source, other, &meter)
                .await
                .map_err(anyhow::Error::msg)?
                .ws;
            let start = now_ns();
            let token = api.login(&other.username).await?;
            sign_ins.push(now_ns().saturating_sub(start) as f64);
            let invalidated = tokio::time::timeout(Duration::from_secs(10), async {
                use futures_util::StreamExt;
                while let Some(Ok(frame)) = ws.next().await {
                    if let tokio_tungstenite::tungstenite::Message::Text(text) = frame
                        && student::classify(crate::wire::Flavor::Invigil, &text)
                            == student::Incoming::Invalidated
                    {
                        return Some(now_ns());
                    }
                }
                None
            })
            .await;
            match invalidated {
                Ok(Some(at)) => latencies.push(at.saturating_sub(start) as f64),
                _ => bail!("{} was never told of the new sign-in", other.username),
            }
            other.token = token;
        }
        Ok(InvalidationRun {
            background,
            latency: Spread::of(latencies, 1e-6),
            sign_in: Spread::of(sign_ins, 1e-6),
        })
    }

    /// `writers` students save as fast as their acknowledgements come back.
    async fn answers(&mut self, people: &People, writers: usize) -> Result<()> {
        let server = self.start(&people.database).await?;
        let run = self
            .save_loop(&server, &people.students[..writers], &people.answers)
            .await?;
        server.stop().await?;
        push_answers(&mut self.results.answers, "sqlite", writers, run);
        Ok(())
    }

    async fn save_loop(
        &mut self,
        server: &Server,
        writers: &[Credential],
        evaluation_id: &str,
    ) -> Result<AnswersRun> {
        eprintln!("bench: {} writers saving", writers.len());
        // Two workers at least, so that the generator can use both cores when it needs them.
        let mut fleet = Fleet::spawn(workers_for(writers.len()).max(2))?;
        fleet
            .connect(&server.endpoint(), writers, self.plan.heartbeat_ms)
            .await?;
        let pid = server.pid();
        let workers = fleet.pids();
        let warmup_ms = 2000;
        let duration_ms = self.plan.answers_s * 1000;
        self.revision_base += 1_000_000;
        let cpu =
            |pids: &[u32]| -> Result<Duration> { pids.iter().map(|&p| procfs::cpu_time(p)).sum() };
        let (server_before, workers_before) = (procfs::cpu_time(pid)?, cpu(&workers)?);
        let measured = Instant::now();
        let replies = fleet
            .ask_all(Command::SaveLoop {
                evaluation_id: evaluation_id.to_owned(),
                questions: vec!["q1".into(), "q2".into()],
                warmup_ms,
                duration_ms,
                content_bytes: 256,
                revision_base: self.revision_base,
            })
            .await?;
        let elapsed = measured.elapsed().as_secs_f64();
        let server_cpu = (procfs::cpu_time(pid)? - server_before).as_secs_f64() / elapsed * 100.0;
        let generator_cpu = (cpu(&workers)? - workers_before).as_secs_f64() / elapsed * 100.0;
        let (mut acks, mut refused, mut broken, mut latencies) = (0, 0, 0, Vec::new());
        for reply in replies {
            if let Reply::Saved {
                acks: a,
                refused: r,
                broken: b,
                latencies_us,
            } = reply
            {
                acks += a;
                refused += r;
                broken += b;
                latencies.extend(latencies_us.into_iter().map(f64::from));
            }
        }
        fleet.disconnect().await?;
        fleet.finish().await;
        let run = AnswersRun {
            acks_per_s: acks as f64 / (duration_ms as f64 / 1000.0),
            latency: Spread::of(latencies, 1e-3),
            refused,
            broken,
            server_cpu_percent: server_cpu,
            generator_cpu_percent: generator_cpu,
        };
        eprintln!(
            "bench:   {:.0} acks/s, p50 {:.1} ms, p99 {:.1} ms",
            run.acks_per_s, run.latency.p50, run.latency.p99
        );
        Ok(run)
    }

    /// The answers scenario on a fresh PostgreSQL database.
    async fn answers_on_postgres(&mut self, base: &str) -> Result<()> {
        use sqlx::Connection as _;
        let mut admin = match sqlx::PgConnection::connect(base).await {
            Ok(c) => c,
            Err(e) => {
                self.results.skipped.push(format!(
                    "answers on PostgreSQL: {base} is unreachable ({e})"
                ));
                return Ok(());
            }
        };
        let name = format!("invigil_bench_{}", std::process::id());
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
            .execute(&mut admin)
            .await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await?;
        let url = match base.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => bail!("{base} names no database"),
        };
        let outcome = self.answers_on(&url).await;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await?;
        outcome
    }

    async fn answers_on(&mut self, url: &str) -> Result<()> {
        let most = self.plan.writers.iter().copied().max().unwrap_or(0);
        let names: Vec<String> = (0..most).map(|i| seed::username("s", i)).collect();
        seed::create_accounts(url, &names).await?;
        let server = self.start(url).await?;
        let api = Api::new(&server.url());
        let professor = api.login(PROFESSOR).await?;
        let evaluation = api.running_evaluation(&professor, "Answers", 3).await?;
        eprintln!("bench: signing in {most} students on PostgreSQL");
        let writers = api.login_all(&names).await?;
        api.join_all(&evaluation.id, &writers).await?;
        for run in 0..self.plan.runs {
            for &n in &self.plan.writers.clone() {
                eprintln!("bench: PostgreSQL run {}", run + 1);
                let measured = self
                    .save_loop(&server, &writers[..n], &evaluation.id)
                    .await?;
                push_answers(&mut self.results.answers, "postgres", n, measured);
            }
        }
        server.stop().await
    }

    /// Every student sends a save; the server is killed at once and started again; the students
    /// come back on their own. Measures how long until all are back, and checks that the server
    /// has every save it acknowledged and every save resent.
    async fn storm(&mut self, people: &People) -> Result<()> {
        let n = self.plan.storm;
        eprintln!("bench: storm of {n} students");
        let mut server = self.start(&people.database).await?;
        let mut fleet = Fleet::spawn(workers_for(n))?;
        fleet
            .connect(
                &server.endpoint(),
                &people.students[..n],
                self.plan.heartbeat_ms,
            )
            .await?;
        let listen_before = procfs::listen_counters()?;
        self.revision_base += 1_000_000;
        fleet
            .ask_all(Command::SaveOnce {
                evaluation_id: people.answers.clone(),
                question_id: "q3".into(),
                revision_base: self.revision_base,
            })
            .await?;
        let killed = now_ns();
        server.kill().await?;
        server.restart().await?;
        server.healthy().await?;
        let healthy = now_ns();
        let replies = fleet
            .ask_all(Command::Settle { timeout_ms: 60_000 })
            .await?;
        let listen_after = procfs::listen_counters()?;
        let mut back = Vec::with_capacity(n);
        let mut not_back = 0;
        let mut revisions = Vec::with_capacity(n);
        for reply in replies {
            if let Reply::Settled {
                back_ns,
                not_back: nb,
                revisions: r,
            } = reply
            {
                back.extend(back_ns);
                not_back += nb;
                revisions.extend(r);
            }
        }
        let api = Api::new(&server.url());
        let stored = api
            .stored_revisions(&people.professor, &people.answers, "q3")
            .await?;
        let lost = lost_saves(&revisions, &stored);
        fleet.disconnect().await?;
        fleet.finish().await;
        server.stop().await?;
        let last = back.iter().copied().max().unwrap_or(killed);
        let ms = |from: u64, to: u64| to.saturating_sub(from) as f64 / 1e6;
        let after_kill: Vec<f64> = back.iter().map(|&t| ms(killed, t)).collect();
        let run = StormRun {
            restart_ms: ms(killed, healthy),
            all_back_after_kill_ms: ms(killed, last),
            all_back_after_restart_ms: ms(healthy, last),
            median_back_after_kill_ms: median(&after_kill),
            not_back,
            listen_overflows: listen_after.overflows - listen_before.overflows,
            listen_drops: listen_after.drops - listen_before.drops,
            saves: revisions.iter().filter(|r| r.sent > 0).count(),
            lost,
        };
        eprintln!(
            "bench:   all back {:.0} ms after the kill ({:.0} ms after restart), {} not back, {} lost",
            run.all_back_after_kill_ms, run.all_back_after_restart_ms, run.not_back, run.lost
        );
        let rows = &mut self.results.storm;
        let new = || StormRow {
            students: n,
            runs: Vec::new(),
        };
        add_run(rows, |r| r.students == n, new, |r| &mut r.runs, run);
        Ok(())
    }

    /// The same students for the same window, first holding invigil's socket, then polling.
    async fn polling(&mut self, people: &People) -> Result<()> {
        let n = self.plan.pollers;
        let window = Duration::from_secs(self.plan.poll_s);
        eprintln!("bench: {n} students, push against polling");
        let server = self.start(&people.database).await?;
        let pid = server.pid();
        let api = Api::new(&server.url());
        let students = &people.students[..n];
        let mut fleet = Fleet::spawn(workers_for(n))?;
        fleet
            .connect(&server.endpoint(), students, self.plan.heartbeat_ms)
            .await?;
        tokio::time::sleep(Duration::from_millis(self.plan.heartbeat_ms)).await;

        let changes = 2;
        // Per thread and in nanoseconds (`schedstat`): push costs a few clock ticks of
        // `/proc/PID/stat` in a window, too coarse for a ratio.
        let cpu_s = |before: u64| -> Result<f64> {
            Ok(procfs::cpu_ns(pid)?.saturating_sub(before) as f64 / 1e9)
        };
        let traffic = fleet.traffic().await?;
        let cpu = procfs::cpu_ns(pid)?;
        self.change_ends_at(&api, people, window, changes).await?;
        let push = Cost {
            cpu_s: cpu_s(cpu)?,
            bytes: {
                let t = traffic.until(fleet.traffic().await?);
                t.bytes_in + t.bytes_out
            },
            messages: {
                let t = traffic.until(fleet.traffic().await?);
                t.messages_in + t.messages_out
            },
            changes,
        };
        fleet.disconnect().await?;

        let traffic = fleet.traffic().await?;
        let cpu = procfs::cpu_ns(pid)?;
        let shares = crate::fleet::split(students, fleet.len());
        let path = format!("/api/evaluations/{}", people.fanout);
        let addr = server.addr;
        let (polled, ()) = tokio::join!(
            fleet.ask(|i, source| Command::Poll {
                addr,
                source,
                students: shares[i].to_vec(),
                path: path.clone(),
                duration_ms: window.as_millis() as u64,
            }),
            async {
                if let Err(e) = self.change_ends_at(&api, people, window, changes).await {
                    eprintln!("bench: a change during polling failed: {e:#}");
                }
            }
        );
        let polled = polled?;
        let poll_cpu_s = cpu_s(cpu)?;
        let t = traffic.until(fleet.traffic().await?);
        let (mut failures, mut latencies) = (0, Vec::new());
        for reply in polled {
            if let Reply::Polled {
                failed,
                latencies_us,
                ..
            } = reply
            {
                failures += failed;
                latencies.extend(latencies_us.into_iter().map(f64::from));
            }
        }
        let run = PollingRun {
            window_s: window.as_secs_f64(),
            push,
            poll: Cost {
                cpu_s: poll_cpu_s,
                bytes: t.bytes_in + t.bytes_out,
                messages: t.messages_in + t.messages_out,
                changes,
            },
            poll_failures: failures,
            poll_latency: Spread::of(latencies, 1e-3),
        };
        fleet.finish().await;
        server.stop().await?;
        eprintln!(
            "bench:   push {:.2} CPU s, polling {:.2} CPU s ({:.0}×)",
            run.push.cpu_s,
            run.poll.cpu_s,
            run.poll.cpu_s / run.push.cpu_s.max(1e-9)
        );
        let rows = &mut self.results.polling;
        let new = || PollingRow {
            students: n,
            runs: Vec::new(),
        };
        add_run(rows, |r| r.students == n, new, |r| &mut r.runs, run);
        Ok(())
    }

    /// A room signs in at once (each coming back after `server_busy` as told, with jitter) while
    /// a crowd holds its sockets; then a hostile wave of bad sign-ins from many addresses. The
    /// server's peak memory above idle (`VmHWM`, reset before each), its memory ten seconds later,
    /// and how late the held sockets' heartbeats came.
    async fn burst(&mut self, people: &People) -> Result<()> {
        let (background, n) = (self.plan.burst_background, self.plan.burst);
        eprintln!("bench: {n} students signing in at once, {background} sockets held");
        let mut options = self.invigil_options(&people.database);
        // The crowd and the room come from 127.0.0.x, a room behind one address as far as the
        // per-address limits go; the hostile wave comes from elsewhere.
        options.extra = vec!["--exam-network".into(), "127.0.0.0/24".into()];
        let server = Server::invigil(&self.options.paths, &options).await?;
        let pid = server.pid();
        let mut fleet = Fleet::spawn(workers_for(background))?;
        fleet
            .connect(
                &server.endpoint(),
                &people.students[..background],
                self.plan.heartbeat_ms,
            )
            .await?;
        tokio::time::sleep(Duration::from_millis(
            self.plan.heartbeat_ms.min(5000) + 500,
        ))
        .await;
        let settle = Duration::from_secs(10);
        let api = Api::new(&server.url());

        procfs::reset_peak(pid)?;
        let rss_idle = procfs::rss_bytes(pid)?;
        fleet.ask_all(Command::Watch).await?;
        let started = Instant::now();
        let signed = futures_util::future::join_all(
            people.burst[..n]
                .iter()
                .map(|name| api.login_when_free(name)),
        )
        .await;
        let all_in_s = started.elapsed().as_secs_f64();
        let peak = procfs::peak_rss_bytes(pid)?;
        tokio::time::sleep(settle).await;
        let settled = procfs::rss_bytes(pid)?;
        let (heartbeat_late, lost) = watched(&mut fleet).await?;
        let busy_answers = signed.iter().flatten().sum();
        let failed = signed.iter().filter(|s| s.is_err()).count();
        if let Some(Err(e)) = signed.iter().find(|s| s.is_err()) {
            eprintln!("bench:   a burst sign-in failed: {e:#}");
        }

        let (attempts, addresses, seconds) = self.plan.hostile;
        eprintln!("bench: {attempts} bad sign-ins from {addresses} addresses in {seconds} s");
        procfs::reset_peak(pid)?;
        let rss_before = procfs::rss_bytes(pid)?;
        fleet.ask_all(Command::Watch).await?;
        let answered = hostile(&server, attempts, addresses, Duration::from_secs(seconds)).await?;
        let hostile_peak = procfs::peak_rss_bytes(pid)?;
        tokio::time::sleep(settle).await;
        let hostile_settled = procfs::rss_bytes(pid)?;
        let (hostile_late, hostile_lost) = watched(&mut fleet).await?;
        fleet.disconnect().await?;
        fleet.finish().await;
        server.stop().await?;

        let run = BurstRun {
            background,
            students: n,
            all_in_s,
            busy_answers,
            failed,
            rss_idle,
            peak,
            settled,
            heartbeat_late,
            lost,
            hostile: HostileRun {
                attempts,
                addresses,
                seconds: seconds as f64,
                answered,
                rss_before,
                peak: hostile_peak,
                settled: hostile_settled,
                heartbeat_late: hostile_late,
                lost: hostile_lost,
            },
        };
        let mb = |bytes: u64| bytes as f64 / 1e6;
        eprintln!(
            "bench:   all in after {all_in_s:.1} s ({busy_answers} server_busy answers, {failed} failed); \
             peak {:.0} MB and settled {:.0} MB above idle; heartbeats p99 {:.0} ms late; {lost} sockets lost",
            mb(peak.saturating_sub(rss_idle)),
            mb(settled.saturating_sub(rss_idle)),
            run.heartbeat_late.p99
        );
        eprintln!(
            "bench:   hostile: {:?}; peak {:.0} MB and settled {:.0} MB above before",
            run.hostile.answered,
            mb(hostile_peak.saturating_sub(rss_before)),
            mb(hostile_settled.saturating_sub(rss_before)),
        );
        let rows = &mut self.results.burst;
        let new = || BurstRow {
            students: n,
            background,
            runs: Vec::new(),
        };
        add_run(rows, |r| r.students == n, new, |r| &mut r.runs, run);
        Ok(())
    }

    /// Changes the end time of the fan-out evaluation `changes` times spread over `window`, and
    /// returns at its end.
    async fn change_ends_at(
        &self,
        api: &Api,
        people: &People,
        window: Duration,
        changes: usize,
    ) -> Result<()> {
        let start = tokio::time::Instant::now();
        for i in 1..=changes {
            tokio::time::sleep_until(start + window * i as u32 / (changes as u32 + 1)).await;
            let ends_at = format!("2099-01-{:02}T12:00:00.000Z", i % 28 + 1);
            api.call(
                reqwest::Method::PUT,
                &people.professor,
                &format!("/api/evaluations/{}/ends_at", people.fanout),
                Some(json!({ "ends_at": ends_at })),
            )
            .await?;
        }
        tokio::time::sleep_until(start + window).await;
        Ok(())
    }
}

/// Ends a watch: how late the held sockets' heartbeats came (ms), and how many sockets were lost.
async fn watched(fleet: &mut Fleet) -> Result<(Spread, u64)> {
    let (mut late, mut lost) = (Vec::new(), 0);
    for reply in fleet.ask_all(Command::Watched).await? {
        if let Reply::Watched {
            lateness_us,
            lost: l,
        } = reply
        {
            late.extend(lateness_us.into_iter().map(f64::from));
            lost += l;
        }
    }
    Ok((Spread::of(late, 1e-3), lost))
}

/// `attempts` sign-ins of unknown names with wrong passwords, spread evenly over `span`, from
/// `addresses` addresses of 127.1.0.0/16 in turn: the answers by status.
async fn hostile(
    server: &Server,
    attempts: usize,
    addresses: usize,
    span: Duration,
) -> Result<std::collections::BTreeMap<u16, usize>> {
    let clients = (0..addresses)
        .map(|i| {
            let ip = Ipv4Addr::new(127, 1, (i / 250) as u8, (i % 250 + 1) as u8);
            reqwest::Client::builder()
                .local_address(Some(IpAddr::V4(ip)))
                .timeout(Duration::from_secs(60))
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let url = format!("{}/api/login", server.url());
    let start = tokio::time::Instant::now();
    let tasks: Vec<_> = (0..attempts)
        .map(|i| {
            let client = clients[i % addresses].clone();
            let url = url.clone();
            let at = start + span.mul_f64(i as f64 / attempts as f64);
            tokio::spawn(async move {
                tokio::time::sleep_until(at).await;
                let body = json!({"username": format!("intruder{i}"), "password": "guess"});
                match client.post(&url).json(&body).send().await {
                    Ok(r) => r.status().as_u16(),
                    Err(_) => 0,
                }
            })
        })
        .collect();
    let mut answered = std::collections::BTreeMap::new();
    for task in tasks {
        *answered.entry(task.await?).or_insert(0) += 1;
    }
    Ok(answered)
}

/// Students whose last save (acknowledged or resent until acknowledged) the server does not have.
fn lost_saves(revisions: &[crate::wire::Revisions], stored: &HashMap<String, u64>) -> usize {
    revisions
        .iter()
        .filter(|r| r.sent > 0)
        .filter(|r| stored.get(&r.username).copied().unwrap_or(0) < r.sent.max(r.acked))
        .count()
}

/// Adds `run` to the row that `is` picks, or to a new row (`new`, without runs) at the end.
fn add_run<R, T>(
    rows: &mut Vec<R>,
    is: impl Fn(&R) -> bool,
    new: impl FnOnce() -> R,
    runs: fn(&mut R) -> &mut Vec<T>,
    run: T,
) {
    let i = rows.iter().position(is).unwrap_or_else(|| {
        rows.push(new());
        rows.len() - 1
    });
    runs(&mut rows[i]).push(run);
}

fn push_idle(rows: &mut Vec<IdleRow>, kind: Kind, n: usize, run: IdleRun) {
    let is = |r: &IdleRow| r.target == kind.name() && r.students == n;
    let new = || IdleRow {
        target: kind.name().into(),
        students: n,
        runs: Vec::new(),
    };
    add_run(rows, is, new, |r| &mut r.runs, run);
}

fn push_answers(rows: &mut Vec<AnswersRow>, engine: &str, writers: usize, run: AnswersRun) {
    let is = |r: &AnswersRow| r.engine == engine && r.writers == writers;
    let new = || AnswersRow {
        engine: engine.into(),
        writers,
        runs: Vec::new(),
    };
    add_run(rows, is, new, |r| &mut r.runs, run);
}

fn machine(paths: &Paths) -> Machine {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        .unwrap_or_default();
    let memory_gib = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let version = |program: &std::path::Path, arg: &str| {
        std::process::Command::new(program)
            .arg(arg)
            .output()
            .ok()
            .map(|o| {
                String::from_utf8_lossy(if o.stdout.is_empty() {
                    &o.stderr
                } else {
                    &o.stdout
                })
                .trim()
                .to_owned()
            })
            .unwrap_or_else(|| "not found".into())
    };
    Machine {
        cpu,
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        memory_gib,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        node: version(std::path::Path::new("node"), "--version"),
        python: version(&paths.python(), "--version"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Revisions;

    #[test]
    fn a_save_is_lost_when_the_server_has_less_than_was_sent_or_acknowledged() {
        let r = |username: &str, acked, sent| Revisions {
            username: username.into(),
            acked,
            sent,
        };
        let stored = HashMap::from([
            ("a".to_owned(), 5),
            ("b".to_owned(), 4),
            ("c".to_owned(), 9),
        ]);
        let revisions = [
            r("a", 5, 5),
            r("b", 4, 5),
            r("c", 9, 9),
            r("d", 0, 3),
            r("e", 0, 0),
        ];
        assert_eq!(lost_saves(&revisions, &stored), 2);
    }

    #[test]
    fn every_mode_plays_enough_students_for_its_largest_scenario() {
        for mode in [Mode::Smoke, Mode::Quick, Mode::Full] {
            let plan = Plan::of(mode);
            assert!(plan.students() >= plan.storm);
            assert!(plan.students() >= plan.joined());
            assert!(plan.sizes.iter().all(|&n| n <= plan.students()));
        }
        assert_eq!(Plan::of(Mode::Full).sizes.last(), Some(&19_500));
    }
}

//! A worker process: plays a share of the students, one task each, on one thread, and carries out
//! the conductor's [`Command`]s read from stdin, answering each with one [`Reply`] on stdout.
//!
//! The students of a worker share a [`Crowd`]: what they were told to do (a `watch` every task
//! reads) and a tally of what happened (a `watch` the command handlers wait on), so that a handler
//! never polls and never sleeps to find out that its students are done.

use crate::clock::now_ns;
use crate::student::{self, Incoming, Meter, Ws, answer_save, micros_since, send_text};
use crate::wire::{Command, Credential, Endpoint, Flavor, Reply, Revisions};
use anyhow::{Context as _, Result};
use futures_util::StreamExt;
use invigil_client::backoff::Backoff;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{Semaphore, watch};
use tokio_tungstenite::tungstenite::Message;

/// What every student of a worker is doing.
#[derive(Debug, Clone)]
enum Control {
    /// Holding the connection: heartbeats, noting fan-out receipts.
    Hold,
    /// Saving in a closed loop (a new `Arc` for every loop).
    Loop(Arc<LoopSpec>),
    /// Sending one save and keeping it until acknowledged (a new `Arc` for every round).
    Once(Arc<OnceSpec>),
    /// Closing.
    Close,
}

#[derive(Debug)]
struct LoopSpec {
    evaluation_id: String,
    questions: Vec<String>,
    content: String,
    measure_from_ns: u64,
    end_ns: u64,
    revision_base: u64,
}

#[derive(Debug)]
struct OnceSpec {
    evaluation_id: String,
    question_id: String,
    revision_base: u64,
}

/// What a worker's students have done, shared with the command handlers.
#[derive(Debug, Default)]
struct Tally {
    ready: usize,
    failed: usize,
    first_error: Option<String>,
    /// The fan-out being measured, and the receipts of it so far.
    generation: u64,
    receipts: Vec<u64>,
    /// Sockets lost and not back yet; per student, when it last came back (0: never lost).
    lost: usize,
    lost_now: Vec<bool>,
    back: Vec<u64>,
    came_back: usize,
    /// Students whose save loop has ended, and what the loops measured.
    loops_done: usize,
    acks: u64,
    refused: u64,
    broken: u64,
    latencies_us: Vec<u32>,
    /// Students of a `SaveOnce` round that sent their save; saves not yet acknowledged.
    sent: usize,
    unacknowledged: usize,
    /// Per student: the highest revision acknowledged and sent.
    revisions: Vec<(u64, u64)>,
    /// Whether heartbeats and losses are being noted (`Watch`), and what was noted.
    watching: bool,
    lateness_us: Vec<u32>,
    lost_watching: u64,
}

/// What the students of a worker share.
struct Crowd {
    endpoint: Endpoint,
    source: IpAddr,
    heartbeat: Duration,
    meter: Arc<Meter>,
    tally: watch::Sender<Tally>,
}

/// One student's task.
struct Student {
    index: usize,
    credential: Credential,
    crowd: Arc<Crowd>,
    control: watch::Receiver<Control>,
    rng: StdRng,
    /// Revisions rise across every save of the run, as the app's do.
    last_revision: u64,
    seen_generation: u64,
    /// The save kept until acknowledged: its revision and frame.
    pending: Option<(u64, String)>,
    /// When the connection's last `HEARTBEAT` arrived (monotonic ns).
    last_beat_ns: Option<u64>,
    /// The last loop and round started, so that a reconnection does not start them again.
    seen_loop: Option<Arc<LoopSpec>>,
    seen_once: Option<Arc<OnceSpec>>,
}

/// How a connection's life ended.
enum Exit {
    /// Told to close.
    Close,
    /// The connection was lost.
    Lost,
}

/// A save loop in progress on one connection.
struct Looping {
    spec: Arc<LoopSpec>,
    next_question: usize,
    in_flight: Option<(u64, u64)>,
    acks: u64,
    refused: u64,
    latencies_us: Vec<u32>,
}

impl Student {
    async fn run(mut self, first: Result<Ws, String>) {
        let mut ws = match first {
            Ok(ws) => {
                self.crowd.tally.send_modify(|t| t.ready += 1);
                ws
            }
            Err(e) => {
                self.crowd.tally.send_modify(|t| {
                    t.failed += 1;
                    t.first_error.get_or_insert(e);
                });
                return;
            }
        };
        loop {
            match self.serve(&mut ws).await {
                Exit::Close => {
                    let _ = ws.close(None).await;
                    return;
                }
                Exit::Lost => {
                    let index = self.index;
                    self.last_beat_ns = None;
                    self.crowd.tally.send_modify(|t| {
                        t.lost += 1;
                        t.lost_now[index] = true;
                        if t.watching {
                            t.lost_watching += 1;
                        }
                    });
                    match self.reconnect().await {
                        Some(again) => {
                            ws = again;
                            let (at, index) = (now_ns(), self.index);
                            self.crowd.tally.send_modify(|t| {
                                t.lost -= 1;
                                t.lost_now[index] = false;
                                if t.back[index] == 0 {
                                    t.came_back += 1;
                                }
                                t.back[index] = at;
                            });
                        }
                        None => return,
                    }
                }
            }
        }
    }

    /// Comes back as the desktop app does: full-jitter exponential backoff, forever, until told
    /// to close.
    async fn reconnect(&mut self) -> Option<Ws> {
        let mut backoff = Backoff::default();
        loop {
            let delay = backoff.next_delay(&mut self.rng);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.control.wait_for(|c| matches!(c, Control::Close)) => return None,
            }
            let crowd = &self.crowd;
            if let Ok(ready) = student::connect(
                &crowd.endpoint,
                crowd.source,
                &self.credential,
                &crowd.meter,
            )
            .await
            {
                return Some(ready.ws);
            }
        }
    }

    async fn serve(&mut self, ws: &mut Ws) -> Exit {
        let flavor = self.crowd.endpoint.flavor;
        let meter = self.crowd.meter.clone();
        // Heartbeats start at a random point of the period, as a room's apps would; once the
        // server's first arrives, each is answered at once and the timer pushed back a period,
        // as the desktop app does (client/src/live.rs).
        let offset = self.rng.random_range(Duration::ZERO..=self.crowd.heartbeat);
        let mut beat =
            tokio::time::interval_at(tokio::time::Instant::now() + offset, self.crowd.heartbeat);
        let mut looping: Option<Looping> = None;
        // What was kept unacknowledged goes out again on every new connection.
        if let Some((_, frame)) = &self.pending
            && send_text(ws, &meter, frame.clone()).await.is_err()
        {
            return Exit::Lost;
        }
        self.control.mark_changed();
        loop {
            tokio::select! {
                changed = self.control.changed() => {
                    if changed.is_err() {
                        return Exit::Close;
                    }
                    let control = self.control.borrow_and_update().clone();
                    match control {
                        Control::Close => return Exit::Close,
                        Control::Hold => {}
                        Control::Loop(spec) => {
                            if self.seen_loop.as_ref().is_some_and(|seen| Arc::ptr_eq(seen, &spec)) {
                                continue;
                            }
                            self.seen_loop = Some(spec.clone());
                            self.last_revision = self.last_revision.max(spec.revision_base);
                            let mut l = Looping {
                                spec, next_question: 0, in_flight: None, acks: 0, refused: 0,
                                latencies_us: Vec::new(),
                            };
                            if self.send_next(ws, &meter, &mut l).await.is_err() {
                                self.end_loop(l, true);
                                return Exit::Lost;
                            }
                            looping = Some(l);
                        }
                        Control::Once(spec) => {
                            if self.seen_once.as_ref().is_some_and(|seen| Arc::ptr_eq(seen, &spec)) {
                                continue;
                            }
                            self.seen_once = Some(spec.clone());
                            self.last_revision = self.last_revision.max(spec.revision_base);
                            self.last_revision += 1;
                            let revision = self.last_revision;
                            let frame = answer_save(&spec.evaluation_id, &spec.question_id, revision, "written before the storm");
                            self.pending = Some((revision, frame.clone()));
                            let index = self.index;
                            self.crowd.tally.send_modify(|t| {
                                t.sent += 1;
                                t.unacknowledged += 1;
                                t.revisions[index].1 = revision;
                            });
                            if send_text(ws, &meter, frame).await.is_err() {
                                return Exit::Lost;
                            }
                        }
                    }
                }
                frame = ws.next() => {
                    let text = match frame {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Binary(_) | Message::Frame(_))) => continue,
                        Some(Ok(Message::Close(_)) | Err(_)) | None => {
                            if let Some(l) = looping.take() {
                                self.end_loop(l, true);
                            }
                            return Exit::Lost;
                        }
                    };
                    meter.messages_in.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let answered = match student::classify(flavor, &text) {
                        Incoming::PhaseChanged => {
                            self.note_receipt();
                            None
                        }
                        Incoming::Ack { revision } => Some((revision, true)),
                        Incoming::Rejected { revision } => Some((revision, false)),
                        Incoming::Heartbeat => {
                            self.note_beat();
                            beat.reset();
                            if send_text(ws, &meter, student::HEARTBEAT.to_owned()).await.is_err() {
                                return Exit::Lost;
                            }
                            None
                        }
                        Incoming::EnginePing => {
                            if send_text(ws, &meter, "3".to_owned()).await.is_err() {
                                return Exit::Lost;
                            }
                            None
                        }
                        _ => None,
                    };
                    if let Some((revision, acked)) = answered {
                            self.note_answer(revision, acked);
                            if let Some(mut l) = looping.take() {
                                match self.loop_answered(ws, &meter, &mut l, revision, acked).await {
                                    Ok(true) => looping = Some(l),
                                    Ok(false) => self.end_loop(l, false),
                                    Err(()) => {
                                        self.end_loop(l, true);
                                        return Exit::Lost;
                                    }
                                }
                            }
                    }
                }
                _ = beat.tick(), if flavor != Flavor::SocketIo => {
                    if send_text(ws, &meter, student::HEARTBEAT.to_owned()).await.is_err() {
                        return Exit::Lost;
                    }
                }
            }
        }
    }

    /// Notes how late a `HEARTBEAT` is: the time since the previous one beyond one period.
    fn note_beat(&mut self) {
        let at = now_ns();
        let period = u64::try_from(self.crowd.heartbeat.as_nanos()).unwrap_or(u64::MAX);
        if let Some(last) = self.last_beat_ns.replace(at) {
            let late_us = u32::try_from(at.saturating_sub(last).saturating_sub(period) / 1000)
                .unwrap_or(u32::MAX);
            // Nobody waits on these: never wake the command handlers for them.
            self.crowd.tally.send_if_modified(|t| {
                if t.watching {
                    t.lateness_us.push(late_us);
                }
                false
            });
        }
    }

    fn note_receipt(&mut self) {
        let at = now_ns();
        let seen = self.seen_generation;
        let mut now_seen = seen;
        // The collector waits for the last receipt: waking it for each one would cost the
        // generator, on the machine it shares with the server, thousands of wake-ups a fan-out.
        self.crowd.tally.send_if_modified(|t| {
            if t.generation > seen {
                now_seen = t.generation;
                t.receipts.push(at);
                t.receipts.len() >= t.ready
            } else {
                false
            }
        });
        self.seen_generation = now_seen;
    }

    /// Clears the kept save once the server acknowledged it (or a newer revision).
    fn note_answer(&mut self, revision: u64, acked: bool) {
        let Some((kept, _)) = &self.pending else {
            return;
        };
        if acked && revision >= *kept {
            let index = self.index;
            self.pending = None;
            self.crowd.tally.send_modify(|t| {
                t.unacknowledged -= 1;
                t.revisions[index].0 = t.revisions[index].0.max(revision);
            });
        }
    }

    /// Notes a loop's answer and sends the next save; `Ok(false)` once the loop is over.
    async fn loop_answered(
        &mut self,
        ws: &mut Ws,
        meter: &Meter,
        l: &mut Looping,
        revision: u64,
        acked: bool,
    ) -> Result<bool, ()> {
        let Some((sent_revision, sent_at)) = l.in_flight else {
            return Ok(true);
        };
        if revision != sent_revision && !acked {
            return Ok(true);
        }
        l.in_flight = None;
        let at = now_ns();
        if sent_at >= l.spec.measure_from_ns && at <= l.spec.end_ns {
            if acked && revision == sent_revision {
                l.acks += 1;
                l.latencies_us.push(micros_since(sent_at));
            } else {
                l.refused += 1;
            }
        }
        if at >= l.spec.end_ns {
            return Ok(false);
        }
        self.send_next(ws, meter, l).await.map(|()| true)
    }

    async fn send_next(&mut self, ws: &mut Ws, meter: &Meter, l: &mut Looping) -> Result<(), ()> {
        self.last_revision += 1;
        let question = &l.spec.questions[l.next_question % l.spec.questions.len()];
        l.next_question += 1;
        let frame = answer_save(
            &l.spec.evaluation_id,
            question,
            self.last_revision,
            &l.spec.content,
        );
        l.in_flight = Some((self.last_revision, now_ns()));
        send_text(ws, meter, frame).await.map_err(|_| ())
    }

    fn end_loop(&self, l: Looping, broken: bool) {
        self.crowd.tally.send_modify(|t| {
            t.loops_done += 1;
            t.acks += l.acks;
            t.refused += l.refused;
            t.broken += u64::from(broken);
            t.latencies_us.extend_from_slice(&l.latencies_us);
        });
    }
}

/// The worker's state between commands.
#[derive(Default)]
struct Worker {
    /// Counts the traffic of every connection of this worker, sockets and polls.
    meter: Arc<Meter>,
    crowd: Option<Arc<Crowd>>,
    control: Option<watch::Sender<Control>>,
    students: Vec<Credential>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Runs a worker until its stdin closes.
pub async fn run() -> Result<()> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut stdout = tokio::io::stdout();
    let mut worker = Worker::default();
    while let Some(line) = lines.next_line().await? {
        let command: Command =
            serde_json::from_str(&line).context("while reading a command from the conductor")?;
        let reply = match worker.handle(command).await {
            Ok(reply) => reply,
            Err(e) => Reply::Failed {
                message: format!("{e:#}"),
            },
        };
        let mut text = serde_json::to_string(&reply)?;
        text.push('\n');
        stdout.write_all(text.as_bytes()).await?;
        stdout.flush().await?;
    }
    worker.disconnect().await;
    Ok(())
}

impl Worker {
    async fn handle(&mut self, command: Command) -> Result<Reply> {
        match command {
            Command::Connect {
                endpoint,
                source,
                students,
                heartbeat_ms,
                in_flight,
            } => {
                self.disconnect().await;
                Ok(self
                    .connect(endpoint, source, students, heartbeat_ms, in_flight)
                    .await)
            }
            Command::Arm { generation } => {
                self.crowd()?.tally.send_modify(|t| {
                    t.generation = generation;
                    t.receipts.clear();
                });
                Ok(Reply::Armed)
            }
            Command::Collect {
                generation,
                timeout_ms,
            } => {
                let crowd = self.crowd()?;
                let mut rx = crowd.tally.subscribe();
                let all = |t: &Tally| t.generation == generation && t.receipts.len() >= t.ready;
                let _ =
                    tokio::time::timeout(Duration::from_millis(timeout_ms), rx.wait_for(all)).await;
                let t = crowd.tally.borrow();
                Ok(Reply::Received {
                    times_ns: t.receipts.clone(),
                    missing: t.ready.saturating_sub(t.receipts.len()),
                })
            }
            Command::SaveLoop {
                evaluation_id,
                questions,
                warmup_ms,
                duration_ms,
                content_bytes,
                revision_base,
            } => {
                let start = now_ns();
                let spec = Arc::new(LoopSpec {
                    evaluation_id,
                    questions,
                    content: "x".repeat(content_bytes),
                    measure_from_ns: start + warmup_ms * 1_000_000,
                    end_ns: start + (warmup_ms + duration_ms) * 1_000_000,
                    revision_base,
                });
                let crowd = self.crowd()?.clone();
                crowd.tally.send_modify(|t| {
                    t.loops_done = 0;
                    t.acks = 0;
                    t.refused = 0;
                    t.broken = 0;
                    t.latencies_us.clear();
                });
                self.tell(Control::Loop(spec))?;
                let mut rx = crowd.tally.subscribe();
                let limit = Duration::from_millis(warmup_ms + duration_ms + 30_000);
                let _ = tokio::time::timeout(limit, rx.wait_for(|t| t.loops_done >= t.ready)).await;
                self.tell(Control::Hold)?;
                let mut reply = Reply::Failed {
                    message: String::new(),
                };
                crowd.tally.send_modify(|t| {
                    // A loop that never ended (its last acknowledgement never came) is broken.
                    let unfinished = t.ready.saturating_sub(t.loops_done) as u64;
                    reply = Reply::Saved {
                        acks: t.acks,
                        refused: t.refused,
                        broken: t.broken + unfinished,
                        latencies_us: std::mem::take(&mut t.latencies_us),
                    };
                });
                Ok(reply)
            }
            Command::SaveOnce {
                evaluation_id,
                question_id,
                revision_base,
            } => {
                let crowd = self.crowd()?.clone();
                crowd.tally.send_modify(|t| t.sent = 0);
                self.tell(Control::Once(Arc::new(OnceSpec {
                    evaluation_id,
                    question_id,
                    revision_base,
                })))?;
                let mut rx = crowd.tally.subscribe();
                let _ = tokio::time::timeout(
                    Duration::from_secs(30),
                    rx.wait_for(|t| t.sent >= t.ready),
                )
                .await;
                Ok(Reply::Sent)
            }
            Command::Settle { timeout_ms } => {
                let crowd = self.crowd()?.clone();
                let mut rx = crowd.tally.subscribe();
                // Every socket was lost with the server: settled once each is back and every
                // save is acknowledged.
                let settled =
                    |t: &Tally| t.came_back >= t.ready && t.lost == 0 && t.unacknowledged == 0;
                let _ =
                    tokio::time::timeout(Duration::from_millis(timeout_ms), rx.wait_for(settled))
                        .await;
                self.tell(Control::Hold)?;
                let t = crowd.tally.borrow();
                let revisions = self
                    .students
                    .iter()
                    .zip(&t.revisions)
                    .map(|(s, &(acked, sent))| Revisions {
                        username: s.username.clone(),
                        acked,
                        sent,
                    })
                    .collect();
                Ok(Reply::Settled {
                    back_ns: t.back.iter().copied().filter(|&at| at > 0).collect(),
                    not_back: t
                        .back
                        .iter()
                        .zip(&t.lost_now)
                        .take(self.students.len())
                        .filter(|(at, lost)| **at == 0 || **lost)
                        .count()
                        .min(t.ready),
                    revisions,
                })
            }
            Command::Poll {
                addr,
                source,
                students,
                path,
                duration_ms,
            } => {
                let meter = self.meter.clone();
                Ok(poll(addr, source, students, path, duration_ms, meter).await)
            }
            Command::Watch => {
                self.crowd()?.tally.send_modify(|t| {
                    t.watching = true;
                    t.lateness_us.clear();
                    t.lost_watching = 0;
                });
                Ok(Reply::Armed)
            }
            Command::Watched => {
                let mut reply = Reply::Armed;
                self.crowd()?.tally.send_modify(|t| {
                    t.watching = false;
                    reply = Reply::Watched {
                        lateness_us: std::mem::take(&mut t.lateness_us),
                        lost: t.lost_watching,
                    };
                });
                Ok(reply)
            }
            Command::Counters => Ok(Reply::Counters(self.meter.traffic())),
            Command::Disconnect => {
                self.disconnect().await;
                Ok(Reply::Disconnected)
            }
        }
    }

    fn crowd(&self) -> Result<&Arc<Crowd>> {
        self.crowd
            .as_ref()
            .context("no students are connected: send connect first")
    }

    fn tell(&self, control: Control) -> Result<()> {
        self.control
            .as_ref()
            .context("no students are connected: send connect first")?
            .send_replace(control);
        Ok(())
    }

    async fn connect(
        &mut self,
        endpoint: Endpoint,
        source: IpAddr,
        students: Vec<Credential>,
        heartbeat_ms: u64,
        in_flight: usize,
    ) -> Reply {
        let count = students.len();
        let crowd = Arc::new(Crowd {
            endpoint,
            source,
            heartbeat: Duration::from_millis(heartbeat_ms.max(1)),
            meter: self.meter.clone(),
            tally: watch::Sender::new(Tally {
                revisions: vec![(0, 0); count],
                back: vec![0; count],
                lost_now: vec![false; count],
                ..Tally::default()
            }),
        });
        let (control, _) = watch::channel(Control::Hold);
        let gate = Arc::new(Semaphore::new(in_flight.max(1)));
        for (index, credential) in students.iter().cloned().enumerate() {
            let student = Student {
                index,
                credential,
                crowd: crowd.clone(),
                control: control.subscribe(),
                rng: StdRng::from_os_rng(),
                last_revision: 0,
                seen_generation: 0,
                pending: None,
                last_beat_ns: None,
                seen_loop: None,
                seen_once: None,
            };
            let gate = gate.clone();
            self.tasks.push(tokio::spawn(async move {
                let first = {
                    let _permit = gate.acquire_owned().await;
                    let c = &student.crowd;
                    student::connect(&c.endpoint, c.source, &student.credential, &c.meter)
                        .await
                        .map(|r| r.ws)
                };
                student.run(first).await;
            }));
        }
        let mut rx = crowd.tally.subscribe();
        let _ = tokio::time::timeout(
            Duration::from_secs(300),
            rx.wait_for(|t| t.ready + t.failed >= count),
        )
        .await;
        let reply = {
            let t = crowd.tally.borrow();
            Reply::Connected {
                ready: t.ready,
                failed: count - t.ready,
                first_error: t.first_error.clone(),
            }
        };
        self.crowd = Some(crowd);
        self.control = Some(control);
        self.students = students;
        reply
    }

    async fn disconnect(&mut self) {
        if let Some(control) = self.control.take() {
            control.send_replace(Control::Close);
        }
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        self.crowd = None;
        self.students.clear();
    }
}

/// Every student fetches `path` once a second over a keep-alive connection of their own, for
/// `duration_ms`, starting at a random point of the first second.
async fn poll(
    addr: SocketAddr,
    source: IpAddr,
    students: Vec<Credential>,
    path: String,
    duration_ms: u64,
    meter: Arc<Meter>,
) -> Reply {
    let end = tokio::time::Instant::now() + Duration::from_millis(duration_ms);
    let path = Arc::new(path);
    let tasks: Vec<_> = students
        .into_iter()
        .map(|s| {
            let (path, meter) = (path.clone(), meter.clone());
            tokio::spawn(async move { poller(addr, source, s, &path, end, &meter).await })
        })
        .collect();
    let (mut ok, mut failed, mut latencies_us) = (0, 0, Vec::new());
    for task in tasks {
        if let Ok(p) = task.await {
            ok += p.0;
            failed += p.1;
            latencies_us.extend(p.2);
        }
    }
    Reply::Polled {
        ok,
        failed,
        latencies_us,
    }
}

async fn poller(
    addr: SocketAddr,
    source: IpAddr,
    student: Credential,
    path: &str,
    end: tokio::time::Instant,
    meter: &Arc<Meter>,
) -> (u64, u64, Vec<u32>) {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nAccept: application/json\r\n\r\n",
        student.token
    );
    let offset = StdRng::from_os_rng().random_range(Duration::ZERO..Duration::from_secs(1));
    let mut every =
        tokio::time::interval_at(tokio::time::Instant::now() + offset, Duration::from_secs(1));
    let (mut ok, mut failed, mut latencies) = (0, 0, Vec::new());
    let mut conn: Option<BufReader<student::Counted<tokio::net::TcpStream>>> = None;
    loop {
        let tick = every.tick().await;
        if tick >= end {
            return (ok, failed, latencies);
        }
        if conn.is_none() {
            match student::tcp(source, addr).await {
                Ok(stream) => {
                    conn = Some(BufReader::new(student::Counted::new(stream, meter.clone())))
                }
                Err(_) => {
                    failed += 1;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let start = now_ns();
        meter
            .messages_out
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match exchange(c, &request).await {
            Ok(200) => {
                ok += 1;
                latencies.push(micros_since(start));
                meter
                    .messages_in
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(_) => failed += 1,
            Err(_) => {
                failed += 1;
                conn = None;
            }
        }
    }
}

/// Writes one request and reads its response (headers and a `Content-Length` body); the status.
async fn exchange<S>(conn: &mut BufReader<S>, request: &str) -> std::io::Result<u16>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    conn.get_mut().write_all(request.as_bytes()).await?;
    let mut line = String::new();
    conn.read_line(&mut line).await?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP status line: {line:?}")))?;
    let mut length = 0usize;
    loop {
        line.clear();
        if conn.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    conn.read_exact(&mut body).await?;
    Ok(status)
}

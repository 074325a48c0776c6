//! Chaos tests of the cluster, each on a PostgreSQL server of its own (initdb and pg_ctl in a
//! temporary folder, on a free port), which it may freeze, restart and skew at will: a listener
//! whose link froze half-open, a database restarted with a change committed in the gap, a node
//! stopped beyond its expiry and resumed, and two nodes whose clocks are 30 s apart.
//!
//! They need PostgreSQL's server binaries (Debian's `postgresql` package, found under
//! `/usr/lib/postgresql/*/bin`) and say that they skip without them (under `CI` they fail
//! instead). As root, the server runs as the `postgres` user, since PostgreSQL refuses root.
//! Every wait is for a condition, bounded; the heartbeat is short to keep them fast.

use crate::helpers::*;
use invigil_protocol::{
    ClientMessage, InvalidationReason, Phase, ServerMessage, Timestamp, UpdateReason, close,
};
use reqwest::StatusCode;
use serde_json::json;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The nodes' heartbeat in these tests.
const HEARTBEAT: Duration = Duration::from_millis(1000);

fn options() -> Options {
    Options {
        heartbeat_ms: HEARTBEAT.as_millis() as u64,
        ..Options::default()
    }
}

// ---- a PostgreSQL server of the test's own ----------------------------------------------------

/// A PostgreSQL server made for one test, stopped (immediately) and removed with it.
struct PrivatePostgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    /// Whether its programs run as `postgres` (the test runs as root).
    as_postgres: bool,
}

impl PrivatePostgres {
    /// Makes and starts one; `None` (having said so) without PostgreSQL's server binaries,
    /// unless under CI, where that fails the test.
    async fn start() -> Option<Self> {
        let Some(bin) = server_binaries() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "the cluster's chaos tests need PostgreSQL's server binaries (initdb, pg_ctl)"
            );
            eprintln!(
                "skipped: the cluster's chaos tests need PostgreSQL's server binaries (initdb, pg_ctl)"
            );
            return None;
        };
        let as_postgres = std::fs::metadata("/proc/self").expect("/proc").uid() == 0;
        let dir = tempfile::Builder::new()
            .prefix("invigil-pg-")
            .tempdir()
            .expect("a temporary directory");
        if as_postgres {
            run(Path::new("chown"), &["postgres:", path(dir.path())], false).await;
        }
        let port = free_port();
        let db = Self {
            bin,
            dir,
            port,
            as_postgres,
        };
        let data = db.data();
        db.run(
            "initdb",
            &[
                "-D",
                path(&data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )
        .await;
        let settings = format!(
            "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={} \
             -c fsync=off -c full_page_writes=off -c max_connections=200",
            db.dir.path().display()
        );
        let log = db.dir.path().join("server.log");
        db.run(
            "pg_ctl",
            &[
                "-D",
                path(&data),
                "-l",
                path(&log),
                "-w",
                "-t",
                "60",
                "-o",
                &settings,
                "start",
            ],
        )
        .await;
        Some(db)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Where it listens.
    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Its URL, for `--database`.
    fn url(&self) -> String {
        self.url_via(self.addr())
    }

    /// Its URL through something in front of it at `addr`.
    fn url_via(&self, addr: SocketAddr) -> String {
        format!("postgres://postgres@{addr}/postgres")
    }

    /// `pg_ctl restart -m immediate`: every connection is cut at once, without a checkpoint (as a
    /// crash would), and the server recovers and accepts connections again before this returns.
    async fn restart_immediately(&self) {
        let (data, log) = (self.data(), self.dir.path().join("server.log"));
        self.run(
            "pg_ctl",
            &[
                "-D",
                path(&data),
                "-l",
                path(&log),
                "-m",
                "immediate",
                "-w",
                "-t",
                "60",
                "restart",
            ],
        )
        .await;
    }

    /// The database's clock, in milliseconds since the epoch.
    async fn now_ms(&self) -> i64 {
        use sqlx::Connection as _;
        let mut conn = sqlx::PgConnection::connect(&self.url())
            .await
            .expect("the private server answers");
        sqlx::query_scalar("SELECT (EXTRACT(EPOCH FROM now()) * 1000)::BIGINT")
            .fetch_one(&mut conn)
            .await
            .expect("its clock")
    }

    async fn run(&self, program: &str, args: &[&str]) {
        run(&self.bin.join(program), args, self.as_postgres).await;
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.data();
        let mut command = command(&self.bin.join("pg_ctl"), self.as_postgres);
        let _ = command
            .args(["-D", path(&data), "-m", "immediate", "-w", "stop"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// The newest `/usr/lib/postgresql/VERSION/bin` that has `initdb` and `pg_ctl`.
fn server_binaries() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").exists() && bin.join("pg_ctl").exists()).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn command(program: &Path, as_postgres: bool) -> std::process::Command {
    if as_postgres {
        let mut command = std::process::Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        std::process::Command::new(program)
    }
}

/// Runs a program to its end (bounded), panicking with its output unless it succeeds.
async fn run(program: &Path, args: &[&str], as_postgres: bool) {
    let mut command = tokio::process::Command::from(command(program, as_postgres));
    command
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(90), command.output())
        .await
        .unwrap_or_else(|_| panic!("{} {args:?} finishes in time", program.display()))
        .expect("the program runs");
    assert!(
        output.status.success(),
        "{} {args:?}: {}{}",
        program.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

// ---- a proxy whose connections can freeze -----------------------------------------------------

/// A TCP proxy in front of the database. [`freeze`](Self::freeze) stops every connection made so
/// far dead — nothing flows either way any more, yet both its sockets stay open, as over a link
/// that died half-open — while connections made later flow.
struct FreezingProxy {
    addr: SocketAddr,
    freezes: watch::Sender<u64>,
    accepting: tokio::task::JoinHandle<()>,
}

impl FreezingProxy {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (freezes, _) = watch::channel(0u64);
        let subscribe = freezes.clone();
        let accepting = tokio::spawn(async move {
            // Aborting this task drops the set, and every connection with it.
            let mut pipes = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let mut frozen = subscribe.subscribe();
                frozen.borrow_and_update();
                pipes.spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let mut client = client;
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
                        _ = frozen.changed() => {}
                    }
                    // Frozen: both sockets stay open until the proxy goes.
                    std::future::pending::<()>().await;
                    drop((client, server));
                });
                while pipes.try_join_next().is_some() {}
            }
        });
        Self {
            addr,
            freezes,
            accepting,
        }
    }

    fn freeze(&self) {
        self.freezes.send_modify(|n| *n += 1);
    }
}

impl Drop for FreezingProxy {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

// ---- what a student's socket brings -----------------------------------------------------------

/// What a socket brought: a message the test waited for, or a close.
#[derive(Debug)]
enum Heard {
    Message(ServerMessage),
    Closed(Option<u16>),
}

/// Reads `socket`, answering heartbeats, until a message matches or it closes; panics after
/// `bound`.
async fn hear(
    socket: &mut Socket,
    bound: Duration,
    mut wanted: impl FnMut(&ServerMessage) -> bool,
) -> Heard {
    socket.keep_heartbeats = true;
    tokio::time::timeout(bound, async {
        loop {
            match socket.receive().await {
                Received::Message(ServerMessage::Heartbeat { .. }) => {
                    socket.send(&ClientMessage::Heartbeat).await;
                }
                Received::Message(m) if wanted(&m) => return Heard::Message(m),
                Received::Message(_) => {}
                Received::Closed(code) => return Heard::Closed(code),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("neither the awaited message nor a close within {bound:?}"))
}

/// Opens a socket of `student` on `node` and reads its snapshot, as [`TestApp::socket_ready`]
/// does; but a close before the snapshot ends (the node resyncing once more) is returned, not a
/// failure.
async fn reconnect(node: &TestApp, student: &Actor) -> Result<(Socket, Vec<ServerMessage>), Heard> {
    let mut socket = node.socket(student).await;
    let mut snapshot = Vec::new();
    loop {
        match socket.receive().await {
            Received::Message(ServerMessage::SnapshotEnd) => return Ok((socket, snapshot)),
            Received::Message(m) => snapshot.push(m),
            Received::Closed(code) => return Err(Heard::Closed(code)),
        }
    }
}

/// Whether a snapshot or update shows `evaluation` as `shows` says.
fn shown(
    messages: &[ServerMessage],
    evaluation: &str,
    shows: impl Fn(&invigil_protocol::Evaluation) -> bool,
) -> bool {
    messages.iter().any(|m| {
        matches!(m, ServerMessage::EvaluationUpdate { evaluation: e, .. } if e.id == evaluation && shows(e))
    })
}

/// A change made elsewhere reaches the student on `node`: as an update within one second, or as
/// a 1012 close within three heartbeats after which the reconnected socket shows it. Measured
/// from `since` (when the change was committed); returns the socket to go on with.
async fn reaches(
    node: &TestApp,
    student: &Actor,
    mut socket: Socket,
    since: Instant,
    reason: UpdateReason,
    shows: impl Fn(&invigil_protocol::Evaluation) -> bool,
    evaluation: &str,
) -> Socket {
    let heard = hear(&mut socket, 3 * HEARTBEAT + Duration::from_secs(1), |m| {
        matches!(m, ServerMessage::EvaluationUpdate { reason: r, evaluation: e, .. }
            if *r == reason && e.id == evaluation && shows(e))
    })
    .await;
    let after = since.elapsed();
    eprintln!("{reason:?} reached the student after {after:?} as {heard:?}");
    match heard {
        Heard::Message(_) => {
            assert!(
                after <= Duration::from_secs(1),
                "{reason:?} arrived after {after:?}, not within one second"
            );
            socket
        }
        Heard::Closed(Some(close::SERVICE_RESTART)) => {
            assert!(
                after <= 3 * HEARTBEAT,
                "the 1012 came after {after:?}, not within three heartbeats"
            );
            let (socket, snapshot) = node.socket_ready(student).await;
            assert!(
                shown(&snapshot, evaluation, &shows),
                "the reconnected snapshot shows the change: {snapshot:?}"
            );
            socket
        }
        Heard::Closed(code) => panic!("the socket closed with {code:?} instead"),
    }
}

/// `PUT /api/evaluations/{id}/ends_at`; panics unless it succeeds.
async fn set_ends_at(node: &TestApp, owner: &Actor, evaluation: &str, ends_at: Timestamp) {
    let (status, body) = node
        .put(
            owner,
            &format!("/api/evaluations/{evaluation}/ends_at"),
            json!({ "ends_at": ends_at }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "moving the end: {body}");
}

/// Saves over HTTP on `node`; whether the acknowledgement says late.
async fn save(
    node: &TestApp,
    student: &Actor,
    evaluation: &str,
    question: &str,
    revision: u64,
) -> bool {
    let (status, ack) = node
        .put(
            student,
            &format!("/api/evaluations/{evaluation}/answers/{question}"),
            json!({"revision": revision, "content": format!("{question} r{revision}")}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{ack}");
    ack["late"].as_bool().expect("late is a boolean")
}

/// A time a whole number of seconds from now, as the API keeps it.
fn seconds_from(ms: i64, seconds: i64) -> Timestamp {
    Timestamp::from_unix_ms(ms + seconds * 1000).expect("a time in range")
}

// ---- the tests --------------------------------------------------------------------------------

#[tokio::test]
async fn a_node_whose_database_link_froze_half_open_still_brings_its_students_every_change() {
    // Invariant: a node whose connections to the database froze half-open (open, silent, no
    // error) does not leave its students deaf: a phase change, an end-time change and a second
    // sign-in made on another node reach its student within a second, or it closes the socket
    // with 1012 within three heartbeats and the reconnected socket shows the new state; the
    // sign-in closes its old socket with 4001 within 5 s.
    let Some(pg) = PrivatePostgres::start().await else {
        return;
    };
    let proxy = FreezingProxy::start(pg.addr()).await;
    let mut a = TestApp::spawn_at(&pg.url_via(proxy.addr), options()).await;
    let b = TestApp::spawn_at(&pg.url(), options()).await;
    let prof = a.professor("prof1").await;
    let alice = a.student("alice").await;
    let evaluation = a.evaluation(&prof, json!({})).await;
    let id = evaluation.id.as_str();
    a.set_access(&prof, id, &[&alice]).await;
    let (socket, _) = a.socket_ready(&alice).await;

    proxy.freeze();

    b.set_phase(&prof, id, "in_progress").await;
    let socket = reaches(
        &a,
        &alice,
        socket,
        Instant::now(),
        UpdateReason::PhaseChanged,
        |e| e.phase == Phase::InProgress,
        id,
    )
    .await;

    let ends_at = seconds_from(pg.now_ms().await, 3600);
    set_ends_at(&b, &prof, id, ends_at).await;
    let mut socket = reaches(
        &a,
        &alice,
        socket,
        Instant::now(),
        UpdateReason::EndsAtChanged,
        |e| e.ends_at == Some(ends_at),
        id,
    )
    .await;

    b.login("alice", PASSWORD).await;
    let signed_in = Instant::now();
    let heard = hear(&mut socket, Duration::from_secs(5), |m| {
        matches!(m, ServerMessage::SessionInvalidated { .. })
    })
    .await;
    assert!(
        matches!(
            heard,
            Heard::Message(ServerMessage::SessionInvalidated {
                reason: InvalidationReason::SignedInElsewhere
            })
        ),
        "{heard:?}"
    );
    let closed = hear(&mut socket, Duration::from_secs(5), |_| false).await;
    assert!(
        matches!(closed, Heard::Closed(Some(close::SESSION_INVALIDATED))),
        "{closed:?}"
    );
    assert!(signed_in.elapsed() <= Duration::from_secs(5));
}

#[tokio::test]
async fn a_phase_change_committed_while_the_database_restarts_reaches_every_node() {
    // Invariant: a change committed in the gap of a database restart (`pg_ctl restart -m
    // immediate`, every connection cut), while a node's listener is down, is never missed by
    // its students: they get it as EVALUATION_UPDATE, or are closed with 1012 and the
    // reconnected socket's snapshot shows it.
    let Some(pg) = PrivatePostgres::start().await else {
        return;
    };
    let mut a = TestApp::spawn_at(&pg.url(), options()).await;
    let b = TestApp::spawn_at(&pg.url(), options()).await;
    let prof = a.professor("prof1").await;
    let alice = a.student("alice").await;
    let evaluation = a.evaluation(&prof, json!({})).await;
    let id = evaluation.id.as_str();
    a.set_access(&prof, id, &[&alice]).await;
    let (mut socket, _) = a.socket_ready(&alice).await;

    pg.restart_immediately().await;
    b.set_phase(&prof, id, "in_progress").await;

    let started = Instant::now();
    loop {
        assert!(started.elapsed() < WAIT, "the change never reached alice");
        let heard = hear(&mut socket, WAIT, |m| {
            shown(std::slice::from_ref(m), id, |e| {
                e.phase == Phase::InProgress
            })
        })
        .await;
        match heard {
            Heard::Message(_) => break,
            Heard::Closed(Some(close::SERVICE_RESTART)) => {
                // Closed again at once (the node resynced once more): reconnect again.
                let snapshot = loop {
                    assert!(started.elapsed() < WAIT, "alice could not reconnect");
                    if let Ok((again, snapshot)) = reconnect(&a, &alice).await {
                        socket = again;
                        break snapshot;
                    }
                };
                if shown(&snapshot, id, |e| e.phase == Phase::InProgress) {
                    break;
                }
                // The node listened again before the change committed: it comes as an update.
            }
            Heard::Closed(code) => panic!("the socket closed with {code:?}"),
        }
    }
}

#[tokio::test]
async fn a_node_stopped_beyond_its_expiry_and_resumed_counts_its_students_again() {
    // Invariant: a node stopped (SIGSTOP) for longer than its expiry is taken for dead (another
    // node shows its students disconnected), and once resumed (SIGCONT) counts them again and
    // misses nothing: its sockets are closed, the students reconnect to it, are shown connected,
    // see what changed meanwhile, and every acknowledged answer is kept.
    let Some(pg) = PrivatePostgres::start().await else {
        return;
    };
    let mut a = TestApp::spawn_at(&pg.url(), options()).await;
    let b = TestApp::spawn_at(&pg.url(), options()).await;
    let prof = a.professor("prof1").await;
    let alice = a.student("alice").await;
    let evaluation = a.running(&prof, &[&alice]).await;
    let id = evaluation.id.as_str();
    a.join(&alice, id).await;
    let (mut board, _) = b.socket_ready(&prof).await;
    let (mut socket, _) = a.socket_ready(&alice).await;
    let row = |m: &ServerMessage, connected: bool| {
        matches!(m, ServerMessage::ParticipantUpdate { evaluation_id, participant }
            if evaluation_id == id && participant.username == "alice" && participant.connected == connected)
    };
    board.until_alive(|m| row(m, true)).await;
    socket.save(id, "q1", 1, "q1 r1").await;
    assert!(matches!(
        socket.ack("q1").await,
        ServerMessage::AnswerAck { revision: 1, .. }
    ));

    let pid = nix::unistd::Pid::from_raw(a.pid().expect("node A runs") as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).expect("SIGSTOP");
    // Its beat expires: the other node sweeps it and shows alice gone.
    board.until_alive(|m| row(m, false)).await;
    let ends_at = seconds_from(pg.now_ms().await, 1800);
    set_ends_at(&b, &prof, id, ends_at).await;
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).expect("SIGCONT");

    // The resumed node closes her socket: 1012 (its feed may have missed changes, and it was
    // swept), or 4008 if it judges her silence first (it heard nothing while stopped). She
    // reconnects as the app does, until a socket of hers stays and is counted.
    let started = Instant::now();
    let mut closed = hear(&mut socket, WAIT, |_| false).await;
    let snapshot = loop {
        assert!(
            matches!(
                closed,
                Heard::Closed(Some(close::SERVICE_RESTART | close::SILENT))
            ),
            "{closed:?}"
        );
        assert!(started.elapsed() < WAIT, "alice never settled on node A");
        let (again, snapshot) = match reconnect(&a, &alice).await {
            Ok(opened) => opened,
            Err(again) => {
                closed = again;
                continue;
            }
        };
        socket = again;
        socket.save(id, "q1", 2, "q1 r2").await;
        match hear(&mut socket, WAIT, |m| {
            matches!(m, ServerMessage::AnswerAck { .. })
        })
        .await
        {
            Heard::Message(ack) => {
                assert!(
                    matches!(ack, ServerMessage::AnswerAck { revision: 2, .. }),
                    "{ack:?}"
                );
                break snapshot;
            }
            again => closed = again,
        }
    };
    assert!(
        shown(&snapshot, id, |e| e.ends_at == Some(ends_at)),
        "the change made while node A was stopped is in the snapshot: {snapshot:?}"
    );
    board.until_alive(|m| row(m, true)).await;
    let (status, body) = b
        .get(&prof, &format!("/api/evaluations/{id}/participants"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body[0]["username"], "alice");
    assert_eq!(body[0]["connected"], true, "{body}");
    assert_eq!(body[0]["answered"], 1, "{body}");
    let (status, body) = b
        .get(
            &prof,
            &format!("/api/evaluations/{id}/answers?username=alice"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body[0]["revision"], 2, "{body}");
}

#[tokio::test]
async fn two_nodes_with_clocks_30_s_apart_judge_a_save_late_alike() {
    // Invariant: lateness is judged by the database's clock when a save arrives, so two nodes
    // whose clocks are 30 s apart (one 15 s behind the database, one 15 s ahead) judge the same
    // save on time, or late, alike.
    let Some(pg) = PrivatePostgres::start().await else {
        return;
    };
    let skewed = |ms: i64| Options {
        args: vec![format!("--clock-offset-ms={ms}")],
        ..options()
    };
    let mut behind = TestApp::spawn_at(&pg.url(), skewed(-15_000)).await;
    let ahead = TestApp::spawn_at(&pg.url(), skewed(15_000)).await;
    let prof = behind.professor("prof1").await;
    let alice = behind.student("alice").await;
    let evaluation = behind.running(&prof, &[&alice]).await;
    let id = evaluation.id.as_str();
    behind.join(&alice, id).await;

    // The skew is real: each node's clock, as its WELCOME tells it.
    let mut clocks = Vec::new();
    for node in [&behind, &ahead] {
        let (mut socket, snapshot) = node.socket_ready(&prof).await;
        let ServerMessage::Welcome { server_time, .. } = &snapshot[0] else {
            unreachable!("WELCOME comes first")
        };
        clocks.push(server_time.unix_ms());
        socket.close().await;
    }
    let apart = clocks[1] - clocks[0];
    assert!(
        (25_000..=35_000).contains(&apart),
        "the nodes' clocks are {apart} ms apart"
    );

    // The end is 10 s away by the database's clock: the node ahead would have judged it past.
    set_ends_at(&ahead, &prof, id, seconds_from(pg.now_ms().await, 10)).await;
    assert!(
        !save(&behind, &alice, id, "q1", 1).await,
        "on time, on the node behind"
    );
    assert!(
        !save(&ahead, &alice, id, "q2", 1).await,
        "on time, on the node ahead"
    );

    // The end was 10 s ago by the database's clock: the node behind would have judged it to come.
    set_ends_at(&behind, &prof, id, seconds_from(pg.now_ms().await, -10)).await;
    assert!(
        save(&behind, &alice, id, "q1", 2).await,
        "late, on the node behind"
    );
    assert!(
        save(&ahead, &alice, id, "q2", 2).await,
        "late, on the node ahead"
    );
}

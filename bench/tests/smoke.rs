//! The benchmark's smoke run: every scenario with a few dozen students against the debug build of
//! invigil-server and, where their packages are installed (bench/setup; CI installs them), the
//! peers. It checks that each scenario measures what it says, not how fast anything is: speed is
//! for `bench/run`, on a quiet machine.

use invigil_bench::report::Results;
use std::path::Path;
use std::process::Command;

fn peers_installed(root: &Path) -> bool {
    let peers = root.join("bench").join("peers");
    peers.join("node_modules").join("ws").exists()
        && peers.join("node_modules").join("socket.io").exists()
        && peers.join(".venv").join("bin").join("python3").exists()
}

fn postgres_reachable(url: &str) -> bool {
    let Some(host) = url
        .split_once("://")
        .map(|(_, rest)| rest.rsplit_once('@').map_or(rest, |(_, h)| h))
        .and_then(|rest| rest.split('/').next())
    else {
        return false;
    };
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    };
    std::net::TcpStream::connect(host).is_ok()
}

#[test]
fn every_scenario_runs_and_measures_every_student() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let work = tempfile::tempdir().unwrap();
    let in_ci = std::env::var_os("CI").is_some();
    let mut command = Command::new(env!("CARGO_BIN_EXE_invigil-bench"));
    command
        .args(["run", "--mode", "smoke", "--server"])
        .arg(invigil_e2e::server::server_binary())
        .arg("--work")
        .arg(work.path())
        .env_remove("INVIGIL_BENCH_POSTGRES_URL");
    let peers = peers_installed(root);
    if !peers {
        assert!(
            !in_ci,
            "the peers are not installed: bench/setup must run in CI"
        );
        eprintln!("SKIPPED the peers: their packages are not installed (run bench/setup)");
        command.args(["--target", "invigil"]);
    }
    let postgres = std::env::var("INVIGIL_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| postgres_reachable(url));
    match &postgres {
        Some(url) => {
            command.args(["--postgres", url]);
        }
        None => eprintln!(
            "SKIPPED answers on PostgreSQL: INVIGIL_TEST_POSTGRES_URL is unset or unreachable"
        ),
    }
    let status = command.status().expect("the bench runs");
    assert!(status.success(), "the smoke run failed");

    let results: Results =
        serde_json::from_str(&std::fs::read_to_string(work.path().join("results.json")).unwrap())
            .unwrap();
    let targets = if peers { 4 } else { 1 };
    assert_eq!(results.idle.len(), targets, "{:?}", results.idle);
    for row in &results.idle {
        assert_eq!(row.runs[0].sockets, 40, "{}", row.target);
        assert!(row.runs[0].rss_after > 0, "{}", row.target);
        assert!(row.runs[0].open_files >= 40, "{}", row.target);
    }
    assert_eq!(results.fanout.len(), targets);
    for row in &results.fanout {
        assert_eq!(row.missing, 0, "{} missed updates", row.target);
        assert_eq!(row.changes.len(), 2, "{}", row.target);
        assert!(row.changes.iter().all(|c| c.count == 40), "{}", row.target);
    }
    let engines: Vec<&str> = results.answers.iter().map(|r| r.engine.as_str()).collect();
    let expected: &[&str] = if postgres.is_some() {
        &["sqlite", "postgres"]
    } else {
        &["sqlite"]
    };
    assert_eq!(engines, expected);
    for row in &results.answers {
        let run = &row.runs[0];
        assert!(run.acks_per_s > 0.0, "{}", row.engine);
        assert_eq!((run.refused, run.broken), (0, 0), "{}", row.engine);
        assert!(run.latency.count > 0, "{}", row.engine);
    }
    let storm = &results.storm[0].runs[0];
    assert_eq!(storm.saves, 40);
    assert_eq!((storm.not_back, storm.lost), (0, 0), "{storm:?}");
    assert!(storm.all_back_after_kill_ms >= storm.restart_ms);
    assert_eq!(results.invalidation[0].latency.count, 5);
    // Each of the 20 pollers fetched once a second for the 3 s window, and every request and
    // response was counted; the push side saw frames both ways.
    let polling = &results.polling[0].runs[0];
    assert_eq!(polling.poll_failures, 0);
    assert_eq!(polling.poll_latency.count, 20 * 3, "{polling:?}");
    assert_eq!(polling.poll.messages, 2 * 20 * 3, "{polling:?}");
    assert!(
        polling.push.messages > 0 && polling.push.bytes > 0,
        "{polling:?}"
    );
    // Every student of the burst got in (some after server_busy), no held socket was lost, the
    // memory figures were read, and every bad sign-in of the hostile wave was answered.
    let burst = &results.burst[0].runs[0];
    assert_eq!((burst.students, burst.background), (30, 40), "{burst:?}");
    assert_eq!((burst.failed, burst.lost), (0, 0), "{burst:?}");
    assert!(
        burst.peak >= burst.rss_idle && burst.settled > 0,
        "{burst:?}"
    );
    assert!(burst.heartbeat_late.count > 0, "{burst:?}");
    let hostile = &burst.hostile;
    assert_eq!(hostile.answered.values().sum::<usize>(), 200, "{hostile:?}");
    assert!(
        hostile
            .answered
            .keys()
            .all(|status| [401, 429, 503].contains(status)),
        "only the contract's refusals: {hostile:?}"
    );
    let report = std::fs::read_to_string(work.path().join("report.md")).unwrap();
    assert!(report.contains("### Fan-out") && report.contains("### Reconnection storm"));
    assert!(report.contains("### Sign-in burst"));

    if peers {
        let png = work.path().join("fanout.png");
        let plotted = Command::new(root.join("bench/peers/.venv/bin/python3"))
            .arg(root.join("bench/plot.py"))
            .arg(work.path().join("results.json"))
            .arg(&png)
            .status()
            .expect("the plot script runs");
        assert!(plotted.success());
        let bytes = std::fs::read(&png).unwrap();
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "the plot is a PNG");
    }
}

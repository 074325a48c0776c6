//! A full disk on the student's computer: answers are sent from memory, the student is told
//! steadily, and nothing that exists only in memory can be signed away.
//!
//! The data folder is a 2 MiB tmpfs, filled up mid-exam and freed later. Mounting needs root (as
//! `.ci/run` runs); elsewhere the test says it skips.

use crate::harness::*;
use invigil_client::outbox::Outbox;
use invigil_client::view::{AnswerState, ConnectionState, Event};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A small tmpfs, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount() -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
            .arg(dir.path())
            .status()
            .ok()?;
        status.success().then_some(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the disk to the last byte; returns the filler file.
    fn fill(&self) -> PathBuf {
        let filler = self.path().join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 4096];
        while file.write_all(&block).is_ok() {}
        while file.write_all(&[0]).is_ok() {}
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[tokio::test]
async fn on_a_full_disk_answers_are_sent_from_memory_and_nothing_only_in_memory_is_signed_away() {
    // Invariants: the answer reaches the server although the disk refuses it; the notice stays
    // up (and names no path) while anything is only in memory; signing out or in is refused
    // meanwhile; once the disk has room every answer is on disk, and each is acknowledged once.
    let Some(disk) = SmallDisk::mount() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "mounting a tmpfs failed (CI runs as root)"
        );
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let server = Server::start(5000).await;
    let proxy = Proxy::start(server.addr).await;
    let (prof, id) = running_exam(&server, &["alice"]).await;
    let mut alice = sitting(&proxy.url(), disk.path(), "alice", &id).await;
    alice.take_seen();

    // Mid-exam the disk fills up; the network still works.
    let filler = disk.fill();
    alice
        .engine
        .edit(&id, "q1", "typed on a full disk".into())
        .unwrap();
    let refused = alice
        .until("q1 saved on the server", |o| {
            o.storage_problem.is_some() && answer_state(o, &id, "q1") == Some(AnswerState::Saved)
        })
        .await;
    let notice = refused.storage_problem.unwrap();
    assert!(!notice.contains('/'), "a path in the notice: {notice}");
    assert_eq!(refused.only_in_memory, 0, "q1 is on the server");

    // Now the network goes too: what is typed exists only in memory.
    proxy.set(Network::Cut);
    alice.until_connection(ConnectionState::Unreachable).await;
    alice
        .engine
        .edit(&id, "q2", "typed with neither disk nor network".into())
        .unwrap();
    let in_memory = alice
        .until("q2 only in memory", |o| {
            o.only_in_memory == 1 && answer_state(o, &id, "q2") == Some(AnswerState::Waiting)
        })
        .await;
    assert!(
        answer_view(&in_memory, &id, "q2").only_in_memory,
        "the screen must not say q2 is saved on this computer"
    );
    let sign_out = alice.engine.sign_out().await.unwrap_err();
    assert_eq!(sign_out.kind(), "only_in_memory");
    let hand_in = alice.engine.submit(&id).await.unwrap_err();
    assert_eq!(hand_in.kind(), "pending_answers");
    assert!(alice.engine.overview().session.signed_in);

    // Room again on the disk, then the network: on disk, and each answer acknowledged once.
    std::fs::remove_file(filler).unwrap();
    let written = alice
        .until("written to disk", |o| {
            o.storage_problem.is_none() && o.only_in_memory == 0
        })
        .await;
    assert!(
        !answer_view(&written, &id, "q2").only_in_memory,
        "q2 is saved on this computer now"
    );
    let last_told = alice.seen_so_far().into_iter().rev().find_map(|e| match e {
        Event::Answer(a) if a.answer.question_id == "q2" => Some(a.answer),
        _ => None,
    });
    assert!(
        last_told.is_some_and(|a| !a.only_in_memory),
        "the screen was told q2 is on disk now"
    );
    let on_disk = Outbox::open(outbox_dir(disk.path(), &proxy.url(), "alice")).unwrap();
    let contents: Vec<(&str, &str, bool)> = on_disk
        .records()
        .map(|r| (r.question_id.as_str(), r.content.as_str(), r.is_pending()))
        .collect();
    assert_eq!(
        contents,
        [
            ("q1", "typed on a full disk", false),
            ("q2", "typed with neither disk nor network", true)
        ]
    );
    proxy.set(Network::Up);
    alice.until("q2 saved", |o| o.pending == 0).await;

    let seen = alice.take_seen();
    let storage_notices: Vec<&Option<String>> = seen
        .iter()
        .filter_map(|e| match e {
            Event::Storage(problem) => Some(problem),
            _ => None,
        })
        .collect();
    assert_eq!(
        storage_notices.len(),
        2,
        "the notice went up once and down once: {storage_notices:?}"
    );
    for question in ["q1", "q2"] {
        let saved = seen
            .iter()
            .filter(|e| {
                matches!(e, Event::Answer(a)
                    if a.answer.question_id == question && a.answer.state == AnswerState::Saved)
            })
            .count();
        assert_eq!(saved, 1, "{question} acknowledged {saved} times");
    }
    let stored = prof.answers(&id, "alice").await;
    assert_eq!(stored.len(), 2);
    assert!(stored.iter().all(|a| a.revision == 1));
}

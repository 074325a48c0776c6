//! Tests: `invigil-server backup` and `restore` — a copy taken while students keep saving holds
//! every answer acknowledged before it began, opens with the server, and is put back only onto a
//! database that no server has open.
//!
//! These run on SQLite whatever `INVIGIL_TEST_ENGINE` says: on PostgreSQL the commands only say
//! how to use `pg_dump` and `pg_restore` (tested last).

use crate::helpers::*;
use invigil_protocol::{Answer, ServerMessage};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use tokio::sync::watch;

/// What a command printed, and whether it succeeded.
struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `invigil-server TASK --database DATABASE FILE` to its end.
async fn run(task: &str, database: &str, file: &Path) -> Ran {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_invigil-server"))
        .arg(task)
        .arg("--database")
        .arg(database)
        .arg(file)
        .env_remove("INVIGIL_DATABASE_URL")
        .env_remove("INVIGIL_BOOTSTRAP_ADMIN")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the command starts");
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("the command ends in time")
        .expect("its output");
    Ran {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// What a save writes: distinct for every student, question and revision.
fn content(student: &str, question: &str, revision: u64) -> String {
    format!(
        "{student}'s answer to {question}, revision {revision}: {}",
        "x".repeat(200)
    )
}

const QUESTIONS: [&str; 4] = ["q1", "q2", "q3", "q4"];
const STUDENTS: [&str; 3] = ["alice", "bob", "chloe"];

/// The highest revision acknowledged so far for each (student, question), and how many
/// acknowledgements arrived in all.
#[derive(Debug, Default, Clone)]
struct Acknowledged {
    highest: BTreeMap<(String, String), u64>,
    count: u64,
}

/// A student saving without pause: every round sends a new revision of each question at once and
/// reads their acknowledgements, recording each as it arrives, until `stop` is raised.
async fn keep_saving(
    mut socket: Socket,
    student: String,
    evaluation: String,
    acked: watch::Sender<Acknowledged>,
    mut stop: watch::Receiver<bool>,
) {
    for revision in 1u64.. {
        if *stop.borrow_and_update() {
            return;
        }
        for question in QUESTIONS {
            socket
                .save(
                    &evaluation,
                    question,
                    revision,
                    &content(&student, question, revision),
                )
                .await;
        }
        let mut pending = QUESTIONS.len();
        while pending > 0 {
            match socket.next().await {
                ServerMessage::AnswerAck {
                    question_id,
                    revision: stored,
                    ..
                } => {
                    assert_eq!(stored, revision, "each save is stored as sent");
                    pending -= 1;
                    acked.send_modify(|acked| {
                        acked
                            .highest
                            .insert((student.clone(), question_id), revision);
                        acked.count += 1;
                    });
                }
                ServerMessage::EvaluationUpdate { .. }
                | ServerMessage::ParticipantUpdate { .. } => {}
                other => panic!("{student}: only acknowledgements were expected, got {other:?}"),
            }
        }
    }
}

/// Waits until at least `count` acknowledgements have arrived in all, and one for every student
/// and question.
async fn until_acknowledged(progress: &mut watch::Receiver<Acknowledged>, count: u64) {
    let every = QUESTIONS.len() * STUDENTS.len();
    tokio::time::timeout(
        WAIT,
        progress.wait_for(|a| a.count >= count && a.highest.len() == every),
    )
    .await
    .unwrap_or_else(|_| panic!("{count} acknowledgements in time"))
    .expect("the savers are running");
}

/// A student's stored answers as their professor reads them, by question.
async fn stored(
    app: &TestApp,
    prof: &Actor,
    evaluation: &str,
    student: &str,
) -> BTreeMap<String, Answer> {
    let (status, body) = app
        .get(
            prof,
            &format!("/api/evaluations/{evaluation}/answers?username={student}"),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "reading {student}'s answers: {body}"
    );
    let answers: Vec<Answer> = serde_json::from_value(body).unwrap();
    answers
        .into_iter()
        .map(|a| (a.question_id.clone(), a))
        .collect()
}

#[tokio::test]
async fn a_backup_during_saves_holds_every_answer_acknowledged_before_it_and_restores() {
    // Invariant: a backup taken while students save without pause contains every answer whose
    // acknowledgement arrived before the backup started, at that revision or a later one; saving
    // goes on during and after it; the copy restores and a server serves it.
    let mut app = TestApp::spawn_on(None, Options::default()).await;
    let prof = app.professor("prof1").await;
    let mut students = Vec::new();
    for name in STUDENTS {
        students.push(app.student(name).await);
    }
    let questions: Vec<Value> = QUESTIONS
        .iter()
        .map(|q| json!({"id": q, "prompt": format!("Question {q}"), "kind": "text"}))
        .collect();
    let evaluation = app.evaluation(&prof, json!({"questions": questions})).await;
    app.set_access(&prof, &evaluation.id, &students.iter().collect::<Vec<_>>())
        .await;
    app.set_phase(&prof, &evaluation.id, "in_progress").await;

    let (acked, mut progress) = watch::channel(Acknowledged::default());
    let (stop, stopped) = watch::channel(false);
    let mut savers = Vec::new();
    for student in &students {
        app.join(student, &evaluation.id).await;
        let (socket, _) = app.socket_ready(student).await;
        savers.push(tokio::spawn(keep_saving(
            socket,
            student.name().to_owned(),
            evaluation.id.clone(),
            acked.clone(),
            stopped.clone(),
        )));
    }
    until_acknowledged(&mut progress, 200).await;

    // Act: back up while the three go on saving.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("exam.backup");
    let before = progress.borrow().clone();
    let backup = run("backup", &app.database_url(), &file).await;
    let at_end = progress.borrow().count;
    assert!(backup.ok, "backup failed: {}", backup.stderr);
    let report = backup.stdout;
    assert!(report.contains("integrity ok"), "{report}");
    assert!(
        report.lines().any(|l| l.starts_with("answers\t")),
        "{report}"
    );
    eprintln!(
        "{} saves were acknowledged while the backup ran",
        at_end - before.count
    );
    // Saving goes on after the backup as before it.
    until_acknowledged(&mut progress, at_end + 100).await;

    // The copy holds passwords' and sessions' hashes: its owner alone may read it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the backup's mode");
    }

    // Restoring onto the database the server is using is refused, and changes nothing.
    let refused = run("restore", &app.database_url(), &file).await;
    assert!(!refused.ok, "restore onto a live database");
    assert!(refused.stderr.contains("is in use"), "{}", refused.stderr);
    stop.send_replace(true);
    for saver in savers {
        tokio::time::timeout(WAIT, saver)
            .await
            .expect("the savers stop")
            .expect("a saver failed");
    }
    let live = progress.borrow().clone();
    for name in STUDENTS {
        let answers = stored(&app, &prof, &evaluation.id, name).await;
        for question in QUESTIONS {
            let revision = live.highest[&(name.to_owned(), question.to_owned())];
            assert_eq!(
                answers[question].revision, revision,
                "the live server still has {name}'s last acknowledged {question}"
            );
        }
    }

    // The copy restores onto another server's database once that server is stopped, and that
    // server then serves every answer acknowledged before the backup.
    let mut copy = TestApp::spawn_on(None, Options::default()).await;
    assert!(copy.terminate().await, "the second server stops cleanly");
    let restored = run("restore", &copy.database_url(), &file).await;
    assert!(restored.ok, "restore failed: {}", restored.stderr);
    copy.restart().await;
    // The professor's session was stored before the backup: it goes on working on the copy.
    for name in STUDENTS {
        let answers = stored(&copy, &prof, &evaluation.id, name).await;
        for question in QUESTIONS {
            let acknowledged = before.highest[&(name.to_owned(), question.to_owned())];
            let answer = answers
                .get(question)
                .unwrap_or_else(|| panic!("{name}'s {question} is in the copy"));
            assert!(
                answer.revision >= acknowledged,
                "{name}'s {question}: revision {} in the copy, {acknowledged} acknowledged before the backup",
                answer.revision
            );
            assert_eq!(answer.content, content(name, question, answer.revision));
        }
    }
}

#[tokio::test]
async fn restore_refuses_what_is_not_a_backup_and_replaces_an_unreadable_database() {
    // Invariant: a file that is not a sound invigil database never replaces the database; a
    // database SQLite cannot read at all is replaced by a good backup.
    let mut app = TestApp::spawn_on(None, Options::default()).await;
    app.create_user("dora", STUDENT).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("good.backup");
    let backup = run("backup", &app.database_url(), &file).await;
    assert!(backup.ok, "{}", backup.stderr);
    assert!(app.terminate().await);

    // The database itself is never a backup's destination.
    let mut log = app.db_path().into_os_string();
    log.push("-wal");
    for destination in [app.db_path(), log.into()] {
        let over_itself = run("backup", &app.database_url(), &destination).await;
        assert!(!over_itself.ok, "a backup onto {}", destination.display());
        assert!(
            over_itself.stderr.contains("the database itself"),
            "{}",
            over_itself.stderr
        );
        assert!(!leftovers(app.db_path().parent().unwrap()));
    }

    // Not a database: refused, the database untouched.
    let garbage = dir.path().join("garbage.backup");
    std::fs::write(&garbage, vec![7u8; 8192]).unwrap();
    let before = std::fs::read(app.db_path()).unwrap();
    let refused = run("restore", &app.database_url(), &garbage).await;
    assert!(!refused.ok);
    assert!(
        refused.stderr.contains("is not a usable backup"),
        "{}",
        refused.stderr
    );
    assert_eq!(std::fs::read(app.db_path()).unwrap(), before);

    // A database that is not one of ours: refused.
    let foreign = dir.path().join("foreign.db");
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&foreign)
        .create_if_missing(true);
    {
        use sqlx::{ConnectOptions as _, Connection as _};
        let mut conn = options.connect().await.unwrap();
        sqlx::query("CREATE TABLE notes (body TEXT)")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }
    let refused = run("restore", &app.database_url(), &foreign).await;
    assert!(!refused.ok);
    assert!(
        refused.stderr.contains("not an invigil database"),
        "{}",
        refused.stderr
    );

    // The database destroyed: the backup replaces it, and the server serves it.
    std::fs::write(app.db_path(), b"this is no longer a database").unwrap();
    let restored = run("restore", &app.database_url(), &file).await;
    assert!(restored.ok, "{}", restored.stderr);
    assert!(restored.stdout.contains("users\t"));
    app.restart().await;
    app.login("dora", PASSWORD).await;
    assert!(!leftovers(app.db_path().parent().unwrap()));
}

/// Whether a partial file of a backup or a restore was left behind in `dir`.
fn leftovers(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().any(|e| {
        e.unwrap()
            .file_name()
            .to_string_lossy()
            .contains(".partial-")
    })
}

#[tokio::test]
async fn on_postgresql_backup_and_restore_say_how_with_pg_dump_and_pg_restore() {
    let url = "postgres://invigil@127.0.0.1:1/exams";
    let backup = run("backup", url, Path::new("exams.dump")).await;
    assert!(!backup.ok);
    let said = backup.stderr;
    assert!(
        said.contains("pg_dump --format=custom --file=exams.dump"),
        "{said}"
    );
    assert!(!said.contains("127.0.0.1:1"), "the URL is not echoed");

    let restore = run("restore", url, Path::new("exams.dump")).await;
    assert!(!restore.ok);
    let said = restore.stderr;
    assert!(said.contains("pg_restore --clean --if-exists"), "{said}");
}

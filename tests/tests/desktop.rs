//! End to end, in a real window: the built desktop app under Xvfb, driven through tauri-driver
//! and WebKitWebDriver, against the real server. Screenshots go to `target/e2e/`.
//!
//! Without a display or the drivers these tests say that they skip, except in CI (`CI` set),
//! where they fail: `.ci/run` provides all of it.

#![allow(missing_docs)]

use invigil_e2e::server::{PASSWORD, Server, Staff};
use invigil_e2e::webdriver::{App, ENTER, TAB, Tooling, tooling};
use std::time::{Duration, Instant};

/// One app window at a time: tauri-driver sessions and the display are shared.
static WINDOW: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn tools(test: &str) -> Option<Tooling> {
    match tooling() {
        Ok(t) => Some(t),
        Err(missing) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run the end-to-end tests: {missing}"
            );
            eprintln!("SKIPPED {test}: {missing}");
            None
        }
    }
}

/// The state of a question's answer as the page shows it.
fn answer(question: &str, state: &str) -> String {
    format!(
        r#"document.querySelector('#questions [data-question="{question}"] .answer-status').dataset.state === '{state}'"#
    )
}

async fn sign_in(app: &App, username: &str) {
    app.until(
        "the sign-in form",
        "!document.getElementById('screen-sign-in').hidden",
    )
    .await;
    app.clear("#login-username").await;
    app.type_into("#login-username", username).await;
    app.type_into("#login-password", PASSWORD).await;
    app.click("#sign-in-button").await;
}

#[tokio::test]
async fn answers_survive_a_server_outage_in_a_real_window() {
    let Some(tooling) = tools("answers_survive_a_server_outage_in_a_real_window") else {
        return;
    };
    let _window = WINDOW.lock().await;
    let heartbeat = Duration::from_millis(1000);
    let mut server = Server::start(heartbeat.as_millis() as u64).await;
    let admin = Staff::admin(&server).await;
    let prof = admin.professor("prof").await;
    admin.create_user("alice", "student").await;
    let evaluation = prof.running(&["alice"]).await;
    let data = tempfile::tempdir().unwrap();
    let url = server.url();
    let app = App::launch(
        &tooling,
        &[
            ("INVIGIL_SERVER_URL", url.as_str()),
            ("INVIGIL_DATA_DIR", data.path().to_str().unwrap()),
        ],
    )
    .await;

    // Sign in, wrongly first: the error is clear.
    app.until(
        "the sign-in form",
        "!document.getElementById('screen-sign-in').hidden",
    )
    .await;
    app.type_into("#login-username", "alice").await;
    app.type_into("#login-password", "wrong").await;
    app.click("#sign-in-button").await;
    app.until(
        "the sign-in error",
        "!document.getElementById('sign-in-error').hidden",
    )
    .await;
    assert_eq!(
        app.text("#sign-in-error").await,
        "Wrong username or password."
    );
    app.screenshot("01-sign-in-error").await;
    app.clear("#login-password").await;
    app.type_into("#login-password", PASSWORD).await;
    app.click("#sign-in-button").await;

    // The list, then the exam.
    app.until(
        "the evaluation in the list",
        &format!(
            "document.querySelector('#evaluations [data-evaluation=\"{}\"] button')",
            evaluation.id
        ),
    )
    .await;
    app.until(
        "online",
        "document.getElementById('banner').dataset.state === 'online'",
    )
    .await;
    app.screenshot("02-evaluations").await;
    app.click(&format!(
        "#evaluations [data-evaluation=\"{}\"] button",
        evaluation.id
    ))
    .await;
    app.until("the exam", "!document.getElementById('screen-exam').hidden")
        .await;
    app.type_into(
        "#questions [data-question=\"q1\"] textarea",
        "Quicksort picks a pivot",
    )
    .await;
    app.click("#questions [data-question=\"q3\"] input[value=\"b\"]")
        .await;
    app.until("q1 saved on the server", &answer("q1", "saved"))
        .await;
    app.until("q3 saved on the server", &answer("q3", "saved"))
        .await;
    assert_eq!(
        app.text("#questions [data-question=\"q1\"] .answer-status")
            .await,
        "Saved on the server"
    );
    app.screenshot("03-exam-online").await;

    // The server stops: the banner names the lost connection within three heartbeats, and new
    // typing is saved on this computer, waiting.
    server.kill().await;
    let stopped = Instant::now();
    app.until(
        "the banner to show the lost connection",
        "document.getElementById('banner').dataset.state === 'unreachable'",
    )
    .await;
    let noticed = stopped.elapsed();
    assert!(
        noticed <= heartbeat * 3,
        "the banner showed the lost connection after {noticed:?}"
    );
    assert!(app.text("#banner").await.contains("Server unreachable"));
    app.type_into(
        "#questions [data-question=\"q1\"] textarea",
        " and partitions around it.",
    )
    .await;
    app.until("q1 waiting on this computer", &answer("q1", "waiting"))
        .await;
    assert_eq!(
        app.text("#questions [data-question=\"q1\"] .answer-status")
            .await,
        "Saved on this computer, waiting for the server"
    );
    // Keep typing: the code editor (Tab indents there).
    app.type_into(
        "#questions [data-question=\"q2\"] textarea",
        &format!("def binary_search(xs, x):{ENTER}{TAB}return -1"),
    )
    .await;
    app.until("q2 waiting on this computer", &answer("q2", "waiting"))
        .await;
    app.until(
        "two answers waiting",
        "document.getElementById('waiting-count').dataset.count === '2'",
    )
    .await;
    app.screenshot("04-exam-server-unreachable").await;

    // The server comes back: every answer is acknowledged and stored.
    server.restart().await;
    app.until(
        "online again",
        "document.getElementById('banner').dataset.state === 'online'",
    )
    .await;
    app.until(
        "nothing waiting",
        "document.getElementById('waiting-count').dataset.count === '0'",
    )
    .await;
    for q in ["q1", "q2", "q3"] {
        app.until(&format!("{q} saved"), &answer(q, "saved")).await;
    }
    app.screenshot("05-exam-back-online").await;
    let mut stored: Vec<(String, String)> = prof
        .answers(&evaluation.id, "alice")
        .await
        .into_iter()
        .map(|a| (a.question_id, a.content))
        .collect();
    stored.sort();
    assert_eq!(
        stored,
        [
            (
                "q1".to_owned(),
                "Quicksort picks a pivot and partitions around it.".to_owned()
            ),
            (
                "q2".to_owned(),
                "def binary_search(xs, x):\n    return -1".to_owned()
            ),
            ("q3".to_owned(), "b".to_owned()),
        ]
    );

    app.resize(1920, 1080).await;
    app.screenshot("06-exam-1920x1080").await;
    app.quit().await;
}

#[tokio::test]
async fn phase_changes_and_a_second_sign_in_show_live() {
    let Some(tooling) = tools("phase_changes_and_a_second_sign_in_show_live") else {
        return;
    };
    let _window = WINDOW.lock().await;
    let server = Server::start(1000).await;
    let admin = Staff::admin(&server).await;
    let prof = admin.professor("prof").await;
    admin.create_user("bob", "student").await;
    let evaluation = prof.running(&["bob"]).await;
    let data = tempfile::tempdir().unwrap();
    let url = server.url();
    let app = App::launch(
        &tooling,
        &[
            ("INVIGIL_SERVER_URL", url.as_str()),
            ("INVIGIL_DATA_DIR", data.path().to_str().unwrap()),
        ],
    )
    .await;
    sign_in(&app, "bob").await;
    let start = format!(
        "#evaluations [data-evaluation=\"{}\"] button",
        evaluation.id
    );
    app.until(
        "the evaluation",
        &format!("document.querySelector('{start}')"),
    )
    .await;
    app.click(&start).await;
    app.until(
        "the open exam",
        "document.getElementById('screen-exam').dataset.exam === 'open'",
    )
    .await;
    app.type_into("#questions [data-question=\"q1\"] textarea", "Mine.")
        .await;
    app.until("q1 saved", &answer("q1", "saved")).await;

    // The professor closes the evaluation: the exam locks at once.
    prof.set_phase(&evaluation.id, "grading").await;
    app.until(
        "the closed exam",
        "document.getElementById('screen-exam').dataset.exam === 'closed' && document.querySelector('#questions textarea').readOnly",
    )
    .await;
    assert!(
        app.text("#exam-lock")
            .await
            .contains("The evaluation is closed")
    );
    app.screenshot("07-exam-closed-by-professor").await;
    prof.set_phase(&evaluation.id, "in_progress").await;
    app.until(
        "the exam open again",
        "document.getElementById('screen-exam').dataset.exam === 'open' && !document.querySelector('#questions textarea').readOnly",
    )
    .await;

    // Someone signs in as bob elsewhere: this app shows the block.
    Staff::login(&server.url(), "bob", PASSWORD).await;
    app.until(
        "the session-ended screen naming the block",
        "!document.getElementById('screen-ended').hidden",
    )
    .await;
    assert_eq!(
        app.text("#ended-title").await,
        "A second sign-in was detected: ask your professor to unblock you"
    );
    app.screenshot("08-signed-in-elsewhere").await;

    // Bob signs in again here: blocked, live, until the professor unblocks him.
    app.click("#ended-sign-in").await;
    app.until(
        "the sign-in form",
        "!document.getElementById('screen-sign-in').hidden",
    )
    .await;
    app.type_into("#login-password", PASSWORD).await;
    app.click("#sign-in-button").await;
    app.until(
        "the blocked screen",
        "!document.getElementById('screen-blocked').hidden",
    )
    .await;
    assert!(
        app.text("#screen-blocked h1")
            .await
            .contains("ask your professor to unblock you")
    );
    app.screenshot("09-blocked").await;
    prof.unblock(&evaluation.id, "bob").await;
    app.until(
        "the exam, unblocked",
        "!document.getElementById('screen-exam').hidden && document.getElementById('screen-exam').dataset.exam === 'open'",
    )
    .await;
    app.screenshot("10-unblocked").await;
    app.quit().await;
}

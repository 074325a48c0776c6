//! The app as a student starts it: the binary opens its window on the sign-in screen and signs in
//! against the real server. In the test run that is the binary cargo built; `.ci/run`'s package
//! check runs this again with `INVIGIL_DESKTOP_BIN=/usr/bin/invigil-desktop` and
//! `INVIGIL_SERVER_BIN=/usr/bin/invigil-server`, the binaries the `.deb` packages installed, whose
//! screenshots are then named `installed-…` in `target/e2e/`.
//!
//! Without a display or the drivers this says that it skips, except in CI (`CI` set), where it
//! fails.

#![allow(missing_docs)]

use invigil_e2e::server::{PASSWORD, Server, Staff, target_dir};
use invigil_e2e::webdriver::{App, app_binary, tooling};

#[tokio::test]
async fn the_app_opens_on_the_sign_in_screen_and_signs_in() {
    let tooling = match tooling() {
        Ok(t) => t,
        Err(missing) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run the end-to-end tests: {missing}"
            );
            eprintln!("SKIPPED the_app_opens_on_the_sign_in_screen_and_signs_in: {missing}");
            return;
        }
    };
    let prefix = if app_binary().starts_with(target_dir()) {
        "startup"
    } else {
        "installed"
    };
    let server = Server::start(1000).await;
    let admin = Staff::admin(&server).await;
    let prof = admin.professor("prof").await;
    admin.create_user("alice", "student").await;
    let evaluation = prof.running(&["alice"]).await;
    let data = tempfile::tempdir().unwrap();
    let app = App::launch_on(&tooling, &server.url(), data.path()).await;

    app.until(
        "the sign-in screen",
        "!document.getElementById('screen-sign-in').hidden",
    )
    .await;
    app.screenshot(&format!("{prefix}-01-sign-in")).await;

    app.type_into("#login-username", "alice").await;
    app.type_into("#login-password", PASSWORD).await;
    app.click("#sign-in-button").await;
    app.until(
        "the evaluation in the list",
        &format!(
            "document.querySelector('#evaluations [data-evaluation=\"{}\"] button')",
            evaluation.id
        ),
    )
    .await;
    app.screenshot(&format!("{prefix}-02-evaluations")).await;
    app.quit().await;
}

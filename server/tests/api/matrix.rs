//! Tests: the authorization matrix. Every route the server serves (read from the router's own
//! table, `invigil_server::app::routes()`) × every kind of caller, with the status each must get.
//! A route without a row here fails the test, as does a row for a route that no longer exists.
//!
//! Each cell runs in a world of its own, built afresh (an evaluation owned by the owner, in
//! progress, with the student on its list and joined), so that no cell's effect (a phase change, a
//! hand-in, a logout) decides another's answer; a caller whose session a cell ended signs in again.

use crate::helpers::*;
use invigil_protocol::Role;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The callers, in the order of each row's statuses.
const CALLERS: [&str; 6] = [
    "anonymous",
    "student",
    "another student",
    "owner",
    "other professor",
    "admin",
];

/// What a cell needs besides the usual world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum World {
    /// The owner's running evaluation with the student on its list, joined.
    Usual,
    /// Also a second student, `sid`, joined and then blocked by a second sign-in.
    Blocked,
}

/// How a cell's request is made.
#[derive(Debug, Clone, Copy)]
enum Body {
    None,
    Json(&'static str),
    Text(&'static str),
    /// A WebSocket upgrade (a real handshake: 101 when accepted).
    Upgrade,
    /// An event stream: the status once its headers arrive.
    Stream,
}

struct Row {
    method: &'static str,
    route: &'static str,
    /// The request's path: `{id}` is the world's evaluation, `{new}` a fresh name.
    path: &'static str,
    body: Body,
    world: World,
    /// Anonymous, student, another student, owner, other professor, admin.
    expect: [u16; 6],
}

const fn row(
    method: &'static str,
    route: &'static str,
    path: &'static str,
    body: Body,
    expect: [u16; 6],
) -> Row {
    Row {
        method,
        route,
        path,
        body,
        world: World::Usual,
        expect,
    }
}

/// Everyone signed in gets it.
const ALL: [u16; 6] = [401, 200, 200, 200, 200, 200];
/// Anyone, signed in or not.
const PUBLIC: [u16; 6] = [200; 6];
/// Admins only.
const ADMIN_ONLY: [u16; 6] = [401, 403, 403, 403, 403, 200];
/// The evaluation's owner and admins.
const STAFF_OF_IT: [u16; 6] = [401, 403, 403, 200, 403, 200];
/// The student sitting it.
const SITTER: [u16; 6] = [401, 200, 403, 403, 403, 403];

/// Every status the matrix expects of `method route`, whoever calls (the OpenAPI test checks that
/// the document lists each).
pub fn statuses(method: &str, route: &str) -> BTreeSet<u16> {
    ROWS.iter()
        .filter(|r| r.method == method && r.route == route)
        .flat_map(|r| r.expect)
        .collect()
}

const ROWS: &[Row] = &[
    row("GET", "/", "/", Body::None, PUBLIC),
    row(
        "GET",
        "/console/{file}",
        "/console/app.js",
        Body::None,
        PUBLIC,
    ),
    row("GET", "/healthz", "/healthz", Body::None, PUBLIC),
    row("GET", "/metrics", "/metrics", Body::None, ADMIN_ONLY),
    row(
        "GET",
        "/api/openapi.json",
        "/api/openapi.json",
        Body::None,
        PUBLIC,
    ),
    row(
        "GET",
        "/api/ws",
        "/api/ws",
        Body::Upgrade,
        [401, 101, 101, 101, 101, 101],
    ),
    row("GET", "/api/events", "/api/events", Body::Stream, ALL),
    // Accounts.
    row(
        "POST",
        "/api/login",
        "/api/login",
        Body::Json(r#"{"username": "vic", "password": "correct horse battery"}"#),
        PUBLIC,
    ),
    row(
        "POST",
        "/api/logout",
        "/api/logout",
        Body::None,
        [401, 204, 204, 204, 204, 204],
    ),
    row("GET", "/api/me", "/api/me", Body::None, ALL),
    row(
        "POST",
        "/api/users",
        "/api/users",
        Body::Json(r#"{"username": "{new}", "password": "pw-of-new", "role": "student"}"#),
        [401, 403, 403, 403, 403, 201],
    ),
    row("GET", "/api/users", "/api/users", Body::None, ADMIN_ONLY),
    row(
        "POST",
        "/api/users/{username}/revoke",
        "/api/users/vic/revoke",
        Body::None,
        [401, 403, 403, 403, 403, 204],
    ),
    row(
        "POST",
        "/api/users/{username}/password",
        "/api/users/vic/password",
        Body::Json(r#"{"password": "correct horse battery", "revoke_sessions": false}"#),
        ADMIN_ONLY,
    ),
    row(
        "POST",
        "/api/users/import",
        "/api/users/import",
        Body::Text("username,password\n{new},pw-of-new\n"),
        [401, 403, 403, 403, 403, 201],
    ),
    // Evaluations.
    row(
        "POST",
        "/api/evaluations",
        "/api/evaluations",
        Body::Json(r#"{"title": "Made by the matrix", "questions": []}"#),
        [401, 403, 403, 201, 201, 201],
    ),
    row(
        "GET",
        "/api/evaluations",
        "/api/evaluations",
        Body::None,
        ALL,
    ),
    row(
        "GET",
        "/api/evaluations/{id}",
        "/api/evaluations/{id}",
        Body::None,
        [401, 200, 404, 200, 200, 200],
    ),
    row(
        "PATCH",
        "/api/evaluations/{id}",
        "/api/evaluations/{id}",
        Body::Json(r#"{"title": "Renamed"}"#),
        STAFF_OF_IT,
    ),
    row(
        "POST",
        "/api/evaluations/{id}/phase",
        "/api/evaluations/{id}/phase",
        Body::Json(r#"{"phase": "grading"}"#),
        STAFF_OF_IT,
    ),
    row(
        "PUT",
        "/api/evaluations/{id}/ends_at",
        "/api/evaluations/{id}/ends_at",
        Body::Json(r#"{"ends_at": null}"#),
        STAFF_OF_IT,
    ),
    row(
        "PUT",
        "/api/evaluations/{id}/access",
        "/api/evaluations/{id}/access",
        Body::Json(r#"{"students": ["ada"]}"#),
        STAFF_OF_IT,
    ),
    row(
        "GET",
        "/api/evaluations/{id}/access",
        "/api/evaluations/{id}/access",
        Body::None,
        STAFF_OF_IT,
    ),
    row(
        "POST",
        "/api/evaluations/{id}/join",
        "/api/evaluations/{id}/join",
        Body::None,
        SITTER,
    ),
    row(
        "POST",
        "/api/evaluations/{id}/submit",
        "/api/evaluations/{id}/submit",
        Body::None,
        SITTER,
    ),
    row(
        "GET",
        "/api/evaluations/{id}/participants",
        "/api/evaluations/{id}/participants",
        Body::None,
        STAFF_OF_IT,
    ),
    Row {
        world: World::Blocked,
        ..row(
            "POST",
            "/api/evaluations/{id}/participants/{username}/unblock",
            "/api/evaluations/{id}/participants/sid/unblock",
            Body::Json(r#"{"note": "identity checked"}"#),
            STAFF_OF_IT,
        )
    },
    row(
        "GET",
        "/api/evaluations/{id}/audit",
        "/api/evaluations/{id}/audit",
        Body::None,
        STAFF_OF_IT,
    ),
    // Answers.
    row(
        "GET",
        "/api/evaluations/{id}/answers",
        "/api/evaluations/{id}/answers?username=ada",
        Body::None,
        [401, 200, 403, 200, 403, 200],
    ),
    row(
        "PUT",
        "/api/evaluations/{id}/answers/{question_id}",
        "/api/evaluations/{id}/answers/q1",
        Body::Json(r#"{"revision": 1, "content": "an answer"}"#),
        SITTER,
    ),
    row(
        "GET",
        "/api/evaluations/{id}/students/{username}/answers",
        "/api/evaluations/{id}/students/ada/answers",
        Body::None,
        STAFF_OF_IT,
    ),
    // Files.
    row(
        "GET",
        "/api/evaluations/{id}/exports/answers.csv",
        "/api/evaluations/{id}/exports/answers.csv",
        Body::None,
        STAFF_OF_IT,
    ),
    row(
        "GET",
        "/api/evaluations/{id}/exports/audit.csv",
        "/api/evaluations/{id}/exports/audit.csv",
        Body::None,
        STAFF_OF_IT,
    ),
    row(
        "POST",
        "/api/evaluations/{id}/imports/answers",
        "/api/evaluations/{id}/imports/answers",
        Body::Json(
            r#"{"format": "invigil-answers-export", "version": 1, "username": "ada",
                "answers": [{"evaluation_id": "{id}", "question_id": "q2", "revision": 3,
                             "content": "from the file", "edited_at": "{now}"}]}"#,
        ),
        STAFF_OF_IT,
    ),
    // Proctoring.
    row(
        "POST",
        "/api/evaluations/{id}/integrity",
        "/api/evaluations/{id}/integrity",
        Body::Json(
            r#"{"evaluation_id": "{id}", "event_id": "0f8b2c1e-7d4a-4b7e-9a51-3c2d1e0f9a8b",
                "kind": "focus_lost", "at": "{now}"}"#,
        ),
        SITTER,
    ),
    row(
        "GET",
        "/api/evaluations/{id}/integrity",
        "/api/evaluations/{id}/integrity?username=ada",
        Body::None,
        STAFF_OF_IT,
    ),
    row(
        "PUT",
        "/api/evaluations/{id}/participants/{username}/accommodation",
        "/api/evaluations/{id}/participants/ada/accommodation",
        Body::Json(r#"{"exempt": ["block_clipboard"], "reason": "Screen reader"}"#),
        STAFF_OF_IT,
    ),
    row(
        "GET",
        "/api/evaluations/{id}/accommodations",
        "/api/evaluations/{id}/accommodations",
        Body::None,
        STAFF_OF_IT,
    ),
];

/// The callers' sessions (`None` for the anonymous one), kept signed in.
struct Callers {
    actors: Vec<Option<Actor>>,
    /// Each caller's username and password.
    accounts: [(&'static str, &'static str); 6],
}

impl Callers {
    fn token(&self, i: usize) -> Option<&str> {
        self.actors[i].as_ref().map(|a| a.token.as_str())
    }

    /// Signs in again every caller whose session a cell ended.
    async fn keep_signed_in(&mut self, app: &TestApp) {
        for i in 1..self.actors.len() {
            let (status, _) = app.call(Method::GET, "/api/me", self.token(i), None).await;
            if status == StatusCode::UNAUTHORIZED {
                let (name, password) = self.accounts[i];
                self.actors[i] = Some(app.login(name, password).await);
            }
        }
    }
}

/// A fresh world: the owner's evaluation, running, with `ada` (and for a blocked world `sid`,
/// then blocked) on its list and joined. Returns its id and `sid`'s session.
async fn world(app: &TestApp, callers: &Callers, kind: World, sid: &mut Actor) -> String {
    let owner = callers.actors[3].as_ref().unwrap();
    let ada = callers.actors[1].as_ref().unwrap();
    let evaluation = app.evaluation(owner, json!({})).await;
    let (status, body) = app
        .put(
            owner,
            &format!("/api/evaluations/{}/access", evaluation.id),
            json!({"students": ["ada", "sid"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.set_phase(owner, &evaluation.id, "in_progress").await;
    app.join(ada, &evaluation.id).await;
    if kind == World::Blocked {
        app.join(sid, &evaluation.id).await;
        // A second sign-in during the exam blocks them.
        *sid = app.login("sid", PASSWORD).await;
    }
    evaluation.id
}

static FRESH: AtomicUsize = AtomicUsize::new(0);

/// The request a row makes in a world, as caller `i`; its status.
async fn request(app: &TestApp, callers: &Callers, i: usize, row: &Row, id: &str) -> u16 {
    let fill = |text: &str| {
        text.replace("{id}", id)
            .replace(
                "{new}",
                &format!("fresh{}", FRESH.fetch_add(1, Ordering::Relaxed)),
            )
            .replace("{now}", &invigil_protocol::Timestamp::now().to_string())
    };
    let path = fill(row.path);
    let token = callers.token(i);
    match row.body {
        Body::Upgrade => {
            let mut request = app.ws_request();
            if let Some(token) = token {
                request
                    .headers_mut()
                    .insert("authorization", format!("Bearer {token}").parse().unwrap());
            }
            match tokio_tungstenite::connect_async(request).await {
                Ok((mut socket, response)) => {
                    let _ = socket.close(None).await;
                    response.status().as_u16()
                }
                Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                    response.status().as_u16()
                }
                Err(e) => panic!("the upgrade failed without an answer: {e}"),
            }
        }
        _ => {
            let method = Method::from_bytes(row.method.as_bytes()).unwrap();
            let mut request = app.http.request(method, app.url(&path));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            request = match row.body {
                Body::Json(json) => request
                    .header("content-type", "application/json")
                    .body(fill(json)),
                Body::Text(text) => request.header("content-type", "text/csv").body(fill(text)),
                _ => request,
            };
            // An event stream answers its headers at once and then stays open: dropping the
            // response closes it.
            let response = request.send().await.expect("the server answers");
            response.status().as_u16()
        }
    }
}

#[tokio::test]
async fn every_route_answers_every_kind_of_caller_as_the_matrix_says() {
    // Every route of the router has exactly one row, and every row is a route.
    let routes: BTreeSet<(String, String)> = invigil_server::app::routes()
        .into_iter()
        .map(|(m, p)| (m.to_string(), p.to_owned()))
        .collect();
    let rows: BTreeSet<(String, String)> = ROWS
        .iter()
        .map(|r| (r.method.to_owned(), r.route.to_owned()))
        .collect();
    assert_eq!(rows.len(), ROWS.len(), "a route has two rows");
    let missing: Vec<_> = routes.difference(&rows).collect();
    let stale: Vec<_> = rows.difference(&routes).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "routes without a row in the matrix: {missing:?}; rows for no route: {stale:?}"
    );

    // Arrange: the callers, a student whose sessions the revocation rows end, and one to block.
    let mut app = TestApp::spawn().await;
    let accounts = [
        ("", ""),
        ("ada", PASSWORD),
        ("ben", PASSWORD),
        ("olga", PASSWORD),
        ("pete", PASSWORD),
        ADMIN,
    ];
    for (name, role) in [
        ("ada", Role::Student),
        ("ben", Role::Student),
        ("olga", Role::Professor),
        ("pete", Role::Professor),
        ("vic", Role::Student),
        ("sid", Role::Student),
    ] {
        app.create_user(name, role).await;
    }
    let admin = app.admin().await;
    let mut actors = vec![None];
    for (name, password) in &accounts[1..5] {
        actors.push(Some(app.login(name, password).await));
    }
    actors.push(Some(admin));
    let mut callers = Callers { actors, accounts };
    let mut sid = app.login("sid", PASSWORD).await;

    // Act: every cell in a world of its own.
    let mut wrong = Vec::new();
    for row in ROWS {
        for (i, caller) in CALLERS.iter().enumerate() {
            let id = world(&app, &callers, row.world, &mut sid).await;
            let got = request(&app, &callers, i, row, &id).await;
            if got != row.expect[i] {
                wrong.push(format!(
                    "{} {} as {caller}: {got}, expected {}",
                    row.method, row.path, row.expect[i]
                ));
            }
            callers.keep_signed_in(&app).await;
        }
    }

    // Assert
    assert!(
        wrong.is_empty(),
        "cells of the matrix answered otherwise:\n{}",
        wrong.join("\n")
    );
}

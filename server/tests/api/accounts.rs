//! Tests: accounts — creating users, signing in and out, who am I, sign-in throttling, admin
//! revocation, cookie sign-in with its Origin check, secrets kept out of the log, and sessions that
//! survive a restart or expire after 14 days without use.

use crate::helpers::*;
use invigil_protocol::{InvalidationReason, Role, ServerMessage, close};
use reqwest::header::{self, HeaderMap};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::net::IpAddr;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The name of the session cookie.
const COOKIE: &str = "invigil_session";
/// A well-formed origin that is not the server's.
const FOREIGN: &str = "http://evil.example";

/// The contract error code of a response body.
fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

/// Asserts a refusal: the status, the code, and the contract's error body shape.
#[track_caller]
fn assert_refused(status: StatusCode, body: &Value, expected: StatusCode, expected_code: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(code(body), expected_code, "{body}");
    let message = body["error"]["message"].as_str();
    assert!(
        message.is_some_and(|m| !m.trim().is_empty()),
        "every error carries a human message: {body}"
    );
}

/// A client whose connections come from `ip` (every 127.0.0.0/8 address is loopback on Linux).
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(Some(ip.parse::<IpAddr>().expect("an address")))
        .build()
        .expect("a client")
}

/// `POST /api/login` from `client`, returning the status, headers and JSON body.
async fn attempt(
    app: &TestApp,
    client: &reqwest::Client,
    username: &str,
    password: &str,
) -> (StatusCode, HeaderMap, Value) {
    attempt_with(client.post(app.url("/api/login")), username, password).await
}

/// `POST /api/login` with a prepared request builder (extra headers already set).
async fn attempt_with(
    request: reqwest::RequestBuilder,
    username: &str,
    password: &str,
) -> (StatusCode, HeaderMap, Value) {
    let response = request
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .expect("the server answers");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, headers, body)
}

/// Fails `n` sign-ins of `username` from `client` with a wrong password, checking each is a plain
/// `invalid_credentials` (not yet throttled).
async fn fail(app: &TestApp, client: &reqwest::Client, username: &str, n: usize) {
    for _ in 0..n {
        let (status, _, body) = attempt(app, client, username, "wrong password").await;
        assert_refused(
            status,
            &body,
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        );
    }
}

/// Asserts a 429 `too_many_attempts` with a `Retry-After` of at most the 5-minute window.
#[track_caller]
fn assert_throttled(status: StatusCode, headers: &HeaderMap, body: &Value) {
    assert_refused(
        status,
        body,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
    );
    let retry_after: u64 = headers
        .get(header::RETRY_AFTER)
        .expect("a Retry-After header")
        .to_str()
        .expect("a text header")
        .parse()
        .expect("Retry-After in whole seconds");
    assert!(
        (1..=300).contains(&retry_after),
        "Retry-After is within the 5-minute window: {retry_after}"
    );
}

/// The `invigil_session` line of a response's `Set-Cookie` headers.
fn session_cookie_line(headers: &HeaderMap) -> String {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{COOKIE}=")))
        .unwrap_or_else(|| panic!("login sets the {COOKIE} cookie: {headers:?}"))
        .to_owned()
}

/// Signs in and returns the session cookie's value.
async fn cookie_login(app: &TestApp, username: &str, password: &str) -> String {
    let (status, headers, body) = attempt(app, &app.http, username, password).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    cookie_value(&session_cookie_line(&headers))
}

/// The value of a `Set-Cookie` line.
fn cookie_value(line: &str) -> String {
    let value = line
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .map(|(_, v)| v.trim().to_owned())
        .expect("name=value");
    assert!(!value.is_empty(), "the cookie carries the session: {line}");
    value
}

/// A request signed in by the session cookie only, with an optional `Origin`.
async fn by_cookie(
    app: &TestApp,
    method: Method,
    path: &str,
    cookie: &str,
    origin: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = app
        .http
        .request(method, app.url(path))
        .header(header::COOKIE, format!("{COOKIE}={cookie}"));
    if let Some(origin) = origin {
        request = request.header(header::ORIGIN, origin);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status();
    let text = response.text().await.expect("a body");
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("a JSON body, got {text:?}"))
    };
    (status, value)
}

/// Opens the live socket signed in by the session cookie, with an optional `Origin`; on a refused
/// upgrade, returns its HTTP status and body.
async fn cookie_socket(
    app: &TestApp,
    cookie: &str,
    origin: Option<&str>,
) -> Result<Socket, (u16, Value)> {
    let mut request = format!("ws://{}/api/ws", app.addr)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("cookie", format!("{COOKIE}={cookie}").parse().unwrap());
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
    }
    refused_upgrade(Socket::connect(request).await)
}

/// Opens the live socket with a bearer token; on a refused upgrade, returns its status and body.
async fn bearer_socket(app: &TestApp, token: &str) -> Result<Socket, (u16, Value)> {
    let mut request = format!("ws://{}/api/ws", app.addr)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    refused_upgrade(Socket::connect(request).await)
}

fn refused_upgrade(result: Result<Socket, tungstenite::Error>) -> Result<Socket, (u16, Value)> {
    match result {
        Ok(socket) => Ok(socket),
        Err(tungstenite::Error::Http(response)) => {
            let body = response
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            Err((response.status().as_u16(), body))
        }
        Err(e) => panic!("the upgrade failed without an HTTP answer: {e}"),
    }
}

/// Asserts that a socket's first frame is `WELCOME` for this session.
async fn assert_welcomed(socket: &mut Socket, session_id: &str) {
    match socket.next().await {
        ServerMessage::Welcome {
            session_id: got, ..
        } => assert_eq!(got, session_id),
        other => panic!("WELCOME first, got {other:?}"),
    }
}

// ---- creating users ------------------------------------------------------------------------

#[tokio::test]
async fn an_admin_creates_a_user_and_gets_201_with_its_public_fields() {
    let mut app = TestApp::spawn().await;
    let admin = app.admin().await;

    let (status, body) = app
        .post(
            &admin,
            "/api/users",
            json!({"username": "alice", "password": PASSWORD, "role": "student",
                   "display_name": "Alice Liddell"}),
        )
        .await;

    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(
        body["id"].as_str().is_some_and(|id| !id.is_empty()),
        "{body}"
    );
    assert_eq!(body["username"], "alice");
    assert_eq!(body["display_name"], "Alice Liddell");
    assert_eq!(body["role"], "student");
    assert!(
        body.get("password").is_none() && body.get("password_hash").is_none(),
        "no secret is echoed: {body}"
    );
    let alice = app.login("alice", PASSWORD).await;
    assert_eq!(alice.user.id, body["id"].as_str().unwrap());
}

#[tokio::test]
async fn an_admin_creates_professors_and_admins_too() {
    let mut app = TestApp::spawn().await;
    let admin = app.admin().await;

    for (name, role) in [("prof1", "professor"), ("admin2", "admin")] {
        let (status, body) = app
            .post(
                &admin,
                "/api/users",
                json!({"username": name, "password": PASSWORD, "role": role}),
            )
            .await;

        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["role"], role);
        assert_eq!(app.login(name, PASSWORD).await.user.role.as_str(), role);
    }
}

#[tokio::test]
async fn a_user_created_without_a_display_name_is_shown_by_their_username() {
    let mut app = TestApp::spawn().await;
    let admin = app.admin().await;

    let (status, body) = app
        .post(
            &admin,
            "/api/users",
            json!({"username": "bob", "password": PASSWORD, "role": "student"}),
        )
        .await;

    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["display_name"], "bob", "{body}");
}

#[tokio::test]
async fn a_professor_or_a_student_cannot_create_users() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;

    for caller in [&prof, &alice] {
        let (status, body) = app
            .post(
                caller,
                "/api/users",
                json!({"username": "mallory", "password": PASSWORD, "role": "admin"}),
            )
            .await;

        assert_refused(status, &body, StatusCode::FORBIDDEN, "forbidden");
    }
    let (status, body) = app
        .call(
            Method::POST,
            "/api/login",
            None,
            Some(json!({"username": "mallory", "password": PASSWORD})),
        )
        .await;
    assert_refused(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    );
}

#[tokio::test]
async fn creating_a_user_without_signing_in_is_401_unauthenticated() {
    let app = TestApp::spawn().await;

    let (status, body) = app
        .call(
            Method::POST,
            "/api/users",
            None,
            Some(json!({"username": "mallory", "password": PASSWORD, "role": "admin"})),
        )
        .await;

    assert_refused(status, &body, StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[tokio::test]
async fn creating_a_user_whose_name_is_taken_is_a_409_conflict() {
    let mut app = TestApp::spawn().await;
    let admin = app.admin().await;
    app.create_user("alice", STUDENT).await;

    let (status, body) = app
        .post(
            &admin,
            "/api/users",
            json!({"username": "alice", "password": "another password", "role": "professor"}),
        )
        .await;

    assert_refused(status, &body, StatusCode::CONFLICT, "conflict");
    let alice = app.login("alice", PASSWORD).await;
    assert_eq!(alice.user.role, Role::Student, "the first account is kept");
}

#[tokio::test]
async fn a_malformed_user_body_is_a_400_bad_request_with_the_error_body() {
    let mut app = TestApp::spawn().await;
    let admin = app.admin().await;
    let bodies = [
        json!({"password": PASSWORD, "role": "student"}),
        json!({"username": "alice", "role": "student"}),
        json!({"username": "alice", "password": PASSWORD}),
        json!({"username": "alice", "password": PASSWORD, "role": "wizard"}),
        json!({"username": 42, "password": PASSWORD, "role": "student"}),
        json!(["alice", PASSWORD, "student"]),
    ];

    for body in bodies {
        let (status, answer) = app.post(&admin, "/api/users", body.clone()).await;

        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} → {answer}");
        assert_refused(status, &answer, StatusCode::BAD_REQUEST, "bad_request");
    }
    let response = app
        .http
        .post(app.url("/api/users"))
        .bearer_auth(&admin.token)
        .header(header::CONTENT_TYPE, "application/json")
        .body("{\"username\": \"alice\", ")
        .send()
        .await
        .unwrap();
    let status = response.status();
    let answer: Value = response.json().await.expect("a JSON error body");
    assert_refused(status, &answer, StatusCode::BAD_REQUEST, "bad_request");
}

// ---- signing in ----------------------------------------------------------------------------

#[tokio::test]
async fn a_login_returns_a_token_a_session_id_and_the_user() {
    let mut app = TestApp::spawn().await;
    let created = app.create_user("alice", STUDENT).await;

    let (status, _, body) = attempt(&app, &app.http, "alice", PASSWORD).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["token"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    assert!(
        body["session_id"].as_str().is_some_and(|s| !s.is_empty()),
        "{body}"
    );
    assert_eq!(
        body["user"],
        json!({"id": created.id, "username": "alice", "display_name": "alice", "role": "student"})
    );
}

#[tokio::test]
async fn a_login_with_a_device_label_succeeds() {
    let mut app = TestApp::spawn().await;
    app.create_user("alice", STUDENT).await;

    let (status, body) = app
        .call(
            Method::POST,
            "/api/login",
            None,
            Some(json!({"username": "alice", "password": PASSWORD, "device": "Lab PC 12"})),
        )
        .await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["username"], "alice");
}

#[tokio::test]
async fn each_login_gets_a_new_token_and_session() {
    let mut app = TestApp::spawn().await;
    app.create_user("prof1", PROFESSOR).await;

    let first = app.login("prof1", PASSWORD).await;
    let second = app.login("prof1", PASSWORD).await;

    assert_ne!(first.token, second.token);
    assert_ne!(first.session_id, second.session_id);
}

#[tokio::test]
async fn a_wrong_password_is_401_invalid_credentials() {
    let mut app = TestApp::spawn().await;
    app.create_user("alice", STUDENT).await;

    let (status, headers, body) = attempt(&app, &app.http, "alice", "not the password").await;

    assert_refused(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    );
    assert!(
        headers.get(header::SET_COOKIE).is_none(),
        "no session cookie for a failed login"
    );
}

#[tokio::test]
async fn an_unknown_username_is_401_invalid_credentials() {
    let app = TestApp::spawn().await;

    let (status, _, body) = attempt(&app, &app.http, "nobody", PASSWORD).await;

    assert_refused(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    );
}

#[tokio::test]
async fn a_malformed_login_body_is_a_400_bad_request() {
    let app = TestApp::spawn().await;

    for body in [
        json!({"username": "alice"}),
        json!({"password": PASSWORD}),
        json!({"username": ["alice"], "password": PASSWORD}),
    ] {
        let (status, answer) = app.call(Method::POST, "/api/login", None, Some(body)).await;

        assert_refused(status, &answer, StatusCode::BAD_REQUEST, "bad_request");
    }
}

// ---- throttling ----------------------------------------------------------------------------

#[tokio::test]
async fn after_ten_failures_for_a_username_even_the_right_password_gets_429_with_retry_after() {
    let mut app = TestApp::spawn().await;
    app.create_user("alice", STUDENT).await;
    fail(&app, &app.http, "alice", 10).await;

    let (status, headers, body) = attempt(&app, &app.http, "alice", PASSWORD).await;

    assert_throttled(status, &headers, &body);
    let (status, headers, body) = attempt(&app, &app.http, "alice", "wrong password").await;
    assert_throttled(status, &headers, &body);
}

#[tokio::test]
async fn nine_failures_for_a_username_still_let_the_right_password_in() {
    let mut app = TestApp::spawn().await;
    app.create_user("alice", STUDENT).await;
    fail(&app, &app.http, "alice", 9).await;

    let (status, _, body) = attempt(&app, &app.http, "alice", PASSWORD).await;

    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_throttled_username_does_not_refuse_other_usernames_from_the_same_address() {
    let mut app = TestApp::spawn().await;
    app.create_user("alice", STUDENT).await;
    app.create_user("bob", STUDENT).await;
    fail(&app, &app.http, "alice", 10).await;

    let (status, _, body) = attempt(&app, &app.http, "bob", PASSWORD).await;

    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_throttled_username_still_signs_in_from_another_address() {
    let mut app = TestApp::spawn().await;
    app.create_user("alice", STUDENT).await;
    let attacker = client_from("127.0.0.1");
    fail(&app, &attacker, "alice", 10).await;
    let (status, headers, body) = attempt(&app, &attacker, "alice", PASSWORD).await;
    assert_throttled(status, &headers, &body);

    let (status, _, body) = attempt(&app, &client_from("127.0.0.2"), "alice", PASSWORD).await;

    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_hundred_failures_from_one_address_refuse_every_username_from_it() {
    let mut app = TestApp::spawn().await;
    app.create_user("alice", STUDENT).await;
    let sprayer = client_from("127.0.0.1");
    for i in 0..100 {
        // One failure per username: only the per-address limit can be reached.
        fail(&app, &sprayer, &format!("nobody{i}"), 1).await;
    }

    let (status, headers, body) = attempt(&app, &sprayer, "alice", PASSWORD).await;

    assert_throttled(status, &headers, &body);
    let (status, _, body) = attempt(&app, &client_from("127.0.0.3"), "alice", PASSWORD).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "another address is not refused: {body}"
    );
}

#[tokio::test]
async fn a_successful_sign_in_does_not_reset_the_failure_count() {
    let mut app = TestApp::spawn().await;
    app.create_user("alice", STUDENT).await;
    fail(&app, &app.http, "alice", 9).await;
    let (status, _, body) = attempt(&app, &app.http, "alice", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    fail(&app, &app.http, "alice", 1).await;

    let (status, headers, body) = attempt(&app, &app.http, "alice", PASSWORD).await;

    assert_throttled(status, &headers, &body);
}

#[tokio::test]
async fn a_forged_x_forwarded_for_header_does_not_escape_the_throttle() {
    let mut app = TestApp::spawn().await;
    app.create_user("alice", STUDENT).await;
    fail(&app, &app.http, "alice", 10).await;

    let request = app
        .http
        .post(app.url("/api/login"))
        .header("x-forwarded-for", "203.0.113.7");
    let (status, headers, body) = attempt_with(request, "alice", PASSWORD).await;

    assert_throttled(status, &headers, &body);
}

// ---- who am I ------------------------------------------------------------------------------

#[tokio::test]
async fn get_me_returns_the_signed_in_user() {
    let mut app = TestApp::spawn().await;
    let alice = app.student("alice").await;

    let (status, body) = app.get(&alice, "/api/me").await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, serde_json::to_value(&alice.user).unwrap());
    assert_eq!(body["username"], "alice");
    assert_eq!(body["role"], "student");
}

#[tokio::test]
async fn a_request_without_a_token_is_401_unauthenticated() {
    let app = TestApp::spawn().await;

    for (method, path) in [
        (Method::GET, "/api/me"),
        (Method::POST, "/api/logout"),
        (Method::GET, "/api/evaluations"),
    ] {
        let (status, body) = app.call(method, path, None, None).await;

        assert_refused(status, &body, StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    let request = format!("ws://{}/api/ws", app.addr)
        .into_client_request()
        .unwrap();
    let (status, _) = refused_upgrade(Socket::connect(request).await)
        .err()
        .expect("no socket without a session");
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_garbage_token_is_401_unauthenticated() {
    let app = TestApp::spawn().await;

    for token in ["garbage", "x".repeat(43).as_str(), "a b c"] {
        let (status, body) = app.call(Method::GET, "/api/me", Some(token), None).await;

        assert_refused(status, &body, StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    let (status, body) = bearer_socket(&app, "garbage")
        .await
        .err()
        .expect("no socket with a garbage token");
    assert_eq!(status, 401);
    if !body.is_null() {
        assert_eq!(code(&body), "unauthenticated", "{body}");
    }
}

#[tokio::test]
async fn a_token_in_another_scheme_is_not_a_bearer_token() {
    let mut app = TestApp::spawn().await;
    let alice = app.student("alice").await;

    let response = app
        .http
        .get(app.url("/api/me"))
        .header(header::AUTHORIZATION, format!("Basic {}", alice.token))
        .send()
        .await
        .unwrap();

    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_refused(status, &body, StatusCode::UNAUTHORIZED, "unauthenticated");
}

// ---- signing out ---------------------------------------------------------------------------

#[tokio::test]
async fn logout_answers_204_and_the_token_then_gets_401_session_invalidated() {
    let mut app = TestApp::spawn().await;
    let alice = app.student("alice").await;

    let (status, body) = app.post(&alice, "/api/logout", json!({})).await;

    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(body, Value::Null, "204 has no body");
    let (status, body) = app.get(&alice, "/api/me").await;
    assert_refused(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "session_invalidated",
    );
    let (status, body) = app.post(&alice, "/api/logout", json!({})).await;
    assert_refused(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "session_invalidated",
    );
    let (status, _) = bearer_socket(&app, &alice.token)
        .await
        .err()
        .expect("no socket for an ended session");
    assert_eq!(status, 401);
}

#[tokio::test]
async fn logout_without_a_body_answers_204() {
    let mut app = TestApp::spawn().await;
    let alice = app.student("alice").await;

    let (status, body) = app
        .call(Method::POST, "/api/logout", Some(&alice.token), None)
        .await;

    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}

#[tokio::test]
async fn logout_ends_only_the_callers_session() {
    let mut app = TestApp::spawn().await;
    let laptop = app.professor("prof1").await;
    let phone = app.login("prof1", PASSWORD).await;

    let (status, _) = app.post(&laptop, "/api/logout", json!({})).await;

    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.get(&phone, "/api/me").await;
    assert_eq!(status, StatusCode::OK, "the other session lives on: {body}");
}

#[tokio::test]
async fn a_user_signs_in_again_after_signing_out() {
    let mut app = TestApp::spawn().await;
    let alice = app.student("alice").await;
    let (status, _) = app.post(&alice, "/api/logout", json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let again = app.login("alice", PASSWORD).await;

    let (status, body) = app.get(&again, "/api/me").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

// ---- admin revocation ----------------------------------------------------------------------

#[tokio::test]
async fn an_admin_revoke_ends_every_session_of_the_user() {
    let mut app = TestApp::spawn().await;
    let admin = app.admin().await;
    let laptop = app.professor("prof1").await;
    let phone = app.login("prof1", PASSWORD).await;

    let (status, body) = app.post(&admin, "/api/users/prof1/revoke", json!({})).await;

    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    for session in [&laptop, &phone] {
        let (status, body) = app.get(session, "/api/me").await;
        assert_refused(
            status,
            &body,
            StatusCode::UNAUTHORIZED,
            "session_invalidated",
        );
    }
    let (status, body) = app.get(&admin, "/api/me").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the admin's own session is untouched: {body}"
    );
}

#[tokio::test]
async fn a_revoked_user_may_sign_in_again() {
    let mut app = TestApp::spawn().await;
    let admin = app.admin().await;
    app.student("alice").await;
    let (status, _) = app.post(&admin, "/api/users/alice/revoke", json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let again = app.login("alice", PASSWORD).await;

    let (status, body) = app.get(&again, "/api/me").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn an_admin_revoke_sends_revoked_by_admin_to_the_users_socket_then_closes_it_with_4001() {
    let mut app = TestApp::spawn().await;
    let admin = app.admin().await;
    let alice = app.student("alice").await;
    let (mut socket, _) = app.socket_ready(&alice).await;

    let (status, _) = app.post(&admin, "/api/users/alice/revoke", json!({})).await;

    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        socket.next().await,
        ServerMessage::SessionInvalidated {
            reason: InvalidationReason::RevokedByAdmin
        }
    );
    assert!(
        matches!(
            socket.receive().await,
            Received::Closed(Some(close::SESSION_INVALIDATED))
        ),
        "close 4001 follows SESSION_INVALIDATED"
    );
}

#[tokio::test]
async fn an_admin_revoke_closes_the_sockets_of_every_session_of_a_professor() {
    let mut app = TestApp::spawn().await;
    let admin = app.admin().await;
    let laptop = app.professor("prof1").await;
    let phone = app.login("prof1", PASSWORD).await;
    let (mut laptop_socket, _) = app.socket_ready(&laptop).await;
    let (mut phone_socket, _) = app.socket_ready(&phone).await;

    let (status, _) = app.post(&admin, "/api/users/prof1/revoke", json!({})).await;

    assert_eq!(status, StatusCode::NO_CONTENT);
    for socket in [&mut laptop_socket, &mut phone_socket] {
        assert_eq!(
            socket.next().await,
            ServerMessage::SessionInvalidated {
                reason: InvalidationReason::RevokedByAdmin
            }
        );
        assert!(matches!(
            socket.receive().await,
            Received::Closed(Some(close::SESSION_INVALIDATED))
        ));
    }
}

#[tokio::test]
async fn only_an_admin_may_revoke_sessions() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let bob = app.student("bob").await;

    for caller in [&prof, &bob] {
        let (status, body) = app.post(caller, "/api/users/alice/revoke", json!({})).await;

        assert_refused(status, &body, StatusCode::FORBIDDEN, "forbidden");
    }
    let (status, body) = app.get(&alice, "/api/me").await;
    assert_eq!(status, StatusCode::OK, "alice is still signed in: {body}");
}

#[tokio::test]
async fn revoking_an_unknown_user_is_404_not_found() {
    let mut app = TestApp::spawn().await;
    let admin = app.admin().await;

    let (status, body) = app
        .post(&admin, "/api/users/nobody/revoke", json!({}))
        .await;

    assert_refused(status, &body, StatusCode::NOT_FOUND, "not_found");
}

// ---- cookie sign-in ------------------------------------------------------------------------

#[tokio::test]
async fn login_sets_an_httponly_samesite_strict_session_cookie() {
    let mut app = TestApp::spawn().await;
    app.create_user("alice", STUDENT).await;

    let (status, headers, body) = attempt(&app, &app.http, "alice", PASSWORD).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    let line = session_cookie_line(&headers);
    let attributes: Vec<String> = line
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    assert!(
        attributes.iter().any(|a| a == "httponly"),
        "HttpOnly: {line}"
    );
    assert!(
        attributes
            .iter()
            .any(|a| a.replace(' ', "") == "samesite=strict"),
        "SameSite=Strict: {line}"
    );
}

#[tokio::test]
async fn the_cookie_and_the_token_of_one_login_are_one_session() {
    let mut app = TestApp::spawn().await;
    app.create_user("prof1", PROFESSOR).await;
    let (status, headers, body) = attempt(&app, &app.http, "prof1", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let cookie = cookie_value(&session_cookie_line(&headers));
    let token = body["token"].as_str().unwrap();

    let (status, _) = app
        .call(Method::POST, "/api/logout", Some(token), None)
        .await;

    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = by_cookie(&app, Method::GET, "/api/me", &cookie, None, None).await;
    assert_refused(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "session_invalidated",
    );
}

#[tokio::test]
async fn a_cookie_signed_in_read_needs_no_origin() {
    let mut app = TestApp::spawn().await;
    let created = app.create_user("alice", STUDENT).await;
    let cookie = cookie_login(&app, "alice", PASSWORD).await;

    let (status, body) = by_cookie(&app, Method::GET, "/api/me", &cookie, None, None).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, serde_json::to_value(&created).unwrap());
}

#[tokio::test]
async fn a_cookie_signed_in_change_without_an_origin_is_403_forbidden() {
    let mut app = TestApp::spawn().await;
    app.create_user("alice", STUDENT).await;
    let cookie = cookie_login(&app, "alice", PASSWORD).await;

    let (status, body) = by_cookie(&app, Method::POST, "/api/logout", &cookie, None, None).await;

    assert_refused(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = by_cookie(&app, Method::GET, "/api/me", &cookie, None, None).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the refused logout changed nothing: {body}"
    );
}

#[tokio::test]
async fn a_cookie_signed_in_change_from_a_foreign_origin_is_403_forbidden() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;
    let cookie = cookie_login(&app, "alice", PASSWORD).await;
    let join = format!("/api/evaluations/{}/join", evaluation.id);
    let lookalikes = [
        FOREIGN.to_owned(),
        format!("{}.evil.example", app.base),
        format!("http://localhost.evil.example:{}", app.addr.port()),
        "null".to_owned(),
    ];

    for origin in &lookalikes {
        let (status, body) = by_cookie(
            &app,
            Method::POST,
            &join,
            &cookie,
            Some(origin),
            Some(json!({})),
        )
        .await;
        assert_refused(status, &body, StatusCode::FORBIDDEN, "forbidden");
        let (status, body) = by_cookie(
            &app,
            Method::POST,
            "/api/logout",
            &cookie,
            Some(origin),
            None,
        )
        .await;
        assert_refused(status, &body, StatusCode::FORBIDDEN, "forbidden");
    }

    let (status, body) = by_cookie(
        &app,
        Method::GET,
        &format!("/api/evaluations/{}", evaluation.id),
        &cookie,
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "still signed in: {body}");
    assert_eq!(
        body["participation"]["status"], "not_started",
        "the refused join changed nothing: {body}"
    );
}

#[tokio::test]
async fn a_cookie_signed_in_change_from_the_servers_own_origin_succeeds() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;
    let cookie = cookie_login(&app, "alice", PASSWORD).await;
    let own = app.base.clone();

    let (status, body) = by_cookie(
        &app,
        Method::POST,
        &format!("/api/evaluations/{}/join", evaluation.id),
        &cookie,
        Some(&own),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "in_progress");
    let (status, body) = by_cookie(
        &app,
        Method::PUT,
        &format!("/api/evaluations/{}/answers/q1", evaluation.id),
        &cookie,
        Some(&own),
        Some(json!({"revision": 1, "content": "pivot"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) =
        by_cookie(&app, Method::POST, "/api/logout", &cookie, Some(&own), None).await;

    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = by_cookie(&app, Method::GET, "/api/me", &cookie, None, None).await;
    assert_refused(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "session_invalidated",
    );
}

#[tokio::test]
async fn an_allowed_origin_flag_admits_that_origin_for_cookie_requests() {
    let mut app = TestApp::spawn_with(Options {
        args: [
            "--allowed-origin",
            "https://console.example",
            "--allowed-origin",
            "http://localhost:5173",
        ]
        .map(String::from)
        .to_vec(),
        ..Options::default()
    })
    .await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;
    let cookie = cookie_login(&app, "alice", PASSWORD).await;

    let (status, body) = by_cookie(
        &app,
        Method::POST,
        &format!("/api/evaluations/{}/join", evaluation.id),
        &cookie,
        Some("https://console.example"),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "the first allowed origin: {body}");
    let mut socket = cookie_socket(&app, &cookie, Some("https://console.example"))
        .await
        .expect("an allowed origin may open the socket");
    let session = match socket.next().await {
        ServerMessage::Welcome { session_id, .. } => session_id,
        other => panic!("WELCOME first, got {other:?}"),
    };
    let (status, body) = by_cookie(
        &app,
        Method::POST,
        "/api/logout",
        &cookie,
        Some(FOREIGN),
        None,
    )
    .await;
    assert_refused(status, &body, StatusCode::FORBIDDEN, "forbidden");

    let (status, body) = by_cookie(
        &app,
        Method::POST,
        "/api/logout",
        &cookie,
        Some("http://localhost:5173"),
        None,
    )
    .await;

    assert_eq!(
        status,
        StatusCode::NO_CONTENT,
        "the second allowed origin: {body}"
    );
    assert_eq!(
        socket
            .until(|m| matches!(m, ServerMessage::SessionInvalidated { .. }))
            .await,
        ServerMessage::SessionInvalidated {
            reason: InvalidationReason::SignedOut
        },
        "the logout ended session {session}"
    );
}

#[tokio::test]
async fn a_cookie_signed_in_socket_needs_the_servers_own_origin() {
    let mut app = TestApp::spawn().await;
    let alice = app.create_user("alice", STUDENT).await;
    let cookie = cookie_login(&app, "alice", PASSWORD).await;

    for origin in [None, Some(FOREIGN)] {
        let (status, body) = cookie_socket(&app, &cookie, origin)
            .await
            .err()
            .unwrap_or_else(|| panic!("a cookie socket from {origin:?} is refused"));
        assert_eq!(status, 403, "{body}");
        if !body.is_null() {
            assert_eq!(code(&body), "forbidden", "{body}");
        }
    }

    let mut socket = cookie_socket(&app, &cookie, Some(&app.base))
        .await
        .expect("the server's own origin may open the socket");
    match socket.next().await {
        ServerMessage::Welcome { user, .. } => assert_eq!(user, alice),
        other => panic!("WELCOME first, got {other:?}"),
    }
}

// ---- secrets in the log --------------------------------------------------------------------

/// Signs in and out in every way there is, so that any place a secret could leak is exercised:
/// bearer and cookie requests, sockets, refusals, logouts, revocations. Returns every token and
/// cookie seen.
async fn exercise_every_secret(app: &mut TestApp) -> Vec<String> {
    let admin = app.admin().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;
    app.join(&alice, &evaluation.id).await;
    let (mut socket, _) = app.socket_ready(&alice).await;
    socket.save(&evaluation.id, "q1", 1, "pivot").await;
    socket.ack("q1").await;
    let cookie = cookie_login(app, "prof1", PASSWORD).await;
    by_cookie(app, Method::GET, "/api/me", &cookie, None, None).await;
    by_cookie(
        app,
        Method::POST,
        "/api/logout",
        &cookie,
        Some(FOREIGN),
        None,
    )
    .await;
    let _ = cookie_socket(app, &cookie, Some(FOREIGN)).await;
    let again = app.login("alice", PASSWORD).await;
    socket.closed().await;
    app.get(&alice, "/api/me").await;
    let _ = bearer_socket(app, &alice.token).await;
    app.call(Method::GET, "/api/me", Some("garbage-token-xyzzy"), None)
        .await;
    attempt(app, &app.http, "alice", "wrong-guess-xyzzy").await;
    app.post(&again, "/api/logout", json!({})).await;
    app.post(&admin, "/api/users/prof1/revoke", json!({})).await;
    app.get(&prof, "/api/me").await;
    vec![
        admin.token,
        prof.token,
        alice.token,
        again.token,
        cookie,
        "garbage-token-xyzzy".into(),
    ]
}

#[tokio::test]
async fn tokens_never_appear_in_the_server_log() {
    let mut app = TestApp::spawn().await;
    let tokens = exercise_every_secret(&mut app).await;

    // A stopped server has written all it will write.
    assert!(app.terminate().await, "the server stops cleanly");

    let log = app.log();
    assert!(!log.trim().is_empty(), "the server logged something");
    for token in tokens {
        assert!(!log.contains(&token), "the token {token} is in the log");
    }
}

#[tokio::test]
async fn passwords_never_appear_in_the_server_log() {
    let mut app = TestApp::spawn().await;
    exercise_every_secret(&mut app).await;

    assert!(app.terminate().await, "the server stops cleanly");

    let log = app.log();
    assert!(!log.trim().is_empty(), "the server logged something");
    for password in [PASSWORD, ADMIN.1, "wrong-guess-xyzzy"] {
        assert!(
            !log.contains(password),
            "the password {password:?} is in the log"
        );
    }
}

// ---- durable sessions ----------------------------------------------------------------------

/// Asserts that a session still works: `/api/me` and a socket of the same session.
async fn assert_still_signed_in(app: &TestApp, actor: &Actor) {
    let (status, body) = app.get(actor, "/api/me").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{} is still signed in: {body}",
        actor.name()
    );
    assert_eq!(body, serde_json::to_value(&actor.user).unwrap());
    let mut socket = bearer_socket(app, &actor.token)
        .await
        .unwrap_or_else(|(status, body)| panic!("the socket opens: {status} {body}"));
    assert_welcomed(&mut socket, &actor.session_id).await;
}

#[tokio::test]
async fn sessions_survive_a_graceful_restart() {
    let mut app = TestApp::spawn().await;
    let alice = app.student("alice").await;
    let prof = app.professor("prof1").await;

    assert!(app.terminate().await, "the server stops cleanly");
    app.restart().await;

    assert_still_signed_in(&app, &alice).await;
    assert_still_signed_in(&app, &prof).await;
}

#[tokio::test]
async fn sessions_survive_a_killed_server() {
    let mut app = TestApp::spawn().await;
    let alice = app.student("alice").await;
    let prof = app.professor("prof1").await;

    app.kill().await;
    app.restart().await;

    assert_still_signed_in(&app, &alice).await;
    assert_still_signed_in(&app, &prof).await;
}

#[tokio::test]
async fn ended_sessions_stay_ended_after_a_restart() {
    let mut app = TestApp::spawn().await;
    let admin = app.admin().await;
    let signed_out = app.student("alice").await;
    let revoked = app.student("bob").await;
    let replaced = app.student("carol").await;
    app.post(&signed_out, "/api/logout", json!({})).await;
    app.post(&admin, "/api/users/bob/revoke", json!({})).await;
    let current = app.login("carol", PASSWORD).await;

    app.kill().await;
    app.restart().await;

    for actor in [&signed_out, &revoked, &replaced] {
        let (status, body) = app.get(actor, "/api/me").await;
        assert_refused(
            status,
            &body,
            StatusCode::UNAUTHORIZED,
            "session_invalidated",
        );
    }
    assert_still_signed_in(&app, &current).await;
}

// ---- idle expiry ---------------------------------------------------------------------------

/// Lets `days` pass for every stored session: moves each one's last use back (the server must be
/// stopped).
async fn let_days_pass(app: &TestApp, days: i64) {
    app.move_sessions_back(days * 24 * 3600 * 1000).await;
}

#[tokio::test]
async fn a_session_unused_for_more_than_14_days_gets_401_session_expired() {
    let mut app = TestApp::spawn().await;
    let alice = app.student("alice").await;
    assert!(app.terminate().await);
    let_days_pass(&app, 15).await;

    app.restart().await;

    let (status, body) = app.get(&alice, "/api/me").await;
    assert_refused(status, &body, StatusCode::UNAUTHORIZED, "session_expired");
    let (status, body) = bearer_socket(&app, &alice.token)
        .await
        .err()
        .expect("no socket for an expired session");
    assert_eq!(status, 401, "{body}");
    let again = app.login("alice", PASSWORD).await;
    assert_still_signed_in(&app, &again).await;
}

#[tokio::test]
async fn a_session_used_within_14_days_stays_alive_and_its_use_restarts_the_clock() {
    let mut app = TestApp::spawn().await;
    let alice = app.student("alice").await;
    assert!(app.terminate().await);
    let_days_pass(&app, 13).await;
    app.restart().await;
    let (status, body) = app.get(&alice, "/api/me").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "13 days unused is not too long: {body}"
    );
    assert!(app.terminate().await);

    // 15 days after the sign-in, but 2 after the last use.
    let_days_pass(&app, 2).await;
    app.restart().await;

    let (status, body) = app.get(&alice, "/api/me").await;
    assert_eq!(status, StatusCode::OK, "the use 2 days ago counts: {body}");
}

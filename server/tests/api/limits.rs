//! Tests: the contract's "Limits and load shedding", each against a client that knows only the
//! contract — a burst of sign-ins, a race of guesses, names too long, too many event streams,
//! slow clients, big frames, oversized evaluations and rosters, connection caps — and the flags
//! that tune them (exam networks, trusted proxies, the public URL, the metrics address). Each
//! asserts the rule (what is answered, what is held, what is left), never how fast.

use crate::helpers::*;
use futures_util::future::join_all;
use invigil_protocol::{ClientMessage, Role, ServerMessage};
use reqwest::header::{self, HeaderMap};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::net::IpAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A server with these extra flags.
async fn app_with(args: &[&str]) -> TestApp {
    TestApp::spawn_with(Options {
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        ..Options::default()
    })
    .await
}

/// A client whose connections come from `ip` (every 127.0.0.0/8 address is loopback on Linux).
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(Some(ip.parse::<IpAddr>().unwrap()))
        .build()
        .unwrap()
}

/// `POST /api/login` from `client` with extra headers: status, headers, body.
async fn sign_in(
    app: &TestApp,
    client: &reqwest::Client,
    username: &str,
    password: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Value) {
    let mut request = client
        .post(app.url("/api/login"))
        .json(&json!({"username": username, "password": password}));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status();
    let headers = response.headers().clone();
    (
        status,
        headers,
        response.json().await.unwrap_or(Value::Null),
    )
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

fn retry_after(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// A sample of `/metrics` served on the `--metrics-listen` address.
async fn scraped(addr: &str, name: &str) -> f64 {
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("the metrics address answers")
        .text()
        .await
        .unwrap();
    sample(&text, name).unwrap_or_else(|| panic!("{name} in:\n{text}"))
}

/// A free port on 127.0.0.1 for `--metrics-listen`.
fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

// ---- Sign-ins ------------------------------------------------------------------------------

#[tokio::test]
async fn a_burst_of_sign_ins_is_served_or_told_when_to_come_back_and_all_get_in() {
    // Invariant: with one hashing worker and a short wait limit, every sign-in of a burst is
    // either served or answered 503 `server_busy` with a `Retry-After`, and coming back when told
    // gets every one of them in.
    let mut app = app_with(&["--max-hashing", "1", "--sign-in-wait-limit-ms", "200"]).await;
    let names: Vec<String> = (0..30).map(|i| format!("burst{i}")).collect();
    let admin = app.admin().await;
    let roster: String = std::iter::once("username,password\n".to_owned())
        .chain(names.iter().map(|n| format!("{n},{PASSWORD}\n")))
        .collect();
    let response = app
        .http
        .post(app.url("/api/users/import"))
        .bearer_auth(&admin.token)
        .body(roster)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);

    let attempt = |name: String| {
        let app = &app;
        async move {
            let mut busy = 0;
            loop {
                let (status, headers, body) = sign_in(app, &app.http, &name, PASSWORD, &[]).await;
                match status {
                    StatusCode::OK => return busy,
                    StatusCode::SERVICE_UNAVAILABLE => {
                        assert_eq!(code(&body), "server_busy", "{body}");
                        let wait = retry_after(&headers).expect("server_busy has a Retry-After");
                        assert!(wait >= 1, "Retry-After in whole seconds: {wait}");
                        busy += 1;
                        // Come back as told, with some jitter as the apps do.
                        let jitter = Duration::from_millis(rand_ms(&name, busy));
                        tokio::time::sleep(Duration::from_secs(wait) + jitter).await;
                    }
                    other => panic!("{name}: {other} {body}"),
                }
            }
        }
    };
    let busy: Vec<u32> = tokio::time::timeout(
        Duration::from_secs(120),
        join_all(names.iter().cloned().map(attempt)),
    )
    .await
    .expect("every sign-in gets in");
    assert!(
        busy.iter().sum::<u32>() > 0,
        "30 sign-ins at once on one worker with a 200 ms wait limit shed some load"
    );
}

/// A spread of a second, different for each name and round.
fn rand_ms(name: &str, round: u32) -> u64 {
    let seed = name.bytes().fold(u64::from(round), |h, b| {
        h.wrapping_mul(31).wrapping_add(u64::from(b))
    });
    seed % 1000
}

#[tokio::test]
async fn two_hundred_simultaneous_guesses_check_at_most_ten_passwords() {
    // Invariant: an attempt is counted before its password is checked, so that simultaneous
    // guesses for one username from one address pass no more checks than the limit (10). (No
    // sign-in may be shed as busy here, however slow the machine: each is checked or refused.)
    let mut app = app_with(&["--sign-in-wait-limit-ms", "600000"]).await;
    app.create_user("alice", Role::Student).await;
    let guesses = (0..200).map(|i| {
        let app = &app;
        async move {
            sign_in(app, &app.http, "alice", &format!("guess {i}"), &[])
                .await
                .0
        }
    });
    let answers = join_all(guesses).await;

    let checked = answers
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let throttled = answers
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(checked, 10, "{answers:?}");
    assert_eq!(throttled, 190, "{answers:?}");
    let (status, headers, body) = sign_in(&app, &app.http, "alice", PASSWORD, &[]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(retry_after(&headers).is_some_and(|s| (1..=300).contains(&s)));
}

#[tokio::test]
async fn simultaneous_guesses_for_many_names_from_one_address_check_at_most_a_hundred() {
    let app = app_with(&["--sign-in-wait-limit-ms", "600000"]).await;
    let guesses = (0..250).map(|i| {
        let app = &app;
        async move {
            sign_in(app, &app.http, &format!("nobody{i}"), "guess", &[])
                .await
                .0
        }
    });
    let answers = join_all(guesses).await;
    let checked = answers
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    assert_eq!(checked, 100, "{answers:?}");
    assert!(
        answers
            .iter()
            .all(|s| *s == StatusCode::UNAUTHORIZED || *s == StatusCode::TOO_MANY_REQUESTS)
    );
}

#[tokio::test]
async fn a_username_over_64_characters_or_empty_is_refused_before_anything_else() {
    // Invariant: such a sign-in is 400 `bad_request`, counts against no limit, and its name is
    // never written to the log.
    let mut app = TestApp::spawn().await;
    app.create_user("alice", Role::Student).await;
    let marker = "Q".repeat(65);
    let huge = format!("{marker}{}", "x".repeat(1024 * 1024 - 100));
    for name in [marker.as_str(), huge.as_str(), ""] {
        let (status, _, body) = sign_in(&app, &app.http, name, "wrong", &[]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(code(&body), "bad_request");
        assert!(body.to_string().len() < 1000, "the answer does not echo it");
    }
    // 150 more from the same address: were they counted, the per-address limit (100) would now
    // refuse everyone from here.
    for _ in 0..150 {
        let (status, _, _) = sign_in(&app, &app.http, &marker, "wrong", &[]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    let (status, _, body) = sign_in(&app, &app.http, "alice", PASSWORD, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sixty_four = "a".repeat(64);
    let (status, _, _) = sign_in(&app, &app.http, &sixty_four, "wrong", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "64 characters is a name");
    assert!(!app.log().contains(&marker), "the name is not logged");
    // Names in a path too (the unblock route): one no account can have is 404, neither echoed
    // nor logged whole, even with a NUL, which PostgreSQL cannot compare (a failure there would
    // be logged with the request's fields).
    let prof = app.professor("prof").await;
    let evaluation = app.evaluation(&prof, json!({})).await;
    let in_path = "U".repeat(65);
    for name in [
        format!("{in_path}{}", "y".repeat(16 * 1024)),
        format!("{in_path}%00"),
    ] {
        let path = format!(
            "/api/evaluations/{}/participants/{name}/unblock",
            evaluation.id
        );
        let (status, body) = app.post(&prof, &path, json!({})).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(code(&body), "not_found");
        assert!(body.to_string().len() < 1000, "the answer does not echo it");
    }
    assert!(
        !app.log().contains(&in_path),
        "the name in the path is not logged"
    );
}

#[tokio::test]
async fn an_exam_network_is_exempt_from_the_address_limit_but_not_the_username_one() {
    let mut app = app_with(&["--exam-network", "127.0.0.0/8"]).await;
    app.create_user("alice", Role::Student).await;
    // A room behind one address: many students, a typo each, far past 100 failures.
    for i in 0..120 {
        let (status, _, body) = sign_in(&app, &app.http, &format!("student{i}"), "typo", &[]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    let (status, _, body) = sign_in(&app, &app.http, "alice", PASSWORD, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // One student's own ten failures still refuse that username from there.
    for _ in 0..10 {
        let (status, _, _) = sign_in(&app, &app.http, "alice", "typo", &[]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _, body) = sign_in(&app, &app.http, "alice", PASSWORD, &[]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
}

#[tokio::test]
async fn behind_trusted_proxies_the_client_is_read_from_the_end_of_x_forwarded_for() {
    // Two proxies in front: the last entry is the nearer proxy's peer (the farther proxy), the
    // one before it the client. Entries further left are the client's own and prove nothing.
    let mut app = app_with(&["--trust-forwarded-for", "--trusted-proxy-hops", "2"]).await;
    app.create_user("alice", Role::Student).await;
    for i in 0..10 {
        let forged = format!("198.51.100.{i}, 203.0.113.9, 10.0.0.2");
        let (status, _, _) = sign_in(
            &app,
            &app.http,
            "alice",
            "wrong",
            &[("x-forwarded-for", &forged)],
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let forged = "192.0.2.77, 203.0.113.9, 10.0.0.2";
    let (status, _, body) = sign_in(
        &app,
        &app.http,
        "alice",
        PASSWORD,
        &[("x-forwarded-for", forged)],
    )
    .await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "a forged first entry does not escape: {body}"
    );
    let other_client = "203.0.113.10, 10.0.0.2";
    let (status, _, body) = sign_in(
        &app,
        &app.http,
        "alice",
        PASSWORD,
        &[("x-forwarded-for", other_client)],
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "another client behind the same proxies: {body}"
    );
}

// ---- Event streams and frames ----------------------------------------------------------------

#[tokio::test]
async fn a_session_holds_at_most_four_event_streams_and_a_fifth_is_told_when_to_come_back() {
    let mut app = TestApp::spawn_with(Options {
        heartbeat_ms: 200,
        ..Options::default()
    })
    .await;
    let prof = app.professor("prof1").await;
    let mut streams = Vec::new();
    for _ in 0..4 {
        streams.push(app.events_ready(&prof).await.0);
    }
    let fifth = app
        .http
        .get(app.url("/api/events"))
        .bearer_auth(&prof.token)
        .send()
        .await
        .unwrap();
    assert_eq!(fifth.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait = retry_after(fifth.headers()).expect("a Retry-After");
    let body: Value = fifth.json().await.unwrap();
    assert_eq!(code(&body), "too_many_streams", "{body}");
    // Another session of the same user is not refused.
    let other = app.login("prof1", PASSWORD).await;
    app.events_ready(&other).await;

    // One stream closes: its place is free by the time the server said to come back.
    drop(streams.pop());
    let again = tokio::time::timeout(WAIT, async {
        loop {
            tokio::time::sleep(Duration::from_secs(wait)).await;
            let response = app
                .http
                .get(app.url("/api/events"))
                .bearer_auth(&prof.token)
                .send()
                .await
                .unwrap();
            if response.status() == StatusCode::OK {
                return response;
            }
        }
    })
    .await;
    assert!(
        again.is_ok(),
        "a closed stream gives its place back within a Retry-After or so"
    );
}

#[tokio::test]
async fn an_error_frame_never_echoes_a_large_bad_frame_and_the_socket_stays_open() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let alice = app.student("alice").await;
    let evaluation = app.running(&prof, &[&alice]).await;
    app.join(&alice, &evaluation.id).await;
    let (mut socket, _) = app.socket_ready(&alice).await;

    let bad = format!(r#"{{"type": "{}"}}"#, "X".repeat(900 * 1024));
    socket.send_text(&bad).await;
    let error = socket
        .until(|m| matches!(m, ServerMessage::Error { .. }))
        .await;
    let ServerMessage::Error { message, .. } = error else {
        unreachable!()
    };
    assert!(message.len() <= 256, "{} bytes", message.len());

    // Still open, and still saving.
    socket.send(&ClientMessage::Heartbeat).await;
    socket.save(&evaluation.id, "q1", 1, "still here").await;
    socket.ack("q1").await;
}

// ---- Sizes ---------------------------------------------------------------------------------

#[tokio::test]
async fn an_evaluation_over_any_size_limit_is_refused_naming_it_and_nothing_is_stored() {
    let mut app = TestApp::spawn().await;
    let prof = app.professor("prof1").await;
    let text = |prompt: String| json!({"prompt": prompt, "kind": "text"});
    let choices = |count: usize, label: usize| {
        json!({"prompt": "Pick", "kind": "choice", "choices": (0..count)
            .map(|i| json!({"id": format!("c{i}"), "label": "l".repeat(label)}))
            .collect::<Vec<_>>()})
    };
    let cases = [
        (json!({"title": "t".repeat(201), "questions": []}), "200"),
        (
            json!({"title": "Big", "questions": [text("p".repeat(64 * 1024 + 1))]}),
            "64 KiB",
        ),
        (
            json!({"title": "Big", "questions": [text("p".repeat(3 * 1024 * 1024))]}),
            "64 KiB",
        ),
        (
            json!({"title": "Big", "questions": vec![text("p".into()); 501]}),
            "500",
        ),
        (
            json!({"title": "Big", "questions": [choices(101, 1)]}),
            "100",
        ),
        (
            json!({"title": "Big", "questions": [choices(2, 1025)]}),
            "1 KiB",
        ),
    ];
    for (body, limit) in cases {
        let (status, answer) = app.post(&prof, "/api/evaluations", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(code(&answer), "bad_request");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(limit), "names {limit}: {message}");
    }
    let (_, listed) = app.get(&prof, "/api/evaluations").await;
    assert_eq!(listed, json!([]), "nothing was stored");

    // The same limits hold for a change, which then changes nothing.
    let evaluation = app.evaluation(&prof, json!({})).await;
    let path = format!("/api/evaluations/{}", evaluation.id);
    let (status, answer) = app
        .call(
            Method::PATCH,
            &path,
            Some(&prof.token),
            Some(json!({"questions": [text("p".repeat(65 * 1024))]})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let (_, now) = app.get(&prof, &path).await;
    assert_eq!(
        now["questions"],
        serde_json::to_value(&evaluation.questions).unwrap()
    );

    // An access list of 50,001 names.
    let names: Vec<String> = (0..50_001).map(|i| format!("s{i}")).collect();
    let (status, answer) = app
        .put(
            &prof,
            &format!("/api/evaluations/{}/access", evaluation.id),
            json!({ "students": names }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("50000")
    );
}

#[tokio::test]
async fn a_roster_over_its_limits_is_refused_whole() {
    let mut app = TestApp::spawn().await;
    let admin = app.admin().await;
    let import = |body: String| {
        app.http
            .post(app.url("/api/users/import"))
            .bearer_auth(&admin.token)
            .body(body)
            .send()
    };
    let mut rows = String::from("username,password\n");
    for i in 0..20_001 {
        rows.push_str(&format!("s{i},pw\n"));
    }
    let response = import(rows).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert!(body.to_string().contains("at most 20000"), "{body}");

    let response = import(format!("username,password\na,{}\n", "p".repeat(5 << 20)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(code(&body), "payload_too_large");

    let (_, users) = app.get(&admin, "/api/users").await;
    assert_eq!(
        users.as_array().unwrap().len(),
        1,
        "only the admin: {users}"
    );
}

// ---- Slow clients and connection caps --------------------------------------------------------

/// Whether the server closes `stream` (reads to its end) within the test's wait, and the bytes
/// it sent before.
async fn closed_by_server(stream: &mut TcpStream) -> Option<String> {
    let mut seen = Vec::new();
    let read = tokio::time::timeout(WAIT, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok()
        .map(|()| String::from_utf8_lossy(&seen).into_owned())
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.addr).await.unwrap()
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_closed_and_others_are_served_meanwhile() {
    let app = app_with(&["--header-read-timeout-ms", "300"]).await;
    let mut slow = Vec::new();
    for _ in 0..20 {
        let mut stream = connect(&app).await;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow.push(stream);
    }
    let response = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    for stream in &mut slow {
        let sent = closed_by_server(stream).await.expect("the server hangs up");
        assert!(
            !sent.contains("200 OK"),
            "no answer to half a request: {sent}"
        );
    }
    // A connection that sends nothing at all is closed the same way.
    let mut silent = connect(&app).await;
    assert!(closed_by_server(&mut silent).await.is_some());
}

#[tokio::test]
async fn a_body_that_never_arrives_whole_is_refused_and_the_connection_closed() {
    let app = app_with(&["--body-read-timeout-ms", "300"]).await;
    let mut stream = connect(&app).await;
    stream
        .write_all(
            b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"username\"",
        )
        .await
        .unwrap();
    let sent = closed_by_server(&mut stream)
        .await
        .expect("the server hangs up");
    let status = sent.split(' ').nth(1).unwrap_or_default();
    assert!(
        sent.is_empty() || status == "400",
        "refused or cut, never served: {sent}"
    );
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_keep_alive_timeout() {
    let app = app_with(&["--keep-alive-timeout-ms", "300"]).await;
    let mut stream = connect(&app).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let sent = closed_by_server(&mut stream)
        .await
        .expect("the server hangs up once idle");
    assert!(sent.starts_with("HTTP/1.1 200"), "served first: {sent}");
}

/// A TCP connection from `ip`, holding its place without sending anything.
async fn connect_from(app: &TestApp, ip: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{ip}:0").parse().unwrap()).unwrap();
    socket.connect(app.addr).await.unwrap()
}

#[tokio::test]
async fn connections_past_the_per_address_cap_are_closed_at_once_but_other_addresses_are_served() {
    let metrics = free_address();
    let app = app_with(&[
        "--max-connections-per-address",
        "3",
        "--metrics-listen",
        &metrics,
    ])
    .await;
    // Three idle connections from 127.0.0.3 hold the address's share.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from(&app, "127.0.0.3").await);
    }
    let mut fourth = connect_from(&app, "127.0.0.3").await;
    let sent = closed_by_server(&mut fourth)
        .await
        .expect("a connection past the cap is closed");
    assert_eq!(sent, "", "closed without an answer");
    assert!(scraped(&metrics, "invigil_connections_refused_total").await >= 1.0);

    let other = client_from("127.0.0.4");
    let response = other.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "another address is served"
    );

    // One closes: its place is back.
    drop(held.pop());
    let again = tokio::time::timeout(WAIT, async {
        loop {
            let client = client_from("127.0.0.3");
            if let Ok(r) = client.get(app.url("/healthz")).send().await
                && r.status() == StatusCode::OK
            {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(
        again.is_ok(),
        "the freed place is given to a new connection"
    );
}

#[tokio::test]
async fn past_the_global_cap_new_connections_wait_until_one_closes() {
    // Invariant: never more open connections than the cap; a waiting one is served once a place
    // frees (it waits in the listen queue, it is not refused).
    let metrics = free_address();
    let app = app_with(&["--max-connections", "3", "--metrics-listen", &metrics]).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect(&app).await);
    }
    let open = || scraped(&metrics, "invigil_http_connections");
    tokio::time::timeout(WAIT, async {
        while open().await < 3.0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the three are accepted");
    let waiting = tokio::spawn({
        let url = app.url("/healthz");
        async move { reqwest::get(url).await.map(|r| r.status()) }
    });
    // (The metrics address counts its own connections apart.)
    assert!(open().await <= 3.0, "never past the cap");
    drop(held.pop());
    let status = tokio::time::timeout(WAIT, waiting)
        .await
        .expect("the waiting connection is served once a place frees")
        .unwrap()
        .unwrap();
    assert_eq!(status, StatusCode::OK);
}

// ---- Cookies, origins, metrics ---------------------------------------------------------------

/// Signs in and returns the session cookie's `Set-Cookie` line and the token.
async fn cookie_of(app: &TestApp, username: &str, origin: Option<&str>) -> (String, String) {
    let mut headers = Vec::new();
    if let Some(origin) = origin {
        headers.push(("origin", origin));
    }
    let (status, answer_headers, body) =
        sign_in(app, &app.http, username, PASSWORD, &headers).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let line = answer_headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("invigil_session="))
        .expect("a session cookie")
        .to_owned();
    (line, body["token"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn an_event_stream_signed_in_by_cookie_from_a_foreign_origin_is_refused() {
    let mut app = TestApp::spawn().await;
    app.create_user("prof1", Role::Professor).await;
    let (_, token) = cookie_of(&app, "prof1", None).await;
    let stream = |origin: Option<String>| {
        let mut request = app
            .http
            .get(app.url("/api/events"))
            .header(header::COOKIE, format!("invigil_session={token}"));
        if let Some(origin) = origin {
            request = request.header(header::ORIGIN, origin);
        }
        request.send()
    };
    let foreign = stream(Some("http://evil.example".into())).await.unwrap();
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    let body: Value = foreign.json().await.unwrap();
    assert_eq!(code(&body), "forbidden");
    // A page of the server's own (browsers send no Origin on a same-origin EventSource).
    assert_eq!(stream(None).await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        stream(Some(app.base.clone())).await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_https_public_url_marks_the_cookie_secure_turns_on_hsts_and_is_the_only_own_origin() {
    let public = "https://exams.example.org";
    let mut app = app_with(&["--public-url", public]).await;
    app.create_user("prof1", Role::Professor).await;

    let (line, token) = cookie_of(&app, "prof1", None).await;
    assert!(line.contains("; Secure"), "{line}");
    let response = app.http.get(app.url("/healthz")).send().await.unwrap();
    let hsts = response
        .headers()
        .get(header::STRICT_TRANSPORT_SECURITY)
        .expect("HSTS");
    assert!(hsts.to_str().unwrap().starts_with("max-age="));

    let create = |origin: &str| {
        app.http
            .post(app.url("/api/evaluations"))
            .header(header::COOKIE, format!("invigil_session={token}"))
            .header(header::ORIGIN, origin)
            .json(&json!({"title": "By cookie", "questions": []}))
            .send()
    };
    // The Host the request names is no longer the server's own origin: the public URL is.
    assert_eq!(
        create(&app.base).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        create("http://exams.example.org").await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(create(public).await.unwrap().status(), StatusCode::CREATED);
    // A sign-in from the public origin is the server's own.
    cookie_of(&app, "prof1", Some(public)).await;
}

#[tokio::test]
async fn an_http_public_url_leaves_the_cookie_unsecured_and_sends_no_hsts() {
    let mut app = app_with(&["--public-url", "http://exams.example.org:8080"]).await;
    app.create_user("prof1", Role::Professor).await;
    let (line, _) = cookie_of(&app, "prof1", None).await;
    assert!(!line.contains("Secure"), "{line}");
    let response = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert!(
        response
            .headers()
            .get(header::STRICT_TRANSPORT_SECURITY)
            .is_none()
    );
}

#[tokio::test]
async fn metrics_answer_only_admins_on_the_main_address_and_anyone_on_the_metrics_address() {
    let metrics = free_address();
    let mut app = app_with(&["--metrics-listen", &metrics]).await;
    let student = app.student("alice").await;
    let admin = app.admin().await;
    let get = |token: Option<String>| {
        let mut request = app.http.get(app.url("/metrics"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(get(None).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        get(Some(student.token)).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get(Some(admin.token)).await.unwrap().status(),
        StatusCode::OK
    );
    assert!(scraped(&metrics, "invigil_sign_ins_total").await >= 2.0);
    assert!(
        scraped(&metrics, "invigil_hashing_memory_bytes").await > 0.0,
        "the hashing workers' memory is reported"
    );
}

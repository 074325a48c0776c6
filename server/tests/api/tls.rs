//! TLS served by the server itself (`--tls-cert`, `--tls-key`): HTTPS and WSS with a certificate
//! made at test time, the `Secure` cookie and HSTS that follow without `--public-url`, and the
//! certificate read again on SIGHUP.

use crate::helpers::*;
use invigil_e2e::tls::{Authority, Identity};
use invigil_protocol::ServerMessage;
use reqwest::StatusCode;
use reqwest::header;
use rustls::pki_types::ServerName;
use serde_json::json;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

async fn served_by_tls(identity: &Identity, args: &[&str]) -> TestApp {
    TestApp::spawn_with(Options {
        tls: Some(identity.clone()),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        ..Options::default()
    })
    .await
}

/// The certificate a new connection to `app` is shown (DER), by a client trusting `authority`.
async fn certificate_served(app: &TestApp, authority: &Authority) -> Vec<u8> {
    let tcp = TcpStream::connect(app.addr)
        .await
        .expect("the server accepts");
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let tls = TlsConnector::from(authority.client_config())
        .connect(name, tcp)
        .await
        .expect("the TLS handshake succeeds");
    let (_, connection) = tls.get_ref();
    connection.peer_certificates().expect("a certificate")[0].to_vec()
}

#[tokio::test]
async fn https_and_wss_are_served_with_the_given_certificate() {
    let authority = Authority::new("A school's CA");
    let identity = authority.issue();
    let mut app = served_by_tls(&identity, &[]).await;

    let student = app.student("alice").await;
    let (mut socket, snapshot) = app.socket_ready(&student).await;

    assert!(app.base.starts_with("https://"), "{}", app.base);
    assert_eq!(
        certificate_served(&app, &authority).await,
        identity.cert_der
    );
    assert!(matches!(snapshot[0], ServerMessage::Welcome { .. }));
    socket
        .send(&invigil_protocol::ClientMessage::Heartbeat)
        .await;
}

#[tokio::test]
async fn without_a_public_url_tls_makes_the_cookie_secure_and_turns_on_hsts() {
    let identity = Authority::new("A school's CA").issue();
    let mut app = served_by_tls(&identity, &[]).await;
    app.create_user("prof1", invigil_protocol::Role::Professor)
        .await;

    let response = app
        .http
        .post(app.url("/api/login"))
        .json(&json!({"username": "prof1", "password": PASSWORD}))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .expect("a session cookie")
        .to_str()
        .unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
    let hsts = response
        .headers()
        .get(header::STRICT_TRANSPORT_SECURITY)
        .expect("HSTS");
    assert!(hsts.to_str().unwrap().starts_with("max-age="));
}

#[tokio::test]
async fn an_http_public_url_decides_over_tls_no_secure_cookie_and_no_hsts() {
    // TLS ends at the server, but people are told to use http (a lab network behind a gateway
    // that strips it, say): the public URL decides.
    let identity = Authority::new("A school's CA").issue();
    let mut app = served_by_tls(&identity, &["--public-url", "http://exams.example.org"]).await;
    app.create_user("prof1", invigil_protocol::Role::Professor)
        .await;

    let response = app
        .http
        .post(app.url("/api/login"))
        .json(&json!({"username": "prof1", "password": PASSWORD}))
        .send()
        .await
        .unwrap();

    let cookie = response.headers().get(header::SET_COOKIE).unwrap();
    assert!(!cookie.to_str().unwrap().contains("Secure"));
    assert!(
        response
            .headers()
            .get(header::STRICT_TRANSPORT_SECURITY)
            .is_none()
    );
}

#[tokio::test]
async fn sighup_serves_a_renewed_certificate_to_new_connections_and_a_broken_one_is_not_taken() {
    let authority = Authority::new("A school's CA");
    let first = authority.issue();
    let app = served_by_tls(&first, &[]).await;
    assert_eq!(certificate_served(&app, &authority).await, first.cert_der);

    // The certificate is renewed in place and the server told.
    let renewed = authority.issue();
    renewed.write(app.dir());
    app.signal(nix::sys::signal::Signal::SIGHUP);
    app.until_logged("reloaded the TLS certificate").await;

    assert_eq!(certificate_served(&app, &authority).await, renewed.cert_der);

    // A renewal gone wrong: the key of another certificate. The renewed one stays.
    let other = authority.issue();
    std::fs::write(app.dir().join("key.pem"), &other.key_pem).unwrap();
    app.signal(nix::sys::signal::Signal::SIGHUP);
    app.until_logged("was not reloaded").await;

    assert!(
        app.log().contains("is not the key of the certificate"),
        "the log says why: {}",
        app.log()
    );
    assert_eq!(certificate_served(&app, &authority).await, renewed.cert_der);
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_certificate_that_cannot_be_used_stops_the_server_before_it_listens() {
    let identity = Authority::new("A school's CA").issue();
    let other = Authority::new("A school's CA").issue();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = identity.write(dir.path());
    std::fs::write(&key, &other.key_pem).unwrap();

    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_invigil-server"))
        .args(["--listen", "127.0.0.1:0", "--database"])
        .arg(format!("sqlite://{}", dir.path().join("db").display()))
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .env_remove("INVIGIL_LISTEN")
        .env_remove("INVIGIL_DATABASE_URL")
        .output()
        .await
        .unwrap();

    assert!(!output.status.success());
    assert!(!String::from_utf8_lossy(&output.stdout).contains("listening"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("is not the key of the certificate"),
        "{stderr}"
    );
}

//! Sign-in against servers the real one cannot be made to be on demand: one that is busy (503
//! `server_busy` with `Retry-After`), and one reached over plain `http` on the network. A scripted
//! HTTP server stands in for them: it answers each request with the next of its answers and
//! records what it was sent.

use crate::harness::*;
use invigil_client::view::Event;
use invigil_client::{ClientConfig, Engine, Error, ServerUrl};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// A request as the scripted server read it: its request line and its body.
#[derive(Debug, Clone)]
struct Seen {
    line: String,
    body: String,
}

/// An HTTP/1.1 server on `bind` that answers the n-th request with `answers[n]` (the last one
/// once they run out), one request per connection.
struct Scripted {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Scripted {
    async fn start(bind: &str, answers: Vec<String>) -> Self {
        let listener = TcpListener::bind((bind, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Read the head, then as much body as Content-Length says.
                let (head_end, length) = loop {
                    let Ok(n) = stream.read(&mut chunk).await else {
                        break (None, 0);
                    };
                    if n == 0 {
                        break (None, 0);
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break (Some(end + 4), length);
                    }
                };
                let Some(head_end) = head_end else { continue };
                while buf.len() < head_end + length {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&buf).into_owned();
                let answer = {
                    let mut seen = log.lock().unwrap();
                    seen.push(Seen {
                        line: text.lines().next().unwrap_or_default().to_owned(),
                        body: text[head_end.min(text.len())..].to_owned(),
                    });
                    answers[(seen.len() - 1).min(answers.len() - 1)].clone()
                };
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            }
        });
        Self { port, seen, task }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn response(status: &str, headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n{headers}\r\n{body}",
        body.len()
    )
}

fn busy() -> String {
    response(
        "503 Service Unavailable",
        "Retry-After: 1\r\n",
        r#"{"error":{"code":"server_busy","message":"The server is busy checking passwords; try again in 1 s."}}"#,
    )
}

fn signed_in() -> String {
    response(
        "200 OK",
        "",
        r#"{"token":"t0k3n","session_id":"s1","user":{"id":"u1","username":"alice","display_name":"Alice","role":"student"}}"#,
    )
}

async fn engine(url: &str, allow_insecure: bool) -> (Engine, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ClientConfig::new(ServerUrl::parse(url).unwrap(), dir.path());
    config.allow_insecure = allow_insecure;
    let engine = Engine::start(config, mock_vault()).await.unwrap();
    (engine, dir)
}

#[tokio::test]
async fn a_busy_server_is_asked_again_by_itself_with_the_same_password_saying_when() {
    let server = Scripted::start("127.0.0.1", vec![busy(), busy(), signed_in()]).await;
    let (engine, _dir) = engine(&format!("http://127.0.0.1:{}", server.port), false).await;
    let mut events = engine.subscribe();

    let session = tokio::time::timeout(WAIT, engine.sign_in(None, "alice", PASSWORD))
        .await
        .expect("signed in within the bound")
        .expect("signed in");

    assert_eq!(session.user.unwrap().username, "alice");
    let logins: Vec<Seen> = server
        .seen()
        .into_iter()
        .filter(|s| s.line.starts_with("POST /api/login "))
        .collect();
    assert_eq!(logins.len(), 3, "{logins:?}");
    for login in &logins {
        let body: serde_json::Value = serde_json::from_str(&login.body).unwrap();
        assert_eq!(body["password"], PASSWORD);
        assert_eq!(body["username"], "alice");
    }
    let mut waits = Vec::new();
    while let Ok(numbered) = events.try_recv() {
        if let Event::SignInBusy { retry_in_secs } = numbered.event {
            waits.push(retry_in_secs);
        }
    }
    // Retry-After 1, with up to 1 s of jitter: 1 or 2 s, announced before each new attempt.
    assert_eq!(waits.len(), 2, "{waits:?}");
    assert!(waits.iter().all(|w| (1..=2).contains(w)), "{waits:?}");
}

#[tokio::test]
async fn plain_http_off_this_computer_is_refused_before_the_password_is_sent_unless_allowed() {
    // 0.0.0.0 is not a loopback address, yet reaches this machine: the server can see whether the
    // engine called it.
    let server = Scripted::start("0.0.0.0", vec![signed_in()]).await;
    let url = format!("http://0.0.0.0:{}", server.port);

    let (refusing, _dir) = engine(&url, false).await;
    let refused = refusing.sign_in(None, "alice", PASSWORD).await.unwrap_err();
    assert!(matches!(refused, Error::InsecureServer(_)), "{refused:?}");
    assert_eq!(refused.kind(), "insecure_server");
    assert!(refused.to_string().contains("INVIGIL_ALLOW_INSECURE=1"));
    assert!(server.seen().is_empty(), "nothing was sent");
    // Naming the server on the sign-in screen is refused the same way.
    let named = refusing
        .sign_in(Some("http://exams.example.org"), "alice", PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(named.kind(), "insecure_server");

    let (allowing, _dir) = engine(&url, true).await;
    let session = allowing.sign_in(None, "alice", PASSWORD).await.unwrap();
    assert_eq!(session.user.unwrap().username, "alice");
    assert!(server.seen()[0].line.starts_with("POST /api/login "));
}

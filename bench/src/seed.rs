//! The people and evaluations of a run.
//!
//! Accounts are written straight into the database with the server's own storage code, all with
//! one argon2id hash: hashing 20,000 passwords one by one through `POST /api/users` would take
//! minutes and measure nothing a student does. Everything a student does goes through the real
//! API: each one signs in with `POST /api/login` (a real argon2id verification), joins with
//! `POST /api/evaluations/{id}/join`, and holds its session token as the desktop app does.

use crate::wire::Credential;
use anyhow::{Context as _, Result, bail};
use futures_util::{StreamExt, TryStreamExt, stream};
use invigil_protocol::{Evaluation, LoginResponse, Role};
use invigil_server::config::DatabaseUrl;
use invigil_server::live::event::Bus;
use invigil_server::store::NewAccount;
use serde_json::{Value, json};
use std::time::Duration;

/// Every bench account's password.
pub const PASSWORD: &str = "bench-password-1";
/// The bootstrap admin of every bench server.
pub const ADMIN: &str = "admin:bench-admin-password";
/// The professor who owns the bench's evaluations.
pub const PROFESSOR: &str = "prof";
/// Sign-ins at once: each is an argon2id verification on the server's blocking threads.
const SIGN_INS_IN_FLIGHT: usize = 4;
/// Joins at once.
const JOINS_IN_FLIGHT: usize = 32;

/// The username of student `i` of a group (`s00001`, `inv0001`, …).
pub fn username(prefix: &str, i: usize) -> String {
    format!("{prefix}{:05}", i + 1)
}

/// Creates the professor and the students named, in the database at `url`, before the server
/// runs on it.
pub async fn create_accounts(url: &str, students: &[String]) -> Result<()> {
    let url: DatabaseUrl = url.parse().map_err(anyhow::Error::msg)?;
    let (bus, _events) = Bus::new();
    let store = invigil_server::store::open(&url, bus, Duration::from_secs(5)).await?;
    let hash = invigil_server::auth::hashing::Hashing::new(1, Duration::from_secs(10))
        .hash(PASSWORD.into())
        .await
        .map_err(|e| anyhow::anyhow!("hashing the bench password: {e:?}"))?;
    let account = |username: &str, role| NewAccount {
        id: invigil_server::domain::new_id(),
        username: username.to_owned(),
        display_name: username.to_owned(),
        role,
        password_hash: hash.clone(),
    };
    let mut accounts = vec![account(PROFESSOR, Role::Professor)];
    accounts.extend(students.iter().map(|s| account(s, Role::Student)));
    for chunk in accounts.chunks(2000) {
        store
            .create_accounts(chunk.to_vec())
            .await
            .map_err(|e| anyhow::anyhow!("creating the bench accounts: {e:?}"))?;
    }
    store.close().await;
    Ok(())
}

/// A client of the server's HTTP API.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    /// The API at `base` (`http://127.0.0.1:PORT`).
    pub fn new(base: &str) -> Api {
        Api {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .expect("a plain HTTP client builds"),
            base: base.to_owned(),
        }
    }

    /// Signs in; the session's token.
    pub async fn login(&self, username: &str) -> Result<String> {
        let response = self
            .http
            .post(format!("{}/api/login", self.base))
            .json(&json!({"username": username, "password": PASSWORD, "device": "invigil-bench"}))
            .send()
            .await?;
        if !response.status().is_success() {
            bail!(
                "signing in {username}: {} {}",
                response.status(),
                response.text().await.unwrap_or_default()
            );
        }
        Ok(response.json::<LoginResponse>().await?.token)
    }

    /// Signs in as the apps do in a crowd: answered 503 `server_busy`, comes back after its
    /// `Retry-After` plus up to half as much again at random, until let in. How many times it
    /// was told to come back.
    pub async fn login_when_free(&self, username: &str) -> Result<u64> {
        let mut busy = 0;
        loop {
            let response = self
                .http
                .post(format!("{}/api/login", self.base))
                .json(
                    &json!({"username": username, "password": PASSWORD, "device": "invigil-bench"}),
                )
                .send()
                .await?;
            let status = response.status();
            if status.is_success() {
                return Ok(busy);
            }
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<f64>().ok());
            match (status, retry_after) {
                (reqwest::StatusCode::SERVICE_UNAVAILABLE, Some(seconds)) => {
                    busy += 1;
                    let jitter = rand::random::<f64>() * seconds / 2.0;
                    tokio::time::sleep(Duration::from_secs_f64(seconds + jitter)).await;
                }
                _ => bail!(
                    "signing in {username}: {status} {}",
                    response.text().await.unwrap_or_default()
                ),
            }
        }
    }

    /// Signs in every one of `usernames`, a few at a time.
    pub async fn login_all(&self, usernames: &[String]) -> Result<Vec<Credential>> {
        stream::iter(usernames.iter().cloned())
            .map(|username| async move {
                let token = self.login(&username).await?;
                Ok::<_, anyhow::Error>(Credential { username, token })
            })
            .buffered(SIGN_INS_IN_FLIGHT)
            .try_collect()
            .await
    }

    /// A request with a bearer token; the JSON answer (null for an empty body).
    pub async fn call(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("{method} {path}: {status} {text}");
        }
        Ok(if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).with_context(|| format!("{method} {path}: {text}"))?
        })
    }

    /// A request whose answer is text (the CSV exports).
    pub async fn text(&self, token: &str, path: &str) -> Result<String> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("GET {path}: {status} {text}");
        }
        Ok(text)
    }

    /// Creates an evaluation open to every student, with `questions` text questions, and starts it.
    pub async fn running_evaluation(
        &self,
        professor: &str,
        title: &str,
        questions: usize,
    ) -> Result<Evaluation> {
        let questions: Vec<Value> = (1..=questions)
            .map(|i| json!({"id": format!("q{i}"), "prompt": format!("Question {i}: explain your reasoning."), "kind": "text"}))
            .collect();
        let created = self
            .call(
                reqwest::Method::POST,
                professor,
                "/api/evaluations",
                Some(json!({"title": title, "questions": questions, "access": "open"})),
            )
            .await?;
        let id = created["id"].as_str().context("an evaluation has an id")?;
        let started = self
            .call(
                reqwest::Method::POST,
                professor,
                &format!("/api/evaluations/{id}/phase"),
                Some(json!({"phase": "in_progress"})),
            )
            .await?;
        Ok(serde_json::from_value(started)?)
    }

    /// Every student joins the evaluation.
    pub async fn join_all(&self, evaluation_id: &str, students: &[Credential]) -> Result<()> {
        let path = format!("/api/evaluations/{evaluation_id}/join");
        stream::iter(students)
            .map(|s| self.call(reqwest::Method::POST, &s.token, &path, None))
            .buffer_unordered(JOINS_IN_FLIGHT)
            .try_for_each(|_| async { Ok(()) })
            .await
    }

    /// Moves an evaluation to `phase`.
    pub async fn set_phase(&self, professor: &str, evaluation_id: &str, phase: &str) -> Result<()> {
        self.call(
            reqwest::Method::POST,
            professor,
            &format!("/api/evaluations/{evaluation_id}/phase"),
            Some(json!({ "phase": phase })),
        )
        .await
        .map(|_| ())
    }

    /// The stored revision of `question_id` for every participant, from the answers export.
    pub async fn stored_revisions(
        &self,
        professor: &str,
        evaluation_id: &str,
        question_id: &str,
    ) -> Result<std::collections::HashMap<String, u64>> {
        let csv = self
            .text(
                professor,
                &format!("/api/evaluations/{evaluation_id}/exports/answers.csv"),
            )
            .await?;
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        let headers = reader.headers()?.clone();
        let column = |name: &str| {
            headers
                .iter()
                .position(|h| h == name)
                .with_context(|| format!("the answers export has no {name} column"))
        };
        let (user, question, revision) = (
            column("username")?,
            column("question_id")?,
            column("revision")?,
        );
        let mut stored = std::collections::HashMap::new();
        for row in reader.records() {
            let row = row?;
            if &row[question] == question_id && !row[revision].is_empty() {
                stored.insert(row[user].to_owned(), row[revision].parse()?);
            }
        }
        Ok(stored)
    }
}

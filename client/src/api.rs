//! The HTTP half of the contract that the desktop app needs: sign-in and sign-out, joining and
//! handing in, and reading back stored answers. Every refusal becomes an [`Error::Server`] with
//! the contract's code.

use crate::config::ServerUrl;
use crate::error::{Error, Result};
use invigil_protocol::{
    Answer, EvaluationDetail, LoginRequest, LoginResponse, Participation, SaveAck, SaveAnswer, User,
};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;

/// How long establishing a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a whole request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// A client of one server's HTTP API.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    base: ServerUrl,
}

impl Api {
    /// A client of `base` trusting what `tls` trusts (see [`crate::trust`]).
    pub fn new(base: ServerUrl, tls: &Arc<rustls::ClientConfig>) -> Self {
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(rustls::ClientConfig::clone(tls))
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("invigil-desktop/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client builds");
        Self { http, base }
    }

    /// The server.
    pub fn base(&self) -> &ServerUrl {
        &self.base
    }

    /// `POST /api/login`.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        device: &str,
    ) -> Result<LoginResponse> {
        let body = LoginRequest {
            username: username.to_owned(),
            password: password.to_owned(),
            device: Some(device.to_owned()),
        };
        self.json(self.request(Method::POST, "/api/login", None).json(&body))
            .await
    }

    /// `POST /api/logout`.
    pub async fn logout(&self, token: &str) -> Result<()> {
        self.empty(self.request(Method::POST, "/api/logout", Some(token)))
            .await
    }

    /// `GET /api/me`.
    pub async fn me(&self, token: &str) -> Result<User> {
        self.json(self.request(Method::GET, "/api/me", Some(token)))
            .await
    }

    /// `GET /api/evaluations/{id}`: the evaluation and the student's participation.
    pub async fn evaluation(&self, token: &str, id: &str) -> Result<EvaluationDetail> {
        let path = format!("/api/evaluations/{}", segment(id));
        self.json(self.request(Method::GET, &path, Some(token)))
            .await
    }

    /// `POST /api/evaluations/{id}/join`.
    pub async fn join(&self, token: &str, id: &str) -> Result<Participation> {
        let path = format!("/api/evaluations/{}/join", segment(id));
        self.json(
            self.request(Method::POST, &path, Some(token))
                .json(&serde_json::json!({})),
        )
        .await
    }

    /// `POST /api/evaluations/{id}/submit`.
    pub async fn submit(&self, token: &str, id: &str) -> Result<Participation> {
        let path = format!("/api/evaluations/{}/submit", segment(id));
        self.json(
            self.request(Method::POST, &path, Some(token))
                .json(&serde_json::json!({})),
        )
        .await
    }

    /// `GET /api/evaluations/{id}/answers`: what the server holds of the student's answers.
    pub async fn answers(&self, token: &str, id: &str) -> Result<Vec<Answer>> {
        let path = format!("/api/evaluations/{}/answers", segment(id));
        self.json(self.request(Method::GET, &path, Some(token)))
            .await
    }

    /// `PUT /api/evaluations/{id}/answers/{question_id}`: saves an answer over HTTP (bodies up
    /// to 4 MiB), for an answer too large for one socket frame.
    pub async fn save_answer(
        &self,
        token: &str,
        id: &str,
        question_id: &str,
        save: &SaveAnswer,
    ) -> Result<SaveAck> {
        let path = format!(
            "/api/evaluations/{}/answers/{}",
            segment(id),
            segment(question_id)
        );
        self.json(self.request(Method::PUT, &path, Some(token)).json(save))
            .await
    }

    fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let request = self.http.request(method, self.base.join(path));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn send(&self, request: RequestBuilder) -> Result<reqwest::Response> {
        let response = request.send().await.map_err(|e| self.failure(&e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(refusal(response).await)
    }

    async fn json<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T> {
        let response = self.send(request).await?;
        let bytes = response.bytes().await.map_err(|e| self.failure(&e))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Protocol(e.to_string()))
    }

    async fn empty(&self, request: RequestBuilder) -> Result<()> {
        self.send(request).await.map(drop)
    }

    /// A transport failure: a refused certificate says so, anything else is the network's.
    fn failure(&self, error: &reqwest::Error) -> Error {
        let url = self.base.to_string();
        match crate::trust::certificate_problem(error) {
            Some(detail) => Error::UntrustedCertificate { url, detail },
            None => Error::Network {
                url,
                detail: describe(error),
            },
        }
    }
}

/// Turns a non-2xx response into the contract's error.
pub(crate) async fn refusal(response: reqwest::Response) -> Error {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let text = response.text().await.unwrap_or_default();
    refusal_from(status, &text, retry_after)
}

/// Reads the contract's error body of a refusal with `status`.
pub(crate) fn refusal_from(status: StatusCode, body: &str, retry_after: Option<u64>) -> Error {
    match serde_json::from_str::<invigil_protocol::ErrorBody>(body) {
        Ok(body) => Error::Server {
            code: body.error.code,
            message: body.error.message,
            retry_after,
        },
        Err(_) => Error::Protocol(format!("HTTP {status} without the contract's error body")),
    }
}

/// A path segment with the characters that would change the path escaped.
fn segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn describe(error: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use invigil_protocol::ErrorCode;

    #[test]
    fn a_refusal_carries_the_contract_code_and_message() {
        let error = refusal_from(
            StatusCode::TOO_MANY_REQUESTS,
            r#"{"error":{"code":"too_many_attempts","message":"Too many attempts."}}"#,
            Some(300),
        );
        assert!(matches!(
            error,
            Error::Server {
                code: ErrorCode::TooManyAttempts,
                retry_after: Some(300),
                ..
            }
        ));
        assert_eq!(error.kind(), "too_many_attempts");
    }

    #[test]
    fn a_refusal_without_the_contract_body_is_a_protocol_error() {
        let error = refusal_from(StatusCode::BAD_GATEWAY, "<html>", None);
        assert_eq!(error.kind(), "protocol");
    }

    #[test]
    fn ids_cannot_change_the_path() {
        assert_eq!(segment("e1"), "e1");
        assert_eq!(segment("../x y"), "..%2Fx%20y");
    }
}

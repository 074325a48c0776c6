//! The HTTP API of the contract. Each feature module exports its routes; [`router`] merges them.
//!
//! - [`accounts`]: users, login, logout, me, revoke.
//! - [`evaluations`]: evaluations, phases, end times, access lists, join, submit, participants,
//!   unblock, audit.
//! - [`answers`]: saving and reading answers.
//! - [`users`]: the users list, roster imports and password resets (admins; additions).
//! - [`exports`]: CSV exports of answers and of the audit log, and imports of the desktop app's
//!   answers-export file (additions).

pub mod accounts;
pub mod answers;
pub mod evaluations;
pub mod exports;
pub mod users;

use crate::app::AppState;
use crate::error::Error;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use invigil_protocol::ErrorCode;
use serde::de::DeserializeOwned;

/// The largest request body accepted: an answer of up to 1 MiB once JSON-escaped.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Every route but the live ones.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .merge(accounts::router())
        .merge(evaluations::router())
        .merge(answers::router())
        .merge(users::router())
        .merge(exports::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
}

async fn healthz() -> &'static str {
    "ok"
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

async fn not_found() -> Error {
    Error::not_found("There is no such endpoint.")
}

async fn method_not_allowed() -> Response {
    let mut response =
        Error::bad_request("That method is not allowed on this endpoint.").into_response();
    *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    response
}

/// A JSON body whose every rejection is a contract error: 413 `payload_too_large` past the limit,
/// 400 `bad_request` naming what is wrong otherwise. An empty body reads as `{}`.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Error::api(
                    ErrorCode::PayloadTooLarge,
                    format!("The request body may be at most {MAX_BODY_BYTES} bytes."),
                )
            } else {
                Error::bad_request(format!("The request body could not be read: {e}"))
            }
        })?;
        let body: &[u8] = match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            None => b"{}",
            Some(b'{') => &bytes,
            // Every body of the contract is an object; serde would otherwise read a struct from
            // an array of its fields in order.
            Some(_) => {
                return Err(Error::bad_request(
                    "The request body must be a JSON object.",
                ));
            }
        };
        serde_json::from_slice(body)
            .map(ApiJson)
            .map_err(|e| Error::bad_request(format!("The request body is not valid: {e}.")))
    }
}

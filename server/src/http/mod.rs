//! The HTTP API of the contract. Each feature module exports its routes; [`router`] merges them.
//!
//! - [`accounts`]: users, login, logout, me, revoke.
//! - [`evaluations`]: evaluations, phases, end times, access lists, join, submit, participants,
//!   unblock, audit.
//! - [`answers`]: saving and reading answers.
//! - [`integrity`]: proctoring's integrity events, the HTTP form of the socket's frame.
//! - [`users`]: the users list, roster imports and password resets (admins; additions).
//! - [`exports`]: CSV exports of answers and of the audit log, and imports of the desktop app's
//!   answers-export file (additions).
//! - [`openapi`]: this API as OpenAPI 3.1, generated from the handlers' annotations (addition).

pub mod accounts;
pub mod answers;
pub mod evaluations;
pub mod exports;
pub mod integrity;
pub mod openapi;
pub mod users;

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::Error;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::handler::Handler;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodFilter;
use invigil_protocol::ErrorCode;
use serde::de::DeserializeOwned;

/// The largest request body accepted: an answer of up to 1 MiB once JSON-escaped.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Every route of the API (the live ones aside).
pub fn routes() -> Routes {
    Routes::new()
        .get("/healthz", healthz)
        .get("/metrics", metrics)
        .get("/api/openapi.json", openapi::serve)
        .merge(accounts::routes())
        .merge(evaluations::routes())
        .merge(answers::routes())
        .merge(users::routes())
        .merge(exports::routes())
        .merge(integrity::routes())
}

/// The API's router: [`routes`] with the contract's answers for unknown paths and methods, and
/// the body limit.
pub fn router() -> Router<AppState> {
    routes()
        .into_router()
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// Routes declared once: served by the router they build, and listed by [`Routes::table`], which
/// the authorization matrix test reads so that a route without a row in it fails that test. Every
/// route of the server is declared through this.
#[derive(Default)]
pub struct Routes {
    router: Router<AppState>,
    table: Vec<(Method, &'static str)>,
}

impl Routes {
    /// None yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// `method path` answered by `handler`.
    pub fn on<H, T>(mut self, method: Method, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).expect("a method axum routes");
        self.router = self.router.route(path, axum::routing::on(filter, handler));
        self.table.push((method, path));
        self
    }

    /// `GET path`.
    pub fn get<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, h: H) -> Self {
        self.on(Method::GET, path, h)
    }

    /// `POST path`.
    pub fn post<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, h: H) -> Self {
        self.on(Method::POST, path, h)
    }

    /// `PUT path`.
    pub fn put<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, h: H) -> Self {
        self.on(Method::PUT, path, h)
    }

    /// `PATCH path`.
    pub fn patch<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, h: H) -> Self {
        self.on(Method::PATCH, path, h)
    }

    /// Both sets.
    pub fn merge(mut self, other: Routes) -> Self {
        self.router = self.router.merge(other.router);
        self.table.extend(other.table);
        self
    }

    /// Every route: method and path (with its `{parameters}`).
    pub fn table(&self) -> &[(Method, &'static str)] {
        &self.table
    }

    /// The router serving them.
    pub fn into_router(self) -> Router<AppState> {
        self.router
    }
}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "service",
    responses(
        (status = 200, description = "Requests are served", content_type = "text/plain", body = String)
    )
)]
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// `GET /metrics` on the main address: admins only (401 without a session, 403 for others).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "service",
    responses(
        (status = 200, description = "The metrics, OpenMetrics text", content_type = "application/openmetrics-text", body = String),
        openapi::NoSession,
        openapi::Forbidden
    )
)]
pub(crate) async fn metrics(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, Error> {
    accounts::require_admin(&caller)?;
    Ok(render_metrics(State(state)).await.into_response())
}

/// The metrics in the OpenMetrics text format (also served by `--metrics-listen`).
pub async fn render_metrics(State(state): State<AppState>) -> impl IntoResponse {
    let (waiting, running) = state.hashing.load();
    state
        .metrics
        .hashing(waiting, running, state.hashing.memory_kib());
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
        let ApiBytes(bytes) = ApiBytes::from_request(req, state).await?;
        Self::parse(&bytes)
    }
}

impl<T: DeserializeOwned> ApiJson<T> {
    /// Reads a body already received.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        let body: &[u8] = match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            None => b"{}",
            Some(b'{') => bytes,
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

/// A raw body (a CSV roster, an answers file) whose every rejection is a contract error, as
/// [`ApiJson`]'s: 413 `payload_too_large` past the limit, 400 `bad_request` when it cannot be
/// read whole in time.
pub struct ApiBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBytes {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        Bytes::from_request(req, state)
            .await
            .map(ApiBytes)
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    Error::api(
                        ErrorCode::PayloadTooLarge,
                        format!("The request body may be at most {MAX_BODY_BYTES} bytes."),
                    )
                } else {
                    Error::bad_request(format!("The request body could not be read whole: {e}"))
                }
            })
    }
}

//! User administration for the console (admins): the list of users, importing a roster of
//! students from CSV, and resetting a password.

use super::accounts::require_admin;
use super::{ApiBytes, ApiJson, Routes, openapi};
use crate::app::AppState;
use crate::auth::Caller;
use crate::auth::hashing::Hashing;
use crate::domain::{Password, loggable, new_id};
use crate::error::{Error, Result};
use crate::files::{RosterLine, parse_roster};
use crate::store::{NewAccount, Store};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use invigil_protocol::{
    ErrorCode, LineError, PasswordReset, ResetPassword, Role, User, UserSummary, UsersImported,
};
use serde::Serialize;

/// The routes of this module.
pub fn routes() -> Routes {
    Routes::new()
        .get("/api/users", list)
        .post("/api/users/import", import)
        .post("/api/users/{username}/password", reset_password)
}

#[utoipa::path(
    get,
    path = "/api/users",
    tag = "users",
    responses(
        (status = 200, description = "Every account", body = Vec<UserSummary>),
        openapi::NoSession,
        openapi::Forbidden
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<UserSummary>>> {
    require_admin(&caller)?;
    Ok(Json(state.store.users().await?))
}

/// A roster that cannot be imported: the contract's error body with the faulty lines beside the
/// message (`error.lines`).
#[derive(Debug)]
pub struct RosterRefused(pub Vec<LineError>);

#[derive(Serialize)]
struct RefusedBody<'a> {
    error: RefusedDetail<'a>,
}

#[derive(Serialize)]
struct RefusedDetail<'a> {
    code: ErrorCode,
    message: String,
    lines: &'a [LineError],
}

impl RosterRefused {
    /// The sentence summing the refusal up.
    pub fn message(&self) -> String {
        let n = self.0.len();
        let lines = if n == 1 { "line has" } else { "lines have" };
        format!(
            "{n} {lines} errors; nothing was imported. Fix them and import the whole file again."
        )
    }
}

impl IntoResponse for RosterRefused {
    fn into_response(self) -> Response {
        let body = RefusedBody {
            error: RefusedDetail {
                code: ErrorCode::BadRequest,
                message: self.message(),
                lines: &self.0,
            },
        };
        (StatusCode::BAD_REQUEST, Json(body)).into_response()
    }
}

/// Why a roster import failed.
#[derive(Debug)]
pub enum ImportFailure {
    /// Lines of the file are wrong (or name taken usernames).
    Lines(RosterRefused),
    /// Anything else.
    Other(Error),
}

impl From<Error> for ImportFailure {
    fn from(e: Error) -> Self {
        ImportFailure::Other(e)
    }
}

impl IntoResponse for ImportFailure {
    fn into_response(self) -> Response {
        match self {
            ImportFailure::Lines(refused) => refused.into_response(),
            ImportFailure::Other(e) => e.into_response(),
        }
    }
}

/// Imports a roster of students, all or nothing: every line is checked first (format, duplicates,
/// names already taken), and only a file without errors creates its accounts, in one transaction.
/// Used by the API and the command line.
pub async fn import_roster(
    store: &dyn Store,
    hashing: &Hashing,
    text: &str,
) -> std::result::Result<Vec<User>, ImportFailure> {
    let lines = parse_roster(text).map_err(|e| ImportFailure::Lines(RosterRefused(e)))?;
    let names: Vec<String> = lines
        .iter()
        .map(|l| l.username.as_str().to_owned())
        .collect();
    let taken = store.users_named(&names).await?;
    if !taken.is_empty() {
        let errors = lines
            .iter()
            .filter(|l| taken.iter().any(|u| u.username == l.username.as_str()))
            .map(|l| LineError {
                line: l.line,
                message: format!(
                    "The username `{}` is already taken; remove this line.",
                    l.username
                ),
            })
            .collect();
        return Err(ImportFailure::Lines(RosterRefused(errors)));
    }
    let accounts = hash_all(hashing, lines).await?;
    Ok(store.create_accounts(accounts).await?)
}

/// Hashes the passwords of a roster through the pool, one per worker at a time: each next one
/// queues behind whatever arrived meanwhile, so that sign-ins during a large import wait for one
/// hash each, not for the whole file.
async fn hash_all(hashing: &Hashing, lines: Vec<RosterLine>) -> Result<Vec<NewAccount>> {
    let hashed: Vec<Result<NewAccount>> = futures_util::stream::iter(lines)
        .map(|line| async move {
            Ok(NewAccount {
                id: new_id(),
                username: line.username.as_str().to_owned(),
                display_name: line.display_name,
                role: Role::Student,
                password_hash: hashing.hash(line.password.expose().to_owned()).await?,
            })
        })
        .buffered(hashing.workers())
        .collect()
        .await;
    hashed.into_iter().collect()
}

#[utoipa::path(
    post,
    path = "/api/users/import",
    tag = "users",
    request_body(content = String, content_type = "text/csv", description = "A roster: `username,password[,display_name]` per line"),
    responses(
        (status = 201, description = "Every line's account was created", body = UsersImported),
        openapi::BadRequest,
        openapi::NoSession,
        openapi::Forbidden,
        openapi::PhaseConflict,
        openapi::TooLarge
    )
)]
#[tracing::instrument(skip_all, fields(bytes = body.len()))]
pub(crate) async fn import(
    State(state): State<AppState>,
    caller: Caller,
    ApiBytes(body): ApiBytes,
) -> std::result::Result<(StatusCode, Json<UsersImported>), ImportFailure> {
    require_admin(&caller)?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| Error::bad_request("The roster must be a UTF-8 text (CSV) file."))?;
    let created = import_roster(state.store.as_ref(), &state.hashing, text).await?;
    tracing::info!(created = created.len(), "students imported");
    Ok((StatusCode::CREATED, Json(UsersImported { created })))
}

/// Resets a password (and by default ends every session of that user). Used by the API and the
/// command line.
pub async fn reset(
    store: &dyn Store,
    hashing: &Hashing,
    username: &str,
    password: String,
    revoke_sessions: bool,
    actor: &User,
) -> Result<PasswordReset> {
    let password = Password::parse(password)?;
    let account = store
        .account(username)
        .await?
        .ok_or_else(|| Error::not_found(format!("There is no user `{}`.", loggable(username))))?;
    let hash = hashing.hash(password.expose().to_owned()).await?;
    let revoked = store
        .set_password(&account.user, hash, revoke_sessions, actor)
        .await?;
    Ok(PasswordReset {
        username: account.user.username,
        revoked_sessions: u32::try_from(revoked).unwrap_or(u32::MAX),
    })
}

#[utoipa::path(
    post,
    path = "/api/users/{username}/password",
    tag = "users",
    request_body = ResetPassword,
    params(("username" = String, Path, description = "The user")),
    responses(
        (status = 200, description = "The password was reset", body = PasswordReset),
        openapi::BadRequest,
        openapi::NoSession,
        openapi::Forbidden,
        (status = 404, description = "`not_found`: no such user", body = invigil_protocol::ErrorBody),
        openapi::TooLarge
    )
)]
#[tracing::instrument(skip_all, fields(username = %loggable(&username)))]
pub(crate) async fn reset_password(
    State(state): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
    ApiJson(body): ApiJson<ResetPassword>,
) -> Result<Json<PasswordReset>> {
    require_admin(&caller)?;
    let revoke = body.revoke_sessions.unwrap_or(true);
    let done = reset(
        state.store.as_ref(),
        &state.hashing,
        &username,
        body.password,
        revoke,
        caller.user(),
    )
    .await?;
    tracing::info!(revoked = done.revoked_sessions, "password reset");
    Ok(Json(done))
}

//! Accounts and sessions: create users, sign in and out, who am I, revoke.

use super::{ApiJson, Routes, openapi};
use crate::app::AppState;
use crate::auth::throttle::{client_address, in_exam_network};
use crate::auth::{Caller, foreign_origin, new_token, session_cookie, token_hash};
use crate::domain::{Password, Username, display_name, loggable, new_id};
use crate::error::{Error, Result};
use crate::store::{NewAccount, SignIn};
use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use invigil_protocol::{
    CreateUser, ErrorCode, InvalidationReason, LoginRequest, LoginResponse, Role, User,
};
use std::net::SocketAddr;

/// The longest username a sign-in may name, in characters: longer (or empty) is refused before
/// anything else.
pub const MAX_USERNAME_CHARS: usize = 64;
/// The longest password an account can have, in bytes: a longer one cannot match and is not hashed.
const MAX_PASSWORD_BYTES: usize = 1024;

/// The routes of this module.
pub fn routes() -> Routes {
    Routes::new()
        .post("/api/users", create_user)
        .post("/api/users/{username}/revoke", revoke)
        .post("/api/login", login)
        .post("/api/logout", logout)
        .get("/api/me", me)
}

/// Refuses anyone but an admin.
pub fn require_admin(caller: &Caller) -> Result<()> {
    if caller.user().role == Role::Admin {
        Ok(())
    } else {
        Err(Error::forbidden("Only an admin may do this."))
    }
}

/// Creates an account (used by the API, the bootstrap admin and the demo).
pub async fn create_account(
    state: &AppState,
    username: &str,
    password: String,
    role: Role,
    name: Option<String>,
) -> Result<User> {
    let username = Username::parse(username)?;
    let password = Password::parse(password)?;
    let display_name = display_name(name, &username)?;
    let password_hash = state.hashing.hash(password.expose().to_owned()).await?;
    state
        .store
        .create_account(NewAccount {
            id: new_id(),
            username: username.as_str().to_owned(),
            display_name,
            role,
            password_hash,
        })
        .await
}

#[utoipa::path(
    post,
    path = "/api/users",
    tag = "users",
    request_body = CreateUser,
    responses(
        (status = 201, description = "The account", body = User),
        openapi::BadRequest,
        openapi::NoSession,
        openapi::Forbidden,
        openapi::PhaseConflict,
        openapi::TooLarge
    )
)]
#[tracing::instrument(skip_all, fields(username = %loggable(&body.username), role = ?body.role))]
pub(crate) async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateUser>,
) -> Result<(StatusCode, Json<User>)> {
    require_admin(&caller)?;
    let user = create_account(
        &state,
        &body.username,
        body.password,
        body.role,
        body.display_name,
    )
    .await?;
    tracing::info!(user_id = %user.id, "user created");
    Ok((StatusCode::CREATED, Json(user)))
}

#[utoipa::path(
    post,
    path = "/api/login",
    tag = "accounts",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in; also sets the cookie `invigil_session`", body = LoginResponse),
        (status = 401, description = "`invalid_credentials`", body = invigil_protocol::ErrorBody),
        openapi::BadRequest,
        openapi::Forbidden,
        openapi::TooLarge,
        (status = 429, description = "`too_many_attempts` (sign-ins) or `too_many_streams`; see `Retry-After`", body = invigil_protocol::ErrorBody),
        (status = 503, description = "`server_busy`: sign-ins are queued too long; see `Retry-After`", body = invigil_protocol::ErrorBody)
    )
)]
#[tracing::instrument(skip_all, fields(username, ip))]
pub(crate) async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Response> {
    // Before anything else (no throttle entry, no hashing, no log of the name): a name that
    // cannot be an account's.
    let length = body.username.chars().take(MAX_USERNAME_CHARS + 1).count();
    if length == 0 || length > MAX_USERNAME_CHARS {
        return Err(Error::bad_request(format!(
            "The username must be 1 to {MAX_USERNAME_CHARS} characters long."
        )));
    }
    let config = &state.config;
    let ip = client_address(peer.ip(), &headers, config.forwarded_hops());
    let span = tracing::Span::current();
    span.record("username", body.username.as_str());
    span.record("ip", tracing::field::display(ip));
    // Login CSRF: another site's page must not sign a browser in (and set its cookie).
    if foreign_origin(&headers, config) {
        return Err(Error::forbidden(
            "A sign-in from a web page must come from this server's own pages (Origin check).",
        ));
    }
    // Counted before the password is checked, so that simultaneous guesses cannot pass the limits.
    let exempt = in_exam_network(ip, &config.exam_networks);
    let attempt = match state
        .throttle
        .admit(state.store.as_ref(), ip, exempt, &body.username)
        .await
    {
        Ok(attempt) => attempt,
        Err(refused) => {
            tracing::warn!("sign-in refused: too many failures");
            return Err(refused);
        }
    };
    let checked = async {
        let account = state.store.account(&body.username).await?;
        let matched = if body.password.len() > MAX_PASSWORD_BYTES {
            false
        } else {
            let hash = account.as_ref().map(|a| a.password_hash.clone());
            state.hashing.verify(hash, body.password).await?
        };
        Ok::<_, Error>(account.filter(|_| matched))
    }
    .await;
    let failed = matches!(checked, Ok(None));
    // A failure stays counted; a success, or a check that never ran (busy), is taken back.
    state
        .throttle
        .settle(state.store.as_ref(), attempt, failed)
        .await?;
    let Some(account) = checked? else {
        tracing::info!("sign-in failed");
        return Err(Error::api(
            ErrorCode::InvalidCredentials,
            "Wrong username or password.",
        ));
    };
    let user = account.user;
    let device = body
        .device
        .map(|d| d.trim().chars().take(200).collect::<String>())
        .filter(|d| !d.is_empty());
    let token = new_token();
    let session_id = new_id();
    let revoked = state
        .store
        .sign_in(SignIn {
            user: user.clone(),
            session_id: session_id.clone(),
            token_hash: token_hash(&token),
            device,
        })
        .await?;
    state.metrics.sign_ins.inc();
    tracing::info!(user_id = %user.id, session_id = %session_id, revoked = revoked.len(), "signed in");
    let cookie = session_cookie(Some(&token), &headers, config);
    let mut response = Json(LoginResponse {
        token,
        session_id,
        user,
    })
    .into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(Error::internal)?,
    );
    Ok(response)
}

#[utoipa::path(
    post,
    path = "/api/logout",
    tag = "accounts",
    responses(
        (status = 204, description = "Signed out; the cookie is cleared"),
        openapi::NoSession,
        openapi::Forbidden
    )
)]
#[tracing::instrument(skip_all, fields(session_id = %caller.session.id))]
pub(crate) async fn logout(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response> {
    state
        .store
        .revoke_session(&caller.session, InvalidationReason::SignedOut)
        .await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&session_cookie(None, &headers, &state.config))
            .map_err(Error::internal)?,
    );
    Ok(response)
}

#[utoipa::path(
    get,
    path = "/api/me",
    tag = "accounts",
    responses(
        (status = 200, description = "The signed-in user", body = User),
        openapi::NoSession
    )
)]
pub(crate) async fn me(caller: Caller) -> Json<User> {
    Json(caller.session.user)
}

#[utoipa::path(
    post,
    path = "/api/users/{username}/revoke",
    tag = "users",
    params(("username" = String, Path, description = "The user")),
    responses(
        (status = 204, description = "Every session of the user ended"),
        openapi::NoSession,
        openapi::Forbidden,
        (status = 404, description = "`not_found`: no such user", body = invigil_protocol::ErrorBody)
    )
)]
#[tracing::instrument(skip_all, fields(username = %loggable(&username)))]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
) -> Result<StatusCode> {
    require_admin(&caller)?;
    let account =
        state.store.account(&username).await?.ok_or_else(|| {
            Error::not_found(format!("There is no user `{}`.", loggable(&username)))
        })?;
    let count = state
        .store
        .revoke_user(
            &account.user,
            InvalidationReason::RevokedByAdmin,
            caller.user(),
        )
        .await?;
    tracing::info!(sessions = count, "sessions revoked by an admin");
    Ok(StatusCode::NO_CONTENT)
}

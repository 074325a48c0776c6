//! Accounts and sessions: create users, sign in and out, who am I, revoke.

use super::ApiJson;
use crate::app::AppState;
use crate::auth::{
    COOKIE, Caller, foreign_origin, hash_password, new_token, token_hash, verify_password,
};
use crate::domain::{Password, Username, display_name, new_id};
use crate::error::{Error, Result};
use crate::store::{NewAccount, SignIn};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use invigil_protocol::{
    CreateUser, ErrorCode, InvalidationReason, LoginRequest, LoginResponse, Role, Timestamp, User,
};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/users", post(create_user))
        .route("/api/users/{username}/revoke", post(revoke))
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/me", get(me))
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
    let password_hash = hash_password(password.expose().to_owned()).await?;
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

#[tracing::instrument(skip_all, fields(username = %body.username, role = ?body.role))]
async fn create_user(
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

/// The address sign-ins are throttled by.
fn client_ip(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
    if state.config.trust_forwarded_for {
        let forwarded = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok());
        if let Some(ip) = forwarded {
            return ip;
        }
    }
    peer.ip()
}

fn behind_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

#[tracing::instrument(skip_all, fields(username = %body.username, ip))]
async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Response> {
    let ip = client_ip(&state, peer, &headers);
    tracing::Span::current().record("ip", tracing::field::display(ip));
    // Login CSRF: another site's page must not sign a browser in (and set its cookie).
    if foreign_origin(&headers, &state.config.allowed_origins) {
        return Err(Error::forbidden(
            "A sign-in from a web page must come from this server's own pages (Origin check).",
        ));
    }
    // Behind several nodes the failures are counted in the database, so that the contract's
    // limits hold whichever node a request reaches; a single node counts them in memory.
    let (window, per_user, per_address) = state.throttle.limits();
    let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    let address = ip.to_string();
    let counted = state
        .store
        .recent_sign_in_failures(&address, &body.username, window_ms, per_user, per_address)
        .await?;
    let refused = match counted {
        Some((for_user, for_address)) => {
            state
                .throttle
                .check_counted(&for_user, &for_address, Timestamp::now().unix_ms())
        }
        None => state.throttle.check(ip, &body.username, Instant::now()),
    };
    if let Err(wait) = refused {
        tracing::warn!("sign-in refused: too many failures");
        return Err(Error::too_many_attempts(wait));
    }
    let account = state.store.account(&body.username).await?;
    let hash = account.as_ref().map(|a| a.password_hash.clone());
    if !verify_password(hash, body.password).await? {
        state.throttle.fail(ip, &body.username, Instant::now());
        state
            .store
            .record_sign_in_failure(&address, &body.username)
            .await?;
        tracing::info!("sign-in failed");
        return Err(Error::api(
            ErrorCode::InvalidCredentials,
            "Wrong username or password.",
        ));
    }
    let user = account.expect("a verified password has an account").user;
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
    let secure = if behind_tls(&headers) { "; Secure" } else { "" };
    let cookie =
        format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=1209600{secure}");
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

#[tracing::instrument(skip_all, fields(session_id = %caller.session.id))]
async fn logout(State(state): State<AppState>, caller: Caller) -> Result<Response> {
    state
        .store
        .revoke_session(&caller.session, InvalidationReason::SignedOut)
        .await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("invigil_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    Ok(response)
}

async fn me(caller: Caller) -> Json<User> {
    Json(caller.session.user)
}

#[tracing::instrument(skip_all, fields(username = %username))]
async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
) -> Result<StatusCode> {
    require_admin(&caller)?;
    let account = state
        .store
        .account(&username)
        .await?
        .ok_or_else(|| Error::not_found(format!("There is no user `{username}`.")))?;
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

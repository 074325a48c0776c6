//! Who is calling: password hashing, session tokens, sign-in throttling and the [`Caller`]
//! extractor (bearer token or cookie, with the Origin check for cookies).

use crate::app::AppState;
use crate::error::{Error, Result};
use crate::store::{Session, SessionLookup};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::FromRequestParts;
use axum::http::{HeaderMap, Method, header, request::Parts};
use base64::Engine as _;
use invigil_protocol::ErrorCode;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The name of the session cookie.
pub const COOKIE: &str = "invigil_session";

/// Hashes a password with argon2id (off the async threads: it is slow on purpose).
pub async fn hash_password(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::encode_b64(&random_bytes::<16>())
            .map_err(|e| Error::internal(format!("salt: {e}")))?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::internal(format!("hashing a password failed: {e}")))
    })
    .await
    .map_err(Error::internal)?
}

/// Checks a password against a stored hash; with no account, still spends the same time so that
/// response times do not reveal which usernames exist.
pub async fn verify_password(hash: Option<String>, password: String) -> Result<bool> {
    tokio::task::spawn_blocking(move || {
        let hash = hash.unwrap_or_else(|| DUMMY_HASH.to_owned());
        let parsed =
            PasswordHash::new(&hash).map_err(|e| Error::internal(format!("stored hash: {e}")))?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
            && hash != DUMMY_HASH)
    })
    .await
    .map_err(Error::internal)?
}

/// The hash of a random password nobody knows, for [`verify_password`] without an account.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$8nxJmWBJuYXbKgR0QbY7B1O4Y4SdtsOm8VZpIn5gT8Q";

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// A new session token: 256 random bits, URL-safe base64. Only its hash is ever stored.
pub fn new_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// The stored form of a token: SHA-256, hex. A fast hash suffices: tokens are 256 random bits.
pub fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The signed-in caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Their session.
    pub session: Session,
    /// The stored form of their token, to check the session again later (live connections).
    pub token_hash: String,
    /// [`Hub::revocations`](crate::live::hub::Hub::revocations) just before the session was
    /// checked: a live connection checks again only if a revocation was routed since.
    pub revocations: u64,
}

impl Caller {
    /// The caller's user.
    pub fn user(&self) -> &invigil_protocol::User {
        &self.session.user
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The session cookie's value, if the request carries one.
pub fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// Whether the request's `Origin` is the server's own or an allowed one.
fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return false;
    };
    if allowed.iter().any(|a| a.trim_end_matches('/') == origin) {
        return true;
    }
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    origin == format!("http://{host}") || origin == format!("https://{host}")
}

/// Whether the request comes from another site's page: it carries an `Origin` that is neither the
/// server's own nor an allowed one. (Requests without `Origin`, from programs, are not.)
pub fn foreign_origin(headers: &HeaderMap, allowed: &[String]) -> bool {
    headers.contains_key(header::ORIGIN) && !origin_allowed(headers, allowed)
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let (token, via_cookie) = match bearer(&parts.headers) {
            Some(token) => (token, false),
            None => match cookie(&parts.headers) {
                Some(token) => (token, true),
                None => {
                    return Err(Error::api(
                        ErrorCode::Unauthenticated,
                        "Sign in first: send `Authorization: Bearer TOKEN`.",
                    ));
                }
            },
        };
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if via_cookie
            && (!safe || is_upgrade(&parts.headers))
            && !origin_allowed(&parts.headers, &state.config.allowed_origins)
        {
            return Err(Error::forbidden(
                "A request signed in by cookie must come from this server's own pages (Origin check).",
            ));
        }
        let revocations = state.hub.revocations();
        match state.store.session(&token_hash(token)).await? {
            SessionLookup::Active(session) => Ok(Caller {
                session,
                token_hash: token_hash(token),
                revocations,
            }),
            SessionLookup::Invalidated(_) => Err(Error::api(
                ErrorCode::SessionInvalidated,
                "This session has ended (signed out, signed in elsewhere, or revoked); sign in again.",
            )),
            SessionLookup::Expired => Err(Error::api(
                ErrorCode::SessionExpired,
                "This session expired after 14 days without use; sign in again.",
            )),
            SessionLookup::Unknown => Err(Error::api(
                ErrorCode::Unauthenticated,
                "That token is not a session of this server; sign in again.",
            )),
        }
    }
}

/// A throttled key: an address, with a username or for every username.
type ThrottleKey = (IpAddr, Option<String>);

/// Counts failed sign-ins per (address, username) and per address in a sliding window, as the
/// contract words it: a key with `limit` failures inside the window is refused until the oldest
/// of them leaves it. A success clears nothing.
///
/// (`governor` and `tower_governor` meter *requests* with GCRA, refilling steadily; the contract
/// meters *failures* and refuses right and wrong attempts alike, which is this small window.)
pub struct Throttle {
    window: Duration,
    per_user: usize,
    per_address: usize,
    failures: Mutex<HashMap<ThrottleKey, VecDeque<Instant>>>,
}

impl Throttle {
    /// The contract's limits: 10 per username and address, 100 per address, in 5 minutes.
    pub fn new() -> Self {
        Self::with_limits(Duration::from_secs(300), 10, 100)
    }

    /// Other limits (tests).
    pub fn with_limits(window: Duration, per_user: usize, per_address: usize) -> Self {
        Self {
            window,
            per_user,
            per_address,
            failures: Mutex::default(),
        }
    }

    fn keys(ip: IpAddr, username: &str) -> [(ThrottleKey, bool); 2] {
        [((ip, Some(username.to_owned())), true), ((ip, None), false)]
    }

    /// `Err(seconds)` while attempts from `ip` for `username` are refused.
    pub fn check(&self, ip: IpAddr, username: &str, now: Instant) -> Result<(), u64> {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let mut wait = Duration::ZERO;
        for (key, per_user) in Self::keys(ip, username) {
            let limit = if per_user {
                self.per_user
            } else {
                self.per_address
            };
            if let Some(times) = failures.get_mut(&key) {
                while times
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= self.window)
                {
                    times.pop_front();
                }
                if times.len() >= limit {
                    let oldest = times[times.len() - limit];
                    wait = wait.max(self.window - now.duration_since(oldest));
                }
            }
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(wait.as_secs().max(1) + u64::from(wait.subsec_nanos() > 0))
        }
    }

    /// `Err(seconds)` while attempts are refused, judged from failures counted elsewhere (by every
    /// node of a cluster): times in ms since the epoch, oldest first.
    pub fn check_counted(
        &self,
        for_user: &[i64],
        for_address: &[i64],
        now_ms: i64,
    ) -> Result<(), u64> {
        let window_ms = i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX);
        let wait_ms = [(for_user, self.per_user), (for_address, self.per_address)]
            .into_iter()
            .filter_map(|(times, limit)| {
                let recent: Vec<i64> = times
                    .iter()
                    .copied()
                    .filter(|t| now_ms - t < window_ms)
                    .collect();
                (recent.len() >= limit).then(|| window_ms - (now_ms - recent[recent.len() - limit]))
            })
            .max();
        match wait_ms {
            None => Ok(()),
            Some(ms) => Err(u64::try_from((ms + 999) / 1000).unwrap_or(1).max(1)),
        }
    }

    /// The window and the limits: (window, per username and address, per address).
    pub fn limits(&self) -> (Duration, usize, usize) {
        (self.window, self.per_user, self.per_address)
    }

    /// Records a failure.
    pub fn fail(&self, ip: IpAddr, username: &str, now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() > 100_000 {
            // Bounded memory under a spray of usernames: forget keys whose failures all expired.
            let window = self.window;
            failures.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < window)
            });
        }
        for (key, per_user) in Self::keys(ip, username) {
            let limit = if per_user {
                self.per_user
            } else {
                self.per_address
            };
            let times = failures.entry(key).or_default();
            times.push_back(now);
            while times.len() > limit {
                times.pop_front();
            }
        }
    }
}

impl Default for Throttle {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

    #[test]
    fn ten_failures_for_a_username_refuse_that_address_until_the_window_passes() {
        let throttle = Throttle::new();
        let t0 = Instant::now();
        for i in 0..10 {
            assert!(throttle.check(IP, "alice", t0).is_ok(), "attempt {i}");
            throttle.fail(IP, "alice", t0);
        }
        let wait = throttle.check(IP, "alice", t0).unwrap_err();
        assert_eq!(wait, 300);
        assert!(
            throttle.check(IP, "bob", t0).is_ok(),
            "other usernames are not refused"
        );
        assert!(
            throttle.check(OTHER, "alice", t0).is_ok(),
            "other addresses are not refused"
        );
        assert!(
            throttle
                .check(IP, "alice", t0 + Duration::from_secs(300))
                .is_ok()
        );
    }

    #[test]
    fn failures_counted_by_every_node_refuse_by_the_same_rule() {
        let throttle = Throttle::new();
        let now = 1_000_000_000;
        let ten: Vec<i64> = (0..10).map(|i| now - 1000 + i).collect();
        assert!(throttle.check_counted(&ten[1..], &[], now).is_ok());
        assert_eq!(throttle.check_counted(&ten, &[], now), Err(299));
        assert!(throttle.check_counted(&ten, &[], now + 299_000).is_ok());
        let hundred: Vec<i64> = (0..100).map(|i| now - 100 + i).collect();
        assert!(throttle.check_counted(&[], &hundred[1..], now).is_ok());
        assert!(throttle.check_counted(&[], &hundred, now).is_err());
    }

    #[test]
    fn a_hundred_failures_from_one_address_refuse_every_username_from_it() {
        let throttle = Throttle::new();
        let t0 = Instant::now();
        for i in 0..100 {
            throttle.fail(IP, &format!("user{i}"), t0);
        }
        assert!(throttle.check(IP, "someone", t0).is_err());
        assert!(throttle.check(OTHER, "someone", t0).is_ok());
    }

    #[test]
    fn tokens_are_256_bits_and_only_their_hash_is_kept() {
        let token = new_token();
        assert_eq!(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&token)
                .unwrap()
                .len(),
            32
        );
        assert_ne!(new_token(), token);
        let hash = token_hash(&token);
        assert_eq!(hash.len(), 64);
        assert!(!hash.contains(&token));
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; invigil_session=tok; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&headers), Some("tok"));
    }

    #[test]
    fn the_origin_must_be_the_servers_own_or_allowed() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "exam.uni:8080".parse().unwrap());
        assert!(!origin_allowed(&headers, &[]));
        headers.insert(header::ORIGIN, "http://exam.uni:8080".parse().unwrap());
        assert!(origin_allowed(&headers, &[]));
        headers.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert!(!origin_allowed(&headers, &[]));
        assert!(origin_allowed(&headers, &["http://evil.example".into()]));
    }

    #[tokio::test]
    async fn passwords_verify_only_against_their_own_hash() {
        let hash = hash_password("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(
            verify_password(Some(hash.clone()), "correct horse".into())
                .await
                .unwrap()
        );
        assert!(!verify_password(Some(hash), "wrong".into()).await.unwrap());
        assert!(!verify_password(None, "anything".into()).await.unwrap());
    }
}

//! Who is calling: session tokens, the [`Caller`] extractor (bearer token or cookie, with the
//! Origin check for cookies), and the server's own origin.
//!
//! - [`hashing`]: the one bounded pool that hashes and verifies every password.
//! - [`throttle`]: sign-in throttling, counted before a password is checked.

pub mod hashing;
pub mod throttle;

use crate::app::AppState;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::store::{Session, SessionLookup};
use axum::extract::FromRequestParts;
use axum::http::{HeaderMap, Method, header, request::Parts};
use base64::Engine as _;
use invigil_protocol::ErrorCode;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The name of the session cookie.
pub const COOKIE: &str = "invigil_session";

pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
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

/// Whether the request's `Origin` is the server's own or one given with `--allowed-origin`. The
/// server's own is the origin of `--public-url`; without one, the `Host` the request names over
/// http or https (which trusts whatever proxy set `Host`: give `--public-url` in production).
fn origin_allowed(headers: &HeaderMap, config: &Config) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return false;
    };
    if config
        .allowed_origins
        .iter()
        .any(|a| a.trim_end_matches('/') == origin)
    {
        return true;
    }
    if let Some(url) = &config.public_url {
        return origin == url.origin();
    }
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    origin == format!("http://{host}") || origin == format!("https://{host}")
}

/// Whether the request comes from another site's page: it carries an `Origin` that is neither the
/// server's own nor an allowed one. (Requests without `Origin`, from programs, are not.)
pub fn foreign_origin(headers: &HeaderMap, config: &Config) -> bool {
    headers.contains_key(header::ORIGIN) && !origin_allowed(headers, config)
}

/// Whether the session cookie is marked `Secure`: by `--public-url`'s scheme; without one, when the
/// server serves TLS itself or a proxy says the client came over https.
fn secure_cookie(headers: &HeaderMap, config: &Config) -> bool {
    config.https()
        || (config.public_url.is_none()
            && headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case("https")))
}

/// The `Set-Cookie` value that signs a browser in with `token` (`None`: signs it out).
pub fn session_cookie(token: Option<&str>, headers: &HeaderMap, config: &Config) -> String {
    let secure = if secure_cookie(headers, config) {
        "; Secure"
    } else {
        ""
    };
    let (value, age) = match token {
        Some(token) => (token, 1_209_600),
        None => ("", 0),
    };
    format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={age}{secure}")
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
        // A change or an upgrade signed in by cookie must name this server's own origin; any
        // request signed in by cookie that names a foreign one is refused too (an event stream
        // opened by another site's page). Same-origin reads need not name one: browsers leave
        // `Origin` out of them.
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if via_cookie
            && (((!safe || is_upgrade(&parts.headers))
                && !origin_allowed(&parts.headers, &state.config))
                || foreign_origin(&parts.headers, &state.config))
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

#[cfg(test)]
mod tests {
    use super::*;

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

    fn config(public_url: Option<&str>, allowed: &[&str]) -> Config {
        let mut config = Config::new(
            "127.0.0.1:0".parse().unwrap(),
            "sqlite://x.db".parse().unwrap(),
        );
        config.public_url = public_url.map(|u| u.parse().unwrap());
        config.allowed_origins = allowed.iter().map(|a| (*a).to_owned()).collect();
        config
    }

    #[test]
    fn the_origin_must_be_the_servers_own_or_allowed() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "exam.uni:8080".parse().unwrap());
        assert!(!origin_allowed(&headers, &config(None, &[])));
        headers.insert(header::ORIGIN, "http://exam.uni:8080".parse().unwrap());
        assert!(origin_allowed(&headers, &config(None, &[])));
        headers.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert!(!origin_allowed(&headers, &config(None, &[])));
        assert!(origin_allowed(
            &headers,
            &config(None, &["http://evil.example"])
        ));
    }

    #[test]
    fn a_public_url_is_the_one_own_origin_whatever_the_host_says() {
        let public = config(Some("https://exams.example.org"), &[]);
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "exam.uni:8080".parse().unwrap());
        headers.insert(header::ORIGIN, "http://exam.uni:8080".parse().unwrap());
        assert!(!origin_allowed(&headers, &public));
        headers.insert(header::ORIGIN, "https://exam.uni:8080".parse().unwrap());
        assert!(!origin_allowed(&headers, &public));
        headers.insert(header::ORIGIN, "https://exams.example.org".parse().unwrap());
        assert!(origin_allowed(&headers, &public));
    }

    #[test]
    fn the_cookie_is_secure_exactly_when_the_public_url_is_https() {
        let mut forwarded = HeaderMap::new();
        forwarded.insert("x-forwarded-proto", "https".parse().unwrap());
        let https = config(Some("https://exams.example.org"), &[]);
        let http = config(Some("http://exams.example.org"), &[]);
        assert!(session_cookie(Some("t"), &HeaderMap::new(), &https).ends_with("; Secure"));
        assert!(!session_cookie(Some("t"), &forwarded, &http).contains("Secure"));
        assert!(session_cookie(Some("t"), &forwarded, &config(None, &[])).contains("Secure"));
        let cleared = session_cookie(None, &HeaderMap::new(), &https);
        assert!(cleared.starts_with("invigil_session=;") && cleared.contains("Max-Age=0"));
    }

    #[test]
    fn served_over_its_own_tls_the_cookie_is_secure_unless_the_public_url_says_http() {
        let mut tls = config(None, &[]);
        tls.tls_cert = Some("cert.pem".into());
        tls.tls_key = Some("key.pem".into());
        assert!(session_cookie(Some("t"), &HeaderMap::new(), &tls).ends_with("; Secure"));
        tls.public_url = Some("http://exams.example.org".parse().unwrap());
        assert!(!session_cookie(Some("t"), &HeaderMap::new(), &tls).contains("Secure"));
    }
}

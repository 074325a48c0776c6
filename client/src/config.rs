//! Where the engine talks to and keeps its data: one typed struct, read from the environment as
//! the contract's appendix says (`INVIGIL_SERVER_URL`, `INVIGIL_DATA_DIR`), and the school's own
//! certificate authority (`INVIGIL_CA_FILE`).

use crate::error::{Error, Result};
use reqwest::Url;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The server used when `INVIGIL_SERVER_URL` is not set.
pub const DEFAULT_SERVER_URL: &str = "http://127.0.0.1:8080";

/// Set to `1`, lets the app use a plain `http://` server that is not on this computer.
pub const ALLOW_INSECURE_ENV: &str = "INVIGIL_ALLOW_INSECURE";

/// A server's base URL, `http(s)://host[:port][/prefix]`, without a trailing slash.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ServerUrl(Url);

impl ServerUrl {
    /// Parses and normalises a base URL; only `http` and `https` are accepted.
    pub fn parse(text: &str) -> Result<Self> {
        let trimmed = text.trim();
        let mut url = Url::parse(trimmed).map_err(|_| Error::InvalidServerUrl(text.to_owned()))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(Error::InvalidServerUrl(text.to_owned()));
        }
        url.set_query(None);
        url.set_fragment(None);
        let path = url.path().trim_end_matches('/').to_owned();
        url.set_path(&path);
        Ok(Self(url))
    }

    /// The base URL as text, e.g. `http://127.0.0.1:8080`.
    pub fn as_str(&self) -> &str {
        self.0.as_str().trim_end_matches('/')
    }

    /// The URL of an API path such as `/api/login`.
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.as_str())
    }

    /// The live socket's URL (`ws://…/api/ws` or `wss://…/api/ws`).
    pub fn socket(&self) -> String {
        let base = self.as_str();
        let rest = base
            .strip_prefix("https://")
            .map(|r| format!("wss://{r}"))
            .or_else(|| base.strip_prefix("http://").map(|r| format!("ws://{r}")))
            .unwrap_or_else(|| base.to_owned());
        format!("{rest}/api/ws")
    }

    /// Whether the server is on this machine, so that the OS's network state does not matter.
    pub fn is_loopback(&self) -> bool {
        let Some(host) = self.0.host_str() else {
            return false;
        };
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        match bare.parse::<IpAddr>() {
            Ok(ip) => ip.is_loopback(),
            Err(_) => bare.eq_ignore_ascii_case("localhost"),
        }
    }

    /// Whether the password, the token and the answers would cross the network unencrypted:
    /// `http://` to a server that is not on this computer (loopback `http` stays allowed).
    pub fn is_insecure(&self) -> bool {
        self.0.scheme() == "http" && !self.is_loopback()
    }

    /// Refuses an [insecure](Self::is_insecure) server unless `allow_insecure`
    /// ([`ALLOW_INSECURE_ENV`]).
    pub fn check_secure(&self, allow_insecure: bool) -> Result<()> {
        if self.is_insecure() && !allow_insecure {
            return Err(Error::InsecureServer(self.as_str().to_owned()));
        }
        Ok(())
    }

    /// A file-name-safe key naming this server in the data folder.
    pub fn storage_key(&self) -> String {
        crate::outbox::encode_name(self.as_str())
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServerUrl({})", self.as_str())
    }
}

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The server signed in to when the student does not name another.
    pub server_url: ServerUrl,
    /// Where the outbox, the session note and the evaluation cache live.
    pub data_dir: PathBuf,
    /// A label for this device, sent with sign-in and shown to staff.
    pub device: String,
    /// A school's own certificate authority (PEM), trusted besides the platform's.
    pub ca_file: Option<PathBuf>,
    /// Whether a plain `http://` server that is not on this computer may be used
    /// (`INVIGIL_ALLOW_INSECURE=1`); never by default.
    pub allow_insecure: bool,
}

impl ClientConfig {
    /// A configuration for `server_url` keeping its data in `data_dir`.
    pub fn new(server_url: ServerUrl, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            server_url,
            data_dir: data_dir.into(),
            device: device_name(),
            ca_file: None,
            allow_insecure: false,
        }
    }

    /// Reads `INVIGIL_SERVER_URL` (default [`DEFAULT_SERVER_URL`]), `INVIGIL_DATA_DIR` (default
    /// `default_data_dir`, the platform's app-data folder), `INVIGIL_CA_FILE` (none) and
    /// `INVIGIL_ALLOW_INSECURE` (`1` allows a plain `http://` server on the network).
    pub fn from_env(default_data_dir: &Path) -> Result<Self> {
        let url = std::env::var("INVIGIL_SERVER_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_SERVER_URL.to_owned());
        let data_dir = std::env::var_os("INVIGIL_DATA_DIR")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| default_data_dir.to_owned());
        let mut config = Self::new(ServerUrl::parse(&url)?, data_dir);
        config.ca_file = std::env::var_os("INVIGIL_CA_FILE")
            .filter(|f| !f.is_empty())
            .map(PathBuf::from);
        config.allow_insecure = std::env::var(ALLOW_INSECURE_ENV).is_ok_and(|v| v.trim() == "1");
        Ok(config)
    }
}

/// This machine's name, or `desktop` when the OS does not say.
fn device_name() -> String {
    #[cfg(unix)]
    {
        if let Ok(name) = nix::unistd::gethostname()
            && let Some(name) = name.to_str().filter(|n| !n.is_empty())
        {
            return name.to_owned();
        }
    }
    std::env::var("COMPUTERNAME").unwrap_or_else(|_| "desktop".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_are_normalised_and_name_their_socket() {
        let url = ServerUrl::parse(" http://127.0.0.1:8080/ ").unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:8080");
        assert_eq!(url.join("/api/login"), "http://127.0.0.1:8080/api/login");
        assert_eq!(url.socket(), "ws://127.0.0.1:8080/api/ws");
        let tls = ServerUrl::parse("https://exams.example.org/invigil/").unwrap();
        assert_eq!(tls.socket(), "wss://exams.example.org/invigil/api/ws");
    }

    #[test]
    fn only_http_urls_with_a_host_are_servers() {
        assert!(ServerUrl::parse("ftp://x").is_err());
        assert!(ServerUrl::parse("127.0.0.1:8080").is_err());
        assert!(ServerUrl::parse("").is_err());
    }

    #[test]
    fn loopback_servers_are_recognised() {
        assert!(
            ServerUrl::parse("http://127.0.0.1:1")
                .unwrap()
                .is_loopback()
        );
        assert!(
            ServerUrl::parse("http://localhost:1")
                .unwrap()
                .is_loopback()
        );
        assert!(ServerUrl::parse("http://[::1]:1").unwrap().is_loopback());
        assert!(!ServerUrl::parse("http://10.0.0.1").unwrap().is_loopback());
    }

    #[test]
    fn plain_http_is_refused_off_this_computer_unless_allowed() {
        for allowed in [
            "https://exams.example.org",
            "https://10.0.0.1:8443",
            "http://127.0.0.1:8080",
            "http://127.1.2.3",
            "http://[::1]:8080",
            "http://localhost:8080",
            "http://LOCALHOST",
        ] {
            let url = ServerUrl::parse(allowed).unwrap();
            assert!(!url.is_insecure(), "{allowed}");
            assert!(url.check_secure(false).is_ok(), "{allowed}");
        }
        for refused in [
            "http://exams.example.org",
            "http://10.0.0.1:8080",
            "http://[fe80::1]",
            "http://128.0.0.1",
            "http://localhost.example.org",
        ] {
            let url = ServerUrl::parse(refused).unwrap();
            assert!(url.is_insecure(), "{refused}");
            match url.check_secure(false) {
                Err(e @ Error::InsecureServer(_)) => {
                    assert_eq!(e.kind(), "insecure_server");
                    assert!(e.to_string().contains("INVIGIL_ALLOW_INSECURE=1"), "{e}");
                }
                other => panic!("{refused}: {other:?}"),
            }
            assert!(url.check_secure(true).is_ok(), "{refused}");
        }
    }
}

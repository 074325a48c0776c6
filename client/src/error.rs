//! The engine's one error type, with a stable machine-readable [`Error::kind`] for the front end.

use invigil_protocol::ErrorCode;
use std::path::PathBuf;

/// What can go wrong in the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server could not be reached (no route, refused, timed out, TLS failure).
    #[error("cannot reach the server at {url}: {detail}")]
    Network {
        /// The server's base URL.
        url: String,
        /// What the transport said.
        detail: String,
    },
    /// The server's certificate was refused: not issued by an authority this computer trusts (the
    /// platform's, or `INVIGIL_CA_FILE`), or expired, or for another name.
    #[error(
        "The server's certificate is not trusted by this computer ({detail}; server {url}). If your \
         school uses its own certificate authority, set INVIGIL_CA_FILE to that authority's \
         certificate file (PEM) and start the app again."
    )]
    UntrustedCertificate {
        /// The server's base URL.
        url: String,
        /// What was wrong with the certificate.
        detail: String,
    },
    /// `INVIGIL_CA_FILE` names a file that is not a usable certificate.
    #[error(
        "the certificate authority file {} (INVIGIL_CA_FILE) cannot be used: {detail}",
        path.display()
    )]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The server answered with one of the contract's errors.
    #[error("{message}")]
    Server {
        /// The contract's code.
        code: ErrorCode,
        /// The server's human sentence.
        message: String,
        /// Seconds to wait before trying again (`Retry-After` of a 429 or a 503).
        retry_after: Option<u64>,
    },
    /// The server answered something the contract does not allow.
    #[error("the server answered unexpectedly: {0}")]
    Protocol(String),
    /// The configured server URL is not an `http://` or `https://` URL.
    #[error("`{0}` is not a server address such as http://exams.example.org:8080")]
    InvalidServerUrl(String),
    /// The server is a plain `http://` address that is not on this computer, and
    /// `INVIGIL_ALLOW_INSECURE=1` is not set.
    #[error(
        "{0} is not encrypted (http://) and not on this computer: your password and answers could \
         be read or changed on the network. Use the server's https:// address, or, only if your \
         school says so, start the app with INVIGIL_ALLOW_INSECURE=1"
    )]
    InsecureServer(String),
    /// The action needs a signed-in student.
    #[error("you are not signed in")]
    NotSignedIn,
    /// Sign-in was asked for while a session is active.
    #[error("already signed in as {0}; sign out first")]
    AlreadySignedIn(String),
    /// The account is not a student's: this app is for sitting exams.
    #[error("this app is for students; {role} accounts use the console")]
    NotAStudent {
        /// The account's role.
        role: &'static str,
    },
    /// No such evaluation or question on this device.
    #[error("{0} is not known on this computer")]
    NotFound(String),
    /// Handing in was refused because answers are still waiting to reach the server.
    #[error("{0} answers are still waiting to reach the server; hand in once they are saved")]
    PendingAnswers(usize),
    /// Signing out or in was refused: answers exist only in this app's memory (the disk
    /// refused them) and have not reached the server.
    #[error(
        "{0} answers exist only in this app's memory: this computer's disk refuses to save them and the server has not confirmed them yet. Keep the app open until they reach the server, or export them for your professor"
    )]
    OnlyInMemory(usize),
    /// An answer longer than the server accepts.
    #[error("an answer may hold at most {0} bytes")]
    TooLong(usize),
    /// Reading or writing the local data failed.
    #[error("could not {action} {}: {source}", path.display())]
    Storage {
        /// What was being done, e.g. "write".
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A local file is not what this engine wrote.
    #[error("{} is damaged: {detail}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The OS credential store failed.
    #[error("the system keyring failed: {0}")]
    Vault(String),
}

impl Error {
    /// A stable snake_case name for the front end: the contract's code for server errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Network { .. } => "network",
            Error::UntrustedCertificate { .. } => "untrusted_certificate",
            Error::CaFile { .. } => "ca_file",
            Error::Server { code, .. } => code.as_str(),
            Error::Protocol(_) => "protocol",
            Error::InvalidServerUrl(_) => "invalid_server_url",
            Error::InsecureServer(_) => "insecure_server",
            Error::NotSignedIn => "not_signed_in",
            Error::AlreadySignedIn(_) => "already_signed_in",
            Error::NotAStudent { .. } => "not_a_student",
            Error::NotFound(_) => "not_found",
            Error::PendingAnswers(_) => "pending_answers",
            Error::TooLong(_) => "too_long",
            Error::OnlyInMemory(_) => "only_in_memory",
            Error::Storage { .. } => "storage",
            Error::Corrupt { .. } => "corrupt",
            Error::Vault(_) => "vault",
        }
    }

    /// The server's contract code, when the server refused.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Server { code, .. } => Some(*code),
            _ => None,
        }
    }

    pub(crate) fn storage(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Storage {
            action,
            path,
            source,
        }
    }
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

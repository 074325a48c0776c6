//! The one error type of the server: a contract error code with a human sentence, or an internal
//! failure whose details are logged and never sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use invigil_protocol::{ErrorBody, ErrorCode, ErrorDetail};

/// What went wrong while serving a request or running an operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A refusal the contract names; the message is shown to the caller.
    #[error("{code}: {message}")]
    Api {
        /// The contract's code.
        code: ErrorCode,
        /// A human sentence.
        message: String,
        /// Seconds until a throttled caller may try again.
        retry_after: Option<u64>,
    },
    /// A failure of the server itself; logged, answered with a bland 500.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl Error {
    /// A contract error.
    pub fn api(code: ErrorCode, message: impl Into<String>) -> Self {
        Error::Api {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::api(ErrorCode::BadRequest, message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::api(ErrorCode::NotFound, message)
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::api(ErrorCode::Forbidden, message)
    }

    /// 409 `conflict`.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::api(ErrorCode::Conflict, message)
    }

    /// 429 `too_many_attempts` with its `Retry-After`.
    pub fn too_many_attempts(retry_after_secs: u64) -> Self {
        Error::Api {
            code: ErrorCode::TooManyAttempts,
            message: format!(
                "Too many failed sign-ins from here; try again in {retry_after_secs} seconds."
            ),
            retry_after: Some(retry_after_secs),
        }
    }

    /// 503 `server_busy` with its `Retry-After`: a sign-in would wait too long for hashing.
    pub fn server_busy(retry_after_secs: u64) -> Self {
        Error::Api {
            code: ErrorCode::ServerBusy,
            message: format!(
                "The server is busy signing other people in; trying again in {retry_after_secs} seconds will work."
            ),
            retry_after: Some(retry_after_secs),
        }
    }

    /// 429 `too_many_streams` with its `Retry-After`: the session holds every event stream it may.
    pub fn too_many_streams(limit: usize, retry_after_secs: u64) -> Self {
        Error::Api {
            code: ErrorCode::TooManyStreams,
            message: format!(
                "This session already has {limit} event streams open; close one, or try again in {retry_after_secs} seconds."
            ),
            retry_after: Some(retry_after_secs),
        }
    }

    /// An internal failure with context.
    pub fn internal(message: impl std::fmt::Display) -> Self {
        Error::Internal(anyhow::anyhow!("{message}"))
    }

    /// The sentence shown to the caller (never an internal detail).
    pub fn message(&self) -> String {
        match self {
            Error::Api { message, .. } => message.clone(),
            Error::Internal(_) => {
                "The server failed to handle this request; it has been logged.".into()
            }
        }
    }

    /// The contract code of this error (`internal` for failures of the server).
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Api { code, .. } => *code,
            Error::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Internal(anyhow::Error::new(e).context("while talking to the database"))
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (code, message, retry_after) = match self {
            Error::Api {
                code,
                message,
                retry_after,
            } => (code, message, retry_after),
            Error::Internal(e) => {
                tracing::error!(error = ?e, "request failed");
                (
                    ErrorCode::Internal,
                    "The server failed to handle this request; it has been logged.".to_owned(),
                    None,
                )
            }
        };
        let status =
            StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorBody {
            error: ErrorDetail { code, message },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// The result of every fallible operation of the server.
pub type Result<T, E = Error> = std::result::Result<T, E>;

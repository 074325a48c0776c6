//! The error every command returns, serialized as `{kind, message}` for the front end: `kind` is
//! the engine's stable name (the contract's code when the server refused), `message` a sentence
//! for the student.

use serde::Serialize;

/// A failed command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandError {
    /// A stable snake_case name, e.g. `invalid_credentials`, `network`, `not_signed_in`.
    pub kind: String,
    /// What to tell the student.
    pub message: String,
}

impl From<invigil_client::Error> for CommandError {
    fn from(error: invigil_client::Error) -> Self {
        Self {
            kind: error.kind().to_owned(),
            message: error.to_string(),
        }
    }
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.kind)
    }
}

impl std::error::Error for CommandError {}

/// The result of a command.
pub type CommandResult<T> = Result<T, CommandError>;

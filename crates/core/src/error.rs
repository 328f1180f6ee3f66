//! The core's error: what went wrong, and whether trying again can help.

use carebridge_protocol::Problem;
use carebridge_protocol::problem::ProblemType;

/// Whether an operation that failed is worth repeating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// When the node can be reached again.
    WhenOnline,
    /// After a pause (the node had a passing fault).
    Backoff,
    /// Never as it is: the user or the data must change.
    Never,
}

/// What can go wrong in the client core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// The key does not open the local database (wrong passphrase, or another profile's file).
    #[error("this profile's local data does not open with that key: check the passphrase")]
    WrongKey,
    /// The local database failed.
    #[error("local database: {0}")]
    Store(#[from] rusqlite::Error),
    /// The node could not be reached, or the connection broke.
    #[error("the node cannot be reached: {0}")]
    Offline(#[from] reqwest::Error),
    /// The node refused, with its reason.
    #[error("the node refused: {}", .0.detail.as_deref().unwrap_or(.0.title.as_str()))]
    Rejected(Box<Problem>),
    /// The node sent something this client does not understand.
    #[error("unexpected answer from the node: {0}")]
    Protocol(String),
    /// The snapshot stopped before its end; what came is kept, and it resumes from there.
    #[error("the snapshot was cut off after {0} records; it resumes from there")]
    Interrupted(u64),
    /// The user's input cannot be sent as it is; nothing was changed.
    #[error("{0}")]
    Invalid(String),
    /// No such record here.
    #[error("{0} is not known here")]
    NotFound(String),
    /// The session is over (signed out, expired, or ended by an admin): sign in again.
    #[error("signed out: sign in again")]
    SignedOut,
    /// Neither the OS keychain nor a passphrase can unlock this profile.
    #[error("{0}")]
    NoKey(String),
    /// A blocking task failed.
    #[error("internal error: {0}")]
    Task(String),
}

impl From<serde_json::Error> for CoreError {
    fn from(e: serde_json::Error) -> Self {
        Self::Protocol(e.to_string())
    }
}

impl CoreError {
    /// Whether trying again can help, and when.
    pub fn retry(&self) -> Retry {
        match self {
            Self::Offline(_) | Self::Interrupted(_) => Retry::WhenOnline,
            Self::Rejected(p) if p.status >= 500 => Retry::Backoff,
            Self::Task(_) | Self::Protocol(_) => Retry::Backoff,
            _ => Retry::Never,
        }
    }
}

/// The node's problem document from an error response; one made up from the status when the
/// body is not one (a proxy's error page).
pub(crate) async fn problem_of(res: reqwest::Response) -> Problem {
    let status = res.status();
    match res.json::<Problem>().await {
        Ok(p) => p,
        Err(_) => {
            let code = if status.is_server_error() {
                ProblemType::Internal
            } else {
                ProblemType::Validation
            };
            let mut p = Problem::new(code, format!("the node answered {status}"));
            p.status = status.as_u16();
            p
        }
    }
}

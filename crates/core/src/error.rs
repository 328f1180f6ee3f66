//! The core's error: what went wrong, and whether trying again can help.

use carebridge_protocol::Problem;

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
    /// A blocking task failed.
    #[error("internal error: {0}")]
    Task(String),
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

//! Federation's own error: what sharing, admin updates, peering and the inbox's checks fail
//! with. The HTTP layer answers each as a problem (`crate::error`); nothing here knows HTTP.

use carebridge_protocol::ProblemType;
use carebridge_protocol::text::Clean;

use crate::store::StoreError;

/// A federation operation refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    /// No such record (or not one the caller may see).
    #[error("no such {0}")]
    NotFound(&'static str),
    /// One input field is wrong.
    #[error("{field}: {message}")]
    Invalid {
        /// Which field.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// Refused for a reason the problem code names (a failed inbox check, a report that
    /// cannot be sent, a missing consent, …).
    #[error("{detail}")]
    Refused {
        /// The problem it is answered with.
        code: ProblemType,
        /// What the user or the peer is told.
        detail: String,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Anything else that is this node's fault (sealing failed, a record just written is
    /// missing).
    #[error("{0}")]
    Internal(String),
}

impl FederationError {
    /// A wrong field.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }

    /// A refusal answered with `code`.
    pub fn refused(code: ProblemType, detail: impl Into<String>) -> Self {
        Self::Refused {
            code,
            detail: detail.into(),
        }
    }

    /// The problem code it is answered with.
    pub fn code(&self) -> ProblemType {
        match self {
            Self::NotFound(_) => ProblemType::NotFound,
            Self::Invalid { .. } => ProblemType::Validation,
            Self::Refused { code, .. } => *code,
            Self::Store(_) | Self::Internal(_) => ProblemType::Internal,
        }
    }
}

/// A peer's message with its free text cleaned as user input is, or refused as unreadable
/// (every wrong field named).
pub fn cleaned<T: Clean + Clone>(m: &T) -> Result<T, FederationError> {
    let mut m = m.clone();
    m.clean().map_err(|errors| {
        FederationError::refused(
            ProblemType::UnreadablePayload,
            errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    Ok(m)
}

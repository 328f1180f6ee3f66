//! The one place the core reads the system clock.

use chrono::{DateTime, Utc};

/// Now, in UTC.
pub(crate) fn now() -> DateTime<Utc> {
    #[expect(clippy::disallowed_methods, reason = "the core's single clock read")]
    Utc::now()
}

//! What the accept loop hands each request about its connection.

use tokio_util::sync::CancellationToken;

/// Cancels one connection: the accept loop puts it in every request's extensions, so that the
/// event hub can close a connection whose client stopped reading (its response body is never
/// polled again, so nothing inside the request could notice).
#[derive(Debug, Clone)]
pub struct ConnectionControl(pub CancellationToken);

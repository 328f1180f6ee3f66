//! Waiting on a condition with a deadline.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

/// How often a condition is checked again.
const POLL: Duration = Duration::from_millis(20);

/// Checks `cond` until it holds; panics naming `what` (what the test waited for) once `within`
/// has passed without it. The poll interval only paces the checks: nothing waits for time alone.
pub async fn eventually<F, Fut>(what: impl Display, within: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {within:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn returns_once_the_condition_holds() {
        let checks = AtomicU32::new(0);
        eventually("the third check", Duration::from_secs(5), || async {
            checks.fetch_add(1, Ordering::Relaxed) == 2
        })
        .await;
        assert_eq!(checks.load(Ordering::Relaxed), 3);
    }

    #[tokio::test]
    #[should_panic(expected = "the impossible: not within 50ms")]
    async fn panics_naming_what_it_waited_for() {
        eventually("the impossible", Duration::from_millis(50), || async {
            false
        })
        .await;
    }
}

//! Throttling of failed sign-ins (and kiosk identifications), per account and per address.
//!
//! In memory on purpose: it guards against guessing at speed, and a restart that forgets
//! the counts costs an attacker a restart of the node, which they cannot cause.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use parking_lot::Mutex;

/// Counts failures in a sliding window and refuses once a key has too many.
#[derive(Debug)]
pub struct Throttle {
    max_failures: u32,
    window: Duration,
    failures: Mutex<HashMap<String, Vec<DateTime<Utc>>>>,
}

impl Throttle {
    /// At most `max_failures` failures per key in `window`.
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(seconds to wait)` when `key` has used up its failures.
    pub fn check(&self, key: &str, now: DateTime<Utc>) -> Result<(), u64> {
        let mut map = self.failures.lock();
        let Some(list) = map.get_mut(key) else {
            return Ok(());
        };
        list.retain(|t| now - *t < self.window);
        if list.len() as u32 >= self.max_failures {
            let oldest = list.first().copied().unwrap_or(now);
            let wait = (oldest + self.window - now).num_seconds().max(1);
            return Err(wait as u64);
        }
        Ok(())
    }

    /// Records a failure.
    pub fn fail(&self, key: &str, now: DateTime<Utc>) {
        let mut map = self.failures.lock();
        if map.len() > 100_000 {
            // Bound memory under a spray of distinct keys: forget the stale ones.
            map.retain(|_, l| l.last().is_some_and(|t| now - *t < self.window));
        }
        map.entry(key.to_owned()).or_default().push(now);
    }

    /// Clears a key after a success.
    pub fn succeed(&self, key: &str) {
        self.failures.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_after_the_limit_and_forgets_after_the_window() {
        let t = Throttle::new(3, Duration::minutes(15));
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        for i in 0..3 {
            assert!(t.check("u", t0 + Duration::seconds(i)).is_ok());
            t.fail("u", t0 + Duration::seconds(i));
        }
        let wait = t.check("u", t0 + Duration::seconds(10)).unwrap_err();
        assert!(wait > 800 && wait <= 900, "{wait}");
        assert!(t.check("other", t0).is_ok());
        assert!(t.check("u", t0 + Duration::minutes(16)).is_ok());
    }
}

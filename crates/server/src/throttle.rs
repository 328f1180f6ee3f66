//! Throttling of sign-ins (and kiosk identifications): failures per account *at* an address
//! and per address, attempts reserved before they are checked, and a cap on password checks
//! running at once.
//!
//! In memory on purpose: it guards against guessing at speed, and a restart that forgets
//! the counts costs an attacker a restart of the node, which they cannot cause.

use std::collections::HashMap;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use parking_lot::Mutex;
use tokio::sync::Semaphore;

/// Past this many keys, stale ones are forgotten: a spray of distinct keys cannot grow memory
/// without bound.
const MAX_KEYS: usize = 100_000;

/// Counts attempts in a sliding window and refuses once a key has used up its allowance.
///
/// An attempt counts from the moment it is reserved, before the (slow) check: parallel
/// attempts cannot all pass before the first failure is recorded. A success clears the key;
/// an attempt that was never decided (the node was too busy to check it) is given back.
#[derive(Debug)]
pub struct Throttle {
    max_failures: u32,
    window: Duration,
    failures: Mutex<HashMap<String, Vec<DateTime<Utc>>>>,
}

/// An attempt reserved against a [`Throttle`]: a failure unless it is settled otherwise.
#[must_use = "an attempt is given back when dropped undecided"]
#[derive(Debug)]
pub struct Attempt<'a> {
    throttle: &'a Throttle,
    key: String,
    at: DateTime<Utc>,
    settled: bool,
}

impl Attempt<'_> {
    /// It failed: it stays counted.
    pub fn failed(mut self) {
        self.settled = true;
    }

    /// It succeeded: the key's failures are forgotten.
    pub fn succeeded(mut self) {
        self.settled = true;
        self.throttle.failures.lock().remove(&self.key);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        // Never decided: it does not count.
        let mut map = self.throttle.failures.lock();
        if let Some(list) = map.get_mut(&self.key) {
            if let Some(i) = list.iter().rposition(|t| *t == self.at) {
                list.remove(i);
            }
            if list.is_empty() {
                map.remove(&self.key);
            }
        }
    }
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

    /// Reserves an attempt for `key`, or `Err(seconds to wait)` when its failures (and the
    /// attempts under way) have used up the allowance.
    pub fn reserve(&self, key: &str, now: DateTime<Utc>) -> Result<Attempt<'_>, u64> {
        let mut map = self.failures.lock();
        if map.len() > MAX_KEYS {
            map.retain(|_, l| l.last().is_some_and(|t| now - *t < self.window));
        }
        let list = map.entry(key.to_owned()).or_default();
        list.retain(|t| now - *t < self.window);
        if list.len() as u32 >= self.max_failures {
            let oldest = list.first().copied().unwrap_or(now);
            let wait = (oldest + self.window - now).num_seconds().max(1);
            return Err(wait as u64);
        }
        list.push(now);
        Ok(Attempt {
            throttle: self,
            key: key.to_owned(),
            at: now,
            settled: false,
        })
    }
}

impl Throttle {
    /// How many keys are refused now (their allowance used up in the window).
    pub fn refusing(&self, now: DateTime<Utc>) -> usize {
        self.failures
            .lock()
            .values()
            .filter(|l| {
                l.iter().filter(|t| now - **t < self.window).count() as u32 >= self.max_failures
            })
            .count()
    }
}

/// Accounts that signed in successfully from an address, for a while: the address-wide
/// throttle does not apply to them there, so that someone guessing from a shared address (a
/// hospital's NAT) cannot keep the staff who work there out.
#[derive(Debug)]
pub struct KnownSignIns {
    remembered_for: Duration,
    seen: Mutex<HashMap<(String, String), DateTime<Utc>>>,
}

impl KnownSignIns {
    /// Remembers a success for `remembered_for`.
    pub fn new(remembered_for: Duration) -> Self {
        Self {
            remembered_for,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// `account` signed in from `source`.
    pub fn remember(&self, account: &str, source: &str, now: DateTime<Utc>) {
        let mut seen = self.seen.lock();
        if seen.len() > MAX_KEYS {
            seen.retain(|_, t| now - *t < self.remembered_for);
        }
        seen.insert((account.to_owned(), source.to_owned()), now);
    }

    /// Whether `account` signed in from `source` lately.
    pub fn is_known(&self, account: &str, source: &str, now: DateTime<Utc>) -> bool {
        self.seen
            .lock()
            .get(&(account.to_owned(), source.to_owned()))
            .is_some_and(|t| now - *t < self.remembered_for)
    }
}

/// Too many password checks under way: answered 503 with `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many sign-ins at once; retry in {0} s")]
pub struct Busy(pub u64);

/// A cap on password checks running at once. Each Argon2id check holds its memory (19 MiB)
/// while it runs, so the cap bounds the node's memory whatever the burst of sign-ins.
#[derive(Debug)]
pub struct PasswordChecks {
    permits: Semaphore,
    patience: StdDuration,
}

impl PasswordChecks {
    /// At most `at_once` checks at a time; a check waits up to `patience` for its turn.
    pub fn new(at_once: usize, patience: StdDuration) -> Self {
        Self {
            permits: Semaphore::new(at_once.max(1)),
            patience,
        }
    }

    /// Runs `check` on a blocking thread once a permit is free, or answers [`Busy`] if none
    /// frees within the patience.
    pub async fn run<T: Send + 'static>(
        &self,
        check: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let wait = self.patience.as_secs().max(1);
        let _permit = tokio::time::timeout(self.patience, self.permits.acquire())
            .await
            .map_err(|_| Busy(wait))?
            .map_err(|_| Busy(wait))?;
        tokio::task::spawn_blocking(check)
            .await
            .map_err(|_| Busy(wait))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    #[test]
    fn refuses_after_the_limit_and_forgets_after_the_window() {
        let t = Throttle::new(3, Duration::minutes(15));
        for i in 0..3 {
            t.reserve("u", t0() + Duration::seconds(i))
                .unwrap()
                .failed();
        }
        let wait = t.reserve("u", t0() + Duration::seconds(10)).unwrap_err();
        assert!(wait > 800 && wait <= 900, "{wait}");
        assert!(t.reserve("other", t0()).is_ok());
        assert!(t.reserve("u", t0() + Duration::minutes(16)).is_ok());
    }

    #[test]
    fn attempts_under_way_count_before_they_are_decided() {
        let t = Throttle::new(3, Duration::minutes(15));
        let held: Vec<_> = (0..3).map(|_| t.reserve("u", t0()).unwrap()).collect();
        assert!(
            t.reserve("u", t0()).is_err(),
            "a fourth attempt while three are checked"
        );
        drop(held);
        // Given back undecided: none of them counted.
        let again: Vec<_> = (0..3).map(|_| t.reserve("u", t0()).unwrap()).collect();
        for a in again {
            a.failed();
        }
        assert!(t.reserve("u", t0()).is_err());
    }

    #[test]
    fn a_success_clears_the_key() {
        let t = Throttle::new(2, Duration::minutes(15));
        t.reserve("u", t0()).unwrap().failed();
        t.reserve("u", t0()).unwrap().succeeded();
        t.reserve("u", t0()).unwrap().failed();
        assert!(t.reserve("u", t0()).is_ok());
    }

    #[test]
    fn a_sign_in_is_known_at_its_address_for_a_while() {
        let k = KnownSignIns::new(Duration::days(30));
        k.remember("dr.a", "10.0.0.1", t0());
        assert!(k.is_known("dr.a", "10.0.0.1", t0() + Duration::days(29)));
        assert!(!k.is_known("dr.a", "10.0.0.2", t0()));
        assert!(!k.is_known("dr.b", "10.0.0.1", t0()));
        assert!(!k.is_known("dr.a", "10.0.0.1", t0() + Duration::days(31)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_checks_run_at_once_than_the_cap_and_the_rest_are_told_busy() {
        let checks = Arc::new(PasswordChecks::new(2, StdDuration::from_millis(200)));
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        // Each check blocks until the test lets them all go, so that all 20 are started
        // together and the cap is what holds them back.
        let gate = Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (checks, running, peak, gate) =
                    (checks.clone(), running.clone(), peak.clone(), gate.clone());
                tokio::spawn(async move {
                    checks
                        .run(move || {
                            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                            peak.fetch_max(now, Ordering::SeqCst);
                            let (open, cv) = &*gate;
                            let mut g = open.lock().unwrap();
                            while !*g {
                                g = cv.wait(g).unwrap();
                            }
                            running.fetch_sub(1, Ordering::SeqCst);
                        })
                        .await
                })
            })
            .collect();
        // The 18 without a permit give up after the patience; then the two are let go.
        let mut busy = 0;
        let mut done = 0;
        let mut tasks = tasks;
        while busy < 18 {
            let mut rest = Vec::new();
            for t in tasks {
                if t.is_finished() {
                    match t.await.unwrap() {
                        Err(Busy(_)) => busy += 1,
                        Ok(()) => done += 1,
                    }
                } else {
                    rest.push(t);
                }
            }
            tasks = rest;
            tokio::task::yield_now().await;
        }
        {
            let (open, cv) = &*gate;
            *open.lock().unwrap() = true;
            cv.notify_all();
        }
        for t in tasks {
            t.await.unwrap().unwrap();
            done += 1;
        }
        assert_eq!((busy, done), (18, 2));
        assert_eq!(peak.load(Ordering::SeqCst), 2);
    }
}

//! The inbox's refusals, counted per source address in one-minute windows.
//!
//! Two jobs: a source past its allowance of refusals in the window is answered 429 before
//! anything is looked up or read, and refusals are audited without letting a flood write one
//! row each. The first refusal of each (source, code) in a window is audited at once, with
//! its detail; the rest are counted and written as one row per (source, code) when the window
//! closes (or the node stops). A flood of any size thus adds at most two rows per source and
//! code per minute, and the audit writer is never queued behind it.
//!
//! In memory on purpose, like the sign-in throttle: a restart forgets the counts, which an
//! attacker cannot cause.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use carebridge_protocol::ProblemType;
use carebridge_protocol::audit::Outcome;
use parking_lot::Mutex;

use crate::node::Node;
use crate::store::{AuditDraft, StoreError};

/// Past this many sources in a window, new ones share one key (`::`): a spray of addresses
/// cannot grow memory without bound.
const MAX_SOURCES: usize = 10_000;

/// The length of a window.
pub const WINDOW: Duration = Duration::from_secs(60);

/// What to do with a refusal just noted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audit {
    /// The first of its source and code in this window: audit it now, with its detail.
    Now,
    /// Counted; written with the others of its source and code when the window closes.
    Counted,
}

/// Refusals of one source and code not yet audited one by one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    /// The address.
    pub source: IpAddr,
    /// The refusal's code.
    pub code: ProblemType,
    /// How many were counted and not audited one by one.
    pub count: u64,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    per_source: HashMap<IpAddr, u32>,
    /// Per (source, code): refusals beyond the first, which was audited at once.
    counted: HashMap<(IpAddr, ProblemType), u64>,
}

impl Window {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            per_source: HashMap::new(),
            counted: HashMap::new(),
        }
    }

    /// The key a source is counted under: itself, or the shared overflow key once full.
    fn key(&self, source: IpAddr) -> IpAddr {
        if self.per_source.len() >= MAX_SOURCES && !self.per_source.contains_key(&source) {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        } else {
            source
        }
    }
}

/// The inbox's refusals in the current window.
#[derive(Debug)]
pub struct InboxRefusals {
    per_minute: u32,
    window: Mutex<Window>,
}

impl InboxRefusals {
    /// A source may be refused `per_minute` times in a window before it is answered 429.
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute: per_minute.max(1),
            window: Mutex::new(Window::new()),
        }
    }

    /// `Some(seconds to wait)` when `source` has used up its refusals in this window.
    pub fn limited(&self, source: IpAddr) -> Option<u64> {
        let w = self.window.lock();
        let used = w.per_source.get(&w.key(source)).copied().unwrap_or(0);
        (used >= self.per_minute).then(|| {
            let left = WINDOW.saturating_sub(w.started.elapsed());
            left.as_secs().max(1)
        })
    }

    /// Counts a refusal of `source` with `code`; whether to audit it now. "Not yet, send it
    /// again" (`unavailable`: a transfer's chunk before its manifest) is this node's answer,
    /// not the peer's fault: audited alike, it does not count towards the 429.
    pub fn note(&self, source: IpAddr, code: ProblemType) -> Audit {
        let mut w = self.window.lock();
        let key = w.key(source);
        if code != ProblemType::Unavailable {
            let used = w.per_source.entry(key).or_insert(0);
            *used = used.saturating_add(1);
        }
        match w.counted.entry((key, code)) {
            Entry::Vacant(v) => {
                v.insert(0);
                Audit::Now
            }
            Entry::Occupied(mut o) => {
                *o.get_mut() += 1;
                Audit::Counted
            }
        }
    }

    /// Closes the window: what was counted and not yet audited, and a fresh window.
    pub fn close_window(&self) -> Vec<Tally> {
        let old = std::mem::replace(&mut *self.window.lock(), Window::new());
        let mut tallies: Vec<Tally> = old
            .counted
            .into_iter()
            .filter(|(_, count)| *count > 0)
            .map(|((source, code), count)| Tally {
                source,
                code,
                count,
            })
            .collect();
        tallies.sort_by_key(|t| (t.source, t.code.slug()));
        tallies
    }
}

/// Closes the window and audits what it counted: one entry per source and code, with the count
/// (`<code>: <n> more refused from this address in the minute to <time>`). The job every
/// [`WINDOW`], and the node once more as it stops.
pub async fn audit_counted(node: &Node) -> Result<(), StoreError> {
    let tallies = node.inbox_refusals.close_window();
    if tallies.is_empty() {
        return Ok(());
    }
    node.store
        .write(None, move |ctx| {
            let now = ctx.now();
            for t in &tallies {
                let draft = AuditDraft {
                    actor: "peer:unknown".into(),
                    action: "federation.refused".into(),
                    entity: String::new(),
                    source: t.source.to_string(),
                };
                let detail = format!(
                    "{}: {} more refused from this address in the minute to {}",
                    t.code.slug(),
                    t.count,
                    now.format("%Y-%m-%dT%H:%M:%SZ")
                );
                ctx.audit(&draft, "", Outcome::Failure, &detail)?;
            }
            Ok::<_, StoreError>(())
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn the_first_refusal_of_a_source_and_code_is_audited_now_and_the_rest_counted() {
        let r = InboxRefusals::new(100);
        assert_eq!(r.note(ip(1), ProblemType::BadSignature), Audit::Now);
        assert_eq!(r.note(ip(1), ProblemType::BadSignature), Audit::Counted);
        assert_eq!(r.note(ip(1), ProblemType::BadSignature), Audit::Counted);
        assert_eq!(r.note(ip(1), ProblemType::UnknownApiKey), Audit::Now);
        assert_eq!(r.note(ip(2), ProblemType::BadSignature), Audit::Now);
        assert_eq!(
            r.close_window(),
            vec![Tally {
                source: ip(1),
                code: ProblemType::BadSignature,
                count: 2
            }]
        );
        // A new window audits the first one at once again, and has nothing counted.
        assert_eq!(r.note(ip(1), ProblemType::BadSignature), Audit::Now);
        assert_eq!(r.close_window(), vec![]);
    }

    #[test]
    fn a_source_past_its_allowance_is_limited_and_no_other_source_is() {
        let r = InboxRefusals::new(3);
        for _ in 0..3 {
            assert_eq!(r.limited(ip(1)), None);
            r.note(ip(1), ProblemType::UnknownApiKey);
        }
        let wait = r.limited(ip(1)).expect("limited after three refusals");
        assert!((1..=60).contains(&wait), "{wait}");
        assert_eq!(r.limited(ip(2)), None);
        r.close_window();
        assert_eq!(r.limited(ip(1)), None, "a new window starts afresh");
    }

    #[test]
    fn try_again_later_is_audited_but_never_limits_the_peer() {
        let r = InboxRefusals::new(3);
        assert_eq!(r.note(ip(1), ProblemType::Unavailable), Audit::Now);
        for _ in 0..10 {
            assert_eq!(r.note(ip(1), ProblemType::Unavailable), Audit::Counted);
        }
        assert_eq!(r.limited(ip(1)), None);
        for _ in 0..3 {
            r.note(ip(1), ProblemType::BadSignature);
        }
        assert!(r.limited(ip(1)).is_some(), "other refusals still count");
    }

    #[test]
    fn a_spray_of_addresses_is_bounded_and_limited_together() {
        let r = InboxRefusals::new(5);
        for i in 0..(MAX_SOURCES as u32 + 50) {
            r.note(IpAddr::from(i.to_be_bytes()), ProblemType::UnknownApiKey);
        }
        let w = r.window.lock();
        assert_eq!(w.per_source.len(), MAX_SOURCES + 1);
        drop(w);
        let new = IpAddr::from([203, 0, 113, 9]);
        assert!(
            r.limited(new).is_some(),
            "past the cap, new sources share one allowance"
        );
    }
}

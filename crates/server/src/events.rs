//! The live event hub: fans committed changes out to every SSE subscriber who may see them.
//!
//! Design (2026-11): the writer thread publishes each committed event once, as a [`Frame`]
//! holding the finished SSE bytes, into a `tokio::sync::broadcast` ring of fixed capacity.
//! Every subscriber holds a cursor into that one ring, so memory does not grow with slow
//! subscribers: a subscriber that falls more than the ring's capacity behind has lost its
//! place and is disconnected, and resumes from the event log with `Last-Event-ID`. A socket
//! that stops reading never gets its body polled, so it cannot notice that itself; the reaper
//! task compares each subscriber's position with the head and closes its connection.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use carebridge_protocol::practitioner::Role;
use carebridge_protocol::{KioskDeviceId, PractitionerId};
use parking_lot::Mutex;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Role bit: doctors.
pub const ROLE_DOCTOR: i64 = 1;
/// Role bit: reception.
pub const ROLE_RECEPTION: i64 = 2;
/// Role bit: admins.
pub const ROLE_ADMIN: i64 = 4;
/// The audience bit of insurer reviewers.
pub const ROLE_REVIEWER: i64 = 8;
/// The audience bit of every kiosk.
pub const ROLE_KIOSK: i64 = 16;

/// The bit of a role.
pub fn role_bit(role: Role) -> i64 {
    match role {
        Role::Doctor => ROLE_DOCTOR,
        Role::Reception => ROLE_RECEPTION,
        Role::Admin => ROLE_ADMIN,
        Role::Reviewer => ROLE_REVIEWER,
    }
}

/// Who may see an event: everyone with one of `roles` (kiosks included, by their bit), plus
/// one practitioner and one kiosk. Built by `crate::visibility`, the one policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Audience {
    /// Role bits whose holders all see it.
    pub roles: i64,
    /// The practitioner it concerns, who sees it whatever the roles say.
    pub practitioner: Option<PractitionerId>,
    /// The kiosk that made it, which sees it.
    pub kiosk: Option<KioskDeviceId>,
}

impl Audience {
    /// Whether `viewer` may see the event.
    pub fn admits(&self, viewer: &Viewer) -> bool {
        match viewer {
            Viewer::Staff { id, role } => {
                self.roles & role_bit(*role) != 0 || self.practitioner == Some(*id)
            }
            Viewer::Kiosk { id } => self.roles & ROLE_KIOSK != 0 || self.kiosk == Some(*id),
        }
    }
}

/// Who is watching a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    /// A staff user.
    Staff {
        /// The user.
        id: PractitionerId,
        /// Their role.
        role: Role,
    },
    /// A kiosk device.
    Kiosk {
        /// The device.
        id: KioskDeviceId,
    },
}

impl Viewer {
    /// The principal's id, whichever kind it is.
    pub fn principal_id(&self) -> Uuid {
        match self {
            Self::Staff { id, .. } => id.0,
            Self::Kiosk { id } => id.0,
        }
    }

    /// `staff` or `kiosk`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Staff { .. } => "staff",
            Self::Kiosk { .. } => "kiosk",
        }
    }
}

/// One committed event, encoded once as SSE bytes.
#[derive(Debug)]
pub struct Frame {
    /// Its id in the event log.
    pub id: i64,
    /// Who may see it.
    pub audience: Audience,
    /// `id: …\nevent: …\ndata: …\n\n`.
    pub bytes: Bytes,
}

impl Frame {
    /// Builds the frame of an event.
    pub fn new(id: i64, kind: &str, data: &str, audience: Audience) -> Self {
        Self {
            id,
            audience,
            bytes: Self::encode(id, kind, data),
        }
    }

    /// The SSE encoding of an event. `data` is one line of JSON.
    pub fn encode(id: i64, kind: &str, data: &str) -> Bytes {
        let mut s = String::with_capacity(data.len() + kind.len() + 40);
        s.push_str("id: ");
        s.push_str(&id.to_string());
        s.push_str("\nevent: ");
        s.push_str(kind);
        s.push_str("\ndata: ");
        s.push_str(data);
        s.push_str("\n\n");
        Bytes::from(s)
    }
}

/// Fans events out to subscribers. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

struct HubInner {
    tx: broadcast::Sender<Arc<Frame>>,
    capacity: usize,
    head: AtomicI64,
    next_sub: AtomicU64,
    subscribers: Mutex<HashMap<u64, SubscriberHandle>>,
}

struct SubscriberHandle {
    principal: Uuid,
    session: [u8; 32],
    kill: CancellationToken,
    position: Arc<AtomicI64>,
    /// The position the reaper saw on its previous round.
    seen: AtomicI64,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("head", &self.head())
            .field("subscribers", &self.inner.subscribers.lock().len())
            .finish()
    }
}

/// A live subscription; dropping it unregisters the subscriber.
pub struct Subscription {
    /// The ring cursor.
    pub rx: broadcast::Receiver<Arc<Frame>>,
    /// Cancelled when the subscriber must go (fell behind, signed out, account disabled).
    pub kill: CancellationToken,
    /// The id of the last event this subscriber has dealt with.
    pub position: Arc<AtomicI64>,
    id: u64,
    hub: Hub,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.inner.subscribers.lock().remove(&self.id);
    }
}

impl Hub {
    /// A hub whose ring holds `capacity` events; `head` is the last id already in the log.
    pub fn new(capacity: usize, head: i64) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(16));
        Self {
            inner: Arc::new(HubInner {
                tx,
                capacity: capacity.max(16),
                head: AtomicI64::new(head),
                next_sub: AtomicU64::new(1),
                subscribers: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The id of the last published event.
    pub fn head(&self) -> i64 {
        self.inner.head.load(Ordering::Acquire)
    }

    /// Sets the head at start-up, from the event log. The head never goes back: a relay
    /// that published further first keeps its head.
    pub fn set_head(&self, head: i64) {
        self.inner.head.fetch_max(head, Ordering::AcqRel);
    }

    /// Publishes committed frames, in id order.
    pub fn publish(&self, frames: Vec<Frame>) {
        for f in frames {
            // Head first, then send: a stream that reads the head after subscribing then
            // either replays an event from the log (id ≤ head) or receives it live.
            self.inner.head.fetch_max(f.id, Ordering::AcqRel);
            // No receivers is not an error: nobody is watching.
            let _ = self.inner.tx.send(Arc::new(f));
        }
    }

    /// Registers a subscriber at the current head. `conn_kill` closes its connection when it
    /// must go.
    pub fn subscribe(
        &self,
        principal: Uuid,
        session: [u8; 32],
        conn_kill: CancellationToken,
    ) -> Subscription {
        let id = self.inner.next_sub.fetch_add(1, Ordering::Relaxed);
        let rx = self.inner.tx.subscribe();
        let head = self.head();
        let position = Arc::new(AtomicI64::new(head));
        self.inner.subscribers.lock().insert(
            id,
            SubscriberHandle {
                principal,
                session,
                kill: conn_kill.clone(),
                position: position.clone(),
                seen: AtomicI64::new(head),
            },
        );
        Subscription {
            rx,
            kill: conn_kill,
            position,
            id,
            hub: self.clone(),
        }
    }

    /// How many subscribers are connected.
    pub fn subscriber_count(&self) -> usize {
        self.inner.subscribers.lock().len()
    }

    /// Disconnects every stream of a principal (an account disabled, a kiosk revoked).
    pub fn disconnect_principal(&self, principal: Uuid) {
        for s in self.inner.subscribers.lock().values() {
            if s.principal == principal {
                s.kill.cancel();
            }
        }
    }

    /// Disconnects the streams of one session (signed out).
    pub fn disconnect_session(&self, session: &[u8; 32]) {
        for s in self.inner.subscribers.lock().values() {
            if &s.session == session {
                s.kill.cancel();
            }
        }
    }

    /// Disconnects everyone (shutdown).
    pub fn disconnect_all(&self) {
        for s in self.inner.subscribers.lock().values() {
            s.kill.cancel();
        }
    }

    /// Closes the connections of subscribers that are further behind than the ring holds
    /// *and* made no progress since the previous round: their sockets stopped taking bytes.
    /// (One that is behind but moving — replaying the log after a reconnect — is left alone.)
    /// Returns how many it closed.
    pub fn reap_laggards(&self) -> usize {
        let head = self.head();
        let limit = self.inner.capacity as i64;
        let mut n = 0;
        for s in self.inner.subscribers.lock().values() {
            let pos = s.position.load(Ordering::Acquire);
            let stuck = s.seen.swap(pos, Ordering::AcqRel) == pos;
            if stuck && head - pos > limit && !s.kill.is_cancelled() {
                s.kill.cancel();
                n += 1;
            }
        }
        n
    }

    /// Runs [`Hub::reap_laggards`] every `every` until `stop` is cancelled.
    pub async fn run_reaper(self, every: Duration, stop: CancellationToken) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {
                    let n = self.reap_laggards();
                    if n > 0 {
                        tracing::warn!(disconnected = n, "closed live streams that stopped reading");
                    }
                }
            }
        }
    }
}

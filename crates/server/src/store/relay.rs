//! One live stream for several node processes on one PostgreSQL database.
//!
//! Design (2026-12): an event's row id is taken before its transaction commits, and
//! transactions of several processes commit in any order, so a reader going on from "the
//! highest id seen" can step over a row that commits later with a lower id. The stream is
//! ordered by *place* instead, given after commit in one place:
//!
//! - **The placer.** One process at a time (the holder of a session advisory lock; when its
//!   process dies, the lock goes with its connection and another process's placer takes over)
//!   gives every unplaced event whose transaction is older than every transaction still
//!   running in the node's database the next places, in transaction then row order, in one
//!   statement. Such a transaction has ended, and every later place goes to a later
//!   statement, so places only grow and a place, once readable, never has a smaller one
//!   appear before it. A transaction held open holds back the places of everything that
//!   commits after it began (events delayed, none lost).
//!
//!   "Running in the node's database", not `pg_snapshot_xmin`: transaction ids are the whole
//!   server's, so the snapshot's oldest running transaction may be another database's, and a
//!   long transaction of any other application on the server would hold back the stream
//!   (the test suite found this, its databases sharing one server). The running transactions
//!   of the snapshot (`pg_snapshot_xip`) are matched to the node's database through
//!   `pg_stat_activity.backend_xid`, which has the low 32 bits of each.
//! - **The followers.** Every process reads placed events past the last it published and
//!   hands them to its own hub, in place order; the SSE id is the place.
//!
//! Both wake on `LISTEN/NOTIFY` (the writer notifies `carebridge_commit` in the transaction
//! that emits, delivered on commit; the placer notifies `carebridge_events` after placing) and
//! poll every [`POLL`] whatever happens, so a lost notification only delays.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator as _;

use super::StoreError;
use super::pg::Database;
use super::sql::{Conn, params};
use crate::events::{Audience, Frame, Hub};

/// The longest a placed event waits for a follower, or a committed one for the placer, when
/// no notification arrives.
pub const POLL: Duration = Duration::from_millis(200);

/// How many events one statement places or one read publishes.
const BATCH: i64 = 1000;

/// The advisory lock whose holder places events.
const PLACER_LOCK: i64 = 0x4361_7265_4272_0003;

/// The advisory lock whose holder does the cluster's once-only work (delivery to peers, mail,
/// pruning, checkpoints): one process at a time, another taking over when it dies.
const DUTY_LOCK: i64 = 0x4361_7265_4272_0004;

/// The channel the writer notifies when it committed events.
pub const COMMITTED: &str = "carebridge_commit";

/// The channel the placer notifies when it placed events.
const PLACED: &str = "carebridge_events";

/// Told once to stop; a wait on it ends early when it is.
#[derive(Default)]
struct Stop {
    stopped: parking_lot::Mutex<bool>,
    told: parking_lot::Condvar,
}

impl Stop {
    fn load(&self) -> bool {
        *self.stopped.lock()
    }

    fn stop(&self) {
        *self.stopped.lock() = true;
        self.told.notify_all();
    }

    /// Waits up to `d` (a retry's back-off), or until told to stop.
    fn nap(&self, d: Duration) {
        let mut stopped = self.stopped.lock();
        if !*stopped {
            let _ = self.told.wait_for(&mut stopped, d);
        }
    }
}

/// This process's placer candidate and follower; stopped and joined when dropped.
pub(super) struct Relay {
    stop: Arc<Stop>,
    threads: Vec<JoinHandle<()>>,
}

impl Relay {
    /// Starts the placer candidate and the follower for the database `db`, publishing to
    /// `hub` from the newest placed event on.
    pub(super) fn start(
        db: &Database,
        hub: Hub,
        duty: tokio::sync::watch::Sender<bool>,
    ) -> Result<Self, StoreError> {
        let stop = Arc::new(Stop::default());
        // The follower's start, read before this returns: whatever is placed later is
        // published, so a stream that starts from the head misses nothing.
        let follower = super::pg::off_async(|| head(&db.connection()?))?;
        hub.set_head(follower);
        let mut threads = Vec::new();
        let (u, s) = (db.clone(), stop.clone());
        threads.push(
            std::thread::Builder::new()
                .name("carebridge-event-placer".into())
                .spawn(move || place_while(&u, &s))
                .map_err(|e| StoreError::Task(e.to_string()))?,
        );
        let (u, s) = (db.clone(), stop.clone());
        threads.push(
            std::thread::Builder::new()
                .name("carebridge-duty".into())
                .spawn(move || hold_duty_while(&u, &s, &duty))
                .map_err(|e| StoreError::Task(e.to_string()))?,
        );
        let (u, s) = (db.clone(), stop.clone());
        threads.push(
            std::thread::Builder::new()
                .name("carebridge-event-follower".into())
                .spawn(move || follow_while(&u, &s, &hub, follower))
                .map_err(|e| StoreError::Task(e.to_string()))?,
        );
        Ok(Self { stop, threads })
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.stop();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn head(conn: &Conn) -> Result<i64, StoreError> {
    Ok(
        conn.query_row("SELECT COALESCE(MAX(position), 0) FROM events", [], |r| {
            r.get(0)
        })?,
    )
}

/// Places the events of every ended transaction not placed yet; how many it placed. The
/// places follow the highest ever given (`event_places`), which moves only when something is
/// placed; the same statement then notifies the followers (on its commit), saving a round trip
/// per round.
pub(super) fn place(conn: &Conn) -> Result<usize, StoreError> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "WITH snapshot AS MATERIALIZED (SELECT pg_current_snapshot() AS s),
         here AS MATERIALIZED (
             SELECT backend_xid::text::bigint AS xid FROM pg_stat_activity
             WHERE datname = current_database() AND backend_xid IS NOT NULL),
         horizon AS MATERIALIZED (
             SELECT COALESCE(
                 (SELECT min(x) FROM snapshot, pg_snapshot_xip(snapshot.s) AS x
                  WHERE x::text::bigint % 4294967296 IN (SELECT xid FROM here)),
                 (SELECT pg_snapshot_xmax(s) FROM snapshot)) AS h),
         ready AS MATERIALIZED (
             SELECT id, row_number() OVER (ORDER BY xact, id) AS n
             FROM events
             WHERE position IS NULL AND xact < (SELECT h FROM horizon)
             ORDER BY xact, id LIMIT ?1),
         counted AS (SELECT count(*) AS n FROM ready),
         given AS (
             UPDATE event_places SET last = last + (SELECT n FROM counted)
             WHERE (SELECT n FROM counted) > 0
             RETURNING last - (SELECT n FROM counted) AS base, pg_notify('{PLACED}', '') AS told)
         UPDATE events e SET position = given.base + ready.n
         FROM ready, given WHERE e.id = ready.id"
        )
    });
    Ok(conn.execute(&SQL, [BATCH])?)
}

/// Waits up to [`POLL`] for a notification on the connection; true if one came.
fn wake(conn: &Conn) -> Result<bool, StoreError> {
    let Conn::Postgres(pg) = conn else {
        return Ok(false);
    };
    let mut client = pg.client();
    let mut notes = client.notifications();
    let woke = notes.timeout_iter(POLL).next()?.is_some();
    // Several commits may have notified: one round serves them all.
    while notes.iter().next()?.is_some() {}
    Ok(woke)
}

/// The placer candidate: waits for the lock, then places until stopped or its connection
/// fails (then it starts over, and another process may hold the lock by then).
fn place_while(db: &Database, stop: &Stop) {
    while !stop.load() {
        if let Err(e) = place_round(db, stop) {
            tracing::warn!(error = %e, "the event placer lost its database connection; retrying");
            stop.nap(Duration::from_secs(1));
        }
    }
}

fn place_round(db: &Database, stop: &Stop) -> Result<(), StoreError> {
    let conn = db.connection()?;
    loop {
        if stop.load() {
            return Ok(());
        }
        let held: bool = conn.query_row(
            "SELECT pg_try_advisory_lock(?1)",
            params![PLACER_LOCK],
            |r| r.get(0),
        )?;
        if held {
            break;
        }
        // Another process places; stand by, ready to take over.
        stop.nap(Duration::from_secs(1));
    }
    tracing::debug!("this process places the cluster's events");
    // A place is acknowledged by a synchronous standby before anyone reads it: after a
    // failover the standby gives no place again, to other events, that clients have seen.
    conn.execute_batch("SET synchronous_commit = on")?;
    if db.listen {
        conn.execute_batch(&format!("LISTEN {COMMITTED}"))?;
    }
    while !stop.load() {
        if place(&conn)? as i64 == BATCH {
            continue;
        }
        wake(&conn)?;
    }
    Ok(())
}

/// Holds the duty lock whenever it can, saying in `duty` whether this process holds it; a
/// lost connection loses the lock (the server ends the session), and says so.
fn hold_duty_while(db: &Database, stop: &Stop, duty: &tokio::sync::watch::Sender<bool>) {
    while !stop.load() {
        let result = (|| -> Result<(), StoreError> {
            let conn = db.connection()?;
            while !stop.load() {
                let held: bool = if *duty.borrow() {
                    // Still connected, so still held.
                    conn.query_row("SELECT true", [], |r| r.get(0))?
                } else {
                    conn.query_row("SELECT pg_try_advisory_lock(?1)", params![DUTY_LOCK], |r| {
                        r.get(0)
                    })?
                };
                if held && !*duty.borrow() {
                    tracing::debug!("this process does the cluster's once-only work");
                }
                duty.send_replace(held);
                stop.nap(Duration::from_secs(1));
            }
            Ok(())
        })();
        duty.send_replace(false);
        if let Err(e) = result {
            tracing::warn!(error = %e, "the duty lock's connection failed; retrying");
            stop.nap(Duration::from_secs(1));
        }
    }
}

/// The follower: publishes placed events to this process's hub, in place order.
fn follow_while(db: &Database, stop: &Stop, hub: &Hub, mut cursor: i64) {
    while !stop.load() {
        if let Err(e) = follow_round(db, stop, hub, &mut cursor) {
            tracing::warn!(error = %e, "the event follower lost its database connection; retrying");
            stop.nap(Duration::from_secs(1));
        }
    }
}

fn follow_round(db: &Database, stop: &Stop, hub: &Hub, cursor: &mut i64) -> Result<(), StoreError> {
    let conn = db.connection()?;
    if db.listen {
        conn.execute_batch(&format!("LISTEN {PLACED}"))?;
    } else {
        tracing::info!(
            "notifications off (database.notifications = false): looking for new events every {} ms",
            POLL.as_millis()
        );
    }
    while !stop.load() {
        let mut st = conn.prepare_cached(
            "SELECT position, kind, data, aud_roles, aud_practitioner, aud_kiosk FROM events
             WHERE position > ?1 ORDER BY position LIMIT ?2",
        )?;
        let mut rows = st.query(params![*cursor, BATCH])?;
        let mut frames = Vec::new();
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(0)?;
            let kind: String = r.get(1)?;
            let data: String = r.get(2)?;
            let p: Option<String> = r.get(4)?;
            let k: Option<String> = r.get(5)?;
            let audience = Audience {
                roles: r.get(3)?,
                practitioner: p.and_then(|s| s.parse().ok()),
                kiosk: k.and_then(|s| s.parse().ok()),
            };
            frames.push(Frame::new(id, &kind, &data, audience));
        }
        drop(rows);
        drop(st);
        let full = frames.len() as i64 == BATCH;
        if let Some(last) = frames.last() {
            *cursor = last.id;
            for f in &frames {
                tracing::trace!(target: crate::TIMELINE, mark = "node.placed", event = f.id);
            }
            hub.publish(frames);
        }
        if !full {
            wake(&conn)?;
        }
    }
    Ok(())
}

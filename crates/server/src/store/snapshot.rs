//! Writing a user's snapshot from one read transaction (see `carebridge_protocol::snapshot`).

use carebridge_protocol::snapshot::{KIND_ORDER, SnapshotItem};

use crate::store::appointments::Scope;
use crate::store::{Reader, StoreError, Tx};
use crate::store::{appointments, patients, practitioners, reports, schedules};

/// Where a resumed snapshot starts: after this record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Index of the record's kind in [`KIND_ORDER`].
    pub kind: usize,
    /// The record's id.
    pub id: String,
}

impl Cursor {
    /// Parses `<kind>:<id>`.
    pub fn parse(s: &str) -> Option<Self> {
        let (kind, id) = s.split_once(':')?;
        let kind = KIND_ORDER.iter().position(|k| *k == kind)?;
        uuid::Uuid::parse_str(id).ok()?;
        Some(Self {
            kind,
            id: id.to_owned(),
        })
    }
}

/// What one user's snapshot holds, as the visibility policy decides it
/// (`crate::visibility::snapshot_of`); the store only reads what it is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contents {
    /// Staff accounts: `None`, only the doctors (`Some(true)`), or every active one.
    pub practitioners: Option<bool>,
    /// Doctors' schedules.
    pub schedules: bool,
    /// Patient records.
    pub patients: bool,
    /// Which appointments, if any.
    pub appointments: Option<Scope>,
    /// Medical reports.
    pub reports: bool,
}

/// Streams a snapshot of `contents` to `emit`, inside one read transaction so that every
/// record is as of the `begin` line's event id. Stops early (without error) when `emit`
/// returns false.
pub fn write(
    reader: &Reader,
    contents: &Contents,
    node: &str,
    after: Option<&Cursor>,
    mut emit: impl FnMut(&SnapshotItem) -> bool,
) -> Result<(), StoreError> {
    let conn = &reader.conn;
    reader.begin()?;
    let result = (|| {
        // The changes and their events commit together, so within this transaction the last
        // event id describes the state read below. (On PostgreSQL an event committed before
        // it may still await its place; it is placed after this id, so a client that goes on
        // from here receives it again rather than missing it.)
        let event_id = super::events::head(&reader.tx())?;
        if !emit(&SnapshotItem::Begin { event_id }) {
            return Ok(());
        }
        let mut records = 0u64;
        let from = |kind: usize| -> Option<String> {
            match after {
                Some(c) if c.kind > kind => None,
                Some(c) if c.kind == kind => Some(c.id.clone()),
                _ => Some(String::new()),
            }
        };
        macro_rules! each {
            ($sql:expr, $args:expr, |$r:ident| $item:expr) => {{
                let mut st = conn.prepare($sql)?;
                let mut rows = st.query($args)?;
                while let Some($r) = rows.next()? {
                    let item = $item;
                    records += 1;
                    if !emit(&item) {
                        return Ok(());
                    }
                }
            }};
        }
        if let (Some(start), Some(doctors_only)) = (from(0), contents.practitioners) {
            let sql = format!(
                "SELECT {} FROM practitioners WHERE id > ?1 AND disabled = 0 AND (NOT ?2 OR role = 'doctor') ORDER BY id",
                practitioners::COLUMNS
            );
            each!(&sql, crate::store::sql::params![start, doctors_only], |r| {
                SnapshotItem::Practitioner(practitioners::from_row(r)?)
            });
        }
        if let Some(start) = from(1)
            && contents.schedules
        {
            let mut st = conn.prepare("SELECT practitioner_id FROM schedules WHERE practitioner_id > ?1 ORDER BY practitioner_id")?;
            let ids: Vec<String> = st
                .query_map([start], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            for id in ids {
                let who = id
                    .parse()
                    .map_err(|_| StoreError::Corrupt(format!("practitioner id {id}")))?;
                if let Some(s) = schedules::get(&Tx { conn }, who)? {
                    records += 1;
                    if !emit(&SnapshotItem::Schedule(s)) {
                        return Ok(());
                    }
                }
            }
        }
        if let Some(start) = from(2)
            && contents.patients
        {
            let sql = format!(
                "SELECT {} FROM patients WHERE id > ?1 ORDER BY id",
                patients::COLUMNS
            );
            each!(&sql, [start], |r| SnapshotItem::Patient(
                patients::from_row(r, node)?
            ));
        }
        if let (Some(start), Some(scope)) = (from(3), contents.appointments) {
            let (filter, who) = match scope {
                // ?2 is bound whatever the scope (one statement shape); here it is '' and
                // matches, and typed, as PostgreSQL needs every placeholder to be.
                Scope::All => ("?2 = ''", String::new()),
                Scope::Practitioner(id) => ("practitioner_id = ?2", id.to_string()),
                Scope::Kiosk(id) => (
                    "booked_by_kind = 'kiosk' AND booked_by_id = ?2",
                    id.to_string(),
                ),
                Scope::Patient(id) => ("patient_id = ?2", id.to_string()),
            };
            let sql = format!(
                "SELECT {} FROM appointments WHERE id > ?1 AND {filter} ORDER BY id",
                appointments::COLUMNS
            );
            each!(&sql, crate::store::sql::params![start, who], |r| {
                SnapshotItem::Appointment(appointments::from_row(r)?)
            });
        }
        if let Some(start) = from(4)
            && contents.reports
        {
            let sql = format!(
                "SELECT {} FROM reports WHERE id > ?1 ORDER BY id",
                reports::COLUMNS
            );
            each!(&sql, [start], |r| SnapshotItem::Report(reports::from_row(
                r
            )?));
        }
        emit(&SnapshotItem::End { records });
        Ok(())
    })();
    let _ = reader.end();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_parse_only_known_kinds_and_real_ids() {
        let id = uuid::Uuid::now_v7().to_string();
        assert_eq!(
            Cursor::parse(&format!("patient:{id}")),
            Some(Cursor {
                kind: 2,
                id: id.clone()
            })
        );
        assert_eq!(Cursor::parse(&format!("invoice:{id}")), None);
        assert_eq!(Cursor::parse("patient:x' OR 1=1 --"), None);
        assert_eq!(Cursor::parse("patient"), None);
    }
}

//! Appointment rows and queries.

use crate::store::sql::{OptionalExtension, Row, params};
use carebridge_protocol::appointment::{
    Appointment, AppointmentQuery, AppointmentStatus, BookedBy,
};
use carebridge_protocol::{AppointmentId, KioskDeviceId, PatientId, PractitionerId};
use chrono::{DateTime, Utc};
use rand::Rng;

use crate::store::sql::Value;

use crate::store::search::{self, Found, Page, Span, Where, order_by};
use crate::store::{StoreError, Tx, WriteCtx, from_millis};
use carebridge_protocol::booking::{MAX_APPOINTMENT, occupying_sql};

/// The columns [`from_row`] reads, in its order.
pub(in crate::store) const COLUMNS: &str = "id, reference, patient_id, practitioner_id, start_at, end_at, reason, status, booked_by_kind, \
                       booked_by_id, override_reason, cancellation_reason, version, created_at, updated_at";

fn parse<T: std::str::FromStr>(s: String, what: &str) -> Result<T, StoreError> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("{what} {s}")))
}

/// Decodes a row selected with [`COLUMNS`].
pub(in crate::store) fn from_row(r: &Row) -> Result<Appointment, StoreError> {
    let status: String = r.get(7)?;
    let kind: String = r.get(8)?;
    let by: String = r.get(9)?;
    Ok(Appointment {
        id: parse(r.get(0)?, "appointment id")?,
        reference: r.get(1)?,
        patient_id: parse(r.get(2)?, "patient id")?,
        practitioner_id: parse(r.get(3)?, "practitioner id")?,
        start: from_millis(r.get(4)?)?,
        end: from_millis(r.get(5)?)?,
        reason: r.get(6)?,
        status: AppointmentStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("status {status}")))?,
        booked_by: if kind == "kiosk" {
            BookedBy::Kiosk {
                id: parse(by, "kiosk id")?,
            }
        } else {
            BookedBy::Staff {
                id: parse(by, "practitioner id")?,
            }
        },
        override_reason: r.get(10)?,
        cancellation_reason: r.get(11)?,
        version: r.get(12)?,
        created_at: from_millis(r.get(13)?)?,
        updated_at: from_millis(r.get(14)?)?,
    })
}

/// Reads one appointment.
pub fn get(tx: &Tx<'_>, id: AppointmentId) -> Result<Option<Appointment>, StoreError> {
    let mut st = tx
        .conn()
        .prepare_cached(&format!("SELECT {COLUMNS} FROM appointments WHERE id = ?1"))?;
    let mut rows = st.query([id.to_string()])?;
    rows.next()?.map(from_row).transpose()
}

/// Inserts a new appointment.
pub fn insert(w: &WriteCtx<'_>, a: &Appointment) -> Result<(), StoreError> {
    let (kind, by) = booked_by_cols(&a.booked_by);
    w.conn().prepare_cached(&format!(
        "INSERT INTO appointments ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
    ))?
    .execute(params![
        a.id.to_string(),
        a.reference,
        a.patient_id.to_string(),
        a.practitioner_id.to_string(),
        a.start.timestamp_millis(),
        a.end.timestamp_millis(),
        w.conn().seal(&a.reason)?,
        a.status.as_str(),
        kind,
        by,
        w.conn().seal(&a.override_reason)?,
        w.conn().seal(&a.cancellation_reason)?,
        a.version,
        a.created_at.timestamp_millis(),
        a.updated_at.timestamp_millis(),
    ])?;
    Ok(())
}

fn booked_by_cols(b: &BookedBy) -> (&'static str, String) {
    match b {
        BookedBy::Staff { id } => ("staff", id.to_string()),
        BookedBy::Kiosk { id } => ("kiosk", id.to_string()),
    }
}

/// Writes a changed appointment (its version already bumped).
pub fn update(w: &WriteCtx<'_>, a: &Appointment) -> Result<(), StoreError> {
    w.conn()
        .prepare_cached(
            "UPDATE appointments SET start_at = ?2, end_at = ?3, status = ?4, override_reason = ?5,
                cancellation_reason = ?6, version = ?7, updated_at = ?8
         WHERE id = ?1",
        )?
        .execute(params![
            a.id.to_string(),
            a.start.timestamp_millis(),
            a.end.timestamp_millis(),
            a.status.as_str(),
            w.conn().seal(&a.override_reason)?,
            w.conn().seal(&a.cancellation_reason)?,
            a.version,
            a.updated_at.timestamp_millis(),
        ])?;
    Ok(())
}

/// The first live appointment of `who` overlapping `[start, end)`, other than `except`.
pub fn overlapping(
    tx: &Tx<'_>,
    who: PractitionerId,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    except: Option<AppointmentId>,
) -> Result<Option<AppointmentId>, StoreError> {
    // The occupancy rule is the protocol's; the SQL is built from it once.
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "SELECT id FROM appointments
             WHERE practitioner_id = ?1 AND start_at >= ?2 AND start_at < ?3 AND end_at > ?4
               AND {} AND id <> ?5
             LIMIT 1",
            occupying_sql("status")
        )
    });
    let id: Option<String> = tx
        .conn()
        .prepare_cached(&SQL)?
        .query_row(
            params![
                who.to_string(),
                (start - MAX_APPOINTMENT).timestamp_millis(),
                end.timestamp_millis(),
                start.timestamp_millis(),
                except.map(|e| e.to_string()).unwrap_or_default()
            ],
            |r| r.get(0),
        )
        .optional()?;
    id.map(|s| parse(s, "appointment id")).transpose()
}

/// A short reference the patient can read out: `XXX-XXX` from an alphabet without 0/O, 1/I.
pub fn new_reference(tx: &Tx<'_>) -> Result<String, StoreError> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    loop {
        let mut s = String::with_capacity(7);
        for i in 0..6 {
            if i == 3 {
                s.push('-');
            }
            s.push(ALPHABET[rng.gen_range(0..ALPHABET.len())] as char);
        }
        if !reference_taken(tx, &s)? {
            return Ok(s);
        }
    }
}

/// Whether an appointment already has booking reference `reference`.
pub fn reference_taken(tx: &Tx<'_>, reference: &str) -> Result<bool, StoreError> {
    Ok(tx
        .conn()
        .prepare_cached("SELECT 1 FROM appointments WHERE reference = ?1")?
        .query_row([reference], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Who is listing, which narrows what they see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Reception: everything.
    All,
    /// A doctor: their own appointments.
    Practitioner(PractitionerId),
    /// A kiosk: the bookings it made.
    Kiosk(KioskDeviceId),
    /// A kiosk's identified patient: that patient's appointments.
    Patient(PatientId),
}

/// Lists appointments by start time.
pub fn list(
    tx: &Tx<'_>,
    q: &AppointmentQuery,
    scope: Scope,
) -> Result<Vec<Appointment>, StoreError> {
    let limit = q.limit.unwrap_or(200).clamp(1, 1000);
    let mut sql = format!("SELECT {COLUMNS} FROM appointments WHERE 1 = 1");
    let mut args: Vec<crate::store::sql::Value> = Vec::new();
    let mut add = |clause: &str, v: crate::store::sql::Value, sql: &mut String| {
        args.push(v);
        sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
    };
    match scope {
        Scope::All => {}
        Scope::Practitioner(p) => add(" AND practitioner_id = ?", p.to_string().into(), &mut sql),
        Scope::Kiosk(k) => add(
            " AND booked_by_kind = 'kiosk' AND booked_by_id = ?",
            k.to_string().into(),
            &mut sql,
        ),
        Scope::Patient(p) => add(" AND patient_id = ?", p.to_string().into(), &mut sql),
    }
    if let Some(p) = q.practitioner_id {
        add(" AND practitioner_id = ?", p.to_string().into(), &mut sql);
    }
    if let Some(p) = q.patient_id {
        add(" AND patient_id = ?", p.to_string().into(), &mut sql);
    }
    if let Some(f) = q.from {
        add(" AND start_at >= ?", f.timestamp_millis().into(), &mut sql);
    }
    if let Some(t) = q.to {
        add(" AND start_at < ?", t.timestamp_millis().into(), &mut sql);
    }
    if let Some(s) = q.status {
        add(" AND status = ?", s.as_str().to_owned().into(), &mut sql);
    }
    sql.push_str(&format!(" ORDER BY start_at, id LIMIT {limit}"));
    let mut st = tx.conn().prepare_cached(&sql)?;
    let mut rows = st.query(crate::store::sql::params_from_iter(args))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(from_row(r)?);
    }
    Ok(out)
}

/// What an appointment search filters by; every given criterion must match.
#[derive(Debug, Clone, Default)]
pub struct AppointmentFilter {
    /// Only these ids (`None`: any).
    pub ids: Option<Vec<AppointmentId>>,
    /// Only those with one of these ids or one of these booking references (`None`: any): an
    /// identifier search, where a value is either.
    pub identifier: Option<(Vec<AppointmentId>, Vec<String>)>,
    /// This patient's.
    pub patient: Option<PatientId>,
    /// This doctor's.
    pub practitioner: Option<PractitionerId>,
    /// Those where this id is the patient or the doctor.
    pub participant: Option<uuid::Uuid>,
    /// Starting within.
    pub start: Span,
    /// In one of these statuses (`None`: any).
    pub statuses: Option<Vec<AppointmentStatus>>,
    /// Last changed within.
    pub updated: Span,
}

/// What appointments can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppointmentSort {
    /// Start.
    Start,
    /// Last change.
    LastUpdated,
}

/// One page of the appointments in `scope` matching `f`, sorted by `sort`, then by start and id.
pub fn find(
    tx: &Tx<'_>,
    f: &AppointmentFilter,
    scope: Scope,
    sort: &[(AppointmentSort, bool)],
    page: Page,
) -> Result<Found<Appointment>, StoreError> {
    let mut w = Where::default();
    let text = |s: String| Value::Text(s);
    match scope {
        Scope::All => {}
        Scope::Practitioner(p) => w.and("practitioner_id = ?", [text(p.to_string())]),
        Scope::Kiosk(k) => w.and(
            "booked_by_kind = 'kiosk' AND booked_by_id = ?",
            [text(k.to_string())],
        ),
        Scope::Patient(p) => w.and("patient_id = ?", [text(p.to_string())]),
    }
    if let Some(ids) = &f.ids {
        w.any_of(
            "id",
            &ids.iter().map(ToString::to_string).collect::<Vec<_>>(),
        );
    }
    if let Some((ids, refs)) = &f.identifier {
        search::either(
            &mut w,
            ("id", ids.iter().map(ToString::to_string).collect()),
            ("reference", refs.clone()),
        );
    }
    if let Some(p) = f.patient {
        w.and("patient_id = ?", [text(p.to_string())]);
    }
    if let Some(p) = f.practitioner {
        w.and("practitioner_id = ?", [text(p.to_string())]);
    }
    if let Some(id) = f.participant {
        w.and(
            "patient_id = ? OR practitioner_id = ?",
            [text(id.to_string()), text(id.to_string())],
        );
    }
    w.span("start_at", f.start);
    if let Some(st) = &f.statuses {
        w.any_of(
            "status",
            &st.iter().map(|s| s.as_str().to_owned()).collect::<Vec<_>>(),
        );
    }
    w.span("updated_at", f.updated);
    let keys: Vec<(&str, bool)> = sort
        .iter()
        .map(|(k, desc)| {
            let c = match k {
                AppointmentSort::Start => "start_at",
                AppointmentSort::LastUpdated => "updated_at",
            };
            (c, *desc)
        })
        .collect();
    let order = order_by(&keys, "start_at, id");
    search::run(tx, COLUMNS, "appointments", &w, &order, page, from_row)
}

/// The next `limit` appointments by id after `after` changed within `changed` (a bulk
/// export's walk).
pub fn page_after(
    tx: &Tx<'_>,
    after: Option<AppointmentId>,
    changed: Span,
    limit: u32,
) -> Result<Vec<Appointment>, StoreError> {
    let after = after.map(|a| a.to_string());
    search::walk(tx, COLUMNS, "appointments", after, changed, limit, from_row)
}

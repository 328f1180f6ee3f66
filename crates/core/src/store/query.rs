//! What the UI asks of the local store: a doctor's day and week, today's list, a patient's
//! appointments, patient search by name prefix, birth date or card number, and full-text search.
//! All answered from the encrypted mirror, so they work offline.

use carebridge_protocol::appointment::Appointment;
use carebridge_protocol::booking;
use carebridge_protocol::patient::{Patient, search_key};
use carebridge_protocol::practitioner::{Practitioner, Role};
use carebridge_protocol::report::Report;
use carebridge_protocol::schedule::{Absence, Schedule, Slot};
use carebridge_protocol::slots::{self, Occupied};
use carebridge_protocol::{AppointmentId, PatientId, PractitionerId, ReportId};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use rusqlite::types::Value;
use rusqlite::{Connection, params_from_iter};
use serde::{Deserialize, Serialize};

use super::LocalStore;
use crate::error::CoreError;

/// An appointment as the user sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct AppointmentRow {
    /// Its state here (the user's change, while pending).
    pub appointment: Appointment,
    /// A change the node has not acknowledged yet.
    pub pending: bool,
    /// The patient's given and family name, where this client knows the patient (a kiosk
    /// does not).
    pub patient_name: Option<String>,
}

/// A patient as the user sees them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct PatientRow {
    /// Their details here (the user's change, while pending).
    pub patient: Patient,
    /// A change the node has not acknowledged yet.
    pub pending: bool,
}

/// A report as the user sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
pub struct ReportRow {
    /// Its state here (the user's change, while pending: then unsigned).
    pub report: Report,
    /// A change the node has not acknowledged yet.
    pub pending: bool,
}

/// A full-text search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export, tag = "kind", rename_all = "lowercase")
)]
pub enum SearchHit {
    /// A patient whose name or card number matches.
    Patient(PatientRow),
    /// An appointment whose reason or reference matches.
    Appointment(AppointmentRow),
}

/// Which patients to find; the given criteria must all hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatientQuery {
    /// The start of a family or given name, or of both (`"ann smi"`), any case.
    pub name: Option<String>,
    /// The exact birth date.
    pub birth_date: Option<NaiveDate>,
    /// The start of a card number.
    pub card_number: Option<String>,
    /// At most this many (default 50).
    pub limit: Option<u32>,
}

/// The UTC bounds of `date` in the node's time zone (a DST day is 23 or 25 hours long).
pub fn day_bounds(date: NaiveDate, tz: Tz) -> (DateTime<Utc>, DateTime<Utc>) {
    let start_of = |d: NaiveDate| {
        let midnight = d.and_hms_opt(0, 0, 0).unwrap_or_default();
        // Where midnight does not exist (a DST gap at 00:00), the day starts an hour later.
        tz.from_local_datetime(&midnight)
            .earliest()
            .or_else(|| {
                tz.from_local_datetime(&(midnight + Duration::hours(1)))
                    .earliest()
            })
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| midnight.and_utc())
    };
    (start_of(date), start_of(date + Duration::days(1)))
}

fn rows<T>(
    c: &Connection,
    sql: &str,
    params: Vec<Value>,
    f: impl Fn(String, bool) -> Result<T, CoreError>,
) -> Result<Vec<T>, CoreError> {
    let mut stmt = c.prepare_cached(sql)?;
    let raw = stmt
        .query_map(params_from_iter(params), |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    raw.into_iter().map(|(d, p)| f(d, p)).collect()
}

/// Selects what [`appointment_rows`] reads, from `appointment a`.
const APPOINTMENT_COLUMNS: &str = "a.data, a.pending, (SELECT json_extract(p.data, '$.given_name') || ' ' || json_extract(p.data, '$.family_name') FROM patient p WHERE p.id = a.patient_id)";

fn appointment_rows(
    c: &Connection,
    sql: &str,
    params: Vec<Value>,
) -> Result<Vec<AppointmentRow>, CoreError> {
    let sql = sql.replace("{columns}", APPOINTMENT_COLUMNS);
    let mut stmt = c.prepare_cached(&sql)?;
    let raw = stmt
        .query_map(params_from_iter(params), |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, bool>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    raw.into_iter()
        .map(|(data, pending, patient_name)| {
            Ok(AppointmentRow {
                appointment: serde_json::from_str(&data)?,
                pending,
                patient_name,
            })
        })
        .collect()
}

fn report_row(data: String, pending: bool) -> Result<ReportRow, CoreError> {
    Ok(ReportRow {
        report: serde_json::from_str(&data)?,
        pending,
    })
}

fn patient_row(data: String, pending: bool) -> Result<PatientRow, CoreError> {
    Ok(PatientRow {
        patient: serde_json::from_str(&data)?,
        pending,
    })
}

/// The first string after every string starting with `prefix` (for an index range scan).
fn prefix_end(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

/// Turns what the user typed into an FTS5 query: every word as a prefix, all required. Quotes
/// keep FTS5's own syntax (`OR`, `NEAR`, `*`, `:`) from being read in the user's text.
fn fts_query(text: &str) -> Option<String> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| format!("\"{w}\"*"))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

impl LocalStore {
    /// Appointments starting in `[from, to)`, of one practitioner or of all, by start time.
    pub async fn appointments_between(
        &self,
        practitioner: Option<PractitionerId>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<AppointmentRow>, CoreError> {
        self.with(move |c| {
            let (from, to) = (from.timestamp_millis(), to.timestamp_millis());
            match practitioner {
                Some(p) => appointment_rows(
                    c,
                    "SELECT {columns} FROM appointment a WHERE a.practitioner_id = ?1 AND a.start_ms >= ?2 AND a.start_ms < ?3 ORDER BY a.start_ms",
                    vec![p.to_string().into(), from.into(), to.into()],
                ),
                None => appointment_rows(
                    c,
                    "SELECT {columns} FROM appointment a WHERE a.start_ms >= ?1 AND a.start_ms < ?2 ORDER BY a.start_ms",
                    vec![from.into(), to.into()],
                ),
            }
        })
        .await
    }

    /// A doctor's day, `date` in the node's time zone.
    pub async fn doctor_day(
        &self,
        practitioner: PractitionerId,
        date: NaiveDate,
        tz: Tz,
    ) -> Result<Vec<AppointmentRow>, CoreError> {
        let (from, to) = day_bounds(date, tz);
        self.appointments_between(Some(practitioner), from, to)
            .await
    }

    /// A doctor's week: the seven days from `monday` (any first day works), in the node's
    /// time zone.
    pub async fn doctor_week(
        &self,
        practitioner: PractitionerId,
        monday: NaiveDate,
        tz: Tz,
    ) -> Result<Vec<AppointmentRow>, CoreError> {
        let (from, _) = day_bounds(monday, tz);
        let (_, to) = day_bounds(monday + Duration::days(6), tz);
        self.appointments_between(Some(practitioner), from, to)
            .await
    }

    /// Kiosk bookings waiting for the doctor's answer that have not started before `from`,
    /// soonest first.
    pub async fn waiting_for(
        &self,
        practitioner: PractitionerId,
        from: DateTime<Utc>,
    ) -> Result<Vec<AppointmentRow>, CoreError> {
        self.with(move |c| {
            appointment_rows(
                c,
                "SELECT {columns} FROM appointment a
                 WHERE a.practitioner_id = ?1 AND a.start_ms >= ?2 AND a.status = 'pending'
                 ORDER BY a.start_ms",
                vec![
                    practitioner.to_string().into(),
                    from.timestamp_millis().into(),
                ],
            )
        })
        .await
    }

    /// Every appointment on `today` (the node's date), for the front desk's list.
    pub async fn appointments_on(
        &self,
        today: NaiveDate,
        tz: Tz,
    ) -> Result<Vec<AppointmentRow>, CoreError> {
        let (from, to) = day_bounds(today, tz);
        self.appointments_between(None, from, to).await
    }

    /// A patient's appointments, newest first.
    pub async fn patient_appointments(
        &self,
        patient: PatientId,
    ) -> Result<Vec<AppointmentRow>, CoreError> {
        self.with(move |c| {
            appointment_rows(
                c,
                "SELECT {columns} FROM appointment a WHERE a.patient_id = ?1 ORDER BY a.start_ms DESC",
                vec![patient.to_string().into()],
            )
        })
        .await
    }

    /// One appointment.
    pub async fn appointment(
        &self,
        id: AppointmentId,
    ) -> Result<Option<AppointmentRow>, CoreError> {
        self.with(move |c| {
            let id = super::outbox::resolve(c, &id.to_string())?;
            Ok(appointment_rows(
                c,
                "SELECT {columns} FROM appointment a WHERE a.id = ?1",
                vec![id.into()],
            )?
            .into_iter()
            .next())
        })
        .await
    }

    /// A patient's reports, most recently changed first.
    pub async fn patient_reports(&self, patient: PatientId) -> Result<Vec<ReportRow>, CoreError> {
        self.with(move |c| {
            let id = super::outbox::resolve(c, &patient.to_string())?;
            rows(
                c,
                "SELECT data, pending FROM report WHERE patient_id = ?1 ORDER BY updated_ms DESC",
                vec![id.into()],
                report_row,
            )
        })
        .await
    }

    /// The reports changed most recently, newest first (a doctor's recent work).
    pub async fn recent_reports(&self, limit: u32) -> Result<Vec<ReportRow>, CoreError> {
        self.with(move |c| {
            rows(
                c,
                "SELECT data, pending FROM report ORDER BY updated_ms DESC LIMIT ?1",
                vec![i64::from(limit).into()],
                report_row,
            )
        })
        .await
    }

    /// One report.
    pub async fn report(&self, id: ReportId) -> Result<Option<ReportRow>, CoreError> {
        self.with(move |c| {
            Ok(rows(
                c,
                "SELECT data, pending FROM report WHERE id = ?1",
                vec![id.to_string().into()],
                report_row,
            )?
            .into_iter()
            .next())
        })
        .await
    }

    /// One patient.
    pub async fn patient(&self, id: PatientId) -> Result<Option<PatientRow>, CoreError> {
        self.with(move |c| {
            let id = super::outbox::resolve(c, &id.to_string())?;
            Ok(rows(
                c,
                "SELECT data, pending FROM patient WHERE id = ?1",
                vec![id.into()],
                patient_row,
            )?
            .into_iter()
            .next())
        })
        .await
    }

    /// Staff users, by name.
    pub async fn practitioners(&self) -> Result<Vec<Practitioner>, CoreError> {
        self.with(|c| {
            let mut v: Vec<Practitioner> =
                rows(c, "SELECT data, 0 FROM practitioner", vec![], |d, _| {
                    Ok(serde_json::from_str(&d)?)
                })?;
            v.sort_by(|a, b| a.display_name.cmp(&b.display_name));
            Ok(v)
        })
        .await
    }

    /// The doctors one can book with (enabled accounts with the doctor role), by name.
    pub async fn doctors(&self) -> Result<Vec<Practitioner>, CoreError> {
        let mut all = self.practitioners().await?;
        all.retain(|p| p.role == Role::Doctor && !p.disabled);
        Ok(all)
    }

    /// A doctor's working hours.
    pub async fn schedule(
        &self,
        practitioner: PractitionerId,
    ) -> Result<Option<Schedule>, CoreError> {
        self.with(move |c| {
            Ok(rows(
                c,
                "SELECT data, 0 FROM schedule WHERE id = ?1",
                vec![practitioner.to_string().into()],
                |d, _| Ok(serde_json::from_str(&d)?),
            )?
            .into_iter()
            .next())
        })
        .await
    }

    /// A doctor's slots on local dates `from..=to`, as this client knows them: busy where a
    /// live appointment is, held where only a pending one is (a kiosk booking waiting for the
    /// doctor, or this user's booking not yet acknowledged), unavailable in an absence. Empty
    /// for a doctor without working hours.
    pub async fn slots(
        &self,
        practitioner: PractitionerId,
        from: NaiveDate,
        to: NaiveDate,
        tz: Tz,
    ) -> Result<Vec<Slot>, CoreError> {
        let Some(schedule) = self.schedule(practitioner).await? else {
            return Ok(Vec::new());
        };
        let (lo, hi) = slots::date_bounds(tz, from, to);
        // An appointment starting up to the longest allowed length earlier can still overlap.
        let earliest = lo - booking::MAX_APPOINTMENT;
        let booked = self
            .appointments_between(Some(practitioner), earliest, hi)
            .await?;
        // Overbooked appointments occupy their time too, as on the node (`protocol::booking`).
        let busy: Vec<Occupied> = booked
            .iter()
            .filter_map(|r| {
                Occupied::of(&r.appointment).map(|o| Occupied {
                    // This user's own booking, not yet acknowledged, only holds the slot.
                    tentative: o.tentative || r.pending,
                    ..o
                })
            })
            .collect();
        let absent = self
            .with(move |c| {
                rows(
                    c,
                    "SELECT data, 0 FROM absence WHERE practitioner_id = ?1 AND start_ms < ?2",
                    vec![
                        practitioner.to_string().into(),
                        hi.timestamp_millis().into(),
                    ],
                    |d, _| Ok(serde_json::from_str::<Absence>(&d)?),
                )
            })
            .await?
            .into_iter()
            .filter(|a| a.end > lo)
            .collect::<Vec<_>>();
        Ok(slots::slots_between(
            tz, &schedule, from, to, &absent, &busy,
        ))
    }

    /// Patients by name prefix, birth date and card number prefix, by family then given name.
    /// Every criterion runs on an index.
    pub async fn search_patients(&self, q: PatientQuery) -> Result<Vec<PatientRow>, CoreError> {
        self.with(move |c| {
            let limit = i64::from(q.limit.unwrap_or(50).clamp(1, 500));
            let mut filters = String::new();
            let mut params: Vec<Value> = Vec::new();
            if let Some(d) = q.birth_date {
                params.push(d.to_string().into());
                filters.push_str(&format!(" AND birth_date = ?{}", params.len()));
            }
            if let Some(card) = q
                .card_number
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
            {
                let card = card.to_uppercase();
                params.push(prefix_end(&card).into());
                params.push(card.into());
                filters.push_str(&format!(
                    " AND card_number >= ?{} AND card_number < ?{}",
                    params.len(),
                    params.len() - 1
                ));
            }
            let words: Vec<String> = q
                .name
                .as_deref()
                .map(|n| n.split_whitespace().map(search_key).collect())
                .unwrap_or_default();
            // Each arrangement of the words over family and given name is one index range.
            let arrangements: Vec<(Option<&str>, Option<&str>)> = match words.as_slice() {
                [] => vec![(None, None)],
                [one] => vec![(Some(one.as_str()), None), (None, Some(one.as_str()))],
                [first, rest @ ..] => {
                    let last = rest.last().map(String::as_str);
                    vec![(last, Some(first.as_str())), (Some(first.as_str()), last)]
                }
            };
            let mut found: Vec<PatientRow> = Vec::new();
            for (family, given) in arrangements {
                let mut sql = String::from("SELECT data, pending FROM patient WHERE 1");
                let mut p = params.clone();
                for (column, prefix) in [("family_key", family), ("given_key", given)] {
                    if let Some(prefix) = prefix {
                        p.push(prefix.to_owned().into());
                        p.push(prefix_end(prefix).into());
                        sql.push_str(&format!(
                            " AND {column} >= ?{} AND {column} < ?{}",
                            p.len() - 1,
                            p.len()
                        ));
                    }
                }
                sql.push_str(&filters);
                // Both arrangements in the order shown, so their merge is the true first
                // `limit`; the given-name index covers the family key, so it sorts from it.
                sql.push_str(&format!(" ORDER BY family_key, given_key LIMIT {limit}"));
                found.extend(rows(c, &sql, p, patient_row)?);
            }
            found.sort_by(|a, b| {
                (
                    search_key(&a.patient.family_name),
                    search_key(&a.patient.given_name),
                    a.patient.id,
                )
                    .cmp(&(
                        search_key(&b.patient.family_name),
                        search_key(&b.patient.given_name),
                        b.patient.id,
                    ))
            });
            found.dedup_by(|a, b| a.patient.id == b.patient.id);
            found.truncate(limit as usize);
            Ok(found)
        })
        .await
    }

    /// Full-text search over patients (names, card numbers) and appointments (reasons,
    /// references): every word the user typed, as a prefix. Patients first.
    pub async fn search(&self, text: String, limit: u32) -> Result<Vec<SearchHit>, CoreError> {
        self.with(move |c| {
            let Some(query) = fts_query(&text) else {
                return Ok(Vec::new());
            };
            let limit = i64::from(limit.clamp(1, 500));
            let mut hits: Vec<SearchHit> = rows(
                c,
                "SELECT p.data, p.pending FROM patient_text t JOIN patient p ON p.rowid = t.rowid
                 WHERE patient_text MATCH ?1 LIMIT ?2",
                vec![query.clone().into(), limit.into()],
                |d, pending| Ok(SearchHit::Patient(patient_row(d, pending)?)),
            )?;
            let room = limit - hits.len() as i64;
            if room > 0 {
                hits.extend(
                    appointment_rows(
                        c,
                        "SELECT {columns} FROM appointment_text t JOIN appointment a ON a.rowid = t.rowid
                         WHERE appointment_text MATCH ?1 ORDER BY a.start_ms DESC LIMIT ?2",
                        vec![query.into(), room.into()],
                    )?
                    .into_iter()
                    .map(SearchHit::Appointment),
                );
            }
            Ok(hits)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_text_cannot_inject_fts_syntax() {
        assert_eq!(fts_query("ann OR"), Some("\"ann\"* \"OR\"*".into()));
        assert_eq!(
            fts_query("x\" NEAR(a b) *"),
            Some("\"x\"* \"NEAR\"* \"a\"* \"b\"*".into())
        );
        assert_eq!(fts_query("  -- "), None);
    }

    #[test]
    fn a_dst_day_has_its_real_length() {
        let tz: Tz = "Europe/Berlin".parse().unwrap_or(Tz::UTC);
        let (a, b) = day_bounds(NaiveDate::from_ymd_opt(2026, 3, 29).unwrap_or_default(), tz);
        assert_eq!((b - a).num_hours(), 23);
        let (a, b) = day_bounds(
            NaiveDate::from_ymd_opt(2026, 10, 25).unwrap_or_default(),
            tz,
        );
        assert_eq!((b - a).num_hours(), 25);
        assert_eq!(a.to_rfc3339(), "2026-10-24T22:00:00+00:00");
    }
}

//! Search parameters as FHIR R4 writes them, read into typed values.
//!
//! A parameter the node does not serve is refused, not ignored (FHIR leaves the choice to the
//! server; `Prefer: handling=strict` asks for this): a filter silently dropped would answer
//! with more records than the caller asked for, and a clinician would not notice.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// Why a search cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SearchError {
    /// A parameter this resource's search does not serve.
    #[error("the search parameter `{0}` is not supported here; see /fhir/R4/metadata")]
    Unsupported(String),
    /// A value that does not parse.
    #[error("`{name}`: {reason}")]
    Invalid {
        /// The parameter.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(name: &str, reason: impl Into<String>) -> SearchError {
    SearchError::Invalid {
        name: name.to_owned(),
        reason: reason.into(),
    }
}

/// The most entries one page holds, and how many when `_count` is not given.
pub const MAX_COUNT: u32 = 1000;
/// How many entries a page holds when `_count` is not given.
pub const DEFAULT_COUNT: u32 = 50;

/// A search's parameters, consumed one by one by the resource's search; what is left over was
/// not understood.
#[derive(Debug, Clone)]
pub struct SearchParams {
    items: Vec<(String, String)>,
    used: Vec<bool>,
}

/// Parameters every search takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paging {
    /// Entries per page (`_count`, 0 for the total alone).
    pub count: u32,
    /// Entries skipped (`_offset`).
    pub offset: u32,
}

/// One `_sort` key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    /// The search parameter sorted by.
    pub param: String,
    /// `-param`.
    pub descending: bool,
}

impl SearchParams {
    /// From `name=value` pairs, as decoded from the query string. Empty values are dropped,
    /// as FHIR says they are to be ignored.
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let items: Vec<_> = pairs.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        let used = vec![false; items.len()];
        Self { items, used }
    }

    /// Every value given for `name` (exactly this name, modifiers included), each possibly a
    /// comma-separated list of alternatives.
    pub fn take(&mut self, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (i, (n, v)) in self.items.iter().enumerate() {
            if n == name && !self.used[i] {
                self.used[i] = true;
                out.push(v.clone());
            }
        }
        out
    }

    /// The one value of `name`; given twice it is an error.
    pub fn take_one(&mut self, name: &str) -> Result<Option<String>, SearchError> {
        let mut all = self.take(name);
        match all.len() {
            0 => Ok(None),
            1 => Ok(all.pop()),
            _ => Err(invalid(name, "give it once")),
        }
    }

    /// The alternatives of `name`: every comma-separated value, across repeats (a repeat is
    /// AND in FHIR; for the single-valued elements searched here AND of two different values
    /// matches nothing, so repeats are refused instead of answering with nothing).
    pub fn take_any_of(&mut self, name: &str) -> Result<Vec<String>, SearchError> {
        Ok(self
            .take_one(name)?
            .map(|v| v.split(',').map(str::trim).map(str::to_owned).collect())
            .unwrap_or_default())
    }

    /// `_count` and `_offset`.
    pub fn paging(&mut self) -> Result<Paging, SearchError> {
        let number = |name: &str, v: Option<String>| -> Result<Option<u32>, SearchError> {
            v.map(|v| {
                v.parse::<u32>()
                    .map_err(|_| invalid(name, "give a whole number"))
            })
            .transpose()
        };
        let count = number("_count", self.take_one("_count")?)?.unwrap_or(DEFAULT_COUNT);
        let offset = number("_offset", self.take_one("_offset")?)?.unwrap_or(0);
        Ok(Paging {
            count: count.min(MAX_COUNT),
            offset,
        })
    }

    /// `_sort`, restricted to `allowed` parameters.
    pub fn sort(&mut self, allowed: &[&str]) -> Result<Vec<SortKey>, SearchError> {
        let Some(v) = self.take_one("_sort")? else {
            return Ok(Vec::new());
        };
        v.split(',')
            .map(|k| {
                let (param, descending) = match k.strip_prefix('-') {
                    Some(p) => (p, true),
                    None => (k, false),
                };
                if allowed.contains(&param) {
                    Ok(SortKey {
                        param: param.to_owned(),
                        descending,
                    })
                } else {
                    Err(invalid(
                        "_sort",
                        format!("sorting by `{param}` is not supported; use one of {allowed:?}"),
                    ))
                }
            })
            .collect()
    }

    /// Consumes `_format` (JSON is all the node speaks; asking for XML is an error).
    pub fn format(&mut self) -> Result<(), SearchError> {
        match self.take_one("_format")?.as_deref() {
            None | Some("json" | "application/json" | "application/fhir+json") => Ok(()),
            Some(other) => Err(invalid(
                "_format",
                format!("`{other}` is not served; the node speaks application/fhir+json"),
            )),
        }
    }

    /// Fails on the first parameter no one took.
    pub fn finish(self) -> Result<(), SearchError> {
        match self.items.iter().zip(&self.used).find(|(_, used)| !**used) {
            Some(((name, _), _)) => Err(SearchError::Unsupported(name.clone())),
            None => Ok(()),
        }
    }

    /// Every pair, for the links of the bundle's pages.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.items
    }
}

/// The id in a reference parameter: `Type/id` or a bare id.
pub fn reference_id<T: std::str::FromStr>(
    name: &str,
    value: &str,
    resource_type: &str,
) -> Result<T, SearchError> {
    let id = match value.split_once('/') {
        Some((t, id)) if t == resource_type => id,
        Some((t, _)) => {
            return Err(invalid(
                name,
                format!("expects a {resource_type} reference, not a {t}"),
            ));
        }
        None => value,
    };
    id.parse()
        .map_err(|_| invalid(name, format!("`{value}` is not a {resource_type} id")))
}

/// A token: `system|code`, `|code` (no system) or `code` (any system).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The system, if given (empty: none).
    pub system: Option<String>,
    /// The code.
    pub code: String,
}

/// Reads a token.
pub fn token(value: &str) -> Token {
    match value.split_once('|') {
        Some((s, c)) => Token {
            system: Some(s.to_owned()),
            code: c.to_owned(),
        },
        None => Token {
            system: None,
            code: value.to_owned(),
        },
    }
}

/// A span of time, `from` included and `to` not; either may be open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeRange {
    /// The first instant in the span.
    pub from: Option<DateTime<Utc>>,
    /// The first instant after it.
    pub to: Option<DateTime<Utc>>,
}

impl TimeRange {
    /// The part of `self` inside `other`.
    pub fn and(self, other: Self) -> Self {
        Self {
            from: match (self.from, other.from) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            },
            to: match (self.to, other.to) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        }
    }

    /// Whether `t` is inside.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.from.is_none_or(|f| t >= f) && self.to.is_none_or(|e| t < e)
    }

    /// Whether the span is open at both ends.
    pub fn is_open(&self) -> bool {
        self.from.is_none() && self.to.is_none()
    }
}

/// The span a date or dateTime value names at its precision: `2026` is the whole year,
/// `2026-12-06` the day (in `zone`), `2026-12-06T10:00:00+01:00` that second.
fn value_span(
    name: &str,
    value: &str,
    zone: Tz,
) -> Result<(DateTime<Utc>, DateTime<Utc>), SearchError> {
    let bad = || {
        invalid(
            name,
            format!(
                "`{value}` is not a FHIR date or dateTime (YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss with a zone)"
            ),
        )
    };
    let local = |d: NaiveDateTime| {
        zone.from_local_datetime(&d)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(bad)
    };
    let day_start = |d: NaiveDate| local(d.and_time(NaiveTime::MIN));
    if value.contains('T') {
        let t = DateTime::parse_from_rfc3339(value).map_err(|_| bad())?;
        let t = t.with_timezone(&Utc);
        let precise_to_ms = value.contains('.');
        let step = if precise_to_ms {
            Duration::milliseconds(1)
        } else {
            Duration::seconds(1)
        };
        return Ok((t, t + step));
    }
    let parts: Vec<&str> = value.split('-').collect();
    let num = |s: &str, len: usize| {
        (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u32>().ok())
            .flatten()
            .ok_or_else(bad)
    };
    let (start, end) = match parts.as_slice() {
        [y] => {
            let y = num(y, 4)? as i32;
            (
                NaiveDate::from_ymd_opt(y, 1, 1).ok_or_else(bad)?,
                NaiveDate::from_ymd_opt(y + 1, 1, 1).ok_or_else(bad)?,
            )
        }
        [y, m] => {
            let (y, m) = (num(y, 4)? as i32, num(m, 2)?);
            let start = NaiveDate::from_ymd_opt(y, m, 1).ok_or_else(bad)?;
            let end = if m == 12 {
                NaiveDate::from_ymd_opt(y + 1, 1, 1)
            } else {
                NaiveDate::from_ymd_opt(y, m + 1, 1)
            }
            .ok_or_else(bad)?;
            (start, end)
        }
        [y, m, d] => {
            let start = NaiveDate::from_ymd_opt(num(y, 4)? as i32, num(m, 2)?, num(d, 2)?)
                .ok_or_else(bad)?;
            (start, start.succ_opt().ok_or_else(bad)?)
        }
        _ => return Err(bad()),
    };
    Ok((day_start(start)?, day_start(end)?))
}

/// A date parameter with its prefix (`eq`, `gt`, `ge`, `lt`, `le`; none is `eq`) as the span
/// of instants it admits, for a value that is a point in time (an appointment's start, a
/// change's time).
pub fn date_param(name: &str, value: &str, zone: Tz) -> Result<TimeRange, SearchError> {
    let (prefix, rest) =
        if value.len() > 2 && value.as_bytes()[..2].iter().all(u8::is_ascii_alphabetic) {
            value.split_at(2)
        } else {
            ("eq", value)
        };
    let (lo, hi) = value_span(name, rest, zone)?;
    Ok(match prefix {
        "eq" => TimeRange {
            from: Some(lo),
            to: Some(hi),
        },
        "ge" => TimeRange {
            from: Some(lo),
            to: None,
        },
        "gt" => TimeRange {
            from: Some(hi),
            to: None,
        },
        "lt" => TimeRange {
            from: None,
            to: Some(lo),
        },
        "le" => TimeRange {
            from: None,
            to: Some(hi),
        },
        other => {
            return Err(invalid(
                name,
                format!("the prefix `{other}` is not supported; use eq, gt, ge, lt or le"),
            ));
        }
    })
}

/// Every value of a date parameter, each a bound, together (FHIR: repeats are AND).
pub fn date_params(
    params: &mut SearchParams,
    name: &str,
    zone: Tz,
) -> Result<TimeRange, SearchError> {
    params
        .take(name)
        .iter()
        .try_fold(TimeRange::default(), |acc, v| {
            Ok(acc.and(date_param(name, v, zone)?))
        })
}

/// A span of calendar dates, `from` included and `to` not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DateRange {
    /// The first date.
    pub from: Option<NaiveDate>,
    /// The first date after.
    pub to: Option<NaiveDate>,
}

/// A date parameter for a calendar date (a birth date), with its prefix. A value with a time
/// is refused: a birth date has none.
pub fn calendar_date_params(
    params: &mut SearchParams,
    name: &str,
) -> Result<DateRange, SearchError> {
    let mut out = DateRange::default();
    for v in params.take(name) {
        if v.contains('T') {
            return Err(invalid(name, "give a date without a time"));
        }
        // Calendar dates are compared as dates: any zone gives the same days.
        let r = date_param(name, &v, Tz::UTC)?;
        let day = |t: DateTime<Utc>| t.date_naive();
        let r = DateRange {
            from: r.from.map(day),
            to: r.to.map(day),
        };
        out = DateRange {
            from: match (out.from, r.from) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            },
            to: match (out.to, r.to) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        };
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests panic on the unexpected")]
    use super::*;

    fn params(q: &[(&str, &str)]) -> SearchParams {
        SearchParams::new(q.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())))
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_day_is_the_whole_day_in_the_nodes_zone() {
        let r = date_param("date", "2026-12-06", chrono_tz::Europe::Amsterdam).unwrap();
        assert_eq!(r.from, Some(utc("2026-12-05T23:00:00Z")));
        assert_eq!(r.to, Some(utc("2026-12-06T23:00:00Z")));
    }

    #[test]
    fn prefixes_bound_the_span_on_the_right_side() {
        let z = Tz::UTC;
        let ge = date_param("date", "ge2026-12", z).unwrap();
        assert_eq!((ge.from, ge.to), (Some(utc("2026-12-01T00:00:00Z")), None));
        let gt = date_param("date", "gt2026-12", z).unwrap();
        assert_eq!(gt.from, Some(utc("2027-01-01T00:00:00Z")));
        let lt = date_param("date", "lt2026", z).unwrap();
        assert_eq!((lt.from, lt.to), (None, Some(utc("2026-01-01T00:00:00Z"))));
        let le = date_param("date", "le2026-12-06T10:00:00+01:00", z).unwrap();
        assert_eq!(le.to, Some(utc("2026-12-06T09:00:01Z")));
        assert!(date_param("date", "ne2026", z).is_err());
        assert!(date_param("date", "2026-13", z).is_err());
        assert!(
            date_param("date", "2026-12-06T10:00:00", z).is_err(),
            "a dateTime needs its zone"
        );
    }

    #[test]
    fn repeated_bounds_intersect() {
        let mut p = params(&[("date", "ge2026-12-01"), ("date", "lt2026-12-08")]);
        let r = date_params(&mut p, "date", Tz::UTC).unwrap();
        assert_eq!(r.from, Some(utc("2026-12-01T00:00:00Z")));
        assert_eq!(r.to, Some(utc("2026-12-08T00:00:00Z")));
        assert!(r.contains(utc("2026-12-07T23:59:59Z")));
        assert!(!r.contains(utc("2026-12-08T00:00:00Z")));
    }

    #[test]
    fn a_parameter_nobody_took_is_refused() {
        let mut p = params(&[("name", "smi"), ("colour", "blue")]);
        assert_eq!(p.take_one("name").unwrap().as_deref(), Some("smi"));
        assert_eq!(
            p.finish().unwrap_err(),
            SearchError::Unsupported("colour".into())
        );
    }

    #[test]
    fn paging_is_capped_and_sort_keys_checked() {
        let mut p = params(&[("_count", "5000"), ("_sort", "-date,family")]);
        assert_eq!(p.paging().unwrap().count, MAX_COUNT);
        assert!(p.sort(&["date"]).is_err());
        let mut p = params(&[("_sort", "-date")]);
        assert_eq!(
            p.sort(&["date"]).unwrap(),
            vec![SortKey {
                param: "date".into(),
                descending: true
            }]
        );
        let mut p = params(&[("_count", "ten")]);
        assert!(p.paging().is_err());
    }

    #[test]
    fn references_and_tokens_read_both_forms() {
        let id: uuid::Uuid = reference_id(
            "patient",
            "Patient/8d1c1f7e-6e0e-4f0a-9c1e-2b1d2c3e4f50",
            "Patient",
        )
        .unwrap();
        assert_eq!(id.to_string(), "8d1c1f7e-6e0e-4f0a-9c1e-2b1d2c3e4f50");
        assert!(reference_id::<uuid::Uuid>("patient", "Practitioner/x", "Patient").is_err());
        assert_eq!(token("a|b").system.as_deref(), Some("a"));
        assert_eq!(token("b").system, None);
    }

    #[test]
    fn birth_dates_compare_as_dates() {
        let mut p = params(&[("birthdate", "ge1980-05"), ("birthdate", "le1980-05-10")]);
        let r = calendar_date_params(&mut p, "birthdate").unwrap();
        assert_eq!(r.from, NaiveDate::from_ymd_opt(1980, 5, 1));
        assert_eq!(r.to, NaiveDate::from_ymd_opt(1980, 5, 11));
        let mut p = params(&[("birthdate", "1980-05-10T00:00:00Z")]);
        assert!(calendar_date_params(&mut p, "birthdate").is_err());
    }
}

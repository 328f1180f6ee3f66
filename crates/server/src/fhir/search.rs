//! Read and search for every resource type served. A read is a search by `_id` that must find
//! one; both go through the same visibility check and the same store query.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use carebridge_fhir::capability;
use carebridge_fhir::map::{self, Names};
use carebridge_fhir::resources::Bundle;
use carebridge_fhir::search::{
    Paging, SearchParams, TimeRange, calendar_date_params, date_params, reference_id, token,
};
use carebridge_fhir::{OperationOutcome, Resource, system};
use carebridge_protocol::appointment::AppointmentStatus;
use carebridge_protocol::audit::AuditQuery;
use carebridge_protocol::imaging::ImagingStudyId;
use carebridge_protocol::practitioner::{Practitioner, Role};
use carebridge_protocol::report::{Report, ReportRevision, ReportStatus};
use carebridge_protocol::{PatientId, PractitionerId, ReportId};

use super::{FhirError, base_url, fhir_json};
use crate::api::extract::Caller;
use crate::error::ApiError;
use crate::events::Viewer;
use crate::node::Node;
use crate::store::appointments::{self, AppointmentFilter, AppointmentSort};
use crate::store::federation::{access, consents};
use crate::store::imaging;
use crate::store::patients::{self, PatientFilter, PatientSort};
use crate::store::reports::{self, ReportFilter, ReportSort};
use crate::store::search::{Page, Span};
use crate::store::{Tx, audit, practitioners, schedules};
use crate::visibility::{self, RecordKind};

/// The most reports one page carries: each signed one carries its PDF.
const MAX_REPORTS_PER_PAGE: u32 = 100;

/// The most slots one search spans.
const MAX_SLOT_DAYS: i64 = 31;

/// The most audit entries reachable by paging (`_offset` + `_count`); narrow by date beyond.
const MAX_AUDIT_DEPTH: u32 = 1000;

/// What one search found: the page's matches, what `_include` added, the total.
pub(super) struct Found {
    pub total: u64,
    pub matches: Vec<Resource>,
    pub included: Vec<Resource>,
}

impl Found {
    /// Nothing: a search whose parameters can match no record.
    fn none() -> Self {
        Self {
            total: 0,
            matches: Vec::new(),
            included: Vec::new(),
        }
    }
}

/// One request: who asks, through which URL, with which parameters.
pub(super) struct Ask {
    pub node: Arc<Node>,
    pub caller: Caller,
    pub params: SearchParams,
    /// A read of one resource (audited as a read, 404 when not found).
    pub read: bool,
}

impl Ask {
    fn zone(&self) -> chrono_tz::Tz {
        self.node.tz
    }

    /// Refuses a caller who may see no record of `kind`, and audits the refusal.
    async fn require(&self, kind: RecordKind, action: &str) -> Result<(), FhirError> {
        let may = self.caller.may_see(kind);
        self.caller
            .audit_refusal(&self.node, may, action, "")
            .await
            .map_err(FhirError::from)
    }
}

/// Refuses kiosks: they read a patient only through identification, never through FHIR.
async fn staff_only(node: &Node, caller: &Caller, resource_type: &str) -> Result<(), FhirError> {
    let check = match caller.viewer {
        Viewer::Staff { .. } => Ok(()),
        Viewer::Kiosk { .. } => Err(ApiError::forbidden("a kiosk may not use the FHIR API")),
    };
    caller
        .audit_refusal(node, check, "fhir.read", resource_type)
        .await
        .map_err(FhirError::from)
}

fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| {
        form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    })
    .unwrap_or_default()
}

/// `GET /fhir/R4/{type}?…`: one page of matches as a searchset Bundle.
pub(super) async fn search(
    State(node): State<Arc<Node>>,
    caller: Caller,
    headers: HeaderMap,
    Path(resource_type): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, FhirError> {
    let base = base_url(&node, &headers);
    let served = known_type(&resource_type)?;
    staff_only(&node, &caller, served.resource_type).await?;
    let pairs = query_pairs(raw.as_deref());
    let mut params = SearchParams::new(pairs);
    params.format()?;
    let mut paging = params.paging()?;
    if resource_type == "DiagnosticReport" {
        paging.count = paging.count.min(MAX_REPORTS_PER_PAGE);
    }
    let link_params = params.pairs().to_vec();
    let mut ask = Ask {
        node,
        caller,
        params,
        read: false,
    };
    let found = run(&resource_type, &mut ask, &paging).await?;
    let mut bundle: Bundle = carebridge_fhir::bundle::searchset(
        &base,
        &resource_type,
        &link_params,
        &paging,
        found.total,
        found.matches,
        found.included,
    );
    // The audit trail pages back only so far: no link to a page the node would refuse.
    if resource_type == "AuditEvent"
        && paging.offset.saturating_add(paging.count.saturating_mul(2)) > MAX_AUDIT_DEPTH
    {
        bundle.link.retain(|l| l.relation != "next");
    }
    Ok(fhir_json(StatusCode::OK, &Resource::Bundle(bundle)))
}

/// `GET /fhir/R4/{type}/{id}`: one resource, or a 404 OperationOutcome.
pub(super) async fn read(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path((resource_type, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, FhirError> {
    let served = known_type(&resource_type)?;
    staff_only(&node, &caller, served.resource_type).await?;
    let mut pairs: Vec<(String, String)> = query_pairs(raw.as_deref());
    if pairs.iter().any(|(k, _)| k != "_format") {
        return Err(FhirError::invalid(
            "a read takes no search parameters; search with GET /fhir/R4/{type}?…",
        ));
    }
    pairs.push(("_id".into(), id.clone()));
    let mut params = SearchParams::new(pairs);
    params.format()?;
    let mut ask = Ask {
        node,
        caller,
        params,
        read: true,
    };
    let found = run(
        &resource_type,
        &mut ask,
        &Paging {
            count: 1,
            offset: 0,
        },
    )
    .await?;
    let Some(resource) = found.matches.into_iter().next() else {
        return Err(FhirError::Outcome(
            StatusCode::NOT_FOUND,
            OperationOutcome::error(
                "not-found",
                format!("no {resource_type} with id {id} that you may see"),
            ),
        ));
    };
    let version = version_of(&resource);
    let mut res = fhir_json(StatusCode::OK, &resource);
    if let Some(v) = version.and_then(|v| HeaderValue::from_str(&format!("W/\"{v}\"")).ok()) {
        res.headers_mut().insert(header::ETAG, v);
    }
    Ok(res)
}

fn version_of(r: &Resource) -> Option<String> {
    let meta = match r {
        Resource::Patient(x) => x.meta.as_ref(),
        Resource::Practitioner(x) => x.meta.as_ref(),
        Resource::PractitionerRole(x) => x.meta.as_ref(),
        Resource::Schedule(x) => x.meta.as_ref(),
        Resource::Appointment(x) => x.meta.as_ref(),
        Resource::DiagnosticReport(x) => x.meta.as_ref(),
        _ => None,
    };
    meta.and_then(|m| m.version_id.clone())
}

fn known_type(resource_type: &str) -> Result<&'static capability::Served, FhirError> {
    capability::served(resource_type).ok_or_else(|| {
        FhirError::Outcome(
            StatusCode::NOT_FOUND,
            OperationOutcome::error(
                "not-supported",
                format!("the node does not serve {resource_type}; see /fhir/R4/metadata"),
            ),
        )
    })
}

async fn run(resource_type: &str, ask: &mut Ask, paging: &Paging) -> Result<Found, FhirError> {
    let found = match resource_type {
        "Patient" => patients(ask, paging).await?,
        "Practitioner" => staff_accounts(ask, paging, false).await?,
        "PractitionerRole" => staff_accounts(ask, paging, true).await?,
        "Schedule" => schedules_of_doctors(ask, paging).await?,
        "Slot" => slots(ask, paging).await?,
        "Appointment" => appointments_found(ask, paging).await?,
        "DiagnosticReport" => diagnostic_reports(ask, paging).await?,
        "Consent" => consents_found(ask, paging).await?,
        "ImagingStudy" => imaging_studies_found(ask, paging).await?,
        "AuditEvent" => audit_events(ask, paging).await?,
        "Provenance" => provenances(ask, paging).await?,
        other => {
            return Err(known_type(other)
                .err()
                .unwrap_or_else(|| FhirError::invalid("unknown type")));
        }
    };
    Ok(found)
}

/// The ids among `values` that parse (an id that is not a UUID names no record: it matches
/// nothing rather than failing, as a read of an unknown id does).
fn ids<T: std::str::FromStr>(values: &[String]) -> Vec<T> {
    values.iter().filter_map(|v| v.parse().ok()).collect()
}

fn id_param<T: std::str::FromStr>(p: &mut SearchParams) -> Result<Option<Vec<T>>, FhirError> {
    let v = p.take_any_of("_id")?;
    Ok((!v.is_empty()).then(|| ids(&v)))
}

/// The local UUID of a global id `uuid@node` that is this node's.
fn local_of_global<T: std::str::FromStr>(value: &str, node: &str) -> Option<T> {
    let (id, at) = value.split_once('@')?;
    (at == node).then(|| id.parse().ok()).flatten()
}

/// What an identifier search names: ids (by global id) and local identifiers.
type Identified<T> = (Vec<T>, Vec<String>);

/// An identifier search: the ids named by global id, and the other values (card numbers,
/// booking references) of `local_system`.
fn identifier_param<T: std::str::FromStr>(
    p: &mut SearchParams,
    node: &str,
    local_system: Option<&str>,
) -> Result<Option<Identified<T>>, FhirError> {
    let values = p.take_any_of("identifier")?;
    if values.is_empty() {
        return Ok(None);
    }
    let (mut by_id, mut local) = (Vec::new(), Vec::new());
    for v in values {
        let t = token(&v);
        match t.system.as_deref() {
            Some(s) if s == system::GLOBAL_ID => by_id.extend(local_of_global(&t.code, node)),
            Some(s) if Some(s) == local_system => local.push(t.code),
            Some(_) => {}
            None if t.code.contains('@') => by_id.extend(local_of_global(&t.code, node)),
            None if local_system.is_some() => local.push(t.code),
            None => {}
        }
    }
    Ok(Some((by_id, local)))
}

fn span(r: TimeRange) -> Span {
    Span {
        from: r.from,
        to: r.to,
    }
}

fn page(p: &Paging) -> Page {
    Page {
        offset: p.offset,
        count: p.count,
    }
}

fn one_reference<T: std::str::FromStr>(
    p: &mut SearchParams,
    name: &str,
    resource_type: &str,
) -> Result<Option<T>, FhirError> {
    p.take_one(name)?
        .map(|v| reference_id(name, &v, resource_type).map_err(FhirError::from))
        .transpose()
}

fn includes(p: &mut SearchParams, resource_type: &str) -> Result<BTreeSet<String>, FhirError> {
    let allowed = capability::served(resource_type).map_or(&[][..], |s| s.includes);
    let mut out = BTreeSet::new();
    for v in p.take("_include") {
        if !allowed.contains(&v.as_str()) {
            return Err(FhirError::invalid(format!(
                "`_include={v}` is not supported; use one of {allowed:?}"
            )));
        }
        out.insert(v);
    }
    Ok(out)
}

/// Refuses whatever parameter the search did not take.
fn done(p: &mut SearchParams) -> Result<(), FhirError> {
    Ok(std::mem::replace(p, SearchParams::new([])).finish()?)
}

/// `_sort` over `allowed`, each key as `key` names it.
fn sort_by<K>(
    p: &mut SearchParams,
    allowed: &[&str],
    key: impl Fn(&str) -> K,
) -> Result<Vec<(K, bool)>, FhirError> {
    Ok(p.sort(allowed)?
        .into_iter()
        .map(|k| (key(&k.param), k.descending))
        .collect())
}

/// A slice of an in-memory list, for the small kinds that are filtered in memory.
fn paged<T>(all: Vec<T>, paging: &Paging) -> (u64, Vec<T>) {
    let total = all.len() as u64;
    let items = all
        .into_iter()
        .skip(paging.offset as usize)
        .take(paging.count as usize)
        .collect();
    (total, items)
}

fn action(ask: &Ask, family: &str, search_verb: &str) -> String {
    format!("{family}.{}", if ask.read { "read" } else { search_verb })
}

async fn patients(ask: &mut Ask, paging: &Paging) -> Result<Found, FhirError> {
    let act = action(ask, "patient", "search");
    ask.require(RecordKind::Patient, &act).await?;
    let node_name = ask.node.name().to_owned();
    let p = &mut ask.params;
    let birth = calendar_date_params(p, "birthdate")?;
    let filter = PatientFilter {
        ids: id_param(p)?,
        identifier: identifier_param(p, &node_name, Some(&system::card_number(&node_name)))?,
        name: p.take_one("name")?,
        family: p.take_one("family")?,
        given: p.take_one("given")?,
        born_from: birth.from,
        born_before: birth.to,
        updated: span(date_params(p, "_lastUpdated", ask.node.tz)?),
    };
    let allowed = capability::served("Patient").map_or(&[][..], |s| s.sorts);
    let sort = sort_by(p, allowed, |k| match k {
        "family" => PatientSort::Family,
        "given" => PatientSort::Given,
        "birthdate" => PatientSort::BirthDate,
        _ => PatientSort::LastUpdated,
    })?;
    done(p)?;
    let pg = page(paging);
    let entity = entity_of_read(ask, "patient", &filter.ids);
    let found = ask
        .node
        .store
        .write(Some(ask.caller.audit(&act, entity)), move |ctx| {
            let found = patients::find(ctx, &filter, &sort, pg, &node_name)?;
            ctx.set_detail(format!("FHIR: {} found", found.total));
            Ok::<_, ApiError>((found, node_name))
        })
        .await?;
    let (found, node_name) = found;
    Ok(Found {
        total: found.total,
        matches: found
            .items
            .iter()
            .map(|x| Resource::Patient(map::patient(x, &node_name)))
            .collect(),
        included: Vec::new(),
    })
}

/// The audited entity of a read (`patient/<id>`), empty for a search.
fn entity_of_read<T: std::fmt::Display>(ask: &Ask, family: &str, ids: &Option<Vec<T>>) -> String {
    match (ask.read, ids.as_deref()) {
        (true, Some([id])) => format!("{family}/{id}"),
        _ => String::new(),
    }
}

fn bool_param(p: &mut SearchParams, name: &str) -> Result<Option<bool>, FhirError> {
    match p.take_one(name)?.as_deref() {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(other) => Err(FhirError::invalid(format!(
            "`{name}`: `{other}` is neither true nor false"
        ))),
    }
}

/// Practitioner and PractitionerRole: every staff account, filtered in memory (a node has
/// hundreds, not millions).
async fn staff_accounts(ask: &mut Ask, paging: &Paging, roles: bool) -> Result<Found, FhirError> {
    let resource_type = if roles {
        "PractitionerRole"
    } else {
        "Practitioner"
    };
    ask.require(RecordKind::Practitioner, "practitioner.list")
        .await?;
    let node_name = ask.node.name().to_owned();
    let p = &mut ask.params;
    let wanted: Option<Vec<PractitionerId>> = id_param(p)?;
    let active = bool_param(p, "active")?;
    let (identifier, name, who, role, include) = if roles {
        let who: Option<PractitionerId> = one_reference(p, "practitioner", "Practitioner")?;
        let role = p.take_any_of("role")?;
        (None, None, who, role, includes(p, resource_type)?)
    } else {
        let identifier: Option<Identified<PractitionerId>> = identifier_param(p, &node_name, None)?;
        let name = p.take_one("name")?.map(|n| n.to_lowercase());
        (identifier, name, None, Vec::new(), BTreeSet::new())
    };
    done(p)?;
    let only_doctors = visibility::sees_only_doctors(&ask.caller.viewer);
    let (all, hours) = ask
        .node
        .store
        .read(move |tx| {
            let all = practitioners::list(tx, only_doctors.then_some(Role::Doctor))?;
            let mut hours = HashMap::new();
            if roles {
                for d in all.iter().filter(|d| d.role == Role::Doctor) {
                    if let Some(s) = schedules::get(tx, d.id)? {
                        hours.insert(d.id, s);
                    }
                }
            }
            Ok::<_, ApiError>((all, hours))
        })
        .await?;
    let matching: Vec<Practitioner> = all
        .into_iter()
        .filter(|x| wanted.as_ref().is_none_or(|w| w.contains(&x.id)))
        .filter(|x| active.is_none_or(|a| a != x.disabled))
        .filter(|x| {
            identifier
                .as_ref()
                .is_none_or(|(ids, _)| ids.contains(&x.id))
        })
        .filter(|x| {
            name.as_ref().is_none_or(|n| {
                x.display_name
                    .to_lowercase()
                    .split_whitespace()
                    .any(|w| w.starts_with(n.as_str()))
            })
        })
        .filter(|x| who.is_none_or(|w| w == x.id))
        .filter(|x| role.is_empty() || role.iter().any(|r| r == x.role.as_str()))
        .map(|x| visibility::practitioner_as_seen(&ask.caller.viewer, x))
        .collect();
    let (total, items) = paged(matching, paging);
    let mut included = Vec::new();
    let matches = items
        .iter()
        .map(|x| {
            if roles {
                if !include.is_empty() {
                    included.push(Resource::Practitioner(map::practitioner(x, &node_name)));
                }
                Resource::PractitionerRole(map::practitioner_role(x, hours.get(&x.id)))
            } else {
                Resource::Practitioner(map::practitioner(x, &node_name))
            }
        })
        .collect();
    Ok(Found {
        total,
        matches,
        included,
    })
}

async fn schedules_of_doctors(ask: &mut Ask, paging: &Paging) -> Result<Found, FhirError> {
    ask.require(RecordKind::Schedule, "schedule.read").await?;
    let node_name = ask.node.name().to_owned();
    let zone = ask.zone().name().to_owned();
    let p = &mut ask.params;
    let wanted: Option<Vec<PractitionerId>> = id_param(p)?;
    let actor: Option<PractitionerId> = one_reference(p, "actor", "Practitioner")?;
    let active = bool_param(p, "active")?;
    let include = includes(p, "Schedule")?;
    done(p)?;
    let list = ask
        .node
        .store
        .read(move |tx| {
            let mut out = Vec::new();
            for d in practitioners::list(tx, Some(Role::Doctor))? {
                if let Some(s) = schedules::get(tx, d.id)? {
                    out.push((d, s));
                }
            }
            Ok::<_, ApiError>(out)
        })
        .await?;
    let matching: Vec<_> = list
        .into_iter()
        .filter(|(d, _)| wanted.as_ref().is_none_or(|w| w.contains(&d.id)))
        .filter(|(d, _)| actor.is_none_or(|a| a == d.id))
        .map(|(d, s)| {
            let r = map::schedule(&s, &d, &zone);
            (d, r)
        })
        .filter(|(_, r)| active.is_none_or(|a| r.active == Some(a)))
        .collect();
    let (total, items) = paged(matching, paging);
    let mut included = Vec::new();
    let matches = items
        .into_iter()
        .map(|(d, r)| {
            if !include.is_empty() {
                included.push(Resource::Practitioner(map::practitioner(&d, &node_name)));
            }
            Resource::Schedule(r)
        })
        .collect();
    Ok(Found {
        total,
        matches,
        included,
    })
}

/// Slots are computed from a schedule, absences and bookings over a span of days, so a search
/// names the schedule and bounds the span; a read names both in the slot's id.
async fn slots(ask: &mut Ask, paging: &Paging) -> Result<Found, FhirError> {
    ask.require(RecordKind::Schedule, "schedule.read").await?;
    let tz = ask.zone();
    let p = &mut ask.params;
    let id = p.take_one("_id")?;
    let (doctor, range) = match id {
        Some(id) => {
            // `{uuid}-{yyyymmddhhmm}`: a UUID is 36 characters.
            let parsed = (id.is_ascii() && id.len() == 36 + 1 + 12)
                .then(|| {
                    let (u, rest) = id.split_at(36);
                    let at =
                        chrono::NaiveDateTime::parse_from_str(&rest[1..], "%Y%m%d%H%M").ok()?;
                    Some((u.parse::<PractitionerId>().ok()?, at.and_utc()))
                })
                .flatten();
            let Some((doctor, at)) = parsed else {
                return Ok(Found::none());
            };
            (
                doctor,
                TimeRange {
                    from: Some(at),
                    to: Some(at + chrono::Duration::minutes(1)),
                },
            )
        }
        None => {
            let doctor: Option<PractitionerId> = one_reference(p, "schedule", "Schedule")?;
            let Some(doctor) = doctor else {
                return Err(FhirError::invalid("a Slot search needs `schedule`"));
            };
            let range = date_params(p, "start", tz)?;
            let (Some(from), Some(to)) = (range.from, range.to) else {
                return Err(FhirError::invalid(
                    "a Slot search needs `start` bounded on both sides, e.g. start=ge2026-12-07&start=lt2026-12-14",
                ));
            };
            if to - from > chrono::Duration::days(MAX_SLOT_DAYS) {
                return Err(FhirError::invalid(format!(
                    "a Slot search spans at most {MAX_SLOT_DAYS} days"
                )));
            }
            (doctor, range)
        }
    };
    let statuses = p.take_any_of("status")?;
    done(p)?;
    let (Some(from), Some(to)) = (range.from, range.to) else {
        return Err(FhirError::invalid("a Slot search needs a bounded `start`"));
    };
    let (first, last) = (
        crate::schedule::local_date(tz, from),
        crate::schedule::local_date(tz, to),
    );
    let all = ask
        .node
        .store
        .read(move |tx| {
            let Some(s) = schedules::get(tx, doctor)? else {
                return Ok(Vec::new());
            };
            crate::schedule::slots(tx, tz, &s, first, last).map_err(ApiError::from)
        })
        .await?;
    let matching: Vec<_> = all
        .iter()
        .map(map::slot)
        .filter(|s| {
            let start = s
                .start
                .as_deref()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&chrono::Utc));
            start.is_some_and(|t| range.contains(t))
        })
        .filter(|s| statuses.is_empty() || statuses.iter().any(|x| Some(x) == s.status.as_ref()))
        .map(Resource::Slot)
        .collect();
    let (total, matches) = paged(matching, paging);
    Ok(Found {
        total,
        matches,
        included: Vec::new(),
    })
}

fn statuses<T>(
    values: Vec<String>,
    parse: impl Fn(&str) -> Option<T>,
    name: &str,
) -> Result<Option<Vec<T>>, FhirError> {
    if values.is_empty() {
        return Ok(None);
    }
    values
        .iter()
        .map(|v| {
            parse(v)
                .ok_or_else(|| FhirError::invalid(format!("`{name}`: `{v}` is not a status here")))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

async fn appointments_found(ask: &mut Ask, paging: &Paging) -> Result<Found, FhirError> {
    let act = action(ask, "appointment", "list");
    let scope = visibility::appointment_scope(&ask.caller.viewer);
    let may = scope.ok_or_else(|| ApiError::forbidden("this role may not read appointments"));
    let scope = ask.caller.audit_refusal(&ask.node, may, &act, "").await?;
    let node_name = ask.node.name().to_owned();
    let tz = ask.zone();
    let p = &mut ask.params;
    let actor = p.take_one("actor")?;
    let participant = actor
        .map(|a| {
            let id = a.split_once('/').map_or(a.as_str(), |(t, id)| {
                if t == "Patient" || t == "Practitioner" {
                    id
                } else {
                    ""
                }
            });
            id.parse::<uuid::Uuid>().map_err(|_| {
                FhirError::invalid(format!(
                    "`actor`: `{a}` is not a Patient or Practitioner reference"
                ))
            })
        })
        .transpose()?;
    let filter = AppointmentFilter {
        ids: id_param(p)?,
        identifier: identifier_param(
            p,
            &node_name,
            Some(&system::appointment_reference(&node_name)),
        )?,
        patient: one_reference(p, "patient", "Patient")?,
        practitioner: one_reference(p, "practitioner", "Practitioner")?,
        participant,
        start: span(date_params(p, "date", tz)?),
        statuses: statuses(p.take_any_of("status")?, AppointmentStatus::parse, "status")?,
        updated: span(date_params(p, "_lastUpdated", tz)?),
    };
    let sort = sort_by(p, &["date", "_lastUpdated"], |k| match k {
        "date" => AppointmentSort::Start,
        _ => AppointmentSort::LastUpdated,
    })?;
    let include = includes(p, "Appointment")?;
    done(p)?;
    let with_patients =
        include.contains("Appointment:patient") || include.contains("Appointment:actor");
    let with_doctors =
        include.contains("Appointment:practitioner") || include.contains("Appointment:actor");
    let sees_patients = visibility::may_see_any(&ask.caller.viewer, RecordKind::Patient);
    let pg = page(paging);
    let entity = entity_of_read(ask, "appointment", &filter.ids);
    let (found, doctors, patients_seen) = ask
        .node
        .store
        .write(Some(ask.caller.audit(&act, entity)), move |ctx| {
            let found = appointments::find(ctx, &filter, scope, &sort, pg)?;
            let doctors = practitioners::list(ctx, None)?;
            let mut seen = Vec::new();
            if with_patients && sees_patients {
                let ids: BTreeSet<PatientId> = found.items.iter().map(|a| a.patient_id).collect();
                for id in ids {
                    seen.extend(patients::get(ctx, id, &node_name)?);
                }
            }
            ctx.set_detail(format!("FHIR: {} found", found.total));
            Ok::<_, ApiError>((found, doctors, seen))
        })
        .await?;
    let node_name = ask.node.name();
    let by_id: HashMap<PractitionerId, &Practitioner> = doctors.iter().map(|d| (d.id, d)).collect();
    let matches = found
        .items
        .iter()
        .map(|a| {
            let names = Names {
                patient: None,
                practitioner: by_id
                    .get(&a.practitioner_id)
                    .map(|d| d.display_name.as_str()),
            };
            Resource::Appointment(map::appointment(a, node_name, names))
        })
        .collect();
    let mut included: Vec<Resource> = patients_seen
        .iter()
        .map(|x| Resource::Patient(map::patient(x, node_name)))
        .collect();
    if with_doctors {
        let ids: BTreeSet<PractitionerId> = found.items.iter().map(|a| a.practitioner_id).collect();
        included.extend(
            ids.iter()
                .filter_map(|id| by_id.get(id))
                .map(|d| Resource::Practitioner(map::practitioner(d, node_name))),
        );
    }
    Ok(Found {
        total: found.total,
        matches,
        included,
    })
}

/// A signed report with what its PDF needs.
pub(super) type ToRender = (
    Report,
    Vec<ReportRevision>,
    carebridge_protocol::patient::Patient,
);

/// Reads what the PDFs of `reports` need (the signed ones), in the same transaction.
fn pdf_inputs(
    tx: &Tx<'_>,
    reports: &[Report],
    node: &str,
) -> Result<Vec<Option<ToRender>>, ApiError> {
    reports
        .iter()
        .map(|r| {
            if r.signature.is_none() {
                return Ok(None);
            }
            let revisions = reports::revisions(tx, r.id)?;
            let patient = patients::get(tx, r.patient_id, node)?
                .ok_or_else(|| ApiError::Internal(format!("report {} has no patient", r.id)))?;
            Ok(Some((r.clone(), revisions, patient)))
        })
        .collect()
}

/// Maps reports, rendering each signed one's PDF off the async threads.
pub(super) async fn reports_as_resources(
    node: &Arc<Node>,
    reports: Vec<Report>,
    inputs: Vec<Option<ToRender>>,
) -> Result<Vec<Resource>, FhirError> {
    let node = node.clone();
    tokio::task::spawn_blocking(move || {
        reports
            .iter()
            .zip(inputs)
            .map(|(r, input)| {
                let pdf = input
                    .map(|(rep, revs, patient)| {
                        crate::report_pdf::render(&node, &rep, &revs, &patient, None)
                    })
                    .transpose()?;
                Ok(Resource::DiagnosticReport(map::diagnostic_report(
                    r,
                    node.name(),
                    pdf.as_deref(),
                )))
            })
            .collect::<Result<Vec<_>, ApiError>>()
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .map_err(FhirError::from)
}

/// Reads the signed reports' PDF inputs for `$everything`.
pub(super) fn report_pdf_inputs(
    tx: &Tx<'_>,
    reports: &[Report],
    node: &str,
) -> Result<Vec<Option<ToRender>>, ApiError> {
    pdf_inputs(tx, reports, node)
}

async fn diagnostic_reports(ask: &mut Ask, paging: &Paging) -> Result<Found, FhirError> {
    let act = action(ask, "report", "list");
    ask.require(RecordKind::Report, &act).await?;
    let node_name = ask.node.name().to_owned();
    let tz = ask.zone();
    let p = &mut ask.params;
    let mut wanted: Option<Vec<ReportId>> = id_param(p)?;
    if let Some((by_global, _)) = identifier_param::<ReportId>(p, &node_name, None)? {
        wanted = Some(match wanted {
            Some(w) => w.into_iter().filter(|x| by_global.contains(x)).collect(),
            None => by_global,
        });
    }
    let patient: Option<PatientId> = one_reference(p, "patient", "Patient")?;
    let subject: Option<PatientId> = one_reference(p, "subject", "Patient")?;
    if patient.is_some() && subject.is_some() && patient != subject {
        return Ok(Found::none());
    }
    let filter = ReportFilter {
        ids: wanted,
        patient: patient.or(subject),
        author: one_reference(p, "performer", "Practitioner")?,
        statuses: statuses(p.take_any_of("status")?, ReportStatus::parse, "status")?,
        created: span(date_params(p, "date", tz)?),
        updated: span(date_params(p, "_lastUpdated", tz)?),
    };
    let sort = sort_by(p, &["date", "_lastUpdated"], |k| match k {
        "date" => ReportSort::Created,
        _ => ReportSort::LastUpdated,
    })?;
    let include = includes(p, "DiagnosticReport")?;
    done(p)?;
    let pg = page(paging);
    let entity = entity_of_read(ask, "report", &filter.ids);
    let (found, inputs, subjects) = ask
        .node
        .store
        .write(Some(ask.caller.audit(&act, entity)), move |ctx| {
            let found = reports::find(ctx, &filter, &sort, pg)?;
            let inputs = pdf_inputs(ctx, &found.items, &node_name)?;
            let mut subjects = Vec::new();
            if !include.is_empty() {
                let ids: BTreeSet<PatientId> = found.items.iter().map(|r| r.patient_id).collect();
                for id in ids {
                    subjects.extend(patients::get(ctx, id, &node_name)?);
                }
            }
            ctx.set_detail(format!("FHIR: {} found", found.total));
            Ok::<_, ApiError>((found, inputs, subjects))
        })
        .await?;
    let total = found.total;
    let matches = reports_as_resources(&ask.node, found.items, inputs).await?;
    let node_name = ask.node.name();
    Ok(Found {
        total,
        matches,
        included: subjects
            .iter()
            .map(|x| Resource::Patient(map::patient(x, node_name)))
            .collect(),
    })
}

async fn imaging_studies_found(ask: &mut Ask, paging: &Paging) -> Result<Found, FhirError> {
    let act = action(ask, "imaging", "list");
    ask.require(RecordKind::Imaging, &act).await?;
    let p = &mut ask.params;
    let wanted = p.take_any_of("_id")?;
    let patient: Option<PatientId> = one_reference(p, "patient", "Patient")?;
    done(p)?;
    if patient.is_none() && wanted.is_empty() {
        return Err(FhirError::invalid("an ImagingStudy search needs `patient`"));
    }
    // An id that is no study's matches nothing (as any unknown id).
    let ids: Vec<ImagingStudyId> = wanted.iter().filter_map(|i| i.parse().ok()).collect();
    let entity = patient.map(|x| format!("patient/{x}")).unwrap_or_default();
    let list = ask
        .node
        .store
        .write(Some(ask.caller.audit(&act, entity)), move |ctx| {
            let list = match patient {
                Some(p) => imaging::studies_of(ctx, p)?,
                None => {
                    let mut found = Vec::new();
                    for id in ids {
                        found.extend(imaging::study(ctx, id)?);
                    }
                    found
                }
            };
            ctx.set_detail(format!("FHIR: {} studies", list.len()));
            Ok::<_, ApiError>(list)
        })
        .await?;
    let name = ask.node.name();
    let matching: Vec<Resource> = list
        .iter()
        .filter(|s| wanted.is_empty() || wanted.contains(&s.study.id.to_string()))
        .filter_map(|s| map::imaging_study(&s.study, name))
        .map(Resource::ImagingStudy)
        .collect();
    let (total, matches) = paged(matching, paging);
    Ok(Found {
        total,
        matches,
        included: Vec::new(),
    })
}

/// Consents: a patient's consents to send reports to a peer (for those who see them: doctors),
/// and the grants of access to doctors at other hospitals (for the front desk and admins).
async fn consents_found(ask: &mut Ask, paging: &Paging) -> Result<Found, FhirError> {
    let act = action(ask, "consent", "list");
    let sees_sharing = ask.caller.may_see(RecordKind::Consent).is_ok();
    let sees_grants = ask.caller.may_see(RecordKind::IncomingAccess).is_ok();
    if !sees_grants {
        ask.require(RecordKind::Consent, &act).await?;
    }
    let p = &mut ask.params;
    let wanted = p.take_any_of("_id")?;
    let patient: Option<PatientId> = one_reference(p, "patient", "Patient")?;
    done(p)?;
    if patient.is_none() && wanted.is_empty() {
        return Err(FhirError::invalid("a Consent search needs `patient`"));
    }
    let entity = patient.map(|x| format!("patient/{x}")).unwrap_or_default();
    let grant_ids: Vec<uuid::Uuid> = wanted.iter().filter_map(|w| w.parse().ok()).collect();
    let node_name = ask.node.name().to_owned();
    let (list, grants, now) = ask
        .node
        .store
        .write(Some(ask.caller.audit(&act, entity)), move |ctx| {
            let list = match (sees_sharing, patient) {
                (false, _) => Vec::new(),
                (true, Some(p)) => consents::list(ctx, p)?,
                (true, None) => consents::all(ctx)?,
            };
            let mut grants = Vec::new();
            if sees_grants {
                let requests = match patient {
                    Some(p) => access::requests_for_patient(ctx, p, false)?,
                    None => {
                        let mut found = Vec::new();
                        for id in &grant_ids {
                            if let Some(g) = access::grant(ctx, *id)? {
                                found.extend(access::request(ctx, g.request_id)?);
                            }
                        }
                        found
                    }
                };
                for q in &requests {
                    let grant = access::grant_for_request(ctx, q.id)?;
                    grants.extend(access::incoming(q, grant.as_ref()));
                }
            }
            Ok::<_, ApiError>((list, grants, ctx.now()))
        })
        .await?;
    let matching: Vec<Resource> = list
        .iter()
        .map(map::consent)
        .chain(
            grants
                .iter()
                .filter_map(|a| map::access_consent(a, &node_name, now)),
        )
        .filter(|c| wanted.is_empty() || c.id.as_ref().is_some_and(|id| wanted.contains(id)))
        .map(Resource::Consent)
        .collect();
    let (total, matches) = paged(matching, paging);
    Ok(Found {
        total,
        matches,
        included: Vec::new(),
    })
}

async fn audit_events(ask: &mut Ask, paging: &Paging) -> Result<Found, FhirError> {
    ask.require(RecordKind::AuditTrail, "audit.read").await?;
    let tz = ask.zone();
    let p = &mut ask.params;
    let seq: Option<i64> = match p.take_one("_id")? {
        Some(v) => match v.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                return Ok(Found::none());
            }
        },
        None => None,
    };
    let when = date_params(p, "date", tz)?;
    let agent: Option<PractitionerId> = one_reference(p, "agent", "Practitioner")?;
    let entity = p
        .take_one("entity")?
        .map(|e| {
            let (t, id) = e
                .split_once('/')
                .ok_or_else(|| FhirError::invalid("`entity`: give Type/id"))?;
            let family = match t {
                "Patient" => "patient",
                "Appointment" => "appointment",
                "DiagnosticReport" => "report",
                "Practitioner" => "practitioner",
                _ => {
                    return Err(FhirError::invalid(format!(
                        "`entity`: {t} is not audited by id"
                    )));
                }
            };
            Ok(format!("{family}/{id}"))
        })
        .transpose()?;
    let patient: Option<PatientId> = one_reference(p, "patient", "Patient")?;
    let subtype = p.take_one("subtype")?.map(|s| token(&s).code);
    done(p)?;
    if paging.offset.saturating_add(paging.count) > MAX_AUDIT_DEPTH {
        return Err(FhirError::invalid(format!(
            "the audit trail pages back {MAX_AUDIT_DEPTH} entries at most; narrow the search by `date`"
        )));
    }
    let q = AuditQuery {
        after: seq.map(|s| s - 1),
        // Newest first: from above the newest entry back.
        before: Some(seq.map_or(i64::MAX, |s| s + 1)),
        entity,
        actor: agent.map(|a| format!("staff:{a}")),
        action: subtype,
        patient,
        card_number: None,
        from: when.from,
        to: when.to,
        limit: Some((paging.offset + paging.count).max(1)),
    };
    let count = paging.count;
    let (total, entries) = ask
        .node
        .store
        .write(Some(ask.caller.audit("audit.read", "")), move |ctx| {
            let total = audit::count(ctx, &q)?;
            // `_count=0` asks for the total alone.
            let entries = if count == 0 {
                Vec::new()
            } else {
                audit::list(ctx, &q)?
            };
            ctx.set_detail(format!("FHIR: {total} found"));
            Ok::<_, ApiError>((total, entries))
        })
        .await?;
    let node_name = ask.node.name();
    let matches = entries
        .iter()
        .skip(paging.offset as usize)
        .take(paging.count as usize)
        .map(|e| Resource::AuditEvent(map::audit_event(e, node_name)))
        .collect();
    Ok(Found {
        total,
        matches,
        included: Vec::new(),
    })
}

async fn provenances(ask: &mut Ask, paging: &Paging) -> Result<Found, FhirError> {
    let act = action(ask, "report", "revisions");
    ask.require(RecordKind::Report, &act).await?;
    let p = &mut ask.params;
    let id = p.take_one("_id")?;
    let target: Option<ReportId> = one_reference(p, "target", "DiagnosticReport")?;
    let patient: Option<PatientId> = one_reference(p, "patient", "Patient")?;
    done(p)?;
    // `{report uuid}-{revision}`.
    let by_id: Option<(ReportId, u32)> = match &id {
        Some(v) if v.is_ascii() && v.len() > 37 => {
            let (r, n) = v.split_at(36);
            match (r.parse().ok(), n[1..].parse().ok()) {
                (Some(r), Some(n)) => Some((r, n)),
                _ => {
                    return Ok(Found::none());
                }
            }
        }
        Some(_) => {
            return Ok(Found::none());
        }
        None => None,
    };
    if by_id.is_none() && target.is_none() && patient.is_none() {
        return Err(FhirError::invalid(
            "a Provenance search needs `target` or `patient`",
        ));
    }
    let entity = target
        .or(by_id.map(|(r, _)| r))
        .map(|r| format!("report/{r}"))
        .unwrap_or_default();
    let list = ask
        .node
        .store
        .write(Some(ask.caller.audit(&act, entity)), move |ctx| {
            let report_ids: Vec<ReportId> = match (by_id, target, patient) {
                (Some((r, _)), _, _) | (None, Some(r), _) => vec![r],
                (None, None, Some(p)) => {
                    reports::of_patient(ctx, p)?.iter().map(|r| r.id).collect()
                }
                (None, None, None) => Vec::new(),
            };
            let mut out = Vec::new();
            for r in report_ids {
                for rev in reports::revisions(ctx, r)? {
                    out.push((r, rev));
                }
            }
            Ok::<_, ApiError>(out)
        })
        .await?;
    let matching: Vec<Resource> = list
        .iter()
        .filter(|(r, rev)| by_id.is_none_or(|(br, bn)| br == *r && bn == rev.revision))
        .filter(|(r, _)| target.is_none_or(|t| t == *r))
        .map(|(r, rev)| Resource::Provenance(map::provenance(*r, rev)))
        .collect();
    let (total, matches) = paged(matching, paging);
    Ok(Found {
        total,
        matches,
        included: Vec::new(),
    })
}

//! Consented access across hospitals: the rules both sides run (DESIGN, "Consented access").
//!
//! The requesting side (B): a doctor asks (`request`), passes on the patient's code
//! (`send_code`), and learns the outcome from the home node (`receive_granted`,
//! `receive_declined`, `receive_revoked`); reads go through `read` to the home node's
//! federation read API, signed with this node's key and naming the doctor.
//!
//! The home side (A): a request is stored and answered alike whether or not a patient matches
//! (`receive_request`), the patient is asked by e-mail with a one-time code, or at the kiosk or
//! front desk (`decide`); a code is checked against its one request, its wrong tries counted
//! in one statement for its whole life (`receive_approve`); a grant is a FHIR Consent and a
//! token kept only as a hash, revocable at once (`revoke`), its end told to B through the
//! outbox (`tell_ended`).

use carebridge_protocol::event::EventKind;
use carebridge_protocol::federation::access::{
    self as rules, AccessApproveMessage, AccessDecision, AccessDeclinedMessage,
    AccessGrantedMessage, AccessPurpose, AccessRequestMessage, AccessRevokedMessage, AccessState,
    CODE_MINUTES, CODE_TRIES, DEFAULT_HOURS, DeclineReason, GrantedPatient, IncomingAccess,
    NewRemoteAccess, RemoteAccess, ScopedResource,
};
use carebridge_protocol::federation::envelope::MessageType;
use carebridge_protocol::patient::Patient;
use carebridge_protocol::{PatientId, PractitionerId, ProblemType};
use serde::Serialize;

use super::error::FederationError;
use super::peer::Peer;
use super::transmission::{self, Outgoing};
use crate::config::NodeKind;
use crate::node::Node;
use crate::store::federation::access::{self as stored, Grant, HomeRequest};
use crate::store::federation::peers;
use crate::store::mail::{self, OutgoingMail};
use crate::store::{StoreError, WriteCtx, patients};
use crate::visibility::{self, RecordKind};

/// What the home node allows other hospitals (`[access]` in `node.toml`).
pub use crate::config::AccessPolicy;

// ---------------------------------------------------------------------------------------------
// Both sides

/// Seals `payload` for `peer` and queues it; the delivery worker sends it after the commit.
fn send<T: Serialize>(
    ctx: &mut WriteCtx<'_>,
    node: &Node,
    peer: &Peer,
    message_type: MessageType,
    payload: &T,
    about: About<'_>,
) -> Result<(), FederationError> {
    transmission::queue(
        ctx,
        node,
        peer,
        Outgoing {
            message_type,
            payload: serde_json::to_vec(payload).map_err(StoreError::from)?,
            summary: about.summary,
            patient_id: about.patient,
            report_ids: Vec::new(),
            created_by: about.by,
        },
    )?;
    Ok(())
}

/// What a transmission's users see of it.
struct About<'a> {
    /// For people, without the patient's name.
    summary: String,
    /// The patient here.
    patient: Option<PatientId>,
    /// Who sends it: the doctor, or `node`.
    by: &'a str,
}

fn hospital_peer(ctx: &WriteCtx<'_>, name: &str) -> Result<Peer, FederationError> {
    peers::get(ctx, name)?
        .filter(|p| p.kind == NodeKind::Hospital)
        .ok_or_else(|| {
            FederationError::invalid("peer", "is not a hospital this node is peered with")
        })
}

// ---------------------------------------------------------------------------------------------
// The requesting side

fn emit_remote(ctx: &mut WriteCtx<'_>, a: &RemoteAccess) -> Result<(), StoreError> {
    let doctor: PractitionerId = a
        .practitioner_id
        .parse()
        .map_err(|_| StoreError::Corrupt(format!("practitioner id {}", a.practitioner_id)))?;
    ctx.emit(
        EventKind::AccessUpdated,
        visibility::remote_record_audience(doctor),
        a,
    )?;
    Ok(())
}

/// A doctor asks to read a patient's record at the patient's home hospital.
pub fn request(
    ctx: &mut WriteCtx<'_>,
    node: &Node,
    doctor: (PractitionerId, &str),
    patient: PatientId,
    req: &NewRemoteAccess,
) -> Result<RemoteAccess, FederationError> {
    if patients::get(ctx, patient, node.name())?.is_none() {
        return Err(FederationError::NotFound("patient"));
    }
    let peer = hospital_peer(ctx, &req.peer)?;
    let scopes = rules::parse_scopes(&req.scopes)
        .map_err(|e| FederationError::invalid("scopes", e.to_string()))?;
    let hours = req
        .hours
        .unwrap_or(DEFAULT_HOURS.min(req.purpose.max_hours()));
    let now = ctx.now();
    let a = RemoteAccess {
        id: uuid::Uuid::now_v7(),
        patient_id: patient,
        peer: peer.name.clone(),
        organisation: peer.name.clone(),
        practitioner_id: doctor.0.to_string(),
        practitioner_name: doctor.1.to_owned(),
        purpose: req.purpose,
        scopes: rules::scope_strings(&scopes),
        hours,
        state: AccessState::Pending,
        tries_left: CODE_TRIES,
        grant_id: None,
        patient: None,
        expires_at: None,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    stored::insert_remote(ctx, &a)?;
    let message = AccessRequestMessage {
        request_id: a.id,
        practitioner_id: a.practitioner_id.clone(),
        practitioner_name: a.practitioner_name.clone(),
        organisation: node.organisation().to_owned(),
        card_number: req.card_number.clone(),
        birth_date: req.birth_date,
        purpose: req.purpose,
        scopes: a.scopes.clone(),
        hours,
        requested_at: now,
    };
    send(
        ctx,
        node,
        &peer,
        MessageType::AccessRequest,
        &message,
        About {
            summary: format!(
                "{} access request to {} ({})",
                req.purpose.as_str(),
                peer.name,
                rules::describe_scopes(&scopes)
            ),
            patient: Some(patient),
            by: doctor.1,
        },
    )?;
    emit_remote(ctx, &a)?;
    ctx.set_entity(format!("remote-access/{}", a.id));
    ctx.set_detail(format!(
        "{} access to a patient's record at {}: {}",
        req.purpose.as_str(),
        peer.name,
        a.scopes.join(" ")
    ));
    Ok(a)
}

/// The doctor passes on the code the patient gave them.
pub fn send_code(
    ctx: &mut WriteCtx<'_>,
    node: &Node,
    doctor: (PractitionerId, &str),
    id: uuid::Uuid,
    code: &str,
) -> Result<RemoteAccess, FederationError> {
    let (a, _) = stored::remote(ctx, id)?
        .filter(|(a, _)| a.practitioner_id == doctor.0.to_string())
        .ok_or(FederationError::NotFound("access request"))?;
    if a.state != AccessState::Pending || a.tries_left == 0 {
        return Err(FederationError::refused(
            ProblemType::InvalidTransition,
            format!("the request is {}: ask again", a.state.as_str()),
        ));
    }
    let digits = rules::normalise_code(code)
        .ok_or_else(|| FederationError::invalid("code", "the code is 8 digits, e.g. 4821-7730"))?;
    let peer = hospital_peer(ctx, &a.peer)?;
    send(
        ctx,
        node,
        &peer,
        MessageType::AccessApprove,
        &AccessApproveMessage {
            request_id: a.id,
            code: digits,
        },
        About {
            summary: format!("code for an access request to {}", peer.name),
            patient: Some(a.patient_id),
            by: doctor.1,
        },
    )?;
    ctx.set_entity(format!("remote-access/{id}"));
    ctx.set_detail(format!("code passed on to {}", peer.name));
    Ok(a)
}

fn remote_of_peer(
    ctx: &WriteCtx<'_>,
    peer: &Peer,
    id: uuid::Uuid,
) -> Result<(RemoteAccess, Option<String>), FederationError> {
    stored::remote(ctx, id)?
        .filter(|(a, _)| a.peer == peer.name)
        .ok_or_else(|| {
            FederationError::refused(
                ProblemType::UnreadablePayload,
                format!("no access request {id} was sent to {}", peer.name),
            )
        })
}

fn changed(
    ctx: &mut WriteCtx<'_>,
    mut a: RemoteAccess,
    token: Option<&str>,
) -> Result<RemoteAccess, StoreError> {
    a.version += 1;
    a.updated_at = ctx.now();
    stored::update_remote(ctx, &a, token)?;
    emit_remote(ctx, &a)?;
    Ok(a)
}

/// `access-granted` arrived: the doctor may read.
pub fn receive_granted(
    ctx: &mut WriteCtx<'_>,
    peer: &Peer,
    m: &AccessGrantedMessage,
) -> Result<String, FederationError> {
    let (mut a, _) = remote_of_peer(ctx, peer, m.request_id)?;
    if a.grant_id.is_some() {
        return Ok(format!(
            "grant {} for request {} again: kept the first",
            m.grant_id, a.id
        ));
    }
    a.state = if m.expires_at > ctx.now() {
        AccessState::Granted
    } else {
        AccessState::Expired
    };
    a.grant_id = Some(m.grant_id);
    a.scopes = m.scopes.clone();
    a.expires_at = Some(m.expires_at);
    a.patient = Some(m.patient.clone());
    a.organisation = m.organisation.clone();
    a.tries_left = 0;
    let a = changed(ctx, a, Some(&m.token))?;
    Ok(format!(
        "grant {} for request {} ({}), until {}",
        m.grant_id, a.id, m.approved_by, m.expires_at
    ))
}

/// `access-declined` arrived: a wrong code (tries left), a lock, an expiry or a refusal.
pub fn receive_declined(
    ctx: &mut WriteCtx<'_>,
    peer: &Peer,
    m: &AccessDeclinedMessage,
) -> Result<String, FederationError> {
    let (mut a, _) = remote_of_peer(ctx, peer, m.request_id)?;
    if a.state != AccessState::Pending {
        return Ok(format!("request {} is already {}", a.id, a.state.as_str()));
    }
    a.organisation = m.organisation.clone();
    match m.reason {
        DeclineReason::WrongCode => a.tries_left = m.tries_left.min(a.tries_left),
        DeclineReason::Locked => {
            a.state = AccessState::Locked;
            a.tries_left = 0;
        }
        DeclineReason::Expired => a.state = AccessState::Expired,
        DeclineReason::Declined | DeclineReason::Refused => a.state = AccessState::Declined,
    }
    let a = changed(ctx, a, None)?;
    Ok(format!("request {}: {}", a.id, m.reason.as_str()))
}

/// `access-revoked` arrived: the grant no longer works; what was read is no longer shown.
pub fn receive_revoked(
    ctx: &mut WriteCtx<'_>,
    peer: &Peer,
    m: &AccessRevokedMessage,
) -> Result<String, FederationError> {
    let (mut a, _) = remote_of_peer(ctx, peer, m.request_id)?;
    if a.grant_id != Some(m.grant_id) {
        return Err(FederationError::refused(
            ProblemType::UnreadablePayload,
            format!("grant {} is not request {}'s", m.grant_id, a.id),
        ));
    }
    if matches!(a.state, AccessState::Revoked | AccessState::Expired) {
        return Ok(format!("grant {} already ended here", m.grant_id));
    }
    a.state = if m.by == "expiry" {
        AccessState::Expired
    } else {
        AccessState::Revoked
    };
    let a = changed(ctx, a, None)?;
    Ok(format!(
        "grant {} {} by {}",
        m.grant_id,
        a.state.as_str(),
        m.by
    ))
}

/// Marks the grants that ran out here as expired (the home node refuses them already).
pub fn expire_remote(ctx: &mut WriteCtx<'_>) -> Result<usize, StoreError> {
    let ids = stored::remote_expired(ctx, ctx.now())?;
    for id in &ids {
        if let Some((mut a, _)) = stored::remote(ctx, *id)? {
            a.state = AccessState::Expired;
            changed(ctx, a, None)?;
        }
    }
    Ok(ids.len())
}

// ---------------------------------------------------------------------------------------------
// The home side

fn emit_incoming(
    ctx: &mut WriteCtx<'_>,
    q: &HomeRequest,
    grant: Option<&Grant>,
) -> Result<(), StoreError> {
    if let Some(i) = stored::incoming(q, grant) {
        ctx.emit(
            EventKind::AccessIncoming,
            visibility::audience(RecordKind::IncomingAccess),
            &i,
        )?;
    }
    Ok(())
}

fn declined(
    ctx: &mut WriteCtx<'_>,
    node: &Node,
    peer: &Peer,
    q: &HomeRequest,
    reason: DeclineReason,
    tries_left: u32,
) -> Result<(), FederationError> {
    send(
        ctx,
        node,
        peer,
        MessageType::AccessDeclined,
        &AccessDeclinedMessage {
            request_id: q.peer_request_id,
            reason,
            tries_left,
            organisation: node.organisation().to_owned(),
        },
        About {
            summary: format!("access request from {}: {}", peer.name, reason.as_str()),
            patient: q.patient_id,
            by: "node",
        },
    )
}

/// A request arrived. It is stored and answered alike whether or not a patient matches the
/// card number and birth date (the receipt says nothing more); a matching patient with an
/// e-mail address on file is sent a code.
pub fn receive_request(
    ctx: &mut WriteCtx<'_>,
    node: &Node,
    peer: &Peer,
    m: &AccessRequestMessage,
) -> Result<String, FederationError> {
    let unreadable = |why: String| FederationError::refused(ProblemType::UnreadablePayload, why);
    let m = &super::error::cleaned(m)?;
    if let Some(q) = stored::request_from_peer(ctx, &peer.name, m.request_id)? {
        return Ok(format!(
            "access request {} again: kept the first ({})",
            q.id,
            q.state.as_str()
        ));
    }
    let scopes = rules::parse_scopes(&m.scopes).map_err(|e| unreadable(e.to_string()))?;
    if scopes.is_empty() || m.hours == 0 {
        return Err(unreadable(
            "an access request names at least one scope and one hour".into(),
        ));
    }
    let policy = &node.config.access;
    let hours = m.hours.min(m.purpose.max_hours()).min(policy.max_hours);
    // A record that moved elsewhere is no longer this hospital's to grant: answered as no match.
    let patient = patients::by_card(ctx, m.card_number.trim(), m.birth_date, node.name())?
        .filter(|p| p.transferred_to.is_none());
    let now = ctx.now();
    let id = uuid::Uuid::now_v7();
    let code = rules::new_code();
    let mut q = HomeRequest {
        id,
        peer: peer.name.clone(),
        peer_request_id: m.request_id,
        patient_id: patient.as_ref().map(|p| p.id),
        practitioner_id: m.practitioner_id.clone(),
        practitioner_name: m.practitioner_name.clone(),
        organisation: m.organisation.clone(),
        purpose: m.purpose,
        scopes: rules::scope_strings(&scopes),
        hours,
        state: AccessState::Pending,
        code_hash: Some(rules::code_hash(id, &code)),
        code_expires_at: Some(now + chrono::Duration::minutes(CODE_MINUTES)),
        wrong_codes: 0,
        approved_by: None,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    if m.purpose == AccessPurpose::Emergency {
        q.code_hash = None;
        q.code_expires_at = None;
        stored::insert_request(ctx, &q)?;
        return match patient {
            Some(p) if policy.emergency => {
                let grant = issue(ctx, node, peer, &q, &p, &scopes, hours, "emergency")?;
                tell_patient_of_emergency(ctx, node, &q, &p, hours)?;
                tracing::warn!(grant = %grant.id, peer = %peer.name, "emergency access granted without the patient");
                Ok(format!(
                    "EMERGENCY access granted without the patient's approval: grant {} to {} ({}) for {hours} h",
                    grant.id, peer.name, q.practitioner_name
                ))
            }
            _ => {
                stored::settle(ctx, q.id, AccessState::Declined, None, &q.scopes, hours)?;
                declined(ctx, node, peer, &q, DeclineReason::Refused, 0)?;
                if let Some(refused) = stored::request(ctx, q.id)? {
                    emit_incoming(ctx, &refused, None)?;
                }
                Ok(format!(
                    "emergency access request {} refused ({})",
                    q.id,
                    if patient.is_some() {
                        "the policy allows none"
                    } else {
                        "no matching record"
                    }
                ))
            }
        };
    }
    stored::insert_request(ctx, &q)?;
    let mailed = match patient
        .as_ref()
        .and_then(|p| p.email.clone().map(|e| (p, e)))
    {
        Some((_, email)) => {
            // The organisation is the peer's own say; the node name is how this hospital peered it.
            let (subject, body) = rules::code_mail(
                &format!("{} ({})", m.organisation, peer.name),
                &m.practitioner_name,
                &scopes,
                hours,
                &code,
                node.organisation(),
            );
            mail::queue(
                ctx,
                &OutgoingMail {
                    id: uuid::Uuid::now_v7(),
                    recipient: email,
                    subject,
                    body,
                    about: format!("access-code/{id}"),
                    discard_after: q.code_expires_at,
                },
            )?;
            true
        }
        None => false,
    };
    emit_incoming(ctx, &q, None)?;
    // Admins read the audit: the match is theirs to know, the patient's name is not.
    Ok(format!(
        "access request {id} from {} ({}) for {}: {}",
        peer.name,
        q.practitioner_name,
        q.scopes.join(" "),
        match (patient.is_some(), mailed) {
            (true, true) => "a patient matched; a code was e-mailed",
            (true, false) => "a patient matched; no e-mail address on file",
            (false, _) => "no patient matched",
        }
    ))
}

fn tell_patient_of_emergency(
    ctx: &mut WriteCtx<'_>,
    node: &Node,
    q: &HomeRequest,
    p: &Patient,
    hours: u32,
) -> Result<(), StoreError> {
    let Some(email) = p.email.clone() else {
        return Ok(());
    };
    mail::queue(
        ctx,
        &OutgoingMail {
            id: uuid::Uuid::now_v7(),
            recipient: email,
            subject: format!(
                "{} was given emergency access to your record",
                q.practitioner_name
            ),
            body: format!(
                "{}, {}, was given access to your record for emergency treatment, for at most \
                 {hours} hours, without being able to ask you first.\n\n\
                 You can see who read what, and withdraw the access, at {}'s front desk or kiosk.\n",
                q.practitioner_name,
                q.organisation,
                node.organisation()
            ),
            about: format!("access-emergency/{}", q.id),
            discard_after: None,
        },
    )
}

/// Grants a pending request: records the grant (the Consent), sends the token to the asking
/// node, and tells the front desk. Fails, changing nothing, when the request was answered
/// meanwhile.
#[expect(clippy::too_many_arguments, reason = "one grant's inputs, each named")]
fn issue(
    ctx: &mut WriteCtx<'_>,
    node: &Node,
    peer: &Peer,
    q: &HomeRequest,
    patient: &Patient,
    scopes: &[rules::AccessScope],
    hours: u32,
    approved_by: &str,
) -> Result<Grant, FederationError> {
    let scope_names = rules::scope_strings(scopes);
    if !stored::settle(
        ctx,
        q.id,
        AccessState::Granted,
        Some(approved_by),
        &scope_names,
        hours,
    )? {
        return Err(FederationError::refused(
            ProblemType::Conflict,
            "the request was answered meanwhile",
        ));
    }
    let now = ctx.now();
    let token = rules::new_token();
    let grant = Grant {
        id: uuid::Uuid::now_v7(),
        request_id: q.id,
        token_hash: rules::token_hash(&token),
        peer: peer.name.clone(),
        practitioner_id: q.practitioner_id.clone(),
        patient_id: patient.id,
        scopes: scope_names.clone(),
        purpose: q.purpose,
        starts_at: now,
        expires_at: now + chrono::Duration::hours(i64::from(hours)),
        revoked_at: None,
        revoked_by: None,
    };
    stored::insert_grant(ctx, &grant)?;
    send(
        ctx,
        node,
        peer,
        MessageType::AccessGranted,
        &AccessGrantedMessage {
            request_id: q.peer_request_id,
            grant_id: grant.id,
            token,
            scopes: scope_names,
            purpose: q.purpose,
            starts_at: grant.starts_at,
            expires_at: grant.expires_at,
            patient: GrantedPatient {
                global_id: patient.global_id.clone(),
                family_name: patient.family_name.clone(),
                given_name: patient.given_name.clone(),
                birth_date: patient.birth_date,
            },
            approved_by: approved_by.to_owned(),
            organisation: node.organisation().to_owned(),
        },
        About {
            summary: format!("access granted to {} ({})", peer.name, q.practitioner_name),
            patient: Some(patient.id),
            by: "node",
        },
    )?;
    let settled = stored::request(ctx, q.id)?
        .ok_or_else(|| FederationError::Internal("the request just granted is missing".into()))?;
    emit_incoming(ctx, &settled, Some(&grant))?;
    Ok(grant)
}

/// `access-approve` arrived: the code is checked against its one request. A right code grants;
/// a wrong one is counted (the fifth locks the request for good, and even the right code is
/// refused after it); an expired one ends the request.
pub fn receive_approve(
    ctx: &mut WriteCtx<'_>,
    node: &Node,
    peer: &Peer,
    m: &AccessApproveMessage,
) -> Result<String, FederationError> {
    let q = stored::request_from_peer(ctx, &peer.name, m.request_id)?.ok_or_else(|| {
        FederationError::refused(
            ProblemType::UnreadablePayload,
            format!("{} sent no access request {}", peer.name, m.request_id),
        )
    })?;
    match q.state {
        AccessState::Pending => {}
        // Counted nothing and answers nothing: the asking node was told when it ended.
        other => {
            return Ok(format!(
                "code for request {} refused: it is {}",
                q.id,
                other.as_str()
            ));
        }
    }
    let now = ctx.now();
    if q.code_expires_at.is_none_or(|at| at <= now) {
        stored::settle(ctx, q.id, AccessState::Expired, None, &q.scopes, q.hours)?;
        declined(ctx, node, peer, &q, DeclineReason::Expired, 0)?;
        if let Some(expired) = stored::request(ctx, q.id)? {
            emit_incoming(ctx, &expired, None)?;
        }
        return Ok(format!("code for request {} refused: expired", q.id));
    }
    let right = q
        .code_hash
        .as_deref()
        .is_some_and(|h| rules::same_hash(h, &rules::code_hash(q.id, &m.code)));
    let patient = match q.patient_id {
        Some(id) => patients::get(ctx, id, node.name())?,
        None => None,
    };
    if right && let Some(p) = patient {
        let scopes = rules::parse_scopes(&q.scopes)
            .map_err(|e| FederationError::Internal(format!("stored scopes: {e}")))?;
        let grant = issue(ctx, node, peer, &q, &p, &scopes, q.hours, "code")?;
        return Ok(format!(
            "request {} approved with the patient's code: grant {}",
            q.id, grant.id
        ));
    }
    match stored::count_wrong_code(ctx, q.id, CODE_TRIES)? {
        Some(n) if n >= CODE_TRIES => {
            declined(ctx, node, peer, &q, DeclineReason::Locked, 0)?;
            if let Some(locked) = stored::request(ctx, q.id)? {
                emit_incoming(ctx, &locked, None)?;
            }
            Ok(format!(
                "wrong code for request {} ({n} of {CODE_TRIES}): locked",
                q.id
            ))
        }
        Some(n) => {
            declined(
                ctx,
                node,
                peer,
                &q,
                DeclineReason::WrongCode,
                CODE_TRIES - n,
            )?;
            if let Some(counted) = stored::request(ctx, q.id)? {
                emit_incoming(ctx, &counted, None)?;
            }
            Ok(format!(
                "wrong code for request {} ({n} of {CODE_TRIES})",
                q.id
            ))
        }
        None => Ok(format!(
            "code for request {} refused: no longer pending",
            q.id
        )),
    }
}

/// Who answered a request at the home node, in person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// The patient, identified at a kiosk.
    Kiosk,
    /// The front desk, having checked who the patient is.
    FrontDesk,
}

impl Channel {
    fn as_str(self) -> &'static str {
        match self {
            Self::Kiosk => "kiosk",
            Self::FrontDesk => "front-desk",
        }
    }
}

/// A pending request of `patient`'s, for a kiosk or the front desk to answer.
fn pending_of(
    ctx: &WriteCtx<'_>,
    id: uuid::Uuid,
    patient: Option<PatientId>,
) -> Result<HomeRequest, FederationError> {
    stored::request(ctx, id)?
        .filter(|q| q.patient_id.is_some() && (patient.is_none() || q.patient_id == patient))
        .ok_or(FederationError::NotFound("access request"))
}

/// The patient (at a kiosk, or through the front desk) allows a request, perhaps narrowed, or
/// declines it. `patient` is the identified patient at a kiosk (the request must be theirs).
pub fn decide(
    ctx: &mut WriteCtx<'_>,
    node: &Node,
    id: uuid::Uuid,
    patient: Option<PatientId>,
    d: &AccessDecision,
    channel: Channel,
) -> Result<IncomingAccess, FederationError> {
    let q = pending_of(ctx, id, patient)?;
    if q.state != AccessState::Pending {
        return Err(FederationError::refused(
            ProblemType::InvalidTransition,
            format!("the request is {}", q.state.as_str()),
        ));
    }
    // Past its wait, even before the minute's job has expired it.
    let waited = chrono::Duration::hours(i64::from(node.config.access.pending_hours));
    if q.created_at + waited <= ctx.now() {
        return Err(FederationError::refused(
            ProblemType::InvalidTransition,
            "the request has expired: the other hospital may ask again",
        ));
    }
    let peer = hospital_peer(ctx, &q.peer)?;
    ctx.set_entity(format!("access-request/{id}"));
    if !d.allow {
        stored::settle(ctx, q.id, AccessState::Declined, None, &q.scopes, q.hours)?;
        declined(ctx, node, &peer, &q, DeclineReason::Declined, 0)?;
        let settled =
            stored::request(ctx, q.id)?.ok_or(FederationError::NotFound("access request"))?;
        emit_incoming(ctx, &settled, None)?;
        ctx.set_detail(format!(
            "declined at the {} ({})",
            channel.as_str(),
            peer.name
        ));
        return stored::incoming(&settled, None).ok_or(FederationError::NotFound("access request"));
    }
    let asked = rules::parse_scopes(&q.scopes)
        .map_err(|e| FederationError::Internal(format!("stored scopes: {e}")))?;
    let chosen = d
        .scopes
        .as_deref()
        .map(rules::parse_scopes)
        .transpose()
        .map_err(|e| FederationError::invalid("scopes", e.to_string()))?;
    let (scopes, hours) = rules::narrow(&asked, q.hours, chosen.as_deref(), d.hours)
        .map_err(|e| FederationError::invalid("scopes", e))?;
    let p = q
        .patient_id
        .map(|pid| patients::get(ctx, pid, node.name()))
        .transpose()?
        .flatten()
        .ok_or(FederationError::NotFound("patient"))?;
    let grant = issue(ctx, node, &peer, &q, &p, &scopes, hours, channel.as_str())?;
    ctx.set_detail(format!(
        "allowed at the {}: grant {} to {} for {hours} h",
        channel.as_str(),
        grant.id,
        peer.name
    ));
    let settled = stored::request(ctx, q.id)?.ok_or(FederationError::NotFound("access request"))?;
    stored::incoming(&settled, Some(&grant)).ok_or(FederationError::NotFound("access request"))
}

/// The patient revokes a grant (at a kiosk or the front desk). It is refused at once; the
/// asking node is told through the outbox.
pub fn revoke(
    ctx: &mut WriteCtx<'_>,
    node: &Node,
    id: uuid::Uuid,
    patient: Option<PatientId>,
    channel: Channel,
) -> Result<IncomingAccess, FederationError> {
    let q = pending_of(ctx, id, patient)?;
    let grant = stored::grant_for_request(ctx, q.id)?
        .filter(|g| g.revoked_at.is_none() && q.state == AccessState::Granted)
        .ok_or_else(|| {
            FederationError::refused(
                ProblemType::InvalidTransition,
                format!("the request is {}: nothing to revoke", q.state.as_str()),
            )
        })?;
    stored::revoke_grant(ctx, grant.id, channel.as_str())?;
    stored::end_granted(ctx, q.id, AccessState::Revoked)?;
    ctx.set_entity(format!("grant/{}", grant.id));
    ctx.set_detail(format!("revoked at the {} ({})", channel.as_str(), q.peer));
    // This grant only: another's trouble must not hold up the patient's revocation.
    tell_end(ctx, node, grant.id)?;
    let settled = stored::request(ctx, q.id)?.ok_or(FederationError::NotFound("access request"))?;
    let grant = stored::grant(ctx, grant.id)?;
    stored::incoming(&settled, grant.as_ref()).ok_or(FederationError::NotFound("access request"))
}

/// Tells the asking node that `grant` ended (revoked, or expired by now) unless it was told:
/// queues `access-revoked`, marks an expired request so, and streams the change. Returns whether
/// it told.
fn tell_end(
    ctx: &mut WriteCtx<'_>,
    node: &Node,
    grant: uuid::Uuid,
) -> Result<bool, FederationError> {
    let Some(g) = stored::grant_untold(ctx, grant)? else {
        return Ok(false);
    };
    let now = ctx.now();
    if g.revoked_at.is_none() && g.expires_at > now {
        return Ok(false);
    }
    let by = g.revoked_by.clone().unwrap_or_else(|| "expiry".into());
    if g.revoked_at.is_none() {
        stored::end_granted(ctx, g.request_id, AccessState::Expired)?;
    }
    stored::mark_ended_told(ctx, g.id)?;
    let q = stored::request(ctx, g.request_id)?
        .ok_or_else(|| FederationError::Internal("a grant's request is missing".into()))?;
    emit_incoming(ctx, &q, Some(&g))?;
    // A peer no longer peered cannot be told; its token is refused all the same.
    let Some(peer) = peers::get(ctx, &g.peer)? else {
        return Ok(true);
    };
    send(
        ctx,
        node,
        &peer,
        MessageType::AccessRevoked,
        &AccessRevokedMessage {
            request_id: q.peer_request_id,
            grant_id: g.id,
            revoked_at: g.revoked_at.unwrap_or(g.expires_at),
            by,
        },
        About {
            summary: format!("access by {} ended", peer.name),
            patient: Some(g.patient_id),
            by: "node",
        },
    )?;
    Ok(true)
}

/// Expires the requests that waited longer than the policy allows for the patient, and tells
/// their asking nodes as for a decline (a request that matched no patient expires alike).
/// Returns how many.
pub fn expire_pending(ctx: &mut WriteCtx<'_>, node: &Node) -> Result<usize, FederationError> {
    let waited = chrono::Duration::hours(i64::from(node.config.access.pending_hours));
    let due = stored::pending_before(ctx, ctx.now() - waited, 100)?;
    let mut expired = 0;
    for q in &due {
        if !stored::settle(ctx, q.id, AccessState::Expired, None, &q.scopes, q.hours)? {
            continue;
        }
        expired += 1;
        let settled = stored::request(ctx, q.id)?
            .ok_or_else(|| FederationError::Internal("an expired request is missing".into()))?;
        emit_incoming(ctx, &settled, None)?;
        if let Some(peer) = peers::get(ctx, &q.peer)? {
            declined(ctx, node, &peer, q, DeclineReason::Expired, 0)?;
        }
    }
    Ok(expired)
}

/// Why a read under a grant is refused: each is answered 403 (or 401 with no token), and none
/// says more than that the grant does not allow it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantRefusal {
    /// No bearer token, or not one this node issued.
    #[error("no grant of this node's has that token")]
    UnknownToken,
    /// The token was granted to another node.
    #[error("the token was not granted to the node that signed the request")]
    OtherNode,
    /// The token was granted to another doctor.
    #[error("the token was not granted to the doctor the request names")]
    OtherDoctor,
    /// Revoked, or out of its period.
    #[error("the grant was revoked or has expired")]
    Ended,
    /// The scopes do not cover the resource.
    #[error("the grant does not allow reading {0}")]
    OutOfScope(&'static str),
}

/// Checks a token presented by `peer` on behalf of `practitioner` for reading `resource` at
/// `now`: the grant it names, if honoured.
pub fn honour(
    grant: Option<Grant>,
    peer: &str,
    practitioner: &str,
    resource: ScopedResource,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Grant, GrantRefusal> {
    let g = grant.ok_or(GrantRefusal::UnknownToken)?;
    if g.peer != peer {
        return Err(GrantRefusal::OtherNode);
    }
    if g.practitioner_id != practitioner {
        return Err(GrantRefusal::OtherDoctor);
    }
    if !g.active(now) {
        return Err(GrantRefusal::Ended);
    }
    let scopes = rules::parse_scopes(&g.scopes).unwrap_or_default();
    if !scopes.iter().any(|s| s.reads(resource)) {
        return Err(GrantRefusal::OutOfScope(resource.as_str()));
    }
    Ok(g)
}

/// The minute's job: grants that expired, and requests that waited too long for the patient,
/// are told to their asking nodes (home side); requests whose grant ran out are marked expired
/// (requesting side). Each ended grant is told in a write of its own, so that one that cannot
/// be (its peer's keys, say) holds up neither the others nor the rest of the job.
pub async fn end_due(node: &std::sync::Arc<Node>) -> Result<(), FederationError> {
    let now = node.clock.now();
    let ended = node
        .store
        .read(move |tx| {
            Ok::<_, FederationError>(
                stored::ended_untold(tx, now, 100)?
                    .into_iter()
                    .map(|g| g.id)
                    .collect::<Vec<_>>(),
            )
        })
        .await?;
    let mut told = 0;
    for id in ended {
        let n = node.clone();
        match node
            .store
            .write(None, move |ctx| tell_end(ctx, &n, id))
            .await
        {
            Ok(true) => told += 1,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(grant = %id, error = %e, "could not tell a grant's end; will retry")
            }
        }
    }
    let n = node.clone();
    told += node
        .store
        .write(None, move |ctx| {
            let expired = expire_pending(ctx, &n)?;
            expire_remote(ctx)?;
            Ok::<_, FederationError>(expired)
        })
        .await?;
    if told > 0 {
        node.wake_delivery();
    }
    Ok(())
}

/// Reads `resource` of the patient at the home node, for the doctor the request is theirs, under
/// its grant: a signed GET to the home node's federation read API. The home node decides; a
/// refusal there (revoked, expired, out of scope) is passed on as it is.
pub async fn read(
    node: &std::sync::Arc<Node>,
    doctor: PractitionerId,
    id: uuid::Uuid,
    resource: ScopedResource,
    draft: crate::store::AuditDraft,
) -> Result<serde_json::Value, FederationError> {
    use carebridge_protocol::federation::request::{
        API_KEY_HEADER, PRACTITIONER_HEADER, ReadTarget, sign_read,
    };
    let found = node
        .store
        .read(move |tx| {
            let Some((a, token)) = stored::remote(tx, id)? else {
                return Ok(None);
            };
            let peer = peers::get(tx, &a.peer)?;
            Ok::<_, StoreError>(Some((a, token, peer)))
        })
        .await?;
    let (a, token, peer) = found
        .filter(|(a, _, _)| a.practitioner_id == doctor.to_string())
        .ok_or(FederationError::NotFound("access request"))?;
    let (Some(token), AccessState::Granted) = (token, a.state) else {
        return Err(FederationError::refused(
            ProblemType::Forbidden,
            format!(
                "the request is {}: nothing may be read under it",
                a.state.as_str()
            ),
        ));
    };
    let peer = peer.ok_or_else(|| {
        FederationError::refused(
            ProblemType::Forbidden,
            format!("{} is no longer a peer", a.peer),
        )
    })?;
    let path = format!("{}{}", crate::api::granted::READ_PREFIX, resource.as_str());
    let url = format!("{}{path}", peer.url);
    let authority = super::delivery::authority(&url).map_err(FederationError::Internal)?;
    let authorization = format!("Bearer {token}");
    let practitioner = doctor.to_string();
    let signed = sign_read(
        &ReadTarget {
            path: &path,
            query: "",
            authorization: &authorization,
            practitioner: &practitioner,
        },
        &authority,
        node.name(),
        &node.signing_key,
        node.clock.now(),
    )
    .map_err(|e| FederationError::Internal(e.to_string()))?;
    let res = super::delivery::client(node)
        .get(&url)
        .header(API_KEY_HEADER, &peer.api_key)
        .header("authorization", &authorization)
        .header(PRACTITIONER_HEADER, &practitioner)
        .header("signature-input", signed.signature_input)
        .header("signature", signed.signature)
        .send()
        .await
        .map_err(|e| {
            FederationError::refused(
                ProblemType::Unavailable,
                format!("{} could not be reached: {e}", a.organisation),
            )
        })?;
    let status = res.status();
    let body: serde_json::Value = res.json().await.map_err(|e| {
        FederationError::refused(
            ProblemType::Unavailable,
            format!("{} answered something unreadable: {e}", a.organisation),
        )
    })?;
    let outcome = if status.is_success() {
        "read"
    } else {
        "refused"
    };
    let grant = a.grant_id.map(|g| g.to_string()).unwrap_or_default();
    let count = body["total"].as_u64().unwrap_or(0);
    let detail = format!(
        "{outcome} {} ×{count} at {} under grant {grant} (HTTP {})",
        resource.as_str(),
        peer.name,
        status.as_u16()
    );
    let entity = format!("grant/{grant}");
    node.store
        .write(Some(draft), move |ctx| {
            ctx.set_entity(entity);
            ctx.set_detail(detail);
            Ok::<_, StoreError>(())
        })
        .await?;
    if status.is_success() {
        return Ok(body);
    }
    let why = body["detail"].as_str().unwrap_or("refused").to_owned();
    Err(FederationError::refused(
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            ProblemType::Forbidden
        } else {
            ProblemType::Unavailable
        },
        format!("{} refused the read: {why}", a.organisation),
    ))
}

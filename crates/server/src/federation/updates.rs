//! Admin updates: an insurer's admin writes one for a hospital's doctors, reception or all
//! staff; the hospital streams it to them; each user acknowledges it once, and each
//! acknowledgement travels back as an `admin-update-ack` so the sender sees the count.

use carebridge_protocol::event::EventKind;
use carebridge_protocol::federation::envelope::MessageType;
use carebridge_protocol::federation::payload::{
    AdminUpdate, AdminUpdateAck, AdminUpdateMessage, NewAdminUpdate, UpdateAudience,
};
use carebridge_protocol::practitioner::Role;
use carebridge_protocol::{PractitionerId, ProblemType};

use super::error::FederationError;
use super::transmission::{self, Outgoing};
use crate::config::NodeKind;
use crate::events::{Audience, ROLE_ADMIN, ROLE_DOCTOR, ROLE_RECEPTION};
use crate::node::Node;
use crate::store::federation::peers;
use crate::store::federation::updates::{self as stored, Direction};
use crate::store::{StoreError, Tx, WriteCtx};

/// Which roles see an update for `audience` (admins see every update that arrives).
fn roles(audience: UpdateAudience) -> i64 {
    ROLE_ADMIN
        | match audience {
            UpdateAudience::Doctor => ROLE_DOCTOR,
            UpdateAudience::Reception => ROLE_RECEPTION,
            UpdateAudience::All => ROLE_DOCTOR | ROLE_RECEPTION,
        }
}

fn for_role(audience: UpdateAudience, role: Role) -> bool {
    match role {
        Role::Admin => true,
        Role::Doctor => matches!(audience, UpdateAudience::Doctor | UpdateAudience::All),
        Role::Reception => matches!(audience, UpdateAudience::Reception | UpdateAudience::All),
        Role::Reviewer => false,
    }
}

/// Hospital side: an update arrived from `source`. Stored once per id; streamed to its roles.
pub fn receive(
    ctx: &mut WriteCtx<'_>,
    source: &str,
    m: &AdminUpdateMessage,
) -> Result<(), FederationError> {
    let inserted = stored::insert(ctx, Direction::In, source, &m.from, m)?;
    if inserted && let Some(u) = stored::get(ctx, m.id, Direction::In)? {
        ctx.emit(
            EventKind::AdminUpdateUpdated,
            Audience {
                roles: roles(m.audience),
                practitioner: None,
                kiosk: None,
            },
            &u,
        )?;
    }
    Ok(())
}

/// Insurer side: a user of `source` acknowledged one of the updates sent there.
pub fn receive_ack(
    ctx: &mut WriteCtx<'_>,
    source: &str,
    m: &AdminUpdateAck,
) -> Result<(), FederationError> {
    let id = m.update_id;
    let Some(mut u) = stored::get(ctx, id, Direction::Out)?.filter(|u| u.peer == source) else {
        return Err(FederationError::refused(
            ProblemType::UnreadablePayload,
            format!("{source} acknowledged update {id}, which was not sent to it"),
        ));
    };
    let who = format!("{source}/{}", m.acknowledged_by_id);
    if stored::insert_ack(ctx, id, &who, &m.acknowledged_by, m.acknowledged_at)? {
        stored::bump_version(ctx, id)?;
        u.version += 1;
        u.acknowledgements = stored::acks(ctx, id)?;
        ctx.emit(
            EventKind::AdminUpdateUpdated,
            Audience {
                roles: ROLE_ADMIN,
                practitioner: None,
                kiosk: None,
            },
            &u,
        )?;
    }
    Ok(())
}

/// Insurer side: an admin sends an update to a hospital peer.
pub fn send(
    ctx: &mut WriteCtx<'_>,
    node: &Node,
    sender: &str,
    req: &NewAdminUpdate,
) -> Result<AdminUpdate, FederationError> {
    let peer = peers::get(ctx, &req.peer)?
        .filter(|p| p.kind == NodeKind::Hospital)
        .ok_or_else(|| {
            FederationError::invalid("peer", "is not a hospital this node is peered with")
        })?;
    let now = ctx.now();
    let m = AdminUpdateMessage {
        id: uuid::Uuid::now_v7(),
        title: req.title.trim().to_owned(),
        body: req.body.trim().to_owned(),
        audience: req.audience,
        from: node.organisation().to_owned(),
        sent_at: now,
    };
    stored::insert(ctx, Direction::Out, &peer.name, sender, &m)?;
    transmission::queue(
        ctx,
        node,
        &peer,
        Outgoing {
            message_type: MessageType::AdminUpdate,
            payload: serde_json::to_vec(&m).map_err(StoreError::from)?,
            summary: format!("Update for {}: {}", m.audience.as_str(), m.title),
            patient_id: None,
            report_ids: Vec::new(),
            created_by: sender,
        },
    )?;
    let u = stored::get(ctx, m.id, Direction::Out)?
        .ok_or_else(|| FederationError::Internal("the update just written is missing".into()))?;
    ctx.emit(
        EventKind::AdminUpdateUpdated,
        Audience {
            roles: ROLE_ADMIN,
            practitioner: None,
            kiosk: None,
        },
        &u,
    )?;
    ctx.set_entity(format!("admin-update/{}", m.id));
    ctx.set_detail(format!(
        "to {} for {}: {}",
        peer.name,
        m.audience.as_str(),
        m.title
    ));
    Ok(u)
}

/// Hospital side: a user acknowledges an update; the acknowledgement goes back to its sender.
/// Acknowledging again changes nothing.
pub fn acknowledge(
    ctx: &mut WriteCtx<'_>,
    node: &Node,
    me: PractitionerId,
    my_name: &str,
    role: Role,
    id: uuid::Uuid,
) -> Result<AdminUpdate, FederationError> {
    let mut u = stored::get(ctx, id, Direction::In)?
        .filter(|u| for_role(u.audience, role))
        .ok_or_else(|| FederationError::NotFound("update"))?;
    if !stored::acked_by(ctx, id, &me.to_string())? {
        let now = ctx.now();
        stored::insert_ack(ctx, id, &me.to_string(), my_name, now)?;
        let peer = peers::get(ctx, &u.peer)?.ok_or_else(|| {
            FederationError::refused(
                ProblemType::Conflict,
                format!(
                    "{} is no longer a peer: the acknowledgement cannot be sent",
                    u.peer
                ),
            )
        })?;
        let ack = AdminUpdateAck {
            update_id: id,
            acknowledged_by_id: me.to_string(),
            acknowledged_by: my_name.to_owned(),
            acknowledged_at: now,
        };
        transmission::queue(
            ctx,
            node,
            &peer,
            Outgoing {
                message_type: MessageType::AdminUpdateAck,
                payload: serde_json::to_vec(&ack).map_err(StoreError::from)?,
                summary: format!("Acknowledgement by {my_name}: {}", u.title),
                patient_id: None,
                report_ids: Vec::new(),
                created_by: my_name,
            },
        )?;
        ctx.set_detail(format!("acknowledged {:?} from {}", u.title, u.peer));
    }
    u.acknowledged = true;
    ctx.emit(
        EventKind::AdminUpdateUpdated,
        Audience {
            roles: 0,
            practitioner: Some(me),
            kiosk: None,
        },
        &u,
    )?;
    Ok(u)
}

/// The updates a user sees: on a hospital, those that arrived for their role (admins: all),
/// with whether they acknowledged each; on an insurer, those its admins sent, with counts.
pub fn list(
    tx: &Tx<'_>,
    kind: NodeKind,
    me: PractitionerId,
    role: Role,
) -> Result<Vec<AdminUpdate>, StoreError> {
    let direction = match kind {
        NodeKind::Hospital => Direction::In,
        NodeKind::Insurer => Direction::Out,
    };
    let mut out = Vec::new();
    for mut u in stored::list(tx, direction, 200)? {
        match kind {
            NodeKind::Hospital => {
                if !for_role(u.audience, role) {
                    continue;
                }
                u.acknowledged = stored::acked_by(tx, u.id, &me.to_string())?;
                if role == Role::Admin {
                    u.acknowledgements = stored::acks(tx, u.id)?;
                }
            }
            NodeKind::Insurer => u.acknowledgements = stored::acks(tx, u.id)?,
        }
        out.push(u);
    }
    Ok(out)
}

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
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::peer;
use super::transmission::{self, Outgoing};
use crate::config::NodeKind;
use crate::error::ApiError;
use crate::events::{Audience, ROLE_ADMIN, ROLE_DOCTOR, ROLE_RECEPTION};
use crate::node::Node;
use crate::store::{StoreError, WriteCtx, from_millis};

const COLUMNS: &str = "id, peer, from_name, title, body, audience, sent_at, version, direction";

fn from_row(r: &Row<'_>) -> Result<AdminUpdate, StoreError> {
    let id: String = r.get(0)?;
    let audience: String = r.get(5)?;
    Ok(AdminUpdate {
        id: id
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("update id {id}")))?,
        peer: r.get(1)?,
        from: r.get(2)?,
        title: r.get(3)?,
        body: r.get(4)?,
        audience: UpdateAudience::parse(&audience)
            .ok_or_else(|| StoreError::Corrupt(format!("audience {audience}")))?,
        sent_at: from_millis(r.get(6)?)?,
        incoming: r.get::<_, String>(8)? == "in",
        acknowledged: false,
        acknowledgements: 0,
        version: r.get(7)?,
    })
}

fn acks(conn: &Connection, id: &str) -> Result<u32, StoreError> {
    Ok(conn.query_row(
        "SELECT count(*) FROM admin_update_acks WHERE update_id = ?1",
        [id],
        |r| r.get(0),
    )?)
}

fn acked_by(conn: &Connection, id: &str, who: &str) -> Result<bool, StoreError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM admin_update_acks WHERE update_id = ?1 AND who = ?2",
            [id, who],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

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

fn get(conn: &Connection, id: &str, direction: &str) -> Result<Option<AdminUpdate>, StoreError> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM admin_updates WHERE id = ?1 AND direction = ?2"
    ))?;
    let mut rows = st.query([id, direction])?;
    rows.next()?.map(from_row).transpose()
}

/// Hospital side: an update arrived from `source`. Stored once per id; streamed to its roles.
pub fn receive(
    ctx: &mut WriteCtx<'_>,
    source: &str,
    m: &AdminUpdateMessage,
) -> Result<(), ApiError> {
    let inserted = ctx
        .conn()
        .execute(
            "INSERT INTO admin_updates (id, direction, peer, from_name, title, body, audience, sent_at, version)
             VALUES (?1, 'in', ?2, ?3, ?4, ?5, ?6, ?7, 1) ON CONFLICT (id) DO NOTHING",
            params![
                m.id.to_string(),
                source,
                m.from,
                m.title,
                m.body,
                m.audience.as_str(),
                m.sent_at.timestamp_millis()
            ],
        )
        .map_err(StoreError::from)?;
    if inserted == 1
        && let Some(u) = get(ctx.conn(), &m.id.to_string(), "in")?
    {
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
) -> Result<(), ApiError> {
    let id = m.update_id.to_string();
    let Some(mut u) = get(ctx.conn(), &id, "out")?.filter(|u| u.peer == source) else {
        return Err(ApiError::new(
            ProblemType::UnreadablePayload,
            format!("{source} acknowledged update {id}, which was not sent to it"),
        ));
    };
    let who = format!("{source}/{}", m.acknowledged_by_id);
    let inserted = ctx
        .conn()
        .execute(
            "INSERT INTO admin_update_acks (update_id, who, who_name, acknowledged_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT DO NOTHING",
            params![id, who, m.acknowledged_by, m.acknowledged_at.timestamp_millis()],
        )
        .map_err(StoreError::from)?;
    if inserted == 1 {
        ctx.conn()
            .execute(
                "UPDATE admin_updates SET version = version + 1 WHERE id = ?1",
                [&id],
            )
            .map_err(StoreError::from)?;
        u.version += 1;
        u.acknowledgements = acks(ctx.conn(), &id)?;
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
) -> Result<AdminUpdate, ApiError> {
    let peer = peer::get(ctx.conn(), &req.peer)?
        .filter(|p| p.kind == NodeKind::Hospital)
        .ok_or_else(|| ApiError::field("peer", "is not a hospital this node is peered with"))?;
    let now = ctx.now();
    let m = AdminUpdateMessage {
        id: uuid::Uuid::now_v7(),
        title: req.title.trim().to_owned(),
        body: req.body.trim().to_owned(),
        audience: req.audience,
        from: node.organisation().to_owned(),
        sent_at: now,
    };
    ctx.conn()
        .execute(
            "INSERT INTO admin_updates (id, direction, peer, from_name, title, body, audience, sent_at, version)
             VALUES (?1, 'out', ?2, ?3, ?4, ?5, ?6, ?7, 1)",
            params![
                m.id.to_string(),
                peer.name,
                sender,
                m.title,
                m.body,
                m.audience.as_str(),
                now.timestamp_millis()
            ],
        )
        .map_err(StoreError::from)?;
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
    let u = get(ctx.conn(), &m.id.to_string(), "out")?
        .ok_or_else(|| ApiError::Internal("the update just written is missing".into()))?;
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
) -> Result<AdminUpdate, ApiError> {
    let key = id.to_string();
    let mut u = get(ctx.conn(), &key, "in")?
        .filter(|u| for_role(u.audience, role))
        .ok_or_else(|| ApiError::not_found("update"))?;
    if !acked_by(ctx.conn(), &key, &me.to_string())? {
        let now = ctx.now();
        ctx.conn()
            .execute(
                "INSERT INTO admin_update_acks (update_id, who, who_name, acknowledged_at) VALUES (?1, ?2, ?3, ?4)",
                params![key, me.to_string(), my_name, now.timestamp_millis()],
            )
            .map_err(StoreError::from)?;
        let peer = peer::get(ctx.conn(), &u.peer)?.ok_or_else(|| {
            ApiError::new(
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
    conn: &Connection,
    kind: NodeKind,
    me: PractitionerId,
    role: Role,
) -> Result<Vec<AdminUpdate>, StoreError> {
    let direction = match kind {
        NodeKind::Hospital => "in",
        NodeKind::Insurer => "out",
    };
    let mut st = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM admin_updates WHERE direction = ?1 ORDER BY sent_at DESC LIMIT 200"
    ))?;
    let mut rows = st.query([direction])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let mut u = from_row(r)?;
        let id = u.id.to_string();
        match kind {
            NodeKind::Hospital => {
                if !for_role(u.audience, role) {
                    continue;
                }
                u.acknowledged = acked_by(conn, &id, &me.to_string())?;
                if role == Role::Admin {
                    u.acknowledgements = acks(conn, &id)?;
                }
            }
            NodeKind::Insurer => u.acknowledgements = acks(conn, &id)?,
        }
        out.push(u);
    }
    Ok(out)
}

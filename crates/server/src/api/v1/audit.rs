//! The audit trail, for admins: read a page at a time, or export the filtered view as CSV.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use bytes::Bytes;
use carebridge_protocol::audit::{AuditLine, AuditQuery};
use carebridge_protocol::problem::Problem;

use crate::api::extract::{Caller, Query};
use crate::error::ApiError;
use crate::node::Node;
use crate::store::{Tx, WriteCtx};
use crate::visibility::RecordKind;

/// Reads audit entries, oldest first (page with `after`; newest first with `before`), with
/// who did each and what it touched in words. Reading the trail is itself audited.
#[utoipa::path(get, path = "/audit", tag = "audit", params(AuditQuery), security(("bearer" = [])),
    responses((status = 200, description = "Entries in chain order", body = Vec<AuditLine>)))]
pub async fn list_audit(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> Result<axum::Json<Vec<AuditLine>>, ApiError> {
    caller.may_see(RecordKind::AuditTrail)?;
    q.validate().map_err(ApiError::fields)?;
    let list = node
        .store
        .write(Some(caller.audit("audit.read", "")), move |ctx| {
            let q = resolved(ctx, q)?;
            ctx.set_detail(described(&q));
            let entries = crate::store::audit::list(ctx, &q)?;
            Ok::<_, ApiError>(crate::store::audit::lines(ctx, entries)?)
        })
        .await?;
    Ok(axum::Json(list))
}

/// Entries read per step of an export: the export never holds more than this in memory, and
/// never holds the writer or a reader for longer than one step.
const EXPORT_PAGE: u32 = 1000;

/// Exports the entries that pass the filters, oldest first, as CSV (RFC 4180, UTF-8, a header
/// line), up to the export's own entry: the export is audited before it starts, with its
/// filters. `after`, `before` and `limit` bound the export as they bound a page.
#[utoipa::path(get, path = "/audit/export", tag = "audit", params(AuditQuery), security(("bearer" = [])),
    responses((status = 200, description = "The entries as CSV: seq, recorded_at, actor, actor_name, action, entity, entity_name, patient, outcome, detail, source, hash", content_type = "text/csv", body = String),
              (status = 422, description = "A filter cannot be applied", body = Problem, content_type = "application/problem+json")))]
pub async fn export_audit(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    caller.may_see(RecordKind::AuditTrail)?;
    q.validate().map_err(ApiError::fields)?;
    // The export's own entry is written first; what it covers ends just before it, so two
    // exports with the same filters name the same entries whatever was appended meanwhile.
    let mut q = node
        .store
        .write(Some(caller.audit("audit.export", "")), move |ctx| {
            let mut q = resolved(ctx, q)?;
            ctx.set_detail(described(&q));
            let (head, _) = crate::store::audit::head(ctx)?;
            q.before = Some(q.before.map_or(head + 1, |b| b.min(head + 1)));
            Ok::<_, ApiError>(q)
        })
        .await?;
    let mut left = q.limit.map_or(u64::MAX, u64::from);
    let end = q.before.take();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let store = node.store.clone();
    tokio::spawn(async move {
        if tx
            .send(Ok(Bytes::from_static(CSV_HEADER.as_bytes())))
            .await
            .is_err()
        {
            return;
        }
        let mut after = q.after.unwrap_or(0);
        while left > 0 {
            let mut page = q.clone();
            page.after = Some(after);
            page.limit = Some(EXPORT_PAGE.min(u32::try_from(left).unwrap_or(EXPORT_PAGE)));
            let lines = store
                .read(move |tx: &Tx<'_>| {
                    let entries = crate::store::audit::list(tx, &page)?
                        .into_iter()
                        .take_while(|e| end.is_none_or(|end| e.record.seq < end))
                        .collect();
                    crate::store::audit::lines(tx, entries)
                })
                .await;
            let lines = match lines {
                Ok(l) => l,
                Err(e) => {
                    // The body is aborted: the client sees a cut transfer, never a short
                    // file that looks whole.
                    tracing::error!(error = %e, "audit export: read failed");
                    let _ = tx
                        .send(Err(std::io::Error::other("the export failed")))
                        .await;
                    return;
                }
            };
            let Some(last) = lines.last() else { break };
            after = last.entry.record.seq;
            left = left.saturating_sub(lines.len() as u64);
            let mut chunk = String::with_capacity(lines.len() * 256);
            for line in &lines {
                csv_row(&mut chunk, line);
            }
            if tx.send(Ok(Bytes::from(chunk))).await.is_err() {
                return;
            }
        }
    });
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
    let mut res = Response::new(Body::from_stream(stream));
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8; header=present"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"audit.csv\""),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// `q` with its card number resolved to the patient it names.
fn resolved(ctx: &WriteCtx<'_>, mut q: AuditQuery) -> Result<AuditQuery, ApiError> {
    if let Some(card) = q.card_number.take() {
        let patient = crate::store::audit::patient_of_card(ctx, &card)?
            .ok_or_else(|| ApiError::field("card_number", "no patient has this card number"))?;
        q.patient = Some(patient);
    }
    Ok(q)
}

/// The filters of a read or an export, for its audit entry's detail.
fn described(q: &AuditQuery) -> String {
    let mut parts = Vec::new();
    let mut add = |name: &str, v: Option<String>| {
        if let Some(v) = v {
            parts.push(format!("{name}={v}"));
        }
    };
    add("actor", q.actor.clone());
    add("action", q.action.clone());
    add("entity", q.entity.clone());
    add("patient", q.patient.map(|p| p.to_string()));
    add("from", q.from.map(|t| t.to_rfc3339()));
    add("to", q.to.map(|t| t.to_rfc3339()));
    parts.join(" ")
}

const CSV_HEADER: &str = "seq,recorded_at,actor,actor_name,action,entity,entity_name,patient,outcome,detail,source,hash\r\n";

/// Appends one entry as a CSV record.
fn csv_row(out: &mut String, line: &AuditLine) {
    let r = &line.entry.record;
    let fields = [
        r.seq.to_string(),
        r.recorded_at
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        r.actor.clone(),
        line.actor_name.clone().unwrap_or_default(),
        r.action.clone(),
        r.entity.clone(),
        line.entity_name.clone().unwrap_or_default(),
        line.patient.map(|p| p.to_string()).unwrap_or_default(),
        r.outcome.as_str().to_owned(),
        r.detail.clone(),
        r.source.clone(),
        line.entry.hash.clone(),
    ];
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_field(out, f);
    }
    out.push_str("\r\n");
}

/// One CSV field. Quoted when it holds a separator, a quote or a line break (quotes doubled);
/// a text a spreadsheet would run as a formula (=, +, -, @, tab, CR first) is prefixed with
/// an apostrophe, so that a name typed into CareBridge cannot run in the admin's spreadsheet.
fn csv_field(out: &mut String, f: &str) {
    let formula = f.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if !formula && !f.contains([',', '"', '\n', '\r']) {
        out.push_str(f);
        return;
    }
    out.push('"');
    if formula {
        out.push('\'');
    }
    out.push_str(&f.replace('"', "\"\""));
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    fn field(f: &str) -> String {
        let mut out = String::new();
        csv_field(&mut out, f);
        out
    }

    #[test]
    fn plain_fields_stay_as_they_are() {
        assert_eq!(field("staff:0193"), "staff:0193");
        assert_eq!(field("Dr. Claire Moreau"), "Dr. Claire Moreau");
        assert_eq!(field(""), "");
    }

    #[test]
    fn separators_quotes_and_line_breaks_are_quoted() {
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"no\""), "\"say \"\"no\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn formulas_are_defused() {
        assert_eq!(field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(field("+31 20"), "\"'+31 20\"");
        assert_eq!(field("-1"), "\"'-1\"");
        assert_eq!(field("@SUM(A1)"), "\"'@SUM(A1)\"");
    }
}

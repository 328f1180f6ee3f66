// Exchanges with other organisations: transmissions and their states (live), reports received
// by an insurer's reviewers (live), and admin updates — sent by an insurer's admin, read and
// acknowledged by a hospital's staff, with the count of acknowledgements going back.
import { useState, type FormEvent } from "react";
import { Button, Input, Label, TextArea, TextField } from "react-aria-components";
import { acknowledgeUpdate, adminUpdates, messageOf, peers, receivedReports, sendAdminUpdate, transmissions } from "../api";
import type { AdminUpdate } from "../bindings/AdminUpdate";
import type { ReceivedReports } from "../bindings/ReceivedReports";
import type { Transmission } from "../bindings/Transmission";
import type { UpdateAudience } from "../bindings/UpdateAudience";
import { dayOf, timeOf } from "../format";
import { t, tKey } from "../i18n";
import { mergeById, useLive } from "../live";

function when(iso: string, timeZone: string) {
  return `${dayOf(iso, timeZone)} ${timeOf(iso, timeZone)}`;
}

export function TransmissionTable({ rows, timeZone, labelledBy }: { rows: Transmission[]; timeZone: string; labelledBy: string }) {
  return (
    <table aria-labelledby={labelledBy} className="transmissions">
      <thead>
        <tr>
          <th scope="col">{t("transmissions.when")}</th>
          <th scope="col">{t("transmissions.to")}</th>
          <th scope="col">{t("transmissions.what")}</th>
          <th scope="col">{t("transmissions.state")}</th>
          <th scope="col">{t("transmissions.detail")}</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((x) => (
          <tr key={x.id} className={`transmission state-${x.state}`}>
            <td>{when(x.created_at, timeZone)}</td>
            <td>{x.peer}</td>
            <td>{x.summary}</td>
            <td>
              <span className={`badge state-${x.state}`}>{tKey("transmissionState", x.state)}</span>
              {x.overdue && x.state !== "acknowledged" && <span className="badge overdue"> {t("transmissions.overdue")}</span>}
            </td>
            <td>
              {x.state === "acknowledged" && x.acknowledged_at
                ? when(x.acknowledged_at, timeZone)
                : [x.attempts > 0 ? t("transmissions.attempts", { n: x.attempts }) : "", x.last_error ?? ""].filter(Boolean).join(" · ")}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** Every transmission (a hospital admin's view). */
export function Transmissions({ timeZone }: { timeZone: string }) {
  const rows = useLive(() => transmissions(null), [], [], (rows, c) => mergeById(rows, c.transmissions, (t) => t.id, (t) => t.version));
  return (
    <section aria-labelledby="transmissions-heading">
      <h2 id="transmissions-heading">{t("transmissions.heading")}</h2>
      {rows.error && <p className="error" role="alert">{rows.error}</p>}
      {rows.data?.length === 0 ? <p>{t("transmissions.none")}</p> : <TransmissionTable rows={rows.data ?? []} timeZone={timeZone} labelledBy="transmissions-heading" />}
    </section>
  );
}

function Received({ r, timeZone }: { r: ReceivedReports; timeZone: string }) {
  const [open, setOpen] = useState(false);
  const p = r.content.patient;
  const id = `received-${r.name}`;
  return (
    <article className="received" aria-labelledby={id}>
      <header className="row">
        <h3 id={id}>{t("received.patient", { name: `${p.given_name} ${p.family_name}`, date: p.birth_date, id: p.global_id })}</h3>
        <Button className="small secondary" onPress={() => setOpen((o) => !o)} aria-expanded={open}>
          {open ? t("received.close") : t("received.open")}
        </Button>
      </header>
      <p className="muted">
        {t("received.from", { source: r.source, time: when(r.received_at, timeZone) })} · {r.name}
      </p>
      <p className={r.signatures_verified ? "verified" : "error"}>
        {r.signatures_verified ? t("received.verified", { source: r.source }) : t("received.notVerified")}
      </p>
      <p className="muted">
        {t("received.sentBy", {
          by: r.content.sent_by,
          consentBy: r.content.consent_recorded_by,
          consentTime: when(r.content.consent_recorded_at, timeZone),
        })}
      </p>
      <ul>
        {r.content.reports.map((rep) => (
          <li key={rep.id}>
            <strong>{rep.content.title}</strong> · {tKey("reportStatus", rep.status)} · {t("reports.version", { n: rep.revision })} · {rep.author_name}
            {open && (
              <dl>
                <dt>{t("reports.findings")}</dt>
                <dd className="prewrap">{rep.content.findings || "—"}</dd>
                <dt>{t("reports.conclusion")}</dt>
                <dd className="prewrap">{rep.content.conclusion || "—"}</dd>
                {rep.content.codes.length > 0 && (
                  <>
                    <dt>{t("reports.codesShort")}</dt>
                    <dd>{rep.content.codes.join(", ")}</dd>
                  </>
                )}
              </dl>
            )}
          </li>
        ))}
      </ul>
    </article>
  );
}

/** What hospitals sent (an insurer's reviewers); new arrivals appear live. */
export function ReceivedView({ timeZone }: { timeZone: string }) {
  const rows = useLive(() => receivedReports(), [], ["received"], (rows, c) => mergeById(rows, c.received, (r) => r.name));
  return (
    <section aria-labelledby="received-heading">
      <h2 id="received-heading">{t("received.heading")}</h2>
      {rows.error && <p className="error" role="alert">{rows.error}</p>}
      {rows.data?.length === 0 && <p>{t("received.none")}</p>}
      {(rows.data ?? []).map((r) => (
        <Received key={r.name} r={r} timeZone={timeZone} />
      ))}
    </section>
  );
}

/** The unacknowledged updates for this user, for the tab's label. */
export function useUpdates(enabled: boolean) {
  return useLive<AdminUpdate[]>(
    () => (enabled ? adminUpdates() : Promise.resolve([])),
    [enabled],
    [],
    (rows, c) => (enabled ? mergeById(rows, c.admin_updates, (u) => u.id, (u) => u.version) : rows),
  );
}

/** A hospital's staff: updates from insurers for their role; each is acknowledged once. */
export function Updates({ timeZone }: { timeZone: string }) {
  const rows = useUpdates(true);
  const [error, setError] = useState<string | null>(null);
  return (
    <section aria-labelledby="updates-heading">
      <h2 id="updates-heading">{t("updates.heading")}</h2>
      {(rows.error || error) && <p className="error" role="alert">{rows.error ?? error}</p>}
      {rows.data?.length === 0 && <p>{t("updates.none")}</p>}
      {(rows.data ?? []).map((u) => (
        <article key={u.id} className={`update${u.acknowledged ? "" : " unread"}`} aria-labelledby={`update-${u.id}`}>
          <h3 id={`update-${u.id}`}>{u.title}</h3>
          <p className="muted">
            {t("updates.from", { from: u.from, time: when(u.sent_at, timeZone) })} · {t("updates.for", { audience: tKey("audience", u.audience) })}
          </p>
          <p className="prewrap">{u.body}</p>
          {u.acknowledged ? (
            <p className="acknowledged">✓ {t("updates.acknowledged")}</p>
          ) : (
            <Button
              className="small"
              aria-label={`${t("updates.acknowledge")}: ${u.title}`}
              onPress={() => acknowledgeUpdate(u.id).then(() => setError(null)).catch((e) => setError(messageOf(e)))}
            >
              {t("updates.acknowledge")}
            </Button>
          )}
        </article>
      ))}
    </section>
  );
}

/** An insurer's admin: write an update for a hospital's staff; see how many acknowledged. */
export function SendUpdates({ timeZone }: { timeZone: string }) {
  const sent = useUpdates(true);
  const hospitals = useLive(() => peers().then((ps) => ps.filter((p) => p.kind === "hospital")), [], []);
  const [chosen, setChosen] = useState("");
  const [audience, setAudience] = useState<UpdateAudience>("all");
  const [title, setTitle] = useState("");
  const [body, setBody] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const peer = chosen || hospitals.data?.[0]?.name || "";
  async function submit(e: FormEvent) {
    e.preventDefault();
    setError(null);
    try {
      await sendAdminUpdate({ peer, audience, title: title.trim(), body: body.trim() });
      setMessage(t("updates.sent", { peer }));
      setTitle("");
      setBody("");
    } catch (err) {
      setError(messageOf(err));
    }
  }
  return (
    <section aria-labelledby="updates-heading">
      <h2 id="updates-heading">{t("updates.heading")}</h2>
      <form className="panel form-grid" onSubmit={submit} aria-labelledby="new-update-heading">
        <h3 id="new-update-heading">{t("updates.new")}</h3>
        <div className="field">
          <label htmlFor="update-peer">{t("updates.hospital")}</label>
          <select id="update-peer" value={peer} onChange={(e) => setChosen(e.target.value)}>
            {(hospitals.data ?? []).map((p) => (
              <option key={p.name} value={p.name}>{p.name}</option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor="update-audience">{t("updates.audience")}</label>
          <select id="update-audience" value={audience} onChange={(e) => setAudience(e.target.value as UpdateAudience)}>
            {(["all", "doctor", "reception"] as const).map((a) => (
              <option key={a} value={a}>{tKey("audience", a)}</option>
            ))}
          </select>
        </div>
        <TextField value={title} onChange={setTitle} isRequired>
          <Label>{t("updates.title")}</Label>
          <Input />
        </TextField>
        <TextField value={body} onChange={setBody} isRequired className="react-aria-TextField wide">
          <Label>{t("updates.body")}</Label>
          <TextArea rows={4} />
        </TextField>
        {error && <p className="error" role="alert">{error}</p>}
        {message && <p role="status">{message}</p>}
        <Button type="submit" isDisabled={!peer || !title.trim() || !body.trim()}>{t("updates.send")}</Button>
      </form>
      {sent.error && <p className="error" role="alert">{sent.error}</p>}
      {(sent.data ?? []).map((u) => (
        <article key={u.id} className="update" aria-labelledby={`update-${u.id}`}>
          <h3 id={`update-${u.id}`}>{u.title}</h3>
          <p className="muted">
            {u.peer} · {t("updates.for", { audience: tKey("audience", u.audience) })} · {when(u.sent_at, timeZone)}
          </p>
          <p className="prewrap">{u.body}</p>
          <p className="acks">{t("updates.acks", { n: u.acknowledgements })}</p>
        </article>
      ))}
    </section>
  );
}

// The admin's audit trail: who did what to which record, in words, newest first; filtered by
// person, kind of action, patient and period; exported as CSV (the node audits the export).
import { useCallback, useEffect, useState, type FormEvent } from "react";
import { Button, Input, Label, TextField } from "react-aria-components";
import { auditTrail, exportAuditTrail, kioskDevices, messageOf, staffAccounts } from "../api";
import type { AuditFilter } from "../bindings/AuditFilter";
import type { AuditRow } from "../bindings/AuditRow";
import type { KioskDevice } from "../bindings/KioskDevice";
import type { PatientId } from "../bindings/PatientId";
import type { Practitioner } from "../bindings/Practitioner";
import { dayOf, timeOf } from "../format";
import { t, tKey, useLocale } from "../i18n";

const PAGE = 100;

/** The families of actions the trail is filtered by, in the order the menu offers them. */
export const ACTION_FAMILIES = [
  "session",
  "patient",
  "appointment",
  "report",
  "consent",
  "transmission",
  "federation",
  "practitioner",
  "kiosk",
  "schedule",
  "audit",
] as const;

const NO_FILTER: AuditFilter = { actor: null, action: null, patient: null, cardNumber: null, from: null, to: null };

/** Who did it, in words: the name the node gave, else what the actor is. */
export function actorWords(row: Pick<AuditRow, "actor" | "actorName">): string {
  const [kind] = row.actor.split(":", 1);
  if (row.actorName) return kind === "kiosk" ? t("audit.kioskNamed", { label: row.actorName }) : row.actorName;
  if (row.actor === "node") return t("audit.node");
  if (row.actor === "anonymous") return t("audit.anonymous");
  return row.actor;
}

/** What was touched, in words: its kind and the name the node gave (the patient's, for a
 *  record of theirs). */
export function recordWords(row: Pick<AuditRow, "entity" | "entityName">): string {
  if (!row.entity) return "—";
  const kind = row.entity.split("/", 1)[0];
  const words = tKey("audit.kind", kind);
  return row.entityName ? `${words} · ${row.entityName}` : words;
}

/** The action in words; one the catalogue does not know shows as the node names it. */
export function actionWords(action: string): string {
  return tKey("audit.action", action);
}

export function AuditTrail({ timeZone }: { timeZone: string }) {
  useLocale();
  const [rows, setRows] = useState<AuditRow[]>([]);
  const [error, setError] = useState<string | null>(null);
  // Where the last export was saved (worded at render: a switch of language rewords it).
  const [saved, setSaved] = useState<string | null>(null);
  const [more, setMore] = useState(false);
  const [loading, setLoading] = useState(true);
  const [exporting, setExporting] = useState(false);
  // The filter the table shows, and the one being edited in the form.
  const [filter, setFilter] = useState<AuditFilter>(NO_FILTER);
  const [draft, setDraft] = useState<AuditFilter>(NO_FILTER);
  // The patient chosen from a row, by name (the filter holds their id).
  const [patientName, setPatientName] = useState<string | null>(null);
  const [people, setPeople] = useState<Practitioner[]>([]);
  const [kiosks, setKiosks] = useState<KioskDevice[]>([]);

  useEffect(() => {
    staffAccounts().then(setPeople).catch((e) => setError(messageOf(e)));
    kioskDevices().then(setKiosks).catch((e) => setError(messageOf(e)));
  }, []);

  const load = useCallback((f: AuditFilter, before: number | null) => {
    setLoading(true);
    auditTrail(f, before, PAGE)
      .then((page) => {
        setRows((r) => (before === null ? page : [...r, ...page]));
        setMore(page.length === PAGE);
        setError(null);
      })
      .catch((e) => {
        if (before === null) setRows([]);
        setMore(false);
        setError(messageOf(e));
      })
      .finally(() => setLoading(false));
  }, []);
  useEffect(() => load(filter, null), [load, filter]);

  function apply(next: AuditFilter) {
    setSaved(null);
    setDraft(next);
    setFilter(next);
  }
  function submit(e: FormEvent) {
    e.preventDefault();
    const card = draft.cardNumber?.trim().toUpperCase() || null;
    if (card) setPatientName(null);
    apply({ ...draft, cardNumber: card, patient: card ? null : draft.patient });
  }
  function byPatient(patient: PatientId, name: string | null) {
    setPatientName(name);
    apply({ ...draft, patient, cardNumber: null });
  }
  function clear() {
    setPatientName(null);
    apply(NO_FILTER);
  }
  async function exportCsv() {
    setExporting(true);
    setSaved(null);
    try {
      setSaved((await exportAuditTrail(filter)).path);
    } catch (e) {
      setError(messageOf(e));
    } finally {
      setExporting(false);
    }
  }
  const set = (change: Partial<AuditFilter>) => setDraft((d) => ({ ...d, ...change }));
  const filtered = JSON.stringify(filter) !== JSON.stringify(NO_FILTER);

  return (
    <section aria-labelledby="audit-heading">
      <h2 id="audit-heading">{t("admin.audit")}</h2>
      <form className="panel audit-filters" onSubmit={submit} aria-label={t("audit.filters")}>
        <label>
          {t("audit.person")}
          <select value={draft.actor ?? ""} onChange={(e) => set({ actor: e.target.value || null })}>
            <option value="">{t("audit.anyone")}</option>
            {people.map((p) => (
              <option key={p.id} value={`staff:${p.id}`}>
                {p.display_name} ({t(`role.${p.role}`)})
              </option>
            ))}
            {kiosks.map((k) => (
              <option key={k.id} value={`kiosk:${k.id}`}>
                {t("audit.kioskNamed", { label: k.label })}
              </option>
            ))}
            <option value="node">{t("audit.node")}</option>
          </select>
        </label>
        <label>
          {t("audit.actionFilter")}
          <select value={draft.action ?? ""} onChange={(e) => set({ action: e.target.value || null })}>
            <option value="">{t("audit.allActions")}</option>
            {ACTION_FAMILIES.map((f) => (
              <option key={f} value={f}>{t(`audit.family.${f}`)}</option>
            ))}
          </select>
        </label>
        <TextField value={draft.cardNumber ?? ""} onChange={(v) => set({ cardNumber: v || null })} autoComplete="off">
          <Label>{t("audit.cardNumber")}</Label>
          <Input />
        </TextField>
        <label>
          {t("audit.from")}
          <input type="date" value={draft.from ?? ""} onChange={(e) => set({ from: e.target.value || null })} />
        </label>
        <label>
          {t("audit.to")}
          <input type="date" value={draft.to ?? ""} onChange={(e) => set({ to: e.target.value || null })} />
        </label>
        <div className="actions">
          <Button type="submit">{t("audit.apply")}</Button>
          <Button className="secondary" onPress={clear} isDisabled={!filtered}>{t("audit.clear")}</Button>
          <Button className="secondary" onPress={() => void exportCsv()} isDisabled={exporting}>
            {exporting ? t("audit.exporting") : t("audit.export")}
          </Button>
        </div>
      </form>
      {filter.patient && (
        <p className="filter-chip">
          {t("audit.patientFilter", { name: patientName ?? filter.patient })}{" "}
          <Button className="small secondary" onPress={() => apply({ ...filter, patient: null })}>
            {t("audit.removeFilter")}
          </Button>
        </p>
      )}
      {error && <p className="error" role="alert">{error}</p>}
      {saved && <p role="status">{t("audit.exported", { path: saved })}</p>}
      <table aria-labelledby="audit-heading" className="audit" aria-busy={loading}>
        <thead>
          <tr>
            <th scope="col">#</th>
            <th scope="col">{t("table.date")}</th>
            <th scope="col">{t("admin.actor")}</th>
            <th scope="col">{t("admin.action")}</th>
            <th scope="col">{t("admin.entity")}</th>
            <th scope="col">{t("admin.outcome")}</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={r.seq} className={r.outcome === "failure" ? "failure" : undefined}>
              <td>{r.seq}</td>
              <td>
                <span className="nowrap">{dayOf(r.recordedAt, timeZone)}</span>{" "}
                <span className="nowrap">{timeOf(r.recordedAt, timeZone)}</span>
              </td>
              <td>
                {r.actor.includes(":") && r.actor !== filter.actor ? (
                  // The name is what the button is called (what pressing it does is its title):
                  // a plain button, which passes its title on.
                  <button type="button" className="link" onClick={() => apply({ ...filter, actor: r.actor })}
                    title={t("audit.byPerson", { name: actorWords(r) })}>
                    {actorWords(r)}
                  </button>
                ) : actorWords(r)}
              </td>
              <td title={r.action}>{actionWords(r.action)}</td>
              <td title={r.entity || undefined}>
                {r.patient && r.patient !== filter.patient ? (
                  <button type="button" className="link" onClick={() => byPatient(r.patient as PatientId, r.entityName)}
                    title={t("audit.byPatient", { name: r.entityName ?? r.patient })}>
                    {recordWords(r)}
                  </button>
                ) : recordWords(r)}
              </td>
              <td>{tKey("audit.outcome", r.outcome)}{r.detail && ` · ${r.detail}`}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {!loading && rows.length === 0 && !error && <p role="status">{t("audit.none")}</p>}
      {more && rows.length > 0 && (
        <Button className="secondary" onPress={() => load(filter, rows[rows.length - 1].seq)}>{t("admin.more")}</Button>
      )}
    </section>
  );
}

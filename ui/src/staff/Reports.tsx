// A doctor's reports on a patient's page: writing a draft (saved here first, sent when the node
// can be reached), finalising and amending (the node signs each version), entering one in
// error, the versions, printing; then sharing chosen reports with an insurer the patient
// consented to, and following each transmission live.
import { useState, type FormEvent } from "react";
import { Button, Input, Label, TextArea, TextField } from "react-aria-components";
import {
  consents,
  messageOf,
  patientReports,
  peers,
  printReport,
  recordConsent,
  reportAction,
  reportRevisions,
  newReport,
  sendReports,
  transmissions,
  withdrawConsent,
} from "../api";
import type { Report } from "../bindings/Report";
import type { ReportContent } from "../bindings/ReportContent";
import type { ReportRevision } from "../bindings/ReportRevision";
import type { ReportRow } from "../bindings/ReportRow";
import { dayOf, timeOf } from "../format";
import { t, tKey } from "../i18n";
import type { Transmission } from "../bindings/Transmission";
import { mergeById, useLive } from "../live";
import { TransmissionTable } from "./Exchange";
import { printoutText } from "./Documents";
import { CiteStudy } from "./Imaging";

const EMPTY: ReportContent = { title: "", findings: "", conclusion: "", codes: [] };

function when(iso: string, timeZone: string) {
  return `${dayOf(iso, timeZone)} ${timeOf(iso, timeZone)}`;
}

/** Where an editor was opened from: a new report, a draft, or an amendment of a signed one. */
type Editing = { kind: "new" } | { kind: "draft"; report: Report } | { kind: "amend"; report: Report };

function Editor({ editing, patientId, onDone }: { editing: Editing; patientId: string; onDone: (message?: string) => void }) {
  const start = editing.kind === "new" ? EMPTY : editing.report.content;
  const [title, setTitle] = useState(start.title);
  const [findings, setFindings] = useState(start.findings);
  const [conclusion, setConclusion] = useState(start.conclusion);
  const [codes, setCodes] = useState(start.codes.join(", "));
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const content = (): ReportContent => ({
    title: title.trim(),
    findings,
    conclusion,
    codes: codes.split(",").map((c) => c.trim()).filter(Boolean),
  });
  async function save(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      if (editing.kind === "new") await newReport(patientId, content());
      else if (editing.kind === "draft") await reportAction(editing.report.id, "save-draft", content());
      else await reportAction(editing.report.id, "amend", content());
      onDone();
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  }
  const heading = editing.kind === "amend" ? t("reports.amend") : editing.kind === "draft" ? t("reports.edit") : t("reports.new");
  return (
    <form className="panel form-grid report-editor" onSubmit={save} aria-labelledby="report-editor-heading">
      <h4 id="report-editor-heading">{heading}</h4>
      <TextField value={title} onChange={setTitle} isRequired autoFocus>
        <Label>{t("reports.title")}</Label>
        <Input />
      </TextField>
      <TextField value={findings} onChange={setFindings} className="react-aria-TextField wide">
        <Label>{t("reports.findings")}</Label>
        <TextArea rows={5} />
      </TextField>
      <CiteStudy patientId={patientId} onCite={(c) => setFindings((f) => (f.trim() ? `${f.trimEnd()}\n${c}` : c))} />
      <TextField value={conclusion} onChange={setConclusion} className="react-aria-TextField wide">
        <Label>{t("reports.conclusion")}</Label>
        <TextArea rows={3} />
      </TextField>
      <TextField value={codes} onChange={setCodes}>
        <Label>{t("reports.codes")}</Label>
        <Input />
      </TextField>
      {error && <p className="error" role="alert">{error}</p>}
      <div className="row">
        <Button type="submit" isDisabled={busy || !title.trim()}>
          {editing.kind === "amend" ? t("reports.saveAmendment") : t("reports.saveDraft")}
        </Button>
        <Button className="secondary" onPress={() => onDone()}>{t("common.cancel")}</Button>
      </div>
    </form>
  );
}

function Versions({ reportId, timeZone }: { reportId: string; timeZone: string }) {
  const versions = useLive<ReportRevision[]>(() => reportRevisions(reportId), [reportId], ["report"]);
  const [printed, setPrinted] = useState<string | null>(null);
  return (
    <div className="versions">
      {versions.error && <p className="error" role="alert">{versions.error}</p>}
      <ol>
        {(versions.data ?? []).map((v) => (
          <li key={v.revision}>
            <strong>{t("reports.version", { n: v.revision })}</strong> · {tKey("reportStatus", v.status)} · {v.author_name} ·{" "}
            {when(v.signature.signed_at, timeZone)} · {v.content.conclusion || "—"}{" "}
            <Button
              className="small secondary"
              aria-label={`${t("reports.print")}: ${t("reports.version", { n: v.revision })}`}
              onPress={() =>
                printReport(reportId, v.revision)
                  .then((r) => setPrinted(printoutText(r)))
                  .catch((e) => setPrinted(messageOf(e)))
              }
            >
              {t("reports.print")}
            </Button>
          </li>
        ))}
      </ol>
      {printed && <p role="status">{printed}</p>}
    </div>
  );
}

function ReportCard({
  row,
  me,
  timeZone,
  selected,
  onSelect,
  onEdit,
}: {
  row: ReportRow;
  me: string;
  timeZone: string;
  selected: boolean;
  onSelect: (on: boolean) => void;
  onEdit: (e: Editing) => void;
}) {
  const r = row.report;
  const [showVersions, setShowVersions] = useState(false);
  const [reason, setReason] = useState<string | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const mine = r.author_id === me;
  const draft = r.status === "preliminary";
  const signed = r.status === "final" || r.status === "amended";
  const act = (p: Promise<unknown>) => p.then(() => setMessage(null)).catch((e) => setMessage(messageOf(e)));
  const headingId = `report-${r.id}`;
  return (
    <article className={`report-card${row.pending ? " pending" : ""}`} aria-labelledby={headingId}>
      <header>
        {signed && !row.pending && (
          <label className="select-report">
            <input type="checkbox" checked={selected} onChange={(e) => onSelect(e.target.checked)} aria-label={t("reports.select", { title: r.content.title })} />
          </label>
        )}
        <h4 id={headingId}>{r.content.title}</h4>
        <span className={`badge status-${r.status}`}>{tKey("reportStatus", r.status)}</span>
        {r.revision > 0 && <span className="muted"> {t("reports.version", { n: r.revision })}</span>}
        {row.pending && <span className="pending-mark"> ({t("appointment.pending")})</span>}
      </header>
      <p className="muted">{t("reports.by", { author: r.author_name, time: when(r.updated_at, timeZone) })}</p>
      {r.error_reason && <p className="error-reason">{t("reports.errorReasonShown", { reason: r.error_reason })}</p>}
      <dl>
        <dt>{t("reports.findings")}</dt>
        <dd className="prewrap">{r.content.findings || "—"}</dd>
        <dt>{t("reports.conclusion")}</dt>
        <dd className="prewrap">{r.content.conclusion || "—"}</dd>
        {r.content.codes.length > 0 && (
          <>
            <dt>{t("reports.codesShort")}</dt>
            <dd>{r.content.codes.join(", ")}</dd>
          </>
        )}
      </dl>
      <p className="muted signature">
        {r.signature
          ? t("reports.signedBy", {
              time: when(r.signature.signed_at, timeZone),
              node: r.signature.node,
              author: r.author_name,
              fingerprint: r.signature.key_fingerprint,
            })
          : signed
            ? t("reports.unsigned")
            : null}
      </p>
      <div className="row actions">
        {draft && mine && (
          <>
            <Button className="small secondary" onPress={() => onEdit({ kind: "draft", report: r })}>{t("reports.edit")}</Button>
            <Button className="small" onPress={() => act(reportAction(r.id, "finalise"))}>{t("reports.finalise")}</Button>
          </>
        )}
        {signed && (
          <Button className="small secondary" onPress={() => onEdit({ kind: "amend", report: r })}>{t("reports.amend")}</Button>
        )}
        {r.status !== "entered-in-error" && (!draft || mine) && (
          <Button className="small secondary" onPress={() => setReason("")}>{t("reports.enteredInError")}</Button>
        )}
        {r.revision > 0 && !row.pending && (
          <Button className="small secondary" onPress={() => setShowVersions((v) => !v)} aria-expanded={showVersions}>
            {showVersions ? t("reports.hideVersions") : t("reports.versions")}
          </Button>
        )}
        {!row.pending && (
          <Button
            className="small secondary"
            aria-label={`${t("reports.print")}: ${r.content.title}`}
            onPress={() =>
              printReport(r.id)
                .then((p) => setMessage(printoutText(p)))
                .catch((e) => setMessage(messageOf(e)))
            }
          >
            {t("reports.print")}
          </Button>
        )}
      </div>
      {reason !== null && (
        <form
          className="inline-form"
          onSubmit={(e) => {
            e.preventDefault();
            act(reportAction(r.id, "entered-in-error", null, reason.trim())).then(() => setReason(null));
          }}
        >
          <TextField value={reason} onChange={setReason} isRequired autoFocus>
            <Label>{t("reports.errorReason")}</Label>
            <Input />
          </TextField>
          <Button type="submit" className="small danger" isDisabled={!reason.trim()}>{t("reports.confirmError")}</Button>
          <Button className="small secondary" onPress={() => setReason(null)}>{t("common.cancel")}</Button>
        </form>
      )}
      {showVersions && <Versions reportId={r.id} timeZone={timeZone} />}
      {message && <p role="status" className="message">{message}</p>}
    </article>
  );
}

function ShareWithInsurer({ patientId, selected, timeZone, onSent }: { patientId: string; selected: string[]; timeZone: string; onSent: () => void }) {
  const insurers = useLive(() => peers().then((ps) => ps.filter((p) => p.kind === "insurer")), [], []);
  const [chosen, setChosen] = useState<string>("");
  const peer = chosen || insurers.data?.[0]?.name || "";
  const given = useLive(() => consents(patientId), [patientId, peer], ["consent"]);
  const sent = useLive<Transmission[]>(() => transmissions(patientId), [patientId], [], (rows, c) =>
    mergeById(rows, c.transmissions.filter((t) => t.patient_id === patientId), (t) => t.id, (t) => t.version),
  );
  const [message, setMessage] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const consent = given.data?.find((c) => c.peer === peer);
  const run = (p: Promise<unknown>) => {
    setError(null);
    return p.catch((e) => {
      setError(messageOf(e));
      throw e;
    });
  };
  if (insurers.data && insurers.data.length === 0) {
    return (
      <section aria-labelledby="share-heading" className="panel">
        <h3 id="share-heading">{t("share.heading")}</h3>
        <p>{t("share.noPeers")}</p>
      </section>
    );
  }
  return (
    <section aria-labelledby="share-heading" className="panel share">
      <h3 id="share-heading">{t("share.heading")}</h3>
      {(insurers.error || given.error) && <p className="error" role="alert">{insurers.error ?? given.error}</p>}
      <div className="row">
        <label htmlFor="share-peer">{t("share.insurer")}</label>
        <select id="share-peer" value={peer} onChange={(e) => setChosen(e.target.value)}>
          {(insurers.data ?? []).map((p) => (
            <option key={p.name} value={p.name}>{p.name}</option>
          ))}
        </select>
      </div>
      {consent ? (
        <p>
          {t("share.consentGiven", { by: consent.recorded_by, time: when(consent.recorded_at, timeZone) })}{" "}
          <Button className="small secondary" onPress={() => run(withdrawConsent(patientId, peer)).catch(() => {})}>
            {t("share.withdrawConsent")}
          </Button>
        </p>
      ) : (
        <p>
          {t("share.noConsent")}{" "}
          <Button className="small" isDisabled={!peer} onPress={() => run(recordConsent(patientId, peer)).catch(() => {})}>
            {t("share.recordConsent")}
          </Button>
        </p>
      )}
      <p className="muted">{t("share.chooseReports")}</p>
      <Button
        isDisabled={!consent || selected.length === 0}
        onPress={() =>
          run(sendReports(peer, selected))
            .then((tr) => {
              setMessage(t("share.sent", { peer, summary: (tr as { summary: string }).summary }));
              onSent();
            })
            .catch(() => {})
        }
      >
        {t("share.send", { n: selected.length })}
      </Button>
      {error && <p className="error" role="alert">{error}</p>}
      {message && <p role="status">{message}</p>}
      <h4 id="patient-transmissions">{t("transmissions.heading")}</h4>
      {sent.error && <p className="error" role="alert">{sent.error}</p>}
      {sent.data?.length === 0 ? <p>{t("transmissions.none")}</p> : <TransmissionTable rows={sent.data ?? []} timeZone={timeZone} labelledBy="patient-transmissions" />}
    </section>
  );
}

/** The reports section of a patient's page, for doctors. */
export function PatientReports({ patientId, me, timeZone }: { patientId: string; me: string; timeZone: string }) {
  const reports = useLive(() => patientReports(patientId), [patientId], ["report"]);
  const [editing, setEditing] = useState<Editing | null>(null);
  const [selected, setSelected] = useState<string[]>([]);
  return (
    <>
      <section aria-labelledby="reports-heading" className="reports">
        <div className="row">
          <h3 id="reports-heading">{t("reports.heading")}</h3>
          {!editing && <Button className="small" onPress={() => setEditing({ kind: "new" })}>{t("reports.new")}</Button>}
        </div>
        {reports.error && <p className="error" role="alert">{reports.error}</p>}
        {editing && <Editor editing={editing} patientId={patientId} onDone={() => setEditing(null)} />}
        {reports.data?.length === 0 && !editing && <p>{t("reports.none")}</p>}
        {(reports.data ?? []).map((row) => (
          <ReportCard
            key={row.report.id}
            row={row}
            me={me}
            timeZone={timeZone}
            selected={selected.includes(row.report.id)}
            onSelect={(on) => setSelected((s) => (on ? [...s, row.report.id] : s.filter((x) => x !== row.report.id)))}
            onEdit={setEditing}
          />
        ))}
      </section>
      <ShareWithInsurer patientId={patientId} selected={selected} timeZone={timeZone} onSent={() => setSelected([])} />
    </>
  );
}

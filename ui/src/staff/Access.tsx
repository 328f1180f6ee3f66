// Records at other hospitals on a doctor's patient page: asking another hospital to read the
// patient's record there, passing on the code the patient gives, and reading what the grant
// allows in a section marked as coming from that hospital. The front desk's and the kiosk's
// side is `../access.tsx`.
import { useEffect, useState, type FormEvent } from "react";
import { Button, DateField, DateInput, DateSegment, Input, Label, TextField } from "react-aria-components";
import type { CalendarDate } from "@internationalized/date";
import { describeScopes, scopeResource, until } from "../access";
import { messageOf, peers, remoteAccess, remoteRecords, requestRemoteAccess, sendAccessCode } from "../api";
import type { AccessPurpose } from "../bindings/AccessPurpose";
import type { RemoteAccess } from "../bindings/RemoteAccess";
import type { RemoteRecordView } from "../bindings/RemoteRecordView";
import { dayOf, timeOf } from "../format";
import { t, tKey } from "../i18n";
import { useLive } from "../live";

/** What a doctor may ask another hospital to read, in the order the form offers them. */
const READABLE = [
  ["DiagnosticReport", "patient/DiagnosticReport.rs"],
  ["Appointment", "patient/Appointment.rs"],
  ["Patient", "patient/Patient.r"],
] as const;

function AskForm({ patientId, onAsked }: { patientId: string; onAsked: () => void }) {
  const hospitals = useLive(peers, [], []);
  const choices = (hospitals.data ?? []).filter((p) => p.kind === "hospital");
  const [peer, setPeer] = useState("");
  const [card, setCard] = useState("");
  const [birth, setBirth] = useState<CalendarDate | null>(null);
  const [purpose, setPurpose] = useState<AccessPurpose>("treatment");
  const [wanted, setWanted] = useState<string[]>(["patient/DiagnosticReport.rs"]);
  const [hours, setHours] = useState(24);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const chosen = peer || choices[0]?.name || "";
  const maxHours = purpose === "emergency" ? 4 : 720;
  async function submit(e: FormEvent) {
    e.preventDefault();
    if (!birth) return;
    setBusy(true);
    setError(null);
    try {
      await requestRemoteAccess(patientId, {
        peer: chosen,
        card_number: card.trim(),
        birth_date: birth.toString(),
        purpose,
        scopes: wanted,
        hours: Math.min(hours, maxHours),
      });
      onAsked();
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  }
  return (
    <form className="panel form-grid" onSubmit={submit} aria-labelledby="ask-heading">
      <h4 id="ask-heading">{t("access.askHeading")}</h4>
      {hospitals.error && <p className="error" role="alert">{hospitals.error}</p>}
      {hospitals.data && choices.length === 0 && <p>{t("access.noHospitals")}</p>}
      <label className="field">
        <span>{t("access.hospital")}</span>
        <select id="ask-hospital" value={chosen} onChange={(e) => setPeer(e.target.value)}>
          {choices.map((p) => (
            <option key={p.name} value={p.name}>
              {p.name}
            </option>
          ))}
        </select>
      </label>
      <TextField value={card} onChange={setCard} isRequired>
        <Label>{t("access.card")}</Label>
        <Input id="ask-card" />
      </TextField>
      <DateField value={birth} onChange={setBirth} isRequired granularity="day" id="ask-birth">
        <Label>{t("access.birthDate")}</Label>
        <DateInput className="date-input">{(segment) => <DateSegment segment={segment} />}</DateInput>
      </DateField>
      <label className="field">
        <span>{t("access.purpose")}</span>
        <select
          id="ask-purpose"
          value={purpose}
          onChange={(e) => {
            const p = e.target.value as AccessPurpose;
            setPurpose(p);
            if (p === "emergency") setHours((h) => Math.min(h, 4));
          }}
        >
          <option value="treatment">{t("access.purpose.treatment")}</option>
          <option value="emergency">{t("access.purpose.emergency")}</option>
        </select>
      </label>
      <fieldset className="field">
        <legend>{t("access.whatToRead")}</legend>
        {READABLE.map(([resource, scope]) => (
          <label key={scope} className="check">
            <input
              type="checkbox"
              id={`ask-scope-${resource}`}
              checked={wanted.includes(scope)}
              onChange={(e) => setWanted((w) => (e.target.checked ? [...w, scope] : w.filter((s) => s !== scope)))}
            />
            {tKey("access.scope", resource)}
          </label>
        ))}
      </fieldset>
      <label className="field">
        <span>{t("access.hours", { max: maxHours })}</span>
        <input
          id="ask-hours"
          type="number"
          min={1}
          max={maxHours}
          value={hours}
          onChange={(e) => setHours(Math.max(1, Number(e.target.value) || 1))}
        />
      </label>
      {purpose === "emergency" && <p className="muted">{t("access.emergencyNote")}</p>}
      {error && <p className="error" role="alert">{error}</p>}
      <Button type="submit" id="ask-submit" isDisabled={busy || !chosen || !card.trim() || !birth || wanted.length === 0}>
        {t("access.askSubmit")}
      </Button>
    </form>
  );
}

function CodeForm({ request }: { request: RemoteAccess }) {
  const [code, setCode] = useState("");
  const [busy, setBusy] = useState(false);
  const [sent, setSent] = useState(false);
  const [error, setError] = useState<string | null>(null);
  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await sendAccessCode(request.id, code.trim());
      setCode("");
      setSent(true);
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  }
  return (
    <form className="row code-form" onSubmit={submit} aria-label={t("access.codeLabel")}>
      <TextField value={code} onChange={setCode} isRequired>
        <Label>{t("access.code")}</Label>
        <Input id={`code-${request.id}`} inputMode="numeric" autoComplete="one-time-code" placeholder="4821-7730" />
      </TextField>
      <Button type="submit" className="small" isDisabled={busy || code.replace(/\D/g, "").length !== 8}>
        {t("access.sendCode")}
      </Button>
      {request.tries_left < 5 && <span className="muted">{t("access.triesLeft", { n: request.tries_left })}</span>}
      {sent && !error && <span role="status">{t("access.codeSent")}</span>}
      {error && <p className="error" role="alert">{error}</p>}
    </form>
  );
}

/** What the grant shows, read from the other hospital when shown and when the doctor asks
 *  again: each read is recorded there for the patient to see, so it does not poll, nor read
 *  again for every change of the request (it is shown only while granted). */
function GrantedRecords({ patientId, request, timeZone }: { patientId: string; request: RemoteAccess; timeZone: string }) {
  const [again, setAgain] = useState(0);
  // Read once per ask: useLive reads again as it starts listening for changes, and each read
  // here is one more line in the patient's "who looked".
  const [records, setRecords] = useState<{ data?: RemoteRecordView; error: string | null }>({ error: null });
  useEffect(() => {
    let live = true;
    setRecords((s) => ({ data: s.data, error: null }));
    remoteRecords(patientId, request.id).then(
      (data) => live && setRecords({ data, error: null }),
      (e) => live && setRecords((s) => ({ data: s.data, error: messageOf(e) })),
    );
    return () => {
      live = false;
    };
  }, [patientId, request.id, again]);
  const r = records.data;
  return (
    <section className="remote-records" aria-labelledby={`remote-${request.id}`}>
      <h4 id={`remote-${request.id}`} className="from-elsewhere">
        {t("access.from", { organisation: request.organisation })}
      </h4>
      <p className="muted">
        {until(request.expires_at, timeZone)}
        {r && ` · ${t("access.readAt", { time: timeOf(r.read_at, timeZone) })}`}{" "}
        <Button className="small secondary" id={`read-again-${request.id}`} onPress={() => setAgain((n) => n + 1)}>
          {t("access.readAgain")}
        </Button>
      </p>
      {records.error && <p className="error" role="alert">{records.error}</p>}
      {r && (
        <RecordView
          record={r}
          timeZone={timeZone}
          reports={scopeResourceIn(request, "DiagnosticReport")}
          appointments={scopeResourceIn(request, "Appointment")}
        />
      )}
    </section>
  );
}

/** What another hospital's record holds, as read under a grant or moved here: the patient,
 *  signed reports, appointments, letters and scans (each part shown when asked for). */
export function RecordView({
  record: r,
  timeZone,
  reports,
  appointments,
}: {
  record: RemoteRecordView;
  timeZone: string;
  reports: boolean;
  appointments: boolean;
}) {
  return (
    <>
      {r.patient && (
        <p>
          {r.patient.name}
          {r.patient.birth_date && ` · ${t("patient.born", { date: r.patient.birth_date })}`}
        </p>
      )}
      {reports && (
        <>
          <h5>{t("access.reports")}</h5>
          {r.reports.length === 0 ? (
            <p>{t("access.noReports")}</p>
          ) : (
            <ul className="remote-reports">
              {r.reports.map((rep, i) => (
                <li key={i}>
                  <strong>{rep.title}</strong>
                  <span className="muted">
                    {" "}
                    · {tKey("reportStatus", rep.status)}
                    {rep.issued && ` · ${dayOf(rep.issued, timeZone)}`}
                    {rep.author && ` · ${rep.author}`}
                  </span>
                  {rep.findings && <p>{rep.findings}</p>}
                  {rep.conclusion && (
                    <p>
                      <em>{t("access.conclusion")}</em> {rep.conclusion}
                    </p>
                  )}
                </li>
              ))}
            </ul>
          )}
        </>
      )}
      {appointments && (
        <>
          <h5>{t("access.appointments")}</h5>
          {r.appointments.length === 0 ? (
            <p>{t("patient.none")}</p>
          ) : (
            <ul>
              {r.appointments.map((a, i) => (
                <li key={i}>
                  {a.start && `${dayOf(a.start, timeZone)} ${timeOf(a.start, timeZone)}`} · {tKey("appointmentStatus", a.status)}
                  {a.description && ` · ${a.description}`}
                  {a.practitioner && ` · ${a.practitioner}`}
                </li>
              ))}
            </ul>
          )}
        </>
      )}
      {r.documents.length > 0 && (
        <>
          <h5>{t("access.documents")}</h5>
          <ul>
            {r.documents.map((d, i) => (
              <li key={i}>
                {d.title}
                {d.date && <span className="muted"> · {dayOf(d.date, timeZone)}</span>}
              </li>
            ))}
          </ul>
        </>
      )}
    </>
  );
}

function scopeResourceIn(request: RemoteAccess, resource: string): boolean {
  return request.scopes.some((s) => scopeResource(s) === resource);
}

/** A doctor's requests to other hospitals for this patient, and what the grants show. */
export function RemoteRecordsView({ patientId, timeZone }: { patientId: string; timeZone: string }) {
  const list = useLive(() => remoteAccess(patientId), [patientId], ["access"]);
  const [asking, setAsking] = useState(false);
  return (
    <section aria-labelledby="remote-heading" className="remote-access">
      <h3 id="remote-heading">{t("access.heading")}</h3>
      {list.error && <p className="error" role="alert">{list.error}</p>}
      {asking ? (
        <AskForm patientId={patientId} onAsked={() => setAsking(false)} />
      ) : (
        <Button className="small" id="ask-open" onPress={() => setAsking(true)}>
          {t("access.ask")}
        </Button>
      )}
      {list.data?.length === 0 && !asking && <p>{t("access.none")}</p>}
      <ul className="access-list">
        {list.data?.map((a) => (
          <li key={a.id} className={`access ${a.state}`} data-request={a.id}>
            <p>
              <strong>{a.organisation}</strong> · {describeScopes(a.scopes)} · {tKey("access.purpose", a.purpose)} ·{" "}
              <span className="state" data-state={a.state}>
                {tKey("access.state", a.state)}
              </span>
            </p>
            {a.state === "pending" && <p className="muted">{t("access.pendingHint", { organisation: a.organisation })}</p>}
            {a.state === "pending" && <CodeForm request={a} />}
            {a.state === "revoked" && <p role="status">{t("access.revokedHint", { organisation: a.organisation })}</p>}
            {a.state === "granted" && <GrantedRecords patientId={patientId} request={a} timeZone={timeZone} />}
          </li>
        ))}
      </ul>
    </section>
  );
}


// Finding a patient as you type (the core's full-text search, offline too), registering one,
// and a patient's page with their appointments.
import { useState, type FormEvent } from "react";
import { Button, DateField, DateInput, DateSegment, Input, Label, SearchField, TextField } from "react-aria-components";
import type { CalendarDate } from "@internationalized/date";
import { exportPatientRecord, messageOf, patientPage, registerPatient, search } from "../api";
import type { SearchHit } from "../bindings/SearchHit";
import { dayOf, timeOf } from "../format";
import { t, tKey } from "../i18n";
import { useLive } from "../live";
import { PatientPermissions } from "../access";
import { RemoteRecordsView } from "./Access";
import { PatientDocumentsView } from "./Documents";
import { MovedNotice, PatientTransferView, TransferredRecordsView } from "./Transfer";
import { PatientImagingView } from "./Imaging";
import { PatientReports } from "./Reports";

function fullName(p: { given_name: string; family_name: string }) {
  return `${p.given_name} ${p.family_name}`;
}

/** Search results for what was typed; appointments found by reference lead to their patient. */
export function useSearch(text: string) {
  return useLive<SearchHit[]>(() => (text.trim() ? search(text) : Promise.resolve([])), [text], ["patient", "appointment"]);
}

function Register({ onRegistered }: { onRegistered: (id: string, name: string) => void }) {
  const [family, setFamily] = useState("");
  const [given, setGiven] = useState("");
  const [birth, setBirth] = useState<CalendarDate | null>(null);
  const [phone, setPhone] = useState("");
  const [email, setEmail] = useState("");
  const [card, setCard] = useState("");
  const [error, setError] = useState<string | null>(null);
  async function submit(e: FormEvent) {
    e.preventDefault();
    if (!birth) return;
    setError(null);
    try {
      const p = await registerPatient({
        id: null,
        family_name: family.trim(),
        given_name: given.trim(),
        birth_date: birth.toString(),
        phone: phone.trim() || null,
        email: email.trim() || null,
        card_number: card.trim() || null,
        // A possible duplicate comes back as a refusal whose dialog confirms it.
        confirm_duplicate: false,
      });
      onRegistered(p.id, fullName(p));
    } catch (err) {
      setError(messageOf(err));
    }
  }
  return (
    <form className="panel form-grid" onSubmit={submit} aria-labelledby="register-heading">
      <h3 id="register-heading">{t("patients.register")}</h3>
      <TextField value={family} onChange={setFamily} isRequired>
        <Label>{t("patients.family")}</Label>
        <Input id="register-family" />
      </TextField>
      <TextField value={given} onChange={setGiven} isRequired>
        <Label>{t("patients.given")}</Label>
        <Input id="register-given" />
      </TextField>
      <DateField value={birth} onChange={setBirth} isRequired granularity="day" id="register-birth">
        <Label>{t("patients.birthDate")}</Label>
        <DateInput className="date-input">{(s) => <DateSegment segment={s} />}</DateInput>
      </DateField>
      <TextField value={card} onChange={setCard}>
        <Label>{t("patients.card")}</Label>
        <Input />
      </TextField>
      <TextField value={phone} onChange={setPhone} type="tel">
        <Label>{t("patients.phone")}</Label>
        <Input />
      </TextField>
      <TextField value={email} onChange={setEmail} type="email">
        <Label>{t("patients.email")}</Label>
        <Input />
      </TextField>
      {error && <p className="error" role="alert">{error}</p>}
      <Button type="submit" isDisabled={!birth || !family.trim() || !given.trim()}>{t("patients.register")}</Button>
    </form>
  );
}

/** A patient's page; a doctor (`doctorId`) also sees and writes the patient's reports. */
export function PatientPageView({
  patientId,
  timeZone,
  onBack,
  doctorId = null,
}: {
  patientId: string;
  timeZone: string;
  onBack: () => void;
  doctorId?: string | null;
}) {
  const page = useLive(() => patientPage(patientId), [patientId], ["patient", "appointment", "practitioner", "report"]);
  const p = page.data?.patient.patient;
  // Where the record was last saved, or why it could not be.
  const [saved, setSaved] = useState<string | null>(null);
  const [saveError, setSaveError] = useState<string | null>(null);
  async function saveRecord() {
    setSaved(null);
    setSaveError(null);
    try {
      setSaved((await exportPatientRecord(patientId)).path);
    } catch (e) {
      setSaveError(messageOf(e));
    }
  }
  return (
    <section aria-labelledby="patient-heading" className="patient-page">
      <Button className="small secondary" onPress={onBack}>{t("common.back")}</Button>
      {page.error && <p className="error" role="alert">{page.error}</p>}
      {p && (
        <>
          <h2 id="patient-heading">
            {t("patient.heading", { name: fullName(p) })}
            {page.data?.patient.pending && <span className="pending-mark"> ({t("appointment.pending")})</span>}
          </h2>
          <p>
            {t("patient.born", { date: p.birth_date })} · {t("patient.card", { card: p.card_number })}
            {p.phone && ` · ${p.phone}`}
            {p.email && ` · ${p.email}`}
          </p>
          {p.transferred_to && <MovedNotice to={p.transferred_to} timeZone={timeZone} />}
          <h3 id="patient-appointments">{t("patient.appointments")}</h3>
          {page.data?.appointments.length === 0 ? (
            <p>{t("patient.none")}</p>
          ) : (
            <table aria-labelledby="patient-appointments">
              <thead>
                <tr>
                  <th scope="col">{t("table.date")}</th>
                  <th scope="col">{t("table.time")}</th>
                  <th scope="col">{t("table.reason")}</th>
                  <th scope="col">{t("table.status")}</th>
                </tr>
              </thead>
              <tbody>
                {page.data?.appointments.map(({ appointment: a, pending }) => (
                  <tr key={a.id} className={pending ? "pending" : undefined}>
                    <td>{dayOf(a.start, timeZone)}</td>
                    <td>{timeOf(a.start, timeZone)}</td>
                    <td>{a.reason}</td>
                    <td>
                      {tKey("appointmentStatus", a.status)}
                      {pending && <span className="pending-mark"> ({t("appointment.pending")})</span>}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          {doctorId && (
            <div className="row record-actions">
              <Button className="small secondary" onPress={() => void saveRecord()}>{t("patient.exportRecord")}</Button>
              {saved && <p role="status">{t("patient.exported", { path: saved })}</p>}
              {saveError && <p className="error" role="alert">{saveError}</p>}
            </div>
          )}
          <PatientDocumentsView patientId={p.id} timeZone={timeZone} reads={!!doctorId} />
          {doctorId && <PatientImagingView patientId={p.id} timeZone={timeZone} />}
          {doctorId && <PatientReports patientId={p.id} me={doctorId} timeZone={timeZone} />}
          {doctorId && <TransferredRecordsView patientId={p.id} timeZone={timeZone} />}
          {doctorId ? <RemoteRecordsView patientId={p.id} timeZone={timeZone} /> : <PatientPermissions patientId={p.id} timeZone={timeZone} />}
          {!doctorId && <PatientTransferView patientId={p.id} movedTo={p.transferred_to} timeZone={timeZone} />}
        </>
      )}
    </section>
  );
}

export function Patients({ timeZone, doctorId = null }: { timeZone: string; doctorId?: string | null }) {
  const [text, setText] = useState("");
  const [open, setOpen] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const hits = useSearch(text);
  if (open) return <PatientPageView patientId={open} timeZone={timeZone} onBack={() => setOpen(null)} doctorId={doctorId} />;
  return (
    <section aria-labelledby="patients-heading">
      <h2 id="patients-heading">{t("patients.heading")}</h2>
      <SearchField value={text} onChange={setText} className="search" autoFocus>
        <Label>{t("patients.search")}</Label>
        <Input placeholder={t("patients.searchHint")} id="patient-search" />
      </SearchField>
      {hits.error && <p className="error" role="alert">{hits.error}</p>}
      {text.trim() && hits.data?.length === 0 && <p>{t("patients.none")}</p>}
      <ul className="hits" aria-label={t("patients.search")}>
        {(hits.data ?? []).map((h) =>
          h.kind === "patient" ? (
            <li key={h.patient.id}>
              <Button className="link" onPress={() => setOpen(h.patient.id)}>{fullName(h.patient)}</Button>
              <span> · {h.patient.birth_date} · {h.patient.card_number}</span>
              {h.pending && <span className="pending-mark"> ({t("appointment.pending")})</span>}
            </li>
          ) : (
            <li key={h.appointment.id}>
              <Button className="link" onPress={() => setOpen(h.appointment.patient_id)}>
                {h.patient_name ?? h.appointment.reference}
              </Button>
              <span> · {h.appointment.reference} · {dayOf(h.appointment.start, timeZone)} {timeOf(h.appointment.start, timeZone)} · {h.appointment.reason}</span>
            </li>
          ),
        )}
      </ul>
      {notice && <p role="status">{notice}</p>}
      <Register
        onRegistered={(id, name) => {
          setNotice(t("patients.registered", { name }));
          setOpen(id);
        }}
      />
    </section>
  );
}

// The patient kiosk: identify with card number and birth date, book a free slot and see the
// doctor's answer live, check in for today. Returns to its welcome screen after 60 s idle.
import { useEffect, useState, type FormEvent } from "react";
import { Button, DateField, DateInput, DateSegment, Input, Label, TextField } from "react-aria-components";
import type { CalendarDate } from "@internationalized/date";
import {
  currentSession,
  kioskBook,
  kioskBooking,
  kioskCheckIn,
  kioskDoctors,
  kioskFinish,
  kioskIdentify,
  kioskSignIn,
  kioskSlots,
  messageOf,
  onSession,
  refusedWrites,
} from "../api";
import type { Appointment } from "../bindings/Appointment";
import type { KioskPatient } from "../bindings/KioskPatient";
import type { Practitioner } from "../bindings/Practitioner";
import type { SignedInView } from "../bindings/SignedInView";
import type { Slot } from "../bindings/Slot";
import { errorText } from "../errors";
import { PatientPermissions } from "../access";
import { addDays, dateIn, dayOf, longDate, timeOf } from "../format";
import { setLocale, systemLocale, t, tKey } from "../i18n";
import { useIdle } from "../idle";
import { LanguageSwitch } from "../language";
import { useLive } from "../live";
import { ConnectionIndicator, useConnection } from "../connection";

/** Where the patient is in the kiosk's flow. */
type Step =
  | { at: "welcome" }
  | { at: "patient"; patient: KioskPatient }
  | { at: "permissions"; patient: KioskPatient }
  | { at: "doctor"; patient: KioskPatient }
  | { at: "slot"; patient: KioskPatient; doctor: Practitioner; date: string }
  | { at: "reason"; patient: KioskPatient; doctor: Practitioner; slot: Slot }
  | { at: "booked"; patient: KioskPatient; doctor: Practitioner; booking: Appointment };

const IDLE_MS = 60_000;

function ErrorLine({ error }: { error: string | null }) {
  return error ? <p className="error" role="alert">{error}</p> : null;
}

function Setup({ onSignedIn }: { onSignedIn: (v: SignedInView) => void }) {
  const [nodeUrl, setNodeUrl] = useState("http://127.0.0.1:8080");
  const [deviceId, setDeviceId] = useState("");
  const [secret, setSecret] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      onSignedIn(await kioskSignIn(nodeUrl, deviceId.trim(), secret));
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  }
  return (
    <form className="panel kiosk-form" onSubmit={submit} aria-labelledby="setup-heading">
      <h2 id="setup-heading">{t("kiosk.setupHeading")}</h2>
      <TextField value={nodeUrl} onChange={setNodeUrl} isRequired type="url">
        <Label>{t("signIn.node")}</Label>
        <Input id="kiosk-node" />
      </TextField>
      <TextField value={deviceId} onChange={setDeviceId} isRequired>
        <Label>{t("kiosk.device")}</Label>
        <Input id="kiosk-device" />
      </TextField>
      <TextField value={secret} onChange={setSecret} isRequired type="password">
        <Label>{t("kiosk.secret")}</Label>
        <Input id="kiosk-secret" />
      </TextField>
      <ErrorLine error={error} />
      <Button type="submit" isDisabled={busy}>{busy ? t("common.working") : t("signIn.submit")}</Button>
    </form>
  );
}

function Welcome({ onIdentified }: { onIdentified: (p: KioskPatient) => void }) {
  const [card, setCard] = useState("");
  const [birth, setBirth] = useState<CalendarDate | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  async function submit(e: FormEvent) {
    e.preventDefault();
    if (!birth) return;
    setBusy(true);
    setError(null);
    try {
      onIdentified(await kioskIdentify(card.trim(), birth.toString()));
    } catch (err) {
      setError(messageOf(err, "kiosk"));
    } finally {
      setBusy(false);
    }
  }
  return (
    <form className="panel kiosk-form" onSubmit={submit} aria-labelledby="welcome-heading">
      <h2 id="welcome-heading">{t("kiosk.welcome")}</h2>
      <p>{t("kiosk.identifyHint")}</p>
      <TextField value={card} onChange={setCard} isRequired autoFocus inputMode="numeric" autoComplete="off">
        <Label>{t("kiosk.card")}</Label>
        <Input id="kiosk-card" />
      </TextField>
      <DateField value={birth} onChange={setBirth} isRequired granularity="day" id="kiosk-birth">
        <Label>{t("kiosk.birthDate")}</Label>
        <DateInput className="date-input">{(segment) => <DateSegment segment={segment} />}</DateInput>
      </DateField>
      <ErrorLine error={error} />
      <Button type="submit" className="big" isDisabled={busy || !birth || !card.trim()}>
        {busy ? t("common.working") : t("kiosk.continue")}
      </Button>
    </form>
  );
}

/** One of today's appointments at the kiosk: check in, then see the node's answer. */
function TodayAppointment({ appointment, timeZone }: { appointment: Appointment; timeZone: string }) {
  const [sent, setSent] = useState(false);
  const [error, setError] = useState<string | null>(null);
  // Once sent, the appointment as it stands here: pending until the node accepted it.
  const live = useLive(() => (sent ? kioskBooking(appointment.id) : Promise.resolve(undefined)), [sent, appointment.id], ["appointment", "outbox"]);
  const refused = useLive(refusedWrites, [], ["outbox"]);
  async function checkIn() {
    setError(null);
    try {
      await kioskCheckIn(appointment.id);
      setSent(true);
    } catch (err) {
      setError(messageOf(err, "kiosk"));
    }
  }
  const row = live.data;
  let state;
  if (appointment.status === "arrived" || (row && !row.pending && row.appointment.status === "arrived")) {
    state = <span role="status">{t("kiosk.checkedIn")}</span>;
  } else if (sent && (row === null || (row && !row.pending && row.appointment.status !== "arrived"))) {
    const r = refused.data?.find((r) => r.recordId === appointment.id);
    const reason = r ? errorText({ code: r.code, message: r.reason, problem: r.problem }, "kiosk") : "";
    state = <span role="alert" className="error">{t("kiosk.checkInRefused", { reason })}</span>;
  } else if (sent) {
    state = <span role="status">{t("kiosk.checkingIn")}</span>;
  } else if (appointment.status === "booked") {
    state = <Button className="big" onPress={() => void checkIn()}>{t("action.check-in")}</Button>;
  } else {
    state = <span>{tKey("appointmentStatus", appointment.status)}</span>;
  }
  return (
    <li data-state={row?.appointment.status ?? appointment.status}>
      <span className="when">{timeOf(appointment.start, timeZone)}</span>
      {state}
      {error && <span className="error" role="alert">{error}</span>}
    </li>
  );
}

function PatientHome({
  patient,
  timeZone,
  onBook,
  onPermissions,
  onFinish,
}: {
  patient: KioskPatient;
  timeZone: string;
  onBook: () => void;
  onPermissions: () => void;
  onFinish: () => void;
}) {
  return (
    <section className="panel" aria-labelledby="hello-heading">
      <h2 id="hello-heading">{t("kiosk.hello", { name: patient.display_name })}</h2>
      {patient.appointments_today.length > 0 && (
        <>
          <h3>{t("kiosk.today")}</h3>
          <ul className="choices">
            {patient.appointments_today.map((a) => (
              <TodayAppointment key={a.id} appointment={a} timeZone={timeZone} />
            ))}
          </ul>
        </>
      )}
      <div className="row">
        <Button className="big" onPress={onBook}>{t("kiosk.bookNew")}</Button>
        <Button className="big secondary" id="kiosk-permissions" onPress={onPermissions}>{t("kiosk.permissions")}</Button>
        <Button className="big secondary" onPress={onFinish}>{t("kiosk.finish")}</Button>
      </div>
    </section>
  );
}

function ChooseDoctor({ onChosen, onBack }: { onChosen: (d: Practitioner) => void; onBack: () => void }) {
  const doctors = useLive(kioskDoctors, [], ["practitioner"]);
  return (
    <section className="panel" aria-labelledby="doctor-heading">
      <h2 id="doctor-heading">{t("kiosk.chooseDoctor")}</h2>
      <ErrorLine error={doctors.error} />
      <div className="grid">
        {(doctors.data ?? []).map((d) => (
          <Button key={d.id} className="big" onPress={() => onChosen(d)}>{d.display_name}</Button>
        ))}
      </div>
      <Button className="big secondary" onPress={onBack}>{t("common.back")}</Button>
    </section>
  );
}

function ChooseSlot({
  doctor,
  date,
  today,
  timeZone,
  onDate,
  onChosen,
  onBack,
}: {
  doctor: Practitioner;
  date: string;
  today: string;
  timeZone: string;
  onDate: (d: string) => void;
  onChosen: (s: Slot) => void;
  onBack: () => void;
}) {
  const slots = useLive(() => kioskSlots(doctor.id, date), [doctor.id, date], ["appointment", "schedule"]);
  const now = Date.now();
  const free = (slots.data ?? []).filter((s) => s.status === "free" && new Date(s.start).getTime() > now);
  const days = Array.from({ length: 14 }, (_, i) => addDays(today, i));
  return (
    <section className="panel" aria-labelledby="slot-heading">
      <h2 id="slot-heading">{doctor.display_name}</h2>
      <h3 id="day-heading">{t("kiosk.chooseDay")}</h3>
      <div className="days" role="group" aria-labelledby="day-heading">
        {days.map((d) => (
          <Button key={d} className={d === date ? "day chosen" : "day"} aria-pressed={d === date} onPress={() => onDate(d)}>
            {dayOf(`${d}T12:00:00Z`, "UTC")}
          </Button>
        ))}
      </div>
      <h3 id="time-heading">{t("kiosk.chooseTime")} · {longDate(date)}</h3>
      <ErrorLine error={slots.error} />
      {slots.data && free.length === 0 && <p id="no-slots">{t("kiosk.noSlots")}</p>}
      <div className="grid times" role="group" aria-labelledby="time-heading">
        {free.map((s) => (
          <Button key={s.start} className="big" onPress={() => onChosen(s)}>{timeOf(s.start, timeZone)}</Button>
        ))}
      </div>
      <Button className="big secondary" onPress={onBack}>{t("common.back")}</Button>
    </section>
  );
}

function GiveReason({
  patient,
  doctor,
  slot,
  timeZone,
  onBooked,
  onBack,
}: {
  patient: KioskPatient;
  doctor: Practitioner;
  slot: Slot;
  timeZone: string;
  onBooked: (a: Appointment) => void;
  onBack: () => void;
}) {
  const [reason, setReason] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      onBooked(await kioskBook(patient.id, doctor.id, slot.start, reason.trim()));
    } catch (err) {
      setError(messageOf(err, "kiosk"));
    } finally {
      setBusy(false);
    }
  }
  return (
    <form className="panel kiosk-form" onSubmit={submit} aria-labelledby="reason-heading" data-start={slot.start}>
      <h2 id="reason-heading">
        {t("kiosk.bookingWith", { doctor: doctor.display_name, day: dayOf(slot.start, timeZone), time: timeOf(slot.start, timeZone) })}
      </h2>
      <TextField value={reason} onChange={setReason} isRequired autoFocus maxLength={500}>
        <Label>{t("kiosk.reason")}</Label>
        <Input id="kiosk-reason" />
      </TextField>
      <ErrorLine error={error} />
      <div className="row">
        <Button type="submit" className="big" id="kiosk-book" isDisabled={busy || !reason.trim()}>
          {busy ? t("common.working") : t("kiosk.book")}
        </Button>
        <Button className="big secondary" onPress={onBack}>{t("common.back")}</Button>
      </div>
    </form>
  );
}

function Booked({
  doctor,
  booking,
  timeZone,
  onDone,
  onChooseAnother,
}: {
  doctor: Practitioner;
  booking: Appointment;
  timeZone: string;
  onDone: () => void;
  /** Back to the doctor's times, after someone else took this one. */
  onChooseAnother: () => void;
}) {
  // The booking as it stands now, re-read whenever the core hears of a change.
  const live = useLive(() => kioskBooking(booking.id), [booking.id], ["appointment", "outbox"]);
  const refused = useLive(refusedWrites, [], ["outbox"]);
  const row = live.data;
  const a = row?.appointment ?? booking;
  // Until the first answer from the local store, the booking is as the kiosk queued it.
  const pending = row ? row.pending : true;
  let message: string;
  let tone = "waiting";
  // The node refused the booking: the local copy is gone; its reason is in the outbox.
  const refusal = row === null ? refused.data?.find((r) => r.recordId === booking.id) : undefined;
  if (refusal?.code === "slot-taken") {
    message = errorText({ code: refusal.code, message: refusal.reason }, "kiosk");
    tone = "refused";
  } else if (row === null) {
    const reason = refusal ? errorText({ code: refusal.code, message: refusal.reason, problem: refusal.problem }, "kiosk") : "";
    message = t("kiosk.refused", { reason });
    tone = "refused";
  } else if (pending) {
    message = t("kiosk.sending");
  } else if (a.status === "booked") {
    message = t("kiosk.confirmed");
    tone = "confirmed";
  } else if (a.status === "cancelled") {
    message = t("kiosk.declined", { reason: a.cancellation_reason ?? "" });
    tone = "refused";
  } else {
    message = t("kiosk.waiting");
  }
  return (
    <section className="panel" aria-labelledby="booked-heading">
      <h2 id="booked-heading">
        {t("kiosk.bookingWith", { doctor: doctor.display_name, day: dayOf(a.start, timeZone), time: timeOf(a.start, timeZone) })}
      </h2>
      <p className={`answer ${tone}`} role="status" aria-live="polite" id="kiosk-answer" data-status={a.status}>
        {message}
      </p>
      {a.reference && row !== null && (
        <>
          <p>{t("kiosk.reference")}</p>
          <p className="reference" id="kiosk-reference" data-appointment={a.id}>{a.reference}</p>
          <p>{t("kiosk.keepReference")}</p>
        </>
      )}
      <div className="row">
        {refusal?.code === "slot-taken" && (
          <Button className="big" id="kiosk-choose-another" onPress={onChooseAnother}>{t("kiosk.chooseAnother")}</Button>
        )}
        <Button className={refusal?.code === "slot-taken" ? "big secondary" : "big"} onPress={onDone}>{t("kiosk.done")}</Button>
      </div>
    </section>
  );
}

export function KioskApp() {
  const [session, setSession] = useState<SignedInView | null>(null);
  const [step, setStep] = useState<Step>({ at: "welcome" });
  // Bumped by the idle reset: the welcome form starts empty again, whatever was half typed.
  const [fresh, setFresh] = useState(0);
  const status = useConnection(() => setSession(null));
  useEffect(() => {
    // A kiosk shows no browser context menu.
    const block = (e: Event) => e.preventDefault();
    document.addEventListener("contextmenu", block);
    const stop = onSession(setSession);
    currentSession()
      .then((v) => v && setSession((s) => s ?? v))
      .catch(() => {});
    return () => {
      document.removeEventListener("contextmenu", block);
      stop.then((f) => f()).catch(() => {});
    };
  }, []);
  // Back to the welcome screen when nobody has touched the kiosk for a minute.
  // Back at the welcome screen, the next patient meets the kiosk in the system's language,
  // whatever the last one chose.
  function nextPatient() {
    // The node forgets the patient's identification at once; offline, it lapses by itself in
    // ten minutes, so a failure here is only logged.
    if (step.at !== "welcome") kioskFinish().catch((e) => console.warn("ending the identification:", messageOf(e)));
    setStep({ at: "welcome" });
    setLocale(systemLocale(), { remember: false });
  }
  useIdle(IDLE_MS, !!session, () => {
    nextPatient();
    setFresh((n) => n + 1);
  });
  const timeZone = session?.timeZone ?? "UTC";
  const today = dateIn(new Date(), timeZone);
  let screen;
  if (!session) {
    screen = <Setup onSignedIn={setSession} />;
  } else {
    switch (step.at) {
      case "welcome":
        screen = <Welcome key={fresh} onIdentified={(patient) => setStep({ at: "patient", patient })} />;
        break;
      case "patient":
        screen = (
          <PatientHome
            patient={step.patient}
            timeZone={timeZone}
            onBook={() => setStep({ at: "doctor", patient: step.patient })}
            onPermissions={() => setStep({ at: "permissions", patient: step.patient })}
            onFinish={nextPatient}
          />
        );
        break;
      case "permissions":
        screen = (
          <section className="panel">
            <PatientPermissions patientId={step.patient.id} timeZone={timeZone} big />
            <div className="row">
              <Button className="big secondary" onPress={() => setStep({ at: "patient", patient: step.patient })}>{t("common.back")}</Button>
              <Button className="big secondary" onPress={nextPatient}>{t("kiosk.finish")}</Button>
            </div>
          </section>
        );
        break;
      case "doctor":
        screen = (
          <ChooseDoctor
            onChosen={(doctor) => setStep({ at: "slot", patient: step.patient, doctor, date: today })}
            onBack={() => setStep({ at: "patient", patient: step.patient })}
          />
        );
        break;
      case "slot":
        screen = (
          <ChooseSlot
            doctor={step.doctor}
            date={step.date}
            today={today}
            timeZone={timeZone}
            onDate={(date) => setStep({ ...step, date })}
            onChosen={(slot) => setStep({ at: "reason", patient: step.patient, doctor: step.doctor, slot })}
            onBack={() => setStep({ at: "doctor", patient: step.patient })}
          />
        );
        break;
      case "reason":
        screen = (
          <GiveReason
            patient={step.patient}
            doctor={step.doctor}
            slot={step.slot}
            timeZone={timeZone}
            onBooked={(booking) => setStep({ at: "booked", patient: step.patient, doctor: step.doctor, booking })}
            onBack={() => setStep({ at: "slot", patient: step.patient, doctor: step.doctor, date: dateIn(new Date(step.slot.start), timeZone) })}
          />
        );
        break;
      case "booked":
        screen = (
          <Booked
            doctor={step.doctor}
            booking={step.booking}
            timeZone={timeZone}
            onDone={nextPatient}
            onChooseAnother={() =>
              setStep({ at: "slot", patient: step.patient, doctor: step.doctor, date: dateIn(new Date(step.booking.start), timeZone) })
            }
          />
        );
        break;
    }
  }
  return (
    <div className="kiosk">
      <header className="bar">
        <h1>{t("app.kioskTitle")}</h1>
        <div className="row">
          <LanguageSwitch big remember={false} />
          <ConnectionIndicator status={status} />
        </div>
      </header>
      <main>{screen}</main>
    </div>
  );
}

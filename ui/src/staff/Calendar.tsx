// Reception's calendar: one doctor's day or week with free, held (pending) and busy slots.
// Click a slot to book it (a taken one only through an explicit override with a reason);
// drag an appointment to move it.
import { useEffect, useMemo, useState, type FormEvent } from "react";
import "@fullcalendar/react/skeleton.css";
import "@fullcalendar/react/themes/classic/theme.css";
import "@fullcalendar/react/themes/classic/palette.css";
import FullCalendar from "@fullcalendar/react";
import timeGridPlugin from "@fullcalendar/react/timegrid";
import interactionPlugin from "@fullcalendar/react/interaction";
import classicTheme from "@fullcalendar/react/themes/classic";
import nlLocale from "@fullcalendar/react/locales/nl";
import type { DateClickInfo, EventDropInfo, EventInput } from "@fullcalendar/react";
import { Button, Checkbox, Dialog, Heading, Input, Label, Modal, SearchField, TextField } from "react-aria-components";
import type { AppointmentRow } from "../bindings/AppointmentRow";
import type { BookAppointment } from "../bindings/BookAppointment";
import { appointmentsBetween, book, messageOf, practitioners, reschedule, slots } from "../api";
import type { Slot } from "../bindings/Slot";
import { addDays, dateIn, dayOf, timeOf } from "../format";
import { failureOf } from "../errors";
import { t, useLocale } from "../i18n";
import { useLive } from "../live";
import { useSearch } from "./Patients";
import { NextFreeSlots } from "./refusals";

/** Each slot status's class (the legend's too) and the colour FullCalendar tints it with. */
const SLOT_LOOK: Record<string, { className: string; color: string }> = {
  free: { className: "slot-free", color: "#2fbf71" },
  "busy-tentative": { className: "slot-held", color: "#f2c94c" },
  busy: { className: "slot-busy", color: "#eb5757" },
  "busy-unavailable": { className: "slot-absent", color: "#6b7486" },
};

/** The slot that contains `instant`, if any. */
export function slotAt(all: Slot[], instant: Date): Slot | undefined {
  const ms = instant.getTime();
  return all.find((s) => new Date(s.start).getTime() <= ms && ms < new Date(s.end).getTime());
}

function BookDialog({
  slot,
  doctorName,
  timeZone,
  onClose,
}: {
  slot: Slot;
  doctorName: string;
  timeZone: string;
  onClose: () => void;
}) {
  const [text, setText] = useState("");
  const [patient, setPatient] = useState<{ id: string; name: string } | null>(null);
  const [reason, setReason] = useState("");
  const [override, setOverride] = useState("");
  const [error, setError] = useState<string | null>(null);
  // The request the node (or this client's mirror) refused as `slot-taken`: offer other times.
  const [refused, setRefused] = useState<BookAppointment | null>(null);
  const hits = useSearch(text);
  const taken = slot.status !== "free";
  async function submit(e: FormEvent) {
    e.preventDefault();
    if (!patient) {
      setError(t("book.noPatient"));
      return;
    }
    const request: BookAppointment = {
      id: null,
      patient_id: patient.id,
      practitioner_id: slot.practitioner_id,
      start: slot.start,
      next_available_from: null,
      end: null,
      reason: reason.trim(),
      override_reason: taken ? override.trim() : null,
    };
    setError(null);
    setRefused(null);
    try {
      await book(request);
      onClose();
    } catch (err) {
      setError(messageOf(err));
      if (failureOf(err).code === "slot-taken") setRefused(request);
    }
  }
  const patients = (hits.data ?? []).flatMap((h) => (h.kind === "patient" ? [h.patient] : []));
  return (
    <Modal className="modal" isDismissable isOpen onOpenChange={(open) => !open && onClose()}>
      <Dialog className="dialog wide">
        <form onSubmit={submit} data-start={slot.start}>
          <Heading slot="title">
            {t("book.heading", { doctor: doctorName, time: `${dayOf(slot.start, timeZone)} ${timeOf(slot.start, timeZone)}` })}
          </Heading>
          {patient ? (
            <p>
              <strong>{patient.name}</strong>{" "}
              <Button className="small secondary" onPress={() => setPatient(null)}>{t("common.back")}</Button>
            </p>
          ) : (
            <>
              <SearchField value={text} onChange={setText} autoFocus>
                <Label>{t("book.patient")}</Label>
                <Input id="book-patient" />
              </SearchField>
              <ul className="hits" aria-label={t("book.patient")}>
                {patients.slice(0, 8).map((p) => (
                  <li key={p.id}>
                    <Button className="link" onPress={() => setPatient({ id: p.id, name: `${p.given_name} ${p.family_name}` })}>
                      {p.given_name} {p.family_name}
                    </Button>
                    <span> · {p.birth_date}</span>
                  </li>
                ))}
              </ul>
            </>
          )}
          <TextField value={reason} onChange={setReason} isRequired maxLength={500}>
            <Label>{t("book.reason")}</Label>
            <Input id="book-reason" />
          </TextField>
          {taken && (
            <TextField value={override} onChange={setOverride} isRequired maxLength={500}>
              <Label>{t("book.override")}</Label>
              <Input id="book-override" />
            </TextField>
          )}
          {error && <p className="error" role="alert">{error}</p>}
          {refused && <NextFreeSlots booking={refused} timeZone={timeZone} onBooked={onClose} />}
          <div className="row">
            <Button type="submit" isDisabled={!patient || !reason.trim() || (taken && !override.trim())}>{t("book.submit")}</Button>
            <Button className="secondary" onPress={onClose}>{t("common.cancel")}</Button>
          </div>
        </form>
      </Dialog>
    </Modal>
  );
}

export function Calendar({ timeZone }: { timeZone: string }) {
  const doctors = useLive(practitioners, [], ["practitioner"]);
  const bookable = (doctors.data ?? []).filter((d) => d.role === "doctor" && !d.disabled);
  const [doctorId, setDoctorId] = useState<string>("");
  const today = dateIn(new Date(), timeZone);
  const [range, setRange] = useState({ from: today, to: addDays(today, 6) });
  const [booking, setBooking] = useState<Slot | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    if (!doctorId && bookable.length > 0) setDoctorId(bookable[0].id);
  }, [doctorId, bookable]);
  const slotList = useLive(() => (doctorId ? slots(doctorId, range.from, range.to) : Promise.resolve([])), [doctorId, range.from, range.to], ["appointment", "schedule"]);
  const rows = useLive(
    () => (doctorId ? appointmentsBetween(doctorId, range.from, range.to) : Promise.resolve([])),
    [doctorId, range.from, range.to],
    ["appointment", "patient", "practitioner"],
  );
  const locale = useLocale();
  const events = useMemo<EventInput[]>(() => {
    const background: EventInput[] = (slotList.data ?? []).map((s) => ({
      start: s.start,
      end: s.end,
      display: "background",
      className: SLOT_LOOK[s.status]?.className,
      color: SLOT_LOOK[s.status]?.color,
    }));
    const booked: EventInput[] = (rows.data ?? [])
      .filter((r) => r.appointment.status !== "cancelled" && r.appointment.status !== "noshow")
      .map((r) => ({
        id: r.appointment.id,
        title: `${r.patient_name ?? r.appointment.reference} · ${r.appointment.reason}${r.pending ? ` (${t("appointment.pending")})` : ""}`,
        start: r.appointment.start,
        end: r.appointment.end,
        className: `appt-${r.appointment.status}${r.pending ? " appt-local" : ""}`,
        // Pending kiosk bookings stand out; the rest keep the theme's colour.
        ...(r.appointment.status === "pending" ? { color: "#7a5a00" } : {}),
        editable: r.appointment.status === "booked" || r.appointment.status === "pending",
      }));
    return [...background, ...booked];
    // The titles carry translated words: drawn again in a new language.
  }, [slotList.data, rows.data, locale]);
  const doctorName = bookable.find((d) => d.id === doctorId)?.display_name ?? "";
  // The keyboard's way to book: the chosen day's free times as buttons.
  const [day, setDay] = useState(today);
  const days = Array.from({ length: 7 }, (_, i) => addDays(range.from, i)).filter((d) => d <= range.to);
  const shownDay = days.includes(day) ? day : (days.find((d) => d >= today) ?? days[0]);
  const now = Date.now();
  // Moving an appointment: the next time chosen is its new time.
  const [moving, setMoving] = useState<AppointmentRow | null>(null);
  // Taken times are offered only when reception chose to overbook (with a reason).
  const [overbook, setOverbook] = useState(false);
  const timesThatDay = (slotList.data ?? []).filter(
    (s) =>
      (s.status === "free" || (overbook && !moving && s.status !== "busy-unavailable")) &&
      dateIn(new Date(s.start), timeZone) === shownDay &&
      new Date(s.start).getTime() > now,
  );
  const appointmentsThatDay = (rows.data ?? []).filter(
    (r) => r.appointment.status !== "cancelled" && r.appointment.status !== "noshow" && dateIn(new Date(r.appointment.start), timeZone) === shownDay,
  );
  async function chooseTime(s: Slot) {
    if (!moving) return setBooking(s);
    setError(null);
    try {
      await reschedule(moving.appointment.id, { start: s.start, end: null, override_reason: null });
      setMoving(null);
    } catch (e) {
      setError(messageOf(e));
    }
  }
  function onDateClick(info: DateClickInfo) {
    const s = slotAt(slotList.data ?? [], info.date);
    if (s && s.status !== "busy-unavailable") void chooseTime(s);
  }
  async function onDrop(info: EventDropInfo) {
    setError(null);
    const start = info.event.start;
    if (!start) return info.revert();
    try {
      await reschedule(info.event.id, { start: start.toISOString(), end: null, override_reason: null });
    } catch (e) {
      info.revert();
      setError(messageOf(e));
    }
  }
  return (
    <section aria-labelledby="calendar-heading" className="calendar">
      <div className="row spread">
        <h2 id="calendar-heading">{t("calendar.heading")}</h2>
        <label className="inline">
          {t("calendar.doctor")}
          <select value={doctorId} onChange={(e) => setDoctorId(e.target.value)} id="calendar-doctor">
            {bookable.map((d) => (
              <option key={d.id} value={d.id}>{d.display_name}</option>
            ))}
          </select>
        </label>
      </div>
      <ul className="legend" aria-label={t("calendar.legend")}>
        <li className="slot-free">{t("calendar.free")}</li>
        <li className="slot-held">{t("calendar.held")}</li>
        <li className="slot-busy">{t("calendar.busy")}</li>
        <li className="slot-absent">{t("calendar.absent")}</li>
      </ul>
      {(error || slotList.error || rows.error) && <p className="error" role="alert">{error ?? slotList.error ?? rows.error}</p>}
      <FullCalendar
        plugins={[timeGridPlugin, interactionPlugin, classicTheme]}
        initialView="timeGridWeek"
        headerToolbar={{ start: "prev,today,next", center: "title", end: "timeGridDay,timeGridWeek" }}
        timeZone={timeZone}
        locales={[nlLocale]}
        locale={locale}
        buttons={{
          today: { text: t("calendar.today"), hint: t("calendar.today") },
          timeGridDay: { text: t("calendar.day"), hint: t("calendar.day") },
          timeGridWeek: { text: t("calendar.week"), hint: t("calendar.week") },
        }}
        allDaySlot={false}
        slotMinTime="07:00:00"
        slotMaxTime="19:00:00"
        nowIndicator
        height="auto"
        events={events}
        dateClick={onDateClick}
        eventDrop={onDrop}
        editable
        eventDurationEditable={false}
        datesSet={(info) => {
          const from = dateIn(info.start, timeZone);
          const to = addDays(dateIn(info.end, timeZone), -1);
          setRange((r) => (r.from === from && r.to === to ? r : { from, to }));
        }}
      />
      <section aria-labelledby="free-heading" className="free-times">
        <h3 id="free-heading">
          {moving
            ? t("calendar.moving", { who: moving.patient_name ?? moving.appointment.reference, time: timeOf(moving.appointment.start, timeZone) })
            : t("calendar.freeTimes", { doctor: doctorName })}
        </h3>
        <div className="row" role="group" aria-label={t("calendar.chooseDay")}>
          {days.map((d) => (
            <Button key={d} className={d === shownDay ? "small" : "small secondary"} aria-pressed={d === shownDay} onPress={() => setDay(d)}>
              {dayOf(`${d}T12:00:00Z`, "UTC")}
            </Button>
          ))}
        </div>
        <Checkbox isSelected={overbook} onChange={setOverbook} className="checkbox" isDisabled={!!moving}>
          <span className="box" aria-hidden="true">{overbook ? "✓" : ""}</span>
          {t("calendar.overbook")}
        </Checkbox>
        {slotList.data && timesThatDay.length === 0 && <p>{t("calendar.noFreeTimes")}</p>}
        <div className="row slot-buttons">
          {timesThatDay.map((s) => (
            <Button
              key={s.start}
              className={s.status === "free" ? "small secondary" : "small taken"}
              data-status={s.status}
              aria-label={s.status === "free" ? undefined : `${timeOf(s.start, timeZone)} (${t("calendar.taken")})`}
              onPress={() => void chooseTime(s)}
            >
              {timeOf(s.start, timeZone)}
            </Button>
          ))}
        </div>
        {moving && (
          <Button className="small secondary" onPress={() => setMoving(null)}>{t("common.cancel")}</Button>
        )}
        <h3 id="day-appointments">{t("calendar.dayAppointments")}</h3>
        <ul className="hits day-appointments" aria-labelledby="day-appointments">
          {appointmentsThatDay.map((r) => (
            <li key={r.appointment.id} data-reference={r.appointment.reference}>
              {timeOf(r.appointment.start, timeZone)} · {r.patient_name ?? r.appointment.reference} · {r.appointment.reason}
              {r.pending && <span className="pending-mark"> ({t("appointment.pending")})</span>}{" "}
              {(r.appointment.status === "booked" || r.appointment.status === "pending") && (
                <Button
                  className="small secondary"
                  onPress={() => {
                    setOverbook(false);
                    setMoving(r);
                  }} aria-label={`${t("action.reschedule")}: ${r.patient_name ?? r.appointment.reference}`}>
                  {t("action.reschedule")}
                </Button>
              )}
            </li>
          ))}
        </ul>
      </section>
      {booking && <BookDialog slot={booking} doctorName={doctorName} timeZone={timeZone} onClose={() => setBooking(null)} />}
    </section>
  );
}

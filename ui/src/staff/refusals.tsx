// What staff screens do with a refusal they can act on: a taken time offers the doctor's next
// free times (one click books the same request there); a possible duplicate asks whether the
// patient is one already registered, and registers anew only when told to.
import { useState } from "react";
import { Button, Dialog, Heading, Modal } from "react-aria-components";
import { book, dismissRefused, messageOf, registerPatient, slots } from "../api";
import type { BookAppointment } from "../bindings/BookAppointment";
import type { RefusedWrite } from "../bindings/RefusedWrite";
import type { Slot } from "../bindings/Slot";
import { addDays, dateIn, dayOf, timeOf } from "../format";
import { t } from "../i18n";
import { useLive } from "../live";

/** The first `n` free slots from `wanted` on (never in the past), the wanted one excluded. */
export function nextFree(all: Slot[], wanted: string, now: number, n = 4): Slot[] {
  const from = Math.max(new Date(wanted).getTime(), now);
  return all
    .filter((s) => s.status === "free" && s.start !== wanted && new Date(s.start).getTime() >= from)
    .sort((a, b) => a.start.localeCompare(b.start))
    .slice(0, n);
}

/** The doctor's next free times after a refused `booking`; choosing one books it there. */
export function NextFreeSlots({
  booking,
  timeZone,
  onBooked,
}: {
  booking: BookAppointment;
  timeZone: string;
  onBooked: () => void;
}) {
  const wanted = booking.start ?? new Date().toISOString();
  const from = dateIn(new Date(Math.max(Date.parse(wanted), Date.now())), timeZone);
  const free = useLive(() => slots(booking.practitioner_id, from, addDays(from, 6)), [booking.practitioner_id, from], ["appointment", "schedule"]);
  const [error, setError] = useState<string | null>(null);
  const offered = nextFree(free.data ?? [], wanted, Date.now());
  async function choose(s: Slot) {
    setError(null);
    try {
      await book({ ...booking, id: null, start: s.start, end: null, override_reason: null });
      onBooked();
    } catch (e) {
      setError(messageOf(e));
    }
  }
  return (
    <div className="next-free">
      <p>{t("rebook.nextFree")}</p>
      {free.data && offered.length === 0 && <p>{t("rebook.none")}</p>}
      <div className="row slot-buttons">
        {offered.map((s) => (
          <Button
            key={s.start}
            className="small"
            data-start={s.start}
            aria-label={t("rebook.at", { time: `${dayOf(s.start, timeZone)} ${timeOf(s.start, timeZone)}` })}
            onPress={() => void choose(s)}
          >
            {dayOf(s.start, timeZone)} {timeOf(s.start, timeZone)}
          </Button>
        ))}
      </div>
      {(error ?? free.error) && <p className="error" role="alert">{error ?? free.error}</p>}
    </div>
  );
}

/** A registration refused as a `possible-duplicate`: the candidates, and registering anyway
 *  (the request again, confirmed) or not at all. Opens as soon as the refusal is shown. */
export function DuplicateDialog({ refused }: { refused: RefusedWrite & { registration: NonNullable<RefusedWrite["registration"]> } }) {
  const [open, setOpen] = useState(true);
  const [error, setError] = useState<string | null>(null);
  const asked = refused.registration;
  async function registerAnyway() {
    setError(null);
    try {
      await registerPatient({ ...asked, id: null, confirm_duplicate: true });
      await dismissRefused(refused.seq);
    } catch (e) {
      setError(messageOf(e));
    }
  }
  if (!open) {
    return (
      <Button className="small" onPress={() => setOpen(true)}>{t("duplicate.review")}</Button>
    );
  }
  return (
    <Modal className="modal" isDismissable isOpen onOpenChange={setOpen}>
      <Dialog className="dialog wide duplicate-dialog">
        <Heading slot="title">{t("duplicate.heading")}</Heading>
        <p>{t("duplicate.explain", { name: `${asked.given_name} ${asked.family_name}`, date: asked.birth_date })}</p>
        <ul className="duplicate-candidates">
          {refused.candidates.map((p) => (
            <li key={p.id}>
              {t("duplicate.candidate", { name: `${p.given_name} ${p.family_name}`, date: p.birth_date, card: p.card_number })}
            </li>
          ))}
        </ul>
        {error && <p className="error" role="alert">{error}</p>}
        <div className="row">
          <Button onPress={() => void registerAnyway()}>{t("duplicate.registerAnyway")}</Button>
          <Button className="secondary" onPress={() => void dismissRefused(refused.seq)}>{t("duplicate.keep")}</Button>
        </div>
      </Dialog>
    </Modal>
  );
}

// Appointment lists and the actions staff take on them.
import { memo, useState, type FormEvent, type ReactNode } from "react";
import { Button, Dialog, DialogTrigger, Heading, Input, Label, Modal, TextField } from "react-aria-components";
import { act, dismissRefused, messageOf, refusedWrites } from "../api";
import type { AppointmentAction } from "../bindings/AppointmentAction";
import type { AppointmentRow } from "../bindings/AppointmentRow";
import { dayOf, timeOf } from "../format";
import { errorText } from "../errors";
import { t, tKey, useLocale } from "../i18n";
import { useLive } from "../live";
import { DuplicateDialog, NextFreeSlots } from "./refusals";

/** Actions that need a reason. */
const NEEDS_REASON: AppointmentAction[] = ["decline", "cancel"];

/** What can be done next to an appointment in a given status; "did not come" only once it
 *  has started. */
export function nextActions(status: string, start: string, allowed: AppointmentAction[], now = Date.now()): AppointmentAction[] {
  const byStatus: Record<string, AppointmentAction[]> = {
    pending: ["confirm", "decline", "cancel"],
    booked: ["check-in", "no-show", "cancel"],
    arrived: ["complete"],
  };
  const started = new Date(start).getTime() <= now;
  return (byStatus[status] ?? []).filter((a) => allowed.includes(a) && (a !== "no-show" || started));
}

/** One action's button; asks for a reason first where the action needs one. */
export function ActionButton({ row, action, onError }: { row: AppointmentRow; action: AppointmentAction; onError: (e: string | null) => void }) {
  const [reason, setReason] = useState("");
  const label = t(`action.${action}` as Parameters<typeof t>[0]);
  const who = row.patient_name ?? row.appointment.reference;
  async function run(r: string | null, close?: () => void) {
    onError(null);
    try {
      await act(row.appointment.id, action, r);
      close?.();
    } catch (e) {
      onError(messageOf(e));
    }
  }
  if (!NEEDS_REASON.includes(action)) {
    return (
      <Button className={`small action-${action}`} onPress={() => run(null)} aria-label={`${label}: ${who}`}>
        {label}
      </Button>
    );
  }
  return (
    <DialogTrigger>
      <Button className={`small secondary action-${action}`} aria-label={`${label}: ${who}`}>{label}</Button>
      <Modal className="modal" isDismissable>
        <Dialog className="dialog">
          {({ close }) => (
            <form
              onSubmit={(e: FormEvent) => {
                e.preventDefault();
                if (reason.trim()) void run(reason.trim(), close);
              }}
            >
              <Heading slot="title">{who}</Heading>
              <TextField value={reason} onChange={setReason} isRequired autoFocus maxLength={500}>
                <Label>{t("action.reasonFor", { action: label })}</Label>
                <Input className="reason-input" />
              </TextField>
              <div className="row">
                <Button type="submit" isDisabled={!reason.trim()}>{label}</Button>
                <Button className="secondary" onPress={close}>{t("common.cancel")}</Button>
              </div>
            </form>
          )}
        </Dialog>
      </Modal>
    </DialogTrigger>
  );
}

export function AppointmentTable({
  rows,
  timeZone,
  labelledBy,
  actions,
  onPatient,
  doctorName,
  showDate,
}: {
  rows: AppointmentRow[];
  timeZone: string;
  labelledBy: string;
  actions: AppointmentAction[];
  onPatient?: (patientId: string) => void;
  doctorName?: (id: string) => string;
  showDate?: boolean;
}) {
  const [error, setError] = useState<string | null>(null);
  const now = Date.now();
  return (
    <>
      {error && <p className="error" role="alert">{error}</p>}
      <table aria-labelledby={labelledBy} className="appointments">
        <thead>
          <tr>
            {showDate && <th scope="col">{t("table.date")}</th>}
            <th scope="col">{t("table.time")}</th>
            <th scope="col">{t("table.patient")}</th>
            {doctorName && <th scope="col">{t("table.doctor")}</th>}
            <th scope="col">{t("table.reason")}</th>
            <th scope="col">{t("table.status")}</th>
            <th scope="col">{t("table.actions")}</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((row) => (
            <TableRow
              key={row.appointment.id}
              row={row}
              timeZone={timeZone}
              actions={nextActions(row.appointment.status, row.appointment.start, actions, now)}
              onPatient={onPatient}
              doctor={doctorName?.(row.appointment.practitioner_id)}
              showDate={showDate}
              onError={setError}
            />
          ))}
        </tbody>
      </table>
    </>
  );
}

interface TableRowProps {
  row: AppointmentRow;
  timeZone: string;
  /** The actions offered now. */
  actions: AppointmentAction[];
  onPatient?: (patientId: string) => void;
  /** The doctor's name, when the table has the column. */
  doctor?: string;
  showDate?: boolean;
  onError: (e: string | null) => void;
}

/** Whether a row would draw the same: each change re-reads the whole list, and redrawing
 *  hundreds of unchanged rows (each with its buttons) was most of the time a new booking took
 *  to appear in a doctor's long day. */
function sameRow(a: TableRowProps, b: TableRowProps): boolean {
  const x = a.row;
  const y = b.row;
  return (
    x.appointment.id === y.appointment.id &&
    x.appointment.version === y.appointment.version &&
    // The node's reference can arrive while a later local change keeps the version.
    x.appointment.reference === y.appointment.reference &&
    x.appointment.updated_at === y.appointment.updated_at &&
    x.pending === y.pending &&
    x.patient_name === y.patient_name &&
    a.timeZone === b.timeZone &&
    a.actions.join() === b.actions.join() &&
    a.onPatient === b.onPatient &&
    a.doctor === b.doctor &&
    a.showDate === b.showDate &&
    a.onError === b.onError
  );
}

/** One appointment's row; drawn again only when what it shows changed (or the language). */
const TableRow = memo(function TableRow({ row, timeZone, actions, onPatient, doctor, showDate, onError }: TableRowProps) {
  useLocale();
  const a = row.appointment;
  return (
    <tr className={row.pending ? "pending" : undefined} data-status={a.status} data-reference={a.reference}>
      {showDate && <td>{dayOf(a.start, timeZone)}</td>}
      <td>{timeOf(a.start, timeZone)}</td>
      <td>
        {onPatient ? (
          <Button className="link" onPress={() => onPatient(a.patient_id)}>{row.patient_name ?? a.reference}</Button>
        ) : (
          (row.patient_name ?? a.reference)
        )}
      </td>
      {doctor !== undefined && <td>{doctor}</td>}
      <td>
        {a.reason}
        {a.override_reason && <div className="note">{t("appointment.override", { reason: a.override_reason })}</div>}
        {a.cancellation_reason && <div className="note">{t("appointment.cancelledBecause", { reason: a.cancellation_reason })}</div>}
      </td>
      <td>
        {tKey("appointmentStatus", a.status)}
        {row.pending && <span className="pending-mark"> ({t("appointment.pending")})</span>}
      </td>
      <td className="actions">
        <div className="buttons">
          {actions.map((action) => (
            <ActionButton key={action} row={row} action={action} onError={onError} />
          ))}
        </div>
      </td>
    </tr>
  );
}, sameRow);

/** The writes the node refused, with its reasons, until dismissed; a taken time offers the
 *  next free ones, a possible duplicate opens its dialog. */
export function RefusedList({ count, timeZone }: { count: number; timeZone: string }): ReactNode {
  // Read only while the core counts refusals: no query on every change otherwise.
  return count > 0 ? <RefusedItems count={count} timeZone={timeZone} /> : null;
}

function RefusedItems({ count, timeZone }: { count: number; timeZone: string }): ReactNode {
  const refused = useLive(refusedWrites, [count], ["outbox"]);
  const items = refused.data ?? [];
  if (items.length === 0) return null;
  return (
    <section className="refused" aria-labelledby="refused-heading" role="alert">
      <h2 id="refused-heading">{t("refused.heading")}</h2>
      <ul>
        {items.map((r) => (
          <li key={r.seq} data-code={r.code}>
            <span>{r.kind === "patient" ? t("refused.patient") : t("refused.appointment")}: </span>
            <strong className="refused-reason">{errorText({ code: r.code, message: r.reason, problem: r.problem })}</strong>
            {r.code === "possible-duplicate" && r.registration && <DuplicateDialog refused={{ ...r, registration: r.registration }} />}
            <Button className="small secondary" onPress={() => void dismissRefused(r.seq)}>{t("common.dismiss")}</Button>
            {r.code === "slot-taken" && r.booking && (
              <NextFreeSlots booking={r.booking} timeZone={timeZone} onBooked={() => void dismissRefused(r.seq)} />
            )}
          </li>
        ))}
      </ul>
    </section>
  );
}

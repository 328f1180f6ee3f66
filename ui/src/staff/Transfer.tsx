// Moving a patient's record to another hospital, on the patient's page: the front desk
// authorises it with the patient in front of it and follows it until the other hospital
// confirms; a record that moved says where it lives now; doctors read what other hospitals
// moved here, marked with where it came from.
import { useState, type FormEvent } from "react";
import { Button, Checkbox } from "react-aria-components";
import { messageOf, peers, startTransfer, transferredRecords, transfers } from "../api";
import type { IdentityDocument } from "../bindings/IdentityDocument";
import type { PatientTransfer } from "../bindings/PatientTransfer";
import type { TransferredTo } from "../bindings/TransferredTo";
import { dayOf, timeOf } from "../format";
import { t, tKey } from "../i18n";
import { useLive } from "../live";
import { RecordView } from "./Access";

const DOCUMENTS: readonly IdentityDocument[] = ["passport", "identity-card", "driving-licence", "residence-permit"];

/** Where a moved record lives now; shown at the top of its page. */
export function MovedNotice({ to, timeZone }: { to: TransferredTo; timeZone: string }) {
  return (
    <p className="moved-notice" role="status">
      {t("transfer.moved", { organisation: to.organisation, day: dayOf(to.at, timeZone), id: to.global_id })}
    </p>
  );
}

function TransferLine({ transfer: x, timeZone }: { transfer: PatientTransfer; timeZone: string }) {
  const state =
    x.state === "sending"
      ? x.parts_delivered < x.parts
        ? t("transfer.state.sending", { peer: x.peer, delivered: x.parts_delivered, parts: x.parts })
        : t("transfer.state.delivered", { peer: x.peer, parts: x.parts })
      : x.state === "confirmed"
        ? t("transfer.state.confirmed", { organisation: x.organisation ?? x.peer })
        : t("transfer.state.refused", { peer: x.peer, reason: x.reason ?? "" });
  return (
    <li className={`transfer ${x.state}`} data-transfer={x.id}>
      <p>
        <span className="state" data-state={x.state}>
          {state}
        </span>
      </p>
      <p className="muted">
        {t("transfer.authorised", {
          who: x.authorised_by,
          day: dayOf(x.created_at, timeZone),
          time: timeOf(x.created_at, timeZone),
          document: tKey("transfer.document", x.identity_document),
        })}
      </p>
    </li>
  );
}

function TransferForm({ patientId, onStarted }: { patientId: string; onStarted: () => void }) {
  const hospitals = useLive(peers, [], []);
  const choices = (hospitals.data ?? []).filter((p) => p.kind === "hospital");
  const [peer, setPeer] = useState("");
  // No default: the front desk says what it checked.
  const [document, setDocument] = useState<IdentityDocument | "">("");
  const [asked, setAsked] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const chosen = peer || choices[0]?.name || "";
  async function submit(e: FormEvent) {
    e.preventDefault();
    if (!document) return;
    setBusy(true);
    setError(null);
    try {
      await startTransfer(patientId, { peer: chosen, identity_document: document });
      onStarted();
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  }
  if (hospitals.error)
    return (
      <p className="error" role="alert">
        {hospitals.error}
      </p>
    );
  if (hospitals.data && choices.length === 0) return <p>{t("transfer.noHospitals")}</p>;
  return (
    <form className="panel form-grid" onSubmit={submit} aria-labelledby="transfer-form-heading">
      <p id="transfer-form-heading" className="muted wide">
        {t("transfer.intro")}
      </p>
      <label className="field">
        <span>{t("transfer.hospital")}</span>
        <select id="transfer-peer" value={chosen} onChange={(e) => setPeer(e.target.value)}>
          {choices.map((p) => (
            <option key={p.name} value={p.name}>
              {p.name}
            </option>
          ))}
        </select>
      </label>
      <label className="field">
        <span>{t("transfer.document")}</span>
        <select id="transfer-document" value={document} onChange={(e) => setDocument(e.target.value as IdentityDocument | "")}>
          <option value="">{t("transfer.chooseDocument")}</option>
          {DOCUMENTS.map((d) => (
            <option key={d} value={d}>
              {tKey("transfer.document", d)}
            </option>
          ))}
        </select>
      </label>
      <Checkbox id="transfer-asked" isSelected={asked} onChange={setAsked} className="checkbox">
        <span className="box" aria-hidden="true">{asked ? "✓" : ""}</span>
        {t("transfer.patientAsked", { peer: chosen })}
      </Checkbox>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      <Button type="submit" id="transfer-submit" isDisabled={busy || !asked || !chosen || !document}>
        {t("transfer.submit")}
      </Button>
    </form>
  );
}

/** The front desk's part: the patient's transfers, and the form while none is under way. */
export function PatientTransferView({
  patientId,
  movedTo,
  timeZone,
}: {
  patientId: string;
  movedTo: TransferredTo | undefined;
  timeZone: string;
}) {
  const list = useLive(() => transfers(patientId), [patientId], ["patient"]);
  const [opened, setOpened] = useState(false);
  const busy = list.data?.some((x) => x.state !== "refused") ?? true;
  return (
    <section aria-labelledby="transfer-heading" className="transfers">
      <h3 id="transfer-heading">{t("transfer.heading")}</h3>
      {list.error && (
        <p className="error" role="alert">
          {list.error}
        </p>
      )}
      {list.data && list.data.length > 0 && (
        <ul className="transfer-list">
          {list.data.map((x) => (
            <TransferLine key={x.id} transfer={x} timeZone={timeZone} />
          ))}
        </ul>
      )}
      {!movedTo && !busy &&
        (opened ? (
          <TransferForm patientId={patientId} onStarted={() => setOpened(false)} />
        ) : (
          <Button className="small secondary" id="transfer-open" onPress={() => setOpened(true)}>
            {t("transfer.submit")}
          </Button>
        ))}
    </section>
  );
}

/** What other hospitals moved here for this patient, for a doctor. */
export function TransferredRecordsView({ patientId, timeZone }: { patientId: string; timeZone: string }) {
  const list = useLive(() => transferredRecords(patientId), [patientId], ["patient"]);
  if (!list.error && (list.data?.length ?? 0) === 0) return null;
  return (
    <section aria-labelledby="transferred-heading" className="transferred">
      <h3 id="transferred-heading">{t("transfer.fromHeading")}</h3>
      {list.error && (
        <p className="error" role="alert">
          {list.error}
        </p>
      )}
      {list.data?.map((r, i) => (
        <section key={i} className="remote-records" aria-labelledby={`transferred-${i}`}>
          <h4 id={`transferred-${i}`} className="from-elsewhere">
            {t("transfer.from", { organisation: r.organisation })}
          </h4>
          <p className="muted">{t("transfer.arrived", { day: dayOf(r.read_at, timeZone), time: timeOf(r.read_at, timeZone) })}</p>
          <RecordView record={r} timeZone={timeZone} reports appointments />
        </section>
      ))}
    </section>
  );
}

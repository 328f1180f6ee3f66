// Imaging on a patient's page (doctors): ordering a study, the orders, and the studies from the
// PACS with their previews, live. And the reconciliation list (reception and doctors): studies
// that matched no patient, linked by hand.
import { now, parseDateTime, toCalendarDateTime } from "@internationalized/date";
import { useEffect, useState, type FormEvent } from "react";
import { Button, Input, Label, SearchField, TextField } from "react-aria-components";
import { linkStudy, messageOf, openStudyViewer, orderImaging, patientImaging, studyPreview, unmatchedStudies } from "../api";
import type { ImagingStudy } from "../bindings/ImagingStudy";
import type { Modality } from "../bindings/Modality";
import { dayOf, shortDate, timeOf } from "../format";
import { t, tKey } from "../i18n";
import { useLive } from "../live";
import { useSearch } from "./Patients";

const MODALITIES: Modality[] = ["CT", "MR", "US", "CR", "DX", "MG", "NM", "PT", "XA", "RF"];

/** The next quarter of an hour at least an hour from now in the node's zone (where every time
 *  the app shows is), as a datetime-local input holds it: a study is most often wanted as soon
 *  as the department can. */
function soon(timeZone: string): string {
  const t = now(timeZone).add({ hours: 1 });
  const quarter = t.set({ minute: 0, second: 0, millisecond: 0 }).add({ minutes: Math.ceil(t.minute / 15) * 15 });
  return toCalendarDateTime(quarter).toString().slice(0, 16);
}

/** Previews already read, by study: a screen read again shows them at once. */
const previews = new Map<string, string>();

/** A study's preview, read through the node when shown. */
function Preview({ study }: { study: ImagingStudy }) {
  const [src, setSrc] = useState<string | null>(previews.get(study.id) ?? null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    if (previews.has(study.id)) return;
    let live = true;
    studyPreview(study.id)
      .then((s) => {
        previews.set(study.id, s);
        if (live) setSrc(s);
      })
      .catch((e) => live && setError(messageOf(e)));
    return () => {
      live = false;
    };
  }, [study.id]);
  if (error) return <span className="muted">{t("imaging.noPreview")}</span>;
  if (!src) return <span className="muted">{t("imaging.loadingPreview")}</span>;
  return <img className="study-preview" src={src} alt={t("imaging.previewOf", { what: study.description || study.modalities.join("/") })} />;
}

function OrderForm({ patientId, timeZone, onOrdered }: { patientId: string; timeZone: string; onOrdered: (accession: string) => void }) {
  const [modality, setModality] = useState<Modality>("CT");
  const [procedure, setProcedure] = useState("");
  const [reason, setReason] = useState("");
  const [when, setWhen] = useState(() => soon(timeZone));
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const o = await orderImaging({
        patient_id: patientId,
        modality,
        procedure: procedure.trim(),
        reason: reason.trim(),
        scheduled_at: parseDateTime(when).toDate(timeZone).toISOString(),
      });
      setProcedure("");
      setReason("");
      onOrdered(o.accession);
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  }
  return (
    <form className="panel form-grid" onSubmit={submit} aria-labelledby="order-heading">
      <h4 id="order-heading">{t("imaging.order")}</h4>
      <label className="field">
        <span>{t("imaging.modality")}</span>
        <select id="order-modality" value={modality} onChange={(e) => setModality(e.target.value as Modality)}>
          {MODALITIES.map((m) => (
            <option key={m} value={m}>
              {tKey("modality", m)}
            </option>
          ))}
        </select>
      </label>
      <TextField value={procedure} onChange={setProcedure} isRequired maxLength={64}>
        <Label>{t("imaging.procedure")}</Label>
        <Input id="order-procedure" />
      </TextField>
      <TextField value={reason} onChange={setReason} isRequired maxLength={500}>
        <Label>{t("imaging.reason")}</Label>
        <Input id="order-reason" />
      </TextField>
      <label className="field">
        <span>{t("imaging.scheduled")}</span>
        <input id="order-when" type="datetime-local" required value={when} onChange={(e) => setWhen(e.target.value)} />
      </label>
      {error && <p className="error" role="alert">{error}</p>}
      <Button type="submit" id="order-submit" isDisabled={busy || !procedure.trim() || !reason.trim() || !when}>
        {t("imaging.orderSubmit")}
      </Button>
    </form>
  );
}

/** A patient's imaging: their orders and studies, live; a doctor orders from here. */
export function PatientImagingView({ patientId, timeZone }: { patientId: string; timeZone: string }) {
  const imaging = useLive(() => patientImaging(patientId), [patientId], ["imaging"]);
  const [ordering, setOrdering] = useState(false);
  const [ordered, setOrdered] = useState<string | null>(null);
  const [viewerError, setViewerError] = useState<string | null>(null);
  const data = imaging.data;
  async function openViewer(studyId: string) {
    setViewerError(null);
    try {
      if (!(await openStudyViewer(patientId, studyId))) setViewerError(t("imaging.viewerNotStarted"));
    } catch (e) {
      setViewerError(messageOf(e));
    }
  }
  return (
    <section aria-labelledby="imaging-heading" className="imaging">
      <h3 id="imaging-heading">{t("imaging.heading")}</h3>
      {imaging.error && <p className="error" role="alert">{imaging.error}</p>}
      {data?.mrn && <p>{t("imaging.mrn", { mrn: data.mrn })}</p>}
      {data?.pacs &&
        (ordering ? (
          <OrderForm
            patientId={patientId}
            timeZone={timeZone}
            onOrdered={(accession) => {
              setOrdering(false);
              setOrdered(accession);
            }}
          />
        ) : (
          <Button className="small secondary" id="order-open" onPress={() => setOrdering(true)}>
            {t("imaging.order")}
          </Button>
        ))}
      {ordered && <p role="status">{t("imaging.ordered", { accession: ordered })}</p>}
      {data && data.studies.length === 0 && <p>{t("imaging.noStudies")}</p>}
      {viewerError && <p className="error" role="alert">{viewerError}</p>}
      <ul className="studies" aria-label={t("imaging.studies")}>
        {data?.studies.map((s) => (
          <li key={s.id} className="study">
            <Preview study={s} />
            <div>
              <strong>{s.modalities.join("/") || "—"}</strong> {s.description || t("imaging.untitled")}
              <br />
              {s.study_date ? shortDate(s.study_date) : dayOf(s.received_at, timeZone)} · {t("imaging.images", { n: s.instance_count })}
              {s.accession && <> · {t("imaging.accession", { accession: s.accession })}</>}
              {s.viewer_url && (
                <div>
                  <Button className="small link" onPress={() => void openViewer(s.id)}>{t("imaging.openViewer")}</Button>
                </div>
              )}
            </div>
          </li>
        ))}
      </ul>
      {data && data.orders.length > 0 && (
        <table aria-labelledby="orders-heading">
          <caption id="orders-heading">{t("imaging.orders")}</caption>
          <thead>
            <tr>
              <th scope="col">{t("imaging.accessionColumn")}</th>
              <th scope="col">{t("imaging.modality")}</th>
              <th scope="col">{t("imaging.procedure")}</th>
              <th scope="col">{t("imaging.scheduled")}</th>
              <th scope="col">{t("table.status")}</th>
            </tr>
          </thead>
          <tbody>
            {data.orders.map((o) => (
              <tr key={o.id}>
                <td>{o.accession}</td>
                <td>{o.modality}</td>
                <td>{o.procedure}</td>
                <td>
                  {dayOf(o.scheduled_at, timeZone)} {timeOf(o.scheduled_at, timeZone)}
                </td>
                <td>{tKey("orderStatus", o.status)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

/** Finds a patient to link a study to, and links it once the user confirmed that the study
 *  (as the modality named it) and the patient are the same person: a study linked to the wrong
 *  patient shows on their record. */
function LinkTo({ study, onLinked }: { study: ImagingStudy; onLinked: () => void }) {
  const [text, setText] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [chosen, setChosen] = useState<{ id: string; name: string; born: string; card: string } | null>(null);
  const hits = useSearch(text);
  async function link(patientId: string) {
    setError(null);
    try {
      await linkStudy(study.id, patientId);
      onLinked();
    } catch (e) {
      setError(messageOf(e));
    }
  }
  if (chosen) {
    return (
      <div className="link-to confirm" role="group" aria-labelledby="link-confirm">
        <p id="link-confirm">
          {t("reconcile.confirm", {
            sent: study.dicom_patient_name.replace(/\^/g, " ") || t("reconcile.noName"),
            id: study.dicom_patient_id || "—",
            name: chosen.name,
            born: chosen.born,
            card: chosen.card,
          })}
        </p>
        {error && <p className="error" role="alert">{error}</p>}
        <div className="row">
          <Button className="small" id="link-confirm-yes" onPress={() => void link(chosen.id)}>
            {t("reconcile.confirmYes")}
          </Button>
          <Button className="small secondary" onPress={() => setChosen(null)}>{t("common.cancel")}</Button>
        </div>
      </div>
    );
  }
  return (
    <div className="link-to">
      <SearchField value={text} onChange={setText} autoFocus>
        <Label>{t("reconcile.findPatient")}</Label>
        <Input id="reconcile-search" />
      </SearchField>
      {error && <p className="error" role="alert">{error}</p>}
      <ul className="hits" aria-label={t("reconcile.findPatient")}>
        {(hits.data ?? []).flatMap((h) =>
          h.kind === "patient"
            ? [
                <li key={h.patient.id}>
                  <Button
                    className="link"
                    onPress={() =>
                      setChosen({
                        id: h.patient.id,
                        name: `${h.patient.given_name} ${h.patient.family_name}`,
                        born: h.patient.birth_date,
                        card: h.patient.card_number,
                      })
                    }
                  >
                    {t("reconcile.linkTo", { name: `${h.patient.given_name} ${h.patient.family_name}` })}
                  </Button>
                  <span> · {h.patient.birth_date} · {h.patient.card_number}</span>
                </li>,
              ]
            : [],
        )}
      </ul>
    </div>
  );
}

/** Studies that matched no patient: what the modality sent, to link by hand. Doctors see the
 *  images too (`previews`); reception decides by the name, number and accession. */
export function Reconciliation({ timeZone, previews = false }: { timeZone: string; previews?: boolean }) {
  const list = useLive(unmatchedStudies, [], ["imaging"]);
  const [linking, setLinking] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);
  return (
    <section aria-labelledby="reconcile-heading">
      <h2 id="reconcile-heading">{t("reconcile.heading")}</h2>
      <p>{t("reconcile.explain")}</p>
      {list.error && <p className="error" role="alert">{list.error}</p>}
      {done && <p role="status">{done}</p>}
      {list.data?.length === 0 ? (
        <p>{t("reconcile.empty")}</p>
      ) : (
        <ul className="studies" aria-label={t("reconcile.heading")}>
          {(list.data ?? []).map((s) => (
            <li key={s.id} className={previews ? "study" : "study no-preview"}>
              {previews && <Preview study={s} />}
              <div>
                <strong>{s.dicom_patient_name.replace(/\^/g, " ") || t("reconcile.noName")}</strong>
                <br />
                {t("reconcile.sent", {
                  id: s.dicom_patient_id || "—",
                  issuer: s.dicom_issuer || "—",
                  accession: s.accession || "—",
                })}
                <br />
                {s.modalities.join("/")} {s.description} · {dayOf(s.received_at, timeZone)} {timeOf(s.received_at, timeZone)} ·{" "}
                {t("imaging.images", { n: s.instance_count })}
                {linking === s.id ? (
                  <LinkTo
                    study={s}
                    onLinked={() => {
                      setLinking(null);
                      setDone(t("reconcile.linked"));
                    }}
                  />
                ) : (
                  <div>
                    <Button className="small" onPress={() => setLinking(s.id)}>{t("reconcile.link")}</Button>
                  </div>
                )}
              </div>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

/** The words a report cites a study with: what it is, when, and the identifiers that find it
 *  again in any PACS (the accession number and the StudyInstanceUID). */
export function citation(s: ImagingStudy): string {
  return t("imaging.citation", {
    what: s.description || t("imaging.untitled"),
    modality: s.modalities.join("/") || "—",
    date: s.study_date ?? s.received_at.slice(0, 10),
    accession: s.accession || "—",
    uid: s.study_uid,
  });
}

/** In the report editor: cite one of the patient's studies in the findings. Needs the node
 *  (studies are not kept on the workstation); offline it offers nothing. */
export function CiteStudy({ patientId, onCite }: { patientId: string; onCite: (text: string) => void }) {
  const imaging = useLive(() => patientImaging(patientId), [patientId], ["imaging"]);
  const studies = imaging.data?.studies ?? [];
  const [chosen, setChosen] = useState("");
  if (studies.length === 0) return null;
  const study = studies.find((s) => s.id === chosen) ?? studies[0];
  return (
    <div className="row cite-study">
      <label className="field">
        <span>{t("imaging.citeLabel")}</span>
        <select id="cite-study" value={study.id} onChange={(e) => setChosen(e.target.value)}>
          {studies.map((s) => (
            <option key={s.id} value={s.id}>
              {s.modalities.join("/")} {s.description || t("imaging.untitled")} · {s.study_date ?? s.received_at.slice(0, 10)}
            </option>
          ))}
        </select>
      </label>
      <Button className="small secondary" id="cite-study-add" onPress={() => onCite(citation(study))}>
        {t("imaging.cite")}
      </Button>
    </div>
  );
}

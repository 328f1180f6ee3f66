// Other hospitals' requests to read a patient's record here, as the front desk (staff window)
// and the identified patient (kiosk window) answer them, and who read what; and how scopes and
// periods read for people, which the doctor's side (staff/Access.tsx) shows too.
import { useState } from "react";
import { Button } from "react-aria-components";
import { accessReads, decideAccess, incomingAccess, messageOf, revokeAccess } from "./api";
import type { IncomingAccess } from "./bindings/IncomingAccess";
import { dayOf, timeOf } from "./format";
import { t, tKey } from "./i18n";
import { useLive } from "./live";

/** The resource a SMART scope names: `patient/DiagnosticReport.rs` → `DiagnosticReport`. */
export function scopeResource(scope: string): string {
  return scope.replace(/^patient\//, "").replace(/\..*$/, "");
}

/** "Reports, appointments", for people. */
export function describeScopes(scopes: readonly string[]): string {
  return [...new Set(scopes.map(scopeResource))].map((r) => tKey("access.scope", r)).join(", ");
}

export function until(iso: string | null, timeZone: string): string {
  return iso ? t("access.until", { day: dayOf(iso, timeZone), time: timeOf(iso, timeZone) }) : "";
}

/** One request from another hospital, with what may be answered to it. */
function IncomingItem({
  request,
  timeZone,
  big,
  onChanged,
}: {
  request: IncomingAccess;
  timeZone: string;
  big: boolean;
  onChanged: () => void;
}) {
  const [kept, setKept] = useState<string[]>(request.scopes);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const size = big ? "big" : "small";
  async function act(f: () => Promise<unknown>) {
    setBusy(true);
    setError(null);
    try {
      await f();
      // A kiosk hears no live news of these requests: its list is read again.
      onChanged();
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  }
  return (
    <li className={`access ${request.state}`} data-request={request.id}>
      <p>
        {t("access.asks", {
          doctor: request.practitioner_name,
          // The organisation is the other hospital's own say; its node's name is how this
          // hospital peered it, shown beside it when they differ.
          organisation: request.organisation === request.peer ? request.peer : `${request.organisation} (${request.peer})`,
          what: describeScopes(request.scopes),
          hours: request.hours,
        })}
      </p>
      <p className="muted">
        {tKey("access.purpose", request.purpose)} ·{" "}
        <span className="state" data-state={request.state}>
          {tKey("access.state", request.state)}
        </span>
        {request.approved_by && ` · ${tKey("access.approvedBy", request.approved_by)}`}
        {request.state === "granted" && ` · ${until(request.expires_at, timeZone)}`}
      </p>
      {request.state === "pending" && (
        <>
          {request.scopes.length > 1 && (
            <fieldset className="field">
              <legend>{t("access.allowWhat")}</legend>
              {request.scopes.map((s) => (
                <label key={s} className="check">
                  <input
                    type="checkbox"
                    checked={kept.includes(s)}
                    onChange={(e) => setKept((k) => (e.target.checked ? [...k, s] : k.filter((x) => x !== s)))}
                  />
                  {tKey("access.scope", scopeResource(s))}
                </label>
              ))}
            </fieldset>
          )}
          <div className="row">
            <Button
              className={size}
              id={`allow-${request.id}`}
              isDisabled={busy || kept.length === 0}
              onPress={() => void act(() => decideAccess(request.id, { allow: true, scopes: kept, hours: null }))}
            >
              {t("access.allow")}
            </Button>
            <Button
              className={`${size} secondary`}
              id={`decline-${request.id}`}
              isDisabled={busy}
              onPress={() => void act(() => decideAccess(request.id, { allow: false, scopes: null, hours: null }))}
            >
              {t("access.decline")}
            </Button>
          </div>
        </>
      )}
      {request.state === "granted" && (
        <Button className={`${size} secondary`} id={`revoke-${request.id}`} isDisabled={busy} onPress={() => void act(() => revokeAccess(request.id))}>
          {t("access.revoke")}
        </Button>
      )}
      {error && <p className="error" role="alert">{error}</p>}
    </li>
  );
}

/** Other hospitals' requests for this patient's record here, and who read it: at the front desk
 *  (`big` false) and for the patient at a kiosk (`big` true). */
export function PatientPermissions({ patientId, timeZone, big = false }: { patientId: string; timeZone: string; big?: boolean }) {
  const [answered, setAnswered] = useState(0);
  const list = useLive(() => incomingAccess(patientId), [patientId, answered], ["access"]);
  const reads = useLive(() => accessReads(patientId), [patientId, answered], ["access"]);
  return (
    <section aria-labelledby="permissions-heading" className="permissions">
      <h3 id="permissions-heading">{t("access.permissionsHeading")}</h3>
      {list.error && <p className="error" role="alert">{list.error}</p>}
      {list.data?.length === 0 ? (
        <p>{t("access.noRequests")}</p>
      ) : (
        <ul className="access-list">
          {list.data?.map((r) => (
            <IncomingItem key={`${r.id}-${r.version}`} request={r} timeZone={timeZone} big={big} onChanged={() => setAnswered((n) => n + 1)} />
          ))}
        </ul>
      )}
      <h4 id="reads-heading">{t("access.whoLooked")}</h4>
      {reads.error && <p className="error" role="alert">{reads.error}</p>}
      {reads.data?.length === 0 ? (
        <p>{t("access.nobodyLooked")}</p>
      ) : (
        <table aria-labelledby="reads-heading">
          <thead>
            <tr>
              <th scope="col">{t("table.date")}</th>
              <th scope="col">{t("table.time")}</th>
              <th scope="col">{t("access.who")}</th>
              <th scope="col">{t("access.what")}</th>
            </tr>
          </thead>
          <tbody>
            {reads.data?.map((r, i) => (
              <tr key={i}>
                <td>{dayOf(r.read_at, timeZone)}</td>
                <td>{timeOf(r.read_at, timeZone)}</td>
                <td>
                  {r.practitioner_name}, {r.organisation}
                </td>
                <td>
                  {tKey("access.scope", r.resource)} ({r.count})
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

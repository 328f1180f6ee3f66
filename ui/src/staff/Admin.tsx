// The admin's screens: staff accounts, kiosk devices, and records imported from another
// system (the audit trail is AuditTrail.tsx).
// They ask the node directly (an admin has no patient data to keep offline), so they need it online.
import { useCallback, useEffect, useState, type FormEvent } from "react";
import { Button, Input, Label, TextField } from "react-aria-components";
import {
  createStaffAccount,
  importRecords,
  kioskDevices,
  messageOf,
  onImportProgress,
  registerKiosk,
  revokeKiosk,
  staffAccounts,
  updateStaffAccount,
} from "../api";
import type { ImportProgress } from "../bindings/ImportProgress";
import type { ImportSummary } from "../bindings/ImportSummary";
import type { KioskDevice } from "../bindings/KioskDevice";
import type { KioskRegistration } from "../bindings/KioskRegistration";
import type { Practitioner } from "../bindings/Practitioner";
import type { Role } from "../bindings/Role";
import { dayOf } from "../format";
import { t } from "../i18n";

/** Loads once and on `reload()`; errors kept for the screen to show. */
function useNodeQuery<T>(load: () => Promise<T>) {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<string | null>(null);
  const reload = useCallback(() => {
    load()
      .then((d) => {
        setData(d);
        setError(null);
      })
      .catch((e) => setError(messageOf(e)));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  useEffect(reload, [reload]);
  return { data, error, reload, setError };
}

export function StaffAccounts() {
  const accounts = useNodeQuery(staffAccounts);
  const [username, setUsername] = useState("");
  const [displayName, setDisplayName] = useState("");
  const [role, setRole] = useState<Role>("reception");
  const [password, setPassword] = useState("");
  const [notice, setNotice] = useState<string | null>(null);
  async function create(e: FormEvent) {
    e.preventDefault();
    try {
      const a = await createStaffAccount({ username: username.trim(), display_name: displayName.trim(), role, password });
      setNotice(t("admin.created", { name: a.display_name }));
      setUsername("");
      setDisplayName("");
      setPassword("");
      accounts.reload();
    } catch (err) {
      accounts.setError(messageOf(err));
    }
  }
  async function toggle(p: Practitioner) {
    try {
      await updateStaffAccount(p.id, p.version, { disabled: !p.disabled, password: null, display_name: null });
      accounts.reload();
    } catch (err) {
      accounts.setError(messageOf(err));
    }
  }
  return (
    <section aria-labelledby="accounts-heading">
      <h2 id="accounts-heading">{t("admin.accounts")}</h2>
      {accounts.error && <p className="error" role="alert">{accounts.error}</p>}
      {notice && <p role="status">{notice}</p>}
      <table aria-labelledby="accounts-heading">
        <thead>
          <tr>
            <th scope="col">{t("admin.name")}</th>
            <th scope="col">{t("signIn.username")}</th>
            <th scope="col">{t("admin.role")}</th>
            <th scope="col">{t("table.status")}</th>
            <th scope="col">{t("table.actions")}</th>
          </tr>
        </thead>
        <tbody>
          {(accounts.data ?? []).map((p) => (
            <tr key={p.id}>
              <td>{p.display_name}</td>
              <td>{p.username}</td>
              <td>{t(`role.${p.role}`)}</td>
              <td>{p.disabled ? t("admin.disabled") : t("admin.active")}</td>
              <td>
                <Button className="small secondary" onPress={() => void toggle(p)} aria-label={`${p.disabled ? t("admin.enable") : t("admin.disable")}: ${p.display_name}`}>
                  {p.disabled ? t("admin.enable") : t("admin.disable")}
                </Button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <form className="panel form-grid" onSubmit={create} aria-labelledby="new-account-heading">
        <h3 id="new-account-heading">{t("admin.newAccount")}</h3>
        <TextField value={displayName} onChange={setDisplayName} isRequired>
          <Label>{t("admin.name")}</Label>
          <Input />
        </TextField>
        <TextField value={username} onChange={setUsername} isRequired autoComplete="off">
          <Label>{t("signIn.username")}</Label>
          <Input />
        </TextField>
        <label>
          {t("admin.role")}
          <select value={role} onChange={(e) => setRole(e.target.value as Role)}>
            <option value="reception">{t("role.reception")}</option>
            <option value="doctor">{t("role.doctor")}</option>
            <option value="admin">{t("role.admin")}</option>
          </select>
        </label>
        <TextField value={password} onChange={setPassword} isRequired type="password" autoComplete="new-password">
          <Label>{t("admin.password")}</Label>
          <Input />
        </TextField>
        <Button type="submit">{t("admin.create")}</Button>
      </form>
    </section>
  );
}

export function KioskDevices({ timeZone }: { timeZone: string }) {
  const devices = useNodeQuery(kioskDevices);
  const [label, setLabel] = useState("");
  const [registered, setRegistered] = useState<KioskRegistration | null>(null);
  async function register(e: FormEvent) {
    e.preventDefault();
    try {
      setRegistered(await registerKiosk(label.trim()));
      setLabel("");
      devices.reload();
    } catch (err) {
      devices.setError(messageOf(err));
    }
  }
  async function revoke(d: KioskDevice) {
    try {
      await revokeKiosk(d.id);
      devices.reload();
    } catch (err) {
      devices.setError(messageOf(err));
    }
  }
  return (
    <section aria-labelledby="kiosks-heading">
      <h2 id="kiosks-heading">{t("admin.kiosks")}</h2>
      {devices.error && <p className="error" role="alert">{devices.error}</p>}
      {registered && (
        <div className="panel" role="status" id="kiosk-registered">
          <p>{t("admin.secretOnce", { label: registered.device.label })}</p>
          <p>
            {t("kiosk.device")}: <code>{registered.device.id}</code>
          </p>
          <p>
            {t("kiosk.secret")}: <code>{registered.secret}</code>
          </p>
        </div>
      )}
      <table aria-labelledby="kiosks-heading">
        <thead>
          <tr>
            <th scope="col">{t("admin.label")}</th>
            <th scope="col">{t("kiosk.device")}</th>
            <th scope="col">{t("admin.registered")}</th>
            <th scope="col">{t("table.status")}</th>
            <th scope="col">{t("table.actions")}</th>
          </tr>
        </thead>
        <tbody>
          {(devices.data ?? []).map((d) => (
            <tr key={d.id}>
              <td>{d.label}</td>
              <td><code>{d.id}</code></td>
              <td>{dayOf(d.registered_at, timeZone)}</td>
              <td>{d.revoked ? t("admin.revoked") : t("admin.active")}</td>
              <td>
                {!d.revoked && (
                  <Button className="small secondary" onPress={() => void revoke(d)} aria-label={`${t("admin.revoke")}: ${d.label}`}>
                    {t("admin.revoke")}
                  </Button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <form className="panel row" onSubmit={register} aria-labelledby="new-kiosk-heading">
        <h3 id="new-kiosk-heading">{t("admin.newKiosk")}</h3>
        <TextField value={label} onChange={setLabel} isRequired>
          <Label>{t("admin.label")}</Label>
          <Input />
        </TextField>
        <Button type="submit">{t("admin.register")}</Button>
      </form>
    </section>
  );
}

/** Records from another system, in FHIR R4 (a Bundle or NDJSON), imported entry by entry with
 *  a progress bar; the summary says what was created, matched and refused, and why. */
export function ImportRecords() {
  const [file, setFile] = useState<File | null>(null);
  const [progress, setProgress] = useState<ImportProgress | null>(null);
  const [busy, setBusy] = useState(false);
  const [summary, setSummary] = useState<ImportSummary | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    const off = onImportProgress(setProgress);
    return () => void off.then((f) => f());
  }, []);
  async function start(e: FormEvent) {
    e.preventDefault();
    if (!file) return;
    setBusy(true);
    setSummary(null);
    setError(null);
    setProgress({ done: 0, total: 0 });
    try {
      setSummary(await importRecords(await file.text()));
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  }
  return (
    <section aria-labelledby="import-heading">
      <h2 id="import-heading">{t("import.heading")}</h2>
      <p>{t("import.intro")}</p>
      <form className="panel row" onSubmit={start} aria-labelledby="import-heading">
        <label className="file-choice">
          {t("import.file")}
          <input
            type="file"
            accept=".json,.ndjson,application/fhir+json"
            onChange={(e) => setFile(e.currentTarget.files?.[0] ?? null)}
          />
        </label>
        <Button type="submit" isDisabled={!file || busy}>{t("import.start")}</Button>
      </form>
      {progress && (busy || summary) && (
        <p>
          <label>
            {t("import.progress", { done: progress.done, total: progress.total })}{" "}
            <progress value={progress.done} max={Math.max(progress.total, 1)} />
          </label>
        </p>
      )}
      {error && <p className="error" role="alert">{error}</p>}
      {summary && (
        <div className="panel" role="status" aria-labelledby="import-summary-heading">
          <h3 id="import-summary-heading">{t("import.summaryHeading")}</h3>
          <p>
            {t("import.summary", {
              entries: summary.entries,
              created: summary.created,
              matched: summary.matched,
              refused: summary.refused.length,
            })}
          </p>
          {summary.refused.length > 0 && (
            <table aria-labelledby="import-summary-heading">
              <thead>
                <tr>
                  <th scope="col">{t("import.position")}</th>
                  <th scope="col">{t("import.type")}</th>
                  <th scope="col">{t("import.reason")}</th>
                </tr>
              </thead>
              <tbody>
                {summary.refused.map((r) => (
                  <tr key={r.position}>
                    <td>{r.position}</td>
                    <td>{r.resourceType ?? "—"}</td>
                    <td>{r.reason}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </div>
      )}
    </section>
  );
}

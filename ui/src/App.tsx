import { useEffect, useState, type FormEvent } from "react";
import { appointmentsToday, connectionStatus, messageOf, onChanged, onStatus, signIn } from "./api";
import type { AppointmentRow } from "./bindings/AppointmentRow";
import type { SignedInView } from "./bindings/SignedInView";
import type { Status } from "./bindings/Status";
import { t } from "./i18n";

function SignIn({ onSignedIn }: { onSignedIn: (v: SignedInView) => void }) {
  const [nodeUrl, setNodeUrl] = useState("http://127.0.0.1:8080");
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      onSignedIn(await signIn(nodeUrl, username, password));
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  }
  return (
    <form className="sign-in" onSubmit={submit} aria-labelledby="sign-in-heading">
      <h2 id="sign-in-heading">{t("signIn.heading")}</h2>
      <label>
        {t("signIn.node")}
        <input value={nodeUrl} onChange={(e) => setNodeUrl(e.target.value)} required autoComplete="url" />
      </label>
      <label>
        {t("signIn.username")}
        <input value={username} onChange={(e) => setUsername(e.target.value)} required autoComplete="username" autoFocus />
      </label>
      <label>
        {t("signIn.password")}
        <input type="password" value={password} onChange={(e) => setPassword(e.target.value)} required autoComplete="current-password" />
      </label>
      {error && <p className="error" role="alert">{error}</p>}
      <button type="submit" disabled={busy}>{busy ? t("signIn.working") : t("signIn.submit")}</button>
    </form>
  );
}

function Connection({ status }: { status: Status | null }) {
  if (!status) return null;
  return (
    <span className={`status ${status.link}`} role="status" aria-live="polite">
      <span className="dot" aria-hidden="true" />
      {t(`status.${status.link}`)}
      {status.pending > 0 && <span> · {t("status.pending", { n: status.pending })}</span>}
    </span>
  );
}

function Today({ timeZone }: { timeZone: string }) {
  const [rows, setRows] = useState<AppointmentRow[]>([]);
  useEffect(() => {
    let live = true;
    const load = () => appointmentsToday().then((r) => live && setRows(r));
    load();
    const stop = onChanged(load);
    return () => {
      live = false;
      stop.then((f) => f());
    };
  }, []);
  // Times in the node's time zone (where the appointments happen), in the user's locale.
  const time = (iso: string) =>
    new Date(iso).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", timeZone });
  return (
    <section aria-labelledby="today-heading">
      <h2 id="today-heading">{t("today.heading")}</h2>
      {rows.length === 0 ? (
        <p>{t("today.empty")}</p>
      ) : (
        <table>
          <tbody>
            {rows.map(({ appointment: a, pending }) => (
              <tr key={a.id} className={pending ? "pending" : undefined}>
                <td>{time(a.start)}</td>
                <td>{a.reason}</td>
                <td>{a.status}{pending && ` (${t("appointment.pending")})`}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

export function App() {
  const [who, setWho] = useState<SignedInView | null>(null);
  const [status, setStatus] = useState<Status | null>(null);
  useEffect(() => {
    const stop = onStatus(setStatus);
    connectionStatus().then((s) => s && setStatus(s));
    return () => {
      stop.then((f) => f());
    };
  }, []);
  return (
    <>
      <header className="bar">
        <h1>{t("app.title")}{who && ` · ${who.displayName}`}</h1>
        <Connection status={status} />
      </header>
      <main>{who ? <Today timeZone={who.timeZone} /> : <SignIn onSignedIn={setWho} />}</main>
    </>
  );
}

import { useEffect, useState, type FormEvent } from "react";
import { appointmentsToday, connectionStatus, currentSession, messageOf, onChanged, onStatus, signIn } from "./api";
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
        <input type="url" value={nodeUrl} onChange={(e) => setNodeUrl(e.target.value)} required autoComplete="url" />
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
  // The live region is always there, so the first status is announced too.
  return (
    <span className={`status ${status?.link ?? ""}`} role="status" aria-live="polite">
      {status && (
        <>
          <span className="dot" aria-hidden="true" />
          {t(`status.${status.link}`)}
          {status.pending > 0 && <span> · {t("status.pending", { n: status.pending })}</span>}
        </>
      )}
    </span>
  );
}

function Today({ timeZone }: { timeZone: string }) {
  const [rows, setRows] = useState<AppointmentRow[]>([]);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    // Only the newest answer is shown: an older one can arrive last.
    let asked = 0;
    const load = () => {
      const mine = ++asked;
      appointmentsToday()
        .then((r) => {
          if (live && mine === asked) {
            setRows(r);
            setError(null);
          }
        })
        .catch((e) => live && setError(messageOf(e)));
    };
    load();
    const stop = onChanged(load);
    return () => {
      live = false;
      stop.then((f) => f()).catch(() => {});
    };
  }, []);
  // Times in the node's time zone (where the appointments happen), in the user's locale.
  const time = (iso: string) =>
    new Date(iso).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", timeZone });
  return (
    <section aria-labelledby="today-heading">
      <h2 id="today-heading">{t("today.heading")}</h2>
      {error && <p className="error" role="alert">{error}</p>}
      {rows.length === 0 ? (
        <p>{t("today.empty")}</p>
      ) : (
        <table aria-labelledby="today-heading">
          <thead>
            <tr>
              <th scope="col">{t("today.time")}</th>
              <th scope="col">{t("today.reason")}</th>
              <th scope="col">{t("today.status")}</th>
            </tr>
          </thead>
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
    let heard = false;
    const stop = onStatus((s) => {
      heard = true;
      setStatus(s);
      // The node ended the session: back to signing in.
      if (s.link === "signed-out") setWho(null);
    });
    // After a reload the app may still be signed in.
    currentSession()
      .then((v) => v && setWho((w) => w ?? v))
      .catch(() => {});
    // Only if no event came first: the event is newer.
    connectionStatus()
      .then((s) => s && !heard && setStatus(s))
      .catch(() => {});
    return () => {
      stop.then((f) => f()).catch(() => {});
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

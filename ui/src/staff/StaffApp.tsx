// The staff app: sign-in, then the views of the user's role; locks after inactivity.
import { Suspense, lazy, useEffect, useState, type FormEvent } from "react";
import { Button, Input, Label, Tab, TabList, TabPanel, Tabs, TextField } from "react-aria-components";
import {
  appointmentsToday,
  currentSession,
  doctorDay,
  lock,
  messageOf,
  onSession,
  practitioners,
  signIn,
  signInDefaults,
  signOut,
  unlock,
  waitingBookings,
} from "../api";
import type { SignedInView } from "../bindings/SignedInView";
import { ConnectionIndicator, useConnection } from "../connection";
import { t } from "../i18n";
import { useIdle } from "../idle";
import { LanguageSwitch } from "../language";
import { useLive } from "../live";
import { ImportRecords, KioskDevices, StaffAccounts } from "./Admin";
import { AuditTrail } from "./AuditTrail";
import { AppointmentTable, RefusedList } from "./appointments";
import { ReceivedView, SendUpdates, Transmissions, Updates, useUpdates } from "./Exchange";
import { FolderImportPanel } from "./Documents";
import { Reconciliation } from "./Imaging";
import { PatientPageView, Patients } from "./Patients";

// The calendar (FullCalendar) loads when first opened, not at start-up.
const Calendar = lazy(() => import("./Calendar").then((m) => ({ default: m.Calendar })));

/** A staff session locks after this long without input. */
const LOCK_MINUTES = 10;

function SignIn({ onSignedIn, lockedUser }: { onSignedIn: (v: SignedInView) => void; lockedUser?: { username: string; nodeUrl: string } }) {
  const [nodeUrl, setNodeUrl] = useState(lockedUser?.nodeUrl ?? "");
  const [username, setUsername] = useState(lockedUser?.username ?? "");
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    if (lockedUser) return;
    // The embedded node's address, when this app hosts one.
    signInDefaults()
      .then((d) => setNodeUrl((u) => u || d.nodeUrl || "http://127.0.0.1:8080"))
      .catch(() => setNodeUrl((u) => u || "http://127.0.0.1:8080"));
  }, [lockedUser]);
  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      // A lock is lifted here, without the node, when the password matches the one kept at
      // sign-in; otherwise (or for a new sign-in) the node decides.
      const v = lockedUser
        ? await unlock(password).catch(() => signIn(nodeUrl, username, password))
        : await signIn(nodeUrl, username, password);
      sessionStorage.setItem("carebridge.user", JSON.stringify({ username, nodeUrl }));
      onSignedIn(v);
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  }
  return (
    <form className="panel sign-in" onSubmit={submit} aria-labelledby="sign-in-heading">
      <h2 id="sign-in-heading">{lockedUser ? t("lock.heading") : t("signIn.heading")}</h2>
      {lockedUser && <p>{t("lock.explain", { minutes: LOCK_MINUTES })}</p>}
      <TextField value={nodeUrl} onChange={setNodeUrl} isRequired type="url" isReadOnly={!!lockedUser} autoComplete="url">
        <Label>{t("signIn.node")}</Label>
        <Input id="sign-in-node" />
      </TextField>
      <TextField value={username} onChange={setUsername} isRequired isReadOnly={!!lockedUser} autoComplete="username" autoFocus={!lockedUser}>
        <Label>{t("signIn.username")}</Label>
        <Input id="sign-in-username" />
      </TextField>
      <TextField value={password} onChange={setPassword} isRequired type="password" autoComplete="current-password" autoFocus={!!lockedUser}>
        <Label>{t("signIn.password")}</Label>
        <Input id="sign-in-password" />
      </TextField>
      {error && <p className="error" role="alert">{error}</p>}
      <Button type="submit" isDisabled={busy} id="sign-in-submit">{busy ? t("signIn.working") : t("signIn.submit")}</Button>
    </form>
  );
}

function Today({ who }: { who: SignedInView }) {
  const rows = useLive(appointmentsToday, [], ["appointment", "patient", "practitioner"]);
  const doctors = useLive(practitioners, [], ["practitioner"]);
  const [patient, setPatient] = useState<string | null>(null);
  const name = (id: string) => doctors.data?.find((d) => d.id === id)?.display_name ?? "";
  if (patient) return <PatientPageView patientId={patient} timeZone={who.timeZone} onBack={() => setPatient(null)} />;
  return (
    <section aria-labelledby="today-heading">
      <h2 id="today-heading">{t("today.heading")}</h2>
      {rows.error && <p className="error" role="alert">{rows.error}</p>}
      {rows.data?.length === 0 ? (
        <p>{t("today.empty")}</p>
      ) : (
        <AppointmentTable
          rows={rows.data ?? []}
          timeZone={who.timeZone}
          labelledBy="today-heading"
          actions={["check-in", "no-show", "cancel"]}
          onPatient={setPatient}
          doctorName={name}
        />
      )}
    </section>
  );
}

function MyDay({ who }: { who: SignedInView }) {
  const rows = useLive(() => doctorDay(null, null), [], ["appointment", "patient", "practitioner"]);
  const [patient, setPatient] = useState<string | null>(null);
  if (patient) return <PatientPageView patientId={patient} timeZone={who.timeZone} onBack={() => setPatient(null)} doctorId={who.userId} />;
  return (
    <section aria-labelledby="my-day-heading">
      <h2 id="my-day-heading">{t("myDay.heading")}</h2>
      {rows.error && <p className="error" role="alert">{rows.error}</p>}
      {rows.data?.length === 0 ? (
        <p>{t("myDay.empty")}</p>
      ) : (
        <AppointmentTable
          rows={rows.data ?? []}
          timeZone={who.timeZone}
          labelledBy="my-day-heading"
          actions={["confirm", "decline", "complete", "no-show"]}
          onPatient={setPatient}
        />
      )}
    </section>
  );
}

function Waiting({ who }: { who: SignedInView }) {
  const rows = useLive(waitingBookings, [], ["appointment", "patient", "practitioner"]);
  return (
    <section aria-labelledby="waiting-heading" id="waiting">
      <h2 id="waiting-heading">{t("waiting.heading")}</h2>
      {rows.error && <p className="error" role="alert">{rows.error}</p>}
      {rows.data?.length === 0 ? (
        <p>{t("waiting.empty")}</p>
      ) : (
        <AppointmentTable
          rows={rows.data ?? []}
          timeZone={who.timeZone}
          labelledBy="waiting-heading"
          actions={["confirm", "decline"]}
          showDate
        />
      )}
    </section>
  );
}

function Views({ who }: { who: SignedInView }) {
  const insurer = who.nodeKind === "insurer";
  // Hospital staff read the updates insurers send them; the tab says how many are new.
  const updates = useUpdates(!insurer && who.role !== "reviewer");
  const unread = (updates.data ?? []).filter((u) => !u.acknowledged).length;
  const updatesTab = {
    id: "updates",
    label: unread > 0 ? t("nav.updatesNew", { n: unread }) : t("nav.updates"),
    view: <Updates timeZone={who.timeZone} />,
  };
  const tabs = insurer
    ? who.role === "admin"
      ? [
          { id: "updates", label: t("nav.updates"), view: <SendUpdates timeZone={who.timeZone} /> },
          { id: "received", label: t("nav.received"), view: <ReceivedView timeZone={who.timeZone} /> },
          { id: "staff", label: t("nav.staff"), view: <StaffAccounts /> },
          { id: "audit", label: t("nav.audit"), view: <AuditTrail timeZone={who.timeZone} /> },
        ]
      : [{ id: "received", label: t("nav.received"), view: <ReceivedView timeZone={who.timeZone} /> }]
    : who.role === "admin"
      ? [
          { id: "staff", label: t("nav.staff"), view: <StaffAccounts /> },
          { id: "kiosks", label: t("nav.kiosks"), view: <KioskDevices timeZone={who.timeZone} /> },
          { id: "transmissions", label: t("nav.transmissions"), view: <Transmissions timeZone={who.timeZone} /> },
          { id: "audit", label: t("nav.audit"), view: <AuditTrail timeZone={who.timeZone} /> },
          { id: "import", label: t("nav.import"), view: <ImportRecords /> },
          updatesTab,
        ]
      : who.role === "doctor"
        ? [
            { id: "waiting", label: t("nav.waiting"), view: <Waiting who={who} /> },
            { id: "my-day", label: t("nav.myDay"), view: <MyDay who={who} /> },
            { id: "patients", label: t("nav.patients"), view: <Patients timeZone={who.timeZone} doctorId={who.userId} /> },
            { id: "reconcile", label: t("nav.reconcile"), view: <Reconciliation timeZone={who.timeZone} previews /> },
            { id: "folder", label: t("nav.folder"), view: <FolderImportPanel /> },
            updatesTab,
          ]
        : [
            { id: "today", label: t("nav.today"), view: <Today who={who} /> },
            {
              id: "calendar",
              label: t("nav.calendar"),
              view: (
                <Suspense fallback={null}>
                  <Calendar timeZone={who.timeZone} />
                </Suspense>
              ),
            },
            { id: "patients", label: t("nav.patients"), view: <Patients timeZone={who.timeZone} /> },
            { id: "reconcile", label: t("nav.reconcile"), view: <Reconciliation timeZone={who.timeZone} /> },
            { id: "folder", label: t("nav.folder"), view: <FolderImportPanel /> },
            updatesTab,
          ];
  return (
    <Tabs className="views">
      <TabList aria-label={t("nav.label")} className="tabs">
        {tabs.map((tab) => (
          <Tab key={tab.id} id={tab.id}>{tab.label}</Tab>
        ))}
      </TabList>
      {tabs.map((tab) => (
        <TabPanel key={tab.id} id={tab.id}>{tab.view}</TabPanel>
      ))}
    </Tabs>
  );
}

export function StaffApp() {
  const [who, setWho] = useState<SignedInView | null>(null);
  const [locked, setLocked] = useState(false);
  const status = useConnection(() => {
    setWho(null);
    setLocked(false);
  });
  useEffect(() => {
    // After a reload the app may still be signed in.
    currentSession()
      .then((v) => {
        if (!v) return;
        setWho((w) => w ?? v);
        // A reload does not unlock: the app keeps the lock, not the page.
        if (v.locked) setLocked(true);
      })
      .catch(() => {});
    // Signed in by the app itself (a demo's --staff-credentials).
    const stop = onSession((v) => {
      setWho(v);
      setLocked(false);
    });
    // No browser menu (its Reload, its Inspect) in the staff window either.
    const block = (e: Event) => e.preventDefault();
    document.addEventListener("contextmenu", block);
    return () => {
      document.removeEventListener("contextmenu", block);
      stop.then((f) => f()).catch(() => {});
    };
  }, []);
  const lockNow = () => {
    setLocked(true);
    lock().catch(() => {});
  };
  useIdle(LOCK_MINUTES * 60_000, !!who && !locked, lockNow);
  const remembered = JSON.parse(sessionStorage.getItem("carebridge.user") ?? "null") as { username: string; nodeUrl: string } | null;
  let content;
  if (!who) {
    content = <SignIn onSignedIn={setWho} />;
  } else if (locked) {
    content = (
      <SignIn
        lockedUser={remembered ?? undefined}
        onSignedIn={(v) => {
          setWho(v);
          setLocked(false);
        }}
      />
    );
  } else {
    content = (
      <>
        <RefusedList count={status?.refused ?? 0} timeZone={who.timeZone} />
        <Views who={who} />
      </>
    );
  }
  return (
    <>
      <header className="bar">
        <h1>
          {t("app.title")}
          {who && !locked && ` · ${who.displayName}`}
        </h1>
        <div className="row">
          <LanguageSwitch />
          <ConnectionIndicator status={status} />
          {who && !locked && (
            <Button className="small secondary on-dark" onPress={lockNow}>{t("nav.lock")}</Button>
          )}
          {who && (
            <Button
                className="small secondary on-dark"
                onPress={() => {
                  // Off the screen at once; the node is told in the background.
                  sessionStorage.removeItem("carebridge.user");
                  setWho(null);
                  setLocked(false);
                  signOut().catch(() => {});
                }}
              >
                {t("nav.signOut")}
              </Button>
          )}
        </div>
      </header>
      <main>{content}</main>
    </>
  );
}

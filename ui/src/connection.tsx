// The connection indicator: the core's link state and the count of writes waiting to send.
import { useEffect, useRef, useState } from "react";
import { connectionStatus, onStatus } from "./api";
import type { Status } from "./bindings/Status";
import { t } from "./i18n";

/** The core's status, kept current; `onSignedOut` runs when the node ends the session. */
export function useConnection(onSignedOut: () => void): Status | null {
  const [status, setStatus] = useState<Status | null>(null);
  const signedOut = useRef(onSignedOut);
  signedOut.current = onSignedOut;
  useEffect(() => {
    let heard = false;
    const stop = onStatus((s) => {
      heard = true;
      setStatus(s);
      if (s.link === "signed-out") signedOut.current();
    });
    // Only if no event came first: the event is newer.
    connectionStatus()
      .then((s) => s && !heard && setStatus(s))
      .catch(() => {});
    return () => {
      stop.then((f) => f()).catch(() => {});
    };
  }, []);
  return status;
}

export function ConnectionIndicator({ status }: { status: Status | null }) {
  // The live region is always there, so the first status is announced too.
  return (
    <span className={`status ${status?.link ?? ""}`} role="status" aria-live="polite" aria-label={t("status.label")} id="connection">
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

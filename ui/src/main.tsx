import React, { Suspense, lazy } from "react";
import ReactDOM from "react-dom/client";
import { getCurrentWindow } from "@tauri-apps/api/window";
import { ScreenFailure } from "./failure";
import "./app.css";

// One program, two windows: the kiosk process opens the window labelled "kiosk". Each loads
// only its own code, so neither pays at start-up for the other's.
const kiosk = getCurrentWindow().label === "kiosk";
document.documentElement.classList.toggle("kiosk-mode", kiosk);
const Root = kiosk
  ? lazy(() => import("./kiosk/KioskApp").then((m) => ({ default: m.KioskApp })))
  : lazy(() => import("./staff/StaffApp").then((m) => ({ default: m.StaffApp })));

ReactDOM.createRoot(document.getElementById("root") as HTMLElement).render(
  <React.StrictMode>
    <ScreenFailure>
      <Suspense fallback={null}>
        <Root />
      </Suspense>
    </ScreenFailure>
  </React.StrictMode>,
);

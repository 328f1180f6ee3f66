import React from "react";
import ReactDOM from "react-dom/client";
import { getCurrentWindow } from "@tauri-apps/api/window";
import { ScreenFailure } from "./failure";
import { KioskApp } from "./kiosk/KioskApp";
import { StaffApp } from "./staff/StaffApp";
import "./app.css";

// One program, two windows: the kiosk process opens the window labelled "kiosk". Both apps
// are in the first bundle (the kiosk's is small): a lazy import would add a round trip before
// the first screen. The calendar, the one large part, still loads when first opened.
const kiosk = getCurrentWindow().label === "kiosk";
document.documentElement.classList.toggle("kiosk-mode", kiosk);

ReactDOM.createRoot(document.getElementById("root") as HTMLElement).render(
  <React.StrictMode>
    <ScreenFailure>{kiosk ? <KioskApp /> : <StaffApp />}</ScreenFailure>
  </React.StrictMode>,
);

import React from "react";
import ReactDOM from "react-dom/client";
import { getCurrentWindow } from "@tauri-apps/api/window";
import { I18nProvider } from "react-aria-components";
import { ScreenFailure } from "./failure";
import { setLanguage } from "./api";
import { currentLocale, onLocaleChange, setLocale, systemLocale, useLocale } from "./i18n";
import { KioskApp } from "./kiosk/KioskApp";
import { StaffApp } from "./staff/StaffApp";
import "./app.css";

// One program, two windows: the kiosk process opens the window labelled "kiosk". Both apps
// are in the first bundle (the kiosk's is small): a lazy import would add a round trip before
// the first screen. The calendar, the one large part, still loads when first opened.
const kiosk = getCurrentWindow().label === "kiosk";
document.documentElement.classList.toggle("kiosk-mode", kiosk);
// A kiosk starts in the system's language, whatever a staff member chose on this machine. The
// staff app's desktop notifications speak the UI's language, told now and at every switch.
if (kiosk) {
  setLocale(systemLocale(), { remember: false });
} else {
  const tell = () => setLanguage(currentLocale()).catch(() => {});
  tell();
  onLocaleChange(tell);
}

// A change of language redraws every screen from the top, keeping what each one holds (a form
// half filled in, the view chosen): every text comes from t() as a component renders, and no
// component is memoised against it (Calendar's events list names the locale as a dependency).
function Localised() {
  const locale = useLocale();
  return (
    <I18nProvider locale={locale}>
      <ScreenFailure>{kiosk ? <KioskApp /> : <StaffApp />}</ScreenFailure>
    </I18nProvider>
  );
}

ReactDOM.createRoot(document.getElementById("root") as HTMLElement).render(
  <React.StrictMode>
    <Localised />
  </React.StrictMode>,
);

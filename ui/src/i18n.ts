// Every text the UI shows goes through t(), in the user's language: English or Dutch. The
// language is the one chosen in the app (kept on this workstation), else the system's
// (navigator.languages: WebKit takes it from the OS locale), else English.
import { useSyncExternalStore } from "react";
import { en } from "./locales/en";
import { nl } from "./locales/nl";
import type { Catalogue, MessageKey } from "./locales/types";

export type { MessageKey } from "./locales/types";

/** The languages the UI speaks, by BCP 47 tag, each named in itself (for the switch). */
export const LOCALES = { en: "English", nl: "Nederlands" } as const;
export type Locale = keyof typeof LOCALES;

const CATALOGUES: Record<Locale, Catalogue> = { en, nl };
const STORAGE_KEY = "carebridge.locale";

function isLocale(value: unknown): value is Locale {
  return typeof value === "string" && Object.prototype.hasOwnProperty.call(LOCALES, value);
}

/** The first of `preferred` (BCP 47 tags, most preferred first) that the UI speaks, by its
 *  language ("nl-BE" → nl), else English. */
export function localeFor(preferred: readonly string[]): Locale {
  for (const tag of preferred) {
    const language = tag.toLowerCase().split(/[-_]/)[0];
    if (isLocale(language)) return language;
  }
  return "en";
}

function stored(): Locale | undefined {
  try {
    const value = globalThis.localStorage?.getItem(STORAGE_KEY);
    return isLocale(value) ? value : undefined;
  } catch {
    return undefined; // storage refused (a locked-down profile): the system's language then
  }
}

let current: Locale = stored() ?? systemLocale();
const listeners = new Set<() => void>();

function applyToDocument() {
  if (typeof document !== "undefined") document.documentElement.lang = current;
}
applyToDocument();

/** The language the UI speaks now. */
export function currentLocale(): Locale {
  return current;
}

/** The system's language (the OS locale, as WebKit reports it), or English. */
export function systemLocale(): Locale {
  return localeFor(globalThis.navigator?.languages ?? []);
}

/** Switches the UI's language; every screen re-renders. `remember`: kept on this workstation
 *  for the next start (a staff member's choice), or not (a patient's, at a shared kiosk). */
export function setLocale(locale: Locale, { remember = true }: { remember?: boolean } = {}) {
  try {
    if (remember) globalThis.localStorage?.setItem(STORAGE_KEY, locale);
  } catch {
    // Not remembered, but switched for this run.
  }
  if (locale === current) return;
  current = locale;
  applyToDocument();
  for (const listener of listeners) listener();
}

/** Calls `listener` after each switch of language; returns what stops it. */
export function onLocaleChange(listener: () => void): () => void {
  listeners.add(listener);
  return () => {
    listeners.delete(listener);
  };
}

/** The current language, re-rendering the component when it changes. */
export function useLocale(): Locale {
  return useSyncExternalStore(onLocaleChange, currentLocale);
}

export function t(key: MessageKey, values: Record<string, string | number> = {}): string {
  const text = CATALOGUES[current][key] ?? en[key];
  return text.replace(/\{(\w+)\}/g, (_, name: string) => String(values[name] ?? ""));
}

/** The text of a key built from data, if there is one. */
export function tMaybe(key: string, values: Record<string, string | number> = {}): string | undefined {
  return key in en ? t(key as MessageKey, values) : undefined;
}

/** For keys built from data (statuses, actions): the key if it exists, else the raw value. */
export function tKey(prefix: string, value: string): string {
  const key = `${prefix}.${value}`;
  return key in en ? t(key as MessageKey) : value;
}

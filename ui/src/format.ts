// Dates and times as users read them: in the node's time zone (where the appointments happen)
// and the UI's language (i18n.ts) unless a locale is given.
import { currentLocale } from "./i18n";

/** "10:30" (or "10:30 AM"), in `timeZone`. */
export function timeOf(iso: string, timeZone: string, locale?: string): string {
  return new Date(iso).toLocaleTimeString(locale ?? currentLocale(), { hour: "2-digit", minute: "2-digit", timeZone });
}

/** "Tue 24 Nov" style, in `timeZone`. */
export function dayOf(iso: string, timeZone: string, locale?: string): string {
  return new Date(iso).toLocaleDateString(locale ?? currentLocale(), { weekday: "short", day: "numeric", month: "short", timeZone });
}

/** The calendar date (YYYY-MM-DD) of an instant in `timeZone`. Built from the formatter's
 *  parts: a locale's own order (en-CA's ISO style included) differs between engines. */
export function dateIn(instant: Date, timeZone: string): string {
  const parts = new Intl.DateTimeFormat("en-US", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" }).formatToParts(instant);
  const part = (type: string) => parts.find((p) => p.type === type)?.value ?? "";
  return `${part("year")}-${part("month")}-${part("day")}`;
}

/** `date` (YYYY-MM-DD) moved by `days`, as a calendar date (no time zone involved). */
export function addDays(date: string, days: number): string {
  const [y, m, d] = date.split("-").map(Number);
  const t = new Date(Date.UTC(y, m - 1, d + days));
  return t.toISOString().slice(0, 10);
}

/** A calendar date (YYYY-MM-DD) for headings, e.g. "Tuesday 24 November". */
export function longDate(date: string, locale?: string): string {
  const [y, m, d] = date.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d)).toLocaleDateString(locale ?? currentLocale(), {
    weekday: "long",
    day: "numeric",
    month: "long",
    timeZone: "UTC",
  });
}

/** A calendar date (YYYY-MM-DD) in the style of `dayOf`, e.g. "Tue 24 Nov". */
export function shortDate(date: string, locale?: string): string {
  const [y, m, d] = date.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d)).toLocaleDateString(locale ?? currentLocale(), {
    weekday: "short",
    day: "numeric",
    month: "short",
    timeZone: "UTC",
  });
}

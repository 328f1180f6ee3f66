import type { en } from "./en";

/** A key of the UI's texts. */
export type MessageKey = keyof typeof en;

/** One locale's texts: every key, no other. */
export type Catalogue = { readonly [K in MessageKey]: string };

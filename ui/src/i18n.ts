// Every text the UI shows goes through t(): English first, other locales later.
const en = {
  "app.title": "CareBridge",
  "signIn.heading": "Sign in",
  "signIn.node": "Node address",
  "signIn.username": "Username",
  "signIn.password": "Password",
  "signIn.submit": "Sign in",
  "signIn.working": "Signing in…",
  "status.online": "Online",
  "status.connecting": "Connecting",
  "status.offline": "Offline",
  "status.signed-out": "Signed out",
  "status.pending": "{n} waiting to send",
  "today.heading": "Today",
  "today.empty": "No appointments today.",
  "today.time": "Time",
  "today.reason": "Reason",
  "today.status": "Status",
  "appointment.pending": "pending",
} as const;

export type MessageKey = keyof typeof en;

export function t(key: MessageKey, values: Record<string, string | number> = {}): string {
  return en[key].replace(/\{(\w+)\}/g, (_, name: string) => String(values[name] ?? ""));
}

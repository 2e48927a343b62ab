// The API token, when the engine has one (awe up --token-file ...): the page asks for it once, in a form,
// and keeps it for this tab only (sessionStorage: gone with the tab, sent to this engine alone).
const KEY = "awe.api-token";

type Listener = (wanted: boolean) => void;
const listeners = new Set<Listener>();
let waiting: ((token: string) => void)[] = [];

export function savedToken(): string | null {
  return sessionStorage.getItem(KEY);
}

/** `Authorization: Bearer <token>`, or nothing before a token was given. */
export function authorization(): Record<string, string> {
  const token = savedToken();
  return token === null ? {} : { Authorization: `Bearer ${token}` };
}

/** The WebSocket's `token` query parameter, or "": a browser cannot set a WebSocket's headers. */
export function tokenQuery(): string {
  const token = savedToken();
  return token === null ? "" : `&token=${encodeURIComponent(token)}`;
}

/**
 * A token other than `refused` (the one a 401 answered): the one given meanwhile, or the next one the
 * person types in the form (see TokenForm). Requests refused at the same time share the one question.
 */
export function tokenOtherThan(refused: string | null): Promise<string> {
  const saved = savedToken();
  if (saved !== null && saved !== refused) return Promise.resolve(saved);
  if (saved !== null) sessionStorage.removeItem(KEY);
  return new Promise((resolve) => {
    waiting.push(resolve);
    listeners.forEach((listener) => listener(true));
  });
}

/** The person typed a token: keep it, and let every refused request try again with it. */
export function giveToken(token: string): void {
  sessionStorage.setItem(KEY, token);
  const resolved = waiting;
  waiting = [];
  listeners.forEach((listener) => listener(false));
  resolved.forEach((resolve) => resolve(token));
}

/** Be told when the page needs a token (true) and when it has one (false); returns the unsubscribe. */
export function onTokenWanted(listener: Listener): () => void {
  listeners.add(listener);
  if (waiting.length) listener(true);
  return () => listeners.delete(listener);
}

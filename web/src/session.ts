/**
 * The API token for this tab: kept in sessionStorage only (gone when the tab closes, never in
 * localStorage, a cookie or a URL), and sent as a bearer token by the client (api.ts).
 */
const KEY = "oci-tfstate.token";

type Listener = () => void;
const listeners = new Set<Listener>();

export function getToken(): string | undefined {
  try {
    return sessionStorage.getItem(KEY) ?? undefined;
  } catch {
    return undefined;
  }
}

export function setToken(token: string | undefined): void {
  try {
    if (token === undefined) sessionStorage.removeItem(KEY);
    else sessionStorage.setItem(KEY, token);
  } catch {
    // Storage refused (private mode quotas): the token lives for this page only.
  }
  memory = token;
  for (const l of listeners) l();
}

let memory: string | undefined;

/** The token in use: the stored one, or the one kept in memory when storage refused it. */
export function currentToken(): string | undefined {
  return getToken() ?? memory;
}

export function onTokenChange(l: Listener): () => void {
  listeners.add(l);
  return () => listeners.delete(l);
}

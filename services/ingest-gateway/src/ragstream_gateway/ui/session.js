// The signed-in session of this tab (keys mode): the short-lived session key the gateway traded for
// the user's API key, and who it names. Kept in sessionStorage (this tab only, gone when it
// closes); the API key itself is never stored. In open mode there is no session and no header.

const KEY = "ragstream.session";
const NOTICE = "ragstream.signin-notice";

/** {key, key_id, expires_at, tenant_id, account_id, role} or null */
export function currentSession() {
  try {
    const raw = window.sessionStorage.getItem(KEY);
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

export function keepSession(session) {
  window.sessionStorage.setItem(KEY, JSON.stringify(session));
}

/** Forget the session; ``notice`` is shown on the sign-in view after the page reloads. */
export function dropSession(notice = "") {
  window.sessionStorage.removeItem(KEY);
  if (notice) window.sessionStorage.setItem(NOTICE, notice);
}

/** The notice left by the last sign-out or expiry, read once. */
export function takeNotice() {
  const notice = window.sessionStorage.getItem(NOTICE) || "";
  window.sessionStorage.removeItem(NOTICE);
  return notice;
}

/** The Authorization header of the session (none in open mode). */
export function authHeaders() {
  const session = currentSession();
  return session ? { authorization: `Bearer ${session.key}` } : {};
}

/** A WebSocket or EventSource URL carrying the session key as ?access_token= (browsers cannot set their headers). */
export function withToken(url) {
  const session = currentSession();
  if (!session) return url;
  const parsed = new URL(url);
  parsed.searchParams.set("access_token", session.key);
  return parsed.toString();
}

/** Whether the signed-in role may do what ``needed`` may (viewer < editor < admin); open mode: yes. */
export function mayAct(needed) {
  const session = currentSession();
  if (!session) return true;
  const order = ["viewer", "editor", "admin"];
  return order.indexOf(session.role) >= order.indexOf(needed);
}

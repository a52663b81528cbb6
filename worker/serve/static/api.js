// Talking to the API: the bearer token (kept for this tab only), JSON calls, live events.

const KEY = "duragent.token";
let session = null; // the events cookie, asked for once per token

export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.error ? body.error : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export function token() {
  return sessionStorage.getItem(KEY);
}

export function setToken(value) {
  sessionStorage.setItem(KEY, value);
}

export function forgetToken() {
  const headers = authHeaders(); // the cookie is dropped with the token that made it
  sessionStorage.removeItem(KEY);
  session = null;
  fetch("/api/v1/session", { method: "DELETE", headers }).catch(() => {});
}

function authHeaders() {
  return { authorization: `Bearer ${token() || ""}` };
}

/** Call the API; resolves to the JSON answer, rejects with ApiError. */
export async function api(path, { method = "GET", body } = {}) {
  const headers = authHeaders();
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(`/api/v1${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

/** EventSource cannot send a header: trade the token for the events cookie once. */
function openSession() {
  session = session || api("/session", { method: "POST" }).catch((error) => {
    session = null; // asked again next time
    throw error;
  });
  return session;
}

/**
 * Follow a run's events: `onEvent(event)` for each, `onEnd(reason)` once at the end.
 * The browser reconnects by itself after a drop, resuming after the last event id.
 * Returns a function that stops following.
 */
export function follow(kind, id, onEvent, onEnd) {
  let source = null;
  let stopped = false;
  openSession().then(() => {
    if (stopped) return;
    source = new EventSource(`/api/v1/${kind}/${encodeURIComponent(id)}/events`);
    const handle = (message) => onEvent(JSON.parse(message.data));
    for (const type of EVENT_TYPES) source.addEventListener(type, handle);
    source.addEventListener("end", (message) => {
      source.close();
      onEnd(JSON.parse(message.data));
    });
  }).catch((error) => onEnd({ reason: "error", error: error.message }));
  return () => {
    stopped = true;
    if (source) source.close();
  };
}

export const EVENT_TYPES = [
  "status", "message", "token", "tool_started", "tool_finished", "question",
  "approval", "compaction", "continued_as_new", "node", "finished",
];

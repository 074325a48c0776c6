// The JSON API, signed in by the session cookie (HttpOnly, SameSite=Strict): the browser sends it
// and the page's own Origin, which the server checks on every change.

/** An error answered by the server, with the contract's code and sentence, and the seconds its
 *  `Retry-After` asks to wait (null without one). */
export class ApiError extends Error {
  constructor(status, code, message, lines, retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.lines = lines ?? [];
    this.retryAfter = retryAfter;
  }
}

const ENDED = new Set(['session_invalidated', 'session_expired', 'unauthenticated']);
let sessionEnded = () => {};

/** Called when a request shows that the session is over. */
export function onSessionEnded(handler) {
  sessionEnded = handler;
}

/** Sends a request; `body` is JSON unless it is a string (sent as text, e.g. CSV). */
export async function api(method, path, body, { quietAuth = false } = {}) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (typeof body === 'string') {
    init.headers['Content-Type'] = 'text/plain; charset=utf-8';
    init.body = body;
  } else if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'network', 'The server cannot be reached; check the connection and try again.');
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const detail = data?.error;
    const retryAfter = Number.parseInt(response.headers.get('Retry-After') ?? '', 10);
    const error = new ApiError(
      response.status,
      detail?.code ?? 'error',
      detail?.message ?? `The server answered ${response.status} ${response.statusText}.`,
      detail?.lines,
      retryAfter > 0 ? retryAfter : null,
    );
    if (ENDED.has(error.code) && !quietAuth) sessionEnded(error);
    throw error;
  }
  return data;
}

/** A path segment, escaped. */
export const seg = (s) => encodeURIComponent(s);

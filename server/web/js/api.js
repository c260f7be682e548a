// The admin API client, for both ways of being signed in:
// - an admin token (the operator token or an org admin token `pbt-…`): kept in sessionStorage
//   (this tab only) and sent as a bearer header, with no cookie at all (credentials "omit");
// - a person's session: the HttpOnly `patchbay_session` cookie, which this page never sees,
//   travels with same-origin requests; every state-changing request also carries the session's
//   CSRF token in `X-CSRF-Token` (from /auth/login, /auth/invite/accept or /admin/v1/me, kept
//   in memory only).
// Every failure becomes an ApiError with a message a person can read: the API's own
// `{error: {type, message, param}}` when there is one, else what went wrong on the way.

const TOKEN_KEY = "patchbay.adminToken";
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);
export const SIGNED_OUT = "patchbay:signed-out";

export class ApiError extends Error {
  constructor(status, type, message, param = null) {
    super(message);
    this.status = status;
    this.type = type;
    this.param = param;
  }

  /** The credential was refused or the admin API is off: sign in again. */
  get signIn() {
    return this.status === 401 || (this.status === 503 && this.type === "admin_disabled");
  }
}

let csrfToken = null;

/** How this tab is signed in: "token" (a bearer token is stored) or "cookie" (a person's session, or nobody yet). */
export const session = {
  token: () => sessionStorage.getItem(TOKEN_KEY),
  get mode() {
    return this.token() ? "token" : "cookie";
  },
  useToken(value) {
    sessionStorage.setItem(TOKEN_KEY, value);
    csrfToken = null;
  },
  useCookie(csrf) {
    sessionStorage.removeItem(TOKEN_KEY);
    csrfToken = csrf || null;
  },
  clear() {
    sessionStorage.removeItem(TOKEN_KEY);
    csrfToken = null;
  },
};

async function call(url, method, body, options = {}) {
  const { bearer, cookie = false, check = false, retried = false, extraHeaders = {} } = options;
  const headers = { accept: "application/json", ...extraHeaders };
  const init = { method, headers, cache: "no-store" };
  const presented = cookie ? null : (bearer ?? session.token());
  if (presented) {
    headers.authorization = `Bearer ${presented}`;
    init.credentials = "omit";
  } else {
    init.credentials = "same-origin";
    if (!SAFE_METHODS.has(method) && csrfToken) headers["x-csrf-token"] = csrfToken;
  }
  if (body !== undefined) {
    headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch {
    throw new ApiError(0, "network", "Cannot reach the Patchbay server. Check that it is running, then try again.");
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (response.ok) return options.raw ? text : data;
  const error = data && typeof data.error === "object" && data.error ? data.error : {};
  if (response.status === 403 && error.type === "csrf_failed" && !presented && !retried) {
    // Signing in again in another tab opened a new session (and CSRF token) for this browser:
    // take the current one from /me and try once more.
    const me = await call("/admin/v1/me", "GET", undefined, { check: true });
    csrfToken = me.csrf_token || null;
    return call(url, method, body, { ...options, retried: true });
  }
  const failure = new ApiError(
    response.status,
    error.type || "http_error",
    error.message || `The server answered ${response.status} ${response.statusText}`.trim(),
    error.param || null,
  );
  if (failure.signIn && !check && bearer === undefined) {
    window.dispatchEvent(new CustomEvent(SIGNED_OUT, { detail: failure }));
  }
  throw failure;
}

/**
 * Call `/admin/v1${path}`. `bearer` overrides the stored token (the sign-in check); `check`
 * (the start-up probe of a cookie session) keeps a 401 quiet; `extraHeaders` are sent as given
 * (an `Idempotency-Key`, an `accept`); `raw` answers the body's text (a CSV) instead of JSON. Otherwise a 401 or a disabled
 * admin API signals SIGNED_OUT so the app shows the sign-in screen.
 */
export function api(method, path, body, options = {}) {
  return call(`/admin/v1${path}`, method, body, options);
}

/** Call `/auth${path}` (sign-in, invites, sign-out): always on the cookie, never a bearer token. */
export function auth(method, path, body) {
  return call(`/auth${path}`, method, body, { cookie: true, check: true });
}

/** Remember the CSRF token of the cookie session (from /admin/v1/me after a reload). */
export function rememberCsrf(value) {
  if (session.mode === "cookie") csrfToken = value || null;
}

/** Path segment for an org or connection reference. */
export const seg = (value) => encodeURIComponent(value);

// The admin API client. The token lives in sessionStorage (this tab only; no cookie, so no
// CSRF surface) and travels as a bearer header. Every failure becomes an ApiError with a
// message a person can read: the API's own `{error: {type, message, param}}` when there is
// one, else what went wrong on the way.

const TOKEN_KEY = "patchbay.adminToken";
export const SIGNED_OUT = "patchbay:signed-out";

export class ApiError extends Error {
  constructor(status, type, message, param = null) {
    super(message);
    this.status = status;
    this.type = type;
    this.param = param;
  }

  /** The admin token was refused or the admin API is off: sign in again. */
  get signIn() {
    return this.status === 401 || (this.status === 503 && this.type === "admin_disabled");
  }
}

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

/**
 * Call `/admin/v1${path}`. `bearer` overrides the stored token (the sign-in check); without it,
 * a 401 or a disabled admin API signals SIGNED_OUT so the app shows the sign-in screen.
 */
export async function api(method, path, body, { bearer } = {}) {
  const headers = { accept: "application/json", authorization: `Bearer ${bearer ?? token.get() ?? ""}` };
  const init = { method, headers, cache: "no-store", credentials: "omit" };
  if (body !== undefined) {
    headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(`/admin/v1${path}`, init);
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
  if (response.ok) return data;
  const error = data && typeof data.error === "object" && data.error ? data.error : {};
  const failure = new ApiError(
    response.status,
    error.type || "http_error",
    error.message || `The server answered ${response.status} ${response.statusText}`.trim(),
    error.param || null,
  );
  if (failure.signIn && bearer === undefined) {
    window.dispatchEvent(new CustomEvent(SIGNED_OUT, { detail: failure }));
  }
  throw failure;
}

/** Path segment for an org or connection reference. */
export const seg = (value) => encodeURIComponent(value);

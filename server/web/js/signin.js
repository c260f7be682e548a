// The sign-in screen. People sign in with their email and password (`POST /auth/login` sets the
// session cookie and returns the CSRF token); the operator token or an org admin token
// (`pbt-…`) is the secondary way, behind "Sign in with an admin token instead".

import { auth, session } from "./api.js";

const ui = {
  section: document.getElementById("sign-in"),
  notice: document.getElementById("sign-in-notice"),
  passwordForm: document.getElementById("password-form"),
  email: document.getElementById("sign-in-email"),
  password: document.getElementById("sign-in-password"),
  passwordError: document.getElementById("password-error"),
  tokenWay: document.getElementById("token-way"),
  tokenForm: document.getElementById("token-form"),
  token: document.getElementById("sign-in-token"),
  tokenError: document.getElementById("token-error"),
};

/** Words for a refused sign-in; `way` is "password" or "token". */
export function signInMessage(error, way = "token") {
  if (error.type === "admin_disabled") return `The admin API is turned off on this server: ${error.message}`;
  if (error.status === 401) {
    return way === "token" ? "That token was not accepted. Check it and try again." : "Wrong email or password. Check them and try again.";
  }
  return error.message;
}

function setError(input, line, message) {
  line.textContent = message;
  input.setAttribute("aria-invalid", message ? "true" : "false");
}

/**
 * Show the sign-in screen. `notice` explains why (a session that ended); `error` goes under the
 * form of `way` ("password" or "token", which opens the token part).
 */
export function showSignIn({ notice = "", error = "", way = "password" } = {}) {
  ui.section.hidden = false;
  ui.notice.textContent = notice;
  setError(ui.password, ui.passwordError, way === "password" ? error : "");
  setError(ui.token, ui.tokenError, way === "token" ? error : "");
  if (way === "token" && (error || notice)) ui.tokenWay.open = true;
  document.title = "Sign in · Patchbay";
  (way === "token" && ui.tokenWay.open ? ui.token : ui.email).focus();
}

export function hideSignIn() {
  ui.section.hidden = true;
  ui.notice.textContent = "";
}

async function busy(form, work) {
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    await work();
  } finally {
    button.disabled = false;
  }
}

/**
 * Wire the two forms. `enterWithToken(token)` checks a token and enters the app;
 * `enterWithSession()` enters on the cookie session just opened. Both throw ApiErrors.
 */
export function initSignIn({ enterWithToken, enterWithSession }) {
  ui.passwordForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const email = ui.email.value.trim();
    const password = ui.password.value;
    if (!email || !password) {
      showSignIn({ error: "Enter your email and your password.", way: "password" });
      return;
    }
    await busy(ui.passwordForm, async () => {
      try {
        const signedIn = await auth("POST", "/login", { email, password });
        ui.password.value = "";
        session.useCookie(signedIn.csrf_token);
        await enterWithSession();
      } catch (error) {
        ui.password.value = "";
        showSignIn({ error: signInMessage(error, "password"), way: "password" });
      }
    });
  });

  ui.tokenForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const candidate = ui.token.value.trim();
    if (!candidate) {
      showSignIn({ error: "Enter the admin token.", way: "token" });
      return;
    }
    await busy(ui.tokenForm, async () => {
      try {
        ui.token.value = "";
        await enterWithToken(candidate);
      } catch (error) {
        showSignIn({ error: signInMessage(error, "token"), way: "token" });
      }
    });
  });
}

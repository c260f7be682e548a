// Accepting an invite link (`/ui/#invite=pbi-…`). The secret is taken out of the address bar and
// history at once and kept in memory only; the page shows what the invite is for
// (`POST /auth/invite`: org, role, email, new or existing account), asks for a password (a new
// one, twice, for a new account; the account's own for an existing one) and accepts it
// (`POST /auth/invite/accept`), which signs this browser in.

import { ApiError, auth, session } from "./api.js";
import { h, replace } from "./dom.js";
import { field, formAlert, showError, submitting } from "./forms.js";

const MIN_PASSWORD = 12; // as server/access/users.py
const section = document.getElementById("invite");

/** The invite secret of the link this page was opened with (removed from the address), or null. */
export function takeInviteFromLink() {
  const match = /^#invite=([^&]+)/.exec(window.location.hash);
  if (!match) return null;
  history.replaceState(null, "", window.location.pathname);
  return decodeURIComponent(match[1]);
}

export function hideInvite() {
  section.hidden = true;
  section.replaceChildren();
}

/**
 * Show the invite screen for `token`. `enterWithSession()` enters the app once accepted;
 * `toSignIn()` leaves for the sign-in screen.
 */
export async function showInvite(token, { enterWithSession, toSignIn }) {
  const heading = h("h1", { id: "invite-title", tabindex: "-1" }, "Join an organisation");
  const status = h("p", { class: "muted", role: "status" }, "Checking the invite…");
  replace(section, heading, status);
  section.hidden = false;
  document.title = "Accept an invite · Patchbay";
  heading.focus();
  let preview;
  try {
    preview = await auth("POST", "/invite", { token });
  } catch (error) {
    const message =
      error instanceof ApiError && error.status === 401 ? "This invite link is not valid: it was used, it expired or it was copied incompletely. Ask for a new one." : error.message;
    replace(
      section,
      heading,
      h("p", { class: "error", role: "alert" }, message),
      h("button", { type: "button", class: "secondary", onclick: () => toSignIn() }, "Go to sign in"),
    );
    return;
  }
  const isNew = preview.account === "new";
  const form = h("form", { novalidate: true, class: "invite-form" });
  const email = field({ label: "Email", name: "email", attrs: { type: "email", autocomplete: "username", readonly: true } });
  email.querySelector("input").value = preview.email;
  const password = field({
    label: isNew ? "Choose a password" : "Your password",
    name: "password",
    hint: isNew ? `At least ${MIN_PASSWORD} characters.` : `The password of your Patchbay account ${preview.email}.`,
    attrs: { type: "password", autocomplete: isNew ? "new-password" : "current-password", required: true, minlength: isNew ? String(MIN_PASSWORD) : null },
  });
  const confirm = isNew
    ? field({ label: "Confirm the password", name: "confirm", attrs: { type: "password", autocomplete: "new-password", required: true } })
    : null;
  form.append(
    email,
    password,
    confirm,
    formAlert(),
    h("div", { class: "actions" }, h("button", { type: "submit" }, isNew ? "Create account and join" : `Join ${preview.org}`)),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const els = form.elements;
    const problem = checkPasswords(isNew, els.password.value, confirm ? els.confirm.value : "");
    if (problem) {
      showError(form, problem);
      return;
    }
    const accepted = await submitting(form, () => auth("POST", "/invite/accept", { token, password: els.password.value }));
    if (!accepted) return;
    els.password.value = "";
    if (confirm) els.confirm.value = "";
    session.useCookie(accepted.csrf_token);
    hideInvite();
    await enterWithSession();
  });
  replace(
    section,
    heading,
    h("p", { class: "lead invite-summary" }, "You are invited to join ", h("strong", {}, preview.org), " as ", h("strong", {}, preview.role), `, as ${preview.email}.`),
    h(
      "p",
      {},
      isNew ? "Choose a password for your new Patchbay account." : "You already have a Patchbay account: enter its password to join.",
    ),
    form,
  );
  form.elements.password.focus();
}

function checkPasswords(isNew, password, confirm) {
  if (!password) return new ApiError(400, "invalid_request", "Enter a password.", "password");
  if (!isNew) return null;
  if (password.length < MIN_PASSWORD) return new ApiError(400, "invalid_request", `A password is at least ${MIN_PASSWORD} characters.`, "password");
  if (password !== confirm) return new ApiError(400, "invalid_request", "The two passwords differ. Type the same password twice.", "confirm");
  return null;
}

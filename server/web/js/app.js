// Entry point: sign-in, the org picker and the pages (#/connections, #/settings, #/usage).

import { ApiError, SIGNED_OUT, api, token } from "./api.js";
import { connectionsPage } from "./connections.js";
import { h, replace } from "./dom.js";
import { field, formAlert, submitting } from "./forms.js";
import { settingsPage } from "./settings.js";
import { usagePage } from "./usage.js";

const ORG_KEY = "patchbay.org";
const PAGES = {
  connections: { title: "AI Connections", render: connectionsPage },
  settings: { title: "AI settings", render: settingsPage },
  usage: { title: "Usage", render: usagePage },
};

const ui = {
  top: document.getElementById("top"),
  signIn: document.getElementById("sign-in"),
  signInForm: document.getElementById("sign-in-form"),
  signInInput: document.getElementById("sign-in-token"),
  signInError: document.getElementById("sign-in-error"),
  page: document.getElementById("page"),
  orgSelect: document.getElementById("org-select"),
  signOut: document.getElementById("sign-out"),
};

const app = { orgs: [], catalog: null, rendering: 0 };

/** A sign-in link carries the token in the fragment (never sent to a server): keep it in
 * this tab's session storage and take it out of the address bar and history at once. */
function adoptTokenFromLink() {
  const match = /^#token=([^&]+)/.exec(window.location.hash);
  if (!match) return;
  token.set(decodeURIComponent(match[1]));
  history.replaceState(null, "", `${window.location.pathname}#/connections`);
}

function showSignIn(message = "") {
  ui.top.hidden = true;
  ui.page.hidden = true;
  ui.page.replaceChildren();
  ui.signIn.hidden = false;
  ui.signInError.textContent = message;
  ui.signInInput.setAttribute("aria-invalid", message ? "true" : "false");
  document.title = "Sign in · Patchbay";
  ui.signInInput.focus();
}

function signInMessage(error) {
  if (error.status === 401) return "That token was not accepted. Check it and try again.";
  if (error.type === "admin_disabled") return `The admin API is turned off on this server: ${error.message}`;
  return error.message;
}

async function enter(bearer) {
  const [orgs, catalog] = await Promise.all([api("GET", "/orgs", undefined, { bearer }), api("GET", "/catalog", undefined, { bearer })]);
  token.set(bearer);
  app.orgs = orgs;
  app.catalog = catalog;
  ui.signIn.hidden = true;
  ui.top.hidden = false;
  ui.page.hidden = false;
  fillOrgs();
  await route();
}

function fillOrgs() {
  const wanted = sessionStorage.getItem(ORG_KEY);
  const current = app.orgs.find((o) => o.id === wanted) || app.orgs[0];
  replace(ui.orgSelect, app.orgs.map((o) => h("option", { value: o.id, selected: current && o.id === current.id }, o.name)));
  ui.orgSelect.disabled = app.orgs.length === 0;
  if (current) sessionStorage.setItem(ORG_KEY, current.id);
}

function currentOrg() {
  return app.orgs.find((o) => o.id === ui.orgSelect.value) || null;
}

async function route() {
  const name = window.location.hash.replace(/^#\/?/, "") || "connections";
  const page = PAGES[name] || PAGES.connections;
  const key = PAGES[name] ? name : "connections";
  for (const link of document.querySelectorAll("nav a[data-page]")) {
    if (link.dataset.page === key) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${page.title} · Patchbay`;
  const org = currentOrg();
  const ticket = ++app.rendering;
  if (!org) {
    replace(ui.page, newOrgForm());
    return;
  }
  replace(ui.page, h("p", { class: "muted", role: "status" }, "Loading…"));
  try {
    const focusTarget = await page.render(ui.page, { org, catalog: app.catalog });
    if (ticket === app.rendering && focusTarget) focusTarget.focus();
  } catch (error) {
    if (ticket !== app.rendering || (error instanceof ApiError && error.signIn)) return;
    replace(
      ui.page,
      h("h1", {}, page.title),
      h("p", { class: "error", role: "alert" }, `Could not load this page: ${error.message}`),
      h("button", { type: "button", onclick: () => route() }, "Try again"),
    );
  }
}

function newOrgForm() {
  const form = h("form", { novalidate: true });
  form.append(
    field({ label: "Organisation name", name: "name", attrs: { type: "text", required: true, autocomplete: "organization" } }),
    field({
      label: "Tier",
      name: "tier",
      control: "select",
      options: app.catalog.tiers.map((t) => ({ value: t, label: t, selected: t === "pro" })),
    }),
    formAlert(),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Create organisation")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const created = await submitting(form, () => api("POST", "/orgs", { name: form.elements.name.value.trim(), tier: form.elements.tier.value }));
    if (!created) return;
    app.orgs = [...app.orgs, created];
    sessionStorage.setItem(ORG_KEY, created.id);
    fillOrgs();
    await route();
  });
  const heading = h("h1", { tabindex: "-1" }, "Create an organisation");
  queueMicrotask(() => heading.focus());
  return [heading, h("p", {}, "This server has no organisation yet. Connections, routing and agents belong to one."), form];
}

ui.signInForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const candidate = ui.signInInput.value.trim();
  if (!candidate) {
    showSignIn("Enter the admin token.");
    return;
  }
  const button = ui.signInForm.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    ui.signInInput.value = "";
    await enter(candidate);
  } catch (error) {
    showSignIn(signInMessage(error));
  } finally {
    button.disabled = false;
  }
});

ui.signOut.addEventListener("click", () => {
  token.clear();
  showSignIn();
});

ui.orgSelect.addEventListener("change", () => {
  sessionStorage.setItem(ORG_KEY, ui.orgSelect.value);
  route();
});

window.addEventListener("hashchange", () => {
  if (!ui.page.hidden) route();
});

window.addEventListener(SIGNED_OUT, (event) => {
  token.clear();
  showSignIn(event.detail.status === 401 ? "Your session ended: the admin token is no longer accepted. Sign in again." : signInMessage(event.detail));
});

async function start() {
  adoptTokenFromLink();
  const stored = token.get();
  if (!stored) {
    showSignIn();
    return;
  }
  try {
    await enter(stored);
  } catch (error) {
    token.clear();
    showSignIn(signInMessage(error));
  }
}

start();

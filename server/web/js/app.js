// Entry point: signing in (password, admin token, invite link), who the caller is
// (`GET /admin/v1/me`), the org picker, and the pages (#/connections, #/settings, #/keys,
// #/activity, #/members, #/usage, #/conformance, #/billing, #/plans, #/flags for the operator). Each page gets the caller's access in the selected
// org (access.js) and renders only the actions it allows; a page that needs a permission to be
// read at all (Billing) has no link for a role without it.

import { BILLING, OPERATOR, accessIn } from "./access.js";
import { activityPage } from "./activity.js";
import { ApiError, SIGNED_OUT, api, auth, rememberCsrf, session } from "./api.js";
import { billingPage } from "./billing.js";
import { conformancePage } from "./conformance.js";
import { connectionsPage } from "./connections.js";
import { h, replace } from "./dom.js";
import { flagsPage } from "./flags.js";
import { hideInvite, showInvite, takeInviteFromLink } from "./invite.js";
import { keysPage } from "./keys.js";
import { membersPage } from "./members.js";
import { noOrgPage } from "./neworg.js";
import { plansPage } from "./plans.js";
import { settingsPage } from "./settings.js";
import { hideSignIn, initSignIn, showSignIn, signInMessage } from "./signin.js";
import { usagePage } from "./usage.js";

const ORG_KEY = "patchbay.org";
const PAGES = {
  connections: { title: "AI Connections", render: connectionsPage },
  settings: { title: "AI settings", render: settingsPage },
  keys: { title: "Keys", render: keysPage },
  activity: { title: "Activity", render: activityPage },
  members: { title: "Members", render: membersPage },
  usage: { title: "Usage", render: usagePage },
  conformance: { title: "Conformance", render: conformancePage },
  billing: { title: "Billing", render: billingPage, needs: BILLING },
  plans: { title: "Plans", render: plansPage },
  flags: { title: "Feature flags", render: flagsPage, needs: OPERATOR },
};

const ui = {
  top: document.getElementById("top"),
  page: document.getElementById("page"),
  orgSelect: document.getElementById("org-select"),
  who: document.getElementById("who"),
  signOut: document.getElementById("sign-out"),
  signOutAll: document.getElementById("sign-out-all"),
};

const app = { me: null, catalog: null, rendering: 0, settled: 0 };

/** A sign-in link carries the token in the fragment (never sent to a server): keep it in
 * this tab's session storage and take it out of the address bar and history at once. */
function adoptTokenFromLink() {
  const match = /^#token=([^&]+)/.exec(window.location.hash);
  if (!match) return;
  session.useToken(decodeURIComponent(match[1]));
  history.replaceState(null, "", `${window.location.pathname}#/connections`);
}

function leaveApp() {
  app.rendering += 1;
  ui.top.hidden = true;
  ui.page.hidden = true;
  ui.page.replaceChildren();
  hideInvite();
}

function toSignIn(options) {
  leaveApp();
  showSignIn(options);
}

/** Enter the app as `bearer` (an admin token to check) or, without it, on the session cookie. */
async function enter(bearer) {
  const options = bearer ? { bearer } : { check: true };
  const [me, catalog] = await Promise.all([api("GET", "/me", undefined, options), api("GET", "/catalog", undefined, options)]);
  if (bearer) session.useToken(bearer);
  else rememberCsrf(me.csrf_token);
  app.me = me;
  app.catalog = catalog;
  hideSignIn();
  hideInvite();
  ui.top.hidden = false;
  ui.page.hidden = false;
  ui.signOutAll.hidden = me.kind !== "user";
  fillOrgs();
  await route();
}

function fillOrgs() {
  const orgs = app.me.orgs;
  const wanted = sessionStorage.getItem(ORG_KEY);
  const current = orgs.find((o) => o.id === wanted) || orgs[0];
  replace(ui.orgSelect, orgs.map((o) => h("option", { value: o.id, selected: current && o.id === current.id }, o.name)));
  ui.orgSelect.disabled = orgs.length === 0;
  if (current) sessionStorage.setItem(ORG_KEY, current.id);
  showWho();
}

function currentOrg() {
  return app.me.orgs.find((o) => o.id === ui.orgSelect.value) || null;
}

function showWho() {
  const org = currentOrg();
  ui.who.textContent = org && org.role !== app.me.label ? `${app.me.label} (${org.role})` : app.me.label;
  const access = accessIn(app.me, org?.id);
  for (const [key, page] of Object.entries(PAGES)) {
    const link = document.querySelector(`nav a[data-page="${key}"]`);
    if (link && page.needs) link.closest("li").hidden = !access.can(page.needs);
  }
}

async function route() {
  const name = window.location.hash.replace(/^#\/?/, "").split(/[/?]/)[0] || "connections";
  const key = PAGES[name] ? name : "connections";
  const page = PAGES[key];
  for (const link of document.querySelectorAll("nav a[data-page]")) {
    if (link.dataset.page === key) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${page.title} · Patchbay`;
  const org = currentOrg();
  const ticket = ++app.rendering;
  if (!org) {
    replace(ui.page, noOrgPage({ me: app.me, catalog: app.catalog, created: orgCreated }));
    return;
  }
  const access = accessIn(app.me, org.id);
  if (page.needs && !access.can(page.needs)) {
    replace(ui.page, h("h1", {}, page.title), h("p", { class: "empty" }, `Your role in ${org.name} (${access.role}) cannot see this page. Ask an owner of the org.`));
    return;
  }
  // Each render fills its own element. A newer route detaches it, so a page that finishes
  // loading after the user has moved on (a slow Connections page, then a click on AI settings)
  // writes into nothing instead of over the page they moved to.
  const view = h("div", { class: "view" }, h("p", { class: "muted", role: "status" }, "Loading…"));
  replace(ui.page, view);
  try {
    const context = { org, catalog: app.catalog, access, me: app.me };
    const focusTarget = await page.render(view, context);
    if (ticket === app.rendering && focusTarget) focusTarget.focus();
  } catch (error) {
    if (ticket !== app.rendering || (error instanceof ApiError && error.signIn)) return;
    replace(
      ui.page,
      h("h1", {}, page.title),
      h("p", { class: "error", role: "alert" }, `Could not load this page: ${error.message}`),
      h("button", { type: "button", class: "secondary", onclick: () => route() }, "Try again"),
    );
  } finally {
    // How many page renders have finished, shown or dropped: a fact a test (or a tool
    // driving the UI) can wait for instead of guessing when a stale render is done.
    app.settled += 1;
    ui.page.dataset.settled = String(app.settled);
  }
}

async function orgCreated(org) {
  app.me = await api("GET", "/me");
  sessionStorage.setItem(ORG_KEY, org.id);
  fillOrgs();
  await route();
}

async function signOut(everywhere) {
  const wasPerson = session.mode === "cookie";
  if (wasPerson) {
    try {
      await auth("POST", everywhere ? "/logout-all" : "/logout");
    } catch {
      // The session may have ended already; the page forgets it either way.
    }
  }
  session.clear();
  toSignIn({ notice: everywhere ? "You are signed out on every browser." : "", way: wasPerson ? "password" : "token" });
}

initSignIn({
  enterWithToken: (token) => enter(token),
  enterWithSession: () => enter(),
});

ui.signOut.addEventListener("click", () => signOut(false));
ui.signOutAll.addEventListener("click", () => signOut(true));

ui.orgSelect.addEventListener("change", () => {
  sessionStorage.setItem(ORG_KEY, ui.orgSelect.value);
  showWho();
  route();
});

window.addEventListener("hashchange", () => {
  // A link pasted into a tab that already shows the UI changes only the fragment: no reload.
  if (/^#(invite|token)=/.test(window.location.hash)) start();
  else if (!ui.page.hidden) route();
});

window.addEventListener(SIGNED_OUT, (event) => {
  const wasToken = session.mode === "token";
  session.clear();
  if (event.detail.status !== 401) {
    toSignIn({ error: signInMessage(event.detail), way: wasToken ? "token" : "password" });
  } else if (wasToken) {
    toSignIn({ error: "Your session ended: the admin token is no longer accepted. Sign in again.", way: "token" });
  } else {
    toSignIn({ notice: "Your session has ended (you signed out everywhere, or it expired). Sign in again." });
  }
});

async function start() {
  const invite = takeInviteFromLink();
  adoptTokenFromLink();
  if (invite) {
    leaveApp();
    hideSignIn();
    const enterWithSession = () => enter().catch((error) => toSignIn({ notice: signInMessage(error, "password") }));
    await showInvite(invite, { enterWithSession, toSignIn: () => toSignIn() });
    return;
  }
  const stored = session.token();
  try {
    await enter(stored || undefined);
  } catch (error) {
    session.clear();
    leaveApp();
    if (stored) showSignIn({ error: signInMessage(error, "token"), way: "token" });
    else showSignIn({ notice: error.status === 401 ? "" : signInMessage(error) });
  }
}

start();

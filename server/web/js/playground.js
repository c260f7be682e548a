// Entry point of the playground page (/ui/playground): a page of its own, not a route of the
// admin pages, because it alone is served with `Permissions-Policy: microphone=(self)`
// (server/ui.py). It uses the same sign-in as the admin pages (this tab's admin token, or the
// person's session cookie with its CSRF token from /admin/v1/me); signed out, it sends the
// person to sign in there. Then: pick an org and an agent, and chat (playchat.js) or talk
// (playvoice.js) with it on the page's own short-lived key (playgroundkey.js).

import { KEYS, accessIn } from "./access.js";
import { SIGNED_OUT, api, rememberCsrf, seg, session } from "./api.js";
import { h, replace } from "./dom.js";
import { chatTab } from "./playchat.js";
import { PlaygroundKeys } from "./playgroundkey.js";
import { voiceTab } from "./playvoice.js";

const ORG_KEY = "patchbay.org";
const $ = (id) => document.getElementById(id);
const ui = {
  state: $("pg-state"),
  app: $("pg-app"),
  org: $("pg-org"),
  agent: $("pg-agent"),
  whoError: $("pg-who-error"),
  tabs: [$("tab-chat"), $("tab-voice")],
};
const page = { me: null, keys: new PlaygroundKeys() };

function signedOut(message) {
  ui.app.hidden = true;
  replace(ui.state, message, " ", h("a", { href: "./" }, "Sign in on the admin pages"), ", then come back.");
  ui.state.className = "empty";
}

function org() {
  return page.me.orgs.find((o) => o.id === ui.org.value) || null;
}

function who() {
  return { org: org(), agent: ui.agent.value };
}

async function loadAgents() {
  const chosen = org();
  ui.whoError.textContent = "";
  ui.agent.disabled = true;
  replace(ui.agent, h("option", { value: "" }, "Loading agents…"));
  if (!accessIn(page.me, chosen.id).can(KEYS)) {
    ui.whoError.textContent = `Your role in ${chosen.name} (${chosen.role}) may not create API keys, which the playground needs. Ask an owner or admin of the org.`;
  }
  try {
    const agents = await api("GET", `/orgs/${seg(chosen.id)}/agents`);
    replace(ui.agent, h("option", { value: "" }, "No agent: the org's own routing"), agents.map((a) => h("option", { value: a.name }, a.name)));
    if (agents.length) ui.agent.value = agents[0].name;
  } catch (error) {
    if (error.signIn) return;
    replace(ui.agent, h("option", { value: "" }, "No agent: the org's own routing"));
    ui.whoError.textContent = `Could not load the agents: ${error.message}`;
  } finally {
    ui.agent.disabled = false;
  }
}

function select(tab) {
  for (const button of ui.tabs) {
    const on = button === tab;
    button.setAttribute("aria-selected", String(on));
    button.tabIndex = on ? 0 : -1;
    $(button.getAttribute("aria-controls")).hidden = !on;
  }
}

function initTabs() {
  ui.tabs.forEach((button, i) => {
    button.addEventListener("click", () => select(button));
    button.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      const next = ui.tabs[(i + step + ui.tabs.length) % ui.tabs.length];
      select(next);
      next.focus();
    });
  });
}

async function start() {
  try {
    page.me = await api("GET", "/me", undefined, { check: true });
  } catch (error) {
    if (error.status === 401 || error.signIn) signedOut("You are not signed in.");
    else replace(ui.state, h("span", { class: "error", role: "alert" }, `Could not load the playground: ${error.message}`), " ", h("button", { type: "button", class: "secondary", onclick: () => window.location.reload() }, "Try again"));
    return;
  }
  if (session.mode === "cookie") rememberCsrf(page.me.csrf_token);
  const orgs = page.me.orgs;
  if (!orgs.length) {
    replace(ui.state, "You are in no organisation yet. ", h("a", { href: "./" }, "Create one on the admin pages"), ".");
    ui.state.className = "empty";
    return;
  }
  const wanted = sessionStorage.getItem(ORG_KEY);
  replace(ui.org, orgs.map((o) => h("option", { value: o.id, selected: o.id === wanted }, o.name)));
  initTabs();
  const context = { who, keys: page.keys };
  chatTab($("panel-chat"), context);
  // A voice session talks to the agent it was opened for: another choice hangs it up.
  const hangUp = voiceTab($("panel-voice"), context);
  ui.org.addEventListener("change", () => {
    hangUp();
    sessionStorage.setItem(ORG_KEY, ui.org.value);
    loadAgents();
  });
  ui.agent.addEventListener("change", hangUp);
  ui.state.hidden = true;
  ui.app.hidden = false;
  await loadAgents();
}

window.addEventListener(SIGNED_OUT, () => {
  session.clear();
  signedOut("Your session has ended.");
});

start();

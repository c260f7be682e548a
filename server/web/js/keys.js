// The "Keys" page: the org's server API keys (what apps present to /v1 and realtime), a form to
// create one (name, agent, allowed models, expiry, monthly spend limit), changing a key's spend
// limit (budget.js) and revoking. A new key is shown once, in
// keyreveal.js's panel; the list shows only its prefix.

import { KEYS, ifAllowed } from "./access.js";
import { api, seg } from "./api.js";
import { amountField, limitForm, openIn, readAmount, spendText } from "./budget.js";
import { badge } from "./connectioncells.js";
import { h, replace, splitList, when } from "./dom.js";
import { confirmAction, field, formAlert, submitting } from "./forms.js";
import { keyPanel } from "./keyreveal.js";

const EXPIRY = [
  { value: "", label: "Never" },
  { value: "30d", label: "In 30 days" },
  { value: "90d", label: "In 90 days" },
  { value: "custom", label: "On a date…" },
];

/** The key's status as of now: the API's, or worked out from its times on an older server. */
export function keyStatus(k) {
  if (k.status) return k.status;
  if (k.revoked_at) return "revoked";
  return k.expires_at && Date.parse(k.expires_at) <= Date.now() ? "expired" : "active";
}

export async function keysPage(root, { org, access }) {
  const base = `/orgs/${seg(org.id)}`;
  const canChange = access.can(KEYS);
  const state = { keys: null };
  const heading = h("h1", { tabindex: "-1" }, "Keys");
  const status = h("p", { class: "status", role: "status" });
  const revealArea = h("div");
  const listArea = h("div", { class: "table-wrap", "aria-live": "polite" });
  const limitArea = h("div");
  const agents = canChange ? await api("GET", `${base}/agents`) : [];
  replace(
    root,
    heading,
    h(
      "p",
      { class: "lead" },
      `The server API keys of ${org.name}: apps present one to Patchbay's OpenAI-compatible /v1 API and realtime. ` +
        "Patchbay stores only a hash of each key, so a key is shown once, when it is created.",
    ),
    status,
    revealArea,
    h("section", { "aria-labelledby": "keys-title" }, h("h2", { id: "keys-title" }, "API keys"), listArea, limitArea),
    ifAllowed(access, KEYS, createSection),
  );

  async function load() {
    replace(listArea, h("p", { class: "muted" }, "Loading keys…"));
    try {
      state.keys = await api("GET", `${base}/api-keys`);
    } catch (error) {
      if (error.signIn) return;
      replace(
        listArea,
        h("p", { class: "error", role: "alert" }, `Could not load the keys: ${error.message}`),
        h("button", { type: "button", class: "secondary", onclick: load }, "Try again"),
      );
      return;
    }
    render();
  }

  function render() {
    if (!state.keys.length) {
      replace(listArea, h("p", { class: "empty" }, canChange ? "No keys yet. Create one below." : "No keys yet."));
      return;
    }
    const columns = ["Name", "Key", "Status", "Agent", "Allowed models", "Spent this month (UTC)", "Expires", "Last used", "Created", ...(canChange ? ["Actions"] : [])];
    replace(
      listArea,
      h(
        "table",
        { class: "api-keys" },
        h("caption", { class: "visually-hidden" }, `Server API keys of ${org.name}`),
        h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, state.keys.map(row)),
      ),
    );
  }

  function row(k) {
    const current = keyStatus(k);
    return h(
      "tr",
      { dataset: { keyId: k.id, keyName: k.name || k.prefix } },
      h("th", { scope: "row" }, k.name || h("span", { class: "muted" }, "unnamed")),
      h("td", { class: "prefix" }, h("code", {}, `${k.prefix}…`)),
      h("td", {}, badge(current === "active" ? "active" : current === "revoked" ? "revoked" : "disabled", current)),
      h("td", {}, k.agent || h("span", { class: "muted" }, "none")),
      h("td", {}, k.models?.length ? k.models.join(", ") : h("span", { class: "muted" }, "any")),
      h("td", { class: "spend" }, spendText(k.spent_this_month ?? "0.00", k.spend_limit)),
      h("td", {}, k.expires_at ? when(k.expires_at) : h("span", { class: "muted" }, "never")),
      h("td", {}, k.last_used_at ? when(k.last_used_at) : h("span", { class: "muted" }, "never")),
      h("td", {}, when(k.created_at)),
      canChange &&
        h(
          "td",
          { class: "actions" },
          current === "revoked" ? null : h("button", { type: "button", class: "secondary", dataset: { action: "limit" }, onclick: () => editLimit(k) }, "Spend limit"),
          current === "revoked" ? null : h("button", { type: "button", class: "danger", onclick: () => revoke(k) }, "Revoke"),
        ),
    );
  }

  function editLimit(k) {
    const label = k.name || k.prefix;
    const close = () => replace(limitArea);
    const saved = (updated) => {
      state.keys = state.keys.map((x) => (x.id === updated.id ? updated : x));
      close();
      render();
      status.textContent = updated.spend_limit == null ? `Key “${label}” has no spend limit.` : `Key “${label}” may spend ${updated.spend_limit} USD a month.`;
      listArea.querySelector(`tr[data-key-id="${CSS.escape(updated.id)}"] button`)?.focus();
    };
    openIn(limitArea, limitForm({ base, key: k, saved, cancel: close }));
  }

  async function revoke(k) {
    const label = k.name || k.prefix;
    const ok = await confirmAction({
      title: `Revoke the key “${label}”?`,
      message: "Apps using it are refused from now on. This cannot be undone: to use the API again they need a new key.",
      confirmLabel: "Revoke",
    });
    if (!ok) return;
    try {
      const revoked = await api("DELETE", `${base}/api-keys/${seg(k.id)}`);
      state.keys = state.keys.map((x) => (x.id === k.id ? revoked : x));
      render();
      status.textContent = `Key “${label}” revoked.`;
    } catch (error) {
      status.textContent = `Could not revoke the key “${label}”: ${error.message}`;
    }
  }

  function createSection() {
    const form = h("form", { novalidate: true, class: "create-key" });
    const custom = field({
      label: "Expires on",
      name: "expires_at",
      param: "expires",
      hint: "In your local time.",
      attrs: { type: "datetime-local" },
    });
    custom.hidden = true;
    form.append(
      field({ label: "Name", name: "name", hint: "What the key is for, such as “support bot”. Unique among the org's keys.", attrs: { type: "text", required: true, autocomplete: "off", maxlength: "128" } }),
      field({
        label: "Agent",
        name: "agent",
        hint: "A key bound to an agent uses that agent's models and voice settings.",
        control: "select",
        options: [{ value: "", label: "None (the org's routing)" }, ...agents.map((a) => ({ value: a.name, label: a.name }))],
      }),
      field({
        label: "Allowed models",
        name: "models",
        hint: "The models the key may ask for, one per line (openai/gpt-4o-mini, agent:support, default). Empty: any model.",
        control: "textarea",
        attrs: { rows: "3", spellcheck: "false" },
      }),
      field({ label: "Expiry", name: "expires", control: "select", options: EXPIRY }),
      custom,
      amountField({ label: "Monthly spend limit (USD)", name: "spend_limit", hint: "What requests with the key may be charged per calendar month (UTC). Empty: no limit of its own." }),
      formAlert(),
      h("div", { class: "actions" }, h("button", { type: "submit" }, "Create key")),
    );
    form.elements.expires.addEventListener("change", () => {
      custom.hidden = form.elements.expires.value !== "custom";
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const els = form.elements;
      const body = { name: els.name.value.trim() };
      if (els.agent.value) body.agent = els.agent.value;
      const models = splitList(els.models.value);
      if (models.length) body.models = models;
      const limit = readAmount(els.spend_limit);
      if (limit !== null) body.spend_limit = limit;
      if (els.expires.value === "custom") {
        const at = new Date(els.expires_at.value);
        body.expires = Number.isNaN(at.getTime()) ? els.expires_at.value : at.toISOString();
      } else if (els.expires.value) {
        body.expires = els.expires.value;
      }
      const created = await submitting(form, () => api("POST", `${base}/api-keys`, body));
      if (!created) return;
      form.reset();
      custom.hidden = true;
      const { key, ...listed } = created;
      state.keys = [...(state.keys || []), listed];
      render();
      status.textContent = `Key “${created.name || created.prefix}” created.`;
      replace(revealArea, keyPanel(created, { origin: window.location.origin, done: closeReveal }));
    });
    return h("section", { "aria-labelledby": "create-key-title" }, h("h2", { id: "create-key-title" }, "Create a key"), form);
  }

  function closeReveal() {
    replace(revealArea);
    status.textContent = "The new key is no longer shown.";
    heading.focus();
  }

  await load();
  return heading;
}

// The "AI Connections" page: an org's provider keys and private endpoints, in routing order.
// Keys are write-only: the page sends them once and shows only the fingerprint the API returns.

import { api, seg } from "./api.js";
import { h, replace, splitList, when } from "./dom.js";
import { confirmAction, field, formAlert, submitting } from "./forms.js";

const COLUMNS = ["Priority", "Connection", "Endpoint", "Models", "Status", "Last check", "Key", "Actions"];

export async function connectionsPage(root, { org, catalog }) {
  const providers = new Map(catalog.providers.map((p) => [p.id, p]));
  const state = { connections: [], tests: new Map(), errors: new Map(), keyForm: null, busy: null };
  const base = `/orgs/${seg(org.id)}`;

  const status = h("p", { class: "status", role: "status" });
  const listArea = h("div", { class: "table-wrap" });
  const heading = h("h1", { tabindex: "-1" }, "AI Connections");
  replace(
    root,
    heading,
    h(
      "p",
      { class: "lead" },
      `The provider keys and private endpoints of ${org.name}. Within one provider, the first connection is tried first. ` +
        "Keys are write-only: Patchbay keeps them encrypted and shows only a fingerprint.",
    ),
    status,
    h("section", { "aria-labelledby": "connections-title" }, h("h2", { id: "connections-title" }, "Connections"), listArea),
    addSection(),
  );

  const announce = (text) => {
    status.textContent = text;
  };

  async function reload() {
    state.connections = await api("GET", `${base}/connections`);
  }

  function render(focus) {
    replace(listArea, state.connections.length ? table() : emptyNote());
    if (focus) {
      const row = listArea.querySelector(`tr[data-profile="${CSS.escape(focus.profile)}"]`);
      const target = row && (row.querySelector(`[data-action="${focus.action}"]:not([disabled])`) || row.querySelector("button:not([disabled])"));
      (target || heading).focus();
    }
  }

  function emptyNote() {
    return h(
      "p",
      { class: "empty" },
      "No connections yet. Add one below. Without any, voice still runs on the built-in offline engines.",
    );
  }

  function table() {
    const groups = new Map();
    for (const c of state.connections) {
      if (!groups.has(c.provider)) groups.set(c.provider, []);
      groups.get(c.provider).push(c);
    }
    return h(
      "table",
      { class: "connections" },
      h("caption", { class: "visually-hidden" }, `Connections of ${org.name}, by provider in routing order`),
      h("thead", {}, h("tr", {}, COLUMNS.map((c) => h("th", { scope: "col" }, c)))),
      [...groups.entries()].map(([provider, group]) =>
        h(
          "tbody",
          {},
          h("tr", { class: "group" }, h("th", { scope: "rowgroup", colspan: COLUMNS.length }, providers.get(provider)?.display_name || provider)),
          group.flatMap((c, i) => rows(c, i, group.length)),
        ),
      ),
    );
  }

  function rows(c, index, count) {
    const busy = state.busy === c.profile_id;
    const revoked = c.status === "revoked";
    const actions = [
      button("test", busy ? "Testing…" : "Test", () => test(c), { disabled: busy }),
      button("key", revoked ? "Set a new key" : "Replace key", () => openKeyForm(c)),
      revoked ? null : button("toggle", c.status === "disabled" ? "Enable" : "Disable", () => toggle(c)),
      revoked ? null : button("revoke", "Revoke", () => revoke(c), { class: "danger" }),
      button("delete", "Delete", () => remove(c), { class: "danger" }),
    ];
    const row = h(
      "tr",
      { dataset: { profile: c.profile_id } },
      h(
        "td",
        { class: "priority" },
        h("span", { class: "position" }, String(index + 1)),
        button("up", "↑", () => move(c, -1), { disabled: index === 0, "aria-label": `Move ${c.profile_id} up` }),
        button("down", "↓", () => move(c, 1), { disabled: index === count - 1, "aria-label": `Move ${c.profile_id} down` }),
      ),
      h("th", { scope: "row" }, h("span", { class: "profile" }, c.profile_id), h("span", { class: "muted" }, `billed: ${c.billing_source}`)),
      h("td", { class: "endpoint" }, endpoint(c)),
      h("td", {}, models(c)),
      h("td", {}, badge(c.status)),
      h("td", { class: "health" }, health(c.health)),
      h("td", { class: "key" }, key(c)),
      h("td", { class: "actions" }, actions),
    );
    const detail = details(c);
    return detail ? [row, h("tr", { class: "detail", dataset: { profile: c.profile_id } }, h("td", { colspan: COLUMNS.length }, detail))] : [row];
  }

  function details(c) {
    const parts = [];
    const error = state.errors.get(c.profile_id);
    if (error) parts.push(h("p", { class: "error", role: "alert" }, error));
    const result = state.tests.get(c.profile_id);
    if (result) parts.push(testResult(c, result));
    if (state.keyForm === c.profile_id) parts.push(keyForm(c));
    return parts.length ? parts : null;
  }

  function endpoint(c) {
    if (c.base_url) return h("code", {}, c.base_url);
    const preset = providers.get(c.provider)?.default_base_url;
    return h("span", { class: "muted" }, preset ? `default (${preset})` : "default");
  }

  function models(c) {
    const declared = (c.models || []).map((m) => m.id);
    if (declared.length) return declared.join(", ");
    const found = c.health.models_found || [];
    if (!found.length) return h("span", { class: "muted" }, "any");
    const shown = found.slice(0, 4).join(", ");
    return found.length > 4 ? `${shown} and ${found.length - 4} more` : shown;
  }

  function health(hl) {
    if (!hl.status) return h("span", { class: "muted" }, "not tested");
    const label = hl.status === "ok" ? "ok" : `failed${hl.error_class ? ` (${hl.error_class})` : ""}`;
    return [
      badge(hl.status === "ok" ? "ok" : "failed", label),
      h("span", { class: "muted" }, [when(hl.checked_at), hl.latency_ms != null ? `${hl.latency_ms} ms` : null].filter(Boolean).join(" · ")),
    ];
  }

  function key(c) {
    // Revoking destroys the key; its fingerprint stays only in the audit trail.
    if (c.status === "revoked") return h("span", { class: "muted" }, "key destroyed");
    if (c.key) return [h("code", { class: "fingerprint" }, c.key.fingerprint), h("span", { class: "muted" }, `set ${when(c.key.set_at)}`)];
    if (c.env_reference) return h("span", {}, `from env ${c.env_reference}`);
    return h("span", { class: "muted" }, "no key");
  }

  function testResult(c, result) {
    return h(
      "div",
      { class: `test-result ${result.ok ? "ok" : "failed"}` },
      h("h3", {}, `Test of ${c.profile_id}: ${result.ok ? "passed" : "failed"}`),
      h(
        "ul",
        {},
        result.probes.map((p) =>
          h(
            "li",
            { dataset: { probe: p.name } },
            badge(p.ok ? "ok" : "failed"),
            ` ${p.name}, ${p.latency_ms} ms`,
            p.ok ? (p.models.length ? `, ${p.models.length} models` : "") : `: ${[p.error_class, p.status ? `HTTP ${p.status}` : null, p.message].filter(Boolean).join(", ")}`,
          ),
        ),
      ),
    );
  }

  function keyForm(c) {
    const form = h("form", { class: "inline-form", novalidate: true, "aria-label": `Replace the key of ${c.profile_id}` });
    const keyField = field({
      label: `New key for ${c.profile_id}`,
      name: "key",
      hint: "Replaces the stored key; the connection keeps its place and history.",
      attrs: { type: "password", autocomplete: "off", spellcheck: "false", required: true },
    });
    form.append(
      keyField,
      formAlert(),
      h("div", { class: "actions" }, h("button", { type: "submit" }, "Save key"), button("cancel-key", "Cancel", () => closeKeyForm(c), { class: "secondary" })),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const input = form.elements.key;
      const saved = await submitting(form, () => api("PUT", `${base}/connections/${seg(c.id)}/key`, { key: input.value }));
      if (!saved) return;
      input.value = "";
      state.keyForm = null;
      state.errors.delete(c.profile_id);
      replaceConnection(saved);
      render({ profile: c.profile_id, action: "key" });
      announce(`New key saved for ${c.profile_id} (${saved.key ? saved.key.fingerprint : "no key"}).`);
    });
    queueMicrotask(() => form.elements.key?.focus());
    return form;
  }

  function openKeyForm(c) {
    state.keyForm = c.profile_id;
    render();
  }

  function closeKeyForm(c) {
    state.keyForm = null;
    render({ profile: c.profile_id, action: "key" });
  }

  function replaceConnection(updated) {
    state.connections = state.connections.map((c) => (c.id === updated.id ? updated : c));
  }

  async function act(c, action, work) {
    state.errors.delete(c.profile_id);
    try {
      await work();
    } catch (error) {
      state.errors.set(c.profile_id, error.message);
    }
    render(state.connections.some((x) => x.profile_id === c.profile_id) ? { profile: c.profile_id, action } : { profile: "", action });
  }

  function test(c) {
    state.busy = c.profile_id;
    render({ profile: c.profile_id, action: "test" });
    return act(c, "test", async () => {
      try {
        const result = await api("POST", `${base}/connections/${seg(c.id)}/test`, {});
        state.tests.set(c.profile_id, result);
        replaceConnection(result.connection);
        announce(`Test of ${c.profile_id} ${result.ok ? "passed" : "failed"}.`);
      } finally {
        state.busy = null;
      }
    });
  }

  function toggle(c) {
    const enabled = c.status === "disabled";
    return act(c, "toggle", async () => {
      replaceConnection(await api("PATCH", `${base}/connections/${seg(c.id)}`, { enabled }));
      announce(`${c.profile_id} ${enabled ? "enabled" : "disabled"}.`);
    });
  }

  async function revoke(c) {
    const ok = await confirmAction({
      title: `Revoke ${c.profile_id}?`,
      message: "Patchbay stops routing to it and destroys its stored key. The record stays; set a new key to use it again.",
      confirmLabel: "Revoke",
    });
    if (!ok) return;
    await act(c, "key", async () => {
      replaceConnection(await api("POST", `${base}/connections/${seg(c.id)}/revoke`));
      announce(`${c.profile_id} revoked; its key is destroyed.`);
    });
  }

  async function remove(c) {
    const ok = await confirmAction({
      title: `Delete ${c.profile_id}?`,
      message: "The connection and its stored key are deleted. This cannot be undone.",
      confirmLabel: "Delete",
    });
    if (!ok) return;
    await act(c, "delete", async () => {
      await api("DELETE", `${base}/connections/${seg(c.id)}`);
      state.connections = state.connections.filter((x) => x.id !== c.id);
      state.tests.delete(c.profile_id);
      announce(`${c.profile_id} deleted.`);
    });
  }

  function move(c, delta) {
    const group = state.connections.filter((x) => x.provider === c.provider);
    const from = group.findIndex((x) => x.id === c.id);
    const to = from + delta;
    if (to < 0 || to >= group.length) return undefined;
    const order = group.map((x) => x.name);
    [order[from], order[to]] = [order[to], order[from]];
    return act(c, delta < 0 ? "up" : "down", async () => {
      await api("PUT", `${base}/connections-order`, { provider: c.provider, profiles: order });
      await reload();
      announce(`${c.profile_id} is now number ${to + 1} of ${group.length} ${c.provider} connections.`);
    });
  }

  function addSection() {
    const form = h("form", { novalidate: true, class: "add-connection" });
    const providerField = field({
      label: "Provider",
      name: "provider",
      control: "select",
      options: catalog.providers.map((p) => ({ value: p.id, label: p.display_name })),
    });
    const nameField = field({ label: "Name", name: "name", attrs: { type: "text", autocomplete: "off", spellcheck: "false" } });
    const urlField = field({ label: "Base URL", name: "base_url", attrs: { type: "url", autocomplete: "off", spellcheck: "false" } });
    const keyField = field({ label: "API key", name: "key", attrs: { type: "password", autocomplete: "off", spellcheck: "false" } });
    const modelsField = field({
      label: "Models",
      name: "models",
      hint: "Model ids this connection serves, separated by commas. Empty: whatever the provider lists.",
      attrs: { type: "text", autocomplete: "off", spellcheck: "false" },
    });
    form.append(
      providerField,
      nameField,
      urlField,
      keyField,
      modelsField,
      formAlert(),
      h("div", { class: "actions" }, h("button", { type: "submit" }, "Add connection")),
    );
    const setHint = (f, text) => {
      let hint = f.querySelector(".hint");
      if (!hint) {
        const input = f.querySelector("input");
        hint = h("p", { id: `${input.id}-hint`, class: "hint" });
        f.insertBefore(hint, f.querySelector(".error"));
        input.setAttribute("aria-describedby", `${hint.id} ${input.id}-error`);
      }
      hint.textContent = text;
    };
    const adapt = () => {
      const p = providers.get(form.elements.provider.value);
      setHint(
        nameField,
        p.custom
          ? "Required. It becomes the provider part of this endpoint's model refs (mylab/llama-3-70b)."
          : "Optional: \"default\" when empty. Give each key of the same provider its own name.",
      );
      setHint(urlField, p.custom ? "Required: the endpoint's OpenAI-compatible base URL, such as http://10.0.0.5:8000/v1." : `Optional: empty uses ${p.default_base_url}.`);
      setHint(keyField, `${p.key_required ? "Required" : "Optional for this provider"}. Write-only: stored encrypted, shown only as a fingerprint.`);
      form.elements.name.required = p.custom;
      form.elements.base_url.required = p.custom;
      form.elements.key.required = p.key_required;
    };
    form.elements.provider.addEventListener("change", adapt);
    adapt();
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const els = form.elements;
      const body = { provider: els.provider.value, models: splitList(els.models.value) };
      if (els.name.value.trim()) body.name = els.name.value.trim();
      if (els.base_url.value.trim()) body.base_url = els.base_url.value.trim();
      if (els.key.value) body.key = els.key.value;
      const created = await submitting(form, () => api("POST", `${base}/connections`, body));
      if (!created) return;
      form.reset();
      adapt();
      await reload().catch(() => undefined);
      render();
      announce(`Added ${created.profile_id}${created.key ? ` with key ${created.key.fingerprint}` : ""}. Test it to check the key.`);
    });
    return h("section", { "aria-labelledby": "add-title" }, h("h2", { id: "add-title" }, "Add a connection"), form);
  }

  await reload();
  render();
  return heading;
}

function button(action, label, onclick, props = {}) {
  return h("button", { type: "button", class: "secondary", dataset: { action }, onclick, ...props }, label);
}

function badge(kind, label = kind) {
  return h("span", { class: `badge badge-${kind}` }, label);
}

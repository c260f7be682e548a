// The "AI Connections" page: an org's provider keys and private endpoints, in routing order, and
// the platform's connections: the operator manages them here; an org's members see what the
// platform offers their org (platformoffer.js). Keys are write-only: the page sends them once and
// shows only the fingerprint the API returns.

import { CONFIGURE, ifAllowed } from "./access.js";
import { api, seg } from "./api.js";
import { addConnectionSection } from "./connectionform.js";
import { badge, endpoint, health, key, models, testResult } from "./connectioncells.js";
import { h, replace } from "./dom.js";
import { confirmAction, field, formAlert, submitting } from "./forms.js";
import { platformOfferSection } from "./platformoffer.js";

export async function connectionsPage(root, { org, catalog, access, me }) {
  const providers = new Map(catalog.providers.map((p) => [p.id, p]));
  const canChange = access.can(CONFIGURE);
  const base = `/orgs/${seg(org.id)}`;
  const operator = Boolean(me && me.operator);

  const status = h("p", { class: "status", role: "status" });
  const heading = h("h1", { tabindex: "-1" }, "AI Connections");
  const announce = (text) => {
    status.textContent = text;
  };
  const own = connectionTable({
    providers,
    canChange,
    announce,
    heading,
    tableClass: "connections",
    caption: `Connections of ${org.name}, by provider in routing order`,
    empty: "No connections yet. Add one below. Without any, voice still runs on the built-in offline engines.",
    paths: { list: `${base}/connections`, item: (c) => `${base}/connections/${seg(c.id)}`, order: `${base}/connections-order`, test: true },
  });
  const platform = operator
    ? connectionTable({
        providers,
        canChange: true,
        announce,
        heading,
        tableClass: "platform-connections",
        caption: "Platform connections, by provider in routing order",
        empty: "No platform connections. Add one below: every org may then route to it as its tier allows, billed to its credits.",
        paths: { list: "/platform/connections", item: (c) => `/platform/connections/${seg(c.id)}`, order: null, test: false },
      })
    : null;
  await Promise.all([own.reload(), platform?.reload()]);
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
    h("section", { "aria-labelledby": "connections-title" }, h("h2", { id: "connections-title" }, "Connections"), own.area),
    ifAllowed(access, CONFIGURE, () => addConnectionSection({ catalog, providers, base, added: own.added })),
    platform
      ? h(
          "section",
          { "aria-labelledby": "platform-title", class: "platform" },
          h("h2", { id: "platform-title" }, "Platform connections"),
          h(
            "p",
            {},
            "Yours as the server's operator: every org may route to them as its tier allows, and pays for their use from its credits " +
              "(billing source platform). An org's own connection of the same provider comes first unless its routing names the platform's (",
            h("code", {}, "openai:platform/gpt-4o-mini"),
            ").",
          ),
          platform.area,
          addConnectionSection({ catalog, providers, base: "/platform", added: platform.added, title: "Add a platform connection", id: "add-platform" }),
        )
      : await platformOfferSection(base, org),
  );
  own.render();
  platform?.render();
  return heading;
}

/** One table of connections with its actions; `paths.order` null: no reordering, `paths.test` false: no test. */
function connectionTable({ providers, canChange, announce, heading, tableClass, caption, empty, paths }) {
  const COLUMNS = ["Priority", "Connection", "Endpoint", "Models", "Status", "Last check", "Key", ...(canChange ? ["Actions"] : [])];
  const state = { connections: [], tests: new Map(), errors: new Map(), keyForm: null, busy: null };
  const listArea = h("div", { class: "table-wrap" });

  async function added(created) {
    await reload().catch(() => undefined);
    render();
    announce(`Added ${created.profile_id}${created.key ? ` with key ${created.key.fingerprint}` : ""}.${paths.test ? " Test it to check the key." : ""}`);
  }

  async function reload() {
    state.connections = await api("GET", paths.list);
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
    return h("p", { class: "empty" }, empty);
  }

  function table() {
    const groups = new Map();
    for (const c of state.connections) {
      if (!groups.has(c.provider)) groups.set(c.provider, []);
      groups.get(c.provider).push(c);
    }
    return h(
      "table",
      { class: tableClass },
      h("caption", { class: "visually-hidden" }, caption),
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
    const actions = canChange && [
      paths.test ? button("test", busy ? "Testing…" : "Test", () => test(c), { disabled: busy }) : null,
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
        canChange && paths.order && button("up", "↑", () => move(c, -1), { disabled: index === 0, "aria-label": `Move ${c.profile_id} up` }),
        canChange && paths.order && button("down", "↓", () => move(c, 1), { disabled: index === count - 1, "aria-label": `Move ${c.profile_id} down` }),
      ),
      h("th", { scope: "row" }, h("span", { class: "profile" }, c.profile_id), h("span", { class: "muted" }, `billed: ${c.billing_source}`)),
      h("td", { class: "endpoint" }, endpoint(c, providers)),
      h("td", {}, models(c)),
      h("td", {}, badge(c.status)),
      h("td", { class: "health" }, health(c.health)),
      h("td", { class: "key" }, key(c)),
      canChange && h("td", { class: "actions" }, actions),
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
      const saved = await submitting(form, () => api("PUT", `${paths.item(c)}/key`, { key: input.value }));
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
        const result = await api("POST", `${paths.item(c)}/test`, {});
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
      replaceConnection(await api("PATCH", paths.item(c), { enabled }));
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
      replaceConnection(await api("POST", `${paths.item(c)}/revoke`));
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
      await api("DELETE", paths.item(c));
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
      await api("PUT", paths.order, { provider: c.provider, profiles: order });
      await reload();
      announce(`${c.profile_id} is now number ${to + 1} of ${group.length} ${c.provider} connections.`);
    });
  }

  return { area: listArea, reload, render, added };
}

function button(action, label, onclick, props = {}) {
  return h("button", { type: "button", class: "secondary", dataset: { action }, onclick, ...props }, label);
}

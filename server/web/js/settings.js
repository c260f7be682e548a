// The "AI settings" page: the org's routing matrix (a chain of model refs per task intent,
// a default model, an allowlist) and its agents, each with chains that override the matrix
// and the voice settings its voice sessions start with; and the org's monthly budget (budget.js).

import { CONFIGURE } from "./access.js";
import { api, seg } from "./api.js";
import { budgetSection } from "./budget.js";
import { h, replace, splitList } from "./dom.js";
import { planSection } from "./plan.js";
import { chainEditors, chainList, readChains, showChains } from "./chains.js";
import { confirmAction, field, formAlert, submitting } from "./forms.js";
import { readVoice, voiceFields, voiceSummary } from "./voicesettings.js";

export async function settingsPage(root, { org, catalog, access }) {
  const canChange = access.can(CONFIGURE);
  const base = `/orgs/${seg(org.id)}`;
  const [routing, agents, connections, offer] = await Promise.all([
    api("GET", `${base}/routing`),
    api("GET", `${base}/agents`),
    api("GET", `${base}/connections`),
    api("GET", `${base}/platform-connections`),
  ]);
  const state = { agents, editing: null };
  const status = h("p", { class: "status", role: "status" });
  const announce = (text) => {
    status.textContent = text;
  };
  const heading = h("h1", { tabindex: "-1" }, "AI settings");
  const agentsArea = h("div", { class: "table-wrap" });
  const agentFormArea = h("div");
  const budget = await budgetSection({ org, access, announce });
  const preview = (intent, refs) => api("GET", `${base}/routing/preview?${new URLSearchParams({ intent, chain: refs.join(",") })}`);

  replace(
    root,
    heading,
    h("p", { class: "lead" }, `Which models ${org.name} uses for each kind of task, primary first, then fallbacks.`),
    status,
    planSection({ org, offer, catalog, access, announce }),
    routingSection(),
    h(
      "section",
      { "aria-labelledby": "agents-title" },
      h("h2", { id: "agents-title" }, "Agents"),
      h("p", {}, "An agent's chains replace the org's for its intents. Call it as model ", h("code", {}, "agent:NAME"), " or with an API key bound to it."),
      agentsArea,
      canChange ? agentFormArea : null,
    ),
    budget,
  );

  function routingSection() {
    if (!canChange) return routingView();
    const form = h("form", { novalidate: true, class: "routing" });
    const defaultField = field({
      label: "Default model",
      name: "default_model",
      hint: "Used when no chain matches. Empty: none.",
      attrs: { type: "text", autocomplete: "off", spellcheck: "false", placeholder: "provider/model" },
    });
    defaultField.querySelector("input").value = routing.default_model || "";
    const allowedField = field({
      label: "Allowed models",
      name: "allowed_models",
      hint: "Model refs callers may ask for by name, separated by commas. Empty: any model.",
      attrs: { type: "text", autocomplete: "off", spellcheck: "false" },
    });
    allowedField.querySelector("input").value = (routing.allowed_models || []).join(", ");
    form.append(
      h(
        "fieldset",
        {},
        h("legend", {}, "Chains per task"),
        h("p", { class: "hint" }, "Primary first. Reorder by dragging, with the arrow buttons, or with Alt+↑ and Alt+↓ on an entry."),
        chainEditors(catalog.intents, routing.chains, { preview, announce, fallbackHint: true }),
      ),
      defaultField,
      allowedField,
      formAlert(),
      h("div", { class: "actions" }, h("button", { type: "submit" }, "Save routing")),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const els = form.elements;
      const body = {
        chains: readChains(form),
        default_model: els.default_model.value.trim(),
        allowed_models: splitList(els.allowed_models.value),
      };
      const saved = await submitting(form, () => api("PUT", `${base}/routing`, body));
      if (!saved) return;
      showChains(form, saved.chains);
      els.default_model.value = saved.default_model || "";
      els.allowed_models.value = (saved.allowed_models || []).join(", ");
      announce("Routing saved. It applies to new requests at once.");
    });
    return h(
      "section",
      { "aria-labelledby": "routing-title" },
      h("h2", { id: "routing-title" }, "Routing matrix"),
      form,
      offered(),
    );
  }

  function routingView() {
    return h(
      "section",
      { "aria-labelledby": "routing-title" },
      h("h2", { id: "routing-title" }, "Routing matrix"),
      h(
        "dl",
        { class: "chains routing-view" },
        h("dt", {}, "Chains per task"),
        h("dd", {}, chainList(routing.chains)),
        h("dt", {}, "Default model"),
        h("dd", {}, routing.default_model ? h("code", {}, routing.default_model) : h("span", { class: "muted" }, "none")),
        h("dt", {}, "Allowed models"),
        h("dd", {}, routing.allowed_models?.length ? routing.allowed_models.join(", ") : h("span", { class: "muted" }, "any")),
      ),
      offered(),
    );
  }

  function offered() {
    const refs = [];
    for (const c of connections) {
      if (c.status !== "active") continue;
      const prefix = c.provider === "openai_compatible" ? c.name : c.provider;
      const ids = c.models.length ? c.models.map((m) => m.id) : c.health.models_found || [];
      for (const id of ids) refs.push(`${prefix}/${id}`);
    }
    const unique = [...new Set(refs)].sort();
    return h(
      "details",
      { class: "offered" },
      h("summary", {}, `Model refs your active connections declare or listed at their last test (${unique.length})`),
      unique.length
        ? h("ul", {}, unique.map((r) => h("li", {}, h("code", {}, r))))
        : h("p", { class: "muted" }, "None yet: add a connection and test it on the AI Connections page."),
    );
  }

  function renderAgents(focusName) {
    replace(
      agentsArea,
      state.agents.length
        ? h(
            "table",
            {},
            h("caption", { class: "visually-hidden" }, `Agents of ${org.name}`),
            h("thead", {}, h("tr", {}, ["Agent", "Default model", "Chains", "Voice", ...(canChange ? ["Actions"] : [])].map((c) => h("th", { scope: "col" }, c)))),
            h(
              "tbody",
              {},
              state.agents.map((a) =>
                h(
                  "tr",
                  { dataset: { agent: a.name } },
                  h("th", { scope: "row" }, a.name),
                  h("td", {}, a.default_model ? h("code", {}, a.default_model) : h("span", { class: "muted" }, "the org's")),
                  h("td", {}, chainList(a.chains)),
                  h("td", {}, voiceSummary(a.voice_settings)),
                  canChange &&
                  h(
                    "td",
                    { class: "actions" },
                    h("button", { type: "button", class: "secondary", dataset: { action: "edit" }, onclick: () => edit(a) }, "Edit"),
                    h("button", { type: "button", class: "danger", dataset: { action: "delete" }, onclick: () => remove(a) }, "Delete"),
                  ),
                ),
              ),
            ),
          )
        : h("p", { class: "empty" }, "No agents yet."),
    );
    if (focusName !== undefined) {
      const row = agentsArea.querySelector(`tr[data-agent="${CSS.escape(focusName)}"] button`);
      (row || heading).focus();
    }
  }

  function renderAgentForm() {
    const agent = state.editing;
    const title = agent ? `Edit agent ${agent.name}` : "New agent";
    const form = h("form", { novalidate: true, class: "agent-form", "aria-labelledby": "agent-form-title" });
    const nameField = field({
      label: "Name",
      name: "name",
      attrs: { type: "text", autocomplete: "off", spellcheck: "false", required: true, readonly: agent ? true : null },
    });
    nameField.querySelector("input").value = agent ? agent.name : "";
    const defaultField = field({
      label: "Default model",
      name: "default_model",
      hint: "Tried first for text tasks without a chain of their own. Empty: the org's routing.",
      attrs: { type: "text", autocomplete: "off", spellcheck: "false", placeholder: "provider/model" },
    });
    defaultField.querySelector("input").value = agent?.default_model || "";
    form.append(
      nameField,
      defaultField,
      h("fieldset", {}, h("legend", {}, "Chains (empty: the org's chain)"), chainEditors(catalog.intents, agent?.chains || {}, { preview, announce })),
      voiceFields(catalog.output_formats || [], agent?.voice_settings),
      formAlert(),
      h(
        "div",
        { class: "actions" },
        h("button", { type: "submit" }, agent ? "Save agent" : "Create agent"),
        agent ? h("button", { type: "button", class: "secondary", onclick: () => cancelEdit(agent) }, "Cancel") : null,
      ),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const els = form.elements;
      const chains = readChains(form);
      const defaultModel = els.default_model.value.trim();
      const voice = readVoice(form);
      const saved = await submitting(form, () =>
        agent
          ? api("PATCH", `${base}/agents/${seg(agent.name)}`, { chains, default_model: defaultModel, voice_settings: voice })
          : api("POST", `${base}/agents`, { name: els.name.value.trim(), chains, default_model: defaultModel || null, voice_settings: voice }),
      );
      if (!saved) return;
      state.agents = [...state.agents.filter((a) => a.name !== saved.name), saved].sort((a, b) => a.name.localeCompare(b.name));
      state.editing = null;
      renderAgentForm();
      renderAgents(saved.name);
      announce(`Agent ${saved.name} ${agent ? "saved" : "created"}.`);
    });
    replace(agentFormArea, h("h3", { id: "agent-form-title" }, title), form);
    return form;
  }

  function edit(agent) {
    state.editing = agent;
    const form = renderAgentForm();
    form.elements.default_model.focus();
  }

  function cancelEdit(agent) {
    state.editing = null;
    renderAgentForm();
    renderAgents(agent.name);
  }

  async function remove(agent) {
    const ok = await confirmAction({
      title: `Delete agent ${agent.name}?`,
      message: "Its chains and voice settings are deleted, and API keys bound to it stop working. This cannot be undone.",
      confirmLabel: "Delete",
    });
    if (!ok) return;
    try {
      await api("DELETE", `${base}/agents/${seg(agent.name)}`);
    } catch (error) {
      announce(`Could not delete agent ${agent.name}: ${error.message}`);
      return;
    }
    state.agents = state.agents.filter((a) => a.name !== agent.name);
    if (state.editing?.name === agent.name) {
      state.editing = null;
      renderAgentForm();
    }
    renderAgents("");
    announce(`Agent ${agent.name} deleted.`);
  }

  renderAgents();
  if (canChange) renderAgentForm();
  return heading;
}

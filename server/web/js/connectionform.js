// The "Add a connection" form of the AI Connections page: provider, name, base URL, key and
// models, with hints that follow the chosen provider. The key is sent once and never shown.

import { api } from "./api.js";
import { h, splitList } from "./dom.js";
import { field, formAlert, submitting } from "./forms.js";

/** `llama-3-70b:text,tools,json, mistral-7b` → ["llama-3-70b:text,tools,json", "mistral-7b"]:
 * a capability (the catalog's list) after a comma belongs to the model before it (the server
 * reads `ID:cap,cap`). */
export function modelSpecs(text, capabilities) {
  const known = new Set(capabilities);
  const out = [];
  for (const token of splitList(text)) {
    const last = out.length ? out[out.length - 1] : "";
    if (known.has(token.toLowerCase()) && last.includes(":")) out[out.length - 1] = `${last},${token}`;
    else out.push(token);
  }
  return out;
}

/** The section; `added(connection)` runs after the API created one under `${base}/connections`.
 * `title` and `id` tell two such sections on one page apart (the org's and the platform's). */
export function addConnectionSection({ catalog, providers, base, added, title = "Add a connection", id = "add" }) {
  const form = h("form", { novalidate: true, class: id === "add" ? "add-connection" : `${id}-connection`, "aria-labelledby": `${id}-title` });
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
    hint: "Model ids this connection serves, separated by spaces or commas, each with its capabilities after a colon: llama-3-70b:text,tools,json (text when none). Empty: whatever the provider lists.",
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
        : `Optional: "${base === "/platform" ? "platform" : "default"}" when empty. Give each key of the same provider its own name.`,
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
    const body = { provider: els.provider.value, models: modelSpecs(els.models.value, catalog.capabilities) };
    if (els.name.value.trim()) body.name = els.name.value.trim();
    if (els.base_url.value.trim()) body.base_url = els.base_url.value.trim();
    if (els.key.value) body.key = els.key.value;
    const created = await submitting(form, () => api("POST", `${base}/connections`, body));
    if (!created) return;
    form.reset();
    adapt();
    await added(created);
  });
  return h("section", { "aria-labelledby": `${id}-title` }, h(base === "/platform" ? "h3" : "h2", { id: `${id}-title` }, title), form);
}

// The per-intent chain editor shared by the routing matrix and the agents: one text field per
// intent, model refs separated by commas, primary first.

import { h, splitList } from "./dom.js";
import { field } from "./forms.js";

/** Fields for every intent of the catalog, filled from `chains` ({intent: [refs]}). */
export function chainFields(intents, chains = {}, { fallbackHint = false } = {}) {
  return intents.map((intent) => {
    const needs = `needs ${intent.capabilities.join(" + ")}`;
    const fallback = fallbackHint && intent.id !== "chat" && intent.capabilities.includes("text");
    const hint = fallback ? `${needs}; empty: uses the chat chain` : needs;
    const f = field({
      label: intent.id,
      name: `chain-${intent.id}`,
      param: `chains.${intent.id}`,
      hint,
      attrs: { type: "text", spellcheck: "false", autocomplete: "off", placeholder: "provider/model, provider/model" },
    });
    f.querySelector("input").value = (chains[intent.id] || []).join(", ");
    f.querySelector("input").dataset.intent = intent.id;
    return f;
  });
}

/** {intent: [refs]} for every intent field in `form`; an empty list removes that intent's chain. */
export function readChains(form) {
  const chains = {};
  for (const input of form.querySelectorAll("input[data-intent]")) chains[input.dataset.intent] = splitList(input.value);
  return chains;
}

/** A compact read-only view of chains. */
export function chainList(chains) {
  const entries = Object.entries(chains || {});
  if (!entries.length) return h("span", { class: "muted" }, "none");
  return h(
    "dl",
    { class: "chains" },
    entries.map(([intent, refs]) => [h("dt", {}, intent), h("dd", {}, refs.join(" → "))]),
  );
}

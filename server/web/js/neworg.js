// What the page shows when the caller has no organisation: the operator may create one; anyone
// else is told to ask for an invite.

import { api } from "./api.js";
import { h } from "./dom.js";
import { field, formAlert, submitting } from "./forms.js";

/** Nodes for the page. `created(org)` runs after the operator created one. */
export function noOrgPage({ me, catalog, created }) {
  const heading = h("h1", { tabindex: "-1" }, me.operator ? "Create an organisation" : "No organisation yet");
  queueMicrotask(() => heading.focus());
  if (!me.operator) {
    return [heading, h("p", { class: "empty" }, "You are not a member of any organisation on this server. Ask an owner of one to invite you.")];
  }
  const form = h("form", { novalidate: true });
  form.append(
    field({ label: "Organisation name", name: "name", attrs: { type: "text", required: true, autocomplete: "organization" } }),
    field({
      label: "Tier",
      name: "tier",
      control: "select",
      options: catalog.tiers.map((t) => ({ value: t, label: t, selected: t === "pro" })),
    }),
    formAlert(),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Create organisation")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const org = await submitting(form, () => api("POST", "/orgs", { name: form.elements.name.value.trim(), tier: form.elements.tier.value }));
    if (org) await created(org);
  });
  return [heading, h("p", {}, "This server has no organisation yet. Connections, routing and agents belong to one."), form];
}

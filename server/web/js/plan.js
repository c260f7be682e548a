// The org's plan on its AI settings page: its tier, what it may route to and the BYOK override.
// Every reader sees them; the server's operator changes them here (PATCH /admin/v1/orgs/{org}
// with tier and byok_override, the operator's alone: server/access/policy.py FIELD_PERMISSIONS).
// An org changes its own tier by subscribing through checkout (docs/billing.md#changing-an-orgs-tier).
// A downgrade deletes nothing: connections the tier does not allow are skipped, not removed.

import { OPERATOR } from "./access.js";
import { api, seg } from "./api.js";
import { h, replace } from "./dom.js";
import { field, formAlert, submitting } from "./forms.js";
import { tierFlags } from "./platformoffer.js";

/** The section: the tier flags, and for the operator the form that changes them. */
export function planSection({ org, offer, catalog, access, announce }) {
  const base = `/orgs/${seg(org.id)}`;
  const flags = h("div", { class: "plan-flags" }, tierFlags(offer));
  const section = h("section", { "aria-labelledby": "plan-title", class: "plan" }, h("h2", { id: "plan-title", class: "visually-hidden" }, "Plan"), flags);
  if (!access.can(OPERATOR)) {
    section.append(
      h("p", { class: "hint plan-how" }, "To change the plan, an owner subscribes on the Billing page; only the server's operator can set a tier by hand."),
    );
    return section;
  }
  const form = h("form", { novalidate: true, class: "plan-form", "aria-label": "Change the plan" });
  const tierField = field({
    label: "Tier",
    name: "tier",
    control: "select",
    hint: "A downgrade deletes nothing: connections the tier does not allow are skipped until an upgrade.",
    options: catalog.tiers.map((t) => ({ value: t, label: t, selected: t === offer.tier })),
  });
  const overrideField = field({
    label: "BYOK override",
    name: "byok_override",
    control: "select",
    hint: "On: the org keeps its own keys (BYOK) whatever its tier.",
    options: [
      { value: "off", label: "off: the tier decides", selected: !offer.byok_override },
      { value: "on", label: "on: BYOK whatever the tier", selected: offer.byok_override },
    ],
  });
  form.append(tierField, overrideField, formAlert(), h("div", { class: "actions" }, h("button", { type: "submit" }, "Save plan")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { tier: form.elements.tier.value, byok_override: form.elements.byok_override.value === "on" };
    const saved = await submitting(form, () => api("PATCH", base, body));
    if (!saved) return;
    replace(flags, tierFlags(await api("GET", `${base}/platform-connections`)));
    announce(`Plan saved: tier ${saved.tier}, BYOK override ${saved.byok_override ? "on" : "off"}.`);
  });
  section.append(form);
  return section;
}

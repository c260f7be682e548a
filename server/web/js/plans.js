// The "Plans" page: the tiers side by side (`GET /admin/v1/plans`, any signed-in caller), what
// each may route to and what it charges, the org's current tier highlighted, and per tier this
// server sells a "Choose" button that starts a subscription checkout (checkout.js; the
// `billing` permission). Without Stripe the page says purchases are off instead.

import { BILLING } from "./access.js";
import { api } from "./api.js";
import { checkoutButton, purchasesOffNote } from "./checkout.js";
import { h, replace } from "./dom.js";
import { usd } from "./money.js";
import { section } from "./section.js";

const yes = (allowed) => (allowed ? "yes" : "no");
const ROWS = [
  ["Platform models", (t) => yes(t.platform_allowed)],
  ["BYOK (your own keys)", (t) => yes(t.byok_allowed)],
  ["Private endpoints", (t) => yes(t.private_allowed)],
  ["Markup on platform models", (t) => t.markup],
  ["BYOK per-request charge", (t) => (t.byok_surcharge ? `${t.byok_surcharge} of the notional price` : "none")],
  ["Platform voice fee", (t) => (t.voice_fee_micro_usd === null ? "none" : `${usd(t.voice_fee_micro_usd)}/min`)],
  ["Max connections", (t) => (t.max_connections === null ? "no limit" : String(t.max_connections))],
  ["Included credits per period", (t) => (t.included_credits_micro_usd ? usd(t.included_credits_micro_usd) : "none")],
  ["Grace period after a failed payment", (t) => `${t.grace_period_days} days, then ${t.fallback_tier}`],
];

export async function plansPage(root, context) {
  const heading = h("h1", { tabindex: "-1" }, "Plans");
  const body = h("section", { class: "plans", "aria-labelledby": "plans-title" });
  replace(
    root,
    heading,
    h("p", { class: "lead" }, `What each plan may route to and what it charges. ${context.org.name}'s current plan is highlighted.`),
    body,
  );
  await section(body, "plans-title", "Compare plans", () => build(context));
  return heading;
}

async function build({ org, access }) {
  const [plans, orgs] = await Promise.all([api("GET", "/plans"), api("GET", "/orgs")]);
  const current = orgs.find((o) => o.id === org.id)?.tier;
  const alert = h("p", { class: "error form-error", role: "alert" });
  const mayBuy = access.can(BILLING);
  const note = h("div", { class: "plan-note" });
  const showOff = () => replace(note, purchasesOffNote());
  if (!plans.purchases) showOff();
  else if (!mayBuy) replace(note, h("p", { class: "hint" }, "Choosing a plan needs the billing permission: owners and the billing role."));
  const cls = (t) => (t.tier === current ? "current" : null);
  const choose = (t) => {
    if (t.tier === current) return h("strong", {}, "Current plan");
    if (!plans.purchases || !mayBuy) return null;
    if (!t.subscribable) return h("span", { class: "muted" }, "Not sold here");
    return checkoutButton(org, `Choose ${t.tier}`, { kind: "subscription", tier: t.tier }, { alert, off: showOff });
  };
  const table = h(
    "table",
    { class: "plans-compare" },
    h("caption", { class: "visually-hidden" }, `Plans compared; ${org.name} is on ${current || "an unknown plan"}`),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { scope: "col" }, "Plan"),
        plans.tiers.map((t) =>
          h("th", { scope: "col", class: cls(t), dataset: { tier: t.tier }, "aria-current": t.tier === current ? "true" : null }, t.tier, t.tier === current ? [" ", h("span", { class: "badge badge-ok" }, "current")] : null),
        ),
      ),
    ),
    h(
      "tbody",
      {},
      ROWS.map(([label, cell]) => h("tr", {}, h("th", { scope: "row" }, label), plans.tiers.map((t) => h("td", { class: cls(t) }, cell(t))))),
      h("tr", { class: "choose" }, h("th", { scope: "row" }, h("span", { class: "visually-hidden" }, "Choose")), plans.tiers.map((t) => h("td", { class: cls(t) }, choose(t)))),
    ),
  );
  return [note, h("div", { class: "table-wrap" }, table), alert];
}

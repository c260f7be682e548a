// The Billing page's "Buy credits" section: the credit packs on sale (`GET /admin/v1/plans`),
// each with a button that starts a Stripe checkout and redirects there (checkout.js). When the
// server has no Stripe key it says so plainly instead, and on the return from Stripe's page it
// says what happens next (the credits arrive with Stripe's webhook).

import { api } from "./api.js";
import { checkoutButton, checkoutReturn, purchasesOffNote } from "./checkout.js";
import { h, replace } from "./dom.js";
import { usd } from "./money.js";
import { section } from "./section.js";

export function buySection(el, org) {
  const returned = checkoutReturn();
  return section(el, "buy-title", "Buy credits", async () => [h("p", { class: "status", role: "status" }, returned), await packs(org)]);
}

async function packs(org) {
  const plans = await api("GET", "/plans");
  if (!plans.purchases) return purchasesOffNote();
  if (!plans.credit_packs.length) return h("p", { class: "empty" }, "No credit packs are on sale on this server.");
  const alert = h("p", { class: "error form-error", role: "alert" });
  const holder = h("div", {});
  const off = () => replace(holder, purchasesOffNote());
  replace(
    holder,
    h("p", { class: "hint" }, "Paid by card on Stripe's page; the credits are added once Stripe confirms the payment."),
    h(
      "table",
      { class: "buy-packs" },
      h("thead", {}, h("tr", {}, ["Pack", "Price", "Credits", ""].map((c, i) => h("th", { scope: "col", class: i === 1 || i === 2 ? "num" : null }, c)))),
      h(
        "tbody",
        {},
        plans.credit_packs.map((p) =>
          h(
            "tr",
            { dataset: { pack: p.id } },
            h("th", { scope: "row", id: `pack-${p.id}` }, p.name),
            h("td", { class: "num" }, usd(p.price_cents * 10_000)),
            h("td", { class: "num" }, usd(p.credits_micro_usd)),
            h("td", {}, checkoutButton(org, "Buy credits", { kind: "credits", pack: p.id }, { alert, off, attrs: { "aria-describedby": `pack-${p.id}` } })),
          ),
        ),
      ),
    ),
    alert,
  );
  return holder;
}

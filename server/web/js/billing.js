// The "Billing" page: the org's credits (balance, held, available and the open holds), the
// grants (the operator may grant from here), what usage cost over a window by billing source,
// provider or agent (billingcosts.js), the ledger a page at a time (billingledger.js), and credit
// packs to buy through Stripe, or a plain note that purchases are off (billingbuy.js).
// Reading needs the `billing` permission (owners, the billing role, the operator: app.js hides
// the page from others); granting is the operator's alone. Amounts arrive as exact decimals
// beside integer micro-USD and are shown from the integers (money.js), never through floats.

import { OPERATOR } from "./access.js";
import { api, seg } from "./api.js";
import { buySection } from "./billingbuy.js";
import { costsSection } from "./billingcosts.js";
import { ledgerSection } from "./billingledger.js";
import { h, replace, when } from "./dom.js";
import { field, formAlert, submitting } from "./forms.js";
import { usd } from "./money.js";
import { section } from "./section.js";

const GRANTS_SHOWN = 10;

export async function billingPage(root, context) {
  const { org, access } = context;
  const base = `/orgs/${seg(org.id)}/billing`;
  const heading = h("h1", { tabindex: "-1" }, "Billing");
  const credits = h("section", { class: "credits", "aria-labelledby": "credits-title" });
  const buy = h("section", { class: "buy", "aria-labelledby": "buy-title" });
  const grants = h("section", { class: "grants", "aria-labelledby": "grants-title" });
  const costs = h("section", { class: "costs", "aria-labelledby": "costs-title" });
  const ledger = h("section", { class: "ledger", "aria-labelledby": "ledger-title" });
  replace(
    root,
    heading,
    h(
      "p",
      { class: "lead" },
      `${org.name}'s credits pay for platform-billed work: Patchbay's own connections, and any per-request charge of the org's tier. ` +
        "A request first holds what it may cost, then is charged what it did cost; the rest of the hold is given back.",
    ),
    credits,
    buy,
    grants,
    costs,
    ledger,
  );
  const ledgerPanel = ledgerSection(ledger, base);
  const grantsPanel = grantsSection(grants, base, access.can(OPERATOR), async () => {
    await Promise.all([creditsPanel(), grantsPanel.load(), ledgerPanel.load()]);
  });
  const creditsPanel = () => section(credits, "credits-title", "Credits", () => showCredits(base));
  await Promise.all([creditsPanel(), buySection(buy, org), grantsPanel.load(), costsSection(costs, base), ledgerPanel.load()]);
  return heading;
}

async function showCredits(base) {
  const found = await api("GET", `${base}/balance`);
  const figure = (key, label, micro, hint) =>
    h("div", { class: "figure", dataset: { figure: key } }, h("dt", {}, label), h("dd", {}, h("data", { value: micro }, usd(micro))), h("p", { class: "hint" }, hint));
  return [
    h(
      "dl",
      { class: "figures" },
      figure("balance", "Balance", found.balance_micro_usd, "Granted and bought, less what was charged."),
      figure("held", "Held", found.held_micro_usd, `${found.open_holds} open ${found.open_holds === 1 ? "hold" : "holds"} for requests in flight.`),
      figure("available", "Available", found.available_micro_usd, "What a new request may hold."),
    ),
    h("h3", {}, "Open holds"),
    found.holds.length ? holdsTable(found.holds) : h("p", { class: "empty" }, "No open holds: nothing is reserved right now."),
  ];
}

function holdsTable(holds) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "holds" },
      h("thead", {}, h("tr", {}, ["Hold", "For", "Amount", "Since", "Released by"].map((c, i) => h("th", { scope: "col", class: i === 2 ? "num" : null }, c)))),
      h(
        "tbody",
        {},
        holds.map((hold) =>
          h(
            "tr",
            { dataset: { hold: hold.hold_id } },
            h("td", {}, h("code", {}, hold.hold_id)),
            h("td", {}, [hold.details.segment, hold.details.intent].filter(Boolean).join(" · ") || "-"),
            h("td", { class: "num" }, usd(hold.amount_micro_usd)),
            h("td", {}, when(hold.created_at)),
            h("td", {}, when(hold.expires_at)),
          ),
        ),
      ),
    ),
  );
}

/** The recent grants, and for the operator a form that grants, idempotently. */
function grantsSection(el, base, mayGrant, granted) {
  const status = h("p", { class: "status", role: "status" });
  const list = h("div", { class: "grant-list" });
  const form = mayGrant ? grantForm(base, status, granted) : null;
  replace(
    el,
    h("h2", { id: "grants-title" }, "Grants"),
    h("p", { class: "hint" }, mayGrant ? "Credits you give this org. Only the server's operator may grant." : "Credits the server's operator gave this org."),
    form,
    status,
    list,
  );
  const load = () =>
    section(list, "grants-list-title", "Recent grants", async () => {
      const page = await api("GET", `${base}/ledger?${new URLSearchParams({ kind: "grant", since: "3650d", limit: String(GRANTS_SHOWN) })}`);
      if (!page.entries.length) return h("p", { class: "empty" }, "No credits granted yet.");
      return h(
        "table",
        { class: "grants" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "When"), h("th", { scope: "col", class: "num" }, "Amount"), h("th", { scope: "col" }, "Reason"))),
        h(
          "tbody",
          {},
          page.entries.map((e) =>
            h("tr", { dataset: { entry: e.id } }, h("td", {}, when(e.created_at)), h("td", { class: "num" }, usd(e.amount_micro_usd)), h("td", {}, e.details.reason || "-")),
          ),
        ),
      );
    }, "h3");
  return { load };
}

function grantForm(base, status, granted) {
  const form = h("form", { novalidate: true, class: "grant-form" });
  form.append(
    field({ label: "Amount (USD)", name: "amount", hint: "Up to 6 decimal places, e.g. 25 or 0.50.", attrs: { inputmode: "decimal", autocomplete: "off", required: true } }),
    field({ label: "Reason", name: "reason", hint: "Kept in the ledger. Optional; no secrets.", attrs: { autocomplete: "off", maxlength: 500 } }),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Grant credits")),
    formAlert(),
  );
  // One key per amount and reason: a retry after a lost answer cannot grant twice.
  let key = null;
  let keyFor = null;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const amount = form.elements.amount.value.trim();
    const reason = form.elements.reason.value.trim();
    const values = JSON.stringify([amount, reason]);
    if (keyFor !== values) [key, keyFor] = [newKey(), values];
    status.textContent = "";
    const done = await submitting(form, () =>
      api("POST", `${base}/grants`, { amount, ...(reason ? { reason } : {}) }, { extraHeaders: { "Idempotency-Key": key } }),
    );
    if (!done) return;
    key = keyFor = null;
    form.reset();
    const verb = done.replayed ? "Already granted (the same request)" : "Granted";
    status.textContent = `${verb}: ${usd(done.entry.amount_micro_usd)}. Available now ${usd(done.balance.available_micro_usd)}.`;
    await granted();
  });
  return form;
}

function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `ui-${[...bytes].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

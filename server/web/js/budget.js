// Spend caps in the UI: the org's monthly budget (a section of the AI settings page) and each
// API key's monthly spend limit (a column, a create-form field and an edit form on the Keys
// page). Amounts are exact USD strings, as the admin API takes and returns them; the month is
// the calendar month in UTC (docs/billing.md#budgets-and-spend-limits).

import { BILLING } from "./access.js";
import { api, seg } from "./api.js";
import { h, replace } from "./dom.js";
import { field, formAlert, submitting } from "./forms.js";

/** "1.20 of 25.00 USD" (or "1.20 USD, no limit"). */
export function spendText(spent, limit) {
  return limit == null ? `${spent} USD, no limit` : `${spent} of ${limit} USD`;
}

/** An amount field: exact USD, empty for no cap. */
export function amountField({ label, name, hint }) {
  return field({
    label,
    name,
    hint,
    attrs: { type: "text", inputmode: "decimal", autocomplete: "off", spellcheck: "false", placeholder: "none" },
  });
}

/** The field's value for the API: the trimmed USD string, or null when empty. */
export function readAmount(input) {
  const text = input.value.trim();
  return text === "" ? null : text;
}

/** The org's monthly budget: shown to every reader, changed by those with the billing permission. */
export async function budgetSection({ org, access, announce }) {
  const base = `/orgs/${seg(org.id)}`;
  const section = h("section", { "aria-labelledby": "budget-title" }, h("h2", { id: "budget-title" }, "Monthly budget"));
  let budget;
  try {
    budget = await api("GET", `${base}/budget`);
  } catch (error) {
    if (!error.signIn) section.append(h("p", { class: "error", role: "alert" }, `Could not load the budget: ${error.message}`));
    return section;
  }
  const summary = h("p", { class: "budget-summary" });
  const show = (b) => {
    summary.textContent = `Charged in ${b.month} (UTC): ${spendText(b.spent_this_month, b.monthly_budget)}.`;
  };
  show(budget);
  section.append(
    h("p", {}, "What platform-paid and surcharged requests may be charged per calendar month (UTC). Past it, requests are refused with 402 budget_exceeded; requests that cost nothing are never refused."),
    summary,
  );
  if (!access.can(BILLING)) return section;
  const form = h("form", { novalidate: true, class: "budget-form" });
  const amount = amountField({ label: "Monthly budget (USD)", name: "monthly_budget", hint: "Exact USD, such as 250 or 99.50. Empty: no budget." });
  amount.querySelector("input").value = budget.monthly_budget || "";
  form.append(amount, formAlert(), h("div", { class: "actions" }, h("button", { type: "submit" }, "Save budget")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { monthly_budget: readAmount(form.elements.monthly_budget) };
    const saved = await submitting(form, () => api("PATCH", base, body));
    if (!saved) return;
    form.elements.monthly_budget.value = saved.monthly_budget || "";
    show(saved);
    announce(saved.monthly_budget == null ? "Budget removed." : `Budget set to ${saved.monthly_budget} USD a month.`);
  });
  section.append(form);
  return section;
}

/** The inline form that changes one key's spend limit; `saved(key)` gets the updated key. */
export function limitForm({ base, key, saved, cancel }) {
  const form = h("form", { novalidate: true, class: "limit-form", "aria-labelledby": "limit-form-title" });
  const amount = amountField({ label: "Monthly spend limit (USD)", name: "spend_limit", hint: "Exact USD. Empty: no limit of its own (the org's budget still applies)." });
  amount.querySelector("input").value = key.spend_limit || "";
  form.append(
    h("h3", { id: "limit-form-title" }, `Spend limit of “${key.name || key.prefix}”`),
    amount,
    formAlert(),
    h(
      "div",
      { class: "actions" },
      h("button", { type: "submit" }, "Save limit"),
      h("button", { type: "button", class: "secondary", onclick: cancel }, "Cancel"),
    ),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { spend_limit: readAmount(form.elements.spend_limit) };
    const updated = await submitting(form, () => api("PATCH", `${base}/api-keys/${seg(key.id)}`, body));
    if (updated) saved(updated);
  });
  return form;
}

/** Put `form` in `area` and focus its amount. */
export function openIn(area, form) {
  replace(area, form);
  form.elements[0].focus();
}

// The "Audit log" tab of the Activity page: who changed what in the org, with which credential,
// from which address, and when (`GET /orgs/{org}/audit`), filtered by time and action prefix.
// The audit log never holds a secret, so the page shows its details as they are.

import { api, seg } from "./api.js";
import { h, replace, when } from "./dom.js";
import { field, formAlert, submitting } from "./forms.js";

const SINCE = [
  { value: "24h", label: "Last 24 hours" },
  { value: "7d", label: "Last 7 days" },
  { value: "30d", label: "Last 30 days" },
  { value: "90d", label: "Last 90 days" },
];
const COLUMNS = ["When", "Who", "Credential", "Address", "Action", "Target", "Details"];

function details(values) {
  const entries = Object.entries(values || {});
  if (!entries.length) return h("span", { class: "muted" }, "—");
  return h(
    "dl",
    { class: "chains" },
    entries.map(([name, value]) => [h("dt", {}, name), h("dd", {}, typeof value === "string" ? value : JSON.stringify(value))]),
  );
}

/** Fill `panel` with the filters and the events; loads at once. */
export async function auditPanel(panel, { org }) {
  const base = `/orgs/${seg(org.id)}/audit`;
  const form = h("form", { novalidate: true, class: "filters audit-filters" });
  form.append(
    field({ label: "Since", name: "since", control: "select", options: SINCE.map((s) => ({ ...s, selected: s.value === "7d" })) }),
    field({
      label: "Action",
      name: "action",
      hint: "The start of an action name, such as connection or apikey.create. Empty: every action.",
      attrs: { type: "text", spellcheck: "false", autocomplete: "off", maxlength: "64" },
    }),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "secondary" }, "Show events")),
    formAlert(),
  );
  const results = h("div", { class: "table-wrap", "aria-live": "polite" });
  replace(panel, form, results);
  let loading = 0;

  async function load() {
    const ticket = ++loading;
    const params = new URLSearchParams({ since: form.elements.since.value, limit: "500" });
    const action = form.elements.action.value.trim();
    if (action) params.set("action", action);
    replace(results, h("p", { class: "muted" }, "Loading the audit log…"));
    const events = await submitting(form, () => api("GET", `${base}?${params}`));
    if (ticket !== loading) return;
    if (!events) {
      replace(results, h("p", { class: "muted" }, "No events shown: see the message above."));
      return;
    }
    if (!events.length) {
      replace(results, h("p", { class: "empty" }, action ? `No ${action}… events in this window.` : "No events in this window."));
      return;
    }
    replace(
      results,
      h(
        "table",
        { class: "audit" },
        h("caption", { class: "visually-hidden" }, `Audit log of ${org.name}, newest first`),
        h("thead", {}, h("tr", {}, COLUMNS.map((c) => h("th", { scope: "col" }, c)))),
        h(
          "tbody",
          {},
          events.map((e) =>
            h(
              "tr",
              { dataset: { event: e.action } },
              h("td", {}, when(e.at)),
              h("td", {}, e.actor),
              h("td", {}, e.credential || h("span", { class: "muted" }, "—")),
              h("td", {}, e.address || h("span", { class: "muted" }, "—")),
              h("td", {}, h("code", { class: "action" }, e.action)),
              h("td", {}, e.target_type, e.target_id ? h("span", { class: "muted" }, e.target_id) : null),
              h("td", {}, details(e.details)),
            ),
          ),
        ),
      ),
    );
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  await load();
}

// The "Requests" tab of the Activity page: the org's recent /v1 and realtime requests from the
// request log (`GET /orgs/{org}/requests`), failures and refusals included, with filters. A
// row opens to show its route trace; the request's content only when the org logs content.

import { api, seg } from "./api.js";
import { h, replace, when } from "./dom.js";
import { field, formAlert, submitting } from "./forms.js";
import { routeTrace } from "./trace.js";

const SINCE = [
  { value: "1h", label: "Last hour" },
  { value: "24h", label: "Last 24 hours" },
  { value: "7d", label: "Last 7 days" },
  { value: "30d", label: "Last 30 days" },
];
const STATUS = [
  { value: "", label: "Any" },
  { value: "error", label: "Failed or refused" },
  { value: "ok", label: "Succeeded" },
];
const COLUMNS = ["Time", "Key", "Model", "Status", "Error", "Latency", "Connection", "Tokens (in / out)", "Route"];
const count = new Intl.NumberFormat();

function statusCell(r) {
  const kind = r.outcome === "ok" ? "ok" : r.outcome === "error" ? "failed" : "disabled";
  return h("span", { class: `badge badge-${kind}` }, `${r.status} ${r.outcome}`);
}

function tokens(r) {
  if (r.input_tokens == null && r.output_tokens == null) return h("span", { class: "muted" }, "—");
  return `${count.format(r.input_tokens ?? 0)} / ${count.format(r.output_tokens ?? 0)}`;
}

function content(r) {
  if (!r.content) return null;
  return h(
    "div",
    { class: "logged-content" },
    h("h4", {}, "Request (content logging)"),
    h("pre", {}, r.content.request ?? ""),
    h("h4", {}, "Response"),
    h("pre", {}, r.content.response ?? ""),
  );
}

/** Fill `panel` with the filters and the list; loads at once. */
export async function requestsPanel(panel, { org }) {
  const base = `/orgs/${seg(org.id)}`;
  const keys = await api("GET", `${base}/api-keys`).catch(() => []);
  const form = h("form", { novalidate: true, class: "filters request-filters" });
  form.append(
    field({ label: "Since", name: "since", control: "select", options: SINCE.map((s) => ({ ...s, selected: s.value === "24h" })) }),
    field({ label: "Status", name: "status", control: "select", options: STATUS }),
    field({
      label: "Key",
      name: "key",
      control: "select",
      options: [{ value: "", label: "Any key" }, ...keys.map((k) => ({ value: k.id, label: k.name || k.prefix }))],
    }),
    field({ label: "Model", name: "model", hint: "Asked for or served.", attrs: { type: "text", spellcheck: "false", autocomplete: "off" } }),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "secondary" }, "Show requests")),
    formAlert(),
  );
  const results = h("div", { class: "table-wrap", "aria-live": "polite" });
  replace(panel, form, results);
  const open = new Set();
  let loading = 0;

  async function load() {
    const ticket = ++loading;
    const els = form.elements;
    const params = new URLSearchParams({ since: els.since.value, limit: "200" });
    if (els.status.value) params.set("status", els.status.value);
    if (els.key.value) params.set("key", els.key.value);
    if (els.model.value.trim()) params.set("model", els.model.value.trim());
    replace(results, h("p", { class: "muted" }, "Loading requests…"));
    const answer = await submitting(form, () => api("GET", `${base}/requests?${params}`));
    if (ticket !== loading) return;
    if (!answer) {
      replace(results, h("p", { class: "muted" }, "No requests shown: see the message above."));
      return;
    }
    render(answer.requests);
  }

  function render(rows) {
    if (!rows.length) {
      replace(results, h("p", { class: "empty" }, "No requests match. Requests show here about a second after they end."));
      return;
    }
    replace(
      results,
      h(
        "table",
        { class: "requests" },
        h("caption", { class: "visually-hidden" }, `Recent requests of ${org.name}, newest first`),
        h("thead", {}, h("tr", {}, COLUMNS.map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, rows.flatMap((r) => rowsFor(r, rows))),
      ),
    );
  }

  function rowsFor(r, rows) {
    const expanded = open.has(r.id);
    const detailId = `request-${r.id}`;
    const row = h(
      "tr",
      { class: `request outcome-${r.outcome}`, dataset: { requestId: r.id } },
      h("td", {}, when(r.created_at)),
      h("td", {}, r.key_name || h("span", { class: "muted" }, "—")),
      h("td", {}, r.model ? h("code", {}, r.model) : h("span", { class: "muted" }, "—"), r.surface ? h("span", { class: "muted" }, r.surface) : null),
      h("td", {}, statusCell(r)),
      h("td", {}, r.error_type || "", r.error_class ? h("span", { class: "muted" }, r.error_class) : null),
      h("td", { class: "num" }, r.latency_ms != null ? `${Math.round(r.latency_ms)} ms` : ""),
      h("td", {}, r.connection || h("span", { class: "muted" }, "none")),
      h("td", { class: "num" }, tokens(r)),
      h(
        "td",
        {},
        h(
          "button",
          {
            type: "button",
            class: "secondary",
            "aria-expanded": expanded ? "true" : "false",
            "aria-controls": detailId,
            onclick: () => {
              if (expanded) open.delete(r.id);
              else open.add(r.id);
              render(rows);
              results.querySelector(`tr[data-request-id="${CSS.escape(r.id)}"] button`)?.focus();
            },
          },
          expanded ? "Hide route" : "Show route",
        ),
      ),
    );
    if (!expanded) return [row];
    return [row, h("tr", { class: "detail", id: detailId }, h("td", { colspan: COLUMNS.length }, routeTrace(r.route), content(r)))];
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  await load();
}

// The "Conformance" page: what the harness measured for the org's models (pass rate per
// capability, latency, cost), charted per model and listed in a table, with the org's gates.
// Reads `GET /orgs/{org}/conformance`; a person who may configure the org can run the suite
// (`POST .../conformance/runs`) and turn the gates on or off (`PATCH /orgs/{org}`).
// docs/conformance.md says what the cases are and how gates route.

import { CONFIGURE } from "./access.js";
import { api, seg } from "./api.js";
import { barChart } from "./chart.js";
import { h, replace, when } from "./dom.js";
import { formAlert, submitting } from "./forms.js";
import { usd } from "./money.js";

const percent = (v) => `${Math.round(v * 1000) / 10} %`;
const ms = (v) => (v === null || v === undefined ? "–" : `${Math.round(v)} ms`);
const GATE_TEXT = { pass: "pass", fail: "fail", stale: "stale: run again" };

export async function conformancePage(root, { org, access }) {
  const base = `/orgs/${seg(org.id)}`;
  const heading = h("h1", { tabindex: "-1" }, "Conformance");
  const status = h("p", { class: "status", role: "status" });
  const results = h("div", { class: "conformance-results" });
  const gates = h("div", { class: "conformance-gates" });
  const runForm = h("form", { novalidate: true, class: "conformance-run" }, h("div", { class: "actions" }, h("button", { type: "submit" }, "Run the suite")), formAlert());
  replace(
    root,
    heading,
    h(
      "p",
      { class: "lead" },
      "How well each model of your connections does what routing relies on: tool calls, JSON-schema output, refusals, " +
        "and vision or audio where claimed, with latency and cost. With gates on, a request that needs a capability " +
        "routes only to models that passed it.",
    ),
    gates,
    access.can(CONFIGURE) ? runForm : null,
    status,
    results,
  );

  async function load() {
    results.setAttribute("aria-busy", "true");
    const report = await api("GET", `${base}/conformance`);
    results.removeAttribute("aria-busy");
    showGates(report);
    if (!report.results.length) {
      replace(results, h("p", { class: "empty" }, "No results yet. Run the suite to measure this org's models (each case is a real, small call)."));
      return;
    }
    replace(results, charts(report.results), table(report.results));
  }

  function showGates(report) {
    const on = report.conformance_gates;
    const toggle = access.can(CONFIGURE)
      ? h("button", { type: "button", class: "secondary", onclick: () => setGates(!on) }, on ? "Turn gates off" : "Turn gates on")
      : null;
    const limits = Object.entries(report.conformance_thresholds).map(([cap, t]) => `${cap} ≥ ${percent(t)}`).join(", ");
    replace(gates, h("p", {}, h("strong", {}, `Gates are ${on ? "on" : "off"}.`), ` Thresholds: ${limits}. `, toggle));
  }

  async function setGates(on) {
    try {
      await api("PATCH", base, { conformance_gates: on });
      status.textContent = `Gates turned ${on ? "on" : "off"}.`;
      await load();
    } catch (error) {
      status.textContent = `Could not change the gates: ${error.message}`;
    }
  }

  runForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.textContent = "Running the suite… this makes real calls and may take a minute.";
    results.setAttribute("aria-busy", "true");
    const run = await submitting(runForm, () => api("POST", `${base}/conformance/runs`, {}));
    results.removeAttribute("aria-busy");
    if (!run) {
      status.textContent = "The run failed; see the message above.";
      return;
    }
    const failed = run.entries.filter((e) => e.gate !== "pass").length;
    // The table first, then the sentence that announces it: a reader (or a screen reader) told
    // the run finished finds its results already on the page.
    await load();
    status.textContent = `Measured ${run.entries.length} model capabilities; ${failed} below threshold.`;
  });

  await load();
  return heading;
}

function label(r) {
  return `${r.connection}/${r.model}`;
}

function charts(rows) {
  const fresh = rows.filter((r) => !r.stale);
  const models = [...new Map(fresh.map((r) => [label(r), r])).keys()];
  const perModel = (pick) => models.map((m) => fresh.filter((r) => label(r) === m)).map(pick);
  const median = (values) => {
    const v = values.filter((x) => x !== null && x !== undefined).sort((a, b) => a - b);
    return v.length ? v[Math.floor(v.length / 2)] : null;
  };
  return h(
    "section",
    { "aria-labelledby": "conformance-charts-title" },
    h("h2", { id: "conformance-charts-title" }, "Per model"),
    barChart({
      rows: fresh.map((r) => ({ label: `${label(r)} · ${r.capability}`, value: r.rate, series: r.gate === "pass" ? "c2" : "c1" })),
      title: "Pass rate per model and capability",
      measure: "passed",
      format: percent,
      max: 1,
    }),
    barChart({
      rows: perModel((rs) => ({ label: label(rs[0]), value: median(rs.map((r) => r.ttft_ms)), series: "c0" })),
      title: "Time to first token per model (median)",
      measure: "",
      format: ms,
    }),
    barChart({
      rows: perModel((rs) => ({ label: label(rs[0]), value: rs.reduce((s, r) => s + r.cost_micro_usd, 0), series: "c3" })),
      title: "Cost of the suite per model (list price)",
      measure: "",
      format: (n) => usd(Math.round(n)),
    }),
  );
}

function table(rows) {
  const head = ["Connection / model", "Capability", "Passed", "Rate", "Threshold", "Gate", "TTFT", "Total", "Tokens/s", "Cost", "Measured"];
  return h(
    "section",
    { "aria-labelledby": "conformance-table-title" },
    h("h2", { id: "conformance-table-title" }, "Results"),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "conformance" },
        h("thead", {}, h("tr", {}, head.map((c) => h("th", { scope: "col" }, c)))),
        h(
          "tbody",
          {},
          rows.map((r) =>
            h(
              "tr",
              { dataset: { gate: r.gate, capability: r.capability } },
              h("th", { scope: "row" }, label(r)),
              h("td", {}, r.capability),
              h("td", { class: "num" }, `${r.passed}/${r.cases}`),
              h("td", { class: "num" }, percent(r.rate)),
              h("td", { class: "num" }, percent(r.threshold)),
              h("td", { class: `gate gate-${r.gate}` }, GATE_TEXT[r.gate] || r.gate),
              h("td", { class: "num" }, ms(r.ttft_ms)),
              h("td", { class: "num" }, ms(r.total_ms)),
              h("td", { class: "num" }, r.tokens_per_s === null ? "–" : Math.round(r.tokens_per_s)),
              h("td", { class: "num" }, usd(r.cost_micro_usd)),
              h("td", {}, when(r.measured_at)),
            ),
          ),
        ),
      ),
    ),
  );
}

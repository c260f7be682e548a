// The "Usage" page: what an org consumed in a window, by where the cost lands (billing source)
// and kind of work (segment) with what it cost, then segments per UTC day as a chart. Both come
// from the admin API's usage summary (`GET /orgs/{org}/usage`); cost is what each segment was
// charged when it was settled (integer micro-USD, shown exactly by money.js).

import { api, seg } from "./api.js";
import { dayChart, utcDays } from "./chart.js";
import { h, replace } from "./dom.js";
import { field, formAlert, submitting } from "./forms.js";
import { usd } from "./money.js";

const WINDOW_KEY = "patchbay.usageWindow";
const WINDOWS = [
  { value: "24h", label: "Last 24 hours" },
  { value: "7d", label: "Last 7 days" },
  { value: "30d", label: "Last 30 days" },
];
// The API orders groups alphabetically; the page keeps one fixed order for table and chart.
const SOURCES = ["platform", "byok", "private"];
const SEGMENTS = ["llm", "stt", "tts"];
const count = new Intl.NumberFormat();
const MEASURES = [
  { key: "segments", label: "Segments", show: (n) => count.format(n) },
  { key: "input_tokens", label: "Input tokens", show: (n) => count.format(n) },
  { key: "output_tokens", label: "Output tokens", show: (n) => count.format(n) },
  { key: "audio_seconds", label: "Audio (min:sec)", show: (n) => h("data", { value: Math.round(n * 1000) / 1000 }, minutesSeconds(n)) },
  { key: "characters", label: "Characters", show: (n) => count.format(n) },
  { key: "cost_micro_usd", label: "Cost (USD)", show: (n) => h("data", { value: n }, usd(n)) },
];

/** 4321.6 seconds as "72:02" (rounded to the second; minutes grouped as numbers are). */
function minutesSeconds(seconds) {
  const whole = Math.round(seconds);
  return `${count.format(Math.floor(whole / 60))}:${String(whole % 60).padStart(2, "0")}`;
}

export async function usagePage(root, { org }) {
  const base = `/orgs/${seg(org.id)}/usage`;
  const stored = sessionStorage.getItem(WINDOW_KEY);
  const chosen = WINDOWS.some((w) => w.value === stored) ? stored : WINDOWS[0].value;
  const heading = h("h1", { tabindex: "-1" }, "Usage");
  const status = h("p", { class: "status", role: "status" });
  const results = h("div", { class: "usage-results" });
  const form = h("form", { novalidate: true, class: "usage-window" });
  form.append(
    field({
      label: "Window",
      name: "window",
      control: "select",
      options: WINDOWS.map((w) => ({ value: w.value, label: w.label, selected: w.value === chosen })),
    }),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "secondary" }, "Refresh")),
    formAlert(),
  );
  replace(
    root,
    heading,
    h(
      "p",
      { class: "lead" },
      `What ${org.name} used, by where the cost lands: platform (Patchbay's own keys), byok (the org's keys) or ` +
        "private (the org's endpoints), and what it cost. Recorded about a second after each request.",
    ),
    form,
    status,
    results,
  );

  let loading = 0;

  const summary = (since, groupBy) => api("GET", `${base}?${new URLSearchParams({ since, group_by: groupBy })}`);

  async function load({ announce = false } = {}) {
    const ticket = ++loading;
    const since = form.elements.window.value;
    const label = WINDOWS.find((w) => w.value === since)?.label || since;
    sessionStorage.setItem(WINDOW_KEY, since);
    results.setAttribute("aria-busy", "true");
    status.textContent = "";
    const answers = await submitting(form, async () => {
      try {
        return await Promise.all([summary(since, "billing_source,segment"), summary(since, "day,billing_source")]);
      } catch (error) {
        if (ticket === loading) throw error;
        return null; // a newer window was asked for meanwhile; its answer is what counts
      }
    });
    if (ticket !== loading) return;
    results.removeAttribute("aria-busy");
    if (!answers) {
      replace(results);
      return;
    }
    const [bySource, byDay] = answers;
    if (!bySource.entries.length) {
      replace(results, h("p", { class: "empty" }, "No usage in this window. Requests and voice turns show here about a second after they end."));
      if (announce) status.textContent = `No usage in the ${label.toLowerCase()}.`;
      return;
    }
    const total = sum(bySource.entries);
    replace(
      results,
      h(
        "section",
        { "aria-labelledby": "usage-table-title" },
        h("h2", { id: "usage-table-title" }, "By billing source and segment"),
        h("div", { class: "table-wrap" }, table(bySource.entries, total, label)),
      ),
      h("section", { "aria-labelledby": "usage-chart-title" }, h("h2", { id: "usage-chart-title" }, "Segments per day (UTC)"), chart(byDay, label)),
    );
    if (announce) status.textContent = `${label}: ${count.format(total.segments)} segments, ${usd(total.cost_micro_usd)}.`;
  }

  function table(entries, total, label) {
    const rows = [...entries].sort((a, b) => order(SOURCES, a.group.billing_source, b.group.billing_source) || order(SEGMENTS, a.group.segment, b.group.segment));
    const cells = (totals) => MEASURES.map((m) => h("td", { class: "num", dataset: { measure: m.key } }, m.show(totals[m.key] ?? 0)));
    return h(
      "table",
      { class: "usage" },
      h("caption", { class: "visually-hidden" }, `Usage of ${org.name}, ${label.toLowerCase()}, by billing source and segment`),
      h(
        "thead",
        {},
        h("tr", {}, h("th", { scope: "col" }, "Billing source"), h("th", { scope: "col" }, "Segment"), MEASURES.map((m) => h("th", { scope: "col", class: "num" }, m.label))),
      ),
      h(
        "tbody",
        {},
        rows.map((e) =>
          h(
            "tr",
            { dataset: { source: e.group.billing_source ?? "", segment: e.group.segment ?? "" } },
            h("th", { scope: "row" }, e.group.billing_source ?? "unknown"),
            h("td", {}, e.group.segment ?? "unknown"),
            cells(e.totals),
          ),
        ),
      ),
      h("tfoot", {}, h("tr", { class: "total" }, h("th", { scope: "row", colspan: 2 }, "Total"), cells(total))),
    );
  }

  function chart(byDay, label) {
    const perDay = new Map();
    for (const e of byDay.entries) {
      const day = e.group.day;
      if (!perDay.has(day)) perDay.set(day, new Map());
      perDay.get(day).set(e.group.billing_source ?? "unknown", e.totals.segments);
    }
    const days = [...new Set([...utcDays(byDay.since, byDay.until), ...perDay.keys()])].sort();
    const present = new Set(byDay.entries.map((e) => e.group.billing_source ?? "unknown"));
    const keys = [...SOURCES.filter((s) => present.has(s)), ...[...present].filter((s) => !SOURCES.includes(s)).sort()];
    return dayChart({
      days,
      series: keys.map((key) => ({ key, label: key })),
      value: (day, key) => perDay.get(day)?.get(key) ?? 0,
      measure: "segments",
      title: `Segments per UTC day by billing source, ${label.toLowerCase()}`,
      format: (n) => count.format(n),
    });
  }

  form.elements.window.addEventListener("change", () => form.requestSubmit());
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load({ announce: true });
  });

  await load();
  return heading;
}

function sum(entries) {
  const total = {};
  for (const e of entries) for (const m of MEASURES) total[m.key] = (total[m.key] ?? 0) + (e.totals[m.key] ?? 0);
  return total;
}

/** Known values in `known` order, then the rest alphabetically. */
function order(known, a, b) {
  const rank = (v) => (known.includes(v) ? known.indexOf(v) : known.length);
  return rank(a) - rank(b) || String(a ?? "").localeCompare(String(b ?? ""));
}

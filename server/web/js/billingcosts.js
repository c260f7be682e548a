// The Billing page's costs: what the org's usage was charged over a window, by billing source,
// provider or agent, as a table (largest first) and a chart per UTC day
// (`GET /orgs/{org}/billing/costs`). Billing sources keep their own chart colours; providers and
// agents take the five largest a colour each, and the rest share "other".

import { api } from "./api.js";
import { dayChart, utcDays } from "./chart.js";
import { h, replace } from "./dom.js";
import { field, formAlert, submitting } from "./forms.js";
import { usd } from "./money.js";

const WINDOW_KEY = "patchbay.costWindow";
const BY_KEY = "patchbay.costBy";
const WINDOWS = [
  { value: "7d", label: "Last 7 days" },
  { value: "30d", label: "Last 30 days" },
  { value: "90d", label: "Last 90 days" },
];
const BYS = [
  { value: "source", label: "Billing source", noun: "billing source" },
  { value: "provider", label: "Provider", noun: "provider" },
  { value: "agent", label: "Agent", noun: "agent" },
];
const SOURCES = ["platform", "byok", "private"];
const COLOURED = 5;
const count = new Intl.NumberFormat();

export async function costsSection(el, base) {
  const pick = (key, options, fallback) => (options.some((o) => o.value === sessionStorage.getItem(key)) ? sessionStorage.getItem(key) : fallback);
  const chosen = { window: pick(WINDOW_KEY, WINDOWS, "30d"), by: pick(BY_KEY, BYS, "source") };
  const form = h("form", { novalidate: true, class: "cost-window usage-window" });
  form.append(
    field({ label: "Window", name: "window", control: "select", options: WINDOWS.map((w) => ({ ...w, selected: w.value === chosen.window })) }),
    field({ label: "Cost by", name: "by", control: "select", options: BYS.map((b) => ({ ...b, selected: b.value === chosen.by })) }),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "secondary" }, "Refresh")),
    formAlert(),
  );
  const status = h("p", { class: "status", role: "status" });
  const results = h("div", { class: "cost-results usage-results" });
  replace(
    el,
    h("h2", { id: "costs-title" }, "Cost"),
    h("p", { class: "hint" }, "What the org's requests and voice turns were charged, recorded about a second after each ends."),
    form,
    status,
    results,
  );

  let loading = 0;
  async function load({ announce = false } = {}) {
    const ticket = ++loading;
    const since = form.elements.window.value;
    const by = form.elements.by.value;
    sessionStorage.setItem(WINDOW_KEY, since);
    sessionStorage.setItem(BY_KEY, by);
    const label = WINDOWS.find((w) => w.value === since)?.label || since;
    const noun = BYS.find((b) => b.value === by)?.noun || by;
    results.setAttribute("aria-busy", "true");
    status.textContent = "";
    const answer = await submitting(form, async () => {
      try {
        return await api("GET", `${base}/costs?${new URLSearchParams({ since, by })}`);
      } catch (error) {
        if (ticket === loading) throw error;
        return null; // a newer choice was made meanwhile; its answer is what counts
      }
    });
    if (ticket !== loading) return;
    results.removeAttribute("aria-busy");
    if (!answer) {
      replace(results);
      return;
    }
    if (!answer.groups.length) {
      replace(results, h("p", { class: "empty" }, "No usage in this window, so nothing was charged."));
      if (announce) status.textContent = `Nothing charged in the ${label.toLowerCase()}.`;
      return;
    }
    const series = seriesFor(answer);
    replace(
      results,
      h("p", { class: "cost-total" }, "Total ", h("data", { value: answer.total_micro_usd }, usd(answer.total_micro_usd)), ` in the ${label.toLowerCase()}.`),
      h("div", { class: "table-wrap" }, table(answer, series, noun, label)),
      chart(answer, series, noun, label),
    );
    if (announce) status.textContent = `${label} by ${noun}: ${usd(answer.total_micro_usd)}.`;
  }

  form.elements.window.addEventListener("change", () => form.requestSubmit());
  form.elements.by.addEventListener("change", () => form.requestSubmit());
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load({ announce: true });
  });
  await load();
}

/** A chart series per group: {key (CSS class), label, members (group keys it sums)}. */
function seriesFor(answer) {
  const name = (g) => g.label ?? (answer.by === "agent" ? "(no agent)" : "(none)");
  if (answer.by === "source") {
    const present = answer.groups.map((g) => g.key);
    const known = SOURCES.filter((s) => present.includes(s)).map((s) => ({ key: s, label: s, members: [s] }));
    const rest = answer.groups.filter((g) => !SOURCES.includes(g.key)).map((g) => g.key);
    return rest.length ? [...known, { key: "other", label: "other", members: rest }] : known;
  }
  const top = answer.groups.slice(0, COLOURED).map((g, i) => ({ key: `c${i}`, label: name(g), members: [g.key] }));
  const rest = answer.groups.slice(COLOURED).map((g) => g.key);
  return rest.length ? [...top, { key: "other", label: "other", members: rest }] : top;
}

function table(answer, series, noun, label) {
  const colour = new Map(series.flatMap((s) => s.members.map((m) => [m, s.key])));
  return h(
    "table",
    { class: "costs" },
    h("caption", { class: "visually-hidden" }, `Cost by ${noun}, ${label.toLowerCase()}`),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, noun[0].toUpperCase() + noun.slice(1)), h("th", { scope: "col", class: "num" }, "Segments"), h("th", { scope: "col", class: "num" }, "Cost"))),
    h(
      "tbody",
      {},
      answer.groups.map((g) =>
        h(
          "tr",
          { dataset: { key: g.key ?? "" } },
          h("th", { scope: "row" }, h("span", { class: `swatch series-${colour.get(g.key)}`, "aria-hidden": "true" }), g.label ?? (answer.by === "agent" ? "(no agent)" : "(none)")),
          h("td", { class: "num" }, count.format(g.segments)),
          h("td", { class: "num" }, h("data", { value: g.cost_micro_usd }, usd(g.cost_micro_usd))),
        ),
      ),
    ),
    h("tfoot", {}, h("tr", { class: "total" }, h("th", { scope: "row" }, "Total"), h("td", { class: "num" }, count.format(answer.groups.reduce((n, g) => n + g.segments, 0))), h("td", { class: "num" }, usd(answer.total_micro_usd)))),
  );
}

function chart(answer, series, noun, label) {
  const perDay = new Map();
  const member = new Map(series.flatMap((s) => s.members.map((m) => [m, s.key])));
  for (const d of answer.days) {
    if (!perDay.has(d.day)) perDay.set(d.day, new Map());
    const key = member.get(d.key);
    perDay.get(d.day).set(key, (perDay.get(d.day).get(key) ?? 0) + d.cost_micro_usd);
  }
  const days = [...new Set([...utcDays(answer.since, answer.until), ...perDay.keys()])].sort();
  return h(
    "section",
    { "aria-labelledby": "cost-chart-title" },
    h("h3", { id: "cost-chart-title" }, "Cost per day (UTC)"),
    dayChart({
      days,
      series: series.map(({ key, label: text }) => ({ key, label: text })),
      value: (day, key) => perDay.get(day)?.get(key) ?? 0,
      measure: "charged",
      title: `Cost per UTC day by ${noun}, ${label.toLowerCase()}`,
      format: usd,
    }),
  );
}

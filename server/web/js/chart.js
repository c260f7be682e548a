// A stacked bar chart per UTC day, drawn as inline SVG from DOM nodes. Geometry goes in SVG
// presentation attributes; colours come from `series-KEY` classes in app.css, because the CSP
// allows no inline style and classes follow the light and dark schemes. To assistive
// technology the drawing is one labelled image; the figures are in the table under it.

import { h, svg, uid } from "./dom.js";

const WIDTH = 720;
const HEIGHT = 240;
const PAD = { top: 12, right: 24, bottom: 28, left: 64 };
const DAY_MS = 86_400_000;

/** Every UTC day ("YYYY-MM-DD") that the window [since, until) touches, oldest first. */
export function utcDays(since, until) {
  const start = new Date(since);
  const last = Date.parse(until) - 1;
  const days = [];
  for (let t = Date.UTC(start.getUTCFullYear(), start.getUTCMonth(), start.getUTCDate()); t <= last; t += DAY_MS) {
    days.push(new Date(t).toISOString().slice(0, 10));
  }
  return days;
}

/**
 * A figure: the chart, its legend and the figures per day.
 * `days` are "YYYY-MM-DD" in order; `series` are [{key, label}], stacked bottom to top;
 * `value(day, key)` is a number; `measure` names it ("segments"); `title` names the image.
 */
export function dayChart({ days, series, value, measure, title, format }) {
  const titleId = uid("chart-title");
  const descId = uid("chart-desc");
  const totals = new Map(days.map((d) => [d, series.reduce((sum, s) => sum + value(d, s.key), 0)]));
  const grand = [...totals.values()].reduce((a, b) => a + b, 0);
  const split = series.map((s) => `${s.label} ${format(days.reduce((sum, d) => sum + value(d, s.key), 0))}`).join(", ");
  const { top, step } = scale(Math.max(0, ...totals.values()));
  const plot = { width: WIDTH - PAD.left - PAD.right, height: HEIGHT - PAD.top - PAD.bottom };
  const y = (v) => PAD.top + plot.height - (plot.height * v) / top;
  const slot = plot.width / days.length;
  const barWidth = Math.min(48, slot * 0.7);
  const labelEvery = Math.ceil(days.length / 8);

  const grid = [];
  for (let v = 0; v <= top; v += step) {
    grid.push(
      svg("line", { class: v === 0 ? "axis" : "grid", x1: PAD.left, x2: WIDTH - PAD.right, y1: y(v), y2: y(v) }),
      svg("text", { class: "tick", x: PAD.left - 6, y: y(v), "text-anchor": "end", "dominant-baseline": "middle" }, format(v)),
    );
  }

  const bars = days.map((day, i) => {
    const x = PAD.left + i * slot + (slot - barWidth) / 2;
    let base = 0;
    const rects = [];
    for (const s of series) {
      const v = value(day, s.key);
      if (v <= 0) continue;
      const height = Math.max(1, y(base) - y(base + v));
      rects.push(svg("rect", { class: `bar series-${s.key}`, x, y: y(base) - height, width: barWidth, height, dataset: { series: s.key, value: v } }));
      base += v;
    }
    const label = (days.length - 1 - i) % labelEvery === 0 ? svg("text", { class: "tick", x: x + barWidth / 2, y: HEIGHT - 8, "text-anchor": "middle" }, shortDay(day)) : null;
    return svg("g", { class: "day", dataset: { day } }, svg("title", {}, tooltip(day, totals.get(day), series, value, measure, format)), rects, label);
  });

  const image = svg(
    "svg",
    { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, width: WIDTH, height: HEIGHT, role: "img", "aria-labelledby": `${titleId} ${descId}` },
    svg("title", { id: titleId }, title),
    svg("desc", { id: descId }, `${format(grand)} ${measure} in all: ${split}. The figures per day are in the table below the chart.`),
    grid,
    bars,
  );
  return h("figure", { class: "chart" }, image, legend(series), dayTable({ days, series, value, totals, measure, format }));
}

function legend(series) {
  return h(
    "ul",
    { class: "legend", "aria-label": "Legend" },
    series.map((s) => h("li", { dataset: { series: s.key } }, h("span", { class: `swatch series-${s.key}`, "aria-hidden": "true" }), s.label)),
  );
}

function dayTable({ days, series, value, totals, measure, format }) {
  const used = days.filter((d) => totals.get(d) > 0);
  return h(
    "details",
    { class: "day-figures" },
    h("summary", {}, `Figures per day (${used.length} ${used.length === 1 ? "day" : "days"} with usage)`),
    h(
      "table",
      {},
      h("caption", { class: "visually-hidden" }, `${measure} per UTC day`),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Day (UTC)"), series.map((s) => h("th", { scope: "col", class: "num" }, s.label)), h("th", { scope: "col", class: "num" }, "Total"))),
      h(
        "tbody",
        {},
        used.map((d) =>
          h("tr", { dataset: { day: d } }, h("th", { scope: "row" }, d), series.map((s) => h("td", { class: "num" }, format(value(d, s.key)))), h("td", { class: "num" }, format(totals.get(d)))),
        ),
      ),
    ),
  );
}

/** An axis top at or above `max` and a round step that divides it in about four. */
function scale(max) {
  if (max <= 0) return { top: 1, step: 1 };
  const rough = max / 4;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = Math.max(1, [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough));
  return { top: Math.ceil(max / step) * step, step };
}

function shortDay(day) {
  return new Date(`${day}T00:00:00Z`).toLocaleDateString(undefined, { month: "short", day: "numeric", timeZone: "UTC" });
}

function tooltip(day, total, series, value, measure, format) {
  if (!total) return `${shortDay(day)}: no usage`;
  const parts = series.filter((s) => value(day, s.key) > 0).map((s) => `${s.label} ${format(value(day, s.key))}`);
  return `${shortDay(day)}: ${format(total)} ${measure} (${parts.join(", ")})`;
}

const ROW = 26;
const LABEL_WIDTH = 260;

/**
 * A horizontal bar per row, for comparing models: `rows` are [{label, value, series}] (value a
 * number or null for "not measured"); `max` fixes the axis top (1 for rates), else it is scaled.
 * The figures are in the table `caption` names, next to the chart.
 */
export function barChart({ rows, title, measure, format, max }) {
  const titleId = uid("chart-title");
  const descId = uid("chart-desc");
  const found = rows.filter((r) => r.value !== null && r.value !== undefined);
  const { top, step } = max ? { top: max, step: max / 4 } : scale(Math.max(0, ...found.map((r) => r.value)));
  const height = PAD.top + rows.length * ROW + PAD.bottom;
  const plotWidth = WIDTH - LABEL_WIDTH - PAD.right;
  const x = (v) => LABEL_WIDTH + (plotWidth * Math.min(v, top)) / top;
  const grid = [];
  for (let v = 0; v <= top + 1e-9; v += step) {
    grid.push(
      svg("line", { class: v === 0 ? "axis" : "grid", x1: x(v), x2: x(v), y1: PAD.top, y2: height - PAD.bottom }),
      svg("text", { class: "tick", x: x(v), y: height - 8, "text-anchor": "middle" }, format(v)),
    );
  }
  const bars = rows.map((r, i) => {
    const y = PAD.top + i * ROW;
    const shown = r.value === null || r.value === undefined ? "not measured" : `${format(r.value)} ${measure}`;
    return svg(
      "g",
      { class: "row", dataset: { label: r.label } },
      svg("title", {}, `${r.label}: ${shown}`),
      svg("text", { class: "tick", x: LABEL_WIDTH - 8, y: y + ROW / 2, "text-anchor": "end", "dominant-baseline": "middle" }, r.label),
      found.includes(r) ? svg("rect", { class: `bar series-${r.series || "c0"}`, x: x(0), y: y + 4, width: Math.max(1, x(r.value) - x(0)), height: ROW - 8, dataset: { value: r.value } }) : null,
    );
  });
  return h(
    "figure",
    { class: "chart" },
    svg(
      "svg",
      { viewBox: `0 0 ${WIDTH} ${height}`, width: WIDTH, height, role: "img", "aria-labelledby": `${titleId} ${descId}` },
      svg("title", { id: titleId }, title),
      svg("desc", { id: descId }, `${found.length} of ${rows.length} measured; the figures are in the results table.`),
      grid,
      bars,
    ),
  );
}

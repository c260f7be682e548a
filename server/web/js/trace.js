// A request's route trace (routing/trace.py's `to_dict`): where its chain came from, which
// connection served it, and every attempt with its result (`served`, `skipped:<why>`,
// `failed:<error class>`), as a small table; `headerTrace` reads the same from the compact
// `x-patchbay-route` header of a `/v1` response (the playground).

import { h } from "./dom.js";

function resultBadge(result) {
  const kind = result === "served" ? "ok" : result.startsWith("failed") ? "failed" : "disabled";
  return h("span", { class: `badge badge-${kind}` }, result);
}

/** The trace as nodes; a short note when the request never reached routing. */
export function routeTrace(route) {
  if (!route || !(route.attempts || []).length) {
    return h("p", { class: "muted" }, "No route: the request was refused before any connection was chosen.");
  }
  const facts = [
    ["Task", route.intent || "—"],
    ["Chain from", route.source || "—"],
    ["Served by", route.served || "nothing"],
  ];
  if (route.billing_source) facts.push(["Billed", route.billing_source]);
  return h(
    "div",
    { class: "trace" },
    h("dl", { class: "chains" }, facts.map(([name, value]) => [h("dt", {}, name), h("dd", {}, value)])),
    h(
      "table",
      { class: "attempts" },
      h("caption", {}, "Attempts, in the order they were decided"),
      h("thead", {}, h("tr", {}, ["#", "Model", "Connection", "Result", "Error class", "HTTP", "Time"].map((c) => h("th", { scope: "col" }, c)))),
      h(
        "tbody",
        {},
        route.attempts.map((a, i) =>
          h(
            "tr",
            { dataset: { result: a.result } },
            h("td", {}, String(i + 1)),
            h("td", {}, h("code", {}, a.ref)),
            h("td", {}, a.profile || h("span", { class: "muted" }, "—")),
            h("td", {}, resultBadge(a.result), a.after_output ? " (after output)" : null, a.retries ? ` (${a.retries} retries)` : null),
            h("td", {}, a.error_class || ""),
            h("td", { class: "num" }, a.status != null ? String(a.status) : ""),
            h("td", { class: "num" }, a.elapsed_ms != null ? `${a.elapsed_ms} ms` : ""),
          ),
        ),
      ),
    ),
  );
}

/** The compact trace of an `x-patchbay-route` header (`target=result;…`) as a small table. */
export function headerTrace(header) {
  const attempts = (header || "")
    .split(";")
    .filter(Boolean)
    .map((entry) => {
      const at = entry.indexOf("=");
      return at < 0 ? { target: entry, result: "" } : { target: entry.slice(0, at), result: entry.slice(at + 1) };
    });
  if (!attempts.length) return h("p", { class: "muted" }, "No route trace: the request was refused before any connection was chosen.");
  return h(
    "table",
    { class: "attempts" },
    h("caption", {}, "Route trace, in the order the attempts were decided"),
    h("thead", {}, h("tr", {}, ["#", "Connection and model", "Result"].map((c) => h("th", { scope: "col" }, c)))),
    h(
      "tbody",
      {},
      attempts.map((a, i) =>
        h("tr", { dataset: { result: a.result } }, h("td", {}, String(i + 1)), h("td", {}, h("code", {}, a.target)), h("td", {}, resultBadge(a.result))),
      ),
    ),
  );
}

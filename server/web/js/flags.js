// The "Flags" page (the server's operator only): every feature flag (`GET /admin/v1/flags`) with
// its default, what it gates and its rollout; per flag a percentage, the selected org as a
// canary (add or remove) and the kill switch. Each change answers the flag as it now is and
// reaches every replica within seconds (docs/flags.md).

import { api, seg } from "./api.js";
import { h, replace, uid } from "./dom.js";
import { section } from "./section.js";

export async function flagsPage(root, context) {
  const heading = h("h1", { tabindex: "-1" }, "Feature flags");
  const body = h("section", { class: "flags", "aria-labelledby": "flags-title" });
  replace(
    root,
    heading,
    h("p", { class: "lead" }, "Turn features on per org: canary orgs first, then a percentage of orgs; the kill switch turns a flag off for every org at once."),
    body,
  );
  await section(body, "flags-title", "Flags", () => build(context));
  return heading;
}

async function build({ org }) {
  const flags = await api("GET", "/flags");
  const status = h("p", { role: "status", class: "status" });
  const alert = h("p", { class: "error form-error", role: "alert" });
  if (flags.length === 0) return h("p", { class: "muted" }, "No feature flags are defined on this server.");
  const rows = h("tbody", {});
  const ctx = { status, alert, redraw: (next) => rows.querySelector(`tr[data-flag="${next.name}"]`).replaceWith(render(next)) };
  const render = (flag) => row(flag, org, ctx);
  replace(rows, flags.map(render));
  const table = h(
    "table",
    { class: "flags" },
    h("caption", { class: "visually-hidden" }, "Feature flags and their rollout"),
    h(
      "thead",
      {},
      h("tr", {}, ["Flag", "Default", "Percent", "Canary orgs", "State", "Change"].map((t) => h("th", { scope: "col" }, t))),
    ),
    rows,
  );
  return [h("div", { class: "table-wrap" }, table), status, alert];
}

function row(flag, org, ctx) {
  const change = async (method, path, body, said) => {
    ctx.alert.textContent = "";
    try {
      const next = await api(method, `/flags/${seg(flag.name)}${path}`, body);
      ctx.redraw(next);
      ctx.status.textContent = said(next);
    } catch (error) {
      if (error.signIn) return;
      ctx.alert.textContent = `Could not change ${flag.name}: ${error.message}`;
    }
  };
  const percentId = uid("percent");
  const percent = h("input", { id: percentId, type: "number", min: "0", max: "100", step: "any", value: flag.percent ?? "", placeholder: "default" });
  const canary = flag.canary.includes(org.id);
  const controls = h(
    "div",
    { class: "flag-controls" },
    h("label", { for: percentId }, `Percent for ${flag.name}`),
    percent,
    h("button", {
      type: "button",
      class: "secondary",
      onclick: () => {
        const value = percent.value.trim() === "" ? null : Number(percent.value);
        change("PUT", "", { percent: value }, (n) => `${n.name}: ${n.percent === null ? "default" : `${n.percent}%`} of orgs`);
      },
    }, `Set percent of ${flag.name}`),
    h("button", {
      type: "button",
      class: "secondary",
      onclick: () => change("POST", "/canary", canary ? { remove: [org.id] } : { add: [org.id] }, (n) => `${n.name}: ${org.name} ${n.canary.includes(org.id) ? "is" : "is no longer"} a canary`),
    }, canary ? `Remove ${org.name} from ${flag.name} canaries` : `Make ${org.name} a ${flag.name} canary`),
    h("button", {
      type: "button",
      class: flag.killed ? "secondary" : "danger",
      onclick: () => change("POST", "/kill", { killed: !flag.killed }, (n) => `${n.name} ${n.killed ? "killed: off for every org" : "released: the rollout applies again"}`),
    }, flag.killed ? `Release ${flag.name}` : `Kill ${flag.name}`),
  );
  return h(
    "tr",
    { dataset: { flag: flag.name } },
    h("th", { scope: "row" }, h("code", {}, flag.name), h("p", { class: "hint" }, flag.gates)),
    h("td", {}, flag.default ? "on" : "off"),
    h("td", { class: "percent" }, flag.percent === null ? "-" : `${flag.percent}%`),
    h("td", { class: "canary" }, flag.canary.length ? flag.canary.join(", ") : "none"),
    h("td", { class: "state" }, flag.killed ? h("span", { class: "badge badge-revoked" }, "killed") : "live"),
    h("td", {}, controls),
  );
}

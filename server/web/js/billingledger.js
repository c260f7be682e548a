// The Billing page's ledger: every movement of the org's credits over the last year, newest
// first, a page at a time (`GET /orgs/{org}/billing/ledger`, keyset paged by `next_cursor`, so
// entries written meanwhile never shift a page). "Download CSV" saves the whole window as
// `patchbay ledger --csv` writes it: the same route with `?format=csv`, fetched with the page's
// credential (a plain link would not carry a bearer token) and saved from a Blob.

import { api } from "./api.js";
import { h, when } from "./dom.js";
import { usd } from "./money.js";
import { section } from "./section.js";

const PAGE = 25;
const SINCE = "365d";
const KINDS = {
  grant: "Grant",
  purchase: "Purchase",
  hold: "Hold",
  settle: "Charge",
  release: "Release",
  refund: "Refund",
  adjustment: "Adjustment",
};

export function ledgerSection(el, base) {
  const load = () =>
    section(el, "ledger-title", "Ledger", async () => {
      const first = await page(base, null);
      if (!first.entries.length) return h("p", { class: "empty" }, "No ledger entries in the last year: no credits were granted, held or charged.");
      const body = h("tbody", {});
      const more = h("div", { class: "actions" });
      const status = h("p", { class: "status", role: "status" });
      const show = (answer) => {
        body.append(...answer.entries.map(row));
        more.replaceChildren();
        if (answer.next_cursor) more.append(h("button", { type: "button", class: "secondary", onclick: () => older(answer.next_cursor) }, "Show older entries"));
      };
      const older = async (cursor) => {
        const button = more.querySelector("button");
        button.disabled = true;
        try {
          const next = await page(base, cursor);
          show(next);
          status.textContent = next.entries.length ? `${body.rows.length} entries shown.` : "No older entries.";
        } catch (error) {
          button.disabled = false;
          if (!error.signIn) status.textContent = `Could not load older entries: ${error.message}`;
        }
      };
      show(first);
      const saving = h("p", { class: "status", role: "status" });
      const download = h("button", { type: "button", class: "secondary", onclick: () => saveCsv(base, download, saving) }, "Download CSV");
      return [
        h("p", { class: "hint" }, "Newest first, the last year. A hold reserves credits, a charge settles it and gives back the rest."),
        h("div", { class: "actions" }, download),
        saving,
        h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { class: "ledger" },
            h("caption", { class: "visually-hidden" }, "Ledger entries, newest first"),
            h(
              "thead",
              {},
              h(
                "tr",
                {},
                h("th", { scope: "col" }, "When"),
                h("th", { scope: "col" }, "Kind"),
                h("th", { scope: "col", class: "num" }, "Amount"),
                h("th", { scope: "col", class: "num" }, "Balance +/-"),
                h("th", { scope: "col" }, "Hold or entry"),
                h("th", { scope: "col" }, "Details"),
              ),
            ),
            body,
          ),
        ),
        more,
        status,
      ];
    });
  return { load };
}

async function saveCsv(base, button, status) {
  button.disabled = true;
  status.textContent = "Preparing the CSV…";
  try {
    const params = new URLSearchParams({ since: SINCE, format: "csv" });
    const csv = await api("GET", `${base}/ledger?${params}`, undefined, { raw: true, extraHeaders: { accept: "text/csv" } });
    const url = URL.createObjectURL(new Blob([csv], { type: "text/csv" }));
    const link = h("a", { href: url, download: `ledger-${new Date().toISOString().slice(0, 10)}.csv`, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    status.textContent = "Ledger downloaded as CSV (the last year, oldest first).";
  } catch (error) {
    if (!error.signIn) status.textContent = `Could not download the CSV: ${error.message}`;
  } finally {
    button.disabled = false;
  }
}

function page(base, cursor) {
  const params = new URLSearchParams({ since: SINCE, limit: String(PAGE) });
  if (cursor) params.set("cursor", cursor);
  return api("GET", `${base}/ledger?${params}`);
}

function row(e) {
  const effect = e.effect_micro_usd;
  return h(
    "tr",
    { dataset: { entry: e.id, kind: e.kind } },
    h("td", {}, when(e.created_at)),
    h("td", {}, KINDS[e.kind] || e.kind),
    h("td", { class: "num" }, usd(e.amount_micro_usd)),
    h("td", { class: "num" }, effect ? `${effect > 0 ? "+" : ""}${usd(effect)}` : "-"),
    h("td", {}, h("code", {}, e.hold_id || e.id)),
    h("td", {}, details(e.details)),
  );
}

function details(d) {
  const parts = [];
  if (d.reason) parts.push(d.reason);
  if (d.segment) parts.push([d.segment, d.intent].filter(Boolean).join(" · "));
  if (d.source) parts.push(d.source);
  if (d.shortfall) parts.push(`${usd(d.shortfall)} not covered`);
  return parts.join("; ") || "-";
}

// What the platform offers an org, read-only, on its AI Connections page: the operator's
// connections the org may route to (billed to its credits), whether its tier allows them, and
// whether its own connection of the same provider comes first. No keys, fingerprints or URLs:
// `GET /admin/v1/orgs/{org}/platform-connections` does not return them.

import { api } from "./api.js";
import { badge } from "./connectioncells.js";
import { h } from "./dom.js";

/** The section, once loaded. */
export async function platformOfferSection(base, org) {
  const offer = await api("GET", `${base}/platform-connections`);
  return h(
    "section",
    { "aria-labelledby": "platform-title", class: "platform" },
    h("h2", { id: "platform-title" }, "Platform models"),
    h("p", {}, lead(offer, org)),
    offer.connections.length ? table(offer, org) : h("p", { class: "empty" }, "The server's operator offers no platform connections."),
  );
}

function lead(offer, org) {
  if (!offer.platform_allowed) return `${org.name}'s tier (${offer.tier}) does not include platform models.`;
  return (
    `Connections the server's operator provides. ${org.name} may route to them; their use is paid from its credits ` +
    "(billing source platform). Your own connection of the same provider comes first; name a platform connection in a ref " +
    "(provider:name/model) to use it anyway."
  );
}

function table(offer, org) {
  return h(
    "table",
    { class: "platform-offer" },
    h("caption", { class: "visually-hidden" }, `Platform connections available to ${org.name}`),
    h("thead", {}, h("tr", {}, ["Connection", "Models", "Status", "Used for"].map((c) => h("th", { scope: "col" }, c)))),
    h(
      "tbody",
      {},
      offer.connections.map((c) =>
        h(
          "tr",
          { dataset: { platform: c.profile_id } },
          h("th", { scope: "row" }, h("span", { class: "profile" }, c.profile_id)),
          h("td", {}, c.models.length ? c.models.map((m) => m.id).join(", ") : h("span", { class: "muted" }, "the catalog's")),
          h("td", {}, badge(c.status)),
          h(
            "td",
            {},
            c.in_use
              ? h("code", {}, c.provider === "openai_compatible" ? `${c.name}/…` : `${c.provider}/…`)
              : h("span", { class: "muted" }, `only as ${c.profile_id}/…: your own ${c.provider} connection comes first`),
          ),
        ),
      ),
    ),
  );
}

/** The org's tier and what it may route to, with the BYOK override as a visible flag. */
export function tierFlags(offer) {
  const sources = new Set(offer.billing_sources);
  return h(
    "p",
    { class: "tier-flags" },
    "Tier ",
    h("strong", {}, offer.tier),
    ": may route to ",
    ["platform", "byok", "private"].filter((s) => sources.has(s)).join(", ") || "nothing",
    ". ",
    offer.byok_override
      ? [badge("override", "BYOK override"), " This org keeps its own keys (BYOK) whatever its tier, as migrated from the legacy byokEnabled setting."]
      : null,
  );
}

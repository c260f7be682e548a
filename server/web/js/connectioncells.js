// Read-only cells of the AI Connections table: endpoint, models, health, key fingerprint and a
// test's probes. Keys never appear: only the fingerprint the API returns.

import { h, when } from "./dom.js";

export function endpoint(c, providers) {
  if (c.base_url) return h("code", {}, c.base_url);
  const preset = providers.get(c.provider)?.default_base_url;
  return h("span", { class: "muted" }, preset ? `default (${preset})` : "default");
}

export function models(c) {
  const declared = (c.models || []).map((m) => `${m.id} (${(m.capabilities || ["text"]).join(", ")})`);
  if (declared.length) return declared.join(", ");
  const found = c.health.models_found || [];
  if (!found.length) return h("span", { class: "muted" }, "any");
  const shown = found.slice(0, 4).join(", ");
  return found.length > 4 ? `${shown} and ${found.length - 4} more` : shown;
}

export function health(hl) {
  if (!hl.status) return h("span", { class: "muted" }, "not tested");
  const label = hl.status === "ok" ? "ok" : `failed${hl.error_class ? ` (${hl.error_class})` : ""}`;
  return [
    badge(hl.status === "ok" ? "ok" : "failed", label),
    h("span", { class: "muted" }, [when(hl.checked_at), hl.latency_ms != null ? `${hl.latency_ms} ms` : null].filter(Boolean).join(" · ")),
  ];
}

export function key(c) {
  // Revoking destroys the key; its fingerprint stays only in the audit trail.
  if (c.status === "revoked") return h("span", { class: "muted" }, "key destroyed");
  if (c.key) return [h("code", { class: "fingerprint" }, c.key.fingerprint), h("span", { class: "muted" }, `set ${when(c.key.set_at)}`)];
  if (c.env_reference) return h("span", {}, `from env ${c.env_reference}`);
  return h("span", { class: "muted" }, "no key");
}

export function testResult(c, result) {
  return h(
    "div",
    { class: `test-result ${result.ok ? "ok" : "failed"}` },
    h("h3", {}, `Test of ${c.profile_id}: ${result.ok ? "passed" : "failed"}`),
    h(
      "ul",
      {},
      result.probes.map((p) =>
        h(
          "li",
          { dataset: { probe: p.name } },
          badge(p.ok ? "ok" : "failed"),
          ` ${p.name}, ${p.latency_ms} ms`,
          p.ok ? (p.models.length ? `, ${p.models.length} models` : "") : `: ${[p.error_class, p.status ? `HTTP ${p.status}` : null, p.message].filter(Boolean).join(", ")}`,
        ),
      ),
    ),
  );
}

export function badge(kind, label = kind) {
  return h("span", { class: `badge badge-${kind}` }, label);
}

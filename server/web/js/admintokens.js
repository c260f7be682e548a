// The org's admin tokens (`pbt-…`, for scripts and the CLI) on the Members page, for owners:
// the list, creating one (shown once) and revoking. Only a hash of each token is stored.

import { api, seg } from "./api.js";
import { copyButton } from "./clipboard.js";
import { badge } from "./connectioncells.js";
import { h, replace, when } from "./dom.js";
import { confirmAction, field, formAlert, submitting } from "./forms.js";

const ROLES = ["owner", "admin", "billing", "viewer"];
const EXPIRY = [
  { value: "", label: "Never" },
  { value: "30d", label: "In 30 days" },
  { value: "90d", label: "In 90 days" },
];
const COLUMNS = ["Name", "Token", "Role", "Status", "Created", "Expires", "Last used", "Actions"];

/** The section, loaded. */
export async function adminTokensSection({ org }) {
  const base = `/orgs/${seg(org.id)}/admin-tokens`;
  let tokens = await api("GET", base);
  const listArea = h("div", { class: "table-wrap" });
  const shown = h("div", { "aria-live": "polite" });
  const status = h("p", { class: "status", role: "status" });

  function render() {
    if (!tokens.length) {
      replace(listArea, h("p", { class: "empty" }, "No admin tokens."));
      return;
    }
    replace(
      listArea,
      h(
        "table",
        { class: "admin-tokens" },
        h("caption", { class: "visually-hidden" }, `Admin tokens of ${org.name}`),
        h("thead", {}, h("tr", {}, COLUMNS.map((c) => h("th", { scope: "col" }, c)))),
        h(
          "tbody",
          {},
          tokens.map((t) =>
            h(
              "tr",
              { dataset: { tokenId: t.id } },
              h("th", { scope: "row" }, t.name || h("span", { class: "muted" }, "unnamed")),
              h("td", { class: "prefix" }, h("code", {}, `${t.prefix}…`)),
              h("td", {}, t.role),
              h("td", {}, badge(t.status === "active" ? "active" : t.status === "revoked" ? "revoked" : "disabled", t.status)),
              h("td", {}, when(t.created_at), h("span", { class: "muted" }, `by ${t.created_by}`)),
              h("td", {}, t.expires_at ? when(t.expires_at) : h("span", { class: "muted" }, "never")),
              h("td", {}, t.last_used_at ? when(t.last_used_at) : h("span", { class: "muted" }, "never")),
              h("td", { class: "actions" }, t.status === "active" ? h("button", { type: "button", class: "danger", onclick: () => revoke(t) }, "Revoke") : null),
            ),
          ),
        ),
      ),
    );
  }

  async function revoke(t) {
    const label = t.name || t.prefix;
    const ok = await confirmAction({
      title: `Revoke the admin token “${label}”?`,
      message: "Whatever uses it is refused from now on. This cannot be undone.",
      confirmLabel: "Revoke",
    });
    if (!ok) return;
    try {
      const revoked = await api("DELETE", `${base}/${seg(t.id)}`);
      tokens = tokens.map((x) => (x.id === t.id ? revoked : x));
      render();
      status.textContent = `Admin token “${label}” revoked.`;
    } catch (error) {
      status.textContent = `Could not revoke the admin token “${label}”: ${error.message}`;
    }
  }

  const form = h("form", { novalidate: true, class: "create-admin-token" });
  form.append(
    field({ label: "Token name", name: "name", hint: "What it is for, such as “deploy script”.", attrs: { type: "text", autocomplete: "off", maxlength: "128" } }),
    field({ label: "Token role", name: "role", control: "select", options: ROLES.map((r) => ({ value: r, label: r, selected: r === "viewer" })) }),
    field({ label: "Token expiry", name: "expires", control: "select", options: EXPIRY }),
    formAlert(),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Create admin token")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const els = form.elements;
    const body = { role: els.role.value };
    if (els.name.value.trim()) body.name = els.name.value.trim();
    if (els.expires.value) body.expires = els.expires.value;
    const issued = await submitting(form, () => api("POST", base, body));
    if (!issued) return;
    form.reset();
    const { token, ...listed } = issued;
    tokens = [...tokens, listed];
    render();
    const code = h("code", { class: "new-admin-token" }, token);
    const copied = h("p", { class: "status", role: "status" });
    replace(
      shown,
      h(
        "div",
        { class: "key-panel" },
        h("p", {}, h("strong", {}, "Copy it now: you will not see it again. "), `Admin token “${issued.name || issued.prefix}” (${issued.role}):`),
        h("div", { class: "secret" }, code, copyButton("Copy token", token, code, copied)),
        h("p", { class: "hint" }, "Use it as Authorization: Bearer on /admin/v1, or sign in with it on this page."),
        copied,
        h("button", { type: "button", class: "secondary", onclick: () => replace(shown) }, "Done"),
      ),
    );
    status.textContent = `Admin token “${issued.name || issued.prefix}” created.`;
  });

  render();
  return h(
    "section",
    { "aria-labelledby": "admin-tokens-title" },
    h("h2", { id: "admin-tokens-title" }, "Admin tokens"),
    h("p", {}, "Org admin tokens give scripts and the CLI one role in this org, without a person's password."),
    status,
    listArea,
    h("h3", {}, "Create an admin token"),
    form,
    shown,
  );
}

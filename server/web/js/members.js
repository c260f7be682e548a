// The "Members" page: the people of the org with their roles; for owners, inviting someone (the
// page shows the one-time link to send them), removing a member, and the org's admin tokens
// (admintokens.js).

import { MEMBERS, ifAllowed, roleSummary } from "./access.js";
import { adminTokensSection } from "./admintokens.js";
import { api, seg } from "./api.js";
import { copyButton } from "./clipboard.js";
import { h, replace, when } from "./dom.js";
import { confirmAction, field, formAlert, submitting } from "./forms.js";

export const ROLES = [
  { value: "owner", label: "owner: everything, and members and tokens" },
  { value: "admin", label: "admin: connections, routing, agents, keys" },
  { value: "billing", label: "billing: sees everything, manages billing" },
  { value: "viewer", label: "viewer: sees everything, changes nothing" },
];

/** An absolute link: the API answers a path when the server has no PATCHBAY_PUBLIC_URL. */
export function absolute(link) {
  return new URL(link, window.location.origin).href;
}

export async function membersPage(root, context) {
  const { org, access } = context;
  const base = `/orgs/${seg(org.id)}`;
  const canManage = access.can(MEMBERS);
  let members = await api("GET", `${base}/members`);
  const heading = h("h1", { tabindex: "-1" }, "Members");
  const status = h("p", { class: "status", role: "status" });
  const listArea = h("div", { class: "table-wrap" });
  const inviteResult = h("div", { "aria-live": "polite" });
  replace(
    root,
    heading,
    h("p", { class: "lead" }, `The people who may sign in to ${org.name}, and their roles. ${roleSummary(access.role)}`),
    status,
    h("section", { "aria-labelledby": "members-title" }, h("h2", { id: "members-title" }, "People"), listArea),
    ifAllowed(access, MEMBERS, () => inviteSection(inviteResult)),
    canManage ? await adminTokensSection(context) : null,
  );

  // Owners do not remove themselves from here: an org could be left with no owner by a slip.
  const isMe = (m) => context.me.kind === "user" && m.email === context.me.label;

  function render() {
    if (!members.length) {
      replace(listArea, h("p", { class: "empty" }, "No people yet: only admin tokens and the server's operator reach this org."));
      return;
    }
    const columns = ["Email", "Role", "Joined", ...(canManage ? ["Actions"] : [])];
    replace(
      listArea,
      h(
        "table",
        { class: "members" },
        h("caption", { class: "visually-hidden" }, `Members of ${org.name}`),
        h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
        h(
          "tbody",
          {},
          members.map((m) =>
            h(
              "tr",
              { dataset: { member: m.email } },
              h("th", { scope: "row" }, m.email),
              h("td", {}, m.role),
              h("td", {}, when(m.joined_at)),
              canManage && h("td", { class: "actions" }, isMe(m) ? h("span", { class: "muted" }, "you") : h("button", { type: "button", class: "danger", onclick: () => remove(m) }, "Remove")),
            ),
          ),
        ),
      ),
    );
  }

  async function remove(member) {
    const ok = await confirmAction({
      title: `Remove ${member.email} from ${org.name}?`,
      message: "They lose access to this org at once. Their account stays, with any other orgs they belong to.",
      confirmLabel: "Remove",
    });
    if (!ok) return;
    try {
      await api("DELETE", `${base}/members/${seg(member.user_id)}`);
      members = members.filter((m) => m.user_id !== member.user_id);
      render();
      status.textContent = `${member.email} removed from ${org.name}.`;
      heading.focus();
    } catch (error) {
      status.textContent = `Could not remove ${member.email}: ${error.message}`;
    }
  }

  function inviteSection(result) {
    const form = h("form", { novalidate: true, class: "invite-member" });
    form.append(
      field({ label: "Email", name: "email", attrs: { type: "email", required: true, autocomplete: "off", spellcheck: "false" } }),
      field({ label: "Role", name: "role", control: "select", options: ROLES.map((r) => ({ ...r, selected: r.value === "viewer" })) }),
      formAlert(),
      h("div", { class: "actions" }, h("button", { type: "submit" }, "Create invite link")),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = { email: form.elements.email.value.trim(), role: form.elements.role.value };
      const invite = await submitting(form, () => api("POST", `${base}/invites`, body));
      if (!invite) return;
      form.reset();
      const link = absolute(invite.link);
      const linkCode = h("code", { class: "invite-link" }, link);
      const copied = h("p", { class: "status", role: "status" });
      replace(
        result,
        h(
          "div",
          { class: "key-panel" },
          h("p", {}, `Send this link to ${invite.email}. It makes them ${invite.role} of ${org.name}, works once, and expires ${when(invite.expires_at)}:`),
          h("div", { class: "secret" }, linkCode, copyButton("Copy link", link, linkCode, copied)),
          h("p", { class: "hint" }, "Anyone holding the link can accept it: send it only to that person."),
          copied,
        ),
      );
      status.textContent = `Invite link created for ${invite.email}.`;
    });
    return h(
      "section",
      { "aria-labelledby": "invite-title-section" },
      h("h2", { id: "invite-title-section" }, "Invite someone"),
      h("p", {}, "Patchbay does not send email: it gives you a link to send. A person who already has an account joins with their password."),
      form,
      result,
    );
  }

  render();
  return heading;
}

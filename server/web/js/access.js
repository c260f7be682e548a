// What the signed-in caller may do in the selected org: the one place the pages ask before they
// render a button or a form that changes something. It reads the permissions of
// `GET /admin/v1/me` (server/access/roles.py decides them). Hiding is for the person only: the
// server checks every request again, so a hidden action is also a refused one.

export const READ = "read";
export const CONFIGURE = "configure"; // connections, routing, agents, voice settings, tests
export const KEYS = "keys"; // the org's server API keys
export const BILLING = "billing"; // the Billing page: balance, holds, ledger, costs
export const MEMBERS = "members"; // invites, members, org admin tokens, content logging
export const OPERATOR = "operator"; // the server's operator: orgs, platform-wide settings

/** The caller's access in one org of `me` (`{role, can(permission)}`); none for an unknown org. */
export function accessIn(me, orgId) {
  const org = (me?.orgs || []).find((o) => o.id === orgId);
  const granted = new Set(org ? org.permissions : []);
  return Object.freeze({
    role: org ? org.role : null,
    can: (permission) => granted.has(permission),
  });
}

/** `build()` when the caller may do `permission`, else null (h() skips null children). */
export function ifAllowed(access, permission, build) {
  return access.can(permission) ? build() : null;
}

/** What each role may do, in words, for the page leads. */
export function roleSummary(role) {
  return (
    {
      owner: "You are an owner: you may change everything here, and manage members and tokens.",
      admin: "You are an admin: you may change connections, routing, agents and keys.",
      billing: "You are in the billing role: you may see this org and its credits, ledger and costs.",
      viewer: "You are a viewer: you may see this org but not change it.",
      operator: "You are the server's operator: you may change everything, in every org.",
    }[role] || ""
  );
}

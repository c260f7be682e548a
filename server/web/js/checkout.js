// Buying through Stripe: start a Checkout session (`POST .../billing/checkout`, the `billing`
// permission) and send the browser to the URL it answers, where the admin pays. The credits or
// the new tier arrive later, when Stripe's webhook reaches the server. Without Stripe the server
// answers 409 `purchases_off`, and the pages say so in words instead of offering to buy.

import { api, seg } from "./api.js";
import { h } from "./dom.js";

export const PURCHASES_OFF =
  "Purchases are off on this server: the operator has not set PATCHBAY_STRIPE_SECRET_KEY; credits come from grants.";

/** The plain note shown instead of buy buttons. */
export function purchasesOffNote() {
  return h("p", { class: "empty purchases-off" }, PURCHASES_OFF);
}

/**
 * A button that starts a checkout for `body` ({kind: "credits", pack} or {kind: "subscription",
 * tier}) and redirects to Stripe. Failures go to `alert`; `purchases_off` calls `off()`.
 */
export function checkoutButton(org, label, body, { alert, off, attrs = {} }) {
  const button = h("button", { type: "button", ...attrs }, label);
  button.addEventListener("click", async () => {
    button.disabled = true;
    alert.textContent = "";
    try {
      const made = await api("POST", `/orgs/${seg(org.id)}/billing/checkout`, body);
      window.location.assign(made.url);
    } catch (error) {
      button.disabled = false;
      if (error.signIn) return;
      if (error.type === "purchases_off") off();
      else alert.textContent = `Could not start the checkout: ${error.message}`;
    }
  });
  return button;
}

/** What the return from Stripe's page says, from `#/billing?checkout=done|cancelled`. */
export function checkoutReturn() {
  const query = window.location.hash.split("?")[1] || "";
  const outcome = new URLSearchParams(query).get("checkout");
  if (outcome === "done") return "Payment sent. Stripe tells this server when it is confirmed, usually within seconds; the credits or the new plan show here then.";
  if (outcome === "cancelled") return "The checkout was cancelled: nothing was charged.";
  return "";
}

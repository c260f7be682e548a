// A page section that loads on its own: a title, "Loading…" while it asks, then what it built,
// or the API's message and a "Try again" button. One failing section leaves the others shown.

import { h, replace } from "./dom.js";

/**
 * Fill `el` with a title and what `build()` resolves to: "Loading…" first, the API's message
 * and a retry button on failure (a signed-out caller goes to the sign-in screen instead).
 */
export async function section(el, titleId, title, build, level = "h2") {
  const heading = h(level, { id: titleId }, title);
  el.setAttribute("aria-busy", "true");
  replace(el, heading, h("p", { class: "muted" }, "Loading…"));
  try {
    replace(el, heading, await build());
  } catch (error) {
    if (error.signIn) return;
    replace(
      el,
      heading,
      h("p", { class: "error", role: "alert" }, `Could not load ${title.toLowerCase()}: ${error.message}`),
      h("button", { type: "button", class: "secondary", onclick: () => section(el, titleId, title, build, level) }, "Try again"),
    );
  } finally {
    el.removeAttribute("aria-busy");
  }
}

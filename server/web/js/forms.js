// Labelled fields, inline errors and the confirmation dialog.
//
// A field carries `data-param` (the API's name for it: "base_url", "chains.chat"); an API
// error whose `param` names a field is shown under that field, any other one in the form's
// own alert line. A failure is never blank.

import { h, uid } from "./dom.js";

/**
 * A label, a control, an optional hint and an error line, wired with for/aria-describedby.
 * `control` is "input" (default), "select" or "textarea"; `attrs` go on the control.
 */
export function field({ label, name, param = name, hint, control = "input", attrs = {}, options = [] }) {
  const id = uid(name.replace(/[^a-z0-9]+/gi, "-"));
  const hintId = hint ? `${id}-hint` : null;
  const errorId = `${id}-error`;
  const describedBy = [hintId, errorId].filter(Boolean).join(" ");
  const props = { id, name, "aria-describedby": describedBy, ...attrs };
  const input =
    control === "select"
      ? h("select", props, options.map((o) => h("option", { value: o.value, selected: o.selected }, o.label)))
      : h(control, props);
  return h(
    "div",
    { class: "field", dataset: { param } },
    h("label", { for: id }, label),
    input,
    hint ? h("p", { id: hintId, class: "hint" }, hint) : null,
    h("p", { id: errorId, class: "error", "aria-live": "polite" }),
  );
}

/** The form-level alert line; put it where a form's failures should be read. */
export function formAlert() {
  return h("p", { class: "error form-error", role: "alert" });
}

export function clearErrors(form) {
  for (const el of form.querySelectorAll(".field .error, .form-error")) el.textContent = "";
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
}

/** Show an ApiError next to the field it names (or a parent of that name), else on the form. */
export function showError(form, error) {
  clearErrors(form);
  const target = fieldFor(form, error.param);
  if (target) {
    const control = target.querySelector("input, select, textarea");
    target.querySelector(".error").textContent = error.message;
    control.setAttribute("aria-invalid", "true");
    control.focus();
    return;
  }
  const alert = form.querySelector(".form-error");
  if (alert) alert.textContent = error.message;
}

function fieldFor(form, param) {
  if (!param) return null;
  const parts = param.split(".");
  for (let n = parts.length; n > 0; n -= 1) {
    const name = parts.slice(0, n).join(".");
    const match = [...form.querySelectorAll(".field[data-param]")].find((f) => f.dataset.param === name);
    if (match) return match;
  }
  return null;
}

/** Ask before something that cannot be undone; resolves true when confirmed. */
export function confirmAction({ title, message, confirmLabel }) {
  const dialog = document.getElementById("confirm");
  dialog.querySelector("#confirm-title").textContent = title;
  dialog.querySelector("#confirm-message").textContent = message;
  dialog.querySelector("#confirm-ok").textContent = confirmLabel;
  const opener = document.activeElement;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        if (opener instanceof HTMLElement && opener.isConnected) opener.focus();
        resolve(dialog.returnValue === "confirm");
      },
      { once: true },
    );
    dialog.showModal();
  });
}

/** Run `work` with the form's submit button disabled; errors go to showError. */
export async function submitting(form, work) {
  const buttons = form.querySelectorAll("button[type=submit]");
  for (const b of buttons) b.disabled = true;
  clearErrors(form);
  try {
    return await work();
  } catch (error) {
    showError(form, error);
    return undefined;
  } finally {
    for (const b of buttons) b.disabled = false;
  }
}

// The fallback-chain editor shared by the routing matrix and the agents: per intent, an ordered
// list of model refs (primary first) to add to from the models the org can reach, remove from,
// and reorder by drag or keyboard (Alt+ArrowUp/Down on an entry, or its Move buttons; focus
// stays with the moved entry and the move is announced). Every change is checked against the
// routing preview (GET .../routing/preview?intent=...&chain=...), which says for each model
// whether it can be used now and, if not, why in plain words; a model that cannot be used is
// refused when added, with that reason. Saving goes through the routing and agent APIs, which
// validate again; their errors for `chains.<intent>` show under that intent's editor.

import { h, uid } from "./dom.js";

const STATE_WORDS = { usable: "usable", waiting: "waiting", unusable: "cannot be used" };

/**
 * One editor per intent of the catalog, filled from `chains` ({intent: [refs]}).
 * `preview(intent, refs)` resolves to the routing preview for that chain; `announce(text)`
 * speaks a move or a change through the page's live status line.
 */
export function chainEditors(intents, chains, { preview, announce, fallbackHint = false }) {
  return intents.map((intent) => chainEditor(intent, chains[intent.id] || [], { preview, announce, fallbackHint }));
}

/** The built-in engine every chain of the intent ends with, and a warning when it is a poor one. */
function builtinLine(intent) {
  const line = h("p", { class: "hint" }, `Last resort, built in: ${intent.builtin}`);
  if (intent.builtin_note) {
    line.append(h("span", { class: "error" }, ` (${intent.builtin_note})`));
  }
  return line;
}

function chainEditor(intent, initial, { preview, announce, fallbackHint }) {
  const id = uid(`chain-${intent.id}`);
  const needs = `needs ${intent.capabilities.join(" + ")}`;
  const fallback = fallbackHint && intent.id !== "chat" && intent.capabilities.includes("text");
  const list = h("ol", { class: "chain", "aria-labelledby": `${id}-title` });
  const addInput = h("input", {
    id: `${id}-add`, type: "text", list: `${id}-models`, autocomplete: "off", spellcheck: "false",
    placeholder: "provider/model", "aria-describedby": `${id}-error`,
  });
  const models = h("datalist", { id: `${id}-models` });
  const error = h("p", { id: `${id}-error`, class: "error", "aria-live": "polite" });
  const summary = h("p", { class: "chain-summary muted" });
  const editor = h(
    "div",
    { class: "field chain-editor", role: "group", "aria-labelledby": `${id}-title`, dataset: { param: `chains.${intent.id}`, intent: intent.id } },
    h("h3", { id: `${id}-title` }, intent.id),
    h("p", { class: "hint" }, fallback ? `${needs}; empty: uses the chat chain` : needs),
    intent.builtin ? builtinLine(intent) : null,
    list,
    summary,
    h(
      "div",
      { class: "chain-add" },
      h("label", { for: addInput.id }, `Add a model to ${intent.id}`),
      addInput,
      models,
      h("button", { type: "button", class: "secondary", onclick: () => add() }, "Add"),
    ),
    error,
  );
  let version = 0;
  let listed = false;

  const refs = () => [...list.children].map((li) => li.dataset.ref);

  function item(ref) {
    const reasonId = uid("chain-reason");
    const li = h(
      "li",
      { class: "chain-item", draggable: "true", tabindex: "0", dataset: { ref }, "aria-describedby": reasonId, "aria-keyshortcuts": "Alt+ArrowUp Alt+ArrowDown" },
      h("span", { class: "grip", "aria-hidden": "true" }, "⠿"),
      h("code", {}, ref),
      h("span", { class: "chain-state", id: reasonId }),
      h("span", { class: "chain-actions" },
        h("button", { type: "button", class: "secondary", dataset: { action: "up" }, "aria-label": `Move ${ref} up`, onclick: () => move(li, -1) }, "↑"),
        h("button", { type: "button", class: "secondary", dataset: { action: "down" }, "aria-label": `Move ${ref} down`, onclick: () => move(li, 1) }, "↓"),
        h("button", { type: "button", class: "danger", dataset: { action: "remove" }, "aria-label": `Remove ${ref}`, onclick: () => remove(li) }, "Remove"),
      ),
    );
    li.addEventListener("keydown", (event) => {
      if (!event.altKey || (event.key !== "ArrowUp" && event.key !== "ArrowDown")) return;
      event.preventDefault();
      move(li, event.key === "ArrowUp" ? -1 : 1);
    });
    li.addEventListener("dragstart", (event) => {
      li.classList.add("dragging");
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", ref);
    });
    li.addEventListener("dragend", () => li.classList.remove("dragging"));
    li.addEventListener("dragover", (event) => {
      const dragged = list.querySelector(".dragging");
      if (!dragged || dragged === li) return;
      event.preventDefault();
      const { top, height } = li.getBoundingClientRect();
      li.before(dragged);
      if (event.clientY > top + height / 2) li.after(dragged);
    });
    li.addEventListener("drop", (event) => {
      event.preventDefault();
      const dragged = list.querySelector(".dragging");
      if (dragged) changed(`${dragged.dataset.ref} is now number ${position(dragged)} in ${intent.id}.`);
    });
    return li;
  }

  const position = (li) => [...list.children].indexOf(li) + 1;

  function move(li, step) {
    const target = step < 0 ? li.previousElementSibling : li.nextElementSibling;
    if (!target) {
      announce(`${li.dataset.ref} is already ${step < 0 ? "first" : "last"} in ${intent.id}.`);
      return;
    }
    const focused = document.activeElement;
    if (step < 0) target.before(li);
    else target.after(li);
    // Moving a node blurs it: give focus back to what had it, so the next key press moves on.
    (li.contains(focused) ? focused : li).focus();
    changed(`${li.dataset.ref} is now number ${position(li)} of ${list.children.length} in ${intent.id}.`);
  }

  function remove(li) {
    const next = li.nextElementSibling || li.previousElementSibling;
    li.remove();
    (next ? next.querySelector("[data-action=remove]") : addInput).focus();
    changed(`Removed ${li.dataset.ref} from ${intent.id}.`);
  }

  function changed(message) {
    if (message) announce(message);
    validate();
  }

  /** Show each model's state and reason; stale answers (an edit came since) are dropped. */
  async function validate() {
    const mine = ++version;
    const wanted = refs();
    if (!wanted.length && listed) {
      summary.textContent = fallback ? "Empty: requests use the chat chain." : "Empty.";
      return null;
    }
    let out;
    try {
      out = await preview(intent.id, wanted);
    } catch (failure) {
      if (mine === version) summary.textContent = `Could not check this chain: ${failure.message}`;
      return null;
    }
    if (mine !== version) return out;
    if (!listed) fillModels(out.reachable);
    const byRef = new Map(out.chain.map((r) => [r.ref, r]));
    for (const li of list.children) {
      const found = byRef.get(li.dataset.ref);
      const state = found ? found.state : "unusable";
      li.dataset.state = state;
      li.querySelector(".chain-state").textContent = found ? `${STATE_WORDS[state] || state}: ${found.usable ? found.profiles.join(", ") : found.text}` : "";
    }
    summary.textContent = !wanted.length
      ? fallback ? "Empty: requests use the chat chain." : "Empty."
      : out.first ? `Requests try ${out.first} first.` : "No model of this chain can be used now.";
    return out;
  }

  function fillModels(reachable) {
    listed = true;
    models.replaceChildren(...reachable.map((r) => h("option", { value: r.ref, label: r.usable ? "usable" : r.text })));
  }

  async function add() {
    error.textContent = "";
    addInput.removeAttribute("aria-invalid");
    const ref = addInput.value.trim();
    if (!ref) return;
    if (refs().includes(ref)) return refuse(`${ref} is already in the ${intent.id} chain.`);
    let out;
    try {
      out = await preview(intent.id, [ref]);
    } catch (failure) {
      return refuse(`Could not check ${ref}: ${failure.message}`);
    }
    if (!listed) fillModels(out.reachable);
    const [checked] = out.chain;
    if (!checked || checked.state === "unusable") return refuse(`Cannot add ${ref}: ${checked ? checked.text : "not a model ref"}.`);
    // Checked while the list could change (a second Add, a different spelling of the same ref).
    if (refs().includes(checked.ref)) return refuse(`${checked.ref} is already in the ${intent.id} chain.`);
    list.append(item(checked.ref));
    addInput.value = "";
    addInput.focus();
    changed(`Added ${checked.ref} to ${intent.id} as number ${list.children.length}.`);
  }

  function refuse(message) {
    error.textContent = message;
    addInput.setAttribute("aria-invalid", "true");
    addInput.focus();
  }

  addInput.addEventListener("keydown", (event) => {
    if (event.key !== "Enter") return;
    event.preventDefault(); // Enter adds the model; it does not submit the whole form.
    add();
  });
  addInput.addEventListener("focus", () => {
    if (!listed) validate();
  });
  list.append(...initial.map(item));
  if (initial.length) validate();
  else summary.textContent = fallback ? "Empty: requests use the chat chain." : "Empty.";
  editor.setChain = (saved) => {
    list.replaceChildren(...saved.map(item));
    validate();
  };
  return editor;
}

/** {intent: [refs]} for every editor in `form`; an empty list removes that intent's chain. */
export function readChains(form) {
  const chains = {};
  for (const editor of form.querySelectorAll(".chain-editor[data-intent]")) {
    chains[editor.dataset.intent] = [...editor.querySelectorAll("li[data-ref]")].map((li) => li.dataset.ref);
  }
  return chains;
}

/** Put saved chains back into the editors of `form` (after a save normalised them). */
export function showChains(form, chains) {
  for (const editor of form.querySelectorAll(".chain-editor[data-intent]")) editor.setChain(chains[editor.dataset.intent] || []);
}

/** A compact read-only view of chains. */
export function chainList(chains) {
  const entries = Object.entries(chains || {});
  if (!entries.length) return h("span", { class: "muted" }, "none");
  return h(
    "dl",
    { class: "chains" },
    entries.map(([intent, refs]) => [h("dt", {}, intent), h("dd", {}, refs.join(" → "))]),
  );
}

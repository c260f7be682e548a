// Copy buttons for what is shown once (a new key, an invite link, an admin token).

import { h } from "./dom.js";

async function copy(text, source, status) {
  try {
    await navigator.clipboard.writeText(text);
    status.textContent = "Copied to the clipboard.";
  } catch {
    // No clipboard access (an insecure origin, a denied permission): select it for Ctrl+C instead.
    const range = document.createRange();
    range.selectNodeContents(source);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    status.textContent = "This browser did not allow copying: the text is selected, press Ctrl+C (⌘C) to copy it.";
  }
}

/** A button that copies `text` (shown in the element `source`) and reports in `status`. */
export function copyButton(label, text, source, status) {
  return h("button", { type: "button", class: "secondary copy", onclick: () => copy(text, source, status) }, label);
}

// The panel that shows a server API key once, right after it was created: the key, copy
// buttons, and a copy-paste snippet for the openai Python SDK and for curl. Patchbay keeps only
// a hash, so closing the panel (or leaving the page) is the last time anyone sees the key.

import { copyButton } from "./clipboard.js";
import { h } from "./dom.js";

/** The Python and curl snippets that call this server's /v1 with `key`. */
export function snippets(origin, key, model) {
  const baseUrl = `${origin}/v1`;
  const python = [
    "from openai import OpenAI",
    "",
    `client = OpenAI(base_url=${JSON.stringify(baseUrl)}, api_key=${JSON.stringify(key)})`,
    "reply = client.chat.completions.create(",
    `    model=${JSON.stringify(model)},`,
    '    messages=[{"role": "user", "content": "Hello!"}],',
    ")",
    "print(reply.choices[0].message.content)",
  ].join("\n");
  const body = JSON.stringify({ model, messages: [{ role: "user", content: "Hello!" }] });
  const curl = [
    `curl ${baseUrl}/chat/completions \\`,
    `  -H "Authorization: Bearer ${key}" \\`,
    '  -H "Content-Type: application/json" \\',
    `  -d '${body.replaceAll("'", "'\\''")}'`,
  ].join("\n");
  return { python, curl };
}

/**
 * The panel for `created` (the API's answer, with `key`). `done()` runs when the person closes
 * it; the caller removes the panel, and with it the only copy of the key.
 */
export function keyPanel(created, { origin, done }) {
  const model = created.models?.length ? created.models[0] : "default";
  const { python, curl } = snippets(origin, created.key, model);
  const status = h("p", { class: "status", role: "status" });
  const keyCode = h("code", { class: "new-key", id: "new-key" }, created.key);
  const pythonCode = h("code", { class: "snippet-python" }, python);
  const curlCode = h("code", { class: "snippet-curl" }, curl);
  const heading = h("h2", { id: "new-key-title", tabindex: "-1" }, `Your new key “${created.name || created.prefix}”`);
  const panel = h(
    "section",
    { class: "key-panel", "aria-labelledby": "new-key-title" },
    heading,
    h(
      "p",
      { class: "warning" },
      h("strong", {}, "Copy it now: you will not see it again. "),
      "Patchbay keeps only a hash of it; if it is lost, revoke it and create another.",
    ),
    h("div", { class: "secret" }, keyCode, copyButton("Copy key", created.key, keyCode, status)),
    h("h3", {}, "Python (the openai SDK)"),
    h("pre", {}, pythonCode),
    copyButton("Copy the Python snippet", python, pythonCode, status),
    h("h3", {}, "curl"),
    h("pre", {}, curlCode),
    copyButton("Copy the curl command", curl, curlCode, status),
    status,
    h("div", { class: "actions" }, h("button", { type: "button", onclick: () => done() }, "Done: I have copied the key")),
  );
  queueMicrotask(() => heading.focus());
  return panel;
}

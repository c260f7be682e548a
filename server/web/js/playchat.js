// The playground's chat tab: messages to `/v1/chat/completions` (streamed) with the page's
// short-lived key (playgroundkey.js), routed by the agent's chain for an intent or pinned to
// one model. Under each reply: the serving connection and model, the billing source, the
// tokens, the cost (the stream's `: x-patchbay-cost` comment), the time to the first token and
// to the end, and the route trace (`x-patchbay-route`, or the stream's `: patchbay` trailer).

import { h, replace, uid } from "./dom.js";
import { GatewayError, gatewayError } from "./playgroundkey.js";
import { headerTrace } from "./trace.js";

// The intents a chat request can carry: the router infers `structured` from a response format.
const INTENTS = [
  ["chat", "chat"],
  ["structured", "structured (answers JSON)"],
];

/** One server-sent-events block: its `data:` payload and its comment lines. */
export function parseBlock(block) {
  const data = [];
  const comments = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
    else if (line.startsWith(":")) comments.push(line.slice(1).trimStart());
  }
  return { data: data.length ? data.join("\n") : null, comments };
}

/** Read an OpenAI chat stream, calling `onText` per delta; the usage, cost and trailer facts. */
async function readStream(response, onText) {
  const facts = { usage: null, cost: null, route: null, served: null, billingSource: null, error: null };
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffered += value.replace(/\r\n/g, "\n");
    let end;
    while ((end = buffered.indexOf("\n\n")) >= 0) {
      const { data, comments } = parseBlock(buffered.slice(0, end));
      buffered = buffered.slice(end + 2);
      for (const comment of comments) {
        if (comment.startsWith("x-patchbay-cost ")) facts.cost = comment.slice(16).trim();
        else if (comment.startsWith("patchbay ")) {
          const trailer = JSON.parse(comment.slice(9));
          facts.route = trailer.route || facts.route;
          facts.served = trailer.served || facts.served;
          facts.billingSource = trailer.billing_source || facts.billingSource;
        }
      }
      if (data === null || data === "[DONE]") continue;
      const chunk = JSON.parse(data);
      if (chunk.error) facts.error = chunk.error.message || "the stream ended with an error";
      if (chunk.usage) facts.usage = chunk.usage;
      const text = chunk.choices?.[0]?.delta?.content;
      if (text) onText(text);
    }
  }
  return facts;
}

function replyFacts(facts) {
  const usage = facts.usage;
  const rows = [
    ["Served by", facts.served || "—"],
    ["Model", facts.model || "—"],
    ["Billed to", facts.billingSource || "—"],
    ["Tokens", usage ? `${usage.prompt_tokens} in, ${usage.completion_tokens} out` : "—"],
    ["Cost", facts.cost != null ? `$${facts.cost}` : "—"],
    ["Latency", `first token ${facts.firstTokenMs ?? "—"} ms, whole reply ${facts.totalMs} ms`],
  ];
  return h(
    "div",
    { class: "reply-facts" },
    h("dl", { class: "chains" }, rows.map(([name, value]) => [h("dt", {}, name), h("dd", {}, value)])),
    h("details", {}, h("summary", {}, "Route trace"), headerTrace(facts.route)),
  );
}

/** Fill `el` with the chat tab; `who()` answers `{org, agent}`, `keys` the page's PlaygroundKeys. */
export function chatTab(el, { who, keys }) {
  const messages = [];
  const ids = { intent: uid("pg-intent"), pinned: uid("pg-pinned"), text: uid("pg-text") };
  const log = h("div", { class: "chat-log", id: "pg-chat-log", "aria-live": "polite" }, h("p", { class: "empty" }, "No messages yet. Write one below."));
  const failure = h("p", { class: "error", role: "alert" });
  const intent = h("select", { id: ids.intent }, INTENTS.map(([value, label]) => h("option", { value }, label)));
  const pinned = h("input", { id: ids.pinned, type: "text", spellcheck: "false", placeholder: "openai/gpt-4o-mini", "aria-describedby": `${ids.pinned}-hint` });
  const text = h("textarea", { id: ids.text, rows: 3, required: true });
  const send = h("button", { type: "submit" }, "Send");
  const clear = h("button", { type: "button", class: "secondary", onclick: () => reset() }, "New conversation");

  function reset() {
    messages.length = 0;
    replace(log, h("p", { class: "empty" }, "No messages yet. Write one below."));
    failure.textContent = "";
  }

  function model(agent) {
    const ref = pinned.value.trim();
    if (ref) return ref;
    return agent ? `agent:${agent}` : "default";
  }

  async function submit(event) {
    event.preventDefault();
    const content = text.value.trim();
    if (!content) {
      failure.textContent = "Write a message first.";
      text.focus();
      return;
    }
    failure.textContent = "";
    log.querySelector(".empty")?.remove();
    const { org, agent } = who();
    messages.push({ role: "user", content });
    log.append(h("p", { class: "user" }, h("strong", {}, "You: "), content));
    text.value = "";
    const body = h("span", { class: "reply-text" });
    const status = h("p", { class: "muted", role: "status" }, "Waiting for the first token…");
    const turn = h("div", { class: "assistant" }, h("p", {}, h("strong", {}, "Agent: "), body), status);
    log.append(turn);
    send.disabled = true;
    const started = performance.now();
    let firstTokenMs = null;
    try {
      const key = await keys.key(org, agent);
      const request = { model: model(agent), messages, stream: true, stream_options: { include_usage: true } };
      if (intent.value === "structured") request.response_format = { type: "json_object" };
      let response;
      try {
        response = await fetch("/v1/chat/completions", {
          method: "POST",
          headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
          body: JSON.stringify(request),
          credentials: "omit",
          cache: "no-store",
        });
      } catch {
        throw new GatewayError(0, "Cannot reach the Patchbay server. Check that it is running, then try again.");
      }
      if (!response.ok) throw await gatewayError(response);
      const facts = await readStream(response, (delta) => {
        if (firstTokenMs === null) {
          firstTokenMs = Math.round(performance.now() - started);
          status.textContent = "Writing…";
        }
        body.append(delta);
      });
      facts.route = facts.route || response.headers.get("x-patchbay-route");
      facts.served = response.headers.get("x-patchbay-provider") || facts.served;
      facts.model = response.headers.get("x-patchbay-model");
      facts.billingSource = facts.billingSource || response.headers.get("x-patchbay-billing-source");
      facts.firstTokenMs = firstTokenMs;
      facts.totalMs = Math.round(performance.now() - started);
      messages.push({ role: "assistant", content: body.textContent });
      status.replaceWith(replyFacts(facts));
      if (facts.error) turn.append(h("p", { class: "error", role: "alert" }, `The reply stopped: ${facts.error}`));
    } catch (error) {
      messages.pop();
      const trace = error.headers ? error.headers.get("x-patchbay-route") : null;
      status.replaceWith(
        h("p", { class: "error", role: "alert" }, `No reply: ${error.message}`),
        trace ? h("details", {}, h("summary", {}, "Route trace"), headerTrace(trace)) : null,
      );
      text.value = content;
    } finally {
      send.disabled = false;
      text.focus();
    }
  }

  replace(
    el,
    h("h2", {}, "Chat"),
    h(
      "form",
      { class: "usage-window", onsubmit: (e) => e.preventDefault() },
      h("div", { class: "field" }, h("label", { for: ids.intent }, "Routing intent"), intent),
      h(
        "div",
        { class: "field" },
        h("label", { for: ids.pinned }, "Pinned model (optional)"),
        pinned,
        h("p", { class: "hint", id: `${ids.pinned}-hint` }, "Empty: the agent's chain for the intent. A model ref, an alias or provider:name/model: only that model."),
      ),
    ),
    log,
    h(
      "form",
      { class: "chat-form", onsubmit: submit, novalidate: true },
      h("div", { class: "field" }, h("label", { for: ids.text }, "Message"), text),
      failure,
      h("div", { class: "actions" }, send, clear),
    ),
  );
}

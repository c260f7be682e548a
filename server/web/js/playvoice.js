// The playground's voice tab: the browser client module (/sdk/patchbay-voice.js) talking to
// the chosen agent with this page's microphone, on a realtime token the page mints for itself
// (playgroundkey.js). It shows the live transcripts, the reply text, each turn's latency as a
// waterfall with its segments' cost and billing source (waterfall.js), and an event log of
// what went over the socket (audio and text deltas only counted), including the
// `conversation.item.truncate` the module sends on barge-in.

import { PatchbayVoice } from "/sdk/patchbay-voice.js";
import { h, replace } from "./dom.js";
import { waterfall } from "./waterfall.js";

const LOG_LIMIT = 200;
const QUIET = new Set([
  "response.output_audio.delta",
  "response.output_audio_transcript.delta",
  "response.output_text.delta",
  "input_audio_buffer.append",
]);

/** Fill `el` with the voice tab; `who()` answers `{org, agent}`, `keys` the page's PlaygroundKeys. */
export function voiceTab(el, { who, keys }) {
  let voice = null;
  let turns = 0;
  let quiet = 0;
  const state = h("span", { id: "pg-voice-state" }, "idle");
  const played = h("span", { id: "pg-voice-played" }, "0");
  const failure = h("p", { class: "error", role: "alert", id: "pg-voice-error" });
  const transcript = h("div", { class: "chat-log", id: "pg-voice-log", "aria-live": "polite" }, h("p", { class: "empty" }, "Nothing said yet. Press Start talking and speak."));
  const waterfalls = h("div", { id: "pg-waterfalls" }, h("p", { class: "empty" }, "Each turn's latency and cost show here once its reply is done."));
  const events = h("ol", { class: "event-log", id: "pg-events" });
  const counted = h("p", { class: "muted" }, "Audio and text deltas received: 0");
  const start = h("button", { type: "button", id: "pg-voice-start", onclick: () => begin() }, "Start talking");
  const stop = h("button", { type: "button", class: "secondary", id: "pg-voice-stop", disabled: true, onclick: () => voice && voice.stop() }, "Stop");
  let current = null;

  function note(direction, type, detail = "") {
    events.append(h("li", { dataset: { type, direction } }, h("code", {}, `${direction} ${type}`), detail ? ` ${detail}` : ""));
    while (events.childElementCount > LOG_LIMIT) events.firstElementChild.remove();
  }

  function firstLine(container) {
    if (container.querySelector(".empty")) container.replaceChildren();
  }

  function begin() {
    const { org, agent } = who();
    failure.textContent = "";
    if (voice) voice.stop();
    voice = new PatchbayVoice({
      url: window.location.origin,
      model: agent ? `agent:${agent}` : "default",
      getToken: () => keys.realtimeToken(org, agent, agent ? `agent:${agent}` : "default"),
    });
    window.playgroundVoice = voice; // for the browser console (and the acceptance test)
    voice.on("state", ({ state: now }) => {
      state.textContent = now;
      start.disabled = now !== "idle" && now !== "closed";
      stop.disabled = now === "idle" || now === "closed";
    });
    voice.on("transcript", ({ role, text, final, itemId }) => {
      firstLine(transcript);
      if (role === "user") {
        transcript.append(h("p", { class: "user" }, h("strong", {}, "You: "), text));
        return;
      }
      if (!current || current.itemId !== itemId) {
        current = { itemId, text: h("span", { class: "reply-text" }) };
        transcript.append(h("p", { class: "assistant", dataset: { item: itemId } }, h("strong", {}, "Agent: "), current.text));
      }
      if (final) current.text.textContent = text;
      else current.text.append(text);
    });
    voice.on("playback", ({ msPlayed }) => {
      played.textContent = String(msPlayed);
    });
    voice.on("interrupted", ({ itemId, audioEndMs }) => {
      note("→", "conversation.item.truncate", `audio_end_ms=${audioEndMs}`);
      const reply = transcript.querySelector(`p.assistant[data-item="${CSS.escape(itemId)}"]`);
      if (reply) reply.append(h("span", { class: "muted interrupted" }, ` (interrupted after ${audioEndMs} ms of audio)`));
    });
    voice.on("resumed", ({ items }) => {
      note("→", "conversation.item.create", `reconnected: ${items} messages carried into the new session`);
    });
    voice.on("latency", ({ metadata, clientFirstAudioMs, status }) => {
      if (!metadata || !metadata.since_speech_end_ms) return;
      turns += 1;
      firstLine(waterfalls);
      waterfalls.prepend(waterfall(metadata, clientFirstAudioMs, `Turn ${turns} (${status})`));
    });
    voice.on("event", (event) => {
      if (QUIET.has(event.type)) {
        quiet += 1;
        counted.textContent = `Audio and text deltas received: ${quiet}`;
        return;
      }
      const detail = event.type === "error" ? `${event.error?.code || ""} ${event.error?.message || ""}` : event.type === "conversation.item.truncated" ? `audio_end_ms=${event.audio_end_ms}` : "";
      note("←", event.type, detail);
    });
    voice.on("error", ({ code, message, fatal }) => {
      failure.textContent = `${fatal ? "Stopped: " : ""}${message}${code ? ` (${code})` : ""}`;
    });
    voice.start();
  }

  replace(
    el,
    h("h2", {}, "Voice"),
    h("p", { class: "hint" }, "Talk with your microphone; speak over a reply to interrupt it. The reply plays on this device's speakers."),
    h("div", { class: "actions" }, start, stop),
    h("p", {}, "Session: ", state, " · reply audio played: ", played, " ms"),
    failure,
    h("h3", {}, "Conversation"),
    transcript,
    h("h3", {}, "Latency and cost per turn"),
    waterfalls,
    h("details", { class: "events" }, h("summary", {}, "Event log"), counted, events),
  );
  return () => voice && voice.stop();
}

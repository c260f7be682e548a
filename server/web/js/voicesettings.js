// An agent's voice settings in the agent form (the TTS voice, instructions, language and
// output format its voice sessions start with) and a compact view of them for the agents table.
//
// An empty field clears that setting: the form always sends all four, so what the admin sees
// is what is saved. Errors name the field as `voice_settings.<name>` (forms.js shows them there).

import { h } from "./dom.js";
import { field } from "./forms.js";

const FORMAT_LABELS = {
  pcm16: "PCM16, 24 kHz",
  g711_ulaw: "G.711 µ-law, 8 kHz",
  g711_alaw: "G.711 A-law, 8 kHz",
};

const NAMES = ["voice", "instructions", "language", "output_format"];

function formatLabel(format) {
  return FORMAT_LABELS[format] || format;
}

/** The fieldset for `settings` ({voice, instructions, language, output_format}, nulls allowed). */
export function voiceFields(outputFormats, settings = {}) {
  const current = settings || {};
  const voice = field({
    label: "Voice",
    name: "voice",
    param: "voice_settings.voice",
    hint: "The TTS voice id, as the agent's speech provider names it. Empty: the engine's default.",
    attrs: { type: "text", autocomplete: "off", spellcheck: "false", maxlength: "128" },
  });
  voice.querySelector("input").value = current.voice || "";
  const instructions = field({
    label: "Instructions",
    name: "instructions",
    param: "voice_settings.instructions",
    hint: "The system prompt of the agent's voice sessions (at most 32 KB). A client's session.update still replaces it.",
    control: "textarea",
    attrs: { rows: "5", spellcheck: "true" },
  });
  instructions.querySelector("textarea").value = current.instructions || "";
  const language = field({
    label: "Language",
    name: "language",
    param: "voice_settings.language",
    hint: "The language callers speak, for speech recognition: a code such as en or en-US. Empty: detected.",
    attrs: { type: "text", autocomplete: "off", spellcheck: "false", placeholder: "en-US" },
  });
  language.querySelector("input").value = current.language || "";
  const format = field({
    label: "Output format",
    name: "output_format",
    param: "voice_settings.output_format",
    hint: "Audio sent back over the realtime WebSocket. Phone calls always use G.711 µ-law.",
    control: "select",
    options: [
      { value: "", label: "Server default (PCM16, 24 kHz)", selected: !current.output_format },
      ...outputFormats.map((f) => ({ value: f, label: formatLabel(f), selected: current.output_format === f })),
    ],
  });
  return h("fieldset", { class: "voice-settings" }, h("legend", {}, "Voice sessions"), voice, instructions, language, format);
}

/** The four settings as the admin API takes them; an empty string clears one. */
export function readVoice(form) {
  const els = form.elements;
  return {
    voice: els.voice.value.trim(),
    instructions: els.instructions.value,
    language: els.language.value.trim(),
    output_format: els.output_format.value,
  };
}

/** A read-only summary for the agents table; the instructions are cut short. */
export function voiceSummary(settings) {
  const current = settings || {};
  if (!NAMES.some((n) => current[n])) return h("span", { class: "muted" }, "server defaults");
  const rows = [];
  if (current.voice) rows.push(["voice", current.voice]);
  if (current.language) rows.push(["language", current.language]);
  if (current.output_format) rows.push(["output", formatLabel(current.output_format)]);
  if (current.instructions) {
    const text = current.instructions.trim();
    rows.push(["instructions", text.length > 60 ? `${text.slice(0, 60).trimEnd()}…` : text]);
  }
  return h(
    "dl",
    { class: "chains voice-summary" },
    rows.map(([name, value]) => [h("dt", {}, name), h("dd", {}, value)]),
  );
}

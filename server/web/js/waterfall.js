// One voice turn's latency as a waterfall: end of speech → transcript → first token → first
// audio (the server's marks, `response.done.response.metadata.since_speech_end_ms`), then the
// first reply audio heard in this browser (the client module's `clientFirstAudioMs`), with
// what each segment cost and who paid for it (`cost_by_segment`, `billing_source_by_segment`).
// Bars are SVG geometry (the CSP allows no inline style); the figures are in the table.

import { h, svg, uid } from "./dom.js";

const WIDTH = 480;
const ROW = 22;

/** The waterfall's steps from a turn's metadata: [{name, segment, from, to}] in ms after end of speech. */
export function turnSteps(metadata, clientFirstAudioMs) {
  const marks = metadata.since_speech_end_ms || {};
  const steps = [
    { name: "End of speech → transcript", segment: "stt", from: 0, to: marks.transcript },
    { name: "Transcript → first token", segment: "llm", from: marks.transcript, to: marks.llm_first_token },
    { name: "First token → first audio", segment: "tts", from: marks.llm_first_token, to: marks.first_audio },
    { name: "First audio → heard here", segment: null, from: marks.first_audio, to: clientFirstAudioMs },
  ];
  return steps.map((s) => ({ ...s, from: s.from ?? null, to: s.to ?? null }));
}

const ms = (v) => (v == null ? "—" : `${Math.round(v)} ms`);

/** The waterfall of one turn: a labelled SVG and a table of the same figures. */
export function waterfall(metadata, clientFirstAudioMs, turnLabel) {
  const steps = turnSteps(metadata, clientFirstAudioMs);
  const costs = metadata.cost_by_segment || {};
  const sources = metadata.billing_source_by_segment || {};
  const end = Math.max(1, ...steps.map((s) => s.to ?? 0));
  const x = (v) => (WIDTH * v) / end;
  const titleId = uid("waterfall-title");
  const bars = steps.map((s, i) =>
    s.from == null || s.to == null
      ? null
      : svg("rect", { class: `bar series-${s.segment || "other"}`, x: x(s.from), y: i * ROW + 4, width: Math.max(1, x(s.to) - x(s.from)), height: ROW - 8 }),
  );
  return h(
    "figure",
    { class: "waterfall chart" },
    h("figcaption", { id: titleId }, `${turnLabel}: ${ms(steps[2].to)} from end of speech to first audio, cost $${metadata.cost ?? "—"}`),
    svg("svg", { viewBox: `0 0 ${WIDTH} ${steps.length * ROW}`, role: "img", "aria-labelledby": titleId }, bars),
    h(
      "table",
      {},
      h("thead", {}, h("tr", {}, ["Step", "Ends after", "Takes", "Segment", "Cost", "Billed to"].map((c) => h("th", { scope: "col" }, c)))),
      h(
        "tbody",
        {},
        steps.map((s) =>
          h(
            "tr",
            { dataset: { segment: s.segment || "client" } },
            h("th", { scope: "row" }, s.name),
            h("td", { class: "num" }, ms(s.to)),
            h("td", { class: "num" }, s.from != null && s.to != null ? ms(s.to - s.from) : "—"),
            h("td", {}, s.segment || "browser"),
            h("td", { class: "num" }, s.segment && costs[s.segment] != null ? `$${costs[s.segment]}` : "—"),
            h("td", {}, (s.segment && sources[s.segment]) || "—"),
          ),
        ),
      ),
    ),
  );
}

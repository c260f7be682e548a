// Patchbay voice client for browsers (served at /sdk/patchbay-voice.js; an ES module, no build step).
//
//   import { PatchbayVoice } from "https://patchbay.example/sdk/patchbay-voice.js";
//   const voice = new PatchbayVoice({ getToken: async () => (await fetch("/voice-token", {method: "POST"})).json() });
//   voice.on("transcript", ({ role, text }) => console.log(role, text));
//   await voice.start();   // from a click: it opens the microphone and the audio output
//
// Streams the microphone (patchbay-voice-audio.js) as `input_audio_buffer.append` over
// `/v1/realtime?token=…`, plays the reply from a jitter buffer, stops it at once on
// `input_audio_buffer.speech_started` and sends `conversation.item.truncate` with what was heard,
// and reconnects with backoff and a fresh token, carrying the conversation over
// (patchbay-voice-conversation.js). It connects with `resumable=1`, so a server that drains (a
// deploy) closes the session with 1012 at a quiet moment, and then it reconnects at once.
// The token comes from your backend (`POST /v1/realtime/client_secrets` with your API key; the key never reaches the browser).
// Events ("state", "transcript", "latency", "interrupted", "playback", "resumed", "error", "event") and
// `stats`: docs/voice.md, "The browser client module".

import { AudioIO, fromBase64, pcmRate, toBase64 } from "./patchbay-voice-audio.js";
import { Conversation } from "./patchbay-voice-conversation.js";
import { Heartbeat } from "./patchbay-voice-heartbeat.js";

// Refusals that a new token or a retry will not fix: the session ends.
const FATAL = new Set(["invalid_api_key", "token_expired", "model_not_allowed", "session_expired", "auth_failures_exceeded"]);
// Microphone audio kept while no session is ready to take it (connecting, reconnecting), sent
// once one is: the last HOLD_MS of it, so words spoken right after start() are not lost.
const HOLD_MS = 3000;
// A draining server closes a resuming client's session with 1012 at a quiet moment; the last
// REWIND_MS of microphone audio sent is sent again to the next session, so speech that began as
// the old session closed (before its VAD could tell) reaches the new one.
const REWIND_MS = 500;
const SERVICE_RESTART = 1012;
// Silence from the server before the client pings it, and the wait for the answer: a socket that
// answers nothing for twice this is given up and replaced (patchbay-voice-heartbeat.js).
const HEARTBEAT_MS = 5000;

export class PatchbayVoice extends EventTarget {
  /**
   * @param {object} options
   * @param {() => Promise<string | {value: string}>} options.getToken  mints a token on your backend; called for every (re)connection
   * @param {string} [options.url]  Patchbay's origin (default: where this module was loaded from)
   * @param {string} [options.model]  the route: "default", "agent:NAME" or "provider/model"
   * @param {object} [options.session]  fields for `session.update` (instructions, audio.output.voice, turn_detection, …)
   * @param {{attempts?: number, baseMs?: number, maxMs?: number}} [options.reconnect]
   * @param {number} [options.prebufferMs]  reply audio buffered before playback starts (default 60)
   * @param {number} [options.frameMs]  microphone audio per append (default 40)
   * @param {boolean} [options.resume]  replay the conversation so far into the session a reconnection opens (default true)
   * @param {number} [options.heartbeatMs]  server silence before a ping, and the wait for its answer; a connection that stays silent is replaced (default 5000; 0 never)
   */
  constructor(options) {
    super();
    if (!options || typeof options.getToken !== "function") throw new TypeError("PatchbayVoice needs a getToken() callback");
    this.options = options;
    this.url = new URL(options.url || new URL("/", import.meta.url).href);
    this.model = options.model || "default";
    this.sessionId = null; // the server's id of the current (or last) session
    this.retry = { attempts: 6, baseMs: 500, maxMs: 8000, ...(options.reconnect || {}) };
    this.state = "idle";
    this.stats = { framesSent: 0, framesHeld: 0, samplesPlayed: 0, framesPlayed: 0, msPlayed: 0, responses: 0, reconnects: 0, itemsReplayed: 0, framesResent: 0, connectionsLost: 0 };
    this.conversation = new Conversation();
    this.held = []; // frames captured while no session was ready (see HOLD_MS)
    this.sent = []; // the last frames sent (see REWIND_MS)
    this.inputRate = 24000;
    this.outputRate = 24000;
    this.ws = null;
    this.ready = false;
    this.failures = 0;
    this.dropped = new Set();
    this.current = null; // the assistant item whose audio is playing or arriving
    this.heardHere = new Set(); // items whose audio came over the current connection
    this.speechStoppedAt = null;
    this.firstAudioAt = null;
  }

  on(type, listener) {
    const wrapped = (e) => listener(e.detail);
    this.addEventListener(type, wrapped);
    return () => this.removeEventListener(type, wrapped);
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.emit("state", { state });
  }

  fail(error, fatal) {
    this.emit("error", { type: error.type || "client_error", code: error.code || null, message: error.message || String(error), fatal });
  }

  /** Open the microphone and the audio output, then connect. Call it from a user gesture. */
  async start() {
    if (this.state !== "idle" && this.state !== "closed") return;
    this.stopping = false;
    this.failures = 0;
    this.conversation = new Conversation(); // a new call: nothing to carry over
    this.sessionId = null;
    this.setState("connecting");
    try {
      this.audio = await AudioIO.open(
        { inputRate: this.inputRate, frameMs: this.options.frameMs || 40, prebufferMs: this.options.prebufferMs || 60 },
        {
          onFrame: (frame) => this.sendFrame(frame),
          onPlayer: (report) => this.fromPlayer(report),
          onError: (code, message) => this.fail({ code, message }, false),
        },
      );
    } catch (err) {
      this.fail({ code: "audio_unavailable", message: `the microphone or audio output could not be opened: ${err.message || err}` }, true);
      this.end();
      return;
    }
    await this.connect();
  }

  /** Hang up: close the socket, the microphone and the audio output. */
  stop() {
    this.stopping = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000);
    this.end();
  }

  /** The session is over (hung up, or refused for good): free the microphone and the output. */
  end() {
    if (this.audio) this.audio.close();
    this.held = [];
    this.sent = [];
    this.audio = this.current = null;
    this.setState("closed");
  }

  async connect() {
    let token;
    try {
      const minted = await this.options.getToken();
      token = typeof minted === "string" ? minted : minted && minted.value;
      if (!token) throw new Error("getToken() returned no token");
    } catch (err) {
      this.fail({ code: "token_unavailable", message: `could not get a realtime token from your backend: ${err.message || err}` }, false);
      this.reconnectLater();
      return;
    }
    if (this.stopping) return;
    const ws_url = new URL("/v1/realtime", this.url);
    ws_url.protocol = this.url.protocol === "https:" ? "wss:" : "ws:";
    ws_url.searchParams.set("model", this.model);
    ws_url.searchParams.set("token", token);
    // We carry the conversation into a new session: a draining server may close this one early.
    if (this.options.resume !== false) ws_url.searchParams.set("resumable", "1");
    // The session we gave up on may still hold one of the key's session slots: it makes room.
    if (this.sessionId) ws_url.searchParams.set("replaces", this.sessionId);
    const ws = new WebSocket(ws_url.href);
    this.ws = ws;
    this.ready = false;
    this.opened = false;
    this.heardHere = new Set();
    this.refusal = null;
    const beat = new Heartbeat(this.options.heartbeatMs ?? HEARTBEAT_MS, {
      ping: () => this.send({ type: "patchbay.ping" }),
      lost: (silentMs) => this.lost(ws, silentMs),
    });
    ws.onopen = () => {
      if (this.ws === ws) this.opened = true;
      ws.send(JSON.stringify({ type: "session.update", session: this.sessionFields() }));
    };
    ws.onmessage = (m) => {
      beat.heard();
      this.receive(JSON.parse(m.data));
    };
    ws.onclose = (e) => {
      beat.stop();
      this.closed(ws, e.code, e.reason);
    };
  }

  /** The socket closed, or carries nothing any more (`lost`). */
  closed(ws, code, reason) {
    if (this.ws !== ws) return;
    this.ws = null;
    this.ready = false;
    if (this.stopping) {
      this.stopPlayback(false);
      return this.setState("closed");
    }
    // No more audio will come for the reply playing now; what came plays out while we reconnect.
    if (this.audio && this.current !== null) this.audio.end(this.current);
    if (this.refusal || code === 1008) {
      if (!this.refusal) this.fail({ type: "invalid_request_error", code: "refused", message: reason || "the server refused the session" }, true);
      return this.end();
    }
    if (!this.opened) {
      this.fail({ code: "connect_failed", message: "could not open the realtime session: the server is unreachable, or it refused the token (invalid, or its API key revoked)" }, false);
    }
    const restart = code === SERVICE_RESTART;
    if (restart) {
      this.held = this.sent.concat(this.held); // see REWIND_MS
      this.stats.framesResent += this.sent.length;
    }
    this.sent = [];
    this.reconnectLater(restart);
  }

  /** Nothing came from the server, not even the answer to a ping (Heartbeat): give the socket up. */
  lost(ws, silentMs) {
    if (this.ws !== ws) return;
    this.fail({ code: "connection_lost", message: `no answer from the server for ${(silentMs / 1000).toFixed(1)} s: reconnecting` }, false);
    this.stats.connectionsLost++;
    ws.onmessage = null;
    ws.close(4000, "no answer");
    this.closed(ws, 4000, "no answer");
  }

  /** Reconnect after a backoff; at once when `now` (a restarting server: another will answer). */
  reconnectLater(now = false) {
    if (this.stopping) return;
    if (this.failures >= this.retry.attempts) {
      this.fail({ code: "reconnect_failed", message: `gave up after ${this.failures} attempts to reconnect` }, true);
      return this.end();
    }
    const delay = now ? 0 : Math.min(this.retry.maxMs, this.retry.baseMs * 2 ** this.failures) * (0.5 + Math.random() / 2);
    this.failures++;
    this.stats.reconnects++;
    this.setState("reconnecting");
    this.timer = setTimeout(() => this.connect(), delay);
  }

  sessionFields() {
    const extra = this.options.session || {};
    const audio = extra.audio || {};
    return {
      type: "realtime",
      ...extra,
      audio: {
        ...audio,
        input: { ...(audio.input || {}), format: { type: "audio/pcm", rate: 24000 } },
        output: { ...(audio.output || {}), format: { type: "audio/pcm", rate: 24000 } },
      },
    };
  }

  sendFrame(frame) {
    if (frame.rate !== this.inputRate) return;
    if (!this.ready || !this.ws || this.ws.readyState !== WebSocket.OPEN) {
      this.held.push(frame);
      this.stats.framesHeld++;
      const keep = Math.ceil(HOLD_MS / (this.options.frameMs || 40));
      if (this.held.length > keep) this.held.splice(0, this.held.length - keep);
      return;
    }
    this.appendAudio(frame);
  }

  appendAudio(frame) {
    this.ws.send(JSON.stringify({ type: "input_audio_buffer.append", audio: toBase64(frame.pcm) }));
    this.stats.framesSent++;
    this.sent.push(frame);
    if (this.sent.length > Math.ceil(REWIND_MS / (this.options.frameMs || 40))) this.sent.shift();
  }

  /** A reconnection's new session starts empty: the conversation so far goes in first. */
  replayConversation() {
    if (this.options.resume === false) return; // nothing was kept (receive)
    const items = this.conversation.replay();
    for (const event of items) this.send(event);
    if (items.length === 0) return;
    this.stats.itemsReplayed += items.length;
    this.emit("resumed", { items: items.length });
  }

  /** The session is ready: what the microphone caught meanwhile goes first, in order. */
  sendHeld() {
    const held = this.held;
    this.held = [];
    for (const frame of held) this.appendAudio(frame);
  }

  send(event) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(event));
  }

  receive(event) {
    if (event.type === "patchbay.pong") return; // the heartbeat's own: it has been heard
    this.emit("event", event);
    if (this.options.resume !== false) {
      const ask = this.conversation.follow(event); // asks again for an item truncated after a barge-in
      if (ask) this.send(ask);
    }
    switch (event.type) {
      case "session.created":
        this.sessionId = (event.session && event.session.id) || null;
      // falls through
      case "session.updated":
        this.applySession(event.session || {});
        if (event.type === "session.updated" && !this.ready) {
          this.ready = true;
          this.failures = 0;
          this.replayConversation();
          this.sendHeld();
          this.setState("open");
        }
        break;
      case "error": {
        const error = event.error || {};
        const fatal = FATAL.has(error.code);
        if (fatal) this.refusal = error;
        this.fail(error, fatal);
        break;
      }
      case "input_audio_buffer.speech_started":
        this.stopPlayback(true);
        break;
      case "input_audio_buffer.speech_stopped":
        this.speechStoppedAt = performance.now();
        this.firstAudioAt = null;
        break;
      case "conversation.item.input_audio_transcription.completed":
        this.emit("transcript", { role: "user", text: event.transcript, final: true, itemId: event.item_id });
        break;
      case "response.output_audio_transcript.delta":
      case "response.output_text.delta":
        if (!this.dropped.has(event.item_id)) this.emit("transcript", { role: "assistant", text: event.delta, final: false, itemId: event.item_id });
        break;
      case "response.output_audio_transcript.done":
      case "response.output_text.done":
        this.emit("transcript", { role: "assistant", text: event.transcript ?? event.text, final: true, itemId: event.item_id });
        break;
      case "response.output_audio.delta":
        this.playDelta(event);
        break;
      case "response.output_audio.done":
        if (this.audio) this.audio.end(event.item_id);
        break;
      case "response.done":
        this.responseDone(event.response || {});
        break;
    }
  }

  applySession(session) {
    const audio = session.audio || {};
    const input = pcmRate(audio.input && audio.input.format, this.inputRate);
    this.outputRate = pcmRate(audio.output && audio.output.format, this.outputRate);
    if (input !== this.inputRate) {
      this.inputRate = input;
      if (this.audio) this.audio.setInputRate(input);
    }
  }

  playDelta(event) {
    if (!this.audio || this.dropped.has(event.item_id)) return;
    if (this.firstAudioAt === null) this.firstAudioAt = performance.now();
    this.current = event.item_id;
    this.heardHere.add(event.item_id);
    const pcm = fromBase64(event.delta);
    this.audio.push(event.item_id, this.outputRate, pcm);
  }

  /** Barge-in: silence the reply now; the player answers how much was heard, and we truncate. */
  stopPlayback(truncate) {
    if (!this.audio || this.current === null) return;
    this.dropped.add(this.current);
    this.truncateAfterClear = truncate;
    this.current = null;
    this.audio.clear();
  }

  fromPlayer(m) {
    if (!this.audio) return;
    if (m.type === "progress" || m.type === "drained") {
      this.stats.samplesPlayed = m.samplesPlayed;
      this.stats.framesPlayed = m.framesPlayed;
      this.stats.msPlayed = Math.round(this.audio.ms(m.samplesPlayed));
      this.emit("playback", { ...this.stats, buffered: m.buffered });
    }
    if (m.type === "drained" && this.current === m.item) {
      this.current = null;
    } else if (m.type === "cleared" && m.item && m.pending) {
      const audioEndMs = Math.floor(this.audio.ms(m.played));
      // An item from before a reconnection is text in this session: there is no audio to truncate.
      if (this.truncateAfterClear && this.heardHere.has(m.item)) {
        this.send({ type: "conversation.item.truncate", item_id: m.item, content_index: 0, audio_end_ms: audioEndMs });
      }
      this.emit("interrupted", { itemId: m.item, audioEndMs });
    }
  }

  responseDone(response) {
    this.stats.responses++;
    const metadata = response.metadata || {};
    const client = this.speechStoppedAt !== null && this.firstAudioAt !== null ? Math.round(this.firstAudioAt - this.speechStoppedAt) : null;
    this.emit("latency", {
      turnId: metadata.turn_id || null,
      status: response.status,
      v2vMs: metadata.v2v_ms ?? null,
      serverMs: metadata.server_ms ?? null,
      clientFirstAudioMs: client,
      metadata,
    });
    this.speechStoppedAt = null;
  }
}

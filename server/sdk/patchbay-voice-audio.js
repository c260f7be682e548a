// Patchbay voice client: the browser audio graph (served at /sdk/patchbay-voice-audio.js).
//
// `AudioIO.open()` asks for the microphone (echo cancellation, noise suppression and automatic
// gain control on), starts an AudioContext at the device's rate and wires the two AudioWorklet
// processors of patchbay-voice-worklet.js: microphone → capture (resampled PCM16 frames out
// through `onFrame`) and player (the jitter buffer) → speakers, whose reports come through
// `onPlayer`. Used by patchbay-voice.js; apps use that module, not this one.

const WORKLET_URL = new URL("./patchbay-voice-worklet.js", import.meta.url);

export function toBase64(buffer) {
  const bytes = new Uint8Array(buffer);
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

export function fromBase64(text) {
  const raw = atob(text);
  const bytes = new Uint8Array(raw.length & ~1);
  for (let i = 0; i < bytes.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes.buffer;
}

/** The sample rate of a GA session's `audio.*.format` when it is PCM; `fallback` otherwise. */
export function pcmRate(format, fallback) {
  if (format && typeof format === "object" && format.type === "audio/pcm") return format.rate || 24000;
  return fallback;
}

export class AudioIO {
  /**
   * @param {{inputRate: number, frameMs: number, prebufferMs: number}} options
   * @param {{onFrame: (frame: {rate: number, pcm: ArrayBuffer}) => void, onPlayer: (report: object) => void, onError: (code: string, message: string) => void}} handlers
   */
  static async open(options, handlers) {
    const io = new AudioIO();
    try {
      await io.start(options, handlers);
    } catch (err) {
      io.close();
      throw err;
    }
    return io;
  }

  async start({ inputRate, frameMs, prebufferMs }, { onFrame, onPlayer, onError }) {
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    this.context = new AudioContext({ latencyHint: "interactive" });
    this.sampleRate = this.context.sampleRate;
    await this.context.audioWorklet.addModule(WORKLET_URL.href);
    await this.context.resume();
    const source = this.context.createMediaStreamSource(this.stream);
    this.capture = new AudioWorkletNode(this.context, "patchbay-capture", {
      numberOfOutputs: 1,
      processorOptions: { rate: inputRate, frameMs },
    });
    this.capture.port.onmessage = (e) => onFrame(e.data);
    this.capture.onprocessorerror = () => onError("capture_failed", "the microphone processor stopped");
    const mute = this.context.createGain();
    mute.gain.value = 0; // keeps the capture node pulled without echoing the microphone
    source.connect(this.capture).connect(mute).connect(this.context.destination);
    this.player = new AudioWorkletNode(this.context, "patchbay-player", {
      numberOfInputs: 0,
      outputChannelCount: [1],
      processorOptions: { prebufferMs },
    });
    this.player.port.onmessage = (e) => onPlayer(e.data);
    this.player.onprocessorerror = () => onError("playback_failed", "the audio player stopped");
    this.player.connect(this.context.destination);
  }

  /** Capture at another rate from now on (the session's input format changed). */
  setInputRate(rate) {
    if (this.capture) this.capture.port.postMessage({ type: "rate", rate });
  }

  /** Queue PCM16 audio of `item` (at `rate`) for playback; the buffer is transferred. */
  push(item, rate, pcm) {
    if (this.player) this.player.port.postMessage({ type: "push", item, rate, pcm }, [pcm]);
  }

  /** No more audio for `item`: play out what is buffered even if below the prebuffer. */
  end(item) {
    if (this.player) this.player.port.postMessage({ type: "end", item });
  }

  /** Silence now; the player answers with a "cleared" report of how much was heard. */
  clear() {
    if (this.player) this.player.port.postMessage({ type: "clear" });
  }

  ms(samples) {
    return (samples / this.sampleRate) * 1000;
  }

  close() {
    if (this.stream) this.stream.getTracks().forEach((t) => t.stop());
    if (this.context) this.context.close();
    this.stream = this.context = this.capture = this.player = null;
  }
}

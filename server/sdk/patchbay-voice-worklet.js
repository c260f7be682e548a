// Patchbay voice client: the AudioWorklet processors (served at /sdk/patchbay-voice-worklet.js).
//
// "patchbay-capture" takes the microphone at the context's rate, resamples it to the session's
// input rate and posts PCM16 frames of `frameMs` to the main thread.
// "patchbay-player" is the jitter buffer: PCM16 chunks per assistant item go in (at their own
// rate, resampled here to the context's), audio comes out gaplessly once `prebufferMs` is
// buffered (or the item has ended); "clear" drops everything at once and answers how much of
// the item was heard. Loaded by patchbay-voice.js; no build step, no dependencies.

class Resampler {
  // Streaming linear interpolation, with a moving-average low-pass in front when downsampling.
  constructor(from, to) {
    this.step = from / to;
    this.t = 0;
    this.prev = 0;
    this.taps = from > to ? Math.max(1, Math.round(from / to)) : 1;
    this.hist = new Float32Array(this.taps);
    this.hi = 0;
    this.sum = 0;
  }

  process(input) {
    if (this.step === 1) return input;
    let x = input;
    if (this.taps > 1) {
      x = new Float32Array(input.length);
      for (let i = 0; i < input.length; i++) {
        this.sum += input[i] - this.hist[this.hi];
        this.hist[this.hi] = input[i];
        this.hi = (this.hi + 1) % this.taps;
        x[i] = this.sum / this.taps;
      }
    }
    const n = x.length;
    const out = new Float32Array(Math.ceil((n - this.t) / this.step) + 1);
    let k = 0;
    let t = this.t;
    while (t < n) {
      const i = Math.floor(t);
      const f = t - i;
      const a = i === 0 ? this.prev : x[i - 1];
      out[k++] = a + (x[i] - a) * f;
      t += this.step;
    }
    this.t = t - n;
    if (n) this.prev = x[n - 1];
    return out.subarray(0, k);
  }
}

class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = options.processorOptions || {};
    this.frameMs = o.frameMs || 40;
    this.setRate(o.rate || 24000);
    this.port.onmessage = (e) => {
      if (e.data.type === "rate") this.setRate(e.data.rate);
    };
  }

  setRate(rate) {
    this.rate = rate;
    this.resampler = new Resampler(sampleRate, rate);
    this.frame = new Int16Array(Math.round((rate * this.frameMs) / 1000));
    this.filled = 0;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    const samples = this.resampler.process(channel);
    for (let i = 0; i < samples.length; i++) {
      const s = Math.max(-1, Math.min(1, samples[i]));
      this.frame[this.filled++] = s < 0 ? s * 0x8000 : s * 0x7fff;
      if (this.filled === this.frame.length) {
        const full = this.frame;
        this.frame = new Int16Array(full.length); // before the transfer empties `full`
        this.port.postMessage({ type: "frame", rate: this.rate, pcm: full.buffer }, [full.buffer]);
        this.filled = 0;
      }
    }
    return true;
  }
}

class PlayerProcessor extends AudioWorkletProcessor {
  constructor(options) {
    const o = options.processorOptions || {};
    super();
    this.prebuffer = Math.round((sampleRate * (o.prebufferMs || 60)) / 1000);
    this.queue = []; // Float32Array chunks at sampleRate, of `this.item`
    this.offset = 0; // read position in queue[0]
    this.buffered = 0;
    this.item = null;
    this.ended = false;
    this.playing = false;
    this.itemPlayed = 0; // samples of `this.item` played
    this.samplesPlayed = 0; // all reply audio played since start
    this.framesPlayed = 0; // render quanta that carried reply audio
    this.resampler = null;
    this.rate = 0;
    this.quanta = 0;
    this.port.onmessage = (e) => this.receive(e.data);
  }

  receive(m) {
    if (m.type === "push") {
      if (m.item !== this.item) this.reset(m.item);
      if (m.rate !== this.rate) {
        this.rate = m.rate;
        this.resampler = new Resampler(m.rate, sampleRate);
      }
      const pcm = new Int16Array(m.pcm);
      const f = new Float32Array(pcm.length);
      for (let i = 0; i < pcm.length; i++) f[i] = pcm[i] / 0x8000;
      const out = this.resampler.process(f);
      if (out.length) {
        this.queue.push(out);
        this.buffered += out.length;
      }
    } else if (m.type === "end") {
      if (m.item === this.item) this.ended = true;
    } else if (m.type === "clear") {
      const heard = { type: "cleared", item: this.item, played: this.itemPlayed, pending: this.buffered > 0 || !this.ended };
      this.reset(null);
      this.port.postMessage(heard);
    }
  }

  reset(item) {
    this.queue = [];
    this.offset = 0;
    this.buffered = 0;
    this.item = item;
    this.ended = false;
    this.playing = false;
    this.itemPlayed = 0;
    this.resampler = this.rate ? new Resampler(this.rate, sampleRate) : null;
  }

  process(inputs, outputs) {
    const out = outputs[0][0];
    if (!this.playing && this.item !== null && (this.buffered >= this.prebuffer || (this.ended && this.buffered > 0))) {
      this.playing = true;
    }
    let written = 0;
    if (this.playing) {
      while (written < out.length && this.queue.length) {
        const chunk = this.queue[0];
        const n = Math.min(out.length - written, chunk.length - this.offset);
        out.set(chunk.subarray(this.offset, this.offset + n), written);
        written += n;
        this.offset += n;
        if (this.offset === chunk.length) {
          this.queue.shift();
          this.offset = 0;
        }
      }
      this.buffered -= written;
      this.itemPlayed += written;
      this.samplesPlayed += written;
      if (written) this.framesPlayed++;
      if (this.buffered === 0) {
        this.playing = false; // underrun: wait for the prebuffer again (or the end)
        if (this.ended) {
          this.port.postMessage({
            type: "drained",
            item: this.item,
            played: this.itemPlayed,
            samplesPlayed: this.samplesPlayed,
            framesPlayed: this.framesPlayed,
            buffered: 0,
          });
          this.item = null;
        }
      }
    }
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
    if (++this.quanta % 16 === 0 || (written && this.framesPlayed === 1)) {
      this.port.postMessage({
        type: "progress",
        item: this.item,
        itemPlayed: this.itemPlayed,
        samplesPlayed: this.samplesPlayed,
        framesPlayed: this.framesPlayed,
        buffered: this.buffered,
      });
    }
    return true;
  }
}

registerProcessor("patchbay-capture", CaptureProcessor);
registerProcessor("patchbay-player", PlayerProcessor);

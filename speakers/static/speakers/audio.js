// Microphone capture and WAV encoding, in the browser: 16 kHz mono 16-bit PCM, what the service reads best.

export const SAMPLE_RATE = 16000;

/** Float samples in [-1, 1] -> 16-bit little-endian PCM. */
export function toInt16(samples) {
  const out = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    out[i] = s < 0 ? s * 0x8000 : s * 0x7fff;
  }
  return out;
}

/** A WAV file (RIFF, PCM 16-bit, mono) of float samples at `rate` Hz. */
export function encodeWav(samples, rate = SAMPLE_RATE) {
  const pcm = toInt16(samples);
  const buffer = new ArrayBuffer(44 + pcm.byteLength);
  const view = new DataView(buffer);
  const text = (offset, s) => { for (let i = 0; i < s.length; i++) view.setUint8(offset + i, s.charCodeAt(i)); };
  text(0, "RIFF"); view.setUint32(4, 36 + pcm.byteLength, true); text(8, "WAVE");
  text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, rate, true); view.setUint32(28, rate * 2, true); view.setUint16(32, 2, true);
  view.setUint16(34, 16, true); text(36, "data"); view.setUint32(40, pcm.byteLength, true);
  new Int16Array(buffer, 44).set(pcm);
  return new Blob([buffer], { type: "audio/wav" });
}

/** Linear-interpolation resampler kept across chunks (streaming, when the browser would not run at 16 kHz). */
export class Resampler {
  constructor(from, to = SAMPLE_RATE) { this.step = from / to; this.pos = 0; this.last = 0; }
  push(input) {
    if (this.step === 1) return input;
    // Positions count from the previous chunk's last sample (-1), so chunks join without a seam.
    const n = input.length, out = [];
    while (Math.floor(this.pos) + 1 <= n - 1) {
      const i = Math.floor(this.pos), frac = this.pos - i;
      const a = i < 0 ? this.last : input[i];
      out.push(a + (input[i + 1] - a) * frac);
      this.pos += this.step;
    }
    this.pos -= n;
    this.last = input[n - 1];
    return Float32Array.from(out);
  }
}

/** The microphone as a stream of float chunks at 16 kHz (or resampled to it). `onChunk(float32)`, `onLevel(rms)`. */
export class Microphone {
  constructor({ onChunk, onLevel } = {}) { this.onChunk = onChunk; this.onLevel = onLevel; }

  async start() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new Error("This browser gives no microphone here (pages served over plain HTTP from another machine need HTTPS). Pick a file instead.");
    }
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
    try {
      this.context = new AudioContext({ sampleRate: SAMPLE_RATE });
    } catch (e) {
      this.context = new AudioContext();  // the browser's own rate: resampled below
    }
    const resampler = new Resampler(this.context.sampleRate);
    await this.context.audioWorklet.addModule(new URL("./capture-worklet.js", import.meta.url));
    this.source = this.context.createMediaStreamSource(this.stream);
    this.node = new AudioWorkletNode(this.context, "voiceprint-capture");
    this.node.port.onmessage = (event) => {
      const chunk = resampler.push(event.data);
      if (this.onLevel) {
        let sum = 0;
        for (let i = 0; i < chunk.length; i++) sum += chunk[i] * chunk[i];
        this.onLevel(Math.sqrt(sum / Math.max(1, chunk.length)));
      }
      if (this.onChunk && chunk.length) this.onChunk(chunk);
    };
    this.source.connect(this.node);
    if (this.context.state === "suspended") await this.context.resume();
  }

  async stop() {
    if (this.source) this.source.disconnect();
    if (this.node) { this.node.port.onmessage = null; this.node.disconnect(); }
    if (this.stream) this.stream.getTracks().forEach((t) => t.stop());
    if (this.context) await this.context.close();
    this.source = this.node = this.stream = this.context = null;
  }
}

/** Records the microphone into one WAV blob. */
export class Recorder {
  constructor({ onLevel, onTick } = {}) {
    this.chunks = []; this.length = 0; this.onTick = onTick;
    this.mic = new Microphone({ onLevel, onChunk: (c) => { this.chunks.push(c); this.length += c.length; if (this.onTick) this.onTick(this.seconds); } });
  }
  get seconds() { return this.length / SAMPLE_RATE; }
  async start() { await this.mic.start(); }
  async stop() {
    await this.mic.stop();
    const all = new Float32Array(this.length);
    let offset = 0;
    for (const c of this.chunks) { all.set(c, offset); offset += c.length; }
    return { blob: encodeWav(all), seconds: this.seconds };
  }
}

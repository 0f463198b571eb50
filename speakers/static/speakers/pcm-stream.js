// One live session on a PCM WebSocket route of docs/streaming.md (/ws/v1/stream-verify, /ws/v1/stream-identify):
// the handshake, the start message, the microphone as raw 16 kHz s16le PCM once the server is ready, the end.
// The key travels in the "voiceprint.key.<KEY>" subprotocol of the handshake (a browser cannot set X-API-Key),
// never in the URL. Both panels use this; each reads the server's messages its own way.
import { Microphone, toInt16 } from "./audio.js";
import { fmt, refusalElement } from "./api.js";

const PROTOCOL = "voiceprint.v1";
const CHUNK_SAMPLES = 1600;  // 100 ms per binary message

export class PcmStream {
  /**
   * `path`: the route; `key`: the API key; `start`: extra fields of the start message.
   * `onOpen()`, `onListening()`, `onMicrophoneError(error)`, `onMessage(m)` (every message but `ready`),
   * `onClose(event, opened)`: what the panel shows. `open()` throws when the browser refuses the URL.
   */
  constructor({ path, key, start = {}, onOpen, onListening, onMicrophoneError, onMessage, onClose }) {
    Object.assign(this, { path, key, start, onOpen, onListening, onMicrophoneError, onMessage, onClose });
    this.socket = null; this.mic = null; this.pending = []; this.pendingLength = 0; this.ended = false; this.opened = false;
  }

  open() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    this.socket = new WebSocket(`${scheme}://${location.host}${this.path}`, [PROTOCOL, `voiceprint.key.${this.key}`]);
    this.socket.binaryType = "arraybuffer";
    this.socket.onopen = () => {
      this.opened = true;
      this.socket.send(JSON.stringify({ type: "start", sample_rate: 16000, encoding: "s16le", ...this.start }));
      if (this.onOpen) this.onOpen();
    };
    this.socket.onmessage = async (event) => {
      const m = JSON.parse(event.data);
      if (m.type === "ready") await this.listen();
      else this.onMessage(m);
    };
    this.socket.onclose = async (event) => {
      this.socket = null;
      await this.stopMicrophone();
      this.onClose(event, this.opened);
    };
  }

  async listen() {
    this.mic = new Microphone({ onChunk: (c) => {
      if (!this.ended) { this.pending.push(c); this.pendingLength += c.length; this.flush(); }
    } });
    try {
      await this.mic.start();
      if (this.onListening) this.onListening();
    } catch (e) {
      if (this.onMicrophoneError) this.onMicrophoneError(e);
      if (this.socket) this.socket.close(1000);
    }
  }

  flush(force = false) {
    const socket = this.socket;
    while (socket && socket.readyState === WebSocket.OPEN &&
           (this.pendingLength >= CHUNK_SAMPLES || (force && this.pendingLength))) {
      const n = Math.min(CHUNK_SAMPLES, this.pendingLength);
      const out = new Float32Array(n);
      let filled = 0;
      while (filled < n) {
        const head = this.pending[0], take = Math.min(head.length, n - filled);
        out.set(head.subarray(0, take), filled);
        filled += take;
        if (take === head.length) this.pending.shift(); else this.pending[0] = head.subarray(take);
      }
      this.pendingLength -= n;
      socket.send(toInt16(out).buffer);
    }
  }

  async stopMicrophone() {
    if (this.mic) { const m = this.mic; this.mic = null; await m.stop(); }
  }

  /** The person stops: the microphone goes quiet, what is left is sent, then `end` (the server answers a summary). */
  async stop() {
    this.ended = true;
    await this.stopMicrophone();
    this.flush(true);
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify({ type: "end" }));
  }
}

/** A quality event of the stream (`{"type": "event"}`) as one line of a panel's log. */
export function eventText(m, words) {
  if (m.event === "window_refused" && m.error) return refusalElement(m.error, words, "Window skipped: ").textContent;
  const kinds = { silence: "silence", speech: "speech started", clipping: "too loud (clipping)", too_quiet: "too quiet" };
  return `${kinds[m.event] || m.event} at ${fmt(m.at_s, 1)} s`;
}

// Streaming verification from the microphone over the WebSocket route /ws/v1/stream-verify
// (docs/streaming.md): raw 16 kHz s16le PCM up, rolling scores down. The key travels in the
// "voiceprint.key.<KEY>" subprotocol of the handshake (a browser cannot set X-API-Key), never in the URL.
import { Microphone, toInt16 } from "./audio.js";
import { fmt, refusalElement } from "./api.js";

const PROTOCOL = "voiceprint.v1";
const CHUNK_SAMPLES = 1600;  // 100 ms per binary message

export function setupStreaming({ root, path, words, getKey, getSpeaker }) {
  const startButton = root.querySelector("#stream-start");
  const stopButton = root.querySelector("#stream-stop");
  const result = root.querySelector("#stream-result");
  const log = root.querySelector("#stream-log");
  let socket = null, mic = null, pending = [], pendingLength = 0, ended = false;

  const note = (text) => {
    const li = document.createElement("li");
    li.textContent = text;
    log.append(li);  // oldest first, numbered in the order things happened
    li.scrollIntoView({ block: "nearest" });
  };

  const showScore = (m) => {
    result.replaceChildren();
    const verdict = document.createElement("div");
    verdict.className = `verdict ${m.accepted ? "accepted" : "rejected"}`;
    verdict.textContent = `${m.accepted ? "Same voice" : "Not the same voice"}: score ${fmt(m.score)} ${m.accepted ? "≥" : "<"} threshold ${fmt(m.threshold)}`;
    const figures = document.createElement("div");
    figures.className = "hint";
    figures.textContent = `raw score ${fmt(m.raw_score)}, ${fmt(m.window_speech_s, 1)} s of speech in the window, ` +
      `${fmt(m.speech_s, 1)} s in all, ${fmt(m.latency_ms, 0)} ms`;
    result.append(verdict, figures);
  };

  const flush = (force = false) => {
    while (socket && socket.readyState === WebSocket.OPEN && (pendingLength >= CHUNK_SAMPLES || (force && pendingLength))) {
      const n = Math.min(CHUNK_SAMPLES, pendingLength);
      const out = new Float32Array(n);
      let filled = 0;
      while (filled < n) {
        const head = pending[0], take = Math.min(head.length, n - filled);
        out.set(head.subarray(0, take), filled);
        filled += take;
        if (take === head.length) pending.shift(); else pending[0] = head.subarray(take);
      }
      pendingLength -= n;
      socket.send(toInt16(out).buffer);
    }
  };

  const cleanUp = async () => {
    if (mic) { const m = mic; mic = null; await m.stop(); }
    startButton.disabled = false; stopButton.disabled = true;
  };

  startButton.addEventListener("click", async () => {
    const key = getKey();
    if (!key) { result.replaceChildren(refusalElement({ code: "missing_api_key", message: "" }, words)); return; }
    const speaker = getSpeaker();
    log.replaceChildren(); result.replaceChildren(); pending = []; pendingLength = 0; ended = false;
    startButton.disabled = true; stopButton.disabled = false;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    try {
      socket = new WebSocket(`${scheme}://${location.host}${path}`, [PROTOCOL, `voiceprint.key.${key}`]);
    } catch (e) {
      result.replaceChildren(refusalElement({ code: "stream_unavailable", message: String(e) }, words));
      await cleanUp();
      return;
    }
    socket.binaryType = "arraybuffer";
    let opened = false;
    socket.onopen = () => {
      opened = true;
      const start = { type: "start", sample_rate: 16000, encoding: "s16le" };
      if (speaker) start.speaker_id = speaker.id;
      socket.send(JSON.stringify(start));
      note(speaker ? `Connected: scoring against ${speaker.display_name || speaker.external_id || speaker.id}.`
                   : "Connected: your first seconds of speech become the reference.");
    };
    socket.onmessage = async (event) => {
      const m = JSON.parse(event.data);
      if (m.type === "ready") {
        mic = new Microphone({ onChunk: (c) => { if (!ended) { pending.push(c); pendingLength += c.length; flush(); } } });
        try { await mic.start(); note("Listening: speak now."); }
        catch (e) { note(String(e.message || e)); socket.close(1000); }
      } else if (m.type === "reference") {
        note(`Reference set from ${fmt(m.speech_s, 1)} s of speech; keep talking.`);
      } else if (m.type === "score") {
        showScore(m);
        note(`score ${fmt(m.score)} (threshold ${fmt(m.threshold)}): ${m.accepted ? "same voice" : "not the same"}`);
      } else if (m.type === "event") {
        if (m.event === "window_refused" && m.error) {
          const box = refusalElement(m.error, words, "Window skipped: ");
          note(box.textContent);
        } else {
          const words_ = { silence: "silence", speech: "speech started", clipping: "too loud (clipping)", too_quiet: "too quiet" };
          note(`${words_[m.event] || m.event} at ${fmt(m.at_s, 1)} s`);
        }
      } else if (m.type === "summary") {
        note(`Done: ${m.scores} score(s), ${m.accepted_scores} accepted, ${fmt(m.speech_s, 1)} s of speech.`);
      } else if (m.type === "error") {
        result.replaceChildren(refusalElement(m.error, words));
      }
    };
    socket.onclose = async (event) => {
      if (!opened) result.replaceChildren(refusalElement({ code: "stream_unavailable", message: "" }, words));
      else if (event.code >= 4000) note(`Closed: ${event.reason || event.code}`);
      socket = null;
      await cleanUp();
    };
  });

  stopButton.addEventListener("click", async () => {
    ended = true;
    if (mic) { const m = mic; mic = null; await m.stop(); }
    flush(true);
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "end" }));
    stopButton.disabled = true;
  });
}

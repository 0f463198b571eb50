// Streaming verification from the microphone over the WebSocket route /ws/v1/stream-verify
// (docs/streaming.md): raw 16 kHz s16le PCM up (pcm-stream.js), rolling scores down.
import { fmt, refusalElement } from "./api.js";
import { PcmStream, eventText } from "./pcm-stream.js";

export function setupStreaming({ root, path, words, getKey, getSpeaker }) {
  const startButton = root.querySelector("#stream-start");
  const stopButton = root.querySelector("#stream-stop");
  const result = root.querySelector("#stream-result");
  const log = root.querySelector("#stream-log");
  let stream = null;

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

  const done = () => { stream = null; startButton.disabled = false; stopButton.disabled = true; };

  startButton.addEventListener("click", () => {
    const key = getKey();
    if (!key) { result.replaceChildren(refusalElement({ code: "missing_api_key", message: "" }, words)); return; }
    const speaker = getSpeaker();
    log.replaceChildren(); result.replaceChildren();
    startButton.disabled = true; stopButton.disabled = false;
    stream = new PcmStream({
      path, key, start: speaker ? { speaker_id: speaker.id } : {},
      onOpen: () => note(speaker ? `Connected: scoring against ${speaker.display_name || speaker.external_id || speaker.id}.`
                                 : "Connected: your first seconds of speech become the reference."),
      onListening: () => note("Listening: speak now."),
      onMicrophoneError: (e) => note(String(e.message || e)),
      onMessage: (m) => {
        if (m.type === "reference") {
          note(`Reference set from ${fmt(m.speech_s, 1)} s of speech; keep talking.`);
        } else if (m.type === "score") {
          showScore(m);
          note(`score ${fmt(m.score)} (threshold ${fmt(m.threshold)}): ${m.accepted ? "same voice" : "not the same"}`);
        } else if (m.type === "event") {
          note(eventText(m, words));
        } else if (m.type === "summary") {
          note(`Done: ${m.scores} score(s), ${m.accepted_scores} accepted, ${fmt(m.speech_s, 1)} s of speech.`);
        } else if (m.type === "error") {
          result.replaceChildren(refusalElement(m.error, words));
        }
      },
      onClose: (event, opened) => {
        if (!opened) result.replaceChildren(refusalElement({ code: "stream_unavailable", message: "" }, words));
        else if (event.code >= 4000) note(`Closed: ${event.reason || event.code}`);
        done();
      },
    });
    try {
      stream.open();
    } catch (e) {
      result.replaceChildren(refusalElement({ code: "stream_unavailable", message: String(e) }, words));
      done();
    }
  });

  stopButton.addEventListener("click", async () => {
    stopButton.disabled = true;
    if (stream) await stream.stop();
  });
}

// Who is speaking now: the microphone streamed to /ws/v1/stream-identify (docs/streaming.md, the protocol of
// pcm-stream.js); each window of the newest speech is identified among the key's enrolled speakers (identify's
// open-set rule), and the panel shows who it is, "unknown voice", or "nobody yet" before the first window.
import { NO_MATCH, describe, fmt, refusalElement } from "./api.js";
import { PcmStream, eventText } from "./pcm-stream.js";

const nameOf = (s) => s.display_name || s.external_id || s.speaker_id;

export function setupLiveIdentify({ root, path, words, getKey }) {
  const startButton = root.querySelector("#live-start");
  const stopButton = root.querySelector("#live-stop");
  const now = root.querySelector("#live-now");
  const caption = root.querySelector("#live-caption");
  const who = root.querySelector("#live-speaker");
  const figures = root.querySelector("#live-figures");
  const result = root.querySelector("#live-result");
  const log = root.querySelector("#live-log");
  let stream = null, refused = false, last = null;

  const note = (text) => {
    const li = document.createElement("li");
    li.textContent = text;
    log.append(li);
    li.scrollIntoView({ block: "nearest" });
  };

  const show = (state, text) => {
    now.dataset.state = state;  // idle, waiting, named, unknown (stopped after a session): how it looks (app.css)
    if (who.textContent !== text) who.textContent = text;  // the live region speaks only when the answer changes
  };

  const showWindow = (m) => {
    const name = m.match ? nameOf(m.match) : "unknown voice";
    show(m.match ? "named" : "unknown", name);
    figures.textContent = m.match
      ? (m.matched_by === "lead" ? `far ahead of every other voice (score ${fmt(m.match.score)}, threshold ${fmt(m.threshold)})`
        : `score ${fmt(m.match.score)} ≥ threshold ${fmt(m.threshold)}`) + `, ${fmt(m.window_speech_s, 1)} s of speech in the window`
      : `${NO_MATCH[m.no_match_reason] || m.no_match_reason}` +
        (m.candidates.length ? ` (best: ${nameOf(m.candidates[0])}, score ${fmt(m.candidates[0].score)}, threshold ${fmt(m.threshold)})` : "");
    if (name !== last) note(`${fmt(m.audio_s, 1)} s: ${name}`);  // the log keeps each change of speaker
    last = name;
  };

  const refuse = (error) => { refused = true; result.replaceChildren(refusalElement(error, words)); };

  const done = () => {
    stream = null;
    if (last === null) { caption.textContent = ""; show("idle", "not listening"); }
    else { caption.textContent = "Last heard:"; now.dataset.state = "stopped"; }
    startButton.disabled = false; stopButton.disabled = true;
  };

  startButton.addEventListener("click", () => {
    const key = getKey();
    if (!key) { result.replaceChildren(refusalElement({ code: "missing_api_key", message: "" }, words)); return; }
    log.replaceChildren(); result.replaceChildren(); figures.textContent = "";
    refused = false; last = null;
    caption.textContent = "Speaking now:";
    show("waiting", "nobody yet");
    startButton.disabled = true; stopButton.disabled = false;
    stream = new PcmStream({
      path, key,
      onOpen: () => note("Connected."),
      onListening: () => note("Listening for your enrolled speakers: speak now."),
      onMicrophoneError: (e) => refuse({ code: "microphone", message: String(e.message || e) }),
      onMessage: (m) => {
        if (m.type === "speaker") {
          showWindow(m);
        } else if (m.type === "event") {
          note(eventText(m, words));
        } else if (m.type === "summary") {
          const heard = m.speakers.map((s) => `${nameOf(s)} (${s.windows} window${s.windows === 1 ? "" : "s"})`);
          note(`Done: ${m.windows} window(s) of speech; ${heard.length ? `heard ${heard.join(", ")}` : "nobody enrolled heard"}` +
               `${m.unmatched_windows ? `, ${m.unmatched_windows} without a name` : ""}.`);
        } else if (m.type === "error") {
          refuse(m.error);
        }
      },
      onClose: (event, opened) => {
        if (!opened) {
          refuse({ code: "stream_unavailable", message: "" });
        } else if (event.code >= 4000) {
          // the close reason is the error code; its words, even when no error message came before it
          const error = { code: event.reason || "", message: `The server closed the session (${event.code}).` };
          if (!refused) refuse(error);
          note(`Closed: ${describe(error, words).headline}`);
        }
        done();
      },
    });
    try {
      stream.open();
    } catch (e) {
      refuse({ code: "stream_unavailable", message: String(e) });
      done();
    }
  });

  stopButton.addEventListener("click", async () => {
    stopButton.disabled = true;
    if (stream) await stream.stop();
  });
}

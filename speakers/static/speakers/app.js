// The page: an API key, a speaker, and six panels (enroll, verify, identify, who spoke when, stream, live identify)
// that call the API.
import { Recorder } from "./audio.js";
import { Api, NO_MATCH, fmt, refusalElement } from "./api.js";
import { setupLiveIdentify } from "./live-identify.js";
import { setupStreaming } from "./streaming.js";

const config = JSON.parse(document.getElementById("vp-config").textContent);
const words = config.words;
const $ = (selector) => document.querySelector(selector);
const STORAGE_KEY = "voiceprint.apiKey";

// --- the key: in memory, or in this tab's sessionStorage if asked; never in a URL -----------------------
let apiKey = sessionStorage.getItem(STORAGE_KEY) || "";
const api = new Api(() => apiKey);

function showKeyStatus() {
  $("#key-status").textContent = apiKey
    ? `Using a key ending in …${apiKey.slice(-4)}${sessionStorage.getItem(STORAGE_KEY) ? " (remembered in this tab)" : ""}.`
    : "Kept in this page only, never sent anywhere but this server's API.";
}
$("#remember-key").checked = Boolean(sessionStorage.getItem(STORAGE_KEY));
$("#key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  apiKey = $("#api-key").value.trim();
  $("#api-key").value = "";
  if ($("#remember-key").checked && apiKey) sessionStorage.setItem(STORAGE_KEY, apiKey);
  else sessionStorage.removeItem(STORAGE_KEY);
  showKeyStatus();
  refreshButtons();
});
$("#forget-key").addEventListener("click", () => {
  apiKey = ""; sessionStorage.removeItem(STORAGE_KEY); $("#remember-key").checked = false;
  showKeyStatus(); refreshButtons();
});
showKeyStatus();

// --- the speaker ------------------------------------------------------------------------------------
let speaker = null;
const speakerName = (s) => s.display_name || s.external_id || s.id;

function showMessage(target, element) { $(target).replaceChildren(element); }
function success(text) { const p = document.createElement("div"); p.className = "success"; p.textContent = text; return p; }

function setSpeaker(s) {
  speaker = s;
  $("#current-speaker").hidden = !s;
  if (s) {
    $("#speaker-name").textContent = speakerName(s);
    $("#speaker-status").textContent = { none: "no recording yet", incomplete: "enrollment not finished",
      complete: "enrolled", outdated: "enrolled with another model: enroll again",
      partial: "verified and identified with ECAPA alone (enrolled before both models were on): enroll again for both",
      unreadable: "voiceprint damaged: enroll again" }[s.voiceprint_status] || (s.enrolled ? "enrolled" : "not enrolled");
    $("#speaker-status").className = `status ${s.voiceprint_status || ""}`;
    $("#speaker-id").textContent = `id ${s.id}${s.external_id ? ` · your id ${s.external_id}` : ""}`;
    showProgress(s.enrollment_progress);
  } else {
    showProgress(null);
  }
  refreshButtons();
}

$("#create-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = {};
  const name = $("#display-name").value.trim(), externalId = $("#external-id").value.trim();
  if (name) body.display_name = name;
  if (externalId) body.external_id = externalId;
  try {
    const created = await api.request("POST", "/api/v1/speakers", { json: body });
    setSpeaker(created);
    showMessage("#speaker-message", success(`Created ${speakerName(created)}. Now enroll their voice below.`));
    addOption(created, true);
  } catch (error) {
    showMessage("#speaker-message", refusalElement(error, words));
  }
});

const speakersById = new Map();
function addOption(s, select = false) {
  speakersById.set(s.id, s);
  let option = $(`#speaker-select option[value="${s.id}"]`);
  if (!option) { option = document.createElement("option"); option.value = s.id; $("#speaker-select").append(option); }
  // a partial voiceprint (ECAPA alone, before both models were on) is verified and identified too
  const usable = s.enrolled || s.voiceprint_status === "partial";
  option.textContent = `${speakerName(s)}${usable ? "" : " (not enrolled)"}`;
  if (select) $("#speaker-select").value = s.id;
}

$("#load-speakers").addEventListener("click", async () => {
  try {
    const page = await api.request("GET", "/api/v1/speakers?page_size=100");
    $("#speaker-select").replaceChildren(new Option(page.results.length ? "(choose)" : "(nobody yet)", ""));
    page.results.forEach((s) => addOption(s));
    if (speaker) $("#speaker-select").value = speaker.id;
    $("#speaker-message").replaceChildren();
  } catch (error) {
    showMessage("#speaker-message", refusalElement(error, words));
  }
});
$("#speaker-select").addEventListener("change", async () => {
  const id = $("#speaker-select").value;
  if (!id) { setSpeaker(null); return; }
  try { setSpeaker(await api.request("GET", `/api/v1/speakers/${id}`)); }
  catch (error) { setSpeaker(speakersById.get(id) || null); showMessage("#speaker-message", refusalElement(error, words)); }
});

// --- recorders: the microphone or a file, one per panel ---------------------------------------------------
const recordings = {};

function buildRecorder(container) {
  const name = container.dataset.recorder;
  container.innerHTML = "";
  const record = Object.assign(document.createElement("button"), { type: "button", textContent: "● Record" });
  record.id = `${name}-record`;
  const timer = Object.assign(document.createElement("span"), { className: "timer", textContent: "0.0 s" });
  const level = document.createElement("div"); level.className = "level"; level.append(document.createElement("div"));
  const pickLabel = document.createElement("label"); pickLabel.className = "inline"; pickLabel.textContent = "or a file: ";
  const file = Object.assign(document.createElement("input"), { type: "file", accept: "audio/*,.wav,.flac,.ogg" });
  file.id = `${name}-file`; pickLabel.append(file);
  const preview = document.createElement("audio"); preview.controls = true; preview.hidden = true;
  const picked = Object.assign(document.createElement("span"), { className: "picked" });
  picked.id = `${name}-picked`;
  container.append(record, timer, level, pickLabel, preview, picked);

  let recorder = null;
  const use = (blob, filename, seconds) => {
    recordings[name] = { blob, filename };
    preview.src = URL.createObjectURL(blob); preview.hidden = false;
    picked.textContent = `${filename}${seconds ? ` (${seconds.toFixed(1)} s)` : ""} ready`;
    if (name === "enroll") showPending(seconds || 0);
    refreshButtons();
  };
  record.addEventListener("click", async () => {
    if (recorder) {
      const r = recorder; recorder = null;
      record.textContent = "● Record"; record.classList.remove("recording");
      level.firstChild.style.width = "0";
      const { blob, seconds } = await r.stop();
      use(blob, `${name}-${new Date().toISOString().replace(/[:.]/g, "-")}.wav`, seconds);
      return;
    }
    recorder = new Recorder({
      onLevel: (rms) => { level.firstChild.style.width = `${Math.min(100, Math.sqrt(rms) * 220)}%`; },
      onTick: (seconds) => { timer.textContent = `${seconds.toFixed(1)} s`; if (name === "enroll") showPending(seconds); },
    });
    try {
      await recorder.start();
      record.textContent = "■ Stop"; record.classList.add("recording");
      picked.textContent = "recording…";
    } catch (error) {
      recorder = null;
      picked.textContent = "";
      const box = refusalElement({ code: "microphone", message: "" }, {
        microphone: { headline: "No microphone", advice: String(error.message || error) } });
      container.after(box); setTimeout(() => box.remove(), 8000);
    }
  });
  file.addEventListener("change", () => {
    const f = file.files[0];
    if (f) use(f, f.name, 0);
  });
}
document.querySelectorAll("[data-recorder]").forEach(buildRecorder);

function refreshButtons() {
  $("#enroll-send").disabled = !(apiKey && speaker && recordings.enroll);
  $("#verify-send").disabled = !(apiKey && speaker && recordings.verify);
  $("#identify-send").disabled = !(apiKey && recordings.identify);
  $("#diarize-send").disabled = !(apiKey && recordings.diarize);
}

function formWith(name, extra = {}) {
  const form = new FormData();
  form.append("audio", recordings[name].blob, recordings[name].filename);
  for (const [k, v] of Object.entries(extra)) form.append(k, v);
  return form;
}

async function busy(button, work) {
  const label = button.textContent;
  button.disabled = true; button.textContent = "Working…";
  try { await work(); } finally { button.textContent = label; refreshButtons(); }
}

// --- enroll: a progress bar of net speech toward the target --------------------------------------------------
function showProgress(progress) {
  const bar = $("#enroll-progress");
  if (!progress) {
    $("#enroll-progress-done").style.width = "0"; $("#enroll-progress-text").textContent = "no speaker chosen";
    bar.setAttribute("aria-valuenow", "0"); bar.dataset.speechS = "0"; return;
  }
  const share = Math.min(1, progress.speech_s / progress.required_s);
  $("#enroll-progress-done").style.width = `${(100 * share).toFixed(1)}%`;
  $("#enroll-progress-text").textContent = progress.complete ? `Complete: ${progress.text} of speech`
                                                             : `${progress.text} of speech`;
  bar.setAttribute("aria-valuenow", String(progress.speech_s));
  bar.dataset.speechS = String(progress.speech_s);
  bar.dataset.complete = String(progress.complete);
  showPending(0);
}

function showPending(seconds) {
  // What the recording in hand could add at most (its length; the service counts only its speech).
  const bar = $("#enroll-progress");
  const done = Number(bar.dataset.speechS || 0), target = config.target_speech_s;
  const upTo = Math.min(1, (done + seconds) / target);
  $("#enroll-progress-pending").style.width = `${(100 * upTo).toFixed(1)}%`;
}

$("#enroll-send").addEventListener("click", () => busy($("#enroll-send"), async () => {
  try {
    const outcome = await api.request("POST", `/api/v1/speakers/${speaker.id}/enrollments`, { form: formWith("enroll") });
    setSpeaker(outcome.speaker);
    addOption(outcome.speaker, true);
    const p = outcome.enrollment_progress;
    const added = outcome.accepted.map((e) => `${fmt(e.speech_s, 1)} s of speech`).join(", ");
    const box = success(p.complete ? `Added (${added}). Enrollment complete: ${p.text}. You can verify now.`
                                   : `Added (${added}). ${p.text}: record some more.`);
    const wrapper = document.createElement("div"); wrapper.append(box);
    outcome.refused.forEach((r) => wrapper.append(refusalElement(r.error, words, `${r.filename}: `)));
    showMessage("#enroll-message", wrapper);
    delete recordings.enroll;
    $("#enroll-picked").textContent = "";
  } catch (error) {
    showPending(0);
    showMessage("#enroll-message", refusalElement(error, words, "Not enrolled: "));
  }
}));

// --- verify: the score against the threshold, on whatever scale the API used ---------------------------------
function gauge(score, threshold) {
  // The threshold sits in the middle; the score is placed by its distance from it, so no scale is assumed.
  const spread = Math.max(Math.abs(score - threshold), Math.abs(threshold) * 0.5, 1e-3) * 1.25;
  const at = (v) => Math.max(0, Math.min(100, 50 + (50 * (v - threshold)) / spread));
  const g = document.createElement("div"); g.className = "gauge"; g.id = "verify-gauge";
  const mark = (cls, v, text) => {
    const m = document.createElement("div"); m.className = `mark ${cls}`; m.style.left = `calc(${at(v)}% - 2px)`;
    const label = document.createElement("span"); label.className = "label"; label.style.left = `${at(v)}%`; label.textContent = text;
    g.append(m, label);
  };
  mark("threshold", threshold, `threshold ${fmt(threshold)}`);
  mark("score", score, "");
  return g;
}

function figuresTable(rows) {
  const table = document.createElement("table"); table.className = "figures";
  for (const [label, value] of rows) {
    const tr = table.insertRow();
    const th = document.createElement("th"); th.textContent = label; tr.append(th);
    tr.insertCell().textContent = value;
  }
  return table;
}

$("#verify-send").addEventListener("click", () => busy($("#verify-send"), async () => {
  try {
    const d = await api.request("POST", "/api/v1/verify", { form: formWith("verify", { speaker_id: speaker.id }) });
    const verdict = document.createElement("div");
    verdict.className = `verdict ${d.accepted ? "accepted" : "rejected"}`;
    verdict.id = "verify-verdict";
    verdict.textContent = d.accepted ? `Accepted: this is ${speakerName(speaker)}` : `Rejected: not ${speakerName(speaker)}`;
    const wrapper = document.createElement("div");
    wrapper.append(verdict, gauge(d.score, d.threshold), figuresTable([
      ["score (evidence: log-likelihood ratio)", fmt(d.score)],
      ["threshold (the false-accept target, for recordings like these)", fmt(d.threshold)],
      ["cosine similarity", fmt(d.raw_score)],
      ["score normalisation", d.score_normalisation], ["time", `${fmt(d.processing_time_ms, 0)} ms`],
    ]));
    showMessage("#verify-result", wrapper);
  } catch (error) {
    showMessage("#verify-result", refusalElement(error, words, "Not verified: "));
  }
}));

// --- identify ------------------------------------------------------------------------------------------
$("#identify-send").addEventListener("click", () => busy($("#identify-send"), async () => {
  try {
    const d = await api.request("POST", "/api/v1/identify", { form: formWith("identify", { top_k: 5 }) });
    const verdict = document.createElement("div");
    verdict.id = "identify-verdict";
    verdict.className = `verdict ${d.match ? "accepted" : "rejected"}`;
    verdict.textContent = d.match ? `It is ${speakerName({ ...d.match, id: d.match.speaker_id })}` : `Nobody known: ${NO_MATCH[d.no_match_reason] || d.no_match_reason}`;
    if (d.matched_by === "lead") verdict.textContent += " (far ahead of every other voice)";
    const table = document.createElement("table"); table.className = "figures"; table.id = "identify-candidates";
    const head = table.createTHead().insertRow();
    ["candidate", "score", "raw score"].forEach((h) => { const th = document.createElement("th"); th.textContent = h; head.append(th); });
    const body = table.createTBody();
    d.candidates.forEach((c) => {
      const tr = body.insertRow();
      tr.insertCell().textContent = `${speakerName({ ...c, id: c.speaker_id })}${d.match && d.match.speaker_id === c.speaker_id ? " ✓" : ""}`;
      tr.insertCell().textContent = fmt(c.score);
      tr.insertCell().textContent = fmt(c.raw_score);
    });
    const note = document.createElement("div"); note.className = "hint";
    note.textContent = `A match needs a score ≥ ${fmt(d.threshold)} and a lead of ${fmt(d.margin)} over the runner-up (${d.score_normalisation})` +
      (d.lead_required === null || d.lead_required === undefined ? "." :
        `, or a lead of ${fmt(d.lead_required)} standard deviations over the runner-up (this one: ${fmt(d.lead)}).`);
    const wrapper = document.createElement("div"); wrapper.append(verdict, table, note);
    showMessage("#identify-result", wrapper);
  } catch (error) {
    showMessage("#identify-result", refusalElement(error, words, "Not identified: "));
  }
}));

// --- who spoke when: one lane per voice, enrolled voices by name --------------------------------------------
const LANE_COLOURS = ["#2557a7", "#1e7a3c", "#b35c00", "#7a3fa0", "#a61b1b", "#127a7a", "#6b6b1f", "#c2407a"];
const NO_NAME = { ...NO_MATCH, taken: "its best match was given to a voice that sounds more like them" };

function timeline(d) {
  const total = Math.max(d.duration_s, 1e-3);
  const box = document.createElement("div"); box.className = "timeline"; box.id = "diarize-timeline";
  d.speakers.forEach((voice, i) => {
    const lane = document.createElement("div"); lane.className = "lane"; lane.dataset.label = voice.label;
    const name = document.createElement("div"); name.className = "lane-name";
    name.textContent = voice.speaker ? speakerName(voice.speaker) : voice.label;
    name.title = voice.speaker ? `enrolled (${voice.label})` : `not enrolled: ${NO_NAME[voice.no_match_reason] || voice.no_match_reason}`;
    const track = document.createElement("div"); track.className = "lane-track";
    d.segments.filter((s) => s.label === voice.label).forEach((s) => {
      const block = document.createElement("div"); block.className = "turn";
      block.style.left = `${(100 * s.start_s / total).toFixed(2)}%`;
      block.style.width = `${Math.max(0.3, 100 * (s.end_s - s.start_s) / total).toFixed(2)}%`;
      block.style.background = LANE_COLOURS[i % LANE_COLOURS.length];
      block.title = `${fmt(s.start_s, 2)}–${fmt(s.end_s, 2)} s`;
      track.append(block);
    });
    lane.append(name, track);
    box.append(lane);
  });
  const axis = document.createElement("div"); axis.className = "lane-axis";
  axis.textContent = `0 s … ${fmt(d.duration_s, 1)} s`;
  box.append(axis);
  return box;
}

$("#diarize-send").addEventListener("click", () => busy($("#diarize-send"), async () => {
  try {
    const d = await api.request("POST", "/api/v1/diarize", { form: formWith("diarize") });
    const named = d.speakers.filter((v) => v.speaker).map((v) => speakerName(v.speaker));
    const verdict = document.createElement("div");
    verdict.id = "diarize-verdict"; verdict.className = "verdict accepted";
    verdict.textContent = `${d.speakers.length} voice${d.speakers.length === 1 ? "" : "s"}` +
      (named.length ? `; enrolled: ${named.join(", ")}` : "; none of them enrolled");
    const table = document.createElement("table"); table.className = "figures"; table.id = "diarize-speakers";
    const head = table.createTHead().insertRow();
    ["voice", "speaking", "turns", "score", "threshold"].forEach((h) => { const th = document.createElement("th"); th.textContent = h; head.append(th); });
    const body = table.createTBody();
    d.speakers.forEach((v) => {
      const tr = body.insertRow();
      tr.insertCell().textContent = v.speaker ? `${speakerName(v.speaker)} ✓` : v.label;
      tr.insertCell().textContent = `${fmt(v.speaking_s, 1)} s`;
      tr.insertCell().textContent = String(v.turns);
      tr.insertCell().textContent = v.score === null ? "–" : fmt(v.score);
      tr.insertCell().textContent = v.threshold === null ? "–" : fmt(v.threshold);
    });
    const note = document.createElement("div"); note.className = "hint";
    note.textContent = `Each voice is named only if its score reaches its threshold and leads the runner-up by ${fmt(d.margin)}; ` +
      `${d.gallery} enrolled voice${d.gallery === 1 ? "" : "s"} searched, ${fmt(d.processing_time_ms / 1000, 1)} s.`;
    const wrapper = document.createElement("div"); wrapper.append(verdict, timeline(d), table, note);
    showMessage("#diarize-result", wrapper);
  } catch (error) {
    showMessage("#diarize-result", refusalElement(error, words, "Not diarized: "));
  }
}));

// --- streaming verification and live identification (their own modules) -------------------------------------
setupStreaming({ root: $("#stream-section"), path: config.stream_verify_path, words, getKey: () => apiKey, getSpeaker: () => speaker });
setupLiveIdentify({ root: $("#live-section"), path: config.stream_identify_path, words, getKey: () => apiKey });
refreshButtons();

"""Diarization benchmark: who spoke when, and who they are, on conversations of unseen speakers.

``nice .venv/bin/python -m benchmarks.diarization [--windows campplus] [--conversations 30] [--fit] [--rtf-minutes 10]``
(``--speech-detectors``: only the speech detectors' missed and false speech on the TRAIN conversations)

Conversations are built, seeded, from the calibration set (``--corpus``, docs/calibration-set.md):
LibriSpeech readers of the HELD-OUT split (``splits.csv``; their voices never touched the shipped
calibration nor, with ``--fit``, the stopping threshold, which is fitted on conversations of the
TRAIN split's readers). Each conversation has 2-6 speakers; a speaker's recordings (those not
used to enroll them) are cut at quiet points into turns of 1-20 s (as long as their material
allows), the turns interleave with pauses of 0-1 s, and with ``overlap`` some changes of speaker
overlap (the two talkers mixed) until that share of the speech is overlapped. Speakers are levelled
to the same speech power within +-3 dB. The telephone condition runs the whole mix through the
calibration set's channel (8 kHz, 300-3400 Hz band-pass, G.711 mu-law: tools/calibration_set/degrade.py).

Who is enrolled: every known reader of the split (``known`` in ``splits.csv``), from their
enrollment recordings of ``enrollments/<split>/clean.txt``, which never appear in a conversation;
the unknown readers are never enrolled. Each cluster the diarization finds is scored against every
enrolled voiceprint with the shipped calibration (cosine scale; ECAPA names the voices whichever network
embeds the windows, ``--windows``, as the service does with ``VOICEPRINT_DIARIZE_WINDOWS``): llr per pair, and the identify rule
of speakers/services/decisions.py speaker_identify (the threshold ``identify_t(fir, gallery)`` on
the llr scale of the pair, the calibrated margin over the runner-up), then named one-to-one by
:func:`inference.diarization.name_clusters`.

Printed per condition (clean / telephone x overlap 0 / 10%): DER by pyannote.metrics (collar
+-0.25 s, i.e. pyannote's ``collar=0.5``, and none) with its parts, speaker-count error, the share of
enrolled speakers' speaking time named right (and named as another enrolled person), the share of
unknown speakers' speaking time named as an enrolled person (single-speaker time only), and how
often the overlap flags hit reference overlap. Then the real-time factor of the whole pipeline on
one long conversation (``--rtf-minutes``) built fresh, with MindSpore at ``--threads`` threads: the
service's way (``--windows``, windows of one length batched), and in the same run the references: the same
network one window per call and, for CAM++'s windows, ECAPA's batched windows (the earlier default).
Window embeddings are cached under ``--cache`` (per conversation, condition and window layout): the
dense layout, windows every ``refine_hop_s``; the first pass (every ``hop_s``) is every k-th of them,
exactly the windows the pipeline plans, and the windows its second pass adds near changes of
speaker are read from the same cache (the same windows through the same network: the same numbers).
The printout says how many were read so and how many calls ran the network (the voiceprints). The frames
of speech are not cached: each load computes them again with the pipeline's rule (``speech_frames``).
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import json
import os
import resource
import sys
import time
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from inference import features
from inference.config import DiarizationConfig, EngineConfig
from inference.diarization import (
    Diarization,
    WindowEmbeddings,
    diarize_embedded,
    embed_recording,
    name_clusters,
    speech_frames,
    voiceprint_by,
)
from inference.diarization.windows import WindowPlan, plan_features
from inference.quality_calibration import Calibration, SideQuality, shipped_calibration
from inference.scoring import average_embeddings
from inference.vad import SpeechReport
from tools.calibration_set import degrade, dsp

RATE = 16_000
GRID_S = 0.01  # the scoring grid of the attribution figures
LIBRISPEECH = ("librispeech-train-clean-100", "librispeech-test-other")
CONDITIONS = (("clean", 0.0), ("clean", 0.10), ("telephone", 0.0), ("telephone", 0.10))
# Gaps in a speaker's own speech shorter than this belong to the turn in the reference (as in
# NIST-style references, which bridge short pauses).
REFERENCE_BRIDGE_S = 0.3
FIR = 0.01


@dataclass(frozen=True)
class Networks:
    """Who embeds the windows and who names the voices (``--windows``), composed as the service composes them
    (speakers/runtime/inference_owner.py diarize)."""

    windows: str  # "ecapa" or "campplus"
    embedder: object  # ECAPA's Embedder: the gallery and the voices' voiceprints
    net: object  # the windows' network: embed_windows / embed_features

    @classmethod
    def load(cls, windows: str, threads: int) -> Networks:
        from inference.embedder import Embedder

        embedder = Embedder.load(EngineConfig(threads=threads))
        if windows == "ecapa":
            return cls(windows, embedder, embedder)
        from inference.campplus_model import CampplusModel

        return cls(windows, embedder, CampplusModel.load(EngineConfig(threads=threads)))

    def features_of(self, speech: np.ndarray) -> np.ndarray:
        """One window's features for the windows' network."""
        if self.windows == "ecapa":
            return features.compute_features(speech, self.embedder.config.frontend)
        return self.net.window_features(speech)

    @property
    def voiceprint_of(self):
        """Each voice's speech -> ECAPA's vector, when another network embeds the windows (else None: the
        pipeline's own voiceprints, the windows' network)."""
        return None if self.windows == "ecapa" else voiceprint_by(self.embedder.embed_features, self.embedder.config)

    def diarize_kw(self) -> dict:
        return {"engine": self.embedder.config, "window_features": self.features_of, "voiceprint_of": self.voiceprint_of}


# ----------------------------------------------------------------------------- material

@dataclass(frozen=True)
class Speaker:
    name: str
    known: bool
    enroll: tuple[str, ...]  # corpus paths
    material: tuple[str, ...]  # corpus paths that may appear in conversations


def speakers_of(corpus: Path, split: str) -> list[Speaker]:
    """The split's LibriSpeech readers in trial lists, with enrollment and conversation recordings."""
    rows = [r for r in csv.DictReader(open(corpus / "splits.csv", encoding="utf-8"))
            if r["split"] == split and r["role"] == "trials" and r["usable"] == "yes" and r["dataset"] in LIBRISPEECH]
    enroll = {}
    for line in (corpus / "enrollments" / split / "clean.txt").read_text(encoding="utf-8").splitlines():
        name, *paths = line.split()
        enroll[name] = tuple(paths)
    files = defaultdict(list)
    for r in csv.DictReader(open(corpus / "provenance.csv", encoding="utf-8")):
        files[r["speaker"]].append(r["path"])
    out = []
    for r in rows:
        name = r["speaker"]
        mine = sorted(files[name])
        if name in enroll:
            used = set(enroll[name])
        elif r["dataset"] == "librispeech-train-clean-100":  # what enrollment would have taken
            used = {p for p in mine if p.endswith("_a.wav")}
        else:
            used = set(mine[:3])
        material = tuple(p for p in mine if p not in used)
        if material:
            out.append(Speaker(name, r["known"] == "yes" and name in enroll, enroll.get(name, ()), material))
    return out


_audio_cache: dict[str, np.ndarray] = {}


def load(corpus: Path, path: str) -> np.ndarray:
    if path not in _audio_cache:
        x, rate = sf.read(corpus / path, dtype="float64")
        if rate != RATE:
            raise ValueError(f"{path}: {rate} Hz, expected {RATE}")
        _audio_cache[path] = x
    return _audio_cache[path]


# ----------------------------------------------------------------------------- conversations

@dataclass(frozen=True)
class Turn:
    speaker: str
    start_s: float
    audio: np.ndarray  # float64 at RATE, levelled


@dataclass(frozen=True)
class Conversation:
    key: str
    turns: tuple[Turn, ...]
    duration_s: float

    @property
    def speakers(self) -> list[str]:
        return list(dict.fromkeys(t.speaker for t in self.turns))


def cut_turns(x: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """A speaker's material cut at quiet points into turns of 1-20 s (log-uniform), as long as it lasts."""
    turns, pos = [], 0
    while x.size - pos > 0:
        left = (x.size - pos) / RATE
        want = float(np.exp(rng.uniform(np.log(1.0), np.log(20.0))))
        if left <= want + 1.0:
            turns.append(x[pos:])
            break
        cut = pos + dsp.quiet_cut(x[pos:], max(want - 0.5, 0.8), want + 0.5)
        turns.append(x[pos:cut])
        pos = cut
    return [t for t in turns if t.size >= 0.3 * RATE]


def build_conversation(key: str, pool: list[Speaker], corpus: Path, overlap: float) -> Conversation:
    """One conversation, seeded by ``key`` (the same speakers and turns in every condition)."""
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little"))
    weights = np.asarray([np.sqrt(len(s.material)) for s in pool], dtype=np.float64)
    count = int(rng.integers(2, 7))
    chosen = [pool[i] for i in rng.choice(len(pool), size=count, replace=False, p=weights / weights.sum())]
    queues: dict[str, list[np.ndarray]] = {}
    for speaker in chosen:
        x = np.concatenate([load(corpus, p) for p in speaker.material])
        gain = 10 ** ((-26.0 + rng.uniform(-3, 3)) / 20) / np.sqrt(dsp.speech_power(x) + 1e-12)
        queues[speaker.name] = cut_turns(x * gain, rng)
    order: list[tuple[str, np.ndarray]] = []
    previous = None
    while any(queues.values()):
        names = [n for n, q in queues.items() if q and n != previous] or [n for n, q in queues.items() if q]
        left = np.asarray([len(queues[n]) for n in names], dtype=np.float64)
        name = names[int(rng.choice(len(names), p=left / left.sum()))]
        order.append((name, queues[name].pop(0)))
        previous = name
    gaps = [float(rng.uniform(0.05, 1.0)) if rng.random() < 0.8 else 0.0 for _ in order]
    overlaps = [0.0] * len(order)
    if overlap > 0 and len(order) > 1:
        total = sum(a.size for _, a in order) / RATE
        budget = overlap * total / (1 - overlap)  # overlapped time over speech time ~= overlap
        for i in rng.permutation(np.arange(1, len(order))):
            if budget <= 0 or order[i][0] == order[i - 1][0]:
                continue
            longest = 0.5 * min(order[i][1].size, order[i - 1][1].size) / RATE
            d = min(float(rng.uniform(0.5, 3.0)), longest, budget)
            if d >= 0.3:
                overlaps[i] = d
                budget -= d
    turns, t = [], 0.0
    for i, (name, a) in enumerate(order):
        start = max(0.0, t + (gaps[i] if overlaps[i] == 0 else -overlaps[i])) if i else 0.3
        turns.append(Turn(name, start, a))
        t = max(t, start + a.size / RATE)
    return Conversation(key, tuple(turns), t + 0.3)


def mix(conversation: Conversation) -> np.ndarray:
    y = np.zeros(int(np.ceil(conversation.duration_s * RATE)) + 1)
    for turn in conversation.turns:
        start = int(round(turn.start_s * RATE))
        y[start : start + turn.audio.size] += turn.audio
    return y


_references: dict[str, dict[str, list[tuple[float, float]]]] = {}


def reference(conversation: Conversation) -> dict[str, list[tuple[float, float]]]:
    """Per speaker, the stretches they speak (an energy gate on their own clean turn, short gaps bridged)."""
    key = f"{conversation.key}-{conversation.duration_s}"
    if key not in _references:
        _references.clear()
        _references[key] = _reference(conversation)
    return _references[key]


def _reference(conversation: Conversation) -> dict[str, list[tuple[float, float]]]:
    out: dict[str, list[tuple[float, float]]] = defaultdict(list)
    bridge = int(round(REFERENCE_BRIDGE_S / dsp.HOP_S))
    for turn in conversation.turns:
        mask = dsp.speech_frames(turn.audio)
        mask = dsp._fill_runs(mask, value=False, shorter_than=bridge)  # noqa: SLF001 - the corpus' own gate
        edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
        for a, b in zip(edges[::2], edges[1::2]):
            out[turn.speaker].append((turn.start_s + a * dsp.HOP_S, turn.start_s + b * dsp.HOP_S + dsp.FRAME_S))
    return out


def conditioned(x: np.ndarray, channel: str) -> tuple[np.ndarray, int]:
    if channel == "clean":
        return x.astype(np.float32), RATE
    return degrade.telephone(x).astype(np.float32), degrade.TELEPHONE_RATE


# ----------------------------------------------------------------------------- embedding cache

def cache_path(cache: Path, key: str, channel: str, overlap: float, config: DiarizationConfig, windows: str) -> Path:
    layout = f"{windows}-w{config.window_s}-h{config.hop_s}-m{config.min_window_s}"
    return cache / layout / f"{key}-{channel}-ov{int(round(overlap * 100))}.npz"


def save_windows(path: Path, w: WindowEmbeddings, network_s: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    report = dataclasses.asdict(w.report)
    np.savez(path, bounds=w.plan.bounds, region=w.plan.region, regions=np.asarray(w.plan.regions).reshape(-1, 2),
             embeddings=w.embeddings, frame_s=w.frame_s, network_s=network_s,
             report=json.dumps(report))


def load_windows(path: Path, samples: np.ndarray, rate: int,
                 config: DiarizationConfig) -> tuple[WindowEmbeddings, float]:
    """The cached windows and embeddings; the frames of speech computed again (the pipeline's rule as it is
    now: they cost no network)."""
    from inference import audio

    z = np.load(path)
    report = json.loads(str(z["report"]))
    report["segments"] = tuple(tuple(s) for s in report["segments"])
    x = audio.resample(samples, rate, RATE)
    x = x - np.float32(x.mean())
    plan = WindowPlan(bounds=z["bounds"], region=z["region"], regions=tuple(map(tuple, z["regions"].tolist())))
    speech = speech_frames(x, EngineConfig(), config)[0]
    return WindowEmbeddings(plan=plan, embeddings=z["embeddings"], speech=speech, frame_s=float(z["frame_s"]),
                            report=SpeechReport(**report), samples=x), float(z["network_s"])


def thin(windows: WindowEmbeddings, every: int) -> WindowEmbeddings:
    """The windows a hop ``every`` times longer would have made: every ``every``-th window of each
    stretch from its start, and the one ending at its end (a subset of the cached windows, so a
    longer hop is measured without running the network again)."""
    if every <= 1:
        return windows
    keep = []
    region = windows.plan.region
    for r in np.unique(region):
        mine = np.flatnonzero(region == r)
        chosen = set(mine[::every].tolist()) | {int(mine[-1])}
        keep.extend(sorted(chosen))
    keep = np.asarray(keep, dtype=np.int64)
    plan = WindowPlan(bounds=windows.plan.bounds[keep], region=region[keep], regions=windows.plan.regions)
    return dataclasses.replace(windows, plan=plan, embeddings=windows.embeddings[keep])


def dense_layout(config: DiarizationConfig) -> tuple[DiarizationConfig, int]:
    """The layout the cache holds and how many of its hops make one of ``config``'s first pass.

    With ``refine_hop_s`` the cache holds windows every ``refine_hop_s`` (a first pass every
    ``hop_s`` takes every k-th of them, the second pass some of the others); else every ``hop_s``.
    """
    if config.refine_hop_s is None or config.refine_hop_s >= config.hop_s:
        return dataclasses.replace(config, refine_hop_s=None), 1
    every = int(round(config.hop_s / config.refine_hop_s))
    if abs(every * config.refine_hop_s - config.hop_s) > 1e-9:
        raise SystemExit(f"hop_s={config.hop_s} is not a whole number of refine_hop_s={config.refine_hop_s}")
    return dataclasses.replace(config, hop_s=config.refine_hop_s, refine_hop_s=None), every


class CachedNetwork:
    """``embed_windows`` for one cached recording: features of a cached window (the dense layout's)
    give its cached embedding, the same numbers the network gave them; anything else (voiceprints)
    runs the network. ``counter`` counts both."""

    def __init__(self, windows: WindowEmbeddings, networks: Networks, counter: Counter) -> None:
        self.embedder, self.counter = networks.net, counter
        feats = plan_features(windows.samples, windows.plan, RATE, networks.features_of)
        self.rows = {self._key(f): row for f, row in zip(feats, windows.embeddings)}

    @staticmethod
    def _key(feats: np.ndarray) -> bytes:
        return hashlib.sha1(np.ascontiguousarray(feats, dtype=np.float32).tobytes()).digest()

    def __call__(self, feats: list[np.ndarray]) -> np.ndarray:
        keys = [self._key(f) for f in feats]
        if all(k in self.rows for k in keys):
            self.counter["refined"] += len(keys)
            return np.stack([self.rows[k] for k in keys])
        self.counter["network"] += 1
        self.counter["network_rows"] += len(feats)
        return self.embedder.embed_windows(feats)


# ----------------------------------------------------------------------------- identification

@dataclass(frozen=True)
class Gallery:
    names: list[str]
    vectors: np.ndarray  # (E, 192)
    quality: list[SideQuality]


def enroll_gallery(speakers: list[Speaker], corpus: Path, embedder, cache: Path, split: str) -> Gallery:
    path = cache / f"enroll-{split}-{embedder.model_version}.npz"
    known = [s for s in speakers if s.known]
    if path.is_file():
        z = np.load(path)
        names = [str(n) for n in z["names"]]
        if names == [s.name for s in known]:
            return Gallery(names, z["vectors"], [SideQuality(*q) for q in z["quality"].tolist()])
    vectors, quality = [], []
    for s in known:
        results = [embedder.embed_waveform(load(corpus, p).astype(np.float32), RATE) for p in s.enroll]
        vectors.append(average_embeddings(np.stack([r.vector for r in results])))
        quality.append(SideQuality(speech_s=sum(r.speech_s for r in results),
                                   snr_db=float(np.mean([r.quality.snr_db for r in results])),
                                   bandwidth_hz=float(np.mean([r.quality.bandwidth_hz for r in results]))))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, names=np.asarray([s.name for s in known]), vectors=np.stack(vectors),
             quality=np.asarray([[q.speech_s, q.snr_db, q.bandwidth_hz] for q in quality]))
    return Gallery([s.name for s in known], np.stack(vectors), quality)


def identify_scores(d: Diarization, gallery: Gallery, calibration: Calibration) -> tuple[np.ndarray, np.ndarray, float]:
    """``(llr, threshold)`` of every cluster x enrolled pair and the margin: speaker_identify's rule.

    The threshold is the identification threshold on ``t`` for ``FIR`` among ``len(gallery)``
    voices, put on the llr scale of each pair; the margin is the calibrated lead over the runner-up.
    """
    cal = calibration.scale("cosine")
    tau = cal.identify_t(FIR, len(gallery.names))
    llr = np.zeros((len(d.clusters), len(gallery.names)))
    threshold = np.zeros_like(llr)
    for c, cluster in enumerate(d.clusters):
        probe = SideQuality(speech_s=cluster.voiceprint_speech_s, snr_db=d.snr_db, bandwidth_hz=d.bandwidth_hz)
        cosines = gallery.vectors @ cluster.voiceprint
        for e, enroll in enumerate(gallery.quality):
            x = cal.features_of(enroll, probe)
            llr[c, e] = float(cal.llr_of(cal.normalised(float(cosines[e]), x), x))
            threshold[c, e] = float(cal.llr_of(tau, x))
    return llr, threshold, cal.identify_margin


# ----------------------------------------------------------------------------- scoring

def annotation(segments, label=str):
    from pyannote.core import Annotation, Segment

    a = Annotation()
    for i, (start, end, who) in enumerate(segments):
        if end > start:
            a[Segment(start, end), i] = label(who)
    return a


def grid(spans: list[tuple[float, float]], frames: int) -> np.ndarray:
    mask = np.zeros(frames, dtype=bool)
    for start, end in spans:
        mask[int(round(start / GRID_S)) : int(round(end / GRID_S))] = True
    return mask


@dataclass
class Tally:
    der0: object = None
    der25: object = None
    count_errors: list = dataclasses.field(default_factory=list)
    known_s: float = 0.0
    known_right_s: float = 0.0
    known_wrong_s: float = 0.0
    unknown_s: float = 0.0
    unknown_named_s: float = 0.0
    overlap_s: float = 0.0
    speech_s: float = 0.0
    flagged_s: float = 0.0
    flagged_hit_s: float = 0.0
    audio_s: float = 0.0
    conversations: int = 0
    named_unknown_conversations: int = 0

    def __post_init__(self) -> None:
        from pyannote.metrics.diarization import DiarizationErrorRate

        self.der0 = DiarizationErrorRate(collar=0.0)
        self.der25 = DiarizationErrorRate(collar=0.5)  # pyannote's collar is the total: +-0.25 s


def score(tally: Tally, conversation: Conversation, known: set[str], d: Diarization, labels: dict[int, str]) -> None:
    ref = reference(conversation)
    ref_segments = [(a, b, who) for who, spans in ref.items() for a, b in spans]
    reference_annotation = annotation(ref_segments)
    hypothesis = annotation(d.segments)
    from pyannote.core import Segment, Timeline

    uem = Timeline([Segment(0, conversation.duration_s)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tally.der0(reference_annotation, hypothesis, uem=uem)
        tally.der25(reference_annotation, hypothesis, uem=uem)
    tally.count_errors.append(len(d.clusters) - len(ref))
    frames = int(np.ceil(conversation.duration_s / GRID_S)) + 1
    masks = {who: grid(spans, frames) for who, spans in ref.items()}
    active = np.sum(list(masks.values()), axis=0)
    hyp_name = np.full(frames, "", dtype=object)
    for start, end, cluster in d.segments:
        hyp_name[int(round(start / GRID_S)) : int(round(end / GRID_S))] = labels[cluster]
    enrolled_names = known
    alone = active == 1
    named_unknown = False
    for who, mask in masks.items():
        mine = mask & alone
        seconds = mine.sum() * GRID_S
        if who in known:
            tally.known_s += seconds
            tally.known_right_s += np.sum(hyp_name[mine] == who) * GRID_S
            tally.known_wrong_s += np.sum(np.isin(hyp_name[mine], list(enrolled_names - {who}))) * GRID_S
        else:
            tally.unknown_s += seconds
            wrong = np.sum(np.isin(hyp_name[mine], list(enrolled_names))) * GRID_S
            tally.unknown_named_s += wrong
            named_unknown |= wrong > 0
    tally.named_unknown_conversations += int(named_unknown)
    tally.overlap_s += np.sum(active >= 2) * GRID_S
    tally.speech_s += np.sum(active >= 1) * GRID_S
    flagged = grid(list(d.overlaps), frames)
    tally.flagged_s += flagged.sum() * GRID_S
    tally.flagged_hit_s += np.sum(flagged & (active >= 2)) * GRID_S
    tally.audio_s += conversation.duration_s
    tally.conversations += 1


def der_parts(metric) -> dict[str, float]:
    detail = metric[:] if hasattr(metric, "__getitem__") else {}
    total = detail["total"] or 1.0
    return {"der": abs(metric), "miss": detail["missed detection"] / total,
            "fa": detail["false alarm"] / total, "conf": detail["confusion"] / total}


# ----------------------------------------------------------------------------- the runs

def run_split(args, split: str, networks: Networks, config: DiarizationConfig, *, conversations: int,
              fit_grid: list[tuple[float, float]] | None = None) -> dict:
    embedder = networks.embedder
    pool = speakers_of(args.corpus, split)
    out: dict = {}
    if fit_grid is None:
        gallery = enroll_gallery(pool, args.corpus, embedder, args.cache, split)
        calibration = shipped_calibration(embedder.model_version)
        if calibration is None:
            raise SystemExit(f"no shipped calibration for {embedder.model_version}")
    known = {s.name for s in pool if s.known}
    dense, every = dense_layout(config)
    cached = Counter()
    for channel, overlap in CONDITIONS:
        if (args.channel and channel != args.channel) or (args.overlap is not None and overlap != args.overlap):
            continue
        tallies = {p: Tally() for p in (fit_grid or [None])}
        for i in range(conversations):
            key = f"{split}-{args.seed}-{i}"
            conversation = build_conversation(key, pool, args.corpus, overlap)
            samples, rate = conditioned(mix(conversation), channel)
            # The cache holds the dense layout (every refine_hop_s): the first pass is every k-th of its
            # windows, and the windows the second pass adds near changes of speaker are among them.
            path = cache_path(args.cache, key, channel, overlap, dense, networks.windows)
            if path.is_file():
                windows, _ = load_windows(path, samples, rate, dense)
            else:
                timings: dict[str, float] = {}
                windows = embed_recording(samples, rate, networks.net.embed_windows, engine=embedder.config,
                                          config=dense, timings=timings, window_features=networks.features_of)
                save_windows(path, windows, timings["network"])
            network = CachedNetwork(windows, networks, cached)
            windows = thin(windows, every * args.thin)
            for params, tally in tallies.items():
                if params is None:
                    d = diarize_embedded(windows, network, config=config, **networks.diarize_kw())
                    llr, threshold, margin = identify_scores(d, gallery, calibration)
                    names = name_clusters(llr, threshold, gallery.names, margin=margin,
                                          first_speech_s=[c.first_s for c in d.clusters])
                    labels = {n.cluster: n.label for n in names}
                else:
                    cfg = dataclasses.replace(config, stop_distance=params[0], stop_distance_narrowband=params[0],
                                              min_cluster_s=params[1])
                    d = diarize_embedded(windows, None, config=cfg, **networks.diarize_kw())
                    labels = {c.cluster: f"cluster-{c.cluster}" for c in d.clusters}
                score(tally, conversation, known, d, labels)
            print(f"  {split} {channel} ov{overlap:.2f} {i + 1}/{conversations}", file=sys.stderr, flush=True)
        out[(channel, overlap)] = tallies
    if fit_grid is None:
        print(f"\n{split}: {cached['refined']} windows of the second pass read from the dense layout's cache, "
              f"{cached['network']} network calls (voiceprints: {cached['network_rows']} rows)")
    return out


def print_fit(results: dict, grid_points: list[tuple[float, float]]) -> tuple[float, float, float]:
    print("\nFit of the stopping rule on TRAIN conversations (DER collar +-0.25 s, all four conditions pooled):")
    print("| stop_distance | min_cluster_s | " + " | ".join(f"DER {c} ov {int(o * 100)}%" for c, o in CONDITIONS)
          + " | mean | count error |")
    print("|---|---|---|---|---|---|---|---|")
    best, best_value = grid_points[0], np.inf
    for p in grid_points:
        ders = [abs(results[c][p].der25) for c in CONDITIONS]
        counts = np.concatenate([results[c][p].count_errors for c in CONDITIONS])
        mean = float(np.mean(ders))
        print(f"| {p[0]:.2f} | {p[1]:.1f} | " + " | ".join(f"{100 * v:.1f}%" for v in ders)
              + f" | {100 * mean:.1f}% | {np.mean(np.abs(counts)):.2f} |")
        if mean < best_value:
            best, best_value = p, mean
    print(f"one threshold for both: stop_distance={best[0]}, min_cluster_s={best[1]} (mean DER {100 * best_value:.1f}%)")
    # one threshold per band (the engine picks by the recording's measured bandwidth), min_cluster_s shared
    joint = {}
    for smallest in sorted({p[1] for p in grid_points}):
        picks, total = {}, 0.0
        for channel in ("clean", "telephone"):
            chosen = [c for c in CONDITIONS if c[0] == channel]
            values = {p[0]: float(np.mean([abs(results[c][p].der25) for c in chosen]))
                      for p in grid_points if p[1] == smallest}
            picks[channel] = min(values, key=values.get)
            total += values[picks[channel]] / 2
        joint[smallest] = (picks, total)
    smallest = min(joint, key=lambda k: joint[k][1])
    picks, total = joint[smallest]
    print(f"per band: stop_distance={picks['clean']} (wideband), stop_distance_narrowband={picks['telephone']}, "
          f"min_cluster_s={smallest} (mean DER {100 * total:.1f}%)")
    best = (picks["clean"], picks["telephone"], smallest)
    return best


def print_table(results: dict, split: str) -> None:
    print(f"\nHeld-out conversations ({split} speakers; DER by pyannote.metrics {_version('pyannote.metrics')}):")
    print("| condition | conv. | audio | overlap | DER +-0.25 s | DER no collar (miss / FA / conf.) | "
          "count error: exact, mean abs | enrolled time named right (wrong person) | unknown time named as enrolled "
          "(conv.) | the same, of all speaking time | overlap flags: s, precision, recall |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (channel, overlap), tallies in results.items():
        t = tallies[None]
        d0, d25 = der_parts(t.der0), der_parts(t.der25)
        counts = np.asarray(t.count_errors)
        print(f"| {channel}, overlap {int(overlap * 100)}% | {t.conversations} | {t.audio_s / 60:.1f} min "
              f"| {100 * t.overlap_s / max(t.speech_s, 1e-9):.1f}% | **{100 * d25['der']:.1f}%** "
              f"| {100 * d0['der']:.1f}% ({100 * d0['miss']:.1f} / {100 * d0['fa']:.1f} / {100 * d0['conf']:.1f}) "
              f"| {100 * np.mean(counts == 0):.0f}%, {np.mean(np.abs(counts)):.2f} "
              f"| {100 * t.known_right_s / max(t.known_s, 1e-9):.1f}% ({100 * t.known_wrong_s / max(t.known_s, 1e-9):.2f}%) "
              f"| {100 * t.unknown_named_s / max(t.unknown_s, 1e-9):.2f}% ({t.named_unknown_conversations}) "
              f"| {100 * t.unknown_named_s / max(t.speech_s, 1e-9):.2f}% "
              f"| {t.flagged_s:.1f}, {100 * t.flagged_hit_s / max(t.flagged_s, 1e-9):.0f}%, "
              f"{100 * t.flagged_hit_s / max(t.overlap_s, 1e-9):.0f}% |")


SHIPPED_RULE = "the turns' frames (speech_frames: the engine's, extended by speech_vad's stretches that hold one)"


def speech_detectors(args, config: DiarizationConfig) -> None:
    """How much of the reference speech each detector misses and how much it finds where nobody speaks,
    per condition, on TRAIN conversations (frames of 20 ms, +-0.25 s around every reference boundary not
    scored, as pyannote's collar): the engine's detector (the windows), ``config.speech_vad`` and variants of
    its gates, and the frames the turns cover (``speech_frames``). No network runs."""
    from inference import audio, vad

    engine = EngineConfig().vad
    detectors = {"engine (EngineConfig.vad)": engine, "DiarizationConfig.speech_vad": config.speech_vad}
    for range_db, floor, score in ((30.0, -55.0, 2.0), (30.0, -55.0, 1.0), (40.0, -55.0, 3.0), (40.0, -65.0, 3.0),
                                   (40.0, -65.0, 2.0), (40.0, -65.0, 1.5), (40.0, -65.0, 1.0), (50.0, -75.0, 3.0)):
        detectors[f"within {range_db:g} dB, above {floor:g} dBFS, score {score:g}"] = dataclasses.replace(
            engine, threshold_db=range_db, floor_dbfs=floor, score_threshold=score)
    pool = speakers_of(args.corpus, "train")
    frame_s = engine.frame_ms / 1000.0
    totals: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for channel, overlap in CONDITIONS:
        condition = f"{channel} {overlap:.0%}"
        for i in range(args.fit_conversations):
            conversation = build_conversation(f"train-{args.seed}-{i}", pool, args.corpus, overlap)
            samples, rate = conditioned(mix(conversation), channel)
            x = audio.resample(np.asarray(samples, dtype=np.float32), rate, RATE)
            x = x - np.float32(x.mean())
            frames = x.size // int(round(RATE * frame_s))
            truth, scored = np.zeros(frames, dtype=bool), np.ones(frames, dtype=bool)
            for spans in reference(conversation).values():
                for start, end in spans:
                    truth[int(start / frame_s) : int(np.ceil(end / frame_s))] = True
                    for edge in (start, end):
                        scored[max(0, int((edge - 0.25) / frame_s)) : int(np.ceil((edge + 0.25) / frame_s))] = False
            masks = {name: vad.detect_speech(x, RATE, detector)[0] for name, detector in detectors.items()}
            masks[SHIPPED_RULE] = speech_frames(x, EngineConfig(), config)[0]
            for name, mask in masks.items():
                found = np.zeros(frames, dtype=bool)
                mask = mask[:frames]
                found[: mask.size] = mask
                tally = totals[(name, condition)]
                tally[0] += np.sum(truth & ~found & scored)
                tally[1] += np.sum(~truth & found & scored)
                tally[2] += np.sum(truth & scored)
    conditions = [f"{c} {o:.0%}" for c, o in CONDITIONS]
    print(f"\nSpeech detectors on {args.fit_conversations} TRAIN conversations per condition: missed + found where "
          "nobody speaks, % of the reference speech (miss / false alarm), +-0.25 s collar")
    print("| detector | " + " | ".join(conditions) + " | mean |")
    print("|---" * (len(conditions) + 2) + "|")
    for name in [*detectors, SHIPPED_RULE]:
        cells = [totals[(name, c)] for c in conditions]
        errors = [100.0 * (m + f) / n for m, f, n in cells]
        print(f"| {name} | " + " | ".join(f"{e:.2f} ({100 * m / n:.1f} / {100 * f / n:.1f})" for e, (m, f, n) in zip(errors, cells))
              + f" | {np.mean(errors):.2f} |")


def measure_rtf(args, networks: Networks, config: DiarizationConfig) -> None:
    """The whole pipeline, uncached, on one long conversation of held-out speakers."""
    from inference.diarization import diarize

    pool = speakers_of(args.corpus, "heldout")
    pieces, seconds, i = [], 0.0, 0
    while seconds < args.rtf_minutes * 60:
        c = build_conversation(f"rtf-{args.seed}-{i}", pool, args.corpus, 0.05)
        pieces.append(mix(c))
        seconds += c.duration_s
        i += 1
    samples = np.concatenate(pieces).astype(np.float32)
    # the same run's reference: one 3 s verify probe through the whole engine (decode to vector)
    from benchmarks.common import speech_of, wav_bytes

    embedder = networks.embedder
    probe = wav_bytes(speech_of(3.0))
    embedder.embed(probe)
    started = time.perf_counter()
    for _ in range(5):
        embedder.embed(probe)
    verify_s = (time.perf_counter() - started) / 5
    # The service's way (windows of one length batched: embed_windows), then the references in the same
    # run: every window through the one-utterance graph on its own (embed_features) and, for CAM++'s
    # windows, ECAPA's windows batched with their own stopping distances (the earlier default).
    plans = [("batched windows", networks, networks.net.embed_windows, config),
             ("one window per call", networks, networks.net.embed_features, config)]
    if networks.windows != "ecapa":
        ecapa = Networks("ecapa", embedder, embedder)
        plans.append(("ECAPA's windows batched", ecapa, embedder.embed_windows,
                      DiarizationConfig.for_windows("ecapa", **{f.name: getattr(config, f.name) for f in dataclasses.fields(config)
                                                             if f.name not in ("stop_distance", "stop_distance_narrowband")})))
    runs = {}
    for name, nets, embed, cfg in plans:
        wall, cpu = time.perf_counter(), time.process_time()
        d = diarize(samples, RATE, embed, config=cfg, **nets.diarize_kw())
        runs[name] = (d, time.perf_counter() - wall, time.process_time() - cpu)
    duration = samples.size / RATE
    print(f"\nReal-time factor ({networks.windows}'s windows): {duration / 60:.1f} min ({runs['batched windows'][0].speech_s / 60:.1f} min speech), "
          f"MindSpore threads {args.threads}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for (name, _, _, cfg), (d, wall, cpu) in zip(plans, runs.values()):
        net_per_window = d.timings_s["network"] / max(d.windows, 1)
        print(f"  {name}: {d.windows} windows of which {d.refined_windows} near changes, {len(d.clusters)} clusters, "
              f"{wall:.1f} s wall = RTF **{wall / duration:.3f}** (CPU {cpu:.1f} s = {cpu / duration:.3f} CPU-s per second)")
        print("    " + ", ".join(f"{k} {v:.1f} s" for k, v in d.timings_s.items())
              + f"; network {1000 * net_per_window:.1f} ms per {cfg.window_s} s window;"
              f" 1 h at this rate: {wall / duration * 60:.1f} min = the time of {3600 * wall / duration / verify_s:.0f}"
              f" embeddings of a 3 s probe ({1000 * verify_s:.0f} ms each in this run)")
    (batched, b_wall, _), (single, s_wall, _) = runs["batched windows"], runs["one window per call"]
    print(f"  batched / one per call: wall {b_wall / s_wall:.2f}x, network {batched.timings_s['network'] / single.timings_s['network']:.2f}x;"
          f" the same segments: {batched.segments == single.segments}")
    if "ECAPA's windows batched" in runs:
        _, e_wall, _ = runs["ECAPA's windows batched"]
        print(f"  {networks.windows}'s windows / ECAPA's windows, both batched: wall {b_wall / e_wall:.2f}x")
    print(f"  peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", choices=("campplus", "ecapa"), default="campplus",
                        help="the network of the windows (the service's VOICEPRINT_DIARIZE_WINDOWS); ECAPA names the voices")
    parser.add_argument("--corpus", type=Path, default=Path("/work/data/calibration-corpus"))
    parser.add_argument("--cache", type=Path, default=Path("/work/data/diarize"))
    parser.add_argument("--conversations", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fit", action="store_true", help="fit the stopping rule on TRAIN conversations first")
    parser.add_argument("--fit-conversations", type=int, default=30)
    parser.add_argument("--stop-distance", type=float, help="override the configured stopping threshold")
    parser.add_argument("--stop-distance-narrowband", type=float)
    parser.add_argument("--min-cluster-s", type=float, help="override the configured smallest cluster")
    parser.add_argument("--overlap-distance", type=float, help="flag overlapped windows (off by default)")
    parser.add_argument("--window-s", type=float)
    parser.add_argument("--hop-s", type=float)
    parser.add_argument("--refine-hop-s", type=lambda v: None if v == "none" else float(v), default=False,
                        help="the second pass's hop near changes of speaker ('none': no second pass)")
    parser.add_argument("--thin", type=int, default=1,
                        help="use every n-th cached window: the figures of a hop n times longer")
    parser.add_argument("--voiceprint-s", type=float, help="0: identify clusters by their mean window embedding")
    parser.add_argument("--rtf-minutes", type=float, default=10.0, help="0 skips the real-time factor")
    parser.add_argument("--skip-heldout", action="store_true")
    parser.add_argument("--speech-detectors", action="store_true",
                        help="only the speech detectors' missed and false speech on TRAIN conversations (no network)")
    parser.add_argument("--channel", choices=("clean", "telephone"), help="only this channel")
    parser.add_argument("--overlap", type=float, choices=sorted({o for _, o in CONDITIONS}), help="only this overlap")
    args = parser.parse_args(argv)

    overrides = {k: v for k, v in (("stop_distance", args.stop_distance), ("min_cluster_s", args.min_cluster_s),
                                   ("stop_distance_narrowband", args.stop_distance_narrowband),
                                   ("window_s", args.window_s), ("overlap_distance", args.overlap_distance), ("hop_s", args.hop_s),
                                   ("voiceprint_s", args.voiceprint_s)) if v is not None}
    if args.refine_hop_s is not False:
        overrides["refine_hop_s"] = args.refine_hop_s
    config = DiarizationConfig.for_windows(args.windows, **overrides)
    if args.speech_detectors:
        speech_detectors(args, config)
        return 0
    networks = Networks.load(args.windows, args.threads)
    print(f"diarization benchmark: {config}")
    if args.fit:
        points = [(round(s, 3), m) for s in np.arange(0.4, 0.801, 0.025) for m in (0.0, 1.0, 2.0)]
        results = run_split(args, "train", networks, config, conversations=args.fit_conversations, fit_grid=points)
        best = print_fit(results, points)
        config = dataclasses.replace(config, stop_distance=best[0], stop_distance_narrowband=best[1],
                                     min_cluster_s=best[2])
    if not args.skip_heldout:
        results = run_split(args, "heldout", networks, config, conversations=args.conversations)
        print_table(results, "heldout")
    if args.rtf_minutes > 0:
        measure_rtf(args, networks, config)
    return 0


if __name__ == "__main__":
    sys.exit(main())

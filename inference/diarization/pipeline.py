"""The orchestrator: samples -> VAD -> windows -> embeddings (the caller's network) -> clusters -> turns.

The windows are cut from the speech the engine's VAD finds; the turns cover it and the quieter edges around
it that diarization's more sensitive detector (``DiarizationConfig.speech_vad``) finds (:func:`speech_frames`).

The network runs only through ``embed_windows``, the one callable the caller passes in (in the
service, the per-process inference owner's forward step; MindSpore is not thread-safe), called
for the windows, for the windows added near changes of speaker (with ``DiarizationConfig.refine_hop_s``),
and for the clusters' voiceprints (unless ``voiceprint_of`` names them with another engine). Its input
is ``window_features`` of each window's samples: ECAPA's log-mel features by default, CAM++'s Kaldi
fbank for CAM++'s windows (with that network's thresholds: ``DiarizationConfig.for_windows``).
Everything else is numpy.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from inference import audio, features, vad
from inference.config import DiarizationConfig, EngineConfig
from inference.diarization import clustering, refinement
from inference.diarization.clustering import ClusteringFigures, unit_rows
from inference.diarization.windows import (
    WindowPlan,
    frame_owners,
    joined,
    plan_features,
    plan_windows,
    windows_between_changes,
)
from inference.errors import NoSpeechError
from inference.quality_calibration import NARROWBAND_HZ

EmbedWindows = Callable[[Sequence[np.ndarray]], np.ndarray]
# One window's speech samples at the engine's rate -> the ``(T, F)`` input of the windows' network.
WindowFeatures = Callable[[np.ndarray], np.ndarray]
# Speech samples at the engine's rate -> the unit vector to identify a voice with, when the engine that
# names voices is not the one that told them apart (the fused engine: inference.fusion).
EmbedSpeech = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class SpeakerCluster:
    """One speaker found in the recording (not yet named).

    ``voiceprint`` is the ``(192,)`` unit embedding to identify it with: the network on up to
    ``DiarizationConfig.voiceprint_s`` of its speech, its longest turns first (or, with
    ``voiceprint_s=0``, the mean of its windows). ``voiceprint_speech_s`` is the speech that went
    into it, ``speech_s`` all its speech. ``cohesion``: mean cosine of its windows to their mean.
    """

    cluster: int
    speech_s: float
    turns: int
    first_s: float
    voiceprint: np.ndarray
    voiceprint_speech_s: float
    windows: int
    cohesion: float


@dataclass(frozen=True)
class Diarization:
    """Who spoke when.

    ``segments``: ``[(start_s, end_s, cluster), ...]`` in time order, pauses left out; clusters are
    numbered 0, 1, ... in the order they first speak. ``overlaps``: ``[(start_s, end_s), ...]``
    stretches flagged as two voices at once when ``DiarizationConfig.overlap_distance`` is set (a
    weak hint; their frames stay with one cluster in ``segments``).
    ``snr_db`` and ``bandwidth_hz`` are the whole recording's (the probe side of an identification).
    ``windows``: the windows through the network, ``refined_windows`` of them the second pass near
    changes of speaker (``DiarizationConfig.refine_hop_s``). ``timings_s``: wall seconds per stage (``vad``, ``features``, ``network``, ``clustering``, ``refinement``,
    ``voiceprints``).
    """

    segments: tuple[tuple[float, float, int], ...]
    clusters: tuple[SpeakerCluster, ...]
    overlaps: tuple[tuple[float, float], ...]
    duration_s: float
    speech_s: float
    snr_db: float
    bandwidth_hz: float
    windows: int
    refined_windows: int
    clustering: ClusteringFigures
    timings_s: dict[str, float]


@dataclass(frozen=True)
class WindowEmbeddings:
    """What the network said about one recording's windows (a benchmark caches this)."""

    plan: WindowPlan
    embeddings: np.ndarray  # (N, 192)
    speech: np.ndarray  # (F,) bool frames of speech (speech_frames)
    frame_s: float
    report: vad.SpeechReport
    samples: np.ndarray  # 16 kHz float32, DC removed


def embed_recording(samples: np.ndarray, sample_rate: int, embed_windows: EmbedWindows, *,
                    engine: EngineConfig = EngineConfig(), config: DiarizationConfig = DiarizationConfig(),
                    timings: dict[str, float] | None = None,
                    window_features: WindowFeatures | None = None) -> WindowEmbeddings:
    """VAD, windows and their embeddings. Raises :class:`NoSpeechError` without a window of speech."""
    timings = {} if timings is None else timings
    started = time.perf_counter()
    rate = engine.audio.sample_rate
    x = audio.resample(np.asarray(samples, dtype=np.float32), sample_rate, rate)
    x = x - np.float32(x.mean()) if x.size else x
    speech, report = speech_frames(x, engine, config)
    frame_s = engine.vad.frame_ms / 1000.0
    plan = plan_windows(report.segments, config)
    if len(plan) == 0:
        raise NoSpeechError(f"no stretch of speech lasts the {config.min_window_s} s needed to tell speakers apart",
                            speech_s=round(report.speech_s, 3), min_window_s=config.min_window_s)
    _add(timings, "vad", started)
    embeddings = _embed_plan(x, plan, embed_windows, engine, config, timings, window_features)
    return WindowEmbeddings(plan=plan, embeddings=embeddings, speech=speech, frame_s=frame_s, report=report,
                            samples=x)


def speech_frames(x: np.ndarray, engine: EngineConfig = EngineConfig(),
                  config: DiarizationConfig = DiarizationConfig()) -> tuple[np.ndarray, vad.SpeechReport]:
    """The frames of speech of a recording (``x``: 16 kHz, DC removed) and the engine detector's report.

    The windows are cut from the report's segments (the engine's detector: what a voice's embedding is
    made of). The turns cover those frames and, around them, the quieter edges diarization's more sensitive
    detector (``config.speech_vad``) finds: each stretch of the sensitive speech that holds a frame of the
    engine's. A stretch without one (a voice far quieter than the others, under the engine's loudness gate)
    is left out: no window embeds it, so it could only take a neighbour's label. One analysis for both.
    """
    engine_speech, report, sensitive = vad.detect_speech_twice(x, engine.audio.sample_rate, engine.vad,
                                                               config.speech_vad)
    speech = engine_speech.copy()
    for start, end, found in refinement.runs(sensitive.astype(np.int64)):
        if found and engine_speech[start:end].any():
            speech[start:end] = True
    return speech, report


def _features_of(engine: EngineConfig, window_features: WindowFeatures | None) -> WindowFeatures:
    """``window_features``, or ECAPA's log-mel features (the default network of the windows)."""
    if window_features is not None:
        return window_features
    return lambda speech: features.compute_features(speech, engine.frontend)


def voice_features(speech: np.ndarray, engine: EngineConfig, window_features: WindowFeatures | None = None) -> np.ndarray:
    """A voice's speech (at most the engine's window) -> the input of the network that makes its voiceprint."""
    return _features_of(engine, window_features)(speech)[: engine.window_frames]


def voiceprint_by(embed: EmbedWindows, engine: EngineConfig = EngineConfig()) -> EmbedSpeech:
    """``voiceprint_of`` for ECAPA's ``embed`` when another network embeds the windows: a voice's speech -> the
    voiceprint the pipeline gives a voice when ECAPA embeds the windows too (its log-mel features, one pass)."""
    return lambda speech: unit_rows(np.asarray(embed([voice_features(speech, engine)]), dtype=np.float32))[0]


def _embed_plan(x: np.ndarray, plan: WindowPlan, embed_windows: EmbedWindows, engine: EngineConfig,
                config: DiarizationConfig, timings: dict[str, float],
                window_features: WindowFeatures | None = None) -> np.ndarray:
    """``(N, 192)`` embeddings of the windows of ``plan`` over the 16 kHz samples ``x``, in batches.

    In batches: the features of an hour are 230 MB at once, and an owner that runs the network
    for several callers serves others between two batches instead of once per hour.
    """
    size = engine.model.embedding_size
    embeddings = np.zeros((len(plan), size), dtype=np.float32)
    for first in range(0, len(plan), config.batch_windows):
        started = time.perf_counter()
        part = WindowPlan(plan.bounds[first : first + config.batch_windows], plan.region[first : first + config.batch_windows],
                          plan.regions)
        feats = plan_features(x, part, engine.audio.sample_rate, _features_of(engine, window_features))
        _add(timings, "features", started)
        started = time.perf_counter()
        rows = np.asarray(embed_windows(feats), dtype=np.float32)
        _add(timings, "network", started)
        if rows.shape != (len(part), size):
            raise ValueError(f"embed_windows returned {rows.shape} for {len(part)} windows")
        embeddings[first : first + len(part)] = rows
    return embeddings


def diarize(samples: np.ndarray, sample_rate: int, embed_windows: EmbedWindows, *,
            engine: EngineConfig = EngineConfig(), config: DiarizationConfig = DiarizationConfig(),
            num_speakers: int | None = None, max_speakers: int | None = None,
            voiceprint_of: EmbedSpeech | None = None, window_features: WindowFeatures | None = None) -> Diarization:
    """Who spoke when in a mono recording at any rate (resampled to the engine's rate).

    Parameters
    ----------
    embed_windows
        ``[(T_i, 80) features] -> (N, 192)`` unit rows: the network, run by whoever owns it.
    num_speakers
        The number of speakers when the caller knows it (else it is found).
    max_speakers
        At most this many speakers (default ``config.max_speakers``).
    voiceprint_of
        Each voice's speech -> its voiceprint, when another engine names the voices (default: the
        network of ``embed_windows``).
    window_features
        A window's samples -> the input of ``embed_windows`` (default: ECAPA's log-mel features).

    Raises
    ------
    NoSpeechError
        No stretch of speech long enough for one window.
    """
    timings: dict[str, float] = {}
    windows = embed_recording(samples, sample_rate, embed_windows, engine=engine, config=config, timings=timings,
                              window_features=window_features)
    return diarize_embedded(windows, embed_windows, engine=engine, config=config, num_speakers=num_speakers,
                            max_speakers=max_speakers, voiceprint_of=voiceprint_of, timings=timings,
                            window_features=window_features)


def diarize_embedded(windows: WindowEmbeddings, embed_windows: EmbedWindows | None, *,
                     engine: EngineConfig = EngineConfig(), config: DiarizationConfig = DiarizationConfig(),
                     num_speakers: int | None = None, max_speakers: int | None = None,
                     timings: dict[str, float] | None = None, voiceprint_of: EmbedSpeech | None = None,
                     window_features: WindowFeatures | None = None) -> Diarization:
    """:func:`diarize` from the windows' embeddings on. Without ``embed_windows`` there is no second
    pass near changes of speaker and the voiceprints are the clusters' mean window embeddings."""
    timings = {} if timings is None else timings
    if num_speakers is not None and num_speakers < 1:
        raise ValueError(f"num_speakers={num_speakers}: at least 1")
    if max_speakers is not None and max_speakers < 1:
        raise ValueError(f"max_speakers={max_speakers}: at least 1")
    started = time.perf_counter()
    plan, emb, speech, frame_s = windows.plan, unit_rows(windows.embeddings.astype(np.float64)), windows.speech, windows.frame_s
    owners = frame_owners(plan, len(speech), frame_s)
    owned_s = np.bincount(owners[(owners >= 0) & speech], minlength=len(plan)) * frame_s

    narrowband = windows.report.bandwidth_hz < NARROWBAND_HZ
    stop = config.stop_distance_narrowband if narrowband else config.stop_distance
    labels, last, following = clustering.agglomerate(
        emb, stop_distance=stop, num_speakers=num_speakers,
        max_speakers=max_speakers if max_speakers is not None else config.max_speakers)
    found = int(labels.max()) + 1
    absorbed = 0
    if num_speakers is None:
        labels, absorbed = clustering.absorb_small(emb, labels, owned_s, config.min_cluster_s)
    count = int(labels.max()) + 1
    cents = clustering.centroids(emb, labels, count, weights=np.maximum(owned_s, frame_s))
    _add(timings, "clustering", started)

    # With refine_hop_s: near each change of speaker, the windows a layout every refine_hop_s would
    # have (the network again, on those windows only), so turns are placed as precisely.
    refined = 0
    if embed_windows is not None and config.refine_hop_s is not None:
        extra = windows_between_changes(plan, labels, config.window_s, config.refine_hop_s)
        refined = len(extra)
        if refined:
            rows = _embed_plan(windows.samples, extra, embed_windows, engine, config, timings, window_features)
            plan, emb = joined(plan, extra), np.concatenate([emb, unit_rows(rows.astype(np.float64))])
            labels = np.concatenate([labels, np.argmax(emb[len(labels):] @ cents.T, axis=1)])
    started = time.perf_counter()
    window_scores = emb @ cents.T
    frame_lab = refinement.frame_labels(plan, window_scores, speech, frame_s)
    frame_lab = refinement.smooth_islands(frame_lab, int(round(config.min_turn_s / frame_s)))
    # clusters that lost every frame to their neighbours are dropped; renumber by first speech
    present = [c for c in dict.fromkeys(frame_lab[frame_lab >= 0].tolist())]
    renumber = {old: new for new, old in enumerate(present)}
    frame_lab = np.where(frame_lab >= 0, np.vectorize(lambda v: renumber.get(v, -1))(frame_lab), -1) \
        if frame_lab.size else frame_lab
    window_lab = np.asarray([renumber.get(int(v), -1) for v in labels], dtype=np.int64)
    segments = refinement.segments_of(frame_lab, frame_s)
    count = len(present)
    cents = cents[present] if count else cents[:0]
    overlaps = _overlaps(plan, emb, cents, window_lab, config, len(speech), frame_s, speech)
    _add(timings, "refinement", started)

    started = time.perf_counter()
    voiceprints, voiceprint_s = _voiceprints(windows, segments, cents, count, embed_windows, engine, config,
                                             voiceprint_of, window_features)
    _add(timings, "voiceprints", started)

    turns = refinement.turns_per_cluster(segments, count)
    clusters = []
    for c in range(count):
        mine = [s for s in segments if s[2] == c]
        members = emb[window_lab == c]
        clusters.append(SpeakerCluster(
            cluster=c, speech_s=round(float(np.sum(frame_lab == c) * frame_s), 3), turns=int(turns[c]),
            first_s=mine[0][0], voiceprint=voiceprints[c], voiceprint_speech_s=round(voiceprint_s[c], 3),
            windows=int(len(members)),
            cohesion=float(np.mean(members @ cents[c])) if len(members) else float("nan")))
    return Diarization(
        segments=tuple(segments), clusters=tuple(clusters), overlaps=overlaps,
        duration_s=round(windows.report.duration_s, 3), speech_s=round(float(np.sum(frame_lab >= 0) * frame_s), 3),
        snr_db=windows.report.snr_db, bandwidth_hz=windows.report.bandwidth_hz, windows=len(plan),
        refined_windows=refined,
        clustering=ClusteringFigures(clusters_found=found, stop_distance=stop, last_merge=last,
                                     next_merge=following, absorbed=absorbed),
        timings_s=timings)


def _add(timings: dict[str, float], stage: str, started: float) -> None:
    """Seconds since ``started`` (``time.perf_counter``) added to ``timings[stage]``."""
    timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - started


def _overlaps(plan: WindowPlan, emb: np.ndarray, cents: np.ndarray, labels: np.ndarray, config: DiarizationConfig,
              frames: int, frame_s: float, speech: np.ndarray) -> tuple[tuple[float, float], ...]:
    """Stretches covered only by windows that sit between two centroids, far from their own."""
    if config.overlap_distance is None or cents.shape[0] < 2 or len(plan) == 0:
        return ()
    distance = 1.0 - emb @ cents.T  # (N, K)
    ranked = np.sort(distance, axis=1)
    flagged = (ranked[:, 0] > config.overlap_distance) & (ranked[:, 1] <= ranked[:, 0] * config.overlap_ratio)
    hits = np.zeros(frames)
    total = np.zeros(frames)
    for index, (start, end) in enumerate(plan.bounds):
        lo, hi = max(int(np.floor(start / frame_s)), 0), min(int(np.ceil(end / frame_s)), frames)
        total[lo:hi] += 1
        hits[lo:hi] += flagged[index]
    mask = speech & (total > 0) & (hits == total)
    return tuple((round(s * frame_s, 3), round(e * frame_s, 3)) for s, e, v in refinement.runs(mask.astype(np.int64))
                 if v == 1)


def _voiceprints(windows: WindowEmbeddings, segments: list[tuple[float, float, int]], cents: np.ndarray, count: int,
                 embed_windows: EmbedWindows | None, engine: EngineConfig, config: DiarizationConfig,
                 voiceprint_of: EmbedSpeech | None = None,
                 window_features: WindowFeatures | None = None) -> tuple[list[np.ndarray], list[float]]:
    """Each cluster's voiceprint: the network on its longest turns (up to ``voiceprint_s``), an edge
    of ``voiceprint_trim_s`` cut where another speaker follows or precedes without a pause."""
    means = [cents[c].astype(np.float32) for c in range(count)]
    if embed_windows is None or config.voiceprint_s <= 0 or count == 0:
        spoken = [sum(e - s for s, e, c in segments if c == k) for k in range(count)]
        return means, spoken
    rate = engine.audio.sample_rate
    trim = config.voiceprint_trim_s
    pieces: list[list[tuple[float, float]]] = [[] for _ in range(count)]
    for i, (start, end, cluster) in enumerate(segments):
        if i > 0 and segments[i - 1][2] != cluster and segments[i - 1][1] >= start - 1e-6:
            start += trim
        if i + 1 < len(segments) and segments[i + 1][2] != cluster and segments[i + 1][0] <= end + 1e-6:
            end -= trim
        if end - start >= config.min_window_s:
            pieces[cluster].append((start, end))
    limit = min(config.voiceprint_s, (engine.window_frames - 1) / 100.0)
    speeches, spoken = [], []
    for cluster in range(count):
        chosen, total = [], 0.0
        for start, end in sorted(pieces[cluster], key=lambda p: p[0] - p[1]):
            take = min(end - start, limit - total)
            if take <= 0:
                break
            chosen.append((start, start + take))
            total += take
        if not chosen:  # every turn was too short to trim: the whole turns
            chosen = [(s, e) for s, e, c in segments if c == cluster]
            total = sum(e - s for s, e in chosen)
            if total > limit:
                chosen, total = chosen[:1], min(chosen[0][1] - chosen[0][0], limit)
                chosen = [(chosen[0][0], chosen[0][0] + total)]
        chosen.sort()
        speeches.append(np.concatenate([windows.samples[int(round(s * rate)) : int(round(e * rate))]
                                        for s, e in chosen]))
        spoken.append(total)
    if voiceprint_of is not None:
        return [np.asarray(voiceprint_of(speech), dtype=np.float32) for speech in speeches], spoken
    feats = [voice_features(speech, engine, window_features) for speech in speeches]
    vectors = np.asarray(embed_windows(feats), dtype=np.float32)
    return [unit_rows(vectors[c : c + 1])[0] for c in range(count)], spoken

"""Replay detection on real speech: what it catches (per transform) and what it wrongly flags.

    nice python -m tools.replay_eval --shared ../shared/speech \\
        [--corpus PATH/calibration-corpus --degraded PATH/calibration] [--catch-per-speaker 1] \\
        [--cache var/replay_eval] [--json reports/replay_eval.json] [--jobs 2]

For each set of real recordings (``--shared``: dev + multi; ``--corpus``: the calibration corpus,
docs/calibration-set.md):

- **catch rate**: recordings are transformed with sox / ffmpeg / numpy (re-encoded, resampled,
  telephone band, noise, reverb, speed and tempo, backwards, shuffled snippets, excerpts, an excerpt
  inside new silence or noise), decoded as the service decodes an upload, and matched against the
  print of the original. ``--catch-per-speaker N`` takes N recordings per speaker (seeded; 0: all).
  Each transformed probe is also matched against the prints of the speaker's *other* recordings,
  where any flag is a false replay.
- **false replays**: every recording of the set against the print of every other recording,
  counted by kind of pair: same speaker, same speaker and same words (RAVDESS: one sentence per
  actor, neutral said twice; Emo-DB: one text per speaker in several emotions; FSDD: the same ten
  digits), same words by different speakers, different speakers.
- ``--degraded``: every degraded file of the calibration set against the print of its source.
- timing: a 3 s probe fingerprinted and matched against 30 stored prints, against the engine's VAD
  and quality measurement of the same probe (which every request runs) in the same process.

Everything random is seeded (``SEED`` and the recording's name). Transformed files are cached under
``--cache`` (they depend on the recording and the transform, not on the fingerprint's parameters).
Needs ``sox`` (with ``libsox-fmt-all`` for mu-law) and ``ffmpeg`` (libmp3lame, libopus, libvorbis).
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

from inference.audio import decode
from inference.config import EngineConfig, FingerprintConfig
from inference.embedder import prepare_waveform
from inference.errors import InferenceError
from inference.fingerprint import Fingerprint, fingerprint, match, match_many, probe_hashes

SEED = 20261218
RATE = 16_000
REPO = Path(__file__).resolve().parents[1]


# --- recordings ----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Recording:
    """``key``: path relative to the set's root; ``words``: what is said when it recurs, else None."""

    key: str
    path: Path
    speaker: str
    words: str | None


def _words(speaker: str, name: str) -> str | None:
    """The same words said again: RAVDESS statement, Emo-DB text, FSDD digits; None: a sentence of its own."""
    if speaker.startswith("rav-"):
        return "ravdess-" + name.split("-")[4]
    if speaker.startswith("emodb-"):
        return "emodb-" + name[2:5]
    if speaker.startswith("fsdd-"):
        return "fsdd-digits"
    return None


def shared_recordings(root: Path) -> list[Recording]:
    """``shared/speech``: dev (``a_snt*``, ``b_snt*``) and multi (one folder per speaker)."""
    found = []
    for path in sorted((root / "dev").glob("*.wav")):
        found.append(Recording(f"dev/{path.name}", path, "dev-" + path.name.split("_")[0], None))
    for path in sorted((root / "multi").glob("*/*.wav")):
        speaker = path.parent.name
        found.append(Recording(f"multi/{speaker}/{path.name}", path, speaker, _words(speaker, path.stem)))
    return found


def corpus_recordings(root: Path) -> list[Recording]:
    """The calibration corpus, from its ``provenance.csv``."""
    with open(root / "provenance.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [Recording(row["path"], root / row["path"], row["speaker"], _words(row["speaker"], Path(row["path"]).stem))
            for row in rows]


def _rng(*names: object) -> np.random.Generator:
    digest = hashlib.sha256(repr((SEED,) + names).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _load(path: Path) -> np.ndarray:
    """Samples as the service sees an upload: decoded and resampled to 16 kHz mono."""
    return decode(path.read_bytes()).samples


# --- transforms ----------------------------------------------------------------------------------

def _run(command: list[str]) -> None:
    subprocess.run(command, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _sox(*effects: str, out_options: tuple[str, ...] = ()) -> Callable[[Path, Path, Recording], None]:
    def make(source: Path, target: Path, recording: Recording) -> None:
        _run(["sox", "-D", str(source), *out_options, str(target), *effects])
    return make


def _ffmpeg(*options: str) -> Callable[[Path, Path, Recording], None]:
    def make(source: Path, target: Path, recording: Recording) -> None:
        _run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(source), *options, str(target)])
    return make


def _active_power(samples: np.ndarray) -> float:
    """Mean power of the 20 ms frames within 30 dB of the loudest (the speech)."""
    frames = samples[: len(samples) // 320 * 320].reshape(-1, 320).astype(np.float64)
    power = (frames ** 2).mean(axis=1) + 1e-12
    return float(power[power > power.max() * 1e-3].mean())


def _write(target: Path, samples: np.ndarray) -> None:
    peak = float(np.abs(samples).max()) if len(samples) else 0.0
    if peak > 0.99:
        samples = samples * (0.99 / peak)
    sf.write(target, samples.astype(np.float32), RATE, subtype="PCM_16")


def _numpy(build: Callable[[np.ndarray, np.random.Generator], np.ndarray | None]) -> Callable[[Path, Path, Recording], None]:
    def make(source: Path, target: Path, recording: Recording) -> None:
        samples = _load(source)
        made = build(samples, _rng(recording.key, target.stem))
        if made is None:
            raise _NotApplicable
        _write(target, made)
    return make


class _NotApplicable(Exception):
    """The recording is too short for this transform."""


def _noise(snr_db: float) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    def build(samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        noise = rng.standard_normal(len(samples)) * np.sqrt(_active_power(samples) / 10 ** (snr_db / 10))
        return samples + noise
    return build


def _excerpt(seconds: float) -> Callable[[np.ndarray, np.random.Generator], np.ndarray | None]:
    def build(samples: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
        return _crop(samples, seconds, rng)
    return build


def _crop(samples: np.ndarray, seconds: float, rng: np.random.Generator) -> np.ndarray | None:
    """A ``seconds`` excerpt at a random start, among starts where at least half the excerpt is speech-loud."""
    length = int(seconds * RATE)
    if len(samples) < length + RATE // 10:
        return None
    frames = samples[: len(samples) // 320 * 320].reshape(-1, 320).astype(np.float64)
    power = (frames ** 2).mean(axis=1) + 1e-12
    loud = (power > power.max() * 1e-3).astype(float)
    per = length // 320
    share = np.convolve(loud, np.ones(per), mode="valid") / per
    starts = np.flatnonzero(share >= 0.5)
    if len(starts) == 0:
        return None
    start = int(rng.choice(starts)) * 320
    return samples[start:start + length]


def _shuffle(snippet_s: float) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    def build(samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        size = int(snippet_s * RATE)
        pieces = [samples[i:i + size] for i in range(0, len(samples), size)]
        return np.concatenate([pieces[i] for i in rng.permutation(len(pieces))])
    return build


def _embedded(noise_db: float | None) -> Callable[[np.ndarray, np.random.Generator], np.ndarray | None]:
    """A 2 s excerpt at a random place in 6 s of new background: near-silence (-70 dBFS), or white
    noise ``noise_db`` under the excerpt's speech."""
    def build(samples: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
        piece = _crop(samples, 2.0, rng)
        if piece is None:
            return None
        power = 10 ** (-70 / 10) if noise_db is None else _active_power(piece) / 10 ** (noise_db / 10)
        background = rng.standard_normal(6 * RATE) * np.sqrt(power)
        start = int(rng.integers(0, len(background) - len(piece)))
        background[start:start + len(piece)] += piece
        return background
    return build


# name -> (file suffix, maker). Speed/tempo/pitch factors as sox takes them.
TRANSFORMS: dict[str, tuple[str, Callable[[Path, Path, Recording], None]]] = {
    "identical": (".wav", lambda source, target, recording: shutil.copyfile(source, target)),
    "mp3_24k": (".mp3", _ffmpeg("-c:a", "libmp3lame", "-b:a", "24k")),
    "opus_12k": (".ogg", _ffmpeg("-c:a", "libopus", "-b:a", "12k", "-f", "ogg")),
    "vorbis_q0": (".ogg", _ffmpeg("-c:a", "libvorbis", "-q:a", "0", "-f", "ogg")),
    "resample_8k": (".wav", _sox(out_options=("-r", "8000"))),
    "resample_22k": (".wav", _sox(out_options=("-r", "22050"))),
    "resample_44k": (".wav", _sox(out_options=("-r", "44100"))),
    "phone_8k_mulaw": (".wav", _sox("sinc", "300-3400", out_options=("-r", "8000", "-e", "mu-law"))),
    "noise_10db": (".wav", _numpy(_noise(10.0))),
    "noise_5db": (".wav", _numpy(_noise(5.0))),
    "reverb": (".wav", _sox("reverb", "80", "50", "100")),
    "speed_0.95": (".wav", _sox("speed", "0.95")),
    "speed_0.97": (".wav", _sox("speed", "0.97")),
    "speed_1.03": (".wav", _sox("speed", "1.03")),
    "speed_1.05": (".wav", _sox("speed", "1.05")),
    "tempo_0.95": (".wav", _sox("tempo", "-s", "0.95")),
    "tempo_0.97": (".wav", _sox("tempo", "-s", "0.97")),
    "tempo_1.03": (".wav", _sox("tempo", "-s", "1.03")),
    "tempo_1.05": (".wav", _sox("tempo", "-s", "1.05")),
    "pitch_+50c": (".wav", _sox("pitch", "50")),
    "reversed": (".wav", _sox("reverse")),
    "shuffled_250ms": (".wav", _numpy(_shuffle(0.25))),
    "shuffled_500ms": (".wav", _numpy(_shuffle(0.5))),
    "excerpt_1s": (".wav", _numpy(_excerpt(1.0))),
    "excerpt_1.5s": (".wav", _numpy(_excerpt(1.5))),
    "excerpt_2s": (".wav", _numpy(_excerpt(2.0))),
    "excerpt_3s": (".wav", _numpy(_excerpt(3.0))),
    "excerpt_in_silence": (".wav", _numpy(_embedded(None))),
    "excerpt_in_noise_10db": (".wav", _numpy(_embedded(10.0))),
}


def transformed(recording: Recording, name: str, cache: Path) -> Path | None:
    """The cached transformed file (made on first use); None when the recording is too short for it."""
    suffix, make = TRANSFORMS[name]
    key = re.sub(r"[^A-Za-z0-9_.-]", "_", recording.key)
    target = cache / "transforms" / name / (key + suffix)
    missing = target.with_suffix(target.suffix + ".na")
    if missing.exists():
        return None
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name("tmp-" + str(os.getpid()) + "-" + target.name)
        try:
            make(recording.path, partial, recording)
        except _NotApplicable:
            missing.touch()
            return None
        partial.rename(target)
    return target


# --- work done in worker processes ---------------------------------------------------------------

_STATE: dict = {}


def _init(prints: dict[str, bytes], config: FingerprintConfig, paths: dict[str, Path] | None = None) -> None:
    _STATE["config"] = config
    _STATE["paths"] = paths or {}
    _STATE["prints"] = {key: Fingerprint.from_bytes(data) for key, data in prints.items()}
    _STATE["keys"] = list(prints)


def _print_of(path: str) -> tuple[str, bytes]:
    return path, fingerprint(_load(Path(path)), _STATE.get("config", FingerprintConfig())).to_bytes()


def _summary(result) -> dict:
    span = result.probe_span_s[1] - result.probe_span_s[0] if result.probe_span_s else 0.0
    return {"matched": result.matched, "score": result.score, "segments": result.segments,
            "segment_score": result.segment_score, "span_s": round(span, 3)}


def _catch(job: tuple[Recording, str, str, list[str]]) -> dict:
    recording, name, cache, others = job
    config = _STATE["config"]
    path = transformed(recording, name, Path(cache))
    if path is None:
        return {"key": recording.key, "transform": name, "applicable": False}
    try:
        probe = fingerprint(_load(path), config)
    except InferenceError as error:
        return {"key": recording.key, "transform": name, "applicable": True, "error": error.code}
    prints = _STATE["prints"]
    result = match(probe, prints[recording.key], config)
    others_results = match_many(probe, [prints[key] for key in others], config) if others else []
    return {"key": recording.key, "transform": name, "applicable": True, **_summary(result),
            "hypothesis": [result.speed, result.tempo, result.reversed],
            "others": len(others), "others_flagged": [key for key, r in zip(others, others_results) if r.matched],
            "others_highest": max(([r.score, r.segment_score, key] for key, r in zip(others, others_results)),
                                  default=None),
            "others_max_score": max((r.score for r in others_results), default=0.0)}


def _against_all(key: str) -> tuple[str, np.ndarray]:
    """One recording against every print of its set (itself included): ``(prints, 4)`` of matched,
    score, segments, segment score."""
    config = _STATE["config"]
    prints = _STATE["prints"]
    recording_path = _STATE["paths"][key]
    query = probe_hashes(fingerprint(_load(recording_path), config), config)
    results = match_many(query, [prints[k] for k in _STATE["keys"]], config)
    return key, np.array([[r.matched, r.score, r.segments, r.segment_score,
                           r.probe_span_s[1] - r.probe_span_s[0] if r.probe_span_s else 0.0] for r in results], np.float64)


def _degraded(job: tuple[str, str, str, str]) -> dict:
    path, condition, source, root = job
    config = _STATE["config"]
    try:
        probe = fingerprint(_load(Path(root) / path), config)
    except InferenceError as error:
        return {"condition": condition, "error": error.code}
    return {"condition": condition, **_summary(match(probe, _STATE["prints"][source], config))}


# --- the measurements ----------------------------------------------------------------------------

def make_prints(recordings: list[Recording], config: FingerprintConfig, jobs: int) -> dict[str, bytes]:
    by_path = {str(r.path): r.key for r in recordings}
    with ProcessPoolExecutor(jobs, initializer=_init, initargs=({}, config)) as pool:
        return {by_path[path]: data for path, data in pool.map(_print_of, list(by_path), chunksize=16)}


def catch_rates(recordings: list[Recording], prints: dict[str, bytes], config: FingerprintConfig, cache: Path,
                per_speaker: int, transforms: list[str], jobs: int) -> dict:
    by_speaker: dict[str, list[Recording]] = defaultdict(list)
    for recording in recordings:
        by_speaker[recording.speaker].append(recording)
    chosen = []
    for speaker, own in sorted(by_speaker.items()):
        order = _rng("catch", speaker).permutation(len(own)) if per_speaker else range(len(own))
        chosen += [own[i] for i in list(order)[: per_speaker or len(own)]]
    jobs_list = [(r, name, str(cache), [o.key for o in by_speaker[r.speaker] if o.key != r.key])
                 for r in chosen for name in transforms]
    with ProcessPoolExecutor(jobs, initializer=_init, initargs=(prints, config)) as pool:
        rows = list(pool.map(_catch, jobs_list, chunksize=4))
    table = {}
    for name in transforms:
        mine = [row for row in rows if row["transform"] == name and row["applicable"]]
        ok = [row for row in mine if "error" not in row]
        caught = [row for row in ok if row["matched"]]
        table[name] = {
            "probes": len(mine), "refused_by_decoder": len(mine) - len(ok), "caught": len(caught),
            "rate": round(len(caught) / len(mine), 4) if mine else None,
            "median_score": statistics.median([row["score"] for row in ok]) if ok else None,
            "lowest_scores": sorted(row["score"] for row in ok)[:5],
            "missed": sorted(row["key"] for row in ok if not row["matched"])[:10],
            "other_recordings_checked": sum(row["others"] for row in ok),
            "other_recordings_flagged": sum(len(row["others_flagged"]) for row in ok),
            "other_recordings_max_score": max((row["others_max_score"] for row in ok), default=0.0),
            "other_recordings_flagged_pairs": [[row["key"], other] for row in ok for other in row["others_flagged"]],
            # every probe: [score, segment score, segments, probe span of the best alignment (s)]
            "rows": [[row["score"], row["segment_score"], row["segments"], row["span_s"]] for row in ok],
        }
    return {"recordings": len(chosen), "transforms": table}


def false_replays(recordings: list[Recording], prints: dict[str, bytes], config: FingerprintConfig, jobs: int) -> dict:
    keys = list(prints)
    index = {key: i for i, key in enumerate(keys)}
    info = {r.key: r for r in recordings}
    paths = {r.key: r.path for r in recordings}
    with ProcessPoolExecutor(jobs, initializer=_init, initargs=(prints, config, paths)) as pool:
        rows = dict(pool.map(_against_all, keys, chunksize=8))
    kinds: dict[str, dict] = {}
    highest: list[tuple] = []
    self_missed = []
    for probe_key, table in rows.items():
        probe = info[probe_key]
        if not table[index[probe_key], 0]:
            self_missed.append(probe_key)
        for stored_key, i in index.items():
            if stored_key == probe_key:
                continue
            stored = info[stored_key]
            same_speaker = stored.speaker == probe.speaker
            same_words = probe.words is not None and probe.words == stored.words
            kind = ("same speaker, same words" if same_speaker and same_words else
                    "same speaker" if same_speaker else
                    "different speakers, same words" if same_words else "different speakers")
            entry = kinds.setdefault(kind, {"pairs": 0, "flagged": 0, "max_score": 0.0, "max_segment_score": 0.0,
                                            "max_segments": 0, "scores": []})
            matched, score, segments, segment_score, span = table[i]
            entry["pairs"] += 1
            entry["flagged"] += int(matched)
            entry["max_score"] = max(entry["max_score"], float(score))
            entry["max_segments"] = max(entry["max_segments"], int(segments))
            entry["max_segment_score"] = max(entry["max_segment_score"], float(segment_score))
            entry["scores"].append(float(score))
            if score >= 3 or segment_score >= 3:
                highest.append((float(score), float(segment_score), round(float(span), 3), probe_key, stored_key,
                                bool(matched)))
    for entry in kinds.values():
        scores = np.array(entry.pop("scores"))
        entry["pairs_with_score_over"] = {str(t): int((scores >= t).sum()) for t in (2, 4, 6, 8)}
    highest.sort(reverse=True)
    flagged_pairs = [row for row in highest if row[5]]
    return {"recordings": len(keys), "kinds": kinds, "flagged_pairs": flagged_pairs[:50],
            "highest_scores": highest[:20], "pairs_scoring_3_or_more": highest,
            "identical_not_matched": self_missed}


def degraded_rates(root: Path, listing: Path, corpus_prints: dict[str, bytes], config: FingerprintConfig,
                   jobs: int) -> dict:
    """Each file of ``listing`` (degradations.csv: path under ``root``, condition, source) against its source's print."""
    with open(listing, newline="") as handle:
        rows = list(csv.DictReader(handle))
    jobs_list = [(row["path"], row["condition"], row["source"], str(root)) for row in rows if row["source"] in corpus_prints]
    with ProcessPoolExecutor(jobs, initializer=_init, initargs=(corpus_prints, config)) as pool:
        results = list(pool.map(_degraded, jobs_list, chunksize=16))
    table: dict[str, dict] = {}
    for result in results:
        entry = table.setdefault(result["condition"], {"probes": 0, "refused_by_decoder": 0, "caught": 0, "scores": []})
        entry["probes"] += 1
        if "error" in result:
            entry["refused_by_decoder"] += 1
            continue
        entry["caught"] += result["matched"]
        entry["scores"].append(result["score"])
        entry.setdefault("rows", []).append([result["score"], result["segment_score"], result["segments"],
                                             result["span_s"]])
    for entry in table.values():
        entry["rate"] = round(entry["caught"] / entry["probes"], 4)
        scores = sorted(entry.pop("scores")) or [0.0]
        entry["median_score"], entry["lowest_score"] = statistics.median(scores), scores[0]
    return dict(sorted(table.items()))


def timing(recordings: list[Recording], config: FingerprintConfig, repeats: int = 30) -> dict:
    """A 3 s probe against 30 stored prints (a speaker's enrollments and recent probes), median ms."""
    pool = [r for r in recordings if sf.info(str(r.path)).duration >= 3.0]
    rng = _rng("timing")
    probe_recording = pool[int(rng.integers(len(pool)))]
    samples = _load(probe_recording.path)[: 3 * RATE]
    stored_samples = [_load(pool[int(i)].path) for i in rng.choice(len(pool), size=30, replace=len(pool) < 30)]
    stored = [fingerprint(s, config) for s in stored_samples]
    engine = EngineConfig()

    def clock(action: Callable[[], object]) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            action()
            times.append((time.perf_counter() - start) * 1e3)
        return statistics.median(times)

    probe = fingerprint(samples, config)
    query = probe_hashes(probe, config)
    figures = {
        "probe_s": 3.0,
        "stored_prints": 30,
        "stored_seconds": round(sum(len(s) for s in stored_samples) / RATE, 1),
        "fingerprint_ms": clock(lambda: fingerprint(samples, config)),
        "hypotheses_ms": clock(lambda: probe_hashes(probe, config)),
        "match_30_ms": clock(lambda: match_many(query, stored, config)),
        "total_ms": clock(lambda: match_many(fingerprint(samples, config), stored, config)),
        "reference_vad_quality_ms": clock(lambda: prepare_waveform(samples, RATE, engine)),
        "probe_hashes": len(query.hashes),
        "hypotheses": len(query.hypotheses),
    }
    figures["total_over_reference"] = round(figures["total_ms"] / figures["reference_vad_quality_ms"], 2)
    return {key: round(value, 2) if isinstance(value, float) else value for key, value in figures.items()}


def print_sizes(prints: dict[str, bytes], recordings: list[Recording]) -> dict:
    durations = {r.key: sf.info(str(r.path)).duration for r in recordings}
    per_second = [len(data) / durations[key] for key, data in prints.items()]
    return {"bytes_per_second_median": round(statistics.median(per_second)),
            "bytes_per_second_max": round(max(per_second)),
            "bytes_per_second_bound": 2 * 6 * FingerprintConfig().peaks_per_second * FingerprintConfig().fan_out}


# --- report --------------------------------------------------------------------------------------

def _print_catch(title: str, table: dict) -> None:
    print(f"\n{title}: caught / probes per transform (others: the speaker's other recordings flagged / checked)")
    print(f"{'transform':24s} {'caught':>13s} {'rate':>7s} {'med. score':>10s} {'lowest':>6s} {'others flagged':>16s} "
          f"{'others max score':>16s}")
    for name, row in table.items():
        rate = "-" if row["rate"] is None else f"{100 * row['rate']:.1f}%"
        median = "-" if row["median_score"] is None else f"{row['median_score']:.1f}"
        lowest = f"{row['lowest_scores'][0]:.1f}" if row["lowest_scores"] else "-"
        print(f"{name:24s} {row['caught']:>6d} / {row['probes']:<5d} {rate:>7s} {median:>10s} {lowest:>6s} "
              f"{row['other_recordings_flagged']:>7d} / {row['other_recordings_checked']:<7d} "
              f"{row['other_recordings_max_score']:>10.1f}")


def _print_false(title: str, result: dict) -> None:
    print(f"\n{title}: {result['recordings']} recordings, each against every other's print")
    print(f"{'pair kind':32s} {'pairs':>9s} {'flagged':>8s} {'max score':>10s} {'max segment score':>18s} "
          f"{'pairs with score >= 2 / 4 / 6 / 8':>36s}")
    for kind, row in sorted(result["kinds"].items()):
        over = " / ".join(str(v) for v in row["pairs_with_score_over"].values())
        print(f"{kind:32s} {row['pairs']:>9d} {row['flagged']:>8d} {row['max_score']:>10.2f} {row['max_segment_score']:>18.2f} "
              f"{over:>36s}")
    if result["identical_not_matched"]:
        print(f"  identical copy NOT matched: {result['identical_not_matched'][:5]}")
    for pair in result["highest_scores"][:8]:
        print("  highest:", pair)


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "speech", help="shared/speech")
    parser.add_argument("--corpus", type=Path, help="the calibration corpus (provenance.csv, audio/)")
    parser.add_argument("--degraded", type=Path, help="the calibration set's degraded audio root (degraded/)")
    parser.add_argument("--catch-per-speaker", type=int, default=1,
                        help="recordings per speaker of --corpus to transform (0: all); --shared: all")
    parser.add_argument("--transforms", nargs="*", default=list(TRANSFORMS), choices=list(TRANSFORMS))
    parser.add_argument("--skip", nargs="*", default=[], choices=["catch", "false", "degraded", "timing"])
    parser.add_argument("--cache", type=Path, default=REPO / "var" / "replay_eval")
    parser.add_argument("--json", type=Path, default=REPO / "reports" / "replay_eval.json")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(list(argv) if argv is not None else None)
    for tool in ("sox", "ffmpeg"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is missing (apt-get install sox libsox-fmt-all ffmpeg)")
    config = FingerprintConfig()
    report: dict = {"config": dataclasses.asdict(config), "command": " ".join(sys.argv), "seed": SEED}
    started = time.perf_counter()
    sets = [("shared", shared_recordings(args.shared), 0)]
    if args.corpus:
        sets.append(("corpus", corpus_recordings(args.corpus), args.catch_per_speaker))
    for name, recordings, per_speaker in sets:
        prints = make_prints(recordings, config, args.jobs)
        section = report[name] = {"print_size": print_sizes(prints, recordings)}
        print(f"\n[{name}] {len(recordings)} recordings; print size {section['print_size']} "
              f"({time.perf_counter() - started:.0f} s)")
        if "catch" not in args.skip:
            section["catch"] = catch_rates(recordings, prints, config, args.cache / name, per_speaker,
                                           args.transforms, args.jobs)
            _print_catch(f"[{name}] catch rate, {section['catch']['recordings']} recordings", section["catch"]["transforms"])
        if "false" not in args.skip:
            section["false_replays"] = false_replays(recordings, prints, config, args.jobs)
            _print_false(f"[{name}] false replays", section["false_replays"])
        if name == "corpus" and args.degraded and "degraded" not in args.skip:
            section["degraded"] = degraded_rates(args.degraded, args.corpus / "degradations.csv", prints, config,
                                                 args.jobs)
            print(f"\n[{name}] the calibration set's degraded files against their source's print")
            for condition, row in section["degraded"].items():
                print(f"{condition:24s} {row['caught']:>5d} / {row['probes']:<5d} {100 * row['rate']:6.1f}%  "
                      f"median score {row['median_score']:.1f}, lowest {row['lowest_score']:.1f}")
        if name == "shared" and "timing" not in args.skip:
            section["timing"] = timing(recordings, config)
            print(f"\n[{name}] timing (median ms): {section['timing']}")
    report["elapsed_s"] = round(time.perf_counter() - started, 1)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1))
    print(f"\nwritten {args.json} ({report['elapsed_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

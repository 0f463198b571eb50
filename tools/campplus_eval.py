"""ECAPA, CAM++ and their fusion on real speech: EER and minDCF per condition.

    python -m tools.campplus_eval --cache-dir /work/data/campplus \\
        [--multi ../shared/speech/multi] \\
        [--lists /work/data/calibration-corpus --audio-root /work/data/calibration] [--shard K/N]

Every file is decoded and its speech found ONCE (``inference.embedder.prepare_audio``), then
embedded by both networks: ECAPA through :class:`~inference.embedder.Embedder`'s features and
forward step, CAM++ through :class:`~inference.campplus_model.CampplusModel`. Embeddings are cached
per set in ``<cache-dir>/<set>.npz``, keyed by the path as the lists write it (``ecapa_names`` /
``ecapa``, ``campplus_names`` / ``campplus`` (N, 192) unit rows, ``quality_names`` / ``quality``
with ``quality_fields``, ``*_refused_names`` / ``*_refused_codes``), so a fused calibration can
be fitted on them without embedding again. ``--shard K/N`` embeds every N-th file into its own
cache and stops (run N side by side, then once without it to merge and report).

Scores (each a cosine of unit vectors, or a function of the two):

* ``ecapa``, ``campplus``: each model's cosine;
* ``mean``: the mean of the two cosines;
* ``z-mean``: the mean of the two cosines after standardising each model's by its non-target
  mean and standard deviation on the calibration set's *train* speakers (pooled over conditions);
* ``s-mean``: the mean of each model's adaptive symmetric score normalisation (AS-norm, top 200)
  against a cohort of that model's embeddings of the *train* speakers' clean recordings.

On the calibration set every held-out dense trial is scored (``trials_dense/heldout``: a probe
against the averaged voiceprint of its enrollment set, ten impostors per probe), per condition;
on ``multi`` every line of its ``trials.txt``. EER (interpolated ROC) and minDCF at P_target 0.01.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from inference import Embedder, EngineConfig, InferenceError
from inference.asnorm import ASNorm
from inference.campplus_model import CampplusModel
from inference.evaluation.lists import read_enrollment_sets, read_identification_list, read_set_trials, read_trials
from inference.evaluation.metrics import compute_eer, compute_min_dcf
from inference.prepare import read_campplus_manifest, read_manifest
from inference.scoring import average_embeddings

logger = logging.getLogger("campplus_eval")

MODELS = ("ecapa", "campplus")
QUALITY_FIELDS = ("duration_s", "speech_s", "snr_db", "speech_level_dbfs", "clipping_ratio", "bandwidth_hz")
SCORES = ("ecapa", "campplus", "mean", "z-mean", "s-mean")
P_TARGET = 0.01
# Condition groups of the summary (the conditions of docs/calibration-set.md).
GROUPS = {
    "clean": ("clean",),
    "short": ("short_1.0s", "short_1.5s", "short_2.0s", "short_3.0s"),
    "phone band": ("narrowband_8k", "narrowband_8k_both"),
    "codecs": ("codec_mp3_16k", "codec_vorbis_low", "codec_opus_8k"),
    "white noise": tuple(f"noise_white_{s}db" for s in (0, 5, 10, 20)),
    "pink noise": tuple(f"noise_pink_{s}db" for s in (0, 5, 10, 20)),
    "babble": tuple(f"noise_babble_{s}db" for s in (0, 5, 10, 20)),
    "hum": tuple(f"noise_hum_{s}db" for s in (0, 5, 10, 20)),
    "reverb": ("reverb_rt60_0.3s", "reverb_rt60_0.6s", "reverb_rt60_0.9s"),
    "emotional": ("emotional",),
    "other language": ("other_language",),
}


# --- embedding, one decode and one VAD for both networks ------------------------------------------


@dataclasses.dataclass
class Cache:
    """Both models' vectors, the quality figures and the refusals of one set, keyed by path."""

    key: str
    vectors: dict[str, dict[str, np.ndarray]]
    refused: dict[str, dict[str, str]]
    quality: dict[str, list[float]]

    @classmethod
    def empty(cls, key: str) -> Cache:
        return cls(key, {m: {} for m in MODELS}, {m: {} for m in MODELS}, {})

    @classmethod
    def read(cls, path: Path, key: str) -> Cache:
        cache = cls.empty(key)
        if not path.is_file():
            return cache
        with np.load(path, allow_pickle=False) as data:
            if str(data["key"]) != key:
                logger.warning("%s was made with another engine configuration: ignored", path)
                return cache
            for m in MODELS:
                cache.vectors[m] = dict(zip(data[f"{m}_names"].tolist(), data[m]))
                cache.refused[m] = dict(zip(data[f"{m}_refused_names"].tolist(), data[f"{m}_refused_codes"].tolist()))
            cache.quality = dict(zip(data["quality_names"].tolist(), data["quality"].tolist()))
        return cache

    @classmethod
    def read_calibration(cls, cache_dir: Path, key: str) -> Cache:
        """Every ``calibration*.npz`` of ``cache_dir`` (the shards and the merged cache) in one."""
        cache = cls.empty(key)
        for path in sorted(cache_dir.glob("calibration*.npz")):
            cache.merge(cls.read(path, key))
        return cache

    def merge(self, other: Cache) -> None:
        for m in MODELS:
            self.vectors[m].update(other.vectors[m])
            self.refused[m].update(other.refused[m])
        self.quality.update(other.quality)

    def done(self, path: str) -> bool:
        return all(path in self.vectors[m] or path in self.refused[m] for m in MODELS)

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {"key": np.array(self.key), "quality_fields": np.array(QUALITY_FIELDS)}
        for m in MODELS:
            names = sorted(self.vectors[m])
            arrays[f"{m}_names"] = np.array(names, dtype=str)
            arrays[m] = (np.stack([self.vectors[m][n] for n in names]) if names
                         else np.zeros((0, 192), np.float32)).astype(np.float32)
            refused = sorted(self.refused[m])
            arrays[f"{m}_refused_names"] = np.array(refused, dtype=str)
            arrays[f"{m}_refused_codes"] = np.array([self.refused[m][n] for n in refused], dtype=str)
        names = sorted(self.quality)
        arrays["quality_names"] = np.array(names, dtype=str)
        arrays["quality"] = np.array([self.quality[n] for n in names], dtype=np.float64).reshape(-1, len(QUALITY_FIELDS))
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(path)


def engine_key(config: EngineConfig) -> str:
    """What the cached vectors depend on: both model versions and every setting before the networks."""
    versions = [read_manifest(config.model_dir, verify=())["version"],
                read_campplus_manifest(config.model_dir, verify=())["version"]]
    config_json = json.dumps([*versions, dataclasses.asdict(config.audio), dataclasses.asdict(config.vad),
                              dataclasses.asdict(config.frontend), dataclasses.asdict(config.kaldi_fbank),
                              config.window_frames, config.campplus.window_frames], sort_keys=True, default=str)
    return hashlib.sha256(config_json.encode()).hexdigest()[:16]


class Engines:
    """ECAPA and CAM++ loaded once in this process, sharing decoding and VAD."""

    def __init__(self, model_dir: Path) -> None:
        config = EngineConfig(model_dir=model_dir, threads=1)
        self.key = engine_key(config)
        self.ecapa = Embedder.load(config)
        self.campplus = CampplusModel.load(config)
        self.known_ecapa: dict[str, np.ndarray] = {}
        self._report_cache: tuple[Path, float] | None = None

    def reuse_ecapa(self, report_cache: Path, files: dict[str, Path]) -> dict[str, np.ndarray]:
        """ECAPA's vectors from ``tools.calibration_report``'s cache (the same engine path), if a spot check of
        three of them against this process's ECAPA agrees bit for bit; else nothing."""
        if not report_cache.is_file():
            return {}
        with np.load(report_cache, allow_pickle=False) as data:
            vectors = dict(zip(data["names"].tolist(), data["vectors"]))
        for path in [p for p in files if p in vectors][:3]:
            mine = self.ecapa.embed(files[path].read_bytes()).vector
            if not np.array_equal(mine, vectors[path]):
                logger.warning("%s holds other ECAPA vectors than this engine's: not used", report_cache)
                return {}
        logger.info("ECAPA: %d vectors taken from %s", len(vectors), report_cache)
        self._report_cache = (report_cache, report_cache.stat().st_mtime)
        return vectors

    def refresh_ecapa(self) -> None:
        """Take the vectors ``tools.calibration_report`` added since (it may be running beside this)."""
        if self._report_cache is None:
            return
        path, mtime = self._report_cache
        if path.is_file() and path.stat().st_mtime != mtime:
            with np.load(path, allow_pickle=False) as data:
                self.known_ecapa.update(zip(data["names"].tolist(), data["vectors"]))
            self._report_cache = (path, path.stat().st_mtime)

    def embed(self, data: bytes, cache: Cache, path: str) -> None:
        """One file into ``cache``: prepared once, then each network (each may refuse on its own)."""
        try:
            prepared = self.ecapa.prepare(data)
        except InferenceError as exc:
            for m in MODELS:
                cache.refused[m][path] = exc.code
            return
        q = prepared.quality
        cache.quality[path] = [prepared.duration_s, prepared.speech_s, q.snr_db, q.speech_level_dbfs,
                               q.clipping_ratio, q.bandwidth_hz]
        try:
            if path in self.known_ecapa:
                cache.vectors["ecapa"][path] = self.known_ecapa[path]
            else:
                cache.vectors["ecapa"][path] = self.ecapa.finish(
                    prepared, self.ecapa.forward(self.ecapa.features(prepared))).vector
        except InferenceError as exc:
            cache.refused["ecapa"][path] = exc.code
        try:
            cache.vectors["campplus"][path] = self.campplus.embed_prepared(prepared)
        except InferenceError as exc:
            cache.refused["campplus"][path] = exc.code


def embed_files(engines: Engines, files: dict[str, Path], cache_path: Path) -> Cache:
    """Embed every ``{key: file}`` (in its order) not yet in ``cache_path``; the cache is written every 25 files."""
    cache = Cache.read(cache_path, engines.key)
    todo = [k for k in files if not cache.done(k)]
    started = time.monotonic()
    for done, key in enumerate(todo, start=1):
        engines.embed(files[key].read_bytes(), cache, key)
        if done % 25 == 0 or done == len(todo):
            cache.write(cache_path)
            engines.refresh_ecapa()
            logger.info("%s: %d of %d new files (%.0f s)", cache_path.name, done, len(todo), time.monotonic() - started)
    return cache


# --- the lists -------------------------------------------------------------------------------------


# The order files are embedded in, so that a partial run covers whole conditions: one or two of each group
# on the held-out speakers, the train speakers' clean recordings (the normalisations), the other held-out
# conditions, then the rest of the train split.
PRIORITY = (
    ("heldout", "clean"), ("heldout", "short_1.0s"), ("heldout", "narrowband_8k"), ("heldout", "codec_opus_8k"),
    ("heldout", "noise_babble_5db"), ("heldout", "noise_white_10db"), ("heldout", "reverb_rt60_0.6s"),
    ("heldout", "emotional"), ("heldout", "other_language"), ("train", "clean"), ("heldout", "short_3.0s"),
    ("heldout", "noise_hum_10db"), ("heldout", "noise_pink_5db"), ("heldout", "narrowband_8k_both"),
    ("heldout", "codec_mp3_16k"),
)


def _condition_files(lists: Path, split: str, condition: str) -> list[str]:
    files = [p for paths in read_enrollment_sets(lists / "enrollments" / split / f"{condition}.txt").values()
             for p in paths]
    return files + [t.probe for t in read_set_trials(lists / "trials_dense" / split / f"{condition}.txt")]


def calibration_files(lists: Path, audio_root: Path) -> dict[str, Path]:
    """Every file the calibration set's lists name (what ``tools.calibration_report`` embeds), in the order
    of :data:`PRIORITY`, then the other held-out conditions, then the rest."""
    paths: set[str] = set()
    for f in (lists / "enrollments").glob("*/*.txt"):
        for files in read_enrollment_sets(f).values():
            paths.update(files)
    for f in (lists / "trials_dense").glob("*/*.txt"):
        paths.update(t.probe for t in read_set_trials(f))
    for f in (lists / "ident").glob("*/*.txt"):
        enrolled, probes = read_identification_list(f)
        paths.update(p for files in enrolled.values() for p in files)
        paths.update(p for _, p in probes)
    order: dict[str, int] = {}
    conditions = list(PRIORITY) + sorted(("heldout", f.stem) for f in (lists / "trials_dense" / "heldout").glob("*.txt"))
    for rank, (split, condition) in enumerate(conditions):
        for p in _condition_files(lists, split, condition):
            order.setdefault(p, rank)
    out = {}
    for p in sorted(paths, key=lambda p: (order.get(p, len(conditions)), p)):
        out[p] = next((root / p for root in (audio_root, lists) if (root / p).is_file()), audio_root / p)
    return out


@dataclasses.dataclass
class Trials:
    """Scores of one list for every score kind, and the labels."""

    labels: np.ndarray
    scores: dict[str, np.ndarray]
    skipped: int = 0

    @property
    def coverage(self) -> float:
        """The share of the list's trials scored (the others name a file not embedded, or refused)."""
        total = self.labels.size + self.skipped
        return self.labels.size / total if total else 0.0


class Normaliser:
    """Per-model z-norm statistics and AS-norm cohorts, from the train speakers."""

    def __init__(self, z: dict[str, tuple[float, float]], cohorts: dict[str, ASNorm] | None) -> None:
        self.z = z
        self.cohorts = cohorts

    def scores(self, model: str, enroll: np.ndarray, probe: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``(z-normed cosines, AS-normed cosines or None)`` of rows ``enroll[i]`` x ``probe[i]``."""
        cos = np.sum(enroll * probe, axis=1, dtype=np.float64)
        mu, sd = self.z[model]
        snorm = None
        if self.cohorts:
            asn = self.cohorts[model]
            emu, esd = asn.stats_many(enroll)
            pmu, psd = asn.stats_many(probe)
            snorm = 0.5 * ((cos - emu) / esd + (cos - pmu) / psd)
        return (cos - mu) / sd, snorm


def score_pairs(vectors: dict[str, dict[str, np.ndarray]], pairs: list[tuple[int, list[str], str]],
                normaliser: Normaliser | None) -> Trials:
    """``[(label, enrollment files, probe)]`` -> every score kind; a trial any model refused is skipped."""
    labels, rows = [], {m: ([], []) for m in MODELS}
    skipped = 0
    for label, enroll, probe in pairs:
        sides = {}
        for m in MODELS:
            usable = [vectors[m][p] for p in enroll if p in vectors[m]]
            if not usable or probe not in vectors[m]:
                break
            sides[m] = (average_embeddings(np.stack(usable)) if len(usable) > 1 else usable[0], vectors[m][probe])
        else:
            labels.append(label)
            for m in MODELS:
                rows[m][0].append(sides[m][0])
                rows[m][1].append(sides[m][1])
            continue
        skipped += 1
    scores: dict[str, np.ndarray] = {}
    normed: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    if not labels:
        return Trials(np.zeros(0, dtype=int), {k: np.zeros(0) for k in ("ecapa", "campplus", "mean")}, skipped)
    for m in MODELS:
        enroll, probe = np.stack(rows[m][0]), np.stack(rows[m][1])
        scores[m] = np.sum(enroll * probe, axis=1, dtype=np.float64)
        if normaliser:
            normed[m] = normaliser.scores(m, enroll, probe)
    scores["mean"] = 0.5 * (scores["ecapa"] + scores["campplus"])
    if normaliser:
        scores["z-mean"] = 0.5 * (normed["ecapa"][0] + normed["campplus"][0])
        if normaliser.cohorts:
            scores["s-mean"] = 0.5 * (normed["ecapa"][1] + normed["campplus"][1])
    return Trials(np.array(labels), scores, skipped)


def dense_pairs(lists: Path, split: str) -> dict[str, list[tuple[int, list[str], str]]]:
    """Per condition, ``[(label, enrollment files, probe)]`` of ``trials_dense/<split>``."""
    out = {}
    for path in sorted((lists / "trials_dense" / split).glob("*.txt")):
        sets = read_enrollment_sets(lists / "enrollments" / split / f"{path.stem}.txt")
        out[path.stem] = [(t.label, sets[t.enroll_id], t.probe) for t in read_set_trials(path)]
    return out


def fit_normaliser(vectors: dict[str, dict[str, np.ndarray]], lists: Path) -> Normaliser | None:
    """z-norm statistics from the train speakers' non-target trials (every condition embedded so far), AS-norm
    cohorts from their clean recordings (enrollment files and probes of the clean condition); None while
    fewer than 90% of the train speakers' clean trials are embedded."""
    train = dense_pairs(lists, "train")
    if score_pairs(vectors, train["clean"], None).coverage < 0.9:
        logger.info("the train speakers' clean recordings are not embedded yet: no z-norm or AS-norm")
        return None
    pairs = [p for condition in train.values() for p in condition]
    raw = score_pairs(vectors, pairs, None)
    z = {m: (float(raw.scores[m][raw.labels == 0].mean()), float(raw.scores[m][raw.labels == 0].std()))
         for m in MODELS}
    clean = {p for _, enroll, probe in dense_pairs(lists, "train")["clean"] for p in (*enroll, probe)}
    for f in (lists / "enrollments" / "train").glob("*.txt"):
        if f.stem == "clean":
            clean.update(p for files in read_enrollment_sets(f).values() for p in files)
    cohorts = {}
    for m in MODELS:
        members = sorted(p for p in clean if p in vectors[m])
        cohorts[m] = ASNorm(np.stack([vectors[m][p] for p in members]), top_k=200)
    logger.info("normalisation: z from %d train non-targets; cohorts of %d train recordings",
                int((raw.labels == 0).sum()), cohorts["ecapa"].cohort_size)
    return Normaliser(z, cohorts)


# --- figures -----------------------------------------------------------------------------------


def metrics(trials: Trials) -> dict[str, tuple[float, float]]:
    """``{score kind: (EER %, minDCF at P_target 0.01)}``."""
    return {kind: (100 * compute_eer(s, trials.labels)[0], compute_min_dcf(s, trials.labels, P_TARGET)[0])
            for kind, s in trials.scores.items()}


def table(rows: list[tuple[str, Trials]]) -> str:
    kinds = [k for k in SCORES if k in rows[0][1].scores]
    head = "| condition | targets / non-targets | " + " | ".join(f"EER {k}" for k in kinds) + " | " + \
        " | ".join(f"minDCF {k}" for k in kinds) + " |"
    lines = [head, "|" + "---|" * (2 + 2 * len(kinds))]
    for name, trials in rows:
        m = metrics(trials)
        best = min(m[k][0] for k in kinds)
        eers = [f"**{m[k][0]:.2f}%**" if m[k][0] == best else f"{m[k][0]:.2f}%" for k in kinds]
        lines.append(f"| {name} | {int(trials.labels.sum())} / {int((trials.labels == 0).sum())} | "
                     + " | ".join(eers) + " | " + " | ".join(f"{m[k][1]:.3f}" for k in kinds) + " |")
    return "\n".join(lines)


def merge(trials: list[Trials]) -> Trials:
    return Trials(np.concatenate([t.labels for t in trials]),
                  {k: np.concatenate([t.scores[k] for t in trials]) for k in trials[0].scores},
                  sum(t.skipped for t in trials))


def report_calibration(cache: Cache, lists: Path, normaliser: Normaliser | None) -> str:
    """Per condition with at least 90% of its trials embedded (the others are listed as pending), and by group."""
    scored = {c: score_pairs(cache.vectors, pairs, normaliser) for c, pairs in dense_pairs(lists, "heldout").items()}
    per_condition = {c: t for c, t in scored.items() if t.coverage >= 0.9}
    pending = sorted(c for c in scored if c not in per_condition)
    skipped = {c: t.skipped for c, t in per_condition.items() if t.skipped}
    rows = [(c, t) for c, t in per_condition.items()]
    groups = [(g, merge([per_condition[c] for c in cs if c in per_condition])) for g, cs in GROUPS.items()
              if any(c in per_condition for c in cs)]
    groups.append(("all embedded held-out conditions", merge(list(per_condition.values()))))
    kinds = [k for k in SCORES[1:] if k in rows[0][1].scores]
    wins = {k: sum(metrics(t)[k][0] < metrics(t)["ecapa"][0] for _, t in groups[:-1]) for k in kinds}
    worse = {k: sum(metrics(t)[k][0] > metrics(t)["ecapa"][0] for _, t in groups[:-1]) for k in kinds}
    text = ["## Calibration set, held-out speakers, per condition (trials_dense)", "", table(rows), "",
            "## By group (the conditions above pooled)", "", table(groups), "",
            f"Groups where EER is below ECAPA's: {wins}; above it: {worse} (of {len(groups) - 1}).",
            f"Trials not scored in the conditions shown (a file refused or not yet embedded): {skipped or 'none'}.",
            f"Conditions not embedded yet: {', '.join(pending) or 'none'}."]
    return "\n".join(text)


def report_multi(cache: Cache, multi: Path, normaliser: Normaliser | None) -> str:
    trials = read_trials(multi / "trials.txt")
    pairs = [(t.label, [t.a], t.b) for t in trials]
    all_trials = score_pairs(cache.vectors, pairs, normaliser)
    rows = [("all", all_trials)]
    for name, prefix in (("LibriSpeech", "ls-"), ("digits (FSDD)", "fsdd-")):
        rows.append((name, score_pairs(cache.vectors, [p for p in pairs if p[2].startswith(prefix)], normaliser)))
    return "\n".join([f"## {multi}/trials.txt ({len(trials)} trials)", "", table(rows)])


def refusal_summary(cache: Cache) -> str:
    counts = {m: defaultdict(int) for m in MODELS}
    for m in MODELS:
        for code in cache.refused[m].values():
            counts[m][code] += 1
    return "; ".join(f"{m}: {len(cache.vectors[m])} embedded, refused {dict(counts[m]) or 'none'}" for m in MODELS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=Path("var/model"))
    parser.add_argument("--cache-dir", type=Path, required=True)
    parser.add_argument("--multi", type=Path, help="the shared multi-speaker set (trials.txt)")
    parser.add_argument("--lists", type=Path, help="the calibration set's lists (and audio/)")
    parser.add_argument("--audio-root", type=Path, help="the calibration set's degraded audio (degraded/)")
    parser.add_argument("--ecapa-cache", type=Path, help="tools.calibration_report's cache of ECAPA vectors of the "
                                                         "same files, reused (after a spot check)")
    parser.add_argument("--report-only", action="store_true", help="report from the caches as they are "
                                                                   "(a partial run: whole conditions only)")
    parser.add_argument("--shard", metavar="K/N", help="embed every N-th calibration file from the K-th into its "
                                                       "own cache and stop")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    key = engine_key(EngineConfig(model_dir=args.model_dir))
    engines = None if args.report_only else Engines(args.model_dir)
    sections = []
    calibration = None
    if args.lists:
        files = calibration_files(args.lists, args.audio_root or args.lists)
        if args.ecapa_cache and engines:
            engines.known_ecapa = engines.reuse_ecapa(args.ecapa_cache, files)
        if args.shard:
            k, n = (int(v) for v in args.shard.split("/"))
            share = dict(list(files.items())[k::n])
            embed_files(engines, share, args.cache_dir / f"calibration.shard{k}.npz")
            return 0
        calibration = Cache.empty(key)
        for shard in sorted(args.cache_dir.glob("calibration.shard*.npz")):
            calibration.merge(Cache.read(shard, key))
        cache_path = args.cache_dir / "calibration.npz"
        calibration.merge(Cache.read(cache_path, key))
        calibration.write(cache_path)
        if engines:
            calibration = embed_files(engines, files, cache_path)
        normaliser = fit_normaliser(calibration.vectors, args.lists)
        sections += [report_calibration(calibration, args.lists, normaliser), "",
                     "Refusals: " + refusal_summary(calibration)]
    if args.multi:
        files = {str(p.relative_to(args.multi)): p for p in sorted(args.multi.glob("*/*.wav"))}
        cache = embed_files(engines, files, args.cache_dir / "multi.npz") if engines else \
            Cache.read(args.cache_dir / "multi.npz", key)
        normaliser = fit_normaliser(calibration.vectors, args.lists) if calibration else None
        sections += ["", report_multi(cache, args.multi, normaliser), "", "Refusals: " + refusal_summary(cache)]
    sys.stdout.write("\n".join(sections) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

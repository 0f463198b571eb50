"""Experiments on labelled recordings: embed the files once, score verification trials, run open-set identification.

Plain Python with no dependency on the engine: every experiment takes an
``embed_fn(path) -> (D,) unit vector``, so the same code measures the MindSpore engine, the
SpeechBrain reference embeddings stored in a ``.npz``, or anything else.
"""
from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from inference.asnorm import ASNorm, as_norm_scores
from inference.errors import InferenceError
from inference.evaluation.lists import Trial
from inference.evaluation.metrics import identification_operating_point, verification_metrics
from inference.scoring import average_embeddings, l2_normalise

logger = logging.getLogger(__name__)

EmbedFn = Callable[[Path], np.ndarray]
"""``embed_fn(path) -> (D,)`` unit vector; may raise :class:`InferenceError` for unusable audio."""

# Trials scored at once; keeps memory flat on lists of hundreds of thousands of trials.
_SCORE_CHUNK = 65_536


def _progress(iterable: Iterable[Any], *, enabled: bool, total: int, desc: str) -> Iterable[Any]:
    """A progress bar on a terminal; elsewhere (CI, a pipe, a log file) a log line every tenth of the way."""
    if not enabled or total < 20:
        return iterable
    if sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, unit="file")
    return _progress_lines(iterable, total=total, desc=desc)


# A run faster than this (files already embedded, a small list) logs no progress at all.
_PROGRESS_AFTER_S = 2.0


def _progress_lines(iterable: Iterable[Any], *, total: int, desc: str) -> Iterator[Any]:
    started = time.monotonic()
    step = max(1, -(-total // 10))  # ceil(total / 10)
    logged = False
    for done, item in enumerate(iterable, start=1):
        yield item
        elapsed = time.monotonic() - started
        if (done % step == 0 or done == total) and (logged or elapsed >= _PROGRESS_AFTER_S):
            logger.info("%s: %d of %d files (%.0f%%), %.0f s", desc, done, total, 100 * done / total, elapsed)
            logged = True


def embed_files(
    paths: Sequence[str], audio_root: Path | str, embed_fn: EmbedFn, *, progress: bool = True
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Embed each distinct relative path once.

    Returns
    -------
    (vectors, failed)
        ``{path: (D,) float32 unit vector}`` and ``{path: error code}`` for the files the
        embedder refused (``InferenceError.code``, or ``file_not_found`` / ``file_error``).

    Raises
    ------
    ValueError
        ``embed_fn`` returned something that is not a finite vector of a consistent size.
    """
    root = Path(audio_root)
    unique = list(dict.fromkeys(paths))
    vectors: dict[str, np.ndarray] = {}
    failed: dict[str, str] = {}
    dim: int | None = None
    for rel in _progress(unique, enabled=progress, total=len(unique), desc="embedding"):
        try:
            vector = np.asarray(embed_fn(root / rel), dtype=np.float32)
        except InferenceError as exc:
            failed[rel] = exc.code
            logger.warning("cannot embed %s: %s", rel, exc)
            continue
        except FileNotFoundError as exc:
            failed[rel] = "file_not_found"
            logger.warning("cannot embed %s: %s", rel, exc)
            continue
        except OSError as exc:
            failed[rel] = "file_error"
            logger.warning("cannot embed %s: %s", rel, exc)
            continue
        if vector.ndim != 1 or (dim is not None and vector.shape[0] != dim) or not np.all(np.isfinite(vector)):
            raise ValueError(f"embed_fn returned an invalid embedding for {rel}: shape {vector.shape}")
        dim = vector.shape[0]
        vectors[rel] = l2_normalise(vector)
    if failed:
        logger.warning("%d of %d files could not be embedded", len(failed), len(unique))
    return vectors, failed


def evaluate_verification(
    trials: Sequence[Trial],
    audio_root: Path | str,
    embed_fn: EmbedFn,
    *,
    asnorm: ASNorm | None = None,
    far_target: float = 0.01,
    progress: bool = True,
    group_fn: Callable[[Trial], str] | None = None,
) -> dict[str, Any]:
    """Score a trial list and summarise it.

    Parameters
    ----------
    trials
        From :func:`read_trials`; paths relative to ``audio_root``.
    audio_root
        Directory the trial paths are relative to.
    embed_fn
        ``embed_fn(path) -> (D,)`` unit vector. Called once per distinct file.
    asnorm
        If given, every figure is also computed on AS-norm scores (key ``asnorm``).
    far_target
        FAR of the reported ``threshold_at_far``.
    progress
        Show a tqdm bar on stderr (only when it is a terminal and the list is long).
    group_fn
        Optional ``trial -> group name``; figures are then also given per group (``groups``).

    Returns
    -------
    dict
        JSON-ready: ``kind``, ``counts`` (trials, scored, skipped, target, nontarget, files,
        failed_files), ``failed_files`` (``{path: error code}``; trials that need them are
        skipped), ``cosine`` (:func:`verification_metrics` of the cosines), ``asnorm`` (the same
        on AS-norm scores plus ``top_k``, ``cohort_size``, ``key``) or ``None``, ``groups``,
        and ``scores`` (``labels``, ``cosine``, ``asnorm`` lists, for plots).

    Raises
    ------
    ValueError
        After skipping, no target or no non-target trial is left.
    """
    files = [p for t in trials for p in (t.a, t.b)]
    vectors, failed = embed_files(files, audio_root, embed_fn, progress=progress)
    scored = [t for t in trials if t.a in vectors and t.b in vectors]
    labels = np.array([t.label for t in scored], dtype=np.int8)
    names = list(vectors)
    index = {name: i for i, name in enumerate(names)}
    matrix = np.stack([vectors[n] for n in names]) if names else np.zeros((0, 0), dtype=np.float32)
    ia = np.array([index[t.a] for t in scored], dtype=np.int64)
    ib = np.array([index[t.b] for t in scored], dtype=np.int64)
    raw = np.empty(len(scored), dtype=np.float64)
    for start in range(0, len(scored), _SCORE_CHUNK):
        sl = slice(start, start + _SCORE_CHUNK)
        raw[sl] = np.einsum("ij,ij->i", matrix[ia[sl]], matrix[ib[sl]])
    raw = np.clip(raw, -1.0, 1.0)

    normed: np.ndarray | None = None
    if asnorm is not None and scored:
        mu, sd = asnorm.stats_many(matrix)
        normed = asnorm.normalise_many(raw, enroll_stats=(mu[ia], sd[ia]), test_stats=(mu[ib], sd[ib]))

    n_target = int(labels.sum())
    report: dict[str, Any] = {
        "kind": "verification",
        "counts": {
            "trials": len(trials),
            "scored": len(scored),
            "skipped": len(trials) - len(scored),
            "target": n_target,
            "nontarget": len(scored) - n_target,
            "files": len(set(files)),
            "failed_files": len(failed),
        },
        "failed_files": failed,
    }
    if n_target == 0 or n_target == len(scored):
        raise ValueError(f"need target and non-target trials with embeddings, have {report['counts']}")
    report["cosine"] = verification_metrics(raw, labels, far_target=far_target)
    report["asnorm"] = None
    if normed is not None and asnorm is not None:
        report["asnorm"] = {
            "top_k": asnorm.top_k,
            "cohort_size": asnorm.cohort_size,
            "key": asnorm.key,
            **verification_metrics(normed, labels, far_target=far_target),
        }
    report["groups"] = _group_metrics(scored, labels, raw, normed, group_fn, far_target) if group_fn else {}
    report["scores"] = {
        "labels": labels.tolist(),
        "cosine": np.round(raw, 6).tolist(),
        "asnorm": None if normed is None else np.round(normed, 6).tolist(),
    }
    logger.info(
        "verification: %d trials, EER %.2f%% (threshold %.3f)%s",
        len(scored),
        100 * report["cosine"]["eer"],
        report["cosine"]["eer_threshold"],
        "" if report["asnorm"] is None else f", AS-norm EER {100 * report['asnorm']['eer']:.2f}%",
    )
    return report


def _group_metrics(
    scored: Sequence[Trial],
    labels: np.ndarray,
    raw: np.ndarray,
    normed: np.ndarray | None,
    group_fn: Callable[[Trial], str],
    far_target: float,
) -> dict[str, Any]:
    groups = np.array([group_fn(t) for t in scored], dtype=object)
    out: dict[str, Any] = {}
    for name in sorted(set(groups.tolist())):
        mask = groups == name
        y = labels[mask]
        entry: dict[str, Any] = {"target": int(y.sum()), "nontarget": int((y == 0).sum()), "cosine": None, "asnorm": None}
        if 0 < y.sum() < y.size:
            entry["cosine"] = verification_metrics(raw[mask], y, far_target=far_target)
            if normed is not None:
                entry["asnorm"] = verification_metrics(normed[mask], y, far_target=far_target)
        out[name] = entry
    return out


def evaluate_identification(
    utterances: Sequence[tuple[str, str]],
    audio_root: Path | str,
    embed_fn: EmbedFn,
    *,
    enroll_per_speaker: int = 3,
    unknown_speakers: set[str] | None = None,
    threshold: float,
    top_k: int = 5,
    margin: float = 0.0,
    asnorm: ASNorm | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Open-set identification: enroll known speakers, then identify held-out and unknown voices.

    Each known speaker is enrolled with its first ``enroll_per_speaker`` usable utterances (in
    the order given): the mean of their normalised embeddings, re-normalised
    (:func:`inference.scoring.average_embeddings`, as the service does). Its remaining
    utterances are *known probes*; every utterance of an unknown speaker is an *unknown probe*.
    A probe is *matched* to its best-scoring enrolled speaker when that score is
    ``>= threshold`` and beats the runner-up by at least ``margin``.

    Parameters
    ----------
    utterances
        ``(speaker, relative path)`` pairs.
    audio_root
        Directory the paths are relative to.
    embed_fn
        ``embed_fn(path) -> (D,)`` unit vector. Called once per distinct file.
    enroll_per_speaker
        Utterances averaged into each voiceprint. Known speakers with fewer usable
        utterances are not enrolled and their utterances are not used (``speakers.skipped``).
    unknown_speakers
        Speakers never enrolled. ``None``: every third speaker in name order
        (``sorted(speakers)[2::3]``), a deterministic hold-out.
    threshold
        Decision threshold, on the cosine scale, or on the AS-norm scale when ``asnorm`` is given.
    top_k
        Rank for the top-k accuracy.
    margin
        Required lead of the best over the second-best score (same scale as ``threshold``).
    asnorm
        If given, probe-vs-voiceprint scores are AS-normalised before ranking and thresholding.

    Returns
    -------
    dict
        JSON-ready: ``kind``, ``scale``, ``threshold``, ``margin``, ``top_k``,
        ``enroll_per_speaker``, ``speakers`` (known / unknown / skipped), ``counts``,
        ``failed_files``, ``known`` (``top1_accuracy``, ``topk_accuracy``,
        ``correct_match_rate``: right speaker above threshold, ``wrong_match_rate``,
        ``no_match_rate``), ``unknown`` (``false_identification_rate``: matched to anyone),
        and ``probes`` (per-probe best / second scores and rank of the true speaker).
    """
    if enroll_per_speaker < 1:
        raise ValueError("enroll_per_speaker must be at least 1")
    speakers = sorted({speaker for speaker, _ in utterances})
    unknown = set(speakers[2::3]) if unknown_speakers is None else set(unknown_speakers)
    known = [s for s in speakers if s not in unknown]
    if not known:
        raise ValueError("no known speaker left to enroll")
    vectors, failed = embed_files([p for _, p in utterances], audio_root, embed_fn, progress=progress)

    by_speaker: dict[str, list[str]] = {s: [] for s in speakers}
    for speaker, path in utterances:
        if path in vectors and path not in by_speaker[speaker]:
            by_speaker[speaker].append(path)
    enrolled, voiceprints, skipped, probes = _enroll_known(by_speaker, known, unknown, vectors, enroll_per_speaker)
    if not enrolled:
        raise ValueError("no known speaker has enough usable utterances to enroll")
    probe_rows = _identification_probes(enrolled, np.stack(voiceprints), probes, vectors, asnorm)

    report: dict[str, Any] = {
        "kind": "identification",
        "scale": "cosine" if asnorm is None else "asnorm",
        "asnorm": (
            None if asnorm is None else {"top_k": asnorm.top_k, "cohort_size": asnorm.cohort_size, "key": asnorm.key}
        ),
        "threshold": float(threshold),
        "margin": float(margin),
        "top_k": int(top_k),
        "enroll_per_speaker": int(enroll_per_speaker),
        "speakers": {"known": enrolled, "unknown": sorted(s for s in unknown if s in by_speaker), "skipped": skipped},
        "counts": {
            "utterances": len(utterances),
            "files_failed": len(failed),
            "known_probes": sum(1 for p in probe_rows if p["known"]),
            "unknown_probes": sum(1 for p in probe_rows if not p["known"]),
        },
        "failed_files": failed,
        "probes": probe_rows,
    }
    report.update(identification_operating_point(probe_rows, threshold=threshold, margin=margin, top_k=top_k))
    return report


def _enroll_known(by_speaker: dict[str, list[str]], known: Sequence[str], unknown: set[str],
                  vectors: dict[str, np.ndarray], enroll_per_speaker: int,
                  ) -> tuple[list[str], list[np.ndarray], list[str], list[tuple[str, str, bool]]]:
    """Enroll each known speaker with its first utterances; the rest, and every unknown voice, are probes.

    Returns ``(enrolled speakers, their voiceprints, skipped speakers, probes as (speaker, path, known))``.
    """
    enrolled: list[str] = []
    voiceprints: list[np.ndarray] = []
    skipped: list[str] = []
    probes: list[tuple[str, str, bool]] = []
    for speaker in known:
        paths = by_speaker[speaker]
        if len(paths) < enroll_per_speaker:
            skipped.append(speaker)
            logger.warning("speaker %s has %d usable utterances, fewer than %d: not enrolled", speaker, len(paths),
                           enroll_per_speaker)
            continue
        enrolled.append(speaker)
        voiceprints.append(average_embeddings([vectors[p] for p in paths[:enroll_per_speaker]]))
        probes.extend((speaker, p, True) for p in paths[enroll_per_speaker:])
    for speaker in by_speaker:
        if speaker in unknown:
            probes.extend((speaker, p, False) for p in by_speaker[speaker])
    return enrolled, voiceprints, skipped, probes


def _identification_probes(enrolled: Sequence[str], enrolled_matrix: np.ndarray,
                           probes: Sequence[tuple[str, str, bool]], vectors: dict[str, np.ndarray],
                           asnorm: ASNorm | None) -> list[dict[str, Any]]:
    """Every probe scored against every voiceprint ``(K, D)``: its best and second score and the true speaker's rank."""
    probe_matrix = (
        np.stack([vectors[p] for _, p, _ in probes]) if probes else np.zeros((0, enrolled_matrix.shape[1]), np.float32)
    )
    scores = np.clip(probe_matrix @ enrolled_matrix.T, -1.0, 1.0).astype(np.float64)  # (P, K)
    if asnorm is not None and probes:
        mu_e, sd_e = asnorm.stats_many(enrolled_matrix)
        mu_t, sd_t = asnorm.stats_many(probe_matrix)
        scores = as_norm_scores(scores, mu_e[None, :], sd_e[None, :], mu_t[:, None], sd_t[:, None])  # (P, K)
    rows: list[dict[str, Any]] = []
    for (speaker, path, is_known), row in zip(probes, scores):
        order = np.argsort(-row, kind="mergesort")
        rank = next((r for r, k in enumerate(order) if enrolled[k] == speaker), None) if is_known else None
        rows.append({"speaker": speaker, "path": path, "known": is_known, "best_speaker": enrolled[order[0]],
                     "best_score": float(row[order[0]]),
                     "second_score": float(row[order[1]]) if len(order) > 1 else None, "true_rank": rank})
    return rows


def identification_pooled(utterances: Sequence[tuple[str, str]], audio_root: Path | str, embed_fn: EmbedFn, *,
                          threshold: float, margin: float, enroll_per_speaker: int = 3,
                          unknown_speakers: Sequence[str] | None = None, asnorm: ASNorm | None = None,
                          progress: bool = True) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Open-set identification probes, pooled over hold-outs.

    With ``unknown_speakers``, one run holding them out; otherwise three runs, each holding out
    every third speaker in name order (``sorted(speakers)[r::3]``), so every speaker is a stranger
    once. Returns the pooled probes and the first run's report.

    Raises
    ------
    ValueError
        Fewer than two speakers.
    """
    speakers = sorted({speaker for speaker, _ in utterances})
    holdouts = [set(unknown_speakers)] if unknown_speakers else [set(speakers[r::3]) for r in range(3)]
    probes: list[dict[str, Any]] = []
    first: dict[str, Any] | None = None
    for holdout in holdouts:
        if not set(speakers) - holdout:
            continue
        report = evaluate_identification(utterances, audio_root, embed_fn, enroll_per_speaker=enroll_per_speaker,
                                         unknown_speakers=holdout, threshold=threshold, margin=margin,
                                         asnorm=asnorm, progress=progress)
        probes += report["probes"]
        first = first or report
    if first is None:
        raise ValueError("the identification list needs at least two speakers")
    return probes, first


def npz_embed_fn(npz_path: Path | str, audio_root: Path | str) -> EmbedFn:
    """An ``embed_fn`` that looks embeddings up in a ``.npz`` of ``names`` and ``embeddings``.

    A file ``audio_root / rel`` matches the name ``rel`` or a unique name ending in
    ``/rel`` (so ``multi/ls-19/x.wav`` serves ``ls-19/x.wav``). The file itself must exist,
    so the lookup cannot silently evaluate a list against the wrong recordings.
    """
    with np.load(npz_path, allow_pickle=False) as data:
        names = [str(n) for n in data["names"]]
        embeddings = np.asarray(data["embeddings"], dtype=np.float32)
    table = dict(zip(names, embeddings))
    root = Path(audio_root)

    def embed(path: Path) -> np.ndarray:
        if not path.is_file():
            raise FileNotFoundError(path)
        rel = path.relative_to(root).as_posix()
        if rel in table:
            return table[rel]
        matches = [n for n in names if n.endswith("/" + rel)]
        if len(matches) != 1:
            raise KeyError(f"{rel}: {len(matches)} matching names in {npz_path}")
        return table[matches[0]]

    return embed


def engine_embed_fn(model_dir: Path | str) -> EmbedFn:
    """An ``embed_fn`` backed by the MindSpore engine loaded from ``model_dir``."""
    from inference import Embedder, EngineConfig  # imported late: loads MindSpore

    embedder = Embedder.load(EngineConfig(model_dir=Path(model_dir)))
    return lambda path: np.asarray(embedder.embed(Path(path).read_bytes()).vector)


def cached_embed_fn(embed_fn: EmbedFn) -> EmbedFn:
    """``embed_fn`` embedding each file once, however often it is asked for (refusals included)."""
    cache: dict[Path, np.ndarray | Exception] = {}

    def embed(path: Path) -> np.ndarray:
        path = Path(path)
        if path not in cache:
            try:
                cache[path] = embed_fn(path)
            except (InferenceError, OSError) as exc:
                cache[path] = exc
        value = cache[path]
        if isinstance(value, Exception):
            raise value
        return value

    return embed

"""Offline accuracy evaluation: speaker verification (EER, minDCF, DET) and open-set identification.

Plain Python with no dependency on the engine: every experiment takes an
``embed_fn(path) -> (D,) unit vector``, so the same code measures the MindSpore engine, the
SpeechBrain reference embeddings stored in a ``.npz``, or anything else. Each file is embedded
once per call.

Conventions
-----------
* A trial is accepted when ``score >= threshold``.
* ``fpr`` (false-acceptance rate, FAR) is the fraction of non-target trials accepted,
  ``fnr`` (false-rejection / miss rate, FRR) the fraction of target trials rejected.
* The EER is read off the piecewise-linear ROC where ``fnr == fpr``, interpolating between
  the two operating points that bracket it, as NIST's and wespeaker's ``compute_eer`` and
  the VoxCeleb ``brentq(lambda x: 1 - x - interp1d(fpr, tpr)(x), 0, 1)`` recipe do.
  Reports also carry SpeechBrain's variant (``speechbrain.utils.metric_stats.EER``: best
  observed operating point, ``(far + frr) / 2``), which the shared README figures use.
* minDCF is the NIST/VoxSRC normalised detection cost
  ``min_t (c_miss p fnr(t) + c_fa (1 - p) fpr(t)) / min(c_miss p, c_fa (1 - p))``
  (SpeechBrain's ``minDCF`` omits the normalisation, so it is ``p`` times smaller).

Run ``python -m inference.evaluation --help`` for the command line that produced the figures
in ``docs/accuracy.md``.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping, NamedTuple, Sequence

import numpy as np

from inference.asnorm import ASNorm, as_norm_scores
from inference.errors import InferenceError
from inference.scoring import average_embeddings, l2_normalise

logger = logging.getLogger(__name__)

EmbedFn = Callable[[Path], np.ndarray]
"""``embed_fn(path) -> (D,)`` unit vector; may raise :class:`InferenceError` for unusable audio."""

P_TARGETS: tuple[float, ...] = (0.01, 0.05)
# Trials scored at once; keeps memory flat on lists of hundreds of thousands of trials.
_SCORE_CHUNK = 65_536


class Trial(NamedTuple):
    """One line of a VoxCeleb-style trial list: ``label a b`` (1 = same speaker)."""

    label: int
    a: str
    b: str


# --------------------------------------------------------------------------- trial lists


def read_trials(path: Path | str) -> list[Trial]:
    """Read a VoxCeleb-style trial list.

    Each non-blank line is ``<label> <path_a> <path_b>`` with label ``1`` (target, same
    speaker) or ``0`` (non-target); paths are relative to an audio root. Lines starting with
    ``#`` are comments.

    Raises
    ------
    ValueError
        A line with another number of fields or another label (the message gives the line
        number), or a list with no trials.
    """
    trials: list[Trial] = []
    for lineno, fields in _read_rows(path, "<0|1> <path_a> <path_b>"):
        if fields[0] not in ("0", "1"):
            raise ValueError(f"{path}, line {lineno}: label must be 0 or 1, got {fields[0]!r}")
        trials.append(Trial(int(fields[0]), fields[1], fields[2]))
    if not trials:
        raise ValueError(f"{path}: no trials")
    return trials


def _read_rows(path: Path | str, usage: str) -> list[tuple[int, list[str]]]:
    """``(line number, fields)`` of a whitespace-separated list with ``len(usage.split())`` fields a line.

    Blank lines and lines starting with ``#`` are skipped; any other line with another number of
    fields raises ValueError naming the line.
    """
    width = len(usage.split())
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            fields = text.split()
            if len(fields) != width:
                raise ValueError(f"{path}, line {lineno}: expected '{usage}', got {len(fields)} fields: {text!r}")
            rows.append((lineno, fields))
    return rows


def read_speaker_list(path: Path | str) -> list[tuple[str, str]]:
    """Read an identification list: one ``<speaker> <path>`` per line, in the order given.

    Paths are relative to an audio root; :func:`evaluate_identification` enrolls each speaker
    with their first utterances in this order. Blank lines and lines starting with ``#`` are
    skipped.

    Raises
    ------
    ValueError
        A line with another number of fields (the message gives the line number), or no lines.
    """
    utterances = [(fields[0], fields[1]) for _, fields in _read_rows(path, "<speaker> <path>")]
    if not utterances:
        raise ValueError(f"{path}: no utterances")
    return utterances


# --------------------------------------------------------------------------- metrics


def _scores_labels(
    scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels)
    if s.ndim != 1 or y.shape != s.shape:
        raise ValueError(f"scores and labels must be 1-D of the same length, got {s.shape} and {y.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or infinite values")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("labels must be 0 (non-target) or 1 (target)")
    y = y.astype(bool)
    if not y.any() or y.all():
        raise ValueError("need at least one target and one non-target score")
    return s, y


def det_curve(
    scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every operating point of a score list.

    Parameters
    ----------
    scores
        ``(N,)`` trial scores.
    labels
        ``(N,)`` 1 for target, 0 for non-target trials.

    Returns
    -------
    (fpr, fnr, thresholds)
        Three ``(U + 1,)`` float64 arrays, ``U`` the number of distinct scores. ``thresholds``
        ascend: the distinct scores, then one value just above the highest score (reject
        everything). ``fpr[i]`` is the fraction of non-targets with ``score >= thresholds[i]``
        (non-increasing), ``fnr[i]`` the fraction of targets with ``score < thresholds[i]``
        (non-decreasing). The first point accepts everything (``fpr = 1, fnr = 0``), the
        last rejects everything (``fpr = 0, fnr = 1``).
    """
    s, y = _scores_labels(scores, labels)
    order = np.argsort(s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    thresholds, first = np.unique(s_sorted, return_index=True)
    n_target = int(y.sum())
    n_nontarget = y.size - n_target
    targets_below = np.concatenate([[0], np.cumsum(y_sorted)])[first]
    nontargets_below = np.concatenate([[0], np.cumsum(~y_sorted)])[first]
    fnr = np.append(targets_below / n_target, 1.0)
    fpr = np.append((n_nontarget - nontargets_below) / n_nontarget, 0.0)
    thresholds = np.append(thresholds, np.nextafter(thresholds[-1], np.inf))
    return fpr, fnr, thresholds


def compute_eer(
    scores: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    *,
    method: Literal["roc", "speechbrain"] = "roc",
) -> tuple[float, float]:
    """Equal error rate and the threshold where it is reached.

    Parameters
    ----------
    scores, labels
        ``(N,)`` scores and ``(N,)`` labels (1 target, 0 non-target).
    method
        ``"roc"`` (default): where the piecewise-linear ROC crosses ``fnr == fpr``; between
        the two operating points that bracket the crossing, rates and threshold are
        interpolated linearly (NIST / wespeaker ``compute_eer``, the VoxCeleb ``brentq``
        recipe). ``"speechbrain"``: ``speechbrain.utils.metric_stats.EER``, i.e. the
        operating point (no interpolation, accept-all excluded) with the smallest
        ``|far - frr|`` in float32, first one on ties, reporting ``(far + frr) / 2``. The two
        differ by up to half a step of ``1/N``; the figures in ``/work/shared/speech/README.md``
        use the SpeechBrain definition.

    Returns
    -------
    (eer, threshold)
        EER as a fraction in [0, 1] (not a percentage); threshold on the score scale.
    """
    fpr, fnr, thresholds = det_curve(scores, labels)
    if method == "speechbrain":
        far = fpr[1:].astype(np.float32)
        frr = fnr[1:].astype(np.float32)
        i = int(np.argmin(np.abs(far - frr)))
        # SpeechBrain accepts ``score > u_i``; the midpoint to the next threshold gives the
        # same decisions under this module's ``score >= threshold``.
        return float((float(far[i]) + float(frr[i])) / 2), float(0.5 * (thresholds[i] + thresholds[i + 1]))
    if method != "roc":
        raise ValueError(f"unknown EER method {method!r}")
    diff = fnr - fpr  # -1 at the first point, +1 at the last, non-decreasing
    i = int(np.argmax(diff >= 0.0))
    if diff[i] == 0.0:
        # Several consecutive points may lie on the diagonal; take the middle of that run.
        j = i + int(np.argmax(diff[i:] > 0.0))
        return float(fpr[i]), float(0.5 * (thresholds[i] + thresholds[j - 1]))
    t = -diff[i - 1] / (diff[i] - diff[i - 1])
    eer = fpr[i - 1] + t * (fpr[i] - fpr[i - 1])
    threshold = thresholds[i - 1] + t * (thresholds[i] - thresholds[i - 1])
    return float(eer), float(threshold)


def compute_min_dcf(
    scores: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    p_target: float,
    c_miss: float = 1.0,
    c_fa: float = 1.0,
) -> tuple[float, float]:
    """Minimum normalised detection cost (NIST SRE / VoxSRC definition).

    ``DCF(t) = c_miss * p_target * fnr(t) + c_fa * (1 - p_target) * fpr(t)``, divided by
    the cost of the best trivial system ``min(c_miss * p_target, c_fa * (1 - p_target))``,
    minimised over all operating points (so the result is at most 1).

    Returns
    -------
    (min_dcf, threshold)
        The normalised minimum and the threshold that reaches it.
    """
    if not 0.0 < p_target < 1.0:
        raise ValueError(f"p_target must be in (0, 1), got {p_target}")
    fpr, fnr, thresholds = det_curve(scores, labels)
    cost = c_miss * p_target * fnr + c_fa * (1.0 - p_target) * fpr
    i = int(np.argmin(cost))
    return float(cost[i] / min(c_miss * p_target, c_fa * (1.0 - p_target))), float(thresholds[i])


def threshold_at_far(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray, far: float) -> float:
    """Lowest threshold whose false-acceptance rate on these trials is at most ``far``.

    The lowest such threshold rejects the fewest targets. It is one of the observed scores
    (or just above the highest one), so with ``N`` non-targets the FAR granularity is ``1/N``.
    """
    if not 0.0 <= far <= 1.0:
        raise ValueError(f"far must be in [0, 1], got {far}")
    fpr, _, thresholds = det_curve(scores, labels)
    return float(thresholds[int(np.argmax(fpr <= far))])


def rates_at_threshold(
    scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray, threshold: float
) -> tuple[float, float]:
    """``(far, frr)`` of the decision ``score >= threshold`` on these trials."""
    s, y = _scores_labels(scores, labels)
    accepted = s >= threshold
    return float(accepted[~y].mean()), float((~accepted[y]).mean())


def verification_metrics(
    scores: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    *,
    far_target: float = 0.01,
    p_targets: Sequence[float] = P_TARGETS,
) -> dict[str, Any]:
    """All summary figures of one score list, as a JSON-ready dict.

    Keys: ``eer``, ``eer_threshold`` (ROC-interpolated), ``eer_speechbrain``,
    ``eer_speechbrain_threshold`` (SpeechBrain's definition, see :func:`compute_eer`),
    ``min_dcf`` (a list of ``{p_target, min_dcf, threshold}``), ``far_target``,
    ``threshold_at_far`` with the ``far`` / ``frr`` it gives
    on these trials, and target / non-target score means and standard deviations.
    """
    s, y = _scores_labels(scores, labels)
    eer, eer_threshold = compute_eer(s, y)
    eer_sb, eer_sb_threshold = compute_eer(s, y, method="speechbrain")
    at_far = threshold_at_far(s, y, far_target)
    far, frr = rates_at_threshold(s, y, at_far)
    return {
        "eer": eer,
        "eer_threshold": eer_threshold,
        "eer_speechbrain": eer_sb,
        "eer_speechbrain_threshold": eer_sb_threshold,
        "min_dcf": [dict(zip(("p_target", "min_dcf", "threshold"), (p, *compute_min_dcf(s, y, p)))) for p in p_targets],
        "far_target": far_target,
        "threshold_at_far": at_far,
        "far_at_threshold": far,
        "frr_at_threshold": frr,
        "target_mean": float(s[y].mean()),
        "target_std": float(s[y].std()),
        "nontarget_mean": float(s[~y].mean()),
        "nontarget_std": float(s[~y].std()),
    }


# --------------------------------------------------------------------------- embedding


def _progress(iterable: Iterable[Any], *, enabled: bool, total: int, desc: str) -> Iterable[Any]:
    if not enabled or total < 20 or not sys.stderr.isatty():
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="file")


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


# --------------------------------------------------------------------------- verification


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
        skipped), ``raw`` (:func:`verification_metrics` of the cosines), ``asnorm`` (the same
        on AS-norm scores plus ``top_k``, ``cohort_size``, ``key``) or ``None``, ``groups``,
        and ``scores`` (``labels``, ``raw``, ``asnorm`` lists, for plots).

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
    report["raw"] = verification_metrics(raw, labels, far_target=far_target)
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
        "raw": np.round(raw, 6).tolist(),
        "asnorm": None if normed is None else np.round(normed, 6).tolist(),
    }
    logger.info(
        "verification: %d trials, EER %.2f%% (threshold %.3f)%s",
        len(scored),
        100 * report["raw"]["eer"],
        report["raw"]["eer_threshold"],
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
        entry: dict[str, Any] = {"target": int(y.sum()), "nontarget": int((y == 0).sum()), "raw": None, "asnorm": None}
        if 0 < y.sum() < y.size:
            entry["raw"] = verification_metrics(raw[mask], y, far_target=far_target)
            if normed is not None:
                entry["asnorm"] = verification_metrics(normed[mask], y, far_target=far_target)
        out[name] = entry
    return out


# --------------------------------------------------------------------------- identification


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
    enrolled: list[str] = []
    voiceprints: list[np.ndarray] = []
    skipped: list[str] = []
    probes: list[tuple[str, str, bool]] = []  # (speaker, path, known)
    for speaker in known:
        paths = by_speaker[speaker]
        if len(paths) < enroll_per_speaker:
            skipped.append(speaker)
            logger.warning(
                "speaker %s has %d usable utterances, fewer than %d: not enrolled",
                speaker,
                len(paths),
                enroll_per_speaker,
            )
            continue
        enrolled.append(speaker)
        voiceprints.append(average_embeddings([vectors[p] for p in paths[:enroll_per_speaker]]))
        probes.extend((speaker, p, True) for p in paths[enroll_per_speaker:])
    for speaker in speakers:
        if speaker in unknown:
            probes.extend((speaker, p, False) for p in by_speaker[speaker])
    if not enrolled:
        raise ValueError("no known speaker has enough usable utterances to enroll")

    enrolled_matrix = np.stack(voiceprints)  # (K, D)
    probe_matrix = (
        np.stack([vectors[p] for _, p, _ in probes]) if probes else np.zeros((0, enrolled_matrix.shape[1]), np.float32)
    )
    scores = np.clip(probe_matrix @ enrolled_matrix.T, -1.0, 1.0).astype(np.float64)  # (P, K)
    if asnorm is not None and probes:
        mu_e, sd_e = asnorm.stats_many(enrolled_matrix)
        mu_t, sd_t = asnorm.stats_many(probe_matrix)
        scores = as_norm_scores(scores, mu_e[None, :], sd_e[None, :], mu_t[:, None], sd_t[:, None])  # (P, K)

    probe_rows: list[dict[str, Any]] = []
    for (speaker, path, is_known), row in zip(probes, scores):
        order = np.argsort(-row, kind="mergesort")
        rank = next((r for r, k in enumerate(order) if enrolled[k] == speaker), None) if is_known else None
        probe_rows.append(
            {
                "speaker": speaker,
                "path": path,
                "known": is_known,
                "best_speaker": enrolled[order[0]],
                "best_score": float(row[order[0]]),
                "second_score": float(row[order[1]]) if len(order) > 1 else None,
                "true_rank": rank,
            }
        )

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


def identification_operating_point(
    probes: Sequence[Mapping[str, Any]], *, threshold: float, margin: float = 0.0, top_k: int = 5
) -> dict[str, Any]:
    """Identification figures for one ``(threshold, margin)`` from the ``probes`` of a report.

    Lets a threshold or margin sweep reuse one :func:`evaluate_identification` run.

    Returns
    -------
    dict
        ``{"known": {...} | None, "unknown": {...} | None}``, rates as fractions.
    """

    def matched(p: Mapping[str, Any]) -> bool:
        second = p["second_score"]
        return p["best_score"] >= threshold and (second is None or p["best_score"] - second >= margin)

    known = [p for p in probes if p["known"]]
    unknown = [p for p in probes if not p["known"]]
    out: dict[str, Any] = {"known": None, "unknown": None}
    if known:
        n = len(known)
        correct = sum(1 for p in known if p["true_rank"] == 0 and matched(p))
        wrong = sum(1 for p in known if p["true_rank"] != 0 and matched(p))
        out["known"] = {
            "top1_accuracy": sum(1 for p in known if p["true_rank"] == 0) / n,
            "topk_accuracy": sum(1 for p in known if p["true_rank"] is not None and p["true_rank"] < top_k) / n,
            "correct_match_rate": correct / n,
            "wrong_match_rate": wrong / n,
            "no_match_rate": (n - correct - wrong) / n,
        }
    if unknown:
        out["unknown"] = {"false_identification_rate": sum(1 for p in unknown if matched(p)) / len(unknown)}
    return out


def threshold_at_fir(probes: Sequence[Mapping[str, Any]], fir: float, *, margin: float = 0.0) -> float:
    """Lowest identification threshold whose false-identification rate on these probes is at most ``fir``.

    An unknown probe is falsely identified when its best score is ``>= threshold`` and leads
    the runner-up by ``>= margin``; probes whose lead is below the margin never are.

    Parameters
    ----------
    probes
        The ``probes`` of an :func:`evaluate_identification` report (needs unknown probes).
    fir
        Target false-identification rate in [0, 1].
    margin
        The margin the threshold will be used with.

    Returns
    -------
    float
        On the report's scale: just above the best score of the unknown probe that would
        exceed the allowed count, or the lowest best score of any probe when no unknown
        probe can be matched.
    """
    if not 0.0 <= fir <= 1.0:
        raise ValueError(f"fir must be in [0, 1], got {fir}")
    unknown = [p for p in probes if not p["known"]]
    if not unknown:
        raise ValueError("threshold_at_fir needs probes of unknown speakers")
    eligible = sorted(
        (
            p["best_score"]
            for p in unknown
            if p["second_score"] is None or p["best_score"] - p["second_score"] >= margin
        ),
        reverse=True,
    )
    allowed = int(math.floor(fir * len(unknown) + 1e-9))
    if len(eligible) <= allowed:
        return float(min(p["best_score"] for p in probes))
    return float(np.nextafter(eligible[allowed], np.inf))


# --------------------------------------------------------------------------- report files


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


def write_report(report: Mapping[str, Any], json_path: Path | str, png_path: Path | str) -> None:
    """Write a report as JSON and as a PNG figure (matplotlib, Agg canvas, no display needed).

    A verification report is drawn as a DET curve (normal-deviate axes; raw and, when
    present, AS-norm) beside target / non-target score histograms with the EER and
    fixed-FAR thresholds marked. An identification report is drawn as histograms of the
    best score of correctly identified, misidentified and unknown probes with the threshold.
    """
    json_path, png_path = Path(json_path), Path(png_path)
    for path in (json_path, png_path):
        path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(_jsonable(report), indent=2, allow_nan=False) + "\n", encoding="utf-8")

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if report.get("kind") == "verification":
        fig = _verification_figure(report, Figure)
    elif report.get("kind") == "identification":
        fig = _identification_figure(report, Figure)
    else:
        raise ValueError(f"unknown report kind {report.get('kind')!r}")
    FigureCanvasAgg(fig)
    fig.savefig(png_path, dpi=110)
    logger.info("wrote %s and %s", json_path, png_path)


_DET_TICKS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4)


def _verification_figure(report: Mapping[str, Any], figure_cls: Any) -> Any:
    from scipy.stats import norm

    scores = report.get("scores") or {}
    if not scores.get("raw"):
        raise ValueError("the verification report has no scores to plot")
    labels = np.asarray(scores["labels"])
    scales = [("raw", "cosine")] + ([("asnorm", "AS-norm")] if scores.get("asnorm") is not None else [])
    fig = figure_cls(figsize=(5.0 * (1 + len(scales)), 4.5), layout="constrained")
    axes = fig.subplots(1, 1 + len(scales))

    det = axes[0]
    lo, hi = norm.ppf(_DET_TICKS[0]), norm.ppf(_DET_TICKS[-1])
    for key, title in scales:
        fpr, fnr, _ = det_curve(scores[key], labels)
        clip = lambda p: norm.ppf(np.clip(p, _DET_TICKS[0] / 2, 1 - _DET_TICKS[0] / 2))  # noqa: E731
        eer = report[key]["eer"]
        det.plot(clip(fpr), clip(fnr), drawstyle="steps-post", label=f"{title} (EER {100 * eer:.2f}%)")
        det.plot([clip(eer)], [clip(eer)], "o", color=det.lines[-1].get_color())
    det.plot([lo, hi], [lo, hi], ":", color="grey", linewidth=0.8)
    ticks = norm.ppf(_DET_TICKS)
    tick_labels = [f"{100 * t:g}" for t in _DET_TICKS]
    det.set_xticks(ticks, tick_labels)
    det.set_yticks(ticks, tick_labels)
    det.set_xlim(lo, hi)
    det.set_ylim(lo, hi)
    det.set_xlabel("false acceptance rate (%)")
    det.set_ylabel("false rejection rate (%)")
    counts = report["counts"]
    det.set_title(f"DET, {counts['target']} target / {counts['nontarget']} non-target trials")
    det.grid(True, linewidth=0.4)
    det.legend(loc="upper right", fontsize=8)

    for ax, (key, title) in zip(axes[1:], scales):
        s = np.asarray(scores[key])
        bins = np.linspace(s.min(), s.max(), 50)
        ax.hist(s[labels == 0], bins=bins, density=True, alpha=0.55, label="non-target")
        ax.hist(s[labels == 1], bins=bins, density=True, alpha=0.55, label="target")
        metrics = report[key]
        ax.axvline(
            metrics["eer_threshold"],
            color="black",
            linestyle="--",
            label=f"EER threshold {metrics['eer_threshold']:.3f}",
        )
        ax.axvline(
            metrics["threshold_at_far"],
            color="red",
            linestyle=":",
            label=f"FAR {100 * metrics['far_target']:g}% threshold {metrics['threshold_at_far']:.3f}",
        )
        ax.set_xlabel(f"{title} score")
        ax.set_ylabel("density")
        ax.set_title(f"{title} scores")
        ax.legend(fontsize=8)
    return fig


def _identification_figure(report: Mapping[str, Any], figure_cls: Any) -> Any:
    probes = report["probes"]
    groups = {
        "known, identified": [p["best_score"] for p in probes if p["known"] and p["true_rank"] == 0],
        "known, misidentified": [p["best_score"] for p in probes if p["known"] and p["true_rank"] != 0],
        "unknown speaker": [p["best_score"] for p in probes if not p["known"]],
    }
    fig = figure_cls(figsize=(6.5, 4.5), layout="constrained")
    ax = fig.subplots()
    every = [s for v in groups.values() for s in v]
    bins = np.linspace(min(every), max(every), 40) if every else 10
    for name, values in groups.items():
        if values:
            ax.hist(values, bins=bins, alpha=0.55, label=f"{name} ({len(values)})")
    ax.axvline(report["threshold"], color="black", linestyle="--", label=f"threshold {report['threshold']:.3f}")
    ax.set_xlabel(f"best {report['scale']} score of each probe")
    ax.set_ylabel("probes")
    known = report.get("known") or {}
    unknown = report.get("unknown") or {}
    ax.set_title(
        f"top-1 {100 * known.get('top1_accuracy', float('nan')):.1f}%, "
        f"FIR {100 * unknown.get('false_identification_rate', float('nan')):.1f}%"
    )
    ax.legend(fontsize=8)
    return fig


# --------------------------------------------------------------------------- command line


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


def _cached(embed_fn: EmbedFn) -> EmbedFn:
    cache: dict[Path, np.ndarray | Exception] = {}

    def embed(path: Path) -> np.ndarray:
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


def _source_prefix(trial: Trial) -> str:
    return trial.a.split("/", 1)[0].split("-", 1)[0]


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def _summary(reports: Sequence[Mapping[str, Any]]) -> str:
    lines = [
        "| scores | set | trials (target) | EER % (ROC) | EER % (SpeechBrain) | EER thr | minDCF 0.01 (thr) "
        "| minDCF 0.05 (thr) | thr @ FAR | FRR @ that thr % |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for report in reports:
        key = "raw" if report["asnorm"] is None else "asnorm"
        label = "cosine" if key == "raw" else f"AS-norm k={report['asnorm']['top_k']}"
        rows = [("all", report["counts"]["scored"], report["counts"]["target"], report)]
        rows += [(g, e["target"] + e["nontarget"], e["target"], e) for g, e in report["groups"].items()]
        for group, n, n_target, source in rows:
            m = source.get(key)
            if not m:
                continue
            dcf = " | ".join(f"{d['min_dcf']:.3f} ({d['threshold']:.3f})" for d in m["min_dcf"])
            lines.append(
                f"| {label} | {group} | {n} ({n_target}) | {_pct(m['eer'])} | {_pct(m['eer_speechbrain'])} | "
                f"{m['eer_threshold']:.3f} | {dcf} | {m['threshold_at_far']:.3f} | {_pct(m['frr_at_threshold'])} |"
            )
    return "\n".join(lines)


def _rates_table(
    reports: Sequence[Mapping[str, Any]],
    groups: Sequence[str] | None,
    raw_thresholds: Sequence[float],
    asnorm_thresholds: Sequence[float],
) -> str:
    """FAR / FRR (%) at fixed thresholds, overall and per group (``groups``: one per scored trial)."""
    lines = ["| scores | threshold | " + " | ".join(f"{g} FAR / FRR %" for g in ["all", *reports[0]["groups"]]) + " |"]
    lines.append("|---" * (2 + 1 + len(reports[0]["groups"])) + "|")
    labels = np.asarray(reports[0]["scores"]["labels"])
    for report in reports:
        key = "raw" if report["asnorm"] is None else "asnorm"
        name = "cosine" if key == "raw" else f"AS-norm k={report['asnorm']['top_k']}"
        scores = np.asarray(report["scores"][key])
        for threshold in raw_thresholds if key == "raw" else asnorm_thresholds:
            cells = []
            for group in ["all", *report["groups"]]:
                mask = np.ones(labels.size, bool) if group == "all" else np.asarray(groups) == group
                far, frr = rates_at_threshold(scores[mask], labels[mask], threshold)
                cells.append(f"{100 * far:.2f} / {100 * frr:.2f}")
            lines.append(f"| {name} | {threshold:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _identification_sweep(
    probes: Sequence[Mapping[str, Any]], scale: str, thresholds: Sequence[float], margins: Sequence[float], top_k: int
) -> str:
    lines = [
        f"| {scale} threshold | margin | top-1 % | top-{top_k} % | correct match % | wrong match % | no match % | FIR % |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for threshold in thresholds:
        for margin in margins:
            point = identification_operating_point(probes, threshold=threshold, margin=margin, top_k=top_k)
            k, u = point["known"] or {}, point["unknown"] or {}
            lines.append(
                f"| {threshold:g} | {margin:g} | {_pct(k.get('top1_accuracy'))} | {_pct(k.get('topk_accuracy'))} | "
                f"{_pct(k.get('correct_match_rate'))} | {_pct(k.get('wrong_match_rate'))} | {_pct(k.get('no_match_rate'))} | "
                f"{_pct(u.get('false_identification_rate'))} |"
            )
    return "\n".join(lines)


def _load_any_cohort(path: Path) -> np.ndarray:
    from inference.cohort import load_classifier_cohort, load_cohort

    return load_cohort(path) if path.suffix == ".npy" else load_classifier_cohort(path)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m inference.evaluation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=Path, required=True, help="VoxCeleb-style trial list")
    parser.add_argument("--audio-root", type=Path, required=True, help="directory the trial paths are relative to")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--embeddings-npz", type=Path, help="precomputed embeddings (arrays names, embeddings)")
    source.add_argument("--model-dir", type=Path, help="embed with the MindSpore engine from this model directory")
    parser.add_argument("--cohort", type=Path, help="AS-norm cohort: cohort.npy or SpeechBrain classifier.ckpt")
    parser.add_argument(
        "--top-k", type=int, nargs="+", default=[200], help="AS-norm top-k values; the first is used for identification"
    )
    parser.add_argument("--far", type=float, default=0.01, help="FAR of the reported fixed-FAR threshold")
    parser.add_argument(
        "--group-by-source", action="store_true", help="also report per source (top directory up to its first '-')"
    )
    parser.add_argument(
        "--at", type=float, nargs="*", default=[0.25, 0.40, 0.45, 0.50], help="cosine thresholds to give FAR/FRR at"
    )
    parser.add_argument(
        "--asnorm-at", type=float, nargs="*", default=[6.0, 7.0, 7.5, 8.0], help="AS-norm thresholds to give FAR/FRR at"
    )
    parser.add_argument(
        "--identification", action="store_true", help="also run open-set identification (speaker = top directory)"
    )
    parser.add_argument("--enroll", type=int, default=3, help="utterances averaged per enrolled speaker")
    parser.add_argument(
        "--rotate-unknown", action="store_true", help="also pool 3 runs holding out sorted(speakers)[r::3], r = 0, 1, 2"
    )
    parser.add_argument(
        "--identify-threshold", type=float, default=0.50, help="cosine threshold of the written identification report"
    )
    parser.add_argument(
        "--asnorm-identify-threshold",
        type=float,
        default=8.0,
        help="AS-norm threshold of the written identification report",
    )
    parser.add_argument(
        "--identify-at",
        type=float,
        nargs="+",
        default=[0.25, 0.40, 0.45, 0.50],
        help="cosine identification thresholds",
    )
    parser.add_argument(
        "--margins", type=float, nargs="+", default=[0.0, 0.05, 0.1], help="cosine margins over the runner-up"
    )
    parser.add_argument(
        "--asnorm-identify-at",
        type=float,
        nargs="+",
        default=[6.0, 7.0, 7.5, 8.0],
        help="AS-norm identification thresholds",
    )
    parser.add_argument(
        "--asnorm-margins", type=float, nargs="+", default=[0.0, 1.0, 2.0], help="AS-norm margins over the runner-up"
    )
    parser.add_argument("--out-dir", type=Path, default=Path("reports"), help="where the JSON and PNG reports go")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Evaluate a trial list and print Markdown tables; write JSON + PNG reports to ``--out-dir``.

    ``python -m inference.evaluation --trials T --audio-root R (--embeddings-npz F | --model-dir D)
    [--cohort C --top-k 100 200 300] [--group-by-source] [--identification [--rotate-unknown]]``
    """
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    trials = read_trials(args.trials)
    embed_fn = _cached(
        npz_embed_fn(args.embeddings_npz, args.audio_root) if args.embeddings_npz else engine_embed_fn(args.model_dir)
    )
    cohort = _load_any_cohort(args.cohort) if args.cohort else None
    group_fn = _source_prefix if args.group_by_source else None
    progress = not args.no_progress
    out = sys.stdout
    out.write(
        f"# {args.trials} ("
        f"{'embeddings ' + str(args.embeddings_npz) if args.embeddings_npz else 'engine ' + str(args.model_dir)})\n\n"
    )

    reports: list[dict[str, Any]] = []
    for k in [None, *(args.top_k if cohort is not None else [])]:
        asnorm = None if k is None else ASNorm(cohort, top_k=k)
        report = evaluate_verification(
            trials, args.audio_root, embed_fn, asnorm=asnorm, far_target=args.far, progress=progress, group_fn=group_fn
        )
        name = "verification" if k is None else f"verification_asnorm_k{k}"
        write_report(report, args.out_dir / f"{name}.json", args.out_dir / f"{name}.png")
        reports.append(report)
    failed = reports[0]["failed_files"]
    groups = [group_fn(t) for t in trials if t.a not in failed and t.b not in failed] if group_fn else None
    counts = reports[0]["counts"]
    out.write(
        f"{counts['scored']} trials scored ({counts['target']} target), "
        f"{counts['failed_files']} of {counts['files']} files failed\n\n"
    )
    out.write(_summary(reports) + "\n\n" + _rates_table(reports, groups, args.at, args.asnorm_at) + "\n\n")

    if args.identification:
        files = list(dict.fromkeys(p for t in trials for p in (t.a, t.b)))
        utterances = sorted((p.split("/", 1)[0], p) for p in files)
        speakers = sorted({s for s, _ in utterances})
        runs: list[tuple[str, ASNorm | None, float, Sequence[float], Sequence[float]]] = [
            ("cosine", None, args.identify_threshold, args.identify_at, args.margins)
        ]
        if cohort is not None:
            asnorm = ASNorm(cohort, top_k=args.top_k[0])
            runs.append(
                (
                    f"asnorm_k{args.top_k[0]}",
                    asnorm,
                    args.asnorm_identify_threshold,
                    args.asnorm_identify_at,
                    args.asnorm_margins,
                )
            )
        for name, asnorm, threshold, thresholds, margins in runs:
            report = evaluate_identification(
                utterances,
                args.audio_root,
                embed_fn,
                enroll_per_speaker=args.enroll,
                threshold=threshold,
                asnorm=asnorm,
                progress=progress,
            )
            write_report(
                report, args.out_dir / f"identification_{name}.json", args.out_dir / f"identification_{name}.png"
            )
            sp, c = report["speakers"], report["counts"]
            out.write(
                f"identification, {name}: {len(sp['known'])} speakers enrolled with {args.enroll} utterances each, "
                f"unknown {', '.join(sp['unknown'])}; {c['known_probes']} known / {c['unknown_probes']} unknown probes\n\n"
            )
            out.write(
                _identification_sweep(report["probes"], report["scale"], thresholds, margins, report["top_k"]) + "\n\n"
            )
            if args.rotate_unknown:
                pooled: list[dict[str, Any]] = []
                for r in range(3):
                    pooled += evaluate_identification(
                        utterances,
                        args.audio_root,
                        embed_fn,
                        enroll_per_speaker=args.enroll,
                        unknown_speakers=set(speakers[r::3]),
                        threshold=threshold,
                        asnorm=asnorm,
                        progress=progress,
                    )["probes"]
                n_known = sum(1 for p in pooled if p["known"])
                out.write(
                    f"identification, {name}, pooled over 3 hold-outs: "
                    f"{n_known} known / {len(pooled) - n_known} unknown probes\n\n"
                )
                out.write(_identification_sweep(pooled, report["scale"], thresholds, margins, report["top_k"]) + "\n\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

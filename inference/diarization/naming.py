"""Naming speaker clusters against enrolled voices: open set, one-to-one.

The caller scores each cluster's voiceprint against the enrolled voices with its calibrated rule
(a log-likelihood ratio and the threshold for that pair's recording quality); this module only
decides. A cluster is named after an enrolled speaker when that speaker's llr passes its
threshold and leads the cluster's runner-up among the enrolled by ``margin`` (the identify rule,
:func:`inference.decisions.identify_outcome`, on the cluster's best candidate), and no enrolled
speaker is given to two clusters: of the clusters whose best candidate is the same enrolled
speaker, the one with the highest llr is named, the others stay unknown (two clusters that both
sound like one person are most often that person split in two; naming the weaker as someone
else would need it to fail the rule that names it). With ``margin > 0`` this is the assignment
of qualifying pairs that maximises the total llr (each cluster qualifies for one speaker at most).
Unknown clusters are ``unknown-1``, ``unknown-2``, ... in the order they first speak.

Two entries: :func:`name_clusters` applies the identify rule itself to a ``(clusters, enrolled)``
llr matrix (the benchmark's way); :func:`name_verdicts` takes each cluster's verdict as the caller's
identify rule already gave it (the service's way: each cluster identified exactly as a probe is)
and does only the one-to-one naming.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from inference.decisions import identify_outcome

UNKNOWN_PREFIX = "unknown-"


@dataclass(frozen=True)
class ClusterName:
    """The name given to one cluster, and the figures that decided it.

    ``reason`` is None for a match, else ``no_candidates``, ``below_threshold``, ``ambiguous``
    (the identify rule's reasons) or ``taken`` (its best candidate went to another cluster that
    scored higher).
    """

    cluster: int
    label: str  # the enrolled speaker's key, or unknown-k
    enrolled: str | None
    best: str | None  # the best-scoring enrolled speaker, matched or not
    llr: float | None
    threshold: float | None
    runner_up_llr: float | None
    reason: str | None


@dataclass(frozen=True)
class ClusterVerdict:
    """The identify rule's verdict on one cluster's voiceprint, before the one-to-one naming.

    ``best``: its best enrolled candidate's key (None: nobody was searched), with that candidate's
    ``llr`` and the ``threshold`` it had to reach; ``reason``: None when that candidate is a match,
    else the identify rule's reason (``no_candidates``, ``below_threshold``, ``ambiguous``).
    """

    best: str | None
    llr: float | None
    threshold: float | None
    runner_up_llr: float | None
    reason: str | None


def name_verdicts(verdicts: Sequence[ClusterVerdict], *,
                  first_speech_s: Sequence[float] | None = None) -> list[ClusterName]:
    """Names for clusters whose identify verdicts are given: one-to-one, open set.

    Of the clusters matched to the same enrolled speaker, the one with the highest llr (the first,
    on a tie) is named; the others stay unknown with the reason ``taken`` (a cluster never falls
    back on its runner-up: the rule that names it is the identify rule on its own best candidate,
    which the runner-up does not pass). ``first_speech_s``: ``(C,)`` when each cluster first
    speaks, the order unknown clusters are numbered in (default: cluster order).

    Returns
    -------
    One :class:`ClusterName` per verdict, in cluster order.
    """
    clusters = len(verdicts)
    order = np.arange(clusters) if first_speech_s is None else np.argsort(np.asarray(first_speech_s), kind="stable")
    if len(order) != clusters:
        raise ValueError(f"first_speech_s has {len(order)} values for {clusters} clusters")
    for v in verdicts:
        if v.reason is None and (v.best is None or v.llr is None):
            raise ValueError("a matched verdict needs its best candidate and llr")

    winner: dict[str, tuple[float, int]] = {}  # enrolled key -> (llr, cluster) of the best claimant so far
    for c, v in enumerate(verdicts):
        if v.reason is None and v.best is not None and v.llr is not None:
            if v.best not in winner or v.llr > winner[v.best][0]:
                winner[v.best] = (v.llr, c)
    matched = {c for _, c in winner.values()}

    names: list[ClusterName | None] = [None] * clusters
    unknown = 0
    for c in order.tolist():
        v = verdicts[c]
        if c in matched:
            label = str(v.best)
            reason = None
        else:
            unknown += 1
            label = f"{UNKNOWN_PREFIX}{unknown}"
            reason = "taken" if v.reason is None else v.reason
        names[c] = ClusterName(cluster=c, label=label, enrolled=label if c in matched else None, best=v.best,
                               llr=v.llr, threshold=v.threshold, runner_up_llr=v.runner_up_llr, reason=reason)
    return [n for n in names if n is not None]


def name_clusters(llr: np.ndarray, threshold: np.ndarray, enrolled: Sequence[str], *, margin: float = 0.0,
                  first_speech_s: Sequence[float] | None = None) -> list[ClusterName]:
    """Names for ``C`` clusters against ``E`` enrolled speakers, one-to-one, open set.

    Parameters
    ----------
    llr, threshold
        ``(C, E)``: each pair's calibrated score and the threshold it must reach.
    enrolled
        The ``E`` enrolled speakers' keys (names, ids).
    margin
        The lead over the cluster's runner-up (on the llr scale) a match needs.
    first_speech_s
        ``(C,)`` when each cluster first speaks: unknown clusters are numbered in that order
        (default: cluster order).

    Returns
    -------
    One :class:`ClusterName` per cluster, in cluster order.
    """
    llr = np.asarray(llr, dtype=np.float64)
    threshold = np.asarray(threshold, dtype=np.float64)
    if llr.ndim != 2 or llr.shape != threshold.shape or llr.shape[1] != len(enrolled):
        raise ValueError(f"llr {llr.shape} and threshold {threshold.shape} must both be (clusters, {len(enrolled)})")
    if not np.all(np.isfinite(llr)) or not np.all(np.isfinite(threshold)):
        raise ValueError("llr and threshold must be finite")

    # Per cluster, the identify rule on its best enrolled candidate.
    verdicts = []
    for row, row_threshold in zip(llr, threshold):
        if not len(enrolled):
            verdicts.append(ClusterVerdict(best=None, llr=None, threshold=None, runner_up_llr=None,
                                           reason=identify_outcome(None, None, threshold=0.0, margin=margin)))
            continue
        ranked = np.argsort(-row, kind="stable")
        best = int(ranked[0])
        runner_up = float(row[ranked[1]]) if len(ranked) > 1 else None
        verdicts.append(ClusterVerdict(
            best=str(enrolled[best]), llr=float(row[best]), threshold=float(row_threshold[best]),
            runner_up_llr=runner_up,
            reason=identify_outcome(float(row[best]), runner_up, threshold=float(row_threshold[best]),
                                    margin=margin)))
    return name_verdicts(verdicts, first_speech_s=first_speech_s)

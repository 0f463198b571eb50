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
of qualifying pairs that maximises the total llr (each cluster qualifies for one speaker at most). Unknown clusters are ``unknown-1``, ``unknown-2``, ... in
the order they first speak.
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
    clusters = llr.shape[0] if llr.ndim == 2 else 0
    if llr.ndim != 2 or llr.shape != threshold.shape or llr.shape[1] != len(enrolled):
        raise ValueError(f"llr {llr.shape} and threshold {threshold.shape} must both be (clusters, {len(enrolled)})")
    if not np.all(np.isfinite(llr)) or not np.all(np.isfinite(threshold)):
        raise ValueError("llr and threshold must be finite")
    order = np.arange(clusters) if first_speech_s is None else np.argsort(np.asarray(first_speech_s), kind="stable")
    if len(order) != clusters:
        raise ValueError(f"first_speech_s has {len(order)} values for {clusters} clusters")

    # Per cluster, the identify rule on its best enrolled candidate.
    best = np.full(clusters, -1)
    runner_up: list[float | None] = [None] * clusters
    reasons: list[str | None] = ["no_candidates"] * clusters
    for c in range(clusters):
        if llr.shape[1] == 0:
            continue
        ranked = np.argsort(-llr[c], kind="stable")
        best[c] = ranked[0]
        runner_up[c] = float(llr[c, ranked[1]]) if len(ranked) > 1 else None
        reasons[c] = identify_outcome(float(llr[c, ranked[0]]), runner_up[c],
                                      threshold=float(threshold[c, ranked[0]]), margin=margin)

    # One cluster per enrolled speaker at most: of the clusters whose best candidate qualifies, the
    # one with the highest llr. A cluster never falls back on its runner-up: the rule that names
    # it is the identify rule on its own best candidate, which the runner-up does not pass.
    matched: dict[int, int] = {}
    for e in set(best[[c for c in range(clusters) if reasons[c] is None]].tolist()):
        claimants = [c for c in range(clusters) if reasons[c] is None and best[c] == e]
        matched[max(claimants, key=lambda c: (llr[c, e], -c))] = int(e)
    for c in range(clusters):
        if reasons[c] is None and c not in matched:
            reasons[c] = "taken"

    names: list[ClusterName | None] = [None] * clusters
    unknown = 0
    for c in order.tolist():
        b = int(best[c])
        if c in matched:
            label = str(enrolled[matched[c]])
        else:
            unknown += 1
            label = f"{UNKNOWN_PREFIX}{unknown}"
        names[c] = ClusterName(
            cluster=c, label=label, enrolled=label if c in matched else None,
            best=str(enrolled[b]) if b >= 0 else None,
            llr=float(llr[c, b]) if b >= 0 else None, threshold=float(threshold[c, b]) if b >= 0 else None,
            runner_up_llr=runner_up[c], reason=reasons[c])
    return [n for n in names if n is not None]

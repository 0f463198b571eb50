"""Speaker clusters from window embeddings: agglomerative, average linkage on the cosine distance.

The number of speakers is found, not given: merging stops when the two closest clusters are
``stop_distance`` apart on average (a threshold fitted on conversations of speakers the
calibration set trains on). A caller who knows the count passes ``num_speakers``; ``max_speakers``
caps what is found.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClusteringFigures:
    """How the stopping decision fell.

    ``last_merge`` is the largest distance at which two clusters were merged (0 with one window),
    ``next_merge`` the distance of the merge refused (None when everything merged): how far the
    stopping threshold lay from the nearest decision either way.
    """

    clusters_found: int
    stop_distance: float
    last_merge: float
    next_merge: float | None
    absorbed: int  # clusters with too little speech that joined their nearest cluster


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (a zero row stays zero)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def centroids(embeddings: np.ndarray, labels: np.ndarray, count: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Unit mean embedding of each cluster ``0..count-1``: ``(N, D), (N,) -> (count, D)``."""
    w = np.ones(len(labels)) if weights is None else weights
    out = np.zeros((count, embeddings.shape[1]))
    np.add.at(out, labels, embeddings * w[:, None])
    return unit_rows(out)


def agglomerate(embeddings: np.ndarray, *, stop_distance: float, num_speakers: int | None = None,
                max_speakers: int | None = None) -> tuple[np.ndarray, float, float | None]:
    """Cluster labels ``(N,)`` numbered 0.. in order of first window, the last merge and the next one.

    Average linkage on the cosine distance of unit rows. With ``num_speakers`` the tree is cut into
    that many clusters (fewer if there are fewer windows); else it stops at ``stop_distance``,
    and ``max_speakers`` caps the count.
    """
    from scipy.cluster.hierarchy import fcluster, linkage

    count = embeddings.shape[0]
    if count == 0:
        return np.zeros(0, dtype=np.int64), 0.0, None
    if count == 1:
        return np.zeros(1, dtype=np.int64), 0.0, None
    tree = linkage(unit_rows(embeddings.astype(np.float64)), method="average", metric="cosine")
    heights = tree[:, 2]
    if num_speakers is not None:
        clusters = min(max(num_speakers, 1), count)
    else:
        clusters = count - int(np.sum(heights <= stop_distance))
        if max_speakers is not None:
            clusters = min(clusters, max_speakers)
    merges = count - clusters  # the first `merges` rows of the tree are taken
    last = float(heights[merges - 1]) if merges > 0 else 0.0
    following = float(heights[merges]) if merges < len(heights) else None
    raw = fcluster(tree, t=clusters, criterion="maxclust") if clusters > 1 else np.ones(count, dtype=int)
    return first_appearance(raw), last, following


def first_appearance(labels: np.ndarray) -> np.ndarray:
    """Renumber labels 0, 1, ... in the order they first appear."""
    mapping: dict[int, int] = {}
    out = np.empty(len(labels), dtype=np.int64)
    for i, label in enumerate(labels.tolist()):
        out[i] = mapping.setdefault(label, len(mapping))
    return out


def absorb_small(embeddings: np.ndarray, labels: np.ndarray, speech_s: np.ndarray, min_speech_s: float) -> tuple[np.ndarray, int]:
    """Clusters holding less than ``min_speech_s`` of speech join the nearest remaining centroid.

    ``speech_s``: ``(N,)`` seconds of speech each window stands for. The largest cluster always
    stays. Returns the new labels (renumbered by first appearance) and how many clusters joined.
    """
    if len(labels) == 0:
        return labels, 0
    count = int(labels.max()) + 1
    totals = np.bincount(labels, weights=speech_s, minlength=count)
    keep = totals >= min_speech_s
    keep[int(np.argmax(totals))] = True
    if keep.all():
        return labels, 0
    kept = np.flatnonzero(keep)
    cents = centroids(embeddings, labels, count)[kept]
    out = labels.copy()
    for cluster in np.flatnonzero(~keep):
        members = labels == cluster
        nearest = kept[np.argmax(unit_rows(embeddings[members]) @ cents.T, axis=1)]
        out[members] = nearest
    return first_appearance(out), int((~keep).sum())

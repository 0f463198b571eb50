"""From clustered windows to speaker turns on the 20 ms frame grid of the VAD.

Each speech frame goes to the cluster whose centroid the windows covering it are closest to on
average (so a change of speaker inside a stretch of speech is placed between window centres, not
at a window edge), speech no window covers (a stretch too short for one) takes the speaker of
the nearest labelled frame, and a run shorter than ``min_turn_s`` inside a stretch of speech takes
the speaker of its longer neighbour. Turns are read off the result.
"""
from __future__ import annotations

import numpy as np

from inference.diarization.windows import WindowPlan, covering_scores


def runs(values: np.ndarray) -> list[tuple[int, int, int]]:
    """``[(start, end, value), ...]`` maximal runs of equal values of an int array (end exclusive)."""
    if len(values) == 0:
        return []
    edges = np.flatnonzero(np.diff(values)) + 1
    starts = np.concatenate(([0], edges))
    ends = np.concatenate((edges, [len(values)]))
    return [(int(s), int(e), int(values[s])) for s, e in zip(starts, ends)]


def frame_labels(plan: WindowPlan, window_scores: np.ndarray, speech: np.ndarray, frame_s: float) -> np.ndarray:
    """Cluster of each frame, -1 outside speech: ``(N, K) scores of windows, (F,) speech mask -> (F,)``."""
    frames = len(speech)
    scores = covering_scores(plan, window_scores, frames, frame_s)
    covered = speech & np.all(np.isfinite(scores), axis=1)
    labels = np.full(frames, -1, dtype=np.int64)
    if not covered.any():
        return labels
    labels[covered] = np.argmax(scores[covered], axis=1)
    orphans = np.flatnonzero(speech & ~covered)
    if orphans.size:
        known = np.flatnonzero(covered)
        right = np.clip(np.searchsorted(known, orphans), 0, known.size - 1)
        left = np.clip(right - 1, 0, known.size - 1)
        nearest = np.where(np.abs(known[left] - orphans) <= np.abs(known[right] - orphans), known[left], known[right])
        labels[orphans] = labels[nearest]
    return labels


def smooth_islands(labels: np.ndarray, min_frames: int) -> np.ndarray:
    """Within each stretch of speech (labels >= 0), runs shorter than ``min_frames`` take the
    speaker of their longer neighbour in that stretch, shortest run first. A whole stretch is kept."""
    out = labels.copy()
    for start, end, value in runs((labels >= 0).astype(np.int64)):
        if value == 0:
            continue
        while True:
            pieces = runs(out[start:end])
            if len(pieces) < 2:
                break
            lengths = [e - s for s, e, _ in pieces]
            shortest = int(np.argmin(lengths))
            if lengths[shortest] >= min_frames:
                break
            neighbours = [i for i in (shortest - 1, shortest + 1) if 0 <= i < len(pieces)]
            target = max(neighbours, key=lambda i: lengths[i])
            s, e, _ = pieces[shortest]
            out[start + s : start + e] = pieces[target][2]
    return out


def segments_of(labels: np.ndarray, frame_s: float) -> list[tuple[float, float, int]]:
    """``[(start_s, end_s, cluster), ...]`` in time order: the runs of one cluster, pauses excluded."""
    return [(round(s * frame_s, 3), round(e * frame_s, 3), v) for s, e, v in runs(labels) if v >= 0]


def turns_per_cluster(segments: list[tuple[float, float, int]], count: int) -> np.ndarray:
    """How many turns each cluster takes: a turn ends when another cluster speaks (pauses do not end it)."""
    turns = np.zeros(count, dtype=np.int64)
    previous = None
    for _, _, cluster in segments:
        if cluster != previous:
            turns[cluster] += 1
        previous = cluster
    return turns

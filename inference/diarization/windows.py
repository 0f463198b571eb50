"""Where the windows of a diarization lie, and their features.

Speech is cut into short windows inside each stretch the VAD found (a window never straddles a
pause: a pause is where turns most often change). Every 20 ms VAD frame of speech belongs to
the window whose centre is nearest (its *owner*), which is how windows are weighted by speech.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from inference.config import DiarizationConfig


@dataclass(frozen=True)
class WindowPlan:
    """The windows of one recording.

    Attributes
    ----------
    bounds
        ``(N, 2)`` float64, start and end of each window in seconds.
    region
        ``(N,)`` int, the index of the speech stretch each window lies in.
    regions
        ``[(start_s, end_s), ...]`` the speech stretches, in time order.
    """

    bounds: np.ndarray
    region: np.ndarray
    regions: tuple[tuple[float, float], ...]

    def __len__(self) -> int:
        return int(self.bounds.shape[0])


def plan_windows(regions: Sequence[tuple[float, float]], config: DiarizationConfig) -> WindowPlan:
    """Windows of ``config.window_s`` every ``config.hop_s`` inside each speech stretch.

    A stretch longer than a window gets windows from its start, the last one ending at its end; a
    stretch between ``min_window_s`` and ``window_s`` is one window; a shorter one gets none.
    """
    bounds: list[tuple[float, float]] = []
    owner: list[int] = []
    for index, (start, end) in enumerate(regions):
        length = end - start
        if length < config.min_window_s:
            continue
        if length <= config.window_s:
            bounds.append((start, end))
            owner.append(index)
            continue
        count = int(np.ceil((length - config.window_s) / config.hop_s)) + 1
        starts = start + np.minimum(np.arange(count) * config.hop_s, length - config.window_s)
        bounds.extend((float(s), float(s) + config.window_s) for s in starts)
        owner.extend([index] * count)
    return WindowPlan(bounds=np.asarray(bounds, dtype=np.float64).reshape(-1, 2),
                      region=np.asarray(owner, dtype=np.int64), regions=tuple(regions))


def windows_between_changes(plan: WindowPlan, labels: np.ndarray, window_s: float, hop_s: float) -> WindowPlan:
    """Windows of ``window_s`` every ``hop_s`` strictly between each two neighbouring windows of one
    stretch that ``labels`` puts in different clusters: where a change of speaker lies.

    ``labels``: ``(N,)`` cluster of each window of ``plan``. With ``plan`` laid out every ``k * hop_s``,
    these are exactly the windows a layout every ``hop_s`` would add there (the same starts). They
    end inside the stretch: each starts before the next window of ``plan``, which ends in it.
    """
    bounds: list[tuple[float, float]] = []
    owner: list[int] = []
    for i in range(len(plan) - 1):
        if plan.region[i] != plan.region[i + 1] or labels[i] == labels[i + 1]:
            continue
        start, following = plan.bounds[i, 0], plan.bounds[i + 1, 0]
        k = 1
        while start + k * hop_s < following - 1e-9:
            bounds.append((float(start + k * hop_s), float(start + k * hop_s + window_s)))
            owner.append(int(plan.region[i]))
            k += 1
    return WindowPlan(bounds=np.asarray(bounds, dtype=np.float64).reshape(-1, 2),
                      region=np.asarray(owner, dtype=np.int64), regions=plan.regions)


def joined(first: WindowPlan, second: WindowPlan) -> WindowPlan:
    """The windows of two plans of one recording (``first``'s, then ``second``'s)."""
    return WindowPlan(bounds=np.concatenate([first.bounds, second.bounds]),
                      region=np.concatenate([first.region, second.region]), regions=first.regions)


def plan_features(samples: np.ndarray, plan: WindowPlan, rate: int,
                  features_of: Callable[[np.ndarray], np.ndarray]) -> list[np.ndarray]:
    """The network's input for each window: ``features_of`` each window's samples (``rate`` Hz)."""
    return [features_of(samples[int(round(start * rate)) : int(round(end * rate))]) for start, end in plan.bounds]


def frame_owners(plan: WindowPlan, frames: int, frame_s: float) -> np.ndarray:
    """For each of ``frames`` frames, the window whose centre is nearest among those covering it, or -1.

    ``(frames,)`` int. Frames outside every window (pauses, stretches too short for a window) are -1.
    """
    owners = np.full(frames, -1, dtype=np.int64)
    best = np.full(frames, np.inf)
    centres = (np.arange(frames) + 0.5) * frame_s
    for index, (start, end) in enumerate(plan.bounds):
        lo, hi = int(np.floor(start / frame_s)), int(np.ceil(end / frame_s))
        lo, hi = max(lo, 0), min(hi, frames)
        distance = np.abs(centres[lo:hi] - (start + end) / 2)
        closer = distance < best[lo:hi]
        owners[lo:hi][closer] = index
        best[lo:hi][closer] = distance[closer]
    return owners


def covering_scores(plan: WindowPlan, window_scores: np.ndarray, frames: int, frame_s: float) -> np.ndarray:
    """Per frame, the mean of ``window_scores`` over the windows covering it: ``(N, K) -> (frames, K)``.

    Frames no window covers are NaN.
    """
    total = np.zeros((frames, window_scores.shape[1]))
    count = np.zeros(frames)
    for index, (start, end) in enumerate(plan.bounds):
        lo, hi = max(int(np.floor(start / frame_s)), 0), min(int(np.ceil(end / frame_s)), frames)
        total[lo:hi] += window_scores[index]
        count[lo:hi] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count[:, None]

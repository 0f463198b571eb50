"""Guards against inputs that reach the network without carrying a voice.

Two checks, one on each side of the network:

* **Impulse dominance** (before): the filterbank floors every value at ``max - 80 dB`` over the
  whole utterance, so a few frames far louder than the rest (a spike, a click, a burst) push
  the floor over the speech and wipe it out; every such recording then embeds to nearly the
  same vector. The dominance is the loudest frame's peak (dB) minus the 99th percentile of the
  frames' peaks: at most 5 dB on every real recording we have, 70 dB for a single float
  sample of 1e4 in speech.
* **Collapse point** (after): features that carry nothing (all at the floor, or constant, so
  zero after mean normalisation) embed to one fixed vector, the network's collapse point.
  Anything whose embedding sits near it would match every other such input; real speech stays
  below a cosine of 0.17 from it.

Both raise :class:`~inference.errors.DegenerateAudioError` (``audio_degenerate``), so the
service refuses the recording instead of storing or comparing a vector that is nobody's voice.
"""
from __future__ import annotations

import numpy as np

from inference.config import GuardConfig
from inference.errors import DegenerateAudioError


def impulse_dominance_db(fbank: np.ndarray) -> float:
    """How far (dB) the loudest frame stands above the 99th percentile of frames: ``(T, F) -> float``."""
    if fbank.shape[0] == 0:
        return 0.0
    peaks = fbank.max(axis=1)
    return float(peaks.max() - np.percentile(peaks, 99))


def check_features(fbank: np.ndarray, config: GuardConfig) -> None:
    """Refuse log-mel features ``(T, F)`` (before normalisation) dominated by a few frames."""
    if not np.isfinite(fbank).all():
        raise DegenerateAudioError("the recording's features are not finite numbers")
    dominance = impulse_dominance_db(fbank)
    if dominance > config.max_impulse_dominance_db:
        raise DegenerateAudioError(
            "a few loud clicks or impulses dominate the recording and mask its speech",
            impulse_dominance_db=round(dominance, 1), max_impulse_dominance_db=config.max_impulse_dominance_db)


def check_embedding(vector: np.ndarray, collapse_point: np.ndarray, config: GuardConfig) -> None:
    """Refuse a unit embedding ``(D,)`` that sits at the network's collapse point (unit ``(D,)``)."""
    similarity = float(np.dot(vector, collapse_point))
    if similarity > config.max_collapse_cosine:
        raise DegenerateAudioError(
            "the recording does not carry a voice the model can characterise",
            collapse_cosine=round(similarity, 3), max_collapse_cosine=config.max_collapse_cosine)

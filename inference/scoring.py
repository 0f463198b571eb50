"""Scores between voiceprints: cosine on L2-normalised vectors, in [-1, 1]."""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

_EPS = 1e-12


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Return ``x`` (shape ``(D,)`` or ``(N, D)``) scaled to unit L2 norm along the last axis, float32."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norm, _EPS)).astype(np.float32)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors of shape ``(D,)``, clipped to [-1, 1]."""
    value = float(np.dot(l2_normalise(a), l2_normalise(b)))
    return max(-1.0, min(1.0, value))


def cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise cosine of rows: ``(N, D) x (M, D) -> (N, M)``."""
    return np.clip(l2_normalise(a) @ l2_normalise(b).T, -1.0, 1.0)


def average_embeddings(vectors: Iterable[np.ndarray]) -> np.ndarray:
    """Enrollment averaging: mean of the L2-normalised embeddings, re-normalised. ``(N, D) -> (D,)``."""
    stacked = np.stack([l2_normalise(v) for v in vectors])
    if stacked.shape[0] == 0:
        raise ValueError("average_embeddings needs at least one vector")
    return l2_normalise(stacked.mean(axis=0))

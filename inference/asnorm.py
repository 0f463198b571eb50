"""Adaptive symmetric score normalisation (AS-norm).

A raw cosine between two voiceprints mixes who the speakers are with how "typical" each
recording is: some voices (and some channels) sit close to many others and score high against
everybody. AS-norm corrects for that with a cohort of impostor voiceprints. For a trial
``s = cos(e, t)`` it takes, for the enrollment vector ``e`` and for the test vector ``t``
separately, the ``top_k`` highest cosines against the cohort, and standardises ``s`` with
their mean and standard deviation (AS-norm1 in Matejka et al., "Analysis of score
normalization in multilingual speaker recognition", Interspeech 2017; Cumani et al. 2011)::

    mu_e, sd_e = mean, std of the top_k values of cos(e, cohort)
    mu_t, sd_t = mean, std of the top_k values of cos(t, cohort)
    z = 0.5 * ((s - mu_e) / sd_e + (s - mu_t) / sd_t)

**A normalised score is not a cosine.** It is unbounded, measured roughly in standard
deviations above the closest impostors, and its scale depends on the cohort and on
``top_k``. Thresholds for it are separate, calibrated values (see ``docs/accuracy.md``); never
compare a normalised score with a cosine threshold. Per-vector statistics depend only on the
vector, the cohort and ``top_k``, so a service can compute them once per enrolled voiceprint
(:meth:`ASNorm.stats`) and store them beside it, keyed by :attr:`ASNorm.key`: a different
cohort or ``top_k`` invalidates them.
"""
from __future__ import annotations

import hashlib
import logging

import numpy as np

from inference.scoring import l2_normalise

logger = logging.getLogger(__name__)

# Floor for the cohort standard deviation: guards the division for degenerate cohorts
# (e.g. all top-k cohort scores identical), far below any value seen on real voiceprints.
_MIN_SD = 1e-6
# Rows of test vectors scored against the cohort at once: (chunk, M) float32 stays small.
_CHUNK = 1024


def as_norm_scores(
    scores: np.ndarray | float,
    enroll_mu: np.ndarray | float,
    enroll_sd: np.ndarray | float,
    test_mu: np.ndarray | float,
    test_sd: np.ndarray | float,
) -> np.ndarray:
    """Apply AS-norm to raw cosines given precomputed cohort statistics.

    All arguments broadcast against each other (numpy rules), so one test utterance can be
    normalised against ``K`` enrolled voiceprints with ``scores`` ``(K,)``, ``enroll_mu`` /
    ``enroll_sd`` ``(K,)`` and scalar ``test_mu`` / ``test_sd``.

    Returns
    -------
    np.ndarray
        Normalised scores, float64, of the broadcast shape. Not cosines: see the module docstring.
    """
    s = np.asarray(scores, dtype=np.float64)
    sd_e = np.maximum(np.asarray(enroll_sd, dtype=np.float64), _MIN_SD)
    sd_t = np.maximum(np.asarray(test_sd, dtype=np.float64), _MIN_SD)
    return 0.5 * (
        (s - np.asarray(enroll_mu, dtype=np.float64)) / sd_e + (s - np.asarray(test_mu, dtype=np.float64)) / sd_t
    )


class ASNorm:
    """Adaptive symmetric normalisation against a fixed cohort of impostor voiceprints.

    Parameters
    ----------
    cohort
        ``(M, D)`` cohort vectors (rows are L2-normalised here). The shipped cohort is the
        7205 class directions of the model's AAM-softmax classifier (``inference/cohort.py``).
    top_k
        How many of the highest cohort scores of each vector form its statistics,
        ``2 <= top_k <= M``.
    """

    def __init__(self, cohort: np.ndarray, top_k: int = 200) -> None:
        array = np.asarray(cohort, dtype=np.float32)
        if array.ndim != 2 or array.shape[0] < 2:
            raise ValueError(f"cohort must be a (M, D) array with M >= 2, got shape {array.shape}")
        if not np.all(np.isfinite(array)):
            raise ValueError("cohort contains NaN or infinite values")
        if not 2 <= int(top_k) <= array.shape[0]:
            raise ValueError(f"top_k must be between 2 and the cohort size {array.shape[0]}, got {top_k}")
        self._cohort = np.ascontiguousarray(l2_normalise(array))
        self.top_k = int(top_k)
        digest = hashlib.sha256(self._cohort.tobytes()).hexdigest()
        self._key = f"{digest[:16]}-m{self._cohort.shape[0]}-k{self.top_k}"

    @property
    def cohort_size(self) -> int:
        """Number of cohort vectors ``M``."""
        return int(self._cohort.shape[0])

    @property
    def dim(self) -> int:
        """Embedding size ``D``."""
        return int(self._cohort.shape[1])

    @property
    def key(self) -> str:
        """Identifies the normalisation (cohort content hash, size, ``top_k``).

        Store it beside precomputed statistics; when it changes, recompute them and
        recalibrate the AS-norm thresholds.
        """
        return self._key

    def stats_many(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cohort statistics of many vectors.

        Parameters
        ----------
        vectors
            ``(N, D)`` embeddings (normalised here).

        Returns
        -------
        (mu, sd)
            Two ``(N,)`` float64 arrays: mean and (population) standard deviation of the
            ``top_k`` highest cosines of each vector against the cohort.
        """
        x = np.asarray(vectors, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected vectors of shape (N, {self.dim}), got {x.shape}")
        x = l2_normalise(x)
        mu = np.empty(x.shape[0], dtype=np.float64)
        sd = np.empty(x.shape[0], dtype=np.float64)
        kth = self.cohort_size - self.top_k
        for start in range(0, x.shape[0], _CHUNK):
            scores = x[start : start + _CHUNK] @ self._cohort.T  # (chunk, M)
            top = np.partition(scores, kth, axis=1)[:, kth:].astype(np.float64)  # (chunk, top_k)
            mu[start : start + _CHUNK] = top.mean(axis=1)
            sd[start : start + _CHUNK] = top.std(axis=1)
        return mu, sd

    def stats(self, vector: np.ndarray) -> tuple[float, float]:
        """Cohort statistics ``(mu, sd)`` of one ``(D,)`` vector; cacheable per voiceprint."""
        v = np.asarray(vector, dtype=np.float32)
        if v.ndim != 1:
            raise ValueError(f"expected a vector of shape ({self.dim},), got {v.shape}")
        mu, sd = self.stats_many(v[None, :])
        return float(mu[0]), float(sd[0])

    def normalise(
        self,
        score: float,
        enroll_vec: np.ndarray | None = None,
        test_vec: np.ndarray | None = None,
        *,
        enroll_stats: tuple[float, float] | None = None,
        test_stats: tuple[float, float] | None = None,
    ) -> float:
        """AS-norm of one raw cosine ``score = cos(enroll_vec, test_vec)``.

        Either side may be given as a ``(D,)`` vector or as precomputed ``(mu, sd)`` stats
        (stats win when both are given).

        Returns
        -------
        float
            The normalised score, on the AS-norm scale (not a cosine).
        """
        mu_e, sd_e = enroll_stats if enroll_stats is not None else self.stats(_required(enroll_vec, "enroll_vec"))
        mu_t, sd_t = test_stats if test_stats is not None else self.stats(_required(test_vec, "test_vec"))
        return float(as_norm_scores(score, mu_e, sd_e, mu_t, sd_t))

    def normalise_many(
        self,
        scores: np.ndarray,
        enroll_vecs: np.ndarray | None = None,
        test_vecs: np.ndarray | None = None,
        *,
        enroll_stats: tuple[np.ndarray, np.ndarray] | None = None,
        test_stats: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray:
        """AS-norm of ``N`` trials at once.

        Parameters
        ----------
        scores
            ``(N,)`` raw cosines, ``scores[i] = cos(enroll_vecs[i], test_vecs[i])``.
        enroll_vecs, test_vecs
            ``(N, D)`` vectors, or ``None`` when the matching ``*_stats`` are given.
        enroll_stats, test_stats
            ``(mu, sd)`` pairs of ``(N,)`` arrays (or anything that broadcasts to ``(N,)``).

        Returns
        -------
        np.ndarray
            ``(N,)`` float64 normalised scores.
        """
        s = np.asarray(scores, dtype=np.float64)
        if s.ndim != 1:
            raise ValueError(f"scores must be 1-D, got shape {s.shape}")
        mu_e, sd_e = (
            enroll_stats if enroll_stats is not None else self.stats_many(_required(enroll_vecs, "enroll_vecs"))
        )
        mu_t, sd_t = test_stats if test_stats is not None else self.stats_many(_required(test_vecs, "test_vecs"))
        return np.broadcast_to(as_norm_scores(s, mu_e, sd_e, mu_t, sd_t), s.shape).copy()


def _required(value: np.ndarray | None, name: str) -> np.ndarray:
    if value is None:
        raise ValueError(f"{name} is required when its precomputed stats are not given")
    return value

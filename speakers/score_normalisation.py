"""AS-norm for the service: the cohort, loaded once per process, and cohort statistics of voiceprints.

The cohort (``VOICEPRINT_ASNORM_COHORT``, by default the ``cohort.npy`` that ``prepare_model``
writes beside the model: the 7205 training-speaker directions of the pretrained classifier)
needs no user data. It is read lazily at the first normalised decision, after any fork.

A voiceprint's cohort statistics depend only on the voiceprint, the cohort and top-k, so they
are cached in this process's memory, keyed by the speaker and a digest of the voiceprint's
ciphertext (a new voiceprint has a new ciphertext, so a stale entry can never be used). They
are never written to disk: together with the public cohort they reveal a little about the
voiceprint.
"""
from __future__ import annotations

import hashlib
import logging
import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
from django.conf import settings

from inference.asnorm import ASNorm
from inference.cohort import load_cohort
from inference.errors import ModelError

from .exceptions import NormalisationUnavailable

logger = logging.getLogger(__name__)

# Voiceprint statistics kept per process (two floats each; the oldest go first).
STATS_CACHE_SIZE = 100_000

Stats = tuple[float, float]


class _Normaliser:
    def __init__(self, asnorm: ASNorm) -> None:
        self.asnorm = asnorm
        self.lock = threading.Lock()
        self.cache: OrderedDict[tuple[uuid.UUID, str], Stats] = OrderedDict()


_lock = threading.Lock()
_normaliser: _Normaliser | None = None
_source: tuple[str, int] | None = None


def _forget_after_fork() -> None:
    global _lock, _normaliser, _source
    _lock = threading.Lock()
    _normaliser = None
    _source = None


os.register_at_fork(after_in_child=_forget_after_fork)


def _get() -> _Normaliser:
    global _normaliser, _source
    wanted = (str(settings.VOICEPRINT_ASNORM_COHORT), settings.VOICEPRINT_ASNORM_TOP_K)
    with _lock:
        if _normaliser is None or _source != wanted:
            try:
                asnorm = ASNorm(load_cohort(wanted[0]), top_k=wanted[1])
            except ModelError as exc:
                raise NormalisationUnavailable(cohort=wanted[0], cause=exc.code, reason=exc.message) from exc
            except ValueError as exc:  # e.g. top_k larger than the cohort
                raise NormalisationUnavailable(cohort=wanted[0], reason=str(exc)) from exc
            _normaliser, _source = _Normaliser(asnorm), wanted
            logger.info("AS-norm cohort %s loaded: %d voiceprints, top-k %d (%s)", wanted[0],
                        asnorm.cohort_size, asnorm.top_k, asnorm.key)
        return _normaliser


def asnorm() -> ASNorm:
    """This process's AS-norm. Raises NormalisationUnavailable if the cohort cannot be loaded."""
    return _get().asnorm


def asnorm_key() -> str | None:
    """The key (cohort digest, size, top-k) of the normalisation, or None when it cannot load."""
    try:
        return _get().asnorm.key
    except NormalisationUnavailable:
        return None


def vector_stats(vector: np.ndarray) -> Stats:
    """Cohort statistics ``(mu, sd)`` of a ``(192,)`` probe vector (not cached)."""
    return asnorm().stats(vector)


def voiceprint_digest(ciphertext: bytes) -> str:
    """Identifies one version of a stored voiceprint without revealing anything about it."""
    return hashlib.blake2b(bytes(ciphertext), digest_size=12).hexdigest()


def voiceprint_stats(*, speaker_id: uuid.UUID, digest: str, vector: np.ndarray | None = None,
                     load: Callable[[], np.ndarray] | None = None) -> Stats:
    """Cohort statistics of a speaker's voiceprint, from the cache or computed now.

    ``vector`` is the decrypted voiceprint, or ``load()`` returns it; ``load`` is only called on
    a cache miss, so a hit never decrypts anything.
    """
    normaliser = _get()
    key = (speaker_id, digest)
    with normaliser.lock:
        stats = normaliser.cache.get(key)
        if stats is not None:
            normaliser.cache.move_to_end(key)
            return stats
    stats = normaliser.asnorm.stats(vector if vector is not None else load())
    with normaliser.lock:
        normaliser.cache[key] = stats
        while len(normaliser.cache) > STATS_CACHE_SIZE:
            normaliser.cache.popitem(last=False)
    return stats


def cached_voiceprints() -> int:
    """How many voiceprint statistics this process holds (for tests and diagnostics)."""
    normaliser = _normaliser
    return 0 if normaliser is None else len(normaliser.cache)

"""AS-norm for the service: the process's cohort, loaded once (after any fork), and statistics of vectors.

The cohort (``VOICEPRINT_ASNORM_COHORT``, by default the ``cohort.npy`` that ``prepare_model``
writes beside the model: the 7205 training-speaker directions of the pretrained classifier)
needs no user data. Statistics of enrolled voiceprints live beside each vector in the search
index (:mod:`speakers.search.index`), invalidated by the same change log; they are never
written to disk: together with the public cohort they reveal a little about the voiceprint.
"""
from __future__ import annotations

import logging

import numpy as np
from django.conf import settings

from inference.asnorm import ASNorm
from inference.cohort import load_cohort
from inference.errors import ModelError

from ..exceptions import NormalisationUnavailable
from .process_local import ProcessLocal

logger = logging.getLogger(__name__)

Stats = tuple[float, float]


class _Loaded:
    """The cohort loaded for one (path, top-k); reloaded when the settings name another."""

    def __init__(self) -> None:
        self.source: tuple[str, int] | None = None
        self.asnorm: ASNorm | None = None


_loaded: ProcessLocal[_Loaded] = ProcessLocal(_Loaded)


def asnorm() -> ASNorm:
    """This process's AS-norm. Raises NormalisationUnavailable if the cohort cannot be loaded."""
    if len(settings.VOICEPRINT_MODELS) > 1:
        raise NormalisationUnavailable("Score normalisation has no cohort for the fused models (ECAPA and CAM++): "
                                       "ask without asnorm, or run with VOICEPRINT_MODELS=ecapa.",
                                       models=",".join(settings.VOICEPRINT_MODELS))
    loaded = _loaded.get()
    wanted = (str(settings.VOICEPRINT_ASNORM_COHORT), settings.VOICEPRINT_ASNORM_TOP_K)
    if loaded.asnorm is None or loaded.source != wanted:
        try:
            normaliser = ASNorm(load_cohort(wanted[0]), top_k=wanted[1])
        except ModelError as exc:
            raise NormalisationUnavailable(cohort=wanted[0], cause=exc.code, reason=exc.message) from exc
        except ValueError as exc:  # e.g. top_k larger than the cohort
            raise NormalisationUnavailable(cohort=wanted[0], reason=str(exc)) from exc
        loaded.asnorm, loaded.source = normaliser, wanted
        logger.info("AS-norm cohort %s loaded: %d voiceprints, top-k %d (%s)", wanted[0],
                    normaliser.cohort_size, normaliser.top_k, normaliser.key)
    return loaded.asnorm


def asnorm_key() -> str | None:
    """The key (cohort digest, size, top-k) of the normalisation, or None when it cannot load."""
    try:
        return asnorm().key
    except NormalisationUnavailable:
        return None


def vector_stats(vector: np.ndarray) -> Stats:
    """Cohort statistics ``(mu, sd)`` of one ``(192,)`` vector (a probe, or a voiceprint being verified)."""
    return asnorm().stats(vector)

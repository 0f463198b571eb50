"""The index protocol: where a 1:N search happens, and how every process keeps its index in step.

The database is the source of truth; the search index is derived state, rebuilt from it after
start (and after any fork) and never written to disk. Several server processes agree through
a change log in the database rather than a message bus. Both sides of the protocol are here:

* **writer** (:func:`index_change_record`): every service that changes a voiceprint bumps
  ``IndexState.generation`` (under a row lock, so generations commit in order) and appends
  ``IndexChange(generation, speaker_id)`` in the same transaction as the change itself; every
  hundredth change prunes the log down to ``VOICEPRINT_INDEX_LOG_KEEP`` rows;
* **reader** (:class:`VoiceprintIndex`): before each search a process reads the current
  generation (one small query); if it moved, it re-reads the voiceprints of the speakers named in
  the log since the generation it last saw, so an enrollment or delete made by any worker is seen
  by every other one; if the log no longer continues from where the process stopped (pruned,
  restored backup, tests rolling back), or the model version changed, it rebuilds from scratch.

Only complete, readable voiceprints (net speech >= VOICEPRINT_ENROLL_TARGET_SPEECH_S) of the
loaded model version are indexed: an incomplete voiceprint is never a match, nor anyone's
runner-up. Each entry may carry its AS-norm cohort statistics, computed at the first normalised
search that needs them and dropped with the entry when the change log names its speaker.

The index itself is :mod:`inference.vector_index`, keyed by the speaker's UUID, chosen by
``VOICEPRINT_INDEX_BACKEND``: ``auto`` (exact flat search below
:data:`inference.vector_index.APPROXIMATE_FROM` voiceprints, IVF from there), ``flat`` or ``ivf``
in each process; or ``milvus``, one collection shared by every process on every machine, which
the change log feeds as an outbox (:mod:`.search_tier`): a process then keeps no vectors, only
the AS-norm statistics it computed. An update or delete touches one row whatever the size
(docs/scaling.md).
"""
from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from django.conf import settings
from django.db import transaction

from inference.asnorm import ASNorm
from inference.vector_index import PartitionedIndex
from inference.vector_index.base import BackendUnavailable

from ..exceptions import SearchUnavailable
from ..models import IndexChange, IndexState
from ..runtime import inference_owner
from ..runtime.process_local import ProcessLocal
from .rows import batches, changes_since, current_state, partition_sizes, voiceprints, write_current
from .shared_tier import SharedTier, open_shared_tier

if TYPE_CHECKING:  # pymilvus is imported only when the shared tier is used
    from inference.vector_index.milvus import MilvusIndex

logger = logging.getLogger(__name__)

Stats = tuple[float, float]
# Changes between two prunings of the log.
_PRUNE_EVERY = 100
# Backends whose index lives outside the process, shared by every worker (fed by the outbox).
SHARED_BACKENDS = ("milvus",)


# --- writer -------------------------------------------------------------------------------------

def index_change_record(*, speaker_id: uuid.UUID) -> None:
    """Log a voiceprint change; call last in the writing transaction (it holds the state row lock)."""
    state, _ = IndexState.objects.select_for_update().get_or_create(pk=1)
    state.generation += 1
    state.token = uuid.uuid4().hex
    state.save(update_fields=["generation", "token"])
    IndexChange.objects.create(generation=state.generation, token=state.token, speaker_id=speaker_id)
    if state.generation % _PRUNE_EVERY == 0:
        IndexChange.objects.filter(generation__lte=state.generation - settings.VOICEPRINT_INDEX_LOG_KEEP).delete()


def index_update_after_commit() -> None:
    """After the writing transaction commits, bring this process's index up to date (best effort)."""
    transaction.on_commit(lambda: voiceprint_index().sync_if_built())


# --- reader -------------------------------------------------------------------------------------

class VoiceprintIndex:
    """This process's search index of voiceprints, kept in step with the database."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._index: PartitionedIndex | MilvusIndex | None = None
        self._model_version: str | None = None
        self._required_s: float | None = None
        self._backend: tuple[str, ...] = ()
        self._tier: SharedTier | None = None
        self._generation = -1
        self._token = ""
        self._stats: dict[uuid.UUID, Stats] = {}
        self._stats_key = ""

    # --- public ---------------------------------------------------------------------------

    def sync(self, model_version: str | None = None) -> None:
        """Bring the index of ``model_version`` (default: the loaded engine's; loads the model if needed) up to date
        with the database."""
        model_version = model_version or inference_owner.model_version()
        with self._lock:
            self._sync_locked(model_version)

    def sync_if_built(self) -> None:
        """After a local write: catch up now, but only if this process already has an index.

        Best effort: the write is committed already, and the next search syncs anyway.
        """
        if self._index is None:
            return
        try:
            self.sync()
        except Exception:  # noqa: BLE001 - never turn a committed write into an error response
            logger.exception("index catch-up after a write failed; the next search retries")

    def search(self, vector: np.ndarray, k: int, *, model_version: str,
               tenant: uuid.UUID) -> list[tuple[uuid.UUID, float]]:
        """The tenant's top-k speakers by cosine, best first, after catching up with the database."""
        with self._lock:
            try:
                self._sync_locked(model_version)
                return self._index.search(vector, k, partition=tenant)
            except BackendUnavailable as exc:
                logger.error("voiceprint search failed: %s", exc)
                raise SearchUnavailable() from exc

    def asnorm_stats(self, speaker_ids: Sequence[uuid.UUID], normaliser: ASNorm) -> list[Stats | None]:
        """AS-norm cohort statistics of these indexed voiceprints (None for one no longer indexed).

        Computed at the first use and kept beside the entry until the change log names its
        speaker again (or another cohort is asked for).
        """
        with self._lock:
            if self._stats_key != normaliser.key:
                self._stats, self._stats_key = {}, normaliser.key
            missing = {s for s in speaker_ids if s not in self._stats} if self._index is not None else set()
            if missing:  # the index keeps no copy to read back: the rows are decrypted again (a shortlist)
                found = {s: v for s, _, v in voiceprints(self._model_version, self._required_s, missing)}
                if found:
                    mu, sd = normaliser.stats_many(np.stack(list(found.values())))
                    self._stats.update({s: (float(m), float(d)) for s, m, d in zip(found, mu, sd)})
            return [self._stats.get(s) for s in speaker_ids]

    @property
    def structure(self) -> str:
        """The index structure in use (``FlatIndex``, ``IVFIndex``, ``MilvusIndex``), or "" before the first build."""
        if self._index is None:
            return ""
        return getattr(self._index, "structure", "") or type(self._index).__name__

    def size(self, tenant: uuid.UUID) -> int:
        """How many voiceprints of ``tenant`` a search sees (the gallery of its identifications)."""
        with self._lock:
            if self._index is None:
                return 0
            try:
                return self._index.size(tenant)
            except BackendUnavailable as exc:
                logger.error("voiceprint search failed: %s", exc)
                raise SearchUnavailable() from exc

    def cached_asnorm_stats(self) -> int:
        """How many voiceprints' AS-norm statistics this process holds (for tests and diagnostics)."""
        with self._lock:
            return len(self._stats)

    def __contains__(self, speaker_id: object) -> bool:
        with self._lock:
            return self._index is not None and speaker_id in self._index

    def __len__(self) -> int:
        with self._lock:
            return 0 if self._index is None else len(self._index)

    # --- internals --------------------------------------------------------------------------

    def _sync_locked(self, model_version: str) -> None:
        if (self._index is None or model_version != self._model_version
                or settings.VOICEPRINT_ENROLL_TARGET_SPEECH_S != self._required_s
                or _backend_settings() != self._backend):
            self._open(model_version)
            return
        generation, token = current_state()
        if (generation, token) == (self._generation, self._token):
            return
        if self._tier is not None:  # shared: bring the collection up to date, then drop stale statistics
            self._tier.catch_up()
            if self._stats:
                changes = changes_since(self._generation, self._token)
                if changes is None:
                    self._stats.clear()
                for _, _, speaker_id in changes or ():
                    self._stats.pop(speaker_id, None)
            self._generation, self._token = generation, token
            return
        changes = changes_since(self._generation, self._token)
        if changes:
            named = {speaker_id for _, _, speaker_id in changes}
            for speaker_id in named:
                self._stats.pop(speaker_id, None)
            write_current(self._index, self._model_version, self._required_s, named)
            self._generation, self._token = changes[-1][0], changes[-1][1]
            return
        self._rebuild(model_version)

    def _open(self, model_version: str) -> None:
        self._tier = None  # (a client is not closed: pymilvus shares its connection with other clients)
        self._stats.clear()
        self._model_version = model_version
        self._required_s = settings.VOICEPRINT_ENROLL_TARGET_SPEECH_S
        self._backend = _backend_settings()
        if settings.VOICEPRINT_INDEX_BACKEND not in SHARED_BACKENDS:
            self._rebuild(model_version)
            return
        generation, token = current_state()
        self._tier = open_shared_tier(model_version, self._required_s)
        self._tier.catch_up(check_size=True)
        self._index = self._tier.index
        self._generation, self._token = generation, token
        logger.info("voiceprint search on the shared tier %s: %d speakers, model %s",
                    self._tier.name, len(self._index), model_version)

    def _rebuild(self, model_version: str) -> None:
        # Read the generation first: a change committed after this read has a higher
        # generation, so the next sync re-applies it even if the rows below include it.
        generation, token = current_state()
        self._stats.clear()
        self._index = PartitionedIndex(settings.VOICEPRINT_INDEX_BACKEND,
                                       dim=inference_owner.vector_size(model_version),
                                       size_hints=partition_sizes(model_version, self._required_s))
        for ids, tenants, vectors in batches(voiceprints(model_version, self._required_s, None)):
            self._index.upsert(ids, vectors, tenants)
        self._generation, self._token = generation, token
        logger.info("voiceprint index rebuilt: %d speakers, model %s, generation %d, %s",
                    len(self._index), model_version, generation, self._index.structure or "empty")


def _backend_settings() -> tuple[str, ...]:
    """The settings that choose the index: a change of any of them opens another one."""
    if settings.VOICEPRINT_INDEX_BACKEND not in SHARED_BACKENDS:
        return (settings.VOICEPRINT_INDEX_BACKEND,)
    return (settings.VOICEPRINT_INDEX_BACKEND, settings.VOICEPRINT_MILVUS_URI, settings.VOICEPRINT_MILVUS_COLLECTION,
            settings.VOICEPRINT_MILVUS_INDEX)


_index: ProcessLocal[VoiceprintIndex] = ProcessLocal(VoiceprintIndex)


def voiceprint_index() -> VoiceprintIndex:
    """This process's index (built lazily at the first search or warm-up)."""
    return _index.get()


class _PartIndexes:
    """This process's indexes of :func:`part_index`, one per model version, made at their first use."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_version: dict[str, VoiceprintIndex] = {}


_part_indexes: ProcessLocal[_PartIndexes] = ProcessLocal(_PartIndexes)


def part_index(model_version: str) -> VoiceprintIndex:
    """This process's index of the complete voiceprints of ``model_version``, one network of the fused engine
    (:func:`~speakers.runtime.inference_owner.part_model_versions`: ECAPA's, for speakers enrolled before fusion
    was turned on): identify searches it beside :func:`voiceprint_index` with that network's part of the probe.
    Built lazily at the first search; the same change log keeps it in step (a speaker enrolled again under
    the fused engine leaves it)."""
    indexes = _part_indexes.get()
    with indexes.lock:
        return indexes.by_version.setdefault(model_version, VoiceprintIndex())

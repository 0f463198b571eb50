"""A search tier shared by every worker on every machine (Milvus), fed from the change log as an outbox.

The database stays the source of truth. A voiceprint write commits its row and its
``IndexChange`` in one transaction (:func:`speakers.search.index.index_change_record`); the
shared collection is derived from them:

* **catch-up** (:meth:`SharedTier.catch_up`): a process that finds the log ahead of the tier's
  cursor (``SearchTierCursor``) locks the cursor row, re-reads the current row of every speaker
  the log names since the cursor, upserts or removes it in the collection, and moves the cursor
  in the same transaction. Appliers queue on the lock, so two never interleave their writes.
* **exactly-once effect:** a worker that dies after the commit and before the vector write (or
  after the vector write and before the cursor moved) leaves the cursor where it was; the next
  process to search applies those changes, again from the rows' current state. Applying a change
  twice writes the same vector, or removes an absent one: the collection ends equal to the rows.
* **rebuild** (:meth:`SharedTier.rebuild`): when the log no longer continues from the cursor
  (pruned, restored backup), for a collection never built, or on ``manage.py rebuild_index``,
  every indexable row is upserted and every key the rows do not hold is removed. It holds no
  database lock (minutes at a million rows): a lease in the cursor row keeps other appliers
  out, and the holder applies what was committed meanwhile before it lets go.

Each model version (and enrollment speech target) has its own collection, so a model change
builds a new one from the rows of that version while the old one is left untouched.
"""
from __future__ import annotations

import hashlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from inference.vector_index import open_index

if TYPE_CHECKING:  # pymilvus is imported only when the shared tier is used
    from inference.vector_index.milvus import MilvusIndex

from ..models import SearchTierCursor
from ..runtime import inference_owner
from .rows import batches, changes_since, current_state, indexable, voiceprints, write_current

logger = logging.getLogger(__name__)

# A stored vector that differs from its row's by more than this (1 - cosine) is stale.
_STALE_BELOW_COSINE = 1.0 - 1e-5
_COMPARE_BATCH = 5_000
# A rebuild's lease: renewed after every batch of rows (50,000: well under a minute); a process
# that died holding it delays the next rebuild by at most this long.
_LEASE_S = 120
_LEASE_POLL_S = 0.5


def collection_name(model_version: str, required_s: float) -> str:
    """The collection of one model version and enrollment speech target (Milvus: letters, digits, _)."""
    # "|tenants": the layout with a partition (tenant) per row; collections of the layout before are left alone
    digest = hashlib.sha256(f"{model_version}|{required_s:.6f}|tenants".encode()).hexdigest()[:16]
    return f"{settings.VOICEPRINT_MILVUS_COLLECTION}_{digest}"


def open_shared_tier(model_version: str, required_s: float) -> SharedTier:
    """The configured shared collection for this model version (created if missing)."""
    from inference.vector_index.milvus import PRESETS

    index_params, search_params = PRESETS[settings.VOICEPRINT_MILVUS_INDEX]
    name = collection_name(model_version, required_s)
    index = open_index("milvus", uri=settings.VOICEPRINT_MILVUS_URI, token=settings.VOICEPRINT_MILVUS_TOKEN or "",
                       collection=name, dim=inference_owner.vector_size(model_version),
                       index_type=settings.VOICEPRINT_MILVUS_INDEX,
                       index_params=index_params, search_params=search_params,
                       timeout_s=settings.VOICEPRINT_MILVUS_TIMEOUT_S, partitioned=True)
    return SharedTier(index=index, name=name, model_version=model_version, required_s=required_s)


@dataclass
class TierDifference:
    """How a shared collection differs from the rows it is derived from."""

    rows: int = 0
    stored: int = 0
    missing: list[uuid.UUID] = field(default_factory=list)  # a row's voiceprint is not in the collection
    extra: list[uuid.UUID] = field(default_factory=list)    # the collection holds a key no row has
    stale: list[uuid.UUID] = field(default_factory=list)    # stored, with another vector than the row's

    @property
    def in_step(self) -> bool:
        return not (self.missing or self.extra or self.stale)


@dataclass
class SharedTier:
    index: MilvusIndex
    name: str
    model_version: str
    required_s: float

    def catch_up(self, *, check_size: bool = False) -> int:
        """Apply every change the log holds beyond the cursor; returns how many speakers were written.

        A few changes are applied inside one short transaction holding the cursor row. A full
        rebuild - when the log no longer continues from the cursor, for a collection never built,
        or (``check_size``, a process's first catch-up) for one holding another number of
        voiceprints than the rows while the cursor says it is complete - takes minutes at a
        million voiceprints, so it runs under a lease in the cursor row instead, holding no
        database lock: writers go on, other appliers leave the collection to the lease holder
        (searches meanwhile answer from the collection as it is), and the holder applies what
        was committed during the rebuild before it lets go.
        """
        written = 0
        while True:
            with transaction.atomic():
                cursor = self._lock_cursor()
                if _lease_active(cursor):
                    return written  # another process is rebuilding; it catches up before it lets go
                generation, token = current_state()
                if (cursor.generation, cursor.token) == (generation, token):
                    if not check_size or self._size_matches(generation, token):
                        return written
                    logger.warning("shared search tier %s holds %d voiceprints while the database has %d: "
                                   "rebuilding", self.name, len(self.index), self._rows())
                    changes = None
                else:
                    changes = changes_since(cursor.generation, cursor.token)
                if changes is not None:
                    named = {speaker_id for _, _, speaker_id in changes}
                    write_current(self.index, self.model_version, self.required_s, named)
                    written += len(named)
                    if changes:
                        cursor.generation, cursor.token = changes[-1][0], changes[-1][1]
                        cursor.save(update_fields=["generation", "token", "updated_at"])
                    return written
                lease = self._take_lease(cursor)
            written += self._rebuild_leased(lease)
            check_size = False  # the loop now applies what was committed meanwhile

    def rebuild(self) -> int:
        """Make the collection equal to the rows (upsert every one, remove the rest); returns rows written.

        Waits for a rebuild another process holds the lease for (or for its lease to lapse).
        """
        while True:
            with transaction.atomic():
                cursor = self._lock_cursor()
                lease = None if _lease_active(cursor) else self._take_lease(cursor)
            if lease is not None:
                written = self._rebuild_leased(lease)
                return written + self.catch_up()
            time.sleep(_LEASE_POLL_S)

    def compare(self) -> TierDifference:
        """What differs between the collection and the rows (reads both; changes nothing)."""
        difference = TierDifference()
        seen: set[uuid.UUID] = set()
        for ids, _, vectors in batches(voiceprints(self.model_version, self.required_s, None), _COMPARE_BATCH):
            stored = self.index.vectors(ids)
            for speaker_id, vector in zip(ids, vectors):
                seen.add(speaker_id)
                if speaker_id not in stored:
                    difference.missing.append(speaker_id)
                elif float(stored[speaker_id] @ (vector / np.linalg.norm(vector))) < _STALE_BELOW_COSINE:
                    difference.stale.append(speaker_id)
        keys = self.index.ids()
        difference.rows, difference.stored = len(seen), len(keys)
        difference.extra = [key for key in keys if key not in seen]
        return difference

    # --- internals --------------------------------------------------------------------------

    def _lock_cursor(self) -> SearchTierCursor:
        # Row lock on PostgreSQL; SQLite's IMMEDIATE transactions already hold the write lock.
        cursor, _ = SearchTierCursor.objects.select_for_update().get_or_create(name=self.name)
        return cursor

    def _rows(self) -> int:
        return indexable(self.model_version, self.required_s).count()

    def _size_matches(self, generation: int, token: str) -> bool:
        # A write committed meanwhile makes the counts differ for a moment: not a reason to rebuild.
        return len(self.index) == self._rows() or current_state() != (generation, token)

    def _take_lease(self, cursor: SearchTierCursor) -> str:
        cursor.lease, cursor.lease_until = uuid.uuid4().hex, timezone.now() + timedelta(seconds=_LEASE_S)
        cursor.save(update_fields=["lease", "lease_until", "updated_at"])
        return cursor.lease

    def _renew_lease(self, lease: str) -> None:
        """Extend the lease (after each batch); LeaseLost if another process took it over meanwhile."""
        renewed = SearchTierCursor.objects.filter(name=self.name, lease=lease).update(
            lease_until=timezone.now() + timedelta(seconds=_LEASE_S), updated_at=timezone.now())
        if not renewed:
            raise LeaseLost(f"the rebuild lease on {self.name} lapsed and another process took it over")

    def _rebuild_leased(self, lease: str) -> int:
        # The generation first: a change committed after this read has a higher generation and is
        # applied by the catch-up after the rebuild, from the rows' state then.
        generation, token = current_state()
        seen: set[uuid.UUID] = set()
        for ids, tenants, vectors in batches(voiceprints(self.model_version, self.required_s, None)):
            self._renew_lease(lease)
            self.index.upsert(ids, vectors, tenants)
            seen.update(ids)
        self._renew_lease(lease)
        extra = [key for key in self.index.ids() if key not in seen]
        self.index.remove(extra)
        self.index.flush()
        with transaction.atomic():
            cursor = self._lock_cursor()
            if cursor.lease != lease:
                raise LeaseLost(f"the rebuild lease on {self.name} lapsed and another process took it over")
            cursor.generation, cursor.token, cursor.lease, cursor.lease_until = generation, token, "", None
            cursor.save(update_fields=["generation", "token", "lease", "lease_until", "updated_at"])
        logger.info("shared search tier %s rebuilt: %d voiceprints, %d stale keys removed, generation %d",
                    self.name, len(seen), len(extra), generation)
        return len(seen) + len(extra)


class LeaseLost(RuntimeError):
    """A rebuild ran past its lease and another process took the collection over."""


def _lease_active(cursor: SearchTierCursor) -> bool:
    return bool(cursor.lease) and cursor.lease_until is not None and cursor.lease_until > timezone.now()

"""What every search index is derived from: the voiceprint change log and the readable voiceprint rows.

Read by the per-process index (:mod:`.voiceprint_index`) and by the shared tier's outbox
applier (:mod:`.search_tier`); neither keeps anything the database does not hold.
"""
from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Iterator

import numpy as np
from django.db.models import Count

from .. import crypto
from ..integrity import voiceprint_mark_unreadable
from ..models import IndexChange, IndexState, Speaker

logger = logging.getLogger(__name__)

# Voiceprints a rebuild decrypts before handing them to the index (the IVF learns its cells from the
# first batch: it needs >= 39 per cell, and 50,000 suffice up to 1.6M voiceprints).
REBUILD_BATCH = 50_000


def current_state() -> tuple[int, str]:
    """``(generation, token)`` of the last committed voiceprint change (``(0, "")`` before any)."""
    row = IndexState.objects.filter(pk=1).values_list("generation", "token").first()
    return (row[0], row[1]) if row else (0, "")


def changes_since(generation: int, token: str) -> list[tuple[int, str, uuid.UUID]] | None:
    """``(generation, token, speaker_id)`` of every change after ``generation``, oldest first.

    None if the log no longer continues from ``(generation, token)``: it was pruned past it, a
    backup was restored, or a test rolled it back. The reader must then rebuild from the rows.
    """
    if generation < 0:
        return None
    if not IndexChange.objects.filter(generation=generation + 1).exists():
        return [] if (generation, token) == current_state() else None
    if generation and not IndexChange.objects.filter(generation=generation, token=token).exists():
        return None
    return list(IndexChange.objects.filter(generation__gt=generation)
                .order_by("generation").values_list("generation", "token", "speaker_id"))


def indexable(model_version: str, required_s: float):
    """The rows an index holds: readable, complete voiceprints of ``model_version``."""
    return Speaker.objects.filter(voiceprint_ciphertext__isnull=False, voiceprint_model_version=model_version,
                                  voiceprint_speech_s__gte=required_s - 1e-9, voiceprint_unreadable=False)


def voiceprints(model_version: str, required_s: float,
                speaker_ids: Iterable[uuid.UUID] | None) -> Iterator[tuple[uuid.UUID, uuid.UUID, np.ndarray]]:
    """Yield ``(speaker_id, tenant_id, vector)`` for readable voiceprints of ``model_version`` with ``required_s``.

    A row that cannot be read affects only its speaker: a damaged one is marked unreadable (and
    so logged, audited and counted by health), one sealed with a key that is not configured (or
    whose tenant's data key was destroyed) is skipped and logged; the others are yielded.
    """
    rows = indexable(model_version, required_s)
    if speaker_ids is not None:
        rows = rows.filter(id__in=set(speaker_ids))
    missing_keys: dict[str, int] = {}
    # Plain tuples, not model instances: building a Speaker per row was most of a rebuild's time.
    for speaker_id, tenant_id, ciphertext, key_id in rows.values_list(
            "id", "tenant_id", "voiceprint_ciphertext", "voiceprint_key_id").iterator(chunk_size=5000):
        try:
            vector = crypto.vector_decrypt(key_id=key_id, ciphertext=ciphertext,
                                           context=Speaker.voiceprint_context(speaker_id, model_version))
        except crypto.KeyNotConfigured:
            missing_keys[key_id] = missing_keys.get(key_id, 0) + 1
            continue
        except crypto.CiphertextCorrupt as exc:
            voiceprint_mark_unreadable(speaker_id=speaker_id, reason=str(exc))
            continue
        yield speaker_id, tenant_id, vector
    for key_id, count in missing_keys.items():
        logger.error("%d voiceprints are sealed with encryption key %s, which VOICEPRINT_ENCRYPTION_KEYS does not "
                     "hold (nor any tenant's data key): they are left out of search", count, key_id)


def partition_sizes(model_version: str, required_s: float) -> dict[uuid.UUID, int]:
    """Indexable voiceprints per tenant (a rebuild sizes each tenant's index with it)."""
    return dict(indexable(model_version, required_s).values("tenant_id").annotate(n=Count("id"))
                .values_list("tenant_id", "n"))


def write_current(index, model_version: str, required_s: float, speaker_ids: set[uuid.UUID]) -> None:
    """Make ``index`` hold exactly these speakers' current readable voiceprints (upsert them, remove the rest).

    Idempotent: applying a logged change again writes the same vector or removes an absent key.
    """
    found = {speaker_id: (tenant_id, vector)
             for speaker_id, tenant_id, vector in voiceprints(model_version, required_s, speaker_ids)}
    index.remove(speaker_ids - found.keys())
    if found:
        index.upsert(list(found), np.stack([vector for _, vector in found.values()]),
                     [tenant_id for tenant_id, _ in found.values()])


def batches(rows: Iterable[tuple[uuid.UUID, uuid.UUID, np.ndarray]], size: int = REBUILD_BATCH,
            ) -> Iterator[tuple[list[uuid.UUID], list[uuid.UUID], np.ndarray]]:
    """``(ids, tenant ids, (n, dim) vectors)`` in batches of ``size``: a rebuild holds one batch in memory at a time."""
    batch: list[tuple[uuid.UUID, uuid.UUID, np.ndarray]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield [s for s, _, _ in batch], [t for _, t, _ in batch], np.stack([v for _, _, v in batch])
            batch = []
    if batch:
        yield [s for s, _, _ in batch], [t for _, t, _ in batch], np.stack([v for _, _, v in batch])

"""Key rotation: re-encrypt every stored vector under the primary encryption key."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import transaction
from django.db.models import QuerySet

from .. import crypto
from ..audit import Actor, audit_record
from ..models import AuditAction, Enrollment, Speaker, WatchlistVoiceprint

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RotationReport:
    primary_key_id: str
    enrollments: int
    voiceprints: int
    watchlist: int = 0


def encryption_keys_rotate(*, actor: Actor, batch_size: int = 500) -> RotationReport:
    """Re-encrypt every enrollment, voiceprint and watchlist voiceprint not yet under the primary (first) key.

    Checks first that every key id in use is configured, so it never starts what it cannot
    finish; each batch is one transaction and every re-sealed vector is checked to round-trip.
    Safe to re-run: rows already under the primary key are skipped.
    """
    ring = crypto.keyring()
    in_use = (set(Enrollment.objects.values_list("key_id", flat=True).distinct())
              | set(Speaker.objects.exclude(voiceprint_key_id="").values_list("voiceprint_key_id", flat=True).distinct())
              | set(WatchlistVoiceprint.objects.values_list("key_id", flat=True).distinct()))
    missing = sorted(in_use - ring.keys.keys())
    if missing:
        raise crypto.DecryptionError(
            f"rows are encrypted with key ids {missing} that are not in VOICEPRINT_ENCRYPTION_KEYS; "
            "add those keys (after the new one) and run again")

    enrollments = _reseal_all(Enrollment.objects.all(), ciphertext="embedding_ciphertext", key_id="key_id",
                              primary_id=ring.primary_id, batch_size=batch_size)
    voiceprints = _reseal_all(Speaker.objects.filter(voiceprint_ciphertext__isnull=False),
                              ciphertext="voiceprint_ciphertext", key_id="voiceprint_key_id",
                              primary_id=ring.primary_id, batch_size=batch_size)
    watchlist = _reseal_all(WatchlistVoiceprint.objects.all(), ciphertext="ciphertext", key_id="key_id",
                            primary_id=ring.primary_id, batch_size=batch_size)
    audit_record(actor=actor, action=AuditAction.KEYS_ROTATE,
                 detail={"primary_key_id": ring.primary_id, "enrollments": enrollments,
                         "voiceprints": voiceprints, "watchlist": watchlist})
    logger.info("re-encrypted %d enrollments, %d voiceprints and %d watchlist voiceprints with key %s",
                enrollments, voiceprints, watchlist, ring.primary_id)
    return RotationReport(primary_key_id=ring.primary_id, enrollments=enrollments, voiceprints=voiceprints,
                          watchlist=watchlist)


def _reseal_all(rows: QuerySet, *, ciphertext: str, key_id: str, primary_id: str, batch_size: int) -> int:
    """Re-seal the ``ciphertext`` column of every row not under ``primary_id``, one transaction a batch."""
    count = 0
    while True:
        with transaction.atomic():
            batch = list(rows.select_for_update().exclude(**{key_id: primary_id}).order_by("pk")[:batch_size])
            for row in batch:
                sealed = crypto.vector_reseal(key_id=getattr(row, key_id), ciphertext=getattr(row, ciphertext),
                                              context=row.crypto_context())
                setattr(row, ciphertext, sealed.ciphertext)
                setattr(row, key_id, sealed.key_id)
            rows.model.objects.bulk_update(batch, [ciphertext, key_id])
        count += len(batch)
        if len(batch) < batch_size:
            return count

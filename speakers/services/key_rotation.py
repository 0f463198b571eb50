"""Key rotation: every tenant's data key re-wrapped under the primary deployment key, every row under its tenant's key."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import transaction
from django.db.models import QuerySet

from .. import crypto
from ..audit import Actor, audit_record
from ..models import AuditAction, Enrollment, ReplayPrint, Speaker, Tenant, WatchlistVoiceprint
from ..tenancy import data_keys_rewrap, tenant_data_key

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RotationReport:
    primary_key_id: str
    enrollments: int
    voiceprints: int
    watchlist: int = 0
    data_keys: int = 0


def encryption_keys_rotate(*, actor: Actor, batch_size: int = 500) -> RotationReport:
    """Re-wrap every tenant's data key under the primary (first) deployment key, and re-seal under its tenant's
    data key every row that is not (rows written before tenants were sealed by a deployment key).

    Checks first that every key in use can be opened, so it never starts what it cannot finish; each batch
    is one transaction and every re-sealed vector is checked to round-trip. Safe to re-run: what is already
    in place is skipped.
    """
    ring = crypto.keyring()
    wrapping = set(Tenant.objects.filter(data_key_wrapped__isnull=False)
                   .values_list("data_key_wrapping_id", flat=True).distinct())
    missing = sorted(wrapping - ring.keys.keys())
    if missing:
        raise crypto.DecryptionError(
            f"tenant data keys are wrapped with key ids {missing} that are not in VOICEPRINT_ENCRYPTION_KEYS; "
            "add those keys (after the new one) and run again")
    data_keys = data_keys_rewrap()
    tenant_keys = set(Tenant.objects.exclude(data_key_id="").values_list("data_key_id", flat=True))
    in_use = (set(Enrollment.objects.values_list("key_id", flat=True).distinct())
              | set(Speaker.objects.exclude(voiceprint_key_id="").values_list("voiceprint_key_id", flat=True).distinct())
              | set(WatchlistVoiceprint.objects.values_list("key_id", flat=True).distinct())
              | set(ReplayPrint.objects.values_list("key_id", flat=True).distinct()))
    missing = sorted(in_use - ring.keys.keys() - tenant_keys)
    if missing:
        raise crypto.DecryptionError(
            f"rows are encrypted with key ids {missing} that are not in VOICEPRINT_ENCRYPTION_KEYS; "
            "add those keys (after the new one) and run again")

    enrollments = voiceprints = watchlist = prints = 0
    for tenant in Tenant.objects.all():
        key = tenant_data_key(tenant)
        enrollments += _reseal_all(Enrollment.objects.filter(speaker__tenant=tenant), ciphertext="embedding_ciphertext",
                                   key_id="key_id", key=key, batch_size=batch_size)
        voiceprints += _reseal_all(Speaker.objects.filter(tenant=tenant, voiceprint_ciphertext__isnull=False),
                                   ciphertext="voiceprint_ciphertext", key_id="voiceprint_key_id", key=key,
                                   batch_size=batch_size)
        watchlist += _reseal_all(WatchlistVoiceprint.objects.filter(entry__tenant=tenant), ciphertext="ciphertext",
                                 key_id="key_id", key=key, batch_size=batch_size)
        prints += _reseal_all(ReplayPrint.objects.filter(speaker__tenant=tenant), ciphertext="ciphertext",
                              key_id="key_id", key=key, batch_size=batch_size, reseal=crypto.blob_reseal)
    audit_record(actor=actor, action=AuditAction.KEYS_ROTATE,
                 detail={"primary_key_id": ring.primary_id, "data_keys": data_keys, "enrollments": enrollments,
                         "voiceprints": voiceprints, "watchlist": watchlist, "replay_prints": prints})
    logger.info("re-wrapped %d data keys with key %s; re-sealed %d enrollments, %d voiceprints and %d watchlist "
                "voiceprints under their tenants' keys", data_keys, ring.primary_id, enrollments, voiceprints, watchlist)
    return RotationReport(primary_key_id=ring.primary_id, enrollments=enrollments, voiceprints=voiceprints,
                          watchlist=watchlist, data_keys=data_keys)


def _reseal_all(rows: QuerySet, *, ciphertext: str, key_id: str, key: crypto.DataKey, batch_size: int,
                reseal=crypto.vector_reseal) -> int:
    """Re-seal the ``ciphertext`` column of every row not under ``key``, one transaction a batch."""
    count = 0
    while True:
        with transaction.atomic():
            batch = list(rows.select_for_update().exclude(**{key_id: key.key_id}).order_by("pk")[:batch_size])
            for row in batch:
                sealed = reseal(key_id=getattr(row, key_id), ciphertext=getattr(row, ciphertext),
                                context=row.crypto_context(), key=key)
                setattr(row, ciphertext, sealed.ciphertext)
                setattr(row, key_id, sealed.key_id)
            rows.model.objects.bulk_update(batch, [ciphertext, key_id])
        count += len(batch)
        if len(batch) < batch_size:
            return count

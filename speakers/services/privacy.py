"""A person's rights over their voice: consent, opt-out, export, and retention.

Voice data is biometric data (GDPR art. 9 needs explicit consent; Illinois' BIPA written consent and
a retention schedule). What the software does, not legal advice:

* **consent**: a speaker carries the caller's record of the person's consent (reference, notice
  version, purpose, time given); with ``VOICEPRINT_REQUIRE_CONSENT`` an enrollment without it is
  refused (``consent_required``); withdrawing it deletes the biometric data (enrollments, voiceprint,
  search entries) and keeps the profile;
* **opt-out**: deletes the speaker and everything biometric about them, and blocks their external id
  in the tenant (``opted_out``), keeping only a keyed hash of it; lifting the block is an operator's
  audited action;
* **export**: everything stored about a speaker, never a vector;
* **retention**: a speaker not used for the tenant's ``retention_days`` is deleted by
  ``manage.py purge_expired``, and audit events older than ``audit_retention_days``.
"""
from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from ..audit import Actor, audit_record
from ..models import AuditAction, AuditEvent, Enrollment, OptOut, ReplayPrint, Speaker, Tenant
from ..search.index import index_change_record, index_update_after_commit
from .consent import CONSENT_FIELDS, Consent, external_id_hash
from .lockout import verification_locks_forget_expired
from .speakers import speaker_delete

logger = logging.getLogger(__name__)


# --- consent ----------------------------------------------------------------------------------------------

def consent_set(*, speaker: Speaker, consent: Consent, actor: Actor) -> Speaker:
    """Record (or change) the speaker's consent; audited."""
    with transaction.atomic():
        consent.apply_to(speaker)
        speaker.save(update_fields=[*CONSENT_FIELDS, "updated_at"])
        audit_record(actor=actor, action=AuditAction.CONSENT_SET, speaker_id=speaker.id, tenant=speaker.tenant_id,
                     detail={"reference": speaker.consent_reference, "notice_version": speaker.consent_notice_version,
                             "purpose": speaker.consent_purpose})
    return speaker


def consent_withdraw(*, speaker: Speaker, actor: Actor) -> Speaker:
    """The person withdrew consent: their biometric data goes (enrollments, voiceprint, search entries), the profile stays."""
    with transaction.atomic():
        speaker = Speaker.objects.select_for_update().get(pk=speaker.pk)
        enrollments = _biometrics_delete(speaker)
        for name in CONSENT_FIELDS:
            setattr(speaker, name, None if name == "consent_given_at" else "")
        speaker.save(update_fields=[*CONSENT_FIELDS, "updated_at"])
        audit_record(actor=actor, action=AuditAction.CONSENT_WITHDRAW, speaker_id=speaker.id, tenant=speaker.tenant_id,
                     detail={"enrollments_deleted": enrollments})
        index_change_record(speaker_id=speaker.id)
    index_update_after_commit()
    return speaker


def _biometrics_delete(speaker: Speaker) -> int:
    """Delete a speaker's enrollments and voiceprint (in the caller's transaction); returns how many enrollments."""
    ReplayPrint.objects.filter(speaker=speaker).delete()  # the fingerprints of their recordings and probes
    deleted = Enrollment.objects.filter(speaker=speaker).delete()[1].get(Enrollment._meta.label, 0)
    speaker.voiceprint_ciphertext = None
    speaker.voiceprint_key_id = ""
    speaker.voiceprint_model_version = ""
    speaker.voiceprint_speech_s = 0.0
    speaker.voiceprint_unreadable = False
    speaker.enrollment_count = 0
    speaker.save(update_fields=["voiceprint_ciphertext", "voiceprint_key_id", "voiceprint_model_version",
                                "voiceprint_speech_s", "voiceprint_unreadable", "enrollment_count", "updated_at"])
    return deleted


# --- opt-out ----------------------------------------------------------------------------------------------

def speaker_opt_out(*, speaker: Speaker, actor: Actor) -> None:
    """The person opts out: the speaker and all their biometric data are deleted and their external id blocked."""
    with transaction.atomic():
        if speaker.external_id:
            OptOut.objects.get_or_create(tenant_id=speaker.tenant_id, external_id_hash=external_id_hash(
                tenant=speaker.tenant_id, external_id=speaker.external_id))
        speaker_delete(speaker=speaker, actor=actor, action=AuditAction.OPT_OUT,
                       detail={"external_id_blocked": bool(speaker.external_id)})


def opt_out_lift(*, tenant: Tenant, external_id: str, actor: Actor) -> bool:
    """An operator lifts the block on an external id (audited). Returns whether there was one."""
    with transaction.atomic():
        deleted, _ = OptOut.objects.filter(tenant=tenant, external_id_hash=external_id_hash(
            tenant=tenant, external_id=external_id)).delete()
        if deleted:
            audit_record(actor=actor, action=AuditAction.OPT_OUT_LIFT, tenant=tenant, decision="lifted")
    return bool(deleted)


# --- export -----------------------------------------------------------------------------------------------

def speaker_export(*, speaker: Speaker, actor: Actor) -> dict[str, Any]:
    """Everything stored about a speaker, as data a person can read; never a vector or a fingerprint."""
    enrollments = [{"id": str(e.id), "filename": e.filename, "model_version": e.model_version,
                    "duration_s": e.duration_s, "speech_s": e.speech_s, "snr_db": e.snr_db,
                    "clipping_ratio": e.clipping_ratio, "speech_ratio": e.speech_ratio, "bandwidth_hz": e.bandwidth_hz,
                    "created_at": e.created_at.isoformat()}
                   for e in Enrollment.objects.filter(speaker=speaker).defer("embedding_ciphertext")]
    events = [{"at": e.created_at.isoformat(), "action": e.action, "actor": e.actor, "decision": e.decision,
               "score": e.score, "threshold": e.threshold}
              for e in AuditEvent.objects.for_tenant(speaker.tenant_id).filter(speaker_id=speaker.id)
              .order_by("created_at", "id")]
    audit_record(actor=actor, action=AuditAction.EXPORT, speaker_id=speaker.id, tenant=speaker.tenant_id)
    return {
        "speaker": {"id": str(speaker.id), "external_id": speaker.external_id, "display_name": speaker.display_name,
                    "metadata": speaker.metadata, "created_at": speaker.created_at.isoformat(),
                    "updated_at": speaker.updated_at.isoformat()},
        "consent": {"reference": speaker.consent_reference or None,
                    "notice_version": speaker.consent_notice_version or None,
                    "purpose": speaker.consent_purpose or None,
                    "given_at": speaker.consent_given_at.isoformat() if speaker.consent_given_at else None},
        "voiceprint": {"model_version": speaker.voiceprint_model_version or None,
                       "speech_s": speaker.voiceprint_speech_s, "enrollment_count": speaker.enrollment_count,
                       "stored": "an encrypted embedding per model version, 192 numbers per network (not exported: it is not "
                                 "audio and cannot be turned back into audio)" if speaker.has_voiceprint else None},
        "enrollments": enrollments,
        "recordings_fingerprinted": {
            "count": ReplayPrint.objects.filter(speaker=speaker).count(),
            "stored": "an encrypted audio fingerprint (hashes of spectral peaks, not audio) of each enrollment "
                      "recording and of the last accepted probes, to refuse replays of them (not exported)"},
        "last_use": {"any": _iso(speaker.last_used_at), "verified": _iso(speaker.last_verified_at),
                     "identified": _iso(speaker.last_identified_at)},
        "retention": {"days_of_inactivity": speaker.tenant.retention_days,
                      "deleted_after": _iso(_expiry(speaker))},
        "audit_events": events,
    }


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _expiry(speaker: Speaker) -> dt.datetime:
    return (speaker.last_used_at or speaker.created_at) + dt.timedelta(days=speaker.tenant.retention_days)


def speaker_used(*, speaker_id: uuid.UUID, field: str | None = None) -> None:
    """Record an interaction (enrollment, accepted verification, identify match): retention counts from it."""
    now = timezone.now()
    Speaker.objects.filter(pk=speaker_id).update(last_used_at=now, **({field: now} if field else {}))


# --- retention --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PurgeReport:
    speakers: int
    audit_events: int
    dry_run: bool


def purge_expired(*, actor: Actor, dry_run: bool = False, batch_size: int = 200,
                  now: dt.datetime | None = None) -> PurgeReport:
    """Delete every speaker unused for its tenant's retention period, audit events past theirs, and verification
    locks over for a day.

    In batches, each its own transaction; rows another process is purging are skipped (PostgreSQL's
    SKIP LOCKED), so it is safe to run on many machines at once.
    """
    now = now or timezone.now()
    speakers = events = 0
    for tenant in Tenant.objects.all():
        cutoff = now - dt.timedelta(days=tenant.retention_days)
        expired = (Speaker.objects.for_tenant(tenant).annotate(used=Coalesce(F("last_used_at"), F("created_at")))
                   .filter(used__lt=cutoff))
        if dry_run:
            speakers += expired.count()
        else:
            while True:
                with transaction.atomic():
                    rows = expired.order_by("pk")
                    if connection.features.has_select_for_update_skip_locked:
                        rows = rows.select_for_update(skip_locked=True)
                    batch = list(rows[:batch_size])
                    for speaker in batch:
                        speaker_delete(speaker=speaker, actor=actor, action=AuditAction.PURGE,
                                       detail={"reason": "retention", "retention_days": tenant.retention_days})
                speakers += len(batch)
                if len(batch) < batch_size:
                    break
        old = AuditEvent.objects.for_tenant(tenant).filter(
            created_at__lt=now - dt.timedelta(days=tenant.audit_retention_days))
        events += old.count() if dry_run else old.delete()[0]
    deployment_old = AuditEvent.objects.filter(
        Q(tenant__isnull=True), created_at__lt=now - dt.timedelta(days=settings.VOICEPRINT_AUDIT_RETENTION_DAYS))
    events += deployment_old.count() if dry_run else deployment_old.delete()[0]
    if not dry_run:
        verification_locks_forget_expired(now=now)
        audit_record(actor=actor, action=AuditAction.PURGE, decision="done",
                     detail={"speakers": speakers, "audit_events": events})
    logger.info("purge_expired%s: %d speakers, %d audit events", " (dry run)" if dry_run else "", speakers, events)
    return PurgeReport(speakers=speakers, audit_events=events, dry_run=dry_run)

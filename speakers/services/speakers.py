"""Speakers: create, update, delete (the delete reaches every index through the change log)."""
from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from ..audit import Actor, audit_record
from ..exceptions import ExternalIdTaken
from ..external_ids import external_id_normalise
from ..models import AuditAction, Enrollment, Speaker
from ..search.index import index_change_record, index_update_after_commit
from .consent import Consent, opt_out_check
from .population import population_refresh_if_stale


def speaker_create(*, actor: Actor, external_id: str | None = None, display_name: str = "",
                   metadata: dict[str, Any] | None = None, consent: Consent | None = None) -> Speaker:
    """A new speaker in the actor's tenant (optionally with the person's consent on record).

    Refused when the external id is taken in the tenant (``external_id_taken``) or belongs to a person
    who opted out there (``opted_out``).
    """
    tenant = actor.tenant
    external_id = external_id_normalise(external_id)
    if external_id is not None:
        opt_out_check(tenant=tenant, external_id=external_id)
    try:
        with transaction.atomic():
            speaker = Speaker(tenant=tenant, external_id=external_id, display_name=display_name or "",
                              metadata=metadata or {})
            if consent is not None:
                consent.apply_to(speaker)
            speaker.save()
            audit_record(actor=actor, action=AuditAction.SPEAKER_CREATE, speaker_id=speaker.id,
                         detail={"consent": consent is not None})
    except IntegrityError as exc:
        if external_id is not None and Speaker.objects.for_tenant(tenant).filter(external_id=external_id).exists():
            raise ExternalIdTaken(external_id=external_id) from exc
        raise
    return speaker


_UNSET: Any = object()


def speaker_update(*, speaker: Speaker, actor: Actor, external_id: str | None = _UNSET,
                   display_name: str = _UNSET, metadata: dict[str, Any] = _UNSET) -> Speaker:
    changed: list[str] = []
    if external_id is not _UNSET:
        speaker.external_id = external_id_normalise(external_id)
        if speaker.external_id is not None:
            opt_out_check(tenant=speaker.tenant_id, external_id=speaker.external_id)
        changed.append("external_id")
    if display_name is not _UNSET:
        speaker.display_name = display_name or ""
        changed.append("display_name")
    if metadata is not _UNSET:
        speaker.metadata = metadata or {}
        changed.append("metadata")
    if not changed:
        return speaker
    try:
        with transaction.atomic():
            speaker.save(update_fields=[*changed, "updated_at"])
            audit_record(actor=actor, action=AuditAction.SPEAKER_UPDATE, speaker_id=speaker.id,
                         detail={"fields": changed})
    except IntegrityError as exc:
        raise ExternalIdTaken(external_id=speaker.external_id) from exc
    return speaker


def speaker_delete(*, speaker: Speaker, actor: Actor, action: str = AuditAction.SPEAKER_DELETE,
                   detail: dict[str, Any] | None = None) -> None:
    """Delete the speaker, every enrollment and the voiceprint, from the database and every index."""
    speaker_id = speaker.id
    with transaction.atomic():
        enrollments = Enrollment.objects.filter(speaker_id=speaker_id).count()
        Speaker.objects.filter(id=speaker_id).delete()  # cascades to the enrollments
        audit_record(actor=actor, action=action, speaker_id=speaker_id, tenant=speaker.tenant_id,
                     detail={"enrollments": enrollments, **(detail or {})})
        index_change_record(speaker_id=speaker_id)
    index_update_after_commit()
    population_refresh_if_stale(tenant=speaker.tenant_id)

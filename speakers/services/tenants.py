"""Tenants: made by an operator, deleted without a trace (the data key first, then every row and vector)."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from ..audit import Actor, audit_record
from ..exceptions import TenantExists
from ..models import AuditAction, Speaker, Tenant
from ..search.index import index_change_record, index_update_after_commit
from ..tenancy import tenant_data_key, tenant_key_forget

logger = logging.getLogger(__name__)

_DELETE_BATCH = 500


def tenant_create(*, slug: str, actor: Actor, name: str = "", retention_days: int | None = None,
                  audit_retention_days: int | None = None) -> Tenant:
    """A new tenant, with its data key made and wrapped at once."""
    fields = {k: v for k, v in {"retention_days": retention_days,
                                "audit_retention_days": audit_retention_days}.items() if v is not None}
    try:
        with transaction.atomic():
            tenant = Tenant.objects.create(slug=slug, name=name or slug, **fields)
            audit_record(actor=actor, action=AuditAction.TENANT_CREATE, tenant=tenant, decision="created",
                         detail={"slug": slug, "retention_days": tenant.retention_days})
    except IntegrityError as exc:
        raise TenantExists(slug=slug) from exc
    tenant_data_key(tenant)
    return tenant


@dataclass(frozen=True)
class TenantDeletion:
    slug: str
    speakers: int


def tenant_delete(*, tenant: Tenant, actor: Actor) -> TenantDeletion:
    """Delete a tenant and everything of it.

    1. its data key is destroyed (committed on its own): from this moment no process can read any of
       its ciphertexts, whatever happens next (crypto-shredding);
    2. its speakers go in batches, each logged in the voiceprint change log, so every search index
       (each process's, and the shared tier) drops their vectors;
    3. then the tenant row, which takes every remaining row of it (enrollments, watchlist, calibrations,
       API keys, opt-out blocks, its audit events) with it.
    The deployment keeps one audit event: which tenant was deleted, by whom, and how many speakers it had.
    """
    with transaction.atomic():
        Tenant.objects.filter(pk=tenant.pk).update(data_key_wrapped=None, data_key_wrapping_id="")
    tenant_key_forget(tenant.pk)
    speakers = 0
    while True:
        with transaction.atomic():
            ids = list(Speaker.objects.for_tenant(tenant).order_by("pk").values_list("pk", flat=True)[:_DELETE_BATCH])
            Speaker.objects.filter(pk__in=ids).delete()
            for speaker_id in ids:
                index_change_record(speaker_id=speaker_id)
        speakers += len(ids)
        if len(ids) < _DELETE_BATCH:
            break
    index_update_after_commit()
    slug = tenant.slug
    with transaction.atomic():
        Tenant.objects.filter(pk=tenant.pk).delete()
        audit_record(actor=actor.in_tenant(None), action=AuditAction.TENANT_DELETE, decision="deleted",
                     detail={"slug": slug, "speakers": speakers})
    logger.info("tenant %s deleted: data key destroyed, %d speakers removed", slug, speakers)
    return TenantDeletion(slug=slug, speakers=speakers)

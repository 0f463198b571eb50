"""API keys: issue (the plain key is returned once), create, revoke, and record use."""
from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction
from django.utils import timezone

from .. import crypto
from ..audit import Actor, audit_record
from ..models import ApiKey, AuditAction, Tenant
from ..tenancy import default_tenant


def api_key_issue(*, api_key: ApiKey, actor: Actor) -> str:
    """Give ``api_key`` (new or existing) a fresh secret and save it. Returns the plain key, once."""
    generated = crypto.api_key_generate()
    api_key.prefix, api_key.hashed_key = generated.prefix, generated.hashed
    api_key.scopes = sorted(set(api_key.scopes))
    with transaction.atomic():
        api_key.save()
        audit_record(actor=actor, action=AuditAction.API_KEY_CREATE, tenant=api_key.tenant_id,
                     detail={"name": api_key.name, "prefix": api_key.prefix, "scopes": api_key.scopes})
    return generated.plain


def api_key_create(*, name: str, scopes: Sequence[str], actor: Actor,
                   tenant: Tenant | None = None) -> tuple[ApiKey, str]:
    """A new key of ``tenant`` (the default tenant when None: deployments and the README flow keep working)."""
    api_key = ApiKey(name=name, scopes=list(scopes), tenant=tenant or default_tenant())
    return api_key, api_key_issue(api_key=api_key, actor=actor.in_tenant(api_key.tenant))


def api_key_revoke(*, api_key: ApiKey, actor: Actor) -> ApiKey:
    if not api_key.revoked:
        with transaction.atomic():
            api_key.revoked, api_key.revoked_at = True, timezone.now()
            api_key.save(update_fields=["revoked", "revoked_at"])
            audit_record(actor=actor, action=AuditAction.API_KEY_REVOKE, tenant=api_key.tenant_id,
                         detail={"name": api_key.name, "prefix": api_key.prefix})
    return api_key


def api_key_touch(*, api_key: ApiKey) -> None:
    """Record use, at most once a minute per key (keeps writes off the hot path)."""
    now = timezone.now()
    if api_key.last_used_at is None or (now - api_key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now

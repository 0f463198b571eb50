"""The audit trail: who did what to which speaker, from where, and what was decided.

Never an embedding, audio or a key (a failed key is named by its public prefix only).
"""
from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from typing import Any

from .models import ApiKey, AuditEvent, Speaker, Tenant


@dataclass(frozen=True)
class Actor:
    """Who is acting: an API key, an admin user, a command, or the service itself; and for which tenant.

    ``tenant`` is the tenant the actor works in (an API key's own; an admin user or a command acting
    on one tenant's objects): services create there and search only there.
    """

    label: str
    api_key: ApiKey | None = None
    client_address: str | None = None
    tenant: Tenant | None = None

    @classmethod
    def from_api_key(cls, api_key: ApiKey, *, client_address: str | None = None) -> Actor:
        return cls(label=f"api:{api_key.name}", api_key=api_key, client_address=client_address,
                   tenant=api_key.tenant)

    @classmethod
    def from_admin(cls, user: Any, *, client_address: str | None = None, tenant: Tenant | None = None) -> Actor:
        return cls(label=f"admin:{user.get_username()}", client_address=client_address, tenant=tenant)

    def in_tenant(self, tenant: Tenant) -> Actor:
        """The same actor working in ``tenant`` (an admin acting on one tenant's object)."""
        return dataclasses.replace(self, tenant=tenant)

    @classmethod
    def anonymous(cls, *, client_address: str | None = None) -> Actor:
        return cls(label="anonymous", client_address=client_address)

    @classmethod
    def cli(cls, command: str, *, tenant: Tenant | None = None) -> Actor:
        return cls(label=f"cli:{command}", tenant=tenant)

    @classmethod
    def system(cls) -> Actor:
        return cls(label="system")


def audit_record(*, actor: Actor, action: str, speaker_id: uuid.UUID | None = None,
                 decision: str = "", score: float | None = None, threshold: float | None = None,
                 detail: dict[str, Any] | None = None, tenant: Tenant | uuid.UUID | None = None) -> AuditEvent:
    """Record an event; it belongs to ``tenant`` (default: the actor's, else the speaker's), or to the deployment."""
    tenant = tenant if tenant is not None else actor.tenant
    if tenant is None and speaker_id is not None:
        tenant = Speaker.objects.filter(pk=speaker_id).values_list("tenant_id", flat=True).first()
    return AuditEvent.objects.create(
        tenant_id=tenant.pk if isinstance(tenant, Tenant) else tenant,
        actor=actor.label[:150], api_key=actor.api_key, client_address=actor.client_address,
        action=action, speaker_id=speaker_id, decision=decision, score=score, threshold=threshold,
        detail=detail or {})

"""The audit trail: who did what to which speaker, from where, and what was decided.

Never an embedding, audio or a key (a failed key is named by its public prefix only).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from .models import ApiKey, AuditEvent


@dataclass(frozen=True)
class Actor:
    """Who is acting: an API key, an admin user, a command, or the service itself."""

    label: str
    api_key: ApiKey | None = None
    client_address: str | None = None

    @classmethod
    def from_api_key(cls, api_key: ApiKey, *, client_address: str | None = None) -> Actor:
        return cls(label=f"api:{api_key.name}", api_key=api_key, client_address=client_address)

    @classmethod
    def from_admin(cls, user: Any, *, client_address: str | None = None) -> Actor:
        return cls(label=f"admin:{user.get_username()}", client_address=client_address)

    @classmethod
    def anonymous(cls, *, client_address: str | None = None) -> Actor:
        return cls(label="anonymous", client_address=client_address)

    @classmethod
    def cli(cls, command: str) -> Actor:
        return cls(label=f"cli:{command}")

    @classmethod
    def system(cls) -> Actor:
        return cls(label="system")


def audit_record(*, actor: Actor, action: str, speaker_id: uuid.UUID | None = None,
                 decision: str = "", score: float | None = None, threshold: float | None = None,
                 detail: dict[str, Any] | None = None) -> AuditEvent:
    return AuditEvent.objects.create(
        actor=actor.label[:150], api_key=actor.api_key, client_address=actor.client_address,
        action=action, speaker_id=speaker_id, decision=decision, score=score, threshold=threshold,
        detail=detail or {})

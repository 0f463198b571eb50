"""The audit trail: who did what to which speaker, from where, and what was decided.

Never an embedding, audio or a key (a failed key is named by its public prefix only). Every text
written here is made storable and readable in one place (:func:`audit_record`): whatever bytes a
request carried (a NUL, a lone surrogate, a terminal escape, a bidi override, a megabyte of path), its
refusal is on record, on PostgreSQL too (which refuses NUL and lone surrogates in text and JSON).
"""
from __future__ import annotations

import dataclasses
import logging
import math
import unicodedata
import uuid
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.db import DatabaseError, transaction

from . import crypto
from .models import ApiKey, AuditAction, AuditEvent, Speaker, Tenant

logger = logging.getLogger(__name__)

# Longest text kept from a request in an audit row's detail (a path, a filename); longer ends with "…".
MAX_DETAIL_TEXT = 1000
KEY_FAILURE_CODES = frozenset({"missing_api_key", "invalid_api_key", "api_key_revoked"})
AUTH_FAILURE_CODES = KEY_FAILURE_CODES | {"invalid_credentials"}  # ... and the admin's sign-in
_REFUSAL_DETAIL_KEYS = ("field", "fields", "filename", "speaker_id", "username")


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
        actor=storable_text(actor.label, limit=150), api_key=actor.api_key, client_address=actor.client_address,
        action=action, speaker_id=speaker_id, decision=storable_text(decision, limit=32), score=score,
        threshold=threshold, detail=_storable(detail or {}))


def audit_refusal(*, actor: Actor, code: str, status: int, method: str, path: str, speaker_id: Any = None,
                  detail: dict[str, Any] | None = None, presented_key: str | None = None,
                  recorded_status: int | None = None) -> None:
    """One row per refused request, the same for the API, the WebSocket routes and the admin's tools.

    ``status`` is the HTTP status of ``code`` (``recorded_status`` what the client saw, if not that: a
    WebSocket close code); ``speaker_id`` is recorded when it is one (else the error's detail's). An
    authentication failure is named by the key's public prefix only; a flood of 429s is recorded once a
    minute per client and code. A row that cannot be written is logged, never raised (the refusal is
    answered either way), and never spoils the caller's transaction.
    """
    if status == 429 and not cache.add(f"audit_throttled_{actor.client_address}_{code}", 1, 60):
        return
    detail = detail or {}
    if code in AUTH_FAILURE_CODES:
        action = AuditAction.AUTH_FAILURE
    else:
        action = AuditAction.THROTTLED if status == 429 else AuditAction.REFUSAL
    extra = {key: detail[key] for key in _REFUSAL_DETAIL_KEYS if key in detail}
    if code in KEY_FAILURE_CODES:
        extra = {"key_prefix": crypto.api_key_prefix(presented_key.strip()) if presented_key else None}
    try:
        with transaction.atomic():
            audit_record(actor=actor, action=action, decision=code,
                         speaker_id=_uuid_or_none(speaker_id or detail.get("speaker_id")),
                         detail={"status": recorded_status or status, "method": method, "path": path, **extra})
    except DatabaseError:
        logger.exception("the refusal could not be audited")


def _uuid_or_none(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


def storable_text(text: str, *, limit: int = MAX_DETAIL_TEXT) -> str:
    """``text`` as an audit row keeps it: control and invisible format characters and lone surrogates
    written out (``\\x00``, ``\\u202e``, ``\\ud800``), at most ``limit`` characters (``…`` at the end)."""
    text = str(text)
    head = text[:limit + 1]
    shown = head if head.isprintable() else "".join(_shown(ch) for ch in head)
    if len(shown) <= limit and len(text) <= limit:
        return shown
    return shown[:limit - 1] + "…"


def _shown(ch: str) -> str:
    code = ord(ch)
    if code < 0x20 or 0x7F <= code < 0xA0:
        return f"\\x{code:02x}"
    if 0xD800 <= code <= 0xDFFF or unicodedata.category(ch) in {"Cf", "Cs", "Co", "Cn", "Zl", "Zp"}:
        return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
    return ch


def _storable(value: Any) -> Any:
    """A JSON value every database stores: texts made storable, keys too, non-finite numbers as text."""
    if isinstance(value, dict):
        return {storable_text(key, limit=200): _storable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_storable(item) for item in value]
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return storable_text(value)

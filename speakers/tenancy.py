"""Tenants' data keys: made at first use, wrapped by the deployment key, unwrapped into a short-lived cache.

Every biometric row of a tenant is sealed under the tenant's own data key (:mod:`speakers.crypto`).
A process keeps unwrapped data keys for ``_TTL_S`` seconds at most, so when a tenant is deleted (its
wrapped key destroyed first) every process forgets the key within that time even if it never hears
of the deletion; the deleting process forgets it at once.
"""
from __future__ import annotations

import threading
import time
import uuid

from django.db import connection, transaction

from . import crypto
from .models import DEFAULT_TENANT_SLUG, Tenant
from .runtime.process_local import ProcessLocal

_TTL_S = 60.0


class _Keys:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_tenant: dict[uuid.UUID, tuple[crypto.DataKey, float]] = {}
        self.by_key_id: dict[str, tuple[crypto.DataKey, float]] = {}


_keys: ProcessLocal[_Keys] = ProcessLocal(_Keys)


def default_tenant() -> Tenant:
    """The tenant of keys created without ``--tenant`` (made by a migration; made again if deleted)."""
    tenant, _ = Tenant.objects.get_or_create(slug=DEFAULT_TENANT_SLUG, defaults={"name": "Default"})
    return tenant


def tenant_for_command(slug: str | None) -> Tenant:
    """The tenant a management command names with ``--tenant SLUG`` (the default tenant without one)."""
    from django.core.management.base import CommandError

    if slug is None:
        return default_tenant()
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        known = ", ".join(Tenant.objects.values_list("slug", flat=True)) or "none"
        raise CommandError(f"No tenant {slug!r} (tenants: {known}); create it with `manage.py create_tenant {slug}`.")
    return tenant


def _remember(key: crypto.DataKey, tenant_id: uuid.UUID) -> crypto.DataKey:
    """Cache a key read from the tenant row, once that row's state is committed.

    Inside a transaction the row may yet be rolled back (a key made and lost with it): caching it
    then would let later requests seal rows under a key nobody stored.
    """
    def remember() -> None:
        keys = _keys.get()
        entry = (key, time.monotonic() + _TTL_S)
        with keys.lock:
            keys.by_tenant[tenant_id] = entry
            keys.by_key_id[key.key_id] = entry

    if connection.in_atomic_block:
        transaction.on_commit(remember)
    else:
        remember()
    return key


def _cached(table: str, name: object) -> crypto.DataKey | None:
    keys = _keys.get()
    with keys.lock:
        entry = getattr(keys, table).get(name)
    return entry[0] if entry is not None and entry[1] > time.monotonic() else None


def tenant_data_key(tenant: Tenant | uuid.UUID) -> crypto.DataKey:
    """The tenant's data key, made (and wrapped) at the first use."""
    tenant_id = tenant.pk if isinstance(tenant, Tenant) else tenant
    cached = _cached("by_tenant", tenant_id)
    if cached is not None:
        return cached
    row = Tenant.objects.get(pk=tenant_id)
    if row.data_key_wrapped is None:  # the first use: made under the row lock, so two processes make one
        with transaction.atomic():
            row = Tenant.objects.select_for_update().get(pk=tenant_id)
            if row.data_key_wrapped is None:
                raw = crypto.data_key_new()
                wrapped = crypto.data_key_wrap(raw, context=row.data_key_context())
                row.data_key_wrapped, row.data_key_wrapping_id, row.data_key_id = (
                    wrapped.ciphertext, wrapped.key_id, crypto.data_key_of(raw).key_id)
                row.save(update_fields=["data_key_wrapped", "data_key_wrapping_id", "data_key_id"])
    key = crypto.data_key_unwrap(wrapping_id=row.data_key_wrapping_id, wrapped=row.data_key_wrapped,
                                 context=row.data_key_context())
    return _remember(key, tenant_id)


def data_key_by_id(key_id: str) -> crypto.DataKey | None:
    """The resolver registered with :mod:`speakers.crypto`: the data key a ciphertext names, if its tenant has it."""
    cached = _cached("by_key_id", key_id)
    if cached is not None:
        return cached
    row = Tenant.objects.filter(data_key_id=key_id, data_key_wrapped__isnull=False).first()
    if row is None:
        return None
    key = crypto.data_key_unwrap(wrapping_id=row.data_key_wrapping_id, wrapped=row.data_key_wrapped,
                                 context=row.data_key_context())
    return _remember(key, row.pk)


def tenant_key_forget(tenant_id: uuid.UUID) -> None:
    """Drop this process's copy of a tenant's data key (after the wrapped key was destroyed)."""
    keys = _keys.get()
    with keys.lock:
        entry = keys.by_tenant.pop(tenant_id, None)
        if entry is not None:
            keys.by_key_id.pop(entry[0].key_id, None)


def data_keys_rewrap(*, batch_size: int = 100) -> int:
    """Re-wrap every tenant's data key under the primary deployment key (key rotation). Returns how many moved."""
    primary = crypto.keyring().primary_id
    moved = 0
    while True:
        with transaction.atomic():
            rows = list(Tenant.objects.select_for_update().filter(data_key_wrapped__isnull=False)
                        .exclude(data_key_wrapping_id=primary).order_by("pk")[:batch_size])
            for row in rows:
                raw = crypto.data_key_unwrap_raw(wrapping_id=row.data_key_wrapping_id, wrapped=row.data_key_wrapped,
                                                 context=row.data_key_context())
                wrapped = crypto.data_key_wrap(raw, context=row.data_key_context())
                row.data_key_wrapped, row.data_key_wrapping_id = wrapped.ciphertext, wrapped.key_id
                row.save(update_fields=["data_key_wrapped", "data_key_wrapping_id"])
        moved += len(rows)
        if len(rows) < batch_size:
            return moved

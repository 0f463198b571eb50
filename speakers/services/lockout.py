"""Verification locks: no unlimited guessing against one speaker, and no locking out of the genuine speaker.

Rejected verifications of a speaker are counted per caller, on two counts: per (speaker, API
key) and per (speaker, client address) (the address the API resolves, speakers/api/clients.py),
on Django's cache (process memory, or Redis shared by every worker). Past
VOICEPRINT_VERIFY_LOCKOUT_AFTER rejections in a row on one count, that key, or that address, is
locked out of that speaker for VOICEPRINT_VERIFY_LOCKOUT_S, doubling with every lock of the same
pair within a day, up to VOICEPRINT_VERIFY_LOCKOUT_MAX_S. A lock is a row
(:class:`~speakers.models.VerificationLock`), so every worker sees it and operators list and lift
it (the admin, ``manage.py list_locks`` / ``lift_lock``).

A lock refuses only its own key and its own address: an attacker's guesses, from any number of
keys at one address or from one key at any number of addresses, never lock out the genuine
speaker calling with another key from another address. While locked, the caller gets no score of
the speaker at all: verify and streaming verification refuse (``verification_locked``), identify
leaves the speaker out of its candidates (see :func:`locked_speaker_ids`). An accepted
verification resets the counts of its key and its address.
"""
from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from ..audit import Actor, audit_record
from ..exceptions import VerificationLocked
from ..models import AuditAction, Speaker, VerificationLock

logger = logging.getLogger(__name__)

# How long a count of rejections, and the memory of a lock (for the doubling), are kept.
MEMORY = timedelta(days=1)


def _callers(actor: Actor) -> list[tuple[str, dict]]:
    """What a caller is counted and locked as: its API key, its client address (each when known).

    An admin verifying in the panel is counted by its address; a command, by neither.
    """
    callers = []
    if actor.api_key is not None:
        callers.append((f"key_{actor.api_key.pk}", {"api_key": actor.api_key, "client_address": None}))
    if actor.client_address:
        callers.append((f"address_{actor.client_address}", {"api_key": None, "client_address": actor.client_address}))
    return callers


def _rejections_key(speaker_id: uuid.UUID, caller: str) -> str:
    return f"verify_rejections_{speaker_id}_{caller}"


def _caller_filter(actor: Actor) -> Q | None:
    """The locks that apply to ``actor``: its key's and its address's (None: nothing can lock it)."""
    condition = None
    for _, fields in _callers(actor):
        match = Q(api_key=fields["api_key"]) if fields["api_key"] is not None else \
            Q(client_address=fields["client_address"])
        condition = match if condition is None else condition | match
    return condition


def _active_locks(actor: Actor) -> QuerySet[VerificationLock]:
    condition = _caller_filter(actor)
    if condition is None:
        return VerificationLock.objects.none()
    return VerificationLock.objects.filter(condition, locked_until__gt=timezone.now())


def verification_lock_check(*, speaker_id: uuid.UUID, actor: Actor) -> None:
    """Refuse (429 verification_locked) while ``actor``'s key or address is locked out of the speaker."""
    lock = _active_locks(actor).filter(speaker_id=speaker_id).order_by("-locked_until").first()
    if lock is not None:
        wait = (lock.locked_until - timezone.now()).total_seconds()
        raise VerificationLocked(speaker_id=str(speaker_id), retry_after_s=round(max(wait, 0.1), 1))


def locked_speaker_ids(*, actor: Actor, speaker_ids: Iterable[uuid.UUID] | None = None) -> set[uuid.UUID]:
    """The speakers ``actor`` is locked out of (of ``speaker_ids``, or all): identify leaves them out."""
    locks = _active_locks(actor)
    if speaker_ids is not None:
        locks = locks.filter(speaker_id__in=list(speaker_ids))
    return set(locks.values_list("speaker_id", flat=True))


def verification_outcome_record(*, speaker_id: uuid.UUID, accepted: bool, actor: Actor) -> None:
    """Count one verification outcome of the speaker for the actor's key and address; lock either when its
    rejections say so."""
    callers = _callers(actor)
    if accepted:
        cache.delete_many([_rejections_key(speaker_id, name) for name, _ in callers])
        for _, fields in callers:  # the back-off starts afresh (an expired lock's memory goes)
            VerificationLock.objects.filter(speaker_id=speaker_id, locked_until__lte=timezone.now(),
                                            **fields).delete()
        return
    for name, fields in callers:
        rejections = _count(_rejections_key(speaker_id, name))
        if rejections >= settings.VOICEPRINT_VERIFY_LOCKOUT_AFTER:
            cache.delete(_rejections_key(speaker_id, name))
            _lock(speaker_id=speaker_id, fields=fields, rejections=rejections, actor=actor)


def _count(key: str) -> int:
    """One more rejection on the count ``key``; its new value."""
    seconds = int(MEMORY.total_seconds())
    if cache.add(key, 1, seconds):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, seconds)
        return 1


def _lock(*, speaker_id: uuid.UUID, fields: dict, rejections: int, actor: Actor) -> None:
    """Lock one caller (a key or an address) out of the speaker, for longer each time within a day."""
    now = timezone.now()
    with transaction.atomic():
        row = VerificationLock.objects.select_for_update().filter(speaker_id=speaker_id, **fields).first()
        lockouts = row.lockouts + 1 if row is not None and now - row.locked_at < MEMORY else 1
        seconds = min(settings.VOICEPRINT_VERIFY_LOCKOUT_S * 2 ** (lockouts - 1), settings.VOICEPRINT_VERIFY_LOCKOUT_MAX_S)
        values = {"locked_at": now, "locked_until": now + timedelta(seconds=seconds), "lockouts": lockouts,
                  "rejections": rejections}
        if row is not None:
            VerificationLock.objects.filter(pk=row.pk).update(**values)
        else:
            try:
                with transaction.atomic():
                    VerificationLock.objects.create(speaker_id=speaker_id, **fields, **values)
            except IntegrityError:  # another worker locked the same pair at the same moment
                return
        VerificationLock.objects.filter(speaker_id=speaker_id, locked_until__lt=now - MEMORY).delete()
    caller = {"api_key": fields["api_key"].prefix if fields["api_key"] else None,
              "client_address": fields["client_address"]}
    logger.warning("verifications of speaker %s locked for %d s for %s after %d rejections in a row", speaker_id,
                   seconds, f"key {caller['api_key']}" if caller["api_key"] else f"address {caller['client_address']}",
                   rejections)
    audit_record(actor=actor, action=AuditAction.VERIFY_LOCKOUT, speaker_id=speaker_id, decision="locked",
                 detail={"rejections": rejections, "locked_s": seconds, "lockout": lockouts, **caller})


def verification_locks_forget_expired(*, now=None) -> int:
    """Delete the locks that ended more than a day ago (their back-off is over); run by ``purge_expired``."""
    return VerificationLock.objects.filter(locked_until__lt=(now or timezone.now()) - MEMORY).delete()[0]


def verification_locks_lift(*, locks: QuerySet[VerificationLock], actor: Actor) -> int:
    """Lift ``locks`` (and forget their back-off and their counts of rejections); one audit event per speaker.

    Returns how many locks were lifted.
    """
    by_speaker: dict[uuid.UUID, list[VerificationLock]] = {}
    for lock in locks.select_related("api_key", "speaker"):
        by_speaker.setdefault(lock.speaker_id, []).append(lock)
    for speaker_id, rows in by_speaker.items():
        with transaction.atomic():
            VerificationLock.objects.filter(pk__in=[row.pk for row in rows]).delete()
            audit_record(actor=actor.in_tenant(rows[0].speaker.tenant), action=AuditAction.VERIFY_LOCK_LIFT,
                         speaker_id=speaker_id, decision="lifted",
                         detail={"locks": [{"api_key": row.api_key.prefix if row.api_key_id else None,
                                            "client_address": row.client_address} for row in rows]})
        cache.delete_many([_rejections_key(speaker_id, f"key_{row.api_key_id}" if row.api_key_id
                                           else f"address_{row.client_address}") for row in rows])
        logger.info("%s lifted %d verification lock(s) of speaker %s", actor.label, len(rows), speaker_id)
    return sum(len(rows) for rows in by_speaker.values())


def verification_lock_lift(*, speaker: Speaker, actor: Actor, key_prefix: str | None = None,
                           address: str | None = None) -> int:
    """Lift the speaker's locks: all of them, or only the key's (by its prefix) and/or the address's."""
    locks = VerificationLock.objects.filter(speaker=speaker)
    if key_prefix is not None or address is not None:
        chosen = Q(pk__in=[])
        if key_prefix is not None:
            chosen |= Q(api_key__prefix=key_prefix)
        if address is not None:
            chosen |= Q(client_address=address)
        locks = locks.filter(chosen)
    return verification_locks_lift(locks=locks, actor=actor)

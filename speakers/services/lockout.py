"""Verification lockout: no unlimited guessing against one speaker.

Counts rejected verifications of a speaker in a row (any key) on Django's cache (process memory,
or Redis shared by every worker); past VOICEPRINT_VERIFY_LOCKOUT_AFTER the speaker's
verifications pause for VOICEPRINT_VERIFY_LOCKOUT_S, doubling with every lockout of the day up to
VOICEPRINT_VERIFY_LOCKOUT_MAX_S. An accepted verification resets the count.
"""
from __future__ import annotations

import logging
import time
import uuid

from django.conf import settings
from django.core.cache import cache

from ..audit import Actor, audit_record
from ..exceptions import VerificationLocked
from ..models import AuditAction

logger = logging.getLogger(__name__)


def _lockout_keys(speaker_id: uuid.UUID) -> tuple[str, str, str]:
    return f"verify_rejections_{speaker_id}", f"verify_locked_until_{speaker_id}", f"verify_lockouts_{speaker_id}"


def verification_lock_check(*, speaker_id: uuid.UUID) -> None:
    """Refuse (429 verification_locked) while the speaker's verifications are locked."""
    _, locked_key, _ = _lockout_keys(speaker_id)
    until = cache.get(locked_key)
    if until is not None and until > time.time():
        wait = until - time.time()
        raise VerificationLocked(speaker_id=str(speaker_id), retry_after_s=round(wait, 1))


def verification_outcome_record(*, speaker_id: uuid.UUID, accepted: bool, actor: Actor) -> None:
    """Count one verification outcome of the speaker; lock their verifications when the rejections say so."""
    rejections_key, locked_key, lockouts_key = _lockout_keys(speaker_id)
    if accepted:
        cache.delete_many([rejections_key, lockouts_key])
        return
    day = 24 * 3600
    if cache.add(rejections_key, 1, day):
        rejections = 1
    else:
        try:
            rejections = cache.incr(rejections_key)
        except ValueError:
            rejections = 1
            cache.set(rejections_key, 1, day)
    if rejections < settings.VOICEPRINT_VERIFY_LOCKOUT_AFTER:
        return
    lockouts = cache.get(lockouts_key, 0) + 1
    seconds = min(settings.VOICEPRINT_VERIFY_LOCKOUT_S * 2 ** (lockouts - 1), settings.VOICEPRINT_VERIFY_LOCKOUT_MAX_S)
    cache.set_many({locked_key: time.time() + seconds, lockouts_key: lockouts}, day)
    cache.delete(rejections_key)
    logger.warning("verifications of speaker %s locked for %d s after %d rejections in a row", speaker_id, seconds,
                   rejections)
    audit_record(actor=actor, action=AuditAction.VERIFY_LOCKOUT, speaker_id=speaker_id, decision="locked",
                 detail={"rejections": rejections, "locked_s": seconds, "lockout": lockouts})

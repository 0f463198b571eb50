"""Rows that no longer authenticate: one damaged voiceprint affects only its speaker.

A voiceprint whose ciphertext fails AES-GCM authentication under its own key (the key id is a
hash of the key, so the bytes or the row changed) is marked: it leaves the search index, its
verifications answer ``voiceprint_unreadable``, health counts it, the admin shows it; the
mark goes when an enrollment rewrites the voiceprint. A row sealed with a key that is not
configured is a configuration fault (every such row fails alike), never marked.
"""
from __future__ import annotations

import logging
import uuid

import numpy as np

from . import crypto
from .audit import Actor, audit_record
from .exceptions import VoiceprintUnreadable
from .models import AuditAction, Speaker
from .selectors import speaker_voiceprint

logger = logging.getLogger(__name__)


def voiceprint_mark_unreadable(*, speaker_id: uuid.UUID, reason: str) -> None:
    """Record that a speaker's stored voiceprint no longer authenticates; logged and audited once."""
    if Speaker.objects.filter(pk=speaker_id, voiceprint_unreadable=False).update(voiceprint_unreadable=True):
        logger.error("the stored voiceprint of speaker %s cannot be read (%s): it is left out of search until "
                     "the speaker is enrolled again", speaker_id, reason)
        audit_record(actor=Actor.system(), action=AuditAction.VOICEPRINT_UNREADABLE, speaker_id=speaker_id,
                     detail={"reason": reason})


def voiceprint_of(speaker: Speaker) -> np.ndarray:
    """The speaker's decrypted voiceprint; a damaged row is marked and refused (VoiceprintUnreadable)."""
    if speaker.voiceprint_unreadable:
        raise VoiceprintUnreadable(speaker_id=str(speaker.id))
    try:
        return speaker_voiceprint(speaker=speaker)
    except crypto.CiphertextCorrupt as exc:
        voiceprint_mark_unreadable(speaker_id=speaker.id, reason=str(exc))
        raise VoiceprintUnreadable(speaker_id=str(speaker.id)) from exc


def enrollment_unreadable_record(*, speaker_id: uuid.UUID, enrollment_id: uuid.UUID, reason: str) -> None:
    """A damaged enrollment row counts for nothing in its voiceprint, and says so."""
    logger.error("enrollment %s of speaker %s cannot be read (%s): left out of the voiceprint",
                 enrollment_id, speaker_id, reason)
    audit_record(actor=Actor.system(), action=AuditAction.VOICEPRINT_UNREADABLE, speaker_id=speaker_id,
                 detail={"enrollment_id": str(enrollment_id), "reason": reason})

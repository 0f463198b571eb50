"""Reads: the API, the admin and the services look speakers and enrollments up through here."""
from __future__ import annotations

import uuid
from typing import Any

import numpy as np
from django.db.models import QuerySet

from . import crypto
from .engine import engine_status
from .exceptions import EnrollmentNotFound, InvalidApiKey, RevokedApiKey, SpeakerNotFound
from .models import ApiKey, Enrollment, Speaker


def _as_uuid(value: uuid.UUID | str) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def speaker_get(*, speaker_id: uuid.UUID | str) -> Speaker:
    key = _as_uuid(speaker_id)
    speaker = Speaker.objects.filter(pk=key).first() if key else None
    if speaker is None:
        raise SpeakerNotFound(speaker_id=str(speaker_id))
    return speaker


def speaker_list(*, external_id: str | None = None) -> QuerySet[Speaker]:
    speakers = Speaker.objects.all()
    if external_id:
        speakers = speakers.filter(external_id=external_id)
    return speakers


def enrollment_list(*, speaker: Speaker) -> QuerySet[Enrollment]:
    return Enrollment.objects.filter(speaker=speaker).defer("embedding_ciphertext")


def enrollment_get(*, speaker: Speaker, enrollment_id: uuid.UUID | str) -> Enrollment:
    key = _as_uuid(enrollment_id)
    enrollment = Enrollment.objects.filter(speaker=speaker, pk=key).first() if key else None
    if enrollment is None:
        raise EnrollmentNotFound(speaker_id=str(speaker.id), enrollment_id=str(enrollment_id))
    return enrollment


def speaker_voiceprint(*, speaker: Speaker) -> np.ndarray:
    """The speaker's decrypted voiceprint, float32 ``(192,)``; only ever held in memory."""
    return crypto.vector_decrypt(key_id=speaker.voiceprint_key_id, ciphertext=speaker.voiceprint_ciphertext,
                                 context=speaker.crypto_context())


def enrolled_speaker_count() -> int:
    return Speaker.objects.filter(voiceprint_ciphertext__isnull=False).count()


def health_status() -> dict[str, Any]:
    """Status for the health check; never loads the model."""
    return {"status": "ok", **engine_status(), "enrolled_speakers": enrolled_speaker_count()}


def api_key_authenticate(*, plain: str) -> ApiKey:
    """The active key matching ``plain``. Raises InvalidApiKey or RevokedApiKey."""
    prefix = crypto.api_key_prefix(plain)
    api_key = ApiKey.objects.filter(prefix=prefix).first() if prefix else None
    if api_key is None:
        crypto.api_key_matches(plain, "0" * 64)  # same work as a real check: no timing oracle on prefixes
        raise InvalidApiKey()
    if not crypto.api_key_matches(plain, api_key.hashed_key):
        raise InvalidApiKey()
    if api_key.revoked:
        raise RevokedApiKey()
    return api_key

"""Replays of audio the service has already heard: refused before they can pass for the person.

A voiceprint cannot tell a recording of the victim from the victim: the red team's replays of
enrollment files were accepted 11/11. So the service keeps, for each speaker, an audio
fingerprint (:mod:`inference.fingerprint`: hashes of spectral-peak pairs, never audio, never
invertible to audio) of every enrollment recording and of their last
``VOICEPRINT_REPLAY_RECENT_PROBES`` accepted probes, encrypted under the tenant's data key. A
probe that matches one of them - the same recording re-encoded, resampled, band-limited to 8 kHz,
in noise, a few percent faster or slower, played backwards, or snippets of it of about a second or
more - is refused with ``replay_detected`` and audited with the matched recording. What it does not
stop: a new recording of the person made elsewhere, or synthetic speech (docs/replay.md).

The check runs in the request's thread after decoding and before (verify) or right after
(identify: it needs the candidates) the forward pass; it costs a few to a few tens of milliseconds.
"""
from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from inference import PreparedAudio
from inference.fingerprint import Fingerprint, FingerprintError, fingerprint, match_many, probe_hashes

from .. import crypto
from ..audit import Actor, audit_record
from ..exceptions import ReplayDetected
from ..models import AuditAction, Enrollment, ReplayPrint, Speaker
from ..tenancy import tenant_data_key

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeardRecording:
    """The fingerprint of a recording in this request (computed once, matched, and perhaps remembered)."""

    print: Fingerprint
    duration_s: float


def recording_heard(prepared: PreparedAudio) -> HeardRecording | None:
    """The fingerprint of a prepared recording (the whole decoded signal), or None with replay checks off."""
    if not settings.VOICEPRINT_REPLAY_CHECK:
        return None
    return HeardRecording(print=fingerprint(prepared.signal), duration_s=float(prepared.duration_s))


def window_heard(samples, sample_rate: int) -> HeardRecording | None:
    """The fingerprint of a streamed window of PCM (at any rate), or None with replay checks off."""
    if not settings.VOICEPRINT_REPLAY_CHECK:
        return None
    from inference.audio import resample
    from inference.config import AudioConfig

    rate = AudioConfig().sample_rate
    signal = resample(samples, sample_rate, rate)
    return HeardRecording(print=fingerprint(signal), duration_s=signal.size / rate)


def _stored(speaker_ids: Iterable[uuid.UUID], model_version: str | None = None) -> list[tuple[ReplayPrint, Fingerprint]]:
    rows = ReplayPrint.objects.filter(speaker_id__in=list(speaker_ids))
    if model_version is not None:  # only the recordings enrolled in this model version's voiceprint
        rows = rows.filter(kind=ReplayPrint.Kind.ENROLLMENT, enrollment__model_version=model_version)
    found = []
    for row in rows.order_by("created_at", "id"):
        try:
            data = crypto.blob_decrypt(key_id=row.key_id, ciphertext=row.ciphertext, context=row.crypto_context())
            found.append((row, Fingerprint.from_bytes(data)))
        except (crypto.DecryptionError, FingerprintError) as exc:  # one damaged print never fails the request
            logger.error("replay print %s of speaker %s cannot be read (%s): skipped", row.id, row.speaker_id, exc)
    return found


def replay_check(*, heard: HeardRecording | None, speakers: Sequence[Speaker], actor: Actor, during: str,
                 enrolled_in: str | None = None) -> None:
    """Refuse a recording that replays one these speakers' stored recordings (``replay_detected``, audited).

    ``enrolled_in`` (an enrollment): only the recordings already enrolled for that model version count, so the
    same audio never counts twice in a voiceprint, while re-enrolling old files for a new model version works.
    """
    if heard is None or not speakers:
        return
    stored = _stored((speaker.id for speaker in speakers), enrolled_in)
    if not stored:
        return
    matches = match_many(probe_hashes(heard.print), [fp for _, fp in stored])
    best = max(((m, row) for m, (row, _) in zip(matches, stored) if m.matched),
               key=lambda pair: pair[0].score, default=None)
    if best is None:
        return
    match, row = best
    detail = {"during": during, "matched_print": str(row.id), "matched_kind": row.kind,
              "matched_enrollment": str(row.enrollment_id) if row.enrollment_id else None,
              "score": round(float(match.score), 2)}
    audit_record(actor=actor, action=AuditAction.REPLAY_DETECTED, speaker_id=row.speaker_id, decision="refused",
                 detail=detail)
    logger.warning("a %s recording replays %s %s of speaker %s: refused", during, row.kind, row.id, row.speaker_id)
    raise ReplayDetected(speaker_id=str(row.speaker_id), matched_recording=row.kind,
                         enrollment_id=detail["matched_enrollment"])


def _sealed(row: ReplayPrint, heard: HeardRecording) -> ReplayPrint:
    sealed = crypto.blob_encrypt(heard.print.to_bytes(), context=row.crypto_context(),
                                 key=tenant_data_key(row.speaker.tenant_id))
    row.ciphertext, row.key_id, row.duration_s = sealed.ciphertext, sealed.key_id, heard.duration_s
    return row


def enrollment_prints_store(*, pairs: Sequence[tuple[Enrollment, HeardRecording | None]]) -> None:
    """Keep the fingerprint of each new enrollment recording (in the enrollment's transaction)."""
    rows = [_sealed(ReplayPrint(speaker=enrollment.speaker, enrollment=enrollment, kind=ReplayPrint.Kind.ENROLLMENT),
                    heard) for enrollment, heard in pairs if heard is not None]
    ReplayPrint.objects.bulk_create(rows)


def probe_print_remember(*, speaker: Speaker, heard: HeardRecording | None) -> None:
    """Keep the fingerprint of an accepted probe, and only the speaker's last few."""
    if heard is None:
        return
    keep = settings.VOICEPRINT_REPLAY_RECENT_PROBES
    with transaction.atomic():
        if keep > 0:
            _sealed(ReplayPrint(speaker=speaker, kind=ReplayPrint.Kind.PROBE), heard).save()
        older = list(ReplayPrint.objects.filter(speaker=speaker, kind=ReplayPrint.Kind.PROBE)
                     .order_by("-created_at", "-id").values_list("id", flat=True)[keep:])
        if older:
            ReplayPrint.objects.filter(id__in=older).delete()

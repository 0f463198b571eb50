"""The fraudster watchlist: known fraudsters' voices, screened against every enrollment and verify probe.

Amazon Connect Voice ID kept one; so do we. An entry is a voiceprint made like a speaker's (the
mean of its recordings' embeddings, or a copy of an enrolled speaker's voiceprint), encrypted,
one per model version. Screening a recording is open-set identification against the watchlist
with the one identify rule (:meth:`inference.quality_calibration.Calibration.identify`) at the
watchlist's own false-identification target (``VOICEPRINT_WATCHLIST_FIR``): a hit is the best
entry passing that threshold, with a clear lead. A hit is audited (``watchlist_match``) and
reported in the answer; with ``VOICEPRINT_WATCHLIST_REFUSE`` the request is refused instead.
"""
from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db import transaction

from inference import EmbeddingResult, InferenceError, average_embeddings
from inference.quality_calibration import COSINE, SideQuality

from .. import crypto
from ..audit import Actor, audit_record
from ..exceptions import ApplicationError, RecordingsRefused, WatchlistMatch
from ..integrity import voiceprint_of
from ..models import AuditAction, Speaker, Tenant, WatchlistEntry, WatchlistVoiceprint
from ..runtime.process_local import ProcessLocal
from ..selectors import decision_policy
from ..tenancy import tenant_data_key
from .recordings import Purpose, Recording, Refusal, recordings_embed, side_quality

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WatchlistHit:
    """A recording that sounds like a watchlist entry: the entry, the calibrated score and its threshold."""

    entry_id: uuid.UUID
    label: str
    score: float
    threshold: float


# --- managing entries ------------------------------------------------------------------------------------

def watchlist_entry_create(*, label: str, notes: str = "", recordings: Sequence[Recording] = (),
                           speaker: Speaker | None = None, actor: Actor) -> WatchlistEntry:
    """A new entry of the actor's tenant (see below)."""
    return _entry_create(label=label, notes=notes, recordings=recordings, speaker=speaker, actor=actor,
                         tenant=speaker.tenant if speaker is not None else actor.tenant)


def _entry_create(*, label: str, notes: str, recordings: Sequence[Recording], speaker: Speaker | None,
                  actor: Actor, tenant: Tenant) -> WatchlistEntry:
    """A new entry from uploaded recordings (each must pass the enrollment gate) or from a speaker's voiceprint.

    Exactly one of ``recordings`` and ``speaker``. Refused recordings are left out; if every one is
    refused, nothing is stored (``RecordingsRefused``, or the one recording's own error).
    """
    if bool(recordings) == (speaker is not None):
        raise ValueError("a watchlist entry is made from recordings or from a speaker, not both")
    if speaker is not None:
        vector, model_version = voiceprint_of(speaker), speaker.voiceprint_model_version
        quality = SideQuality(speech_s=speaker.voiceprint_speech_s, snr_db=speaker.voiceprint_snr_db,
                              bandwidth_hz=speaker.voiceprint_bandwidth_hz)
        source, refused = "speaker", []
    else:
        vector, model_version, quality, refused = _voice_of(recordings)
        source = "recordings"
    with transaction.atomic():
        entry = WatchlistEntry.objects.create(tenant=tenant, label=label[:255], notes=notes, created_by=actor.label[:150],
                                              source=source, source_speaker_id=speaker.id if speaker else None)
        voiceprint = WatchlistVoiceprint(entry=entry, model_version=model_version, speech_s=quality.speech_s,
                                         snr_db=quality.snr_db, bandwidth_hz=quality.bandwidth_hz)
        sealed = crypto.vector_encrypt(vector, context=voiceprint.crypto_context(), key=tenant_data_key(entry.tenant_id))
        voiceprint.ciphertext, voiceprint.key_id = sealed.ciphertext, sealed.key_id
        voiceprint.save()
        audit_record(actor=actor, action=AuditAction.WATCHLIST_ADD, speaker_id=speaker.id if speaker else None,
                     tenant=tenant,
                     decision="added", detail={"entry_id": str(entry.id), "source": source,
                                               "model_version": model_version, "speech_s": round(quality.speech_s, 2),
                                               "refused": [r.code for r in refused]})
    return entry


def _voice_of(recordings: Sequence[Recording]) -> tuple[np.ndarray, str, SideQuality, list[Refusal]]:
    results = recordings_embed(recordings=list(recordings), purpose=Purpose.ENROLLMENT)
    usable = [r for r in results if isinstance(r, EmbeddingResult)]
    refused = [Refusal.from_error(rec.filename, r) for rec, r in zip(recordings, results)
               if isinstance(r, (InferenceError, ApplicationError))]
    if not usable:
        if len(recordings) == 1:
            error = results[0]
            assert isinstance(error, (InferenceError, ApplicationError))
            error.detail.setdefault("filename", recordings[0].filename)
            raise error
        raise RecordingsRefused(files=[r.__dict__ for r in refused])
    quality = SideQuality(speech_s=float(sum(r.speech_s for r in usable)),
                          snr_db=float(np.mean([r.quality.snr_db for r in usable])),
                          bandwidth_hz=float(np.mean([r.quality.bandwidth_hz for r in usable])))
    return average_embeddings([r.vector for r in usable]), usable[0].model_version, quality, refused


def watchlist_entry_delete(*, entry: WatchlistEntry, actor: Actor) -> None:
    with transaction.atomic():
        audit_record(actor=actor, action=AuditAction.WATCHLIST_REMOVE, decision="removed", tenant=entry.tenant_id,
                     detail={"entry_id": str(entry.id), "label": entry.label})
        entry.delete()


# --- screening -------------------------------------------------------------------------------------------

class _Decrypted:
    """This process's decrypted watchlist of one model version, reread when the table changes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.key: tuple | None = None
        self.entries: list[tuple[uuid.UUID, str, np.ndarray, SideQuality]] = []


_cache: ProcessLocal[_Decrypted] = ProcessLocal(_Decrypted)


def _entries(model_version: str, tenant: Tenant) -> list[tuple[uuid.UUID, str, np.ndarray, SideQuality]]:
    rows = WatchlistVoiceprint.objects.filter(model_version=model_version, entry__tenant=tenant)
    # which rows hold which entry's ciphertext under which key: any change (added, removed, re-sealed) rereads
    key = (model_version, tenant.pk, tuple(rows.order_by("id").values_list("id", "entry_id", "key_id")))
    cache = _cache.get()
    with cache.lock:
        if cache.key != key:
            entries = []
            for row in rows.select_related("entry"):
                try:
                    vector = crypto.vector_decrypt(key_id=row.key_id, ciphertext=row.ciphertext,
                                                   context=row.crypto_context())
                except crypto.DecryptionError as exc:
                    logger.error("watchlist entry %s cannot be read (%s): it is not screened", row.entry_id, exc)
                    continue
                entries.append((row.entry_id, row.entry.label, vector,
                                SideQuality(speech_s=row.speech_s, snr_db=row.snr_db, bandwidth_hz=row.bandwidth_hz)))
            cache.entries, cache.key = entries, key
        return cache.entries


def watchlist_screen(*, result: EmbeddingResult, tenant: Tenant) -> WatchlistHit | None:
    """The tenant's watchlist entry this recording's voice matches, or None (also when its watchlist is empty)."""
    entries = _entries(result.model_version, tenant)
    if not entries:
        return None
    policy = decision_policy(model_version=result.model_version, tenant=tenant)
    scores = np.clip(np.stack([vector for _, _, vector, _ in entries]) @ result.vector, -1.0, 1.0).astype(np.float64)
    verdict = policy.calibration.identify(scale=COSINE, scores=scores, enroll=[q for _, _, _, q in entries],
                                          probe=side_quality(result), fir=settings.VOICEPRINT_WATCHLIST_FIR,
                                          gallery=len(entries))
    if not verdict.matched:
        return None
    best = verdict.best
    return WatchlistHit(entry_id=entries[best][0], label=entries[best][1], score=float(verdict.llrs[best]),
                        threshold=verdict.threshold)


def watchlist_hit_record(*, hit: WatchlistHit | None, actor: Actor, during: str, tenant: Tenant,
                         speaker_id: uuid.UUID | None = None) -> None:
    """Audit a hit (``during``: enroll, verify); with ``VOICEPRINT_WATCHLIST_REFUSE`` refuse the request."""
    if hit is None:
        return
    refuse = settings.VOICEPRINT_WATCHLIST_REFUSE
    audit_record(actor=actor, action=AuditAction.WATCHLIST_MATCH, speaker_id=speaker_id, tenant=tenant,
                 decision="refused" if refuse else "reported", score=hit.score, threshold=hit.threshold,
                 detail={"entry_id": str(hit.entry_id), "during": during})
    logger.warning("a %s recording matched watchlist entry %s", during, hit.entry_id)
    if refuse:
        raise WatchlistMatch(entry_id=str(hit.entry_id), score=round(hit.score, 3),
                             threshold=round(hit.threshold, 3))

"""Writes and decisions: every operation of the API, the admin and the commands goes through here.

One module per concern: :mod:`.recordings` (uploads and the quality gate), :mod:`.speakers`,
:mod:`.enrollment`, :mod:`.decisions` (verify, identify, compare, batch-verify),
:mod:`.lockout`, :mod:`.api_keys`, :mod:`.key_rotation`; :mod:`.calibration` is offline
tooling for the management commands and is not imported here. Services take model objects
(a ``Speaker``, an ``ApiKey``), never HTTP names; views resolve ids with :mod:`speakers.selectors`.
"""
from __future__ import annotations

from ..audit import Actor, audit_record
from .api_keys import api_key_create, api_key_issue, api_key_revoke, api_key_touch
from .decisions import (
    BatchDecision,
    BatchItem,
    Candidate,
    CompareDecision,
    IdentifyDecision,
    VerifyDecision,
    recordings_batch_verify,
    recordings_compare,
    speaker_identify,
    speaker_verify,
)
from .enrollment import EnrollOutcome, enrollment_delete, speaker_enroll
from .key_rotation import RotationReport, encryption_keys_rotate
from .recordings import Purpose, Recording, Refusal, recording_check_quality
from .speakers import speaker_create, speaker_delete, speaker_update

__all__ = [
    "Actor", "audit_record",
    "api_key_create", "api_key_issue", "api_key_revoke", "api_key_touch",
    "BatchDecision", "BatchItem", "Candidate", "CompareDecision", "IdentifyDecision", "VerifyDecision",
    "recordings_batch_verify", "recordings_compare", "speaker_identify", "speaker_verify",
    "EnrollOutcome", "enrollment_delete", "speaker_enroll",
    "RotationReport", "encryption_keys_rotate",
    "Purpose", "Recording", "Refusal", "recording_check_quality",
    "speaker_create", "speaker_delete", "speaker_update",
]

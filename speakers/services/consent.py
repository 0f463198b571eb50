"""Consent on record and opt-out blocks: the checks other services make (the operations are :mod:`.privacy`)."""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from ..exceptions import ConsentRequired, OptedOut
from ..models import OptOut, Speaker, Tenant


@dataclass(frozen=True)
class Consent:
    """The caller's record of a person's consent (the form or recording is the caller's; only its reference is here)."""

    reference: str
    notice_version: str = ""
    purpose: str = ""
    given_at: dt.datetime | None = None

    def apply_to(self, speaker: Speaker) -> None:
        speaker.consent_reference = self.reference[:255]
        speaker.consent_notice_version = self.notice_version[:64]
        speaker.consent_purpose = self.purpose[:255]
        speaker.consent_given_at = self.given_at or timezone.now()


CONSENT_FIELDS = ["consent_reference", "consent_notice_version", "consent_purpose", "consent_given_at"]


def consent_required_check(*, speaker: Speaker) -> None:
    """Refuse to enroll a speaker without consent when the deployment requires it."""
    if settings.VOICEPRINT_REQUIRE_CONSENT and not speaker.has_consent:
        raise ConsentRequired(speaker_id=str(speaker.id))


def external_id_hash(*, tenant: Tenant | uuid.UUID, external_id: str) -> str:
    """A keyed hash of an external id (HMAC-SHA-256 under ``VOICEPRINT_OPT_OUT_HASH_KEY``), per tenant."""
    tenant_id = tenant.pk if isinstance(tenant, Tenant) else tenant
    message = f"opt-out:{tenant_id}:{external_id}".encode()
    return hmac.new(settings.VOICEPRINT_OPT_OUT_HASH_KEY.encode(), message, hashlib.sha256).hexdigest()


def opt_out_check(*, tenant: Tenant | uuid.UUID, external_id: str) -> None:
    """Refuse an external id whose person opted out in this tenant."""
    if OptOut.objects.filter(tenant=tenant, external_id_hash=external_id_hash(tenant=tenant,
                                                                              external_id=external_id)).exists():
        raise OptedOut()



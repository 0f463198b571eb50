"""What every view shares: the actor and recordings of a request, upload fields, the shared output shapes."""
from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import empty
from rest_framework.request import Request

from ... import selectors
from ...models import ApiKeyScope, Tenant
from ...services import Actor, Recording
from ...services.consent import Consent
from ..clients import client_address
from ..schema import ErrorOutput
from ..validators import validate_metadata

ENROLL, VERIFY, IDENTIFY, MANAGE, WATCHLIST = (ApiKeyScope.ENROLL, ApiKeyScope.VERIFY, ApiKeyScope.IDENTIFY,
                                               ApiKeyScope.MANAGE, ApiKeyScope.WATCHLIST)


def request_actor(request: Request) -> Actor:
    return Actor.from_api_key(request.auth, client_address=client_address(request))


def request_tenant(request: Request) -> Tenant:
    """The tenant of the request's API key: every object it names is looked up there."""
    return request.auth.tenant


def request_query(request: Request) -> dict[str, str]:
    """The query string as one value per name, for a query serializer: a name given twice is refused (400
    validation_error) rather than silently taking its last value, and an empty value stays a value (a choice
    field refuses it) instead of reading as an absent parameter."""
    repeated = sorted(name for name, values in request.query_params.lists() if len(values) > 1)
    if repeated:
        raise serializers.ValidationError({name: ["Give this parameter once."] for name in repeated})
    return {name: values[0] for name, values in request.query_params.lists()}


def request_recording(upload, field: str | None = None) -> Recording:
    """An uploaded file as the services take it; ``field`` names the form field in errors about it."""
    return Recording(filename=upload.name or "", data=upload.read(), field=field)


@extend_schema_field({"type": "boolean", "default": settings.VOICEPRINT_ASNORM,
                      "description": "Score with AS-norm (true) or the raw cosine (false); left out: the deployment's "
                                     "setting (the default shown)."})
class ScoreNormalisationField(serializers.BooleanField):
    """``asnorm=true|false``; left out, the deployment's default (VOICEPRINT_ASNORM) applies."""

    default_empty_html = empty  # a multipart form without the field means "not given", not false

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("help_text", "Score with AS-norm (true) or raw cosine (false); default: the "
                                       "deployment's setting. Normalised scores have their own thresholds.")
        super().__init__(**kwargs)


class AudioFileField(serializers.FileField):
    """An uploaded recording; empty files go on to the engine, which names the problem (audio_empty)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("allow_empty_file", True)
        super().__init__(**kwargs)


class MultipartInput(serializers.Serializer):
    """A form whose single-file fields refuse a second file (it used to be silently dropped)."""

    def to_internal_value(self, data):
        errors = {}
        for name, field in self.fields.items():
            if isinstance(field, AudioFileField) and hasattr(data, "getlist") and len(data.getlist(name)) > 1:
                errors[name] = [f"Send one file in this field, not {len(data.getlist(name))}."]
        if errors:
            raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


# --- figures as a person reads them --------------------------------------------------------------

class Rounded(serializers.FloatField):
    """A figure rounded for reading: ``decimals`` places. Decisions use the exact values (``accepted`` is the
    decision: a score and threshold that round alike can still fall either side)."""

    def __init__(self, decimals: int, **kwargs):
        self.decimals = decimals
        super().__init__(**kwargs)

    def to_representation(self, value):
        return round(float(value), self.decimals)


def Score(**kwargs) -> Rounded:  # noqa: N802 - a field type, named like one
    """A score, threshold or cosine: three decimals."""
    return Rounded(3, **kwargs)


def Decibels(**kwargs) -> Rounded:  # noqa: N802
    return Rounded(1, **kwargs)


def Seconds(**kwargs) -> Rounded:  # noqa: N802
    return Rounded(2, **kwargs)


def Milliseconds(**kwargs) -> Rounded:  # noqa: N802
    return Rounded(1, **kwargs)


def Ratio(**kwargs) -> Rounded:  # noqa: N802
    return Rounded(4, **kwargs)


# --- shared output shapes ------------------------------------------------------------------------

class EnrollmentProgressOutput(serializers.Serializer):
    speech_s = Seconds(help_text="Net speech of the voiceprint's enrollments, seconds.")
    required_s = Seconds(help_text="Net speech a usable voiceprint needs.")
    complete = serializers.BooleanField(help_text="True once the voiceprint can be verified and identified.")
    text = serializers.CharField(help_text='e.g. "4.2 of 6 s"')


class ConsentInput(serializers.Serializer):
    """The caller's record of the person's consent (the form or recording itself stays with the caller)."""

    reference = serializers.CharField(max_length=255, help_text="Your id of the signed form or recorded consent.")
    notice_version = serializers.CharField(required=False, allow_blank=True, default="", max_length=64,
                                           help_text="The version of the privacy notice the person agreed to.")
    purpose = serializers.CharField(required=False, allow_blank=True, default="", max_length=255,
                                    help_text='What the voice is used for, e.g. "caller verification".')
    given_at = serializers.DateTimeField(required=False, allow_null=True, default=None,
                                         help_text="When consent was given (default: now).")

    def to_consent(self) -> Consent:
        return Consent(**self.validated_data)


class ConsentOutput(serializers.Serializer):
    reference = serializers.CharField(allow_null=True)
    notice_version = serializers.CharField(allow_null=True)
    purpose = serializers.CharField(allow_null=True)
    given_at = serializers.DateTimeField(allow_null=True)


def consent_of(speaker) -> dict | None:
    if not speaker.has_consent:
        return None
    return {"reference": speaker.consent_reference, "notice_version": speaker.consent_notice_version or None,
            "purpose": speaker.consent_purpose or None, "given_at": speaker.consent_given_at}



class SpeakerOutput(serializers.Serializer):
    id = serializers.UUIDField()
    external_id = serializers.CharField(allow_null=True)
    display_name = serializers.CharField()
    metadata = serializers.JSONField()
    enrollment_count = serializers.IntegerField()
    enrolled = serializers.SerializerMethodField(
        help_text="True when voiceprint_status is complete: a voiceprint of the serving model, verified and "
                  "identified (a partial one is verified and identified with ECAPA alone until enrolled again).")
    voiceprint_status = serializers.SerializerMethodField(
        help_text="none (no recording yet), incomplete (less net speech than required), complete, partial "
                  "(made by one network of the fused engine, ECAPA, before fusion was turned on: verified and "
                  "identified with it alone; re-enroll for both), outdated (made by another model version: re-enroll) "
                  "or unreadable (damaged: re-enroll).")
    model_version = serializers.SerializerMethodField(help_text="Model version of the voiceprint.")
    enrollment_progress = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    last_verified_at = serializers.DateTimeField(allow_null=True)
    last_identified_at = serializers.DateTimeField(allow_null=True)
    last_used_at = serializers.DateTimeField(allow_null=True, help_text=(
        "The last enrollment, accepted verification or identify match: the tenant's retention period counts from it."))
    consent = serializers.SerializerMethodField(help_text="The person's consent on record, or null.")

    def _status(self, speaker) -> selectors.VoiceprintStatus:
        # The loaded model's version, looked up once per response (a list shows many speakers).
        context = self.context if isinstance(self.context, dict) else {}
        if "model_version" not in context:
            context["model_version"] = selectors.current_model_version()
            context["part_versions"] = selectors.part_model_versions()
        return selectors.voiceprint_status(speaker=speaker, model_version=context["model_version"],
                                           part_versions=context.get("part_versions"))

    def get_enrolled(self, speaker) -> bool:
        return self._status(speaker) is selectors.VoiceprintStatus.COMPLETE

    @extend_schema_field(serializers.ChoiceField(choices=[s.value for s in selectors.VoiceprintStatus]))
    def get_voiceprint_status(self, speaker) -> str:
        return self._status(speaker).value

    def get_model_version(self, speaker) -> str | None:
        return speaker.voiceprint_model_version or None

    @extend_schema_field(ConsentOutput(allow_null=True))
    def get_consent(self, speaker):
        consent = consent_of(speaker)
        return None if consent is None else ConsentOutput(consent).data

    @extend_schema_field(EnrollmentProgressOutput)
    def get_enrollment_progress(self, speaker):
        return EnrollmentProgressOutput(selectors.enrollment_progress(speaker=speaker)).data


class QualityOutput(serializers.Serializer):
    clipping_ratio = Ratio()
    snr_db = Decibels()
    speech_ratio = Ratio()


class EnrollmentOutput(serializers.Serializer):
    id = serializers.UUIDField()
    speaker_id = serializers.UUIDField()
    filename = serializers.CharField()
    model_version = serializers.CharField()
    duration_s = Seconds()
    speech_s = Seconds()
    quality = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    @extend_schema_field(QualityOutput)
    def get_quality(self, enrollment):
        return {"clipping_ratio": enrollment.clipping_ratio, "snr_db": enrollment.snr_db,
                "speech_ratio": enrollment.speech_ratio}


class RefusalOutput(serializers.Serializer):
    filename = serializers.CharField()
    error = serializers.SerializerMethodField()

    @extend_schema_field(ErrorOutput)
    def get_error(self, refusal):
        return {"code": refusal.code, "message": refusal.message, "detail": refusal.detail}


class TextField(serializers.CharField):
    """Text, and only text: DRF's CharField would take the number 42 as "42", which the schema does not say."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class SpeakerFields(serializers.Serializer):
    external_id = TextField(required=False, allow_null=True, allow_blank=True, max_length=255)
    display_name = TextField(required=False, allow_blank=True, max_length=255)
    metadata = serializers.JSONField(required=False)

    def validate_metadata(self, value):
        return validate_metadata(value)


class WatchlistMatchOutput(serializers.Serializer):
    entry_id = serializers.UUIDField()
    label = serializers.CharField()
    score = Score(help_text="Calibrated score of the recording against the entry (llr).")
    threshold = Score(help_text="The score a watchlist hit needs (VOICEPRINT_WATCHLIST_FIR).")


WATCHLIST_MATCH_HELP = ("The fraud watchlist entry this voice matches, or null. A hit is audited; with "
                        "VOICEPRINT_WATCHLIST_REFUSE the request is refused (403 watchlist_match) instead.")


EXPLANATION_HELP = ("The decision in a sentence: the score against its threshold, and what a negative threshold "
                    "means when there is one.")


def decision_explanation(decision) -> str:
    """``score`` against ``threshold`` in words (the numbers as the answer shows them)."""
    score, threshold = round(decision.score, 3), round(decision.threshold, 3)
    verdict = (f"Accepted: the score {score:g} reaches the threshold {threshold:g}." if decision.accepted
               else f"Rejected: the score {score:g} is below the threshold {threshold:g}.")
    if threshold < 0:
        verdict += (" The threshold is negative because, for recordings of this quality, the false-accept target "
                    "is met even when the evidence leans slightly towards two different people (a score of 0 is "
                    "as likely either way).")
    return verdict

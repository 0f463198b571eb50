"""HTTP API, version 1. Views are thin: validate, call one selector or service, serialise.

Authentication (X-API-Key) and scopes are checked before the body is read, so an
unauthorised upload is refused without being parsed. Uploads arrive in memory
(speakers/uploads.py) and are handed to the services as bytes.
"""
from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.fields import empty
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import score_normalisation, selectors, services
from ..models import ApiKeyScope
from ..services import Actor, Recording
from .pagination import SpeakerPagination

ENROLL, VERIFY, IDENTIFY, MANAGE = (ApiKeyScope.ENROLL, ApiKeyScope.VERIFY, ApiKeyScope.IDENTIFY,
                                    ApiKeyScope.MANAGE)


def _actor(request: Request) -> Actor:
    return Actor.from_api_key(request.auth)


def _recording(upload) -> Recording:
    return Recording(filename=upload.name or "", data=upload.read())


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


# --- shared output shapes ------------------------------------------------------------------------

class EnrollmentProgressOutput(serializers.Serializer):
    speech_s = serializers.FloatField(help_text="Net speech of the voiceprint's enrollments, seconds.")
    required_s = serializers.FloatField(help_text="Net speech a usable voiceprint needs.")
    complete = serializers.BooleanField(help_text="True once the voiceprint can be verified and identified.")
    text = serializers.CharField(help_text='e.g. "4.2 of 6 s"')


class SpeakerOutput(serializers.Serializer):
    id = serializers.UUIDField()
    external_id = serializers.CharField(allow_null=True)
    display_name = serializers.CharField()
    metadata = serializers.JSONField()
    enrollment_count = serializers.IntegerField()
    enrolled = serializers.BooleanField(source="has_voiceprint",
                                        help_text="True once the speaker has a voiceprint.")
    model_version = serializers.SerializerMethodField(help_text="Model version of the voiceprint.")
    enrollment_progress = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    last_verified_at = serializers.DateTimeField(allow_null=True)
    last_identified_at = serializers.DateTimeField(allow_null=True)

    def get_model_version(self, speaker) -> str | None:
        return speaker.voiceprint_model_version or None

    @extend_schema_field(EnrollmentProgressOutput)
    def get_enrollment_progress(self, speaker):
        return EnrollmentProgressOutput(selectors.enrollment_progress(speaker=speaker)).data


class QualityOutput(serializers.Serializer):
    clipping_ratio = serializers.FloatField()
    snr_db = serializers.FloatField()
    speech_ratio = serializers.FloatField()


class EnrollmentOutput(serializers.Serializer):
    id = serializers.UUIDField()
    speaker_id = serializers.UUIDField()
    filename = serializers.CharField()
    model_version = serializers.CharField()
    duration_s = serializers.FloatField()
    speech_s = serializers.FloatField()
    quality = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    @extend_schema_field(QualityOutput)
    def get_quality(self, enrollment):
        return {"clipping_ratio": enrollment.clipping_ratio, "snr_db": enrollment.snr_db,
                "speech_ratio": enrollment.speech_ratio}


class ErrorOutput(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    detail = serializers.JSONField()


class RefusalOutput(serializers.Serializer):
    filename = serializers.CharField()
    error = serializers.SerializerMethodField()

    @extend_schema_field(ErrorOutput)
    def get_error(self, refusal):
        return {"code": refusal.code, "message": refusal.message, "detail": refusal.detail}


class SpeakerFields(serializers.Serializer):
    external_id = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=255)
    display_name = serializers.CharField(required=False, allow_blank=True, max_length=255)
    metadata = serializers.JSONField(required=False)

    def validate_metadata(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("metadata must be a JSON object.")
        return value


# --- health ------------------------------------------------------------------------------------------

class HealthApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    class HealthOutput(serializers.Serializer):
        status = serializers.CharField()
        model_version = serializers.CharField(allow_null=True)
        model_loaded = serializers.BooleanField()
        model_prepared = serializers.BooleanField()
        enrolled_speakers = serializers.IntegerField()

    @extend_schema(responses=HealthOutput, tags=["health"], auth=[])
    def get(self, request: Request) -> Response:
        return Response(self.HealthOutput(selectors.health_status()).data)


class ReadinessApi(APIView):
    """200 once this process answers without waiting for the model, 503 before (for load balancers)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    class ReadinessOutput(serializers.Serializer):
        ready = serializers.BooleanField()
        status = serializers.CharField()

    @extend_schema(responses={200: ReadinessOutput, 503: ReadinessOutput}, tags=["health"], auth=[])
    def get(self, request: Request) -> Response:
        readiness = selectors.readiness_status()
        return Response(self.ReadinessOutput(readiness).data, status=200 if readiness["ready"] else 503)


# --- speakers ------------------------------------------------------------------------------------------

class SpeakerCollectionApi(APIView):
    required_scopes = {"GET": {ENROLL, MANAGE}, "POST": {ENROLL, MANAGE}}
    parser_classes = [JSONParser]

    class SpeakerCreateInput(SpeakerFields):
        pass

    @extend_schema(operation_id="speakers_list", responses=SpeakerOutput(many=True), tags=["speakers"],
                   parameters=[OpenApiParameter("external_id", str, description="Exact external_id.")])
    def get(self, request: Request) -> Response:
        speakers = selectors.speaker_list(external_id=request.query_params.get("external_id"))
        paginator = SpeakerPagination()
        page = paginator.paginate_queryset(speakers, request, view=self)
        return paginator.get_paginated_response(SpeakerOutput(page, many=True).data)

    @extend_schema(operation_id="speakers_create", request=SpeakerCreateInput, responses={201: SpeakerOutput},
                   tags=["speakers"])
    def post(self, request: Request) -> Response:
        data = self.SpeakerCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        speaker = services.speaker_create(actor=_actor(request), **data.validated_data)
        return Response(SpeakerOutput(speaker).data, status=status.HTTP_201_CREATED)


class SpeakerDetailApi(APIView):
    required_scopes = {"GET": {ENROLL, MANAGE}, "PATCH": {MANAGE}, "DELETE": {MANAGE}}
    parser_classes = [JSONParser]

    class SpeakerUpdateInput(SpeakerFields):
        pass

    @extend_schema(operation_id="speakers_retrieve", responses=SpeakerOutput, tags=["speakers"])
    def get(self, request: Request, speaker_id: str) -> Response:
        return Response(SpeakerOutput(selectors.speaker_get(speaker_id=speaker_id)).data)

    @extend_schema(operation_id="speakers_update", request=SpeakerUpdateInput, responses=SpeakerOutput,
                   tags=["speakers"])
    def patch(self, request: Request, speaker_id: str) -> Response:
        speaker = selectors.speaker_get(speaker_id=speaker_id)
        data = self.SpeakerUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        speaker = services.speaker_update(speaker=speaker, actor=_actor(request), **data.validated_data)
        return Response(SpeakerOutput(speaker).data)

    @extend_schema(operation_id="speakers_destroy", responses={204: None}, tags=["speakers"])
    def delete(self, request: Request, speaker_id: str) -> Response:
        speaker = selectors.speaker_get(speaker_id=speaker_id)
        services.speaker_delete(speaker=speaker, actor=_actor(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- enrollments ---------------------------------------------------------------------------------------

class SpeakerEnrollApi(APIView):
    """POST: enroll recordings. GET: the speaker's enrollments (metadata only)."""

    required_scopes = {"GET": {ENROLL, MANAGE}, "POST": {ENROLL}}
    parser_classes = [MultiPartParser]

    class SpeakerEnrollInput(serializers.Serializer):
        audio = serializers.ListField(child=AudioFileField(), min_length=1,
                                      help_text="One or more recordings (repeat the field).")

    class SpeakerEnrollOutput(serializers.Serializer):
        speaker = SpeakerOutput()
        accepted = EnrollmentOutput(many=True)
        refused = RefusalOutput(many=True)
        enrollment_progress = EnrollmentProgressOutput()
        processing_time_ms = serializers.FloatField()

    @extend_schema(operation_id="enrollments_list", responses=EnrollmentOutput(many=True), tags=["enrollments"])
    def get(self, request: Request, speaker_id: str) -> Response:
        speaker = selectors.speaker_get(speaker_id=speaker_id)
        return Response(EnrollmentOutput(selectors.enrollment_list(speaker=speaker), many=True).data)

    @extend_schema(operation_id="enrollments_create", request={"multipart/form-data": SpeakerEnrollInput},
                   responses={201: SpeakerEnrollOutput}, tags=["enrollments"])
    def post(self, request: Request, speaker_id: str) -> Response:
        speaker = selectors.speaker_get(speaker_id=speaker_id)
        data = self.SpeakerEnrollInput(data=request.data)
        data.is_valid(raise_exception=True)
        outcome = services.speaker_enroll(speaker=speaker, actor=_actor(request),
                                          recordings=[_recording(f) for f in data.validated_data["audio"]])
        return Response(self.SpeakerEnrollOutput(outcome).data, status=status.HTTP_201_CREATED)


class EnrollmentDetailApi(APIView):
    required_scopes = {"DELETE": {MANAGE}}

    @extend_schema(operation_id="enrollments_destroy", responses={204: None}, tags=["enrollments"])
    def delete(self, request: Request, speaker_id: str, enrollment_id: str) -> Response:
        speaker = selectors.speaker_get(speaker_id=speaker_id)
        enrollment = selectors.enrollment_get(speaker=speaker, enrollment_id=enrollment_id)
        services.enrollment_delete(enrollment=enrollment, actor=_actor(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- decisions -------------------------------------------------------------------------------------------

class VerifyApi(APIView):
    required_scopes = {"POST": {VERIFY}}
    parser_classes = [MultiPartParser]

    class VerifyInput(serializers.Serializer):
        speaker_id = serializers.UUIDField()
        audio = AudioFileField()
        asnorm = ScoreNormalisationField()

    class VerifyOutput(serializers.Serializer):
        speaker_id = serializers.UUIDField()
        score = serializers.FloatField(help_text="The decision score: raw_score, or its AS-norm when "
                                                 "score_normalisation is asnorm.")
        raw_score = serializers.FloatField(help_text="Cosine similarity in [-1, 1].")
        score_normalisation = serializers.ChoiceField(choices=["none", "asnorm"])
        threshold = serializers.FloatField(help_text="On the scale of score.")
        accepted = serializers.BooleanField(help_text="score >= threshold")
        model_version = serializers.CharField()
        processing_time_ms = serializers.FloatField()

    @extend_schema(request={"multipart/form-data": VerifyInput}, responses=VerifyOutput, tags=["decisions"])
    def post(self, request: Request) -> Response:
        data = self.VerifyInput(data=request.data)
        data.is_valid(raise_exception=True)
        decision = services.speaker_verify(speaker_id=data.validated_data["speaker_id"], actor=_actor(request),
                                           recording=_recording(data.validated_data["audio"]),
                                           asnorm=data.validated_data.get("asnorm"))
        return Response(self.VerifyOutput(decision).data)


class CandidateOutput(serializers.Serializer):
    speaker_id = serializers.UUIDField()
    external_id = serializers.CharField(allow_null=True)
    display_name = serializers.CharField()
    score = serializers.FloatField()
    raw_score = serializers.FloatField()


class IdentifyApi(APIView):
    required_scopes = {"POST": {IDENTIFY}}
    parser_classes = [MultiPartParser]

    class IdentifyInput(serializers.Serializer):
        audio = AudioFileField()
        top_k = serializers.IntegerField(required=False, default=5, min_value=1)
        asnorm = ScoreNormalisationField()

        def validate_top_k(self, value: int) -> int:
            if value > settings.VOICEPRINT_MAX_TOP_K:
                raise serializers.ValidationError(f"top_k must be at most {settings.VOICEPRINT_MAX_TOP_K}.")
            return value

    class IdentifyOutput(serializers.Serializer):
        candidates = CandidateOutput(many=True)
        match = CandidateOutput(allow_null=True, help_text="The best candidate if its score >= threshold and it "
                                                           "leads the runner-up by >= margin.")
        threshold = serializers.FloatField()
        margin = serializers.FloatField(help_text="Lead over the runner-up a match needs.")
        runner_up_score = serializers.FloatField(allow_null=True, help_text="Score of the second best voiceprint.")
        no_match_reason = serializers.ChoiceField(
            choices=["no_candidates", "below_threshold", "ambiguous"], allow_null=True)
        score_normalisation = serializers.ChoiceField(choices=["none", "asnorm"])
        model_version = serializers.CharField()
        processing_time_ms = serializers.FloatField()

    @extend_schema(request={"multipart/form-data": IdentifyInput}, responses=IdentifyOutput, tags=["decisions"])
    def post(self, request: Request) -> Response:
        data = self.IdentifyInput(data=request.data)
        data.is_valid(raise_exception=True)
        decision = services.speaker_identify(recording=_recording(data.validated_data["audio"]),
                                             top_k=data.validated_data["top_k"], actor=_actor(request),
                                             asnorm=data.validated_data.get("asnorm"))
        return Response(self.IdentifyOutput(decision).data)


class CompareApi(APIView):
    required_scopes = {"POST": {VERIFY}}
    parser_classes = [MultiPartParser]

    class CompareInput(serializers.Serializer):
        reference = AudioFileField()
        test = AudioFileField()
        asnorm = ScoreNormalisationField()

    class CompareOutput(serializers.Serializer):
        similarity = serializers.FloatField(help_text="Cosine similarity in [-1, 1] (= raw_score).")
        score = serializers.FloatField(help_text="The decision score.")
        raw_score = serializers.FloatField()
        score_normalisation = serializers.ChoiceField(choices=["none", "asnorm"])
        threshold = serializers.FloatField()
        accepted = serializers.BooleanField()
        model_version = serializers.CharField()
        processing_time_ms = serializers.FloatField()

    @extend_schema(request={"multipart/form-data": CompareInput}, responses=CompareOutput, tags=["decisions"])
    def post(self, request: Request) -> Response:
        data = self.CompareInput(data=request.data)
        data.is_valid(raise_exception=True)
        decision = services.recordings_compare(reference=_recording(data.validated_data["reference"]),
                                               test=_recording(data.validated_data["test"]), actor=_actor(request),
                                               asnorm=data.validated_data.get("asnorm"))
        return Response(self.CompareOutput(decision).data)


class ClassicVerifySpeakerApi(APIView):
    """``POST /v1/verify-speaker``: compare two files, in the response shape of the classic ECAPA demo API.

    Accepts the file fields ``reference``/``test`` or the aliases ``audio1``/``audio2`` and
    ``file1``/``file2``.
    """

    required_scopes = {"POST": {VERIFY}}
    parser_classes = [MultiPartParser]
    ALIASES = {"reference": ("reference", "audio1", "file1"), "test": ("test", "audio2", "file2")}

    class ClassicVerifySpeakerInput(serializers.Serializer):
        reference = AudioFileField(help_text="Also accepted as audio1 or file1.")
        test = AudioFileField(help_text="Also accepted as audio2 or file2.")

    class ClassicVerifySpeakerOutput(serializers.Serializer):
        similarity = serializers.FloatField()
        verification_result = serializers.BooleanField(source="accepted")
        threshold = serializers.FloatField()
        processing_time_ms = serializers.FloatField()

    @extend_schema(request={"multipart/form-data": ClassicVerifySpeakerInput}, responses=ClassicVerifySpeakerOutput,
                   tags=["decisions"])
    def post(self, request: Request) -> Response:
        files = {name: next((request.data[a] for a in aliases if a in request.data), None)
                 for name, aliases in self.ALIASES.items()}
        data = self.ClassicVerifySpeakerInput(data={k: v for k, v in files.items() if v is not None})
        data.is_valid(raise_exception=True)
        # Raw cosine always: this endpoint's clients read "similarity" as a cosine.
        decision = services.recordings_compare(reference=_recording(data.validated_data["reference"]),
                                               test=_recording(data.validated_data["test"]), actor=_actor(request),
                                               asnorm=False)
        return Response(self.ClassicVerifySpeakerOutput(decision).data)


class BatchItemOutput(serializers.Serializer):
    filename = serializers.CharField()
    similarity = serializers.FloatField(allow_null=True, help_text="Cosine similarity in [-1, 1].")
    score = serializers.FloatField(allow_null=True, help_text="The decision score.")
    accepted = serializers.BooleanField(allow_null=True)
    error = serializers.SerializerMethodField()

    @extend_schema_field(ErrorOutput(allow_null=True))
    def get_error(self, item):
        if item.refusal is None:
            return None
        return {"code": item.refusal.code, "message": item.refusal.message, "detail": item.refusal.detail}


class BatchVerifyApi(APIView):
    required_scopes = {"POST": {VERIFY}}
    parser_classes = [MultiPartParser]

    class BatchVerifyInput(serializers.Serializer):
        reference = AudioFileField()
        tests = serializers.ListField(child=AudioFileField(), min_length=1,
                                      help_text="One or more recordings (repeat the field).")
        asnorm = ScoreNormalisationField()

    class BatchVerifyOutput(serializers.Serializer):
        results = BatchItemOutput(many=True)
        threshold = serializers.FloatField()
        score_normalisation = serializers.ChoiceField(choices=["none", "asnorm"])
        model_version = serializers.CharField()
        processing_time_ms = serializers.FloatField()

    @extend_schema(request={"multipart/form-data": BatchVerifyInput}, responses=BatchVerifyOutput, tags=["decisions"])
    def post(self, request: Request) -> Response:
        data = self.BatchVerifyInput(data=request.data)
        data.is_valid(raise_exception=True)
        decision = services.recordings_batch_verify(
            reference=_recording(data.validated_data["reference"]), actor=_actor(request),
            tests=[_recording(f) for f in data.validated_data["tests"]], asnorm=data.validated_data.get("asnorm"))
        return Response(self.BatchVerifyOutput(decision).data)


# --- decision policy ------------------------------------------------------------------------------------

class ThresholdsOutput(serializers.Serializer):
    verify = serializers.FloatField()
    identify = serializers.FloatField()
    identify_margin = serializers.FloatField()
    sources = serializers.DictField(child=serializers.CharField(),
                                    help_text='Where each value comes from: "settings" or "calibration:<id>".')


class CalibrationOutput(serializers.Serializer):
    id = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    created_by = serializers.CharField()
    method = serializers.CharField()
    far_target = serializers.FloatField(allow_null=True)
    fir_target = serializers.FloatField(allow_null=True)
    eer = serializers.FloatField()
    asnorm_eer = serializers.FloatField(allow_null=True)
    asnorm_key = serializers.CharField()
    counts = serializers.JSONField()
    note = serializers.CharField()


class PolicyApi(APIView):
    """The thresholds and quality gates in force, and where each threshold comes from."""

    required_scopes = {"GET": {MANAGE}}

    class PolicyOutput(serializers.Serializer):
        model_version = serializers.CharField(allow_null=True)
        score_normalisation_default = serializers.ChoiceField(choices=["none", "asnorm"])
        cosine = ThresholdsOutput(help_text="Thresholds on the raw cosine scale.")
        asnorm = ThresholdsOutput(help_text="Thresholds on the AS-norm scale (valid for asnorm_key only).")
        asnorm_key = serializers.CharField(allow_null=True, help_text="Cohort digest, size and top-k of AS-norm; "
                                                                      "null when the cohort cannot be loaded.")
        calibration = CalibrationOutput(allow_null=True, help_text="The calibration in force, if any.")
        quality_gates = serializers.DictField(child=serializers.FloatField())

    @extend_schema(operation_id="policy_retrieve", responses=PolicyOutput, tags=["policy"])
    def get(self, request: Request) -> Response:
        policy = selectors.decision_policy(model_version=selectors.current_model_version(),
                                           asnorm_key=score_normalisation.asnorm_key())
        return Response(self.PolicyOutput({
            "model_version": policy.model_version,
            "score_normalisation_default": "asnorm" if policy.asnorm_default else "none",
            "cosine": policy.cosine, "asnorm": policy.asnorm, "asnorm_key": policy.asnorm_key,
            "calibration": policy.calibration, "quality_gates": selectors.quality_gates(),
        }).data)

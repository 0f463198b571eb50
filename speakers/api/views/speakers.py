"""Speakers and their enrollments."""
from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ... import selectors, services
from ...services import privacy
from ...services.consent import Consent
from ..pagination import SpeakerPagination
from ..parsers import JsonParser
from ..schema import ENGINE, JSON_BODY, MULTIPART, RECORDING, refusals
from .common import (
    ENROLL,
    MANAGE,
    WATCHLIST_MATCH_HELP,
    AudioFileField,
    ConsentInput,
    EnrollmentOutput,
    EnrollmentProgressOutput,
    Milliseconds,
    MultipartInput,
    RefusalOutput,
    SpeakerFields,
    SpeakerOutput,
    WatchlistMatchOutput,
    request_actor,
    request_query,
    request_recording,
    request_tenant,
)

# --- speakers ------------------------------------------------------------------------------------------

class SpeakerCollectionApi(APIView):
    required_scopes = {"GET": {MANAGE}, "POST": {ENROLL}}
    parser_classes = [JsonParser]
    pagination_class = SpeakerPagination  # the schema shows the list as the page it is

    class SpeakerCreateInput(SpeakerFields):
        consent = ConsentInput(required=False, help_text="The person's consent, if already given.")

    class SpeakerListQuery(serializers.Serializer):
        external_id = serializers.CharField(required=False, allow_blank=True, max_length=255)
        voiceprint_status = serializers.ChoiceField(choices=[s.value for s in selectors.VoiceprintStatus], required=False)

    @extend_schema(operation_id="speakers_list", tags=["speakers"],
                   responses={200: SpeakerOutput(many=True),
                              **refusals("validation_error", "not_found", "invalid_external_id")},
                   parameters=[OpenApiParameter("external_id", str, description="Exact external_id (compared in "
                                                                                "its normal form)."),
                               OpenApiParameter("voiceprint_status", str,
                                                enum=[s.value for s in selectors.VoiceprintStatus],
                                                description="Only speakers whose voiceprint has this status against "
                                                            "the model in use (outdated: enroll them again).")])
    def get(self, request: Request) -> Response:
        query = self.SpeakerListQuery(data=request_query(request))
        query.is_valid(raise_exception=True)
        speakers = selectors.speaker_list(tenant=request_tenant(request), external_id=query.validated_data.get("external_id"),
                                          voiceprint_status=query.validated_data.get("voiceprint_status"))
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(speakers, request, view=self)
        return paginator.get_paginated_response(SpeakerOutput(page, many=True).data)

    @extend_schema(operation_id="speakers_create", request=SpeakerCreateInput, tags=["speakers"],
                   responses={201: SpeakerOutput, **refusals(*JSON_BODY, "external_id_taken", "invalid_external_id",
                                                             "opted_out")})
    def post(self, request: Request) -> Response:
        data = self.SpeakerCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        consent = fields.pop("consent", None)
        speaker = services.speaker_create(actor=request_actor(request), consent=Consent(**consent) if consent else None,
                                          **fields)
        return Response(SpeakerOutput(speaker).data, status=status.HTTP_201_CREATED)


class SpeakerDetailApi(APIView):
    required_scopes = {"GET": {ENROLL, MANAGE}, "PATCH": {MANAGE}, "DELETE": {MANAGE}}
    parser_classes = [JsonParser]

    class SpeakerUpdateInput(SpeakerFields):
        pass

    @extend_schema(operation_id="speakers_retrieve", tags=["speakers"],
                   responses={200: SpeakerOutput, **refusals("speaker_not_found")})
    def get(self, request: Request, speaker_id: str) -> Response:
        return Response(SpeakerOutput(selectors.speaker_get(tenant=request_tenant(request), speaker_id=speaker_id)).data)

    @extend_schema(operation_id="speakers_update", request=SpeakerUpdateInput, tags=["speakers"],
                   responses={200: SpeakerOutput, **refusals(*JSON_BODY, "speaker_not_found", "external_id_taken",
                                                             "invalid_external_id", "opted_out")})
    def patch(self, request: Request, speaker_id: str) -> Response:
        speaker = selectors.speaker_get(tenant=request_tenant(request), speaker_id=speaker_id)
        data = self.SpeakerUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        speaker = services.speaker_update(speaker=speaker, actor=request_actor(request), **data.validated_data)
        return Response(SpeakerOutput(speaker).data)

    @extend_schema(operation_id="speakers_destroy", tags=["speakers"],
                   responses={204: None, **refusals("speaker_not_found")})
    def delete(self, request: Request, speaker_id: str) -> Response:
        speaker = selectors.speaker_get(tenant=request_tenant(request), speaker_id=speaker_id)
        services.speaker_delete(speaker=speaker, actor=request_actor(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- consent, opt-out, export ---------------------------------------------------------------------------

class SpeakerConsentApi(APIView):
    """PUT: record (or change) the person's consent. DELETE: it was withdrawn: the biometric data is deleted."""

    required_scopes = {"PUT": {ENROLL, MANAGE}, "DELETE": {MANAGE}}
    parser_classes = [JsonParser]

    @extend_schema(operation_id="speakers_consent_set", request=ConsentInput, tags=["privacy"],
                   responses={200: SpeakerOutput, **refusals(*JSON_BODY, "speaker_not_found")})
    def put(self, request: Request, speaker_id: str) -> Response:
        speaker = selectors.speaker_get(tenant=request_tenant(request), speaker_id=speaker_id)
        data = ConsentInput(data=request.data)
        data.is_valid(raise_exception=True)
        speaker = privacy.consent_set(speaker=speaker, consent=data.to_consent(), actor=request_actor(request))
        return Response(SpeakerOutput(speaker).data)

    @extend_schema(operation_id="speakers_consent_withdraw", tags=["privacy"],
                   responses={200: SpeakerOutput, **refusals("speaker_not_found")})
    def delete(self, request: Request, speaker_id: str) -> Response:
        speaker = selectors.speaker_get(tenant=request_tenant(request), speaker_id=speaker_id)
        speaker = privacy.consent_withdraw(speaker=speaker, actor=request_actor(request))
        return Response(SpeakerOutput(speaker).data)


class SpeakerOptOutApi(APIView):
    """The person opts out: everything about them is deleted and their external id cannot be enrolled again."""

    required_scopes = {"POST": {MANAGE}}

    @extend_schema(operation_id="speakers_opt_out", request=None, tags=["privacy"],
                   responses={204: None, **refusals("speaker_not_found")})
    def post(self, request: Request, speaker_id: str) -> Response:
        speaker = selectors.speaker_get(tenant=request_tenant(request), speaker_id=speaker_id)
        privacy.speaker_opt_out(speaker=speaker, actor=request_actor(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class SpeakerExportApi(APIView):
    """Everything stored about a speaker (never a vector): for a person's access request."""

    required_scopes = {"GET": {MANAGE}}

    @extend_schema(operation_id="speakers_export", responses={200: OpenApiTypes.OBJECT, **refusals("speaker_not_found")},
                   tags=["privacy"])
    def get(self, request: Request, speaker_id: str) -> Response:
        speaker = selectors.speaker_get(tenant=request_tenant(request), speaker_id=speaker_id)
        return Response(privacy.speaker_export(speaker=speaker, actor=request_actor(request)))


# --- enrollments ---------------------------------------------------------------------------------------

class SpeakerEnrollApi(APIView):
    """POST: enroll recordings. GET: the speaker's enrollments (metadata only)."""

    required_scopes = {"GET": {ENROLL, MANAGE}, "POST": {ENROLL}}
    parser_classes = [MultiPartParser]

    class SpeakerEnrollInput(MultipartInput):
        audio = serializers.ListField(child=AudioFileField(), min_length=1,
                                      help_text="One or more recordings (repeat the field).")

    class SpeakerEnrollOutput(serializers.Serializer):
        speaker = SpeakerOutput()
        accepted = EnrollmentOutput(many=True)
        refused = RefusalOutput(many=True)
        enrollment_progress = EnrollmentProgressOutput()
        processing_time_ms = Milliseconds()
        watchlist_match = WatchlistMatchOutput(allow_null=True, help_text=WATCHLIST_MATCH_HELP)

    @extend_schema(operation_id="enrollments_list", tags=["enrollments"],
                   responses={200: EnrollmentOutput(many=True), **refusals("speaker_not_found")})
    def get(self, request: Request, speaker_id: str) -> Response:
        speaker = selectors.speaker_get(tenant=request_tenant(request), speaker_id=speaker_id)
        return Response(EnrollmentOutput(selectors.enrollment_list(speaker=speaker), many=True).data)

    @extend_schema(operation_id="enrollments_create", request={"multipart/form-data": SpeakerEnrollInput},
                   tags=["enrollments"],
                   responses={201: SpeakerEnrollOutput, **refusals(*MULTIPART, "speaker_not_found", *RECORDING, *ENGINE,
                                                                    "enrollment_inconsistent", "recordings_refused",
                                                                    "voiceprint_unreadable", "decryption_error",
                                                                    "watchlist_match", "consent_required",
                                                                    "replay_detected")})
    def post(self, request: Request, speaker_id: str) -> Response:
        speaker = selectors.speaker_get(tenant=request_tenant(request), speaker_id=speaker_id)
        data = self.SpeakerEnrollInput(data=request.data)
        data.is_valid(raise_exception=True)
        outcome = services.speaker_enroll(speaker=speaker, actor=request_actor(request),
                                          recordings=[request_recording(f) for f in data.validated_data["audio"]])
        return Response(self.SpeakerEnrollOutput(outcome).data, status=status.HTTP_201_CREATED)


class EnrollmentDetailApi(APIView):
    required_scopes = {"DELETE": {MANAGE}}

    @extend_schema(operation_id="enrollments_destroy", tags=["enrollments"],
                   responses={204: None, **refusals("speaker_not_found", "enrollment_not_found", "decryption_error")})
    def delete(self, request: Request, speaker_id: str, enrollment_id: str) -> Response:
        speaker = selectors.speaker_get(tenant=request_tenant(request), speaker_id=speaker_id)
        enrollment = selectors.enrollment_get(speaker=speaker, enrollment_id=enrollment_id)
        services.enrollment_delete(enrollment=enrollment, actor=request_actor(request))
        return Response(status=status.HTTP_204_NO_CONTENT)



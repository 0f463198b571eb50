"""The fraud watchlist: known fraudsters' voices (scope ``watchlist``)."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ... import selectors
from ...services import watchlist as watchlist_service
from ..pagination import SpeakerPagination
from ..parsers import JsonParser
from ..schema import ENGINE, JSON_BODY, MULTIPART, RECORDING, VOICEPRINT, refusals
from .common import WATCHLIST, AudioFileField, request_actor, request_recording, request_tenant


class WatchlistEntryOutput(serializers.Serializer):
    id = serializers.UUIDField()
    label = serializers.CharField()
    notes = serializers.CharField()
    source = serializers.ChoiceField(choices=["recordings", "speaker"])
    source_speaker_id = serializers.UUIDField(allow_null=True)
    model_versions = serializers.SerializerMethodField(help_text="Model versions it holds a voiceprint of.")
    speech_s = serializers.SerializerMethodField(help_text="Net speech of its voiceprint, seconds.")
    created_at = serializers.DateTimeField()
    created_by = serializers.CharField()

    def get_model_versions(self, entry) -> list[str]:
        return [v.model_version for v in entry.voiceprints.all()]

    def get_speech_s(self, entry) -> float:
        return round(max((v.speech_s for v in entry.voiceprints.all()), default=0.0), 2)


class WatchlistCollectionApi(APIView):
    """GET: the watchlist. POST: add a voice, from recordings (multipart) or an enrolled speaker (JSON)."""

    required_scopes = {"GET": {WATCHLIST}, "POST": {WATCHLIST}}
    parser_classes = [MultiPartParser, JsonParser]
    pagination_class = SpeakerPagination  # the schema shows the list as the page it is

    class WatchlistFromRecordingsInput(serializers.Serializer):
        label = serializers.CharField(max_length=255)
        notes = serializers.CharField(required=False, allow_blank=True, default="", max_length=10_000)
        audio = serializers.ListField(child=AudioFileField(), min_length=1,
                                      help_text="One or more recordings of the voice (repeat the field); each must "
                                                "pass the enrollment quality gate.")

    class WatchlistFromSpeakerInput(serializers.Serializer):
        label = serializers.CharField(max_length=255)
        notes = serializers.CharField(required=False, allow_blank=True, default="", max_length=10_000)
        speaker_id = serializers.UUIDField(help_text="An enrolled speaker whose voiceprint is copied to the watchlist.")

    @extend_schema(operation_id="watchlist_list", tags=["watchlist"],
                   responses={200: WatchlistEntryOutput(many=True), **refusals("validation_error", "not_found")})
    def get(self, request: Request) -> Response:
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(selectors.watchlist_list(tenant=request_tenant(request)), request, view=self)
        return paginator.get_paginated_response(WatchlistEntryOutput(page, many=True).data)

    @extend_schema(operation_id="watchlist_create",
                   request={"multipart/form-data": WatchlistFromRecordingsInput,
                            "application/json": WatchlistFromSpeakerInput},
                   tags=["watchlist"],
                   responses={201: WatchlistEntryOutput, **refusals(*MULTIPART, *JSON_BODY, *RECORDING, *ENGINE,
                                                                    "recordings_refused", "speaker_not_found",
                                                                    *VOICEPRINT)})
    def post(self, request: Request) -> Response:
        actor = request_actor(request)
        if request.content_type.startswith("multipart/"):
            data = self.WatchlistFromRecordingsInput(data=request.data)
            data.is_valid(raise_exception=True)
            entry = watchlist_service.watchlist_entry_create(
                label=data.validated_data["label"], notes=data.validated_data["notes"], actor=actor,
                recordings=[request_recording(f) for f in data.validated_data["audio"]])
        else:
            data = self.WatchlistFromSpeakerInput(data=request.data)
            data.is_valid(raise_exception=True)
            speaker = selectors.speaker_get(tenant=request_tenant(request), speaker_id=data.validated_data["speaker_id"])
            entry = watchlist_service.watchlist_entry_create(
                label=data.validated_data["label"], notes=data.validated_data["notes"], actor=actor, speaker=speaker)
        return Response(WatchlistEntryOutput(entry).data, status=status.HTTP_201_CREATED)


class WatchlistDetailApi(APIView):
    required_scopes = {"GET": {WATCHLIST}, "DELETE": {WATCHLIST}}

    @extend_schema(operation_id="watchlist_retrieve", tags=["watchlist"],
                   responses={200: WatchlistEntryOutput, **refusals("watchlist_entry_not_found")})
    def get(self, request: Request, entry_id: str) -> Response:
        return Response(WatchlistEntryOutput(selectors.watchlist_entry_get(tenant=request_tenant(request), entry_id=entry_id)).data)

    @extend_schema(operation_id="watchlist_destroy", tags=["watchlist"],
                   responses={204: None, **refusals("watchlist_entry_not_found")})
    def delete(self, request: Request, entry_id: str) -> Response:
        entry = selectors.watchlist_entry_get(tenant=request_tenant(request), entry_id=entry_id)
        watchlist_service.watchlist_entry_delete(entry=entry, actor=request_actor(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

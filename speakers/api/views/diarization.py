"""Who spoke when: POST /api/v1/diarize."""
from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ...services.diarization import recording_diarize
from ..schema import MULTIPART, RECORDING, SCORING, refusals
from .common import (
    IDENTIFY,
    AudioFileField,
    Milliseconds,
    MultipartInput,
    Score,
    ScoreNormalisationField,
    Seconds,
    request_actor,
    request_recording,
)

LABEL_HELP = ('Who speaks: the enrolled speaker\'s external_id (else their id), or "unknown-1", "unknown-2"... '
              "for voices not enrolled, numbered in the order they first speak; the same voice keeps its label "
              "throughout the recording.")


class DiarizedSpeakerRefOutput(serializers.Serializer):
    id = serializers.UUIDField()
    external_id = serializers.CharField(allow_null=True)
    display_name = serializers.CharField()


class DiarizedSegmentOutput(serializers.Serializer):
    start_s = Seconds()
    end_s = Seconds()
    speaker = DiarizedSpeakerRefOutput(allow_null=True, help_text="The enrolled speaker, or null.")
    label = serializers.CharField(help_text=LABEL_HELP)
    score = Score(allow_null=True, help_text=(
        "The calibrated score (llr) of this voice against its best enrolled candidate (the whole voice's, "
        "not this segment's alone); null when nobody was searched."))


class DiarizedVoiceOutput(serializers.Serializer):
    label = serializers.CharField(help_text=LABEL_HELP)
    speaker = DiarizedSpeakerRefOutput(allow_null=True)
    speaking_s = Seconds(help_text="Seconds this voice speaks.")
    turns = serializers.IntegerField(help_text="Turns it takes (a turn ends when another voice speaks).")
    score = Score(allow_null=True, help_text="llr of its best enrolled candidate.")
    threshold = Score(allow_null=True, help_text=(
        "The score that candidate needed: the identify threshold for the false-identification target among "
        "every voice searched, for this pair's recording quality."))
    runner_up_score = Score(allow_null=True)
    no_match_reason = serializers.ChoiceField(
        choices=["no_candidates", "below_threshold", "ambiguous", "taken"], allow_null=True, help_text=(
            "Why the voice is unknown: the identify rule's reasons, or taken (its best candidate was given to "
            "another voice of the recording that scored higher: an enrolled voice is never named twice)."))


class DiarizeApi(APIView):
    required_scopes = {"POST": {IDENTIFY}}
    parser_classes = [MultiPartParser]

    class DiarizeInput(MultipartInput):
        audio = AudioFileField(help_text="One recording of a conversation (up to VOICEPRINT_DIARIZE_MAX_S).")
        num_speakers = serializers.IntegerField(required=False, min_value=1,
                                                help_text="How many people speak, when you know it (else found).")
        max_speakers = serializers.IntegerField(required=False, min_value=1,
                                                help_text="At most this many speakers are found.")
        asnorm = ScoreNormalisationField()

        def validate(self, data):
            limit = settings.VOICEPRINT_DIARIZE_MAX_SPEAKERS
            errors = {name: [f"{name} must be at most {limit}."] for name in ("num_speakers", "max_speakers")
                      if data.get(name, 0) > limit}
            if "num_speakers" in data and "max_speakers" in data:
                errors.setdefault("num_speakers", []).append("Give num_speakers or max_speakers, not both.")
            if errors:
                raise serializers.ValidationError(errors)
            return data

    class DiarizeOutput(serializers.Serializer):
        segments = DiarizedSegmentOutput(many=True, help_text="Who speaks when, in time order; pauses left out.")
        speakers = DiarizedVoiceOutput(many=True, help_text="Each voice heard, in the order it first speaks.")
        duration_s = Seconds()
        speech_s = Seconds()
        gallery = serializers.IntegerField(help_text="Enrolled voices searched (the caller's tenant).")
        margin = Score(allow_null=True, help_text="Lead over the runner-up a name needs (llr).")
        score_normalisation = serializers.ChoiceField(choices=["none", "asnorm"])
        model_version = serializers.CharField()
        processing_time_ms = Milliseconds()

    @extend_schema(request={"multipart/form-data": DiarizeInput}, tags=["decisions"],
                   responses={200: DiarizeOutput, **refusals(*MULTIPART, *RECORDING, *SCORING, "search_unavailable",
                                                              "decryption_error")})
    def post(self, request: Request) -> Response:
        data = self.DiarizeInput(data=request.data)
        data.is_valid(raise_exception=True)
        decision = recording_diarize(recording=request_recording(data.validated_data["audio"], "audio"),
                                     actor=request_actor(request),
                                     num_speakers=data.validated_data.get("num_speakers"),
                                     max_speakers=data.validated_data.get("max_speakers"),
                                     asnorm=data.validated_data.get("asnorm"))
        return Response(self.DiarizeOutput(decision).data)

"""Decisions: verify, identify, compare, batch-verify, and the classic verify-speaker and batch-verify endpoints."""
from __future__ import annotations

from django.conf import settings
from django.http import QueryDict
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ... import selectors, services
from ..schema import ENGINE, MULTIPART, RECORDING, SCORING, VOICEPRINT, refusals
from .common import (
    EXPLANATION_HELP,
    IDENTIFY,
    VERIFY,
    WATCHLIST_MATCH_HELP,
    AudioFileField,
    ErrorOutput,
    Milliseconds,
    MultipartInput,
    Score,
    ScoreNormalisationField,
    WatchlistMatchOutput,
    decision_explanation,
    request_actor,
    request_recording,
    request_tenant,
)

SCORE_HELP = ("The calibrated score: the natural log of how many times more likely the two recordings are "
              "of the same person than of two people, for recordings of this quality (0: as likely either "
              "way; 2.3: ten times more likely).")
RAW_SCORE_HELP = "Cosine similarity of the two embeddings, in [-1, 1], before calibration."
THRESHOLD_HELP = ("The score this pair needs, on the scale of score: it follows the quality of both "
                  "recordings so that the deployment's false-accept target (VOICEPRINT_FAR_TARGET, 1%) holds "
                  "in every condition.")
NORMALISATION_HELP = "Whether AS-norm of the cosine was the calibration's input (asnorm) or the cosine (none)."


# --- decisions -------------------------------------------------------------------------------------------

class VerifyApi(APIView):
    required_scopes = {"POST": {VERIFY}}
    parser_classes = [MultiPartParser]

    class VerifyInput(MultipartInput):
        speaker_id = serializers.UUIDField(required=False, help_text="The speaker's id (or give external_id).")
        external_id = serializers.CharField(required=False, max_length=255,
                                            help_text="Your own id of the speaker, instead of speaker_id.")
        audio = AudioFileField()
        asnorm = ScoreNormalisationField()

        def validate(self, data):
            if ("speaker_id" in data) == ("external_id" in data):
                raise serializers.ValidationError({"speaker_id": ["Give speaker_id or external_id (one of them)."]})
            return data

    class VerifyOutput(serializers.Serializer):
        speaker_id = serializers.UUIDField()
        score = Score(help_text=SCORE_HELP)
        raw_score = Score(help_text=RAW_SCORE_HELP)
        score_normalisation = serializers.ChoiceField(choices=["none", "asnorm"], help_text=NORMALISATION_HELP)
        threshold = Score(help_text=THRESHOLD_HELP)
        accepted = serializers.BooleanField(help_text="score >= threshold")
        explanation = serializers.SerializerMethodField(help_text=EXPLANATION_HELP)
        model_version = serializers.CharField()
        processing_time_ms = Milliseconds()
        watchlist_match = WatchlistMatchOutput(allow_null=True, help_text=WATCHLIST_MATCH_HELP)

        def get_explanation(self, decision) -> str:
            return decision_explanation(decision)

    @extend_schema(request={"multipart/form-data": VerifyInput}, tags=["decisions"],
                   responses={200: VerifyOutput, **refusals(*MULTIPART, "speaker_not_found", *RECORDING, *SCORING,
                                                            *VOICEPRINT, "verification_locked", "watchlist_match",
                                                            "replay_detected")})
    def post(self, request: Request) -> Response:
        data = self.VerifyInput(data=request.data)
        data.is_valid(raise_exception=True)
        if "speaker_id" in data.validated_data:
            speaker = selectors.speaker_get(tenant=request_tenant(request), speaker_id=data.validated_data["speaker_id"])
        else:
            speaker = selectors.speaker_by_external_id(tenant=request_tenant(request),
                                                       external_id=data.validated_data["external_id"])
        decision = services.speaker_verify(speaker=speaker, actor=request_actor(request),
                                           recording=request_recording(data.validated_data["audio"], "audio"),
                                           asnorm=data.validated_data.get("asnorm"))
        return Response(self.VerifyOutput(decision).data)


class CandidateOutput(serializers.Serializer):
    speaker_id = serializers.UUIDField()
    external_id = serializers.CharField(allow_null=True)
    display_name = serializers.CharField()
    score = Score()
    raw_score = Score()
    model_version = serializers.CharField(help_text=(
        "The model that scored this candidate: the engine's, or under the fused engine ECAPA's for a voiceprint "
        "enrolled before fusion (raw_score is then ECAPA's cosine)."))


class IdentifyApi(APIView):
    required_scopes = {"POST": {IDENTIFY}}
    parser_classes = [MultiPartParser]

    class IdentifyInput(MultipartInput):
        audio = AudioFileField()
        top_k = serializers.IntegerField(required=False, default=5, min_value=1)
        asnorm = ScoreNormalisationField()

        def validate_top_k(self, value: int) -> int:
            if value > settings.VOICEPRINT_MAX_TOP_K:
                raise serializers.ValidationError(f"top_k must be at most {settings.VOICEPRINT_MAX_TOP_K}.")
            return value

    class IdentifyOutput(serializers.Serializer):
        candidates = CandidateOutput(many=True)
        match = CandidateOutput(allow_null=True, help_text=(
            "The best candidate if its score >= threshold and it leads the runner-up by >= margin, or (matched_by "
            "lead) if among many voices it leads the runner-up by >= lead_required."))
        threshold = Score(allow_null=True, help_text=(
            "The best candidate's threshold (log-likelihood ratio) for the false-identification target among "
            "every voice searched; null when nobody was searched."))
        margin = Score(help_text="Lead over the runner-up a match needs (log-likelihood ratio).")
        runner_up_score = Score(allow_null=True, help_text="Score of the second best voiceprint.")
        no_match_reason = serializers.ChoiceField(
            choices=["no_candidates", "below_threshold", "ambiguous"], allow_null=True)
        matched_by = serializers.ChoiceField(choices=["threshold", "lead"], allow_null=True, help_text=(
            "How the match was reached: threshold (score >= threshold), or lead (short of the threshold, far ahead "
            "of every other voice searched: a short, noisy or telephone probe); null without a match."))
        lead = Score(allow_null=True, help_text=(
            "The best candidate's lead over the runner-up, in standard deviations of impostor scores for such "
            "recordings; null with one candidate."))
        lead_required = Score(allow_null=True, help_text=(
            "The lead that makes a match short of the threshold for this probe's condition (same unit as lead); "
            "null where no lead rule applies (fewer than 12 voices searched, or a condition without one)."))
        score_normalisation = serializers.ChoiceField(choices=["none", "asnorm"])
        model_version = serializers.CharField()
        processing_time_ms = Milliseconds()

    @extend_schema(request={"multipart/form-data": IdentifyInput}, tags=["decisions"],
                   responses={200: IdentifyOutput, **refusals(*MULTIPART, *RECORDING, *SCORING, "search_unavailable",
                                                              "decryption_error", "replay_detected")})
    def post(self, request: Request) -> Response:
        data = self.IdentifyInput(data=request.data)
        data.is_valid(raise_exception=True)
        decision = services.speaker_identify(recording=request_recording(data.validated_data["audio"], "audio"),
                                             top_k=data.validated_data["top_k"], actor=request_actor(request),
                                             asnorm=data.validated_data.get("asnorm"))
        return Response(self.IdentifyOutput(decision).data)


class CompareApi(APIView):
    required_scopes = {"POST": {VERIFY}}
    parser_classes = [MultiPartParser]

    class CompareInput(MultipartInput):
        reference = AudioFileField()
        test = AudioFileField()
        asnorm = ScoreNormalisationField()

    class CompareOutput(serializers.Serializer):
        similarity = Score(source="raw_score", help_text="Cosine similarity in [-1, 1] (= raw_score).")
        score = Score(help_text=SCORE_HELP)
        raw_score = Score()
        score_normalisation = serializers.ChoiceField(choices=["none", "asnorm"])
        threshold = Score()
        accepted = serializers.BooleanField()
        explanation = serializers.SerializerMethodField(help_text=EXPLANATION_HELP)
        model_version = serializers.CharField()
        processing_time_ms = Milliseconds()

        def get_explanation(self, decision) -> str:
            return decision_explanation(decision)

    @extend_schema(request={"multipart/form-data": CompareInput}, tags=["decisions"],
                   responses={200: CompareOutput, **refusals(*MULTIPART, *RECORDING, *SCORING)})
    def post(self, request: Request) -> Response:
        data = self.CompareInput(data=request.data)
        data.is_valid(raise_exception=True)
        decision = services.recordings_compare(reference=request_recording(data.validated_data["reference"], "reference"),
                                               test=request_recording(data.validated_data["test"], "test"),
                                               actor=request_actor(request), asnorm=data.validated_data.get("asnorm"))
        return Response(self.CompareOutput(decision).data)


class ClassicVerifySpeakerApi(APIView):
    """``POST /v1/verify-speaker``: compare two files, in the response shape of the classic ECAPA demo API.

    Accepts the file fields ``reference``/``test`` or the aliases ``audio1``/``audio2`` and
    ``file1``/``file2``.
    """

    required_scopes = {"POST": {VERIFY}}
    parser_classes = [MultiPartParser]
    ALIASES = {"reference": ("reference", "audio1", "file1"), "test": ("test", "audio2", "file2")}

    class ClassicVerifySpeakerInput(MultipartInput):
        reference = AudioFileField(help_text="Also accepted as audio1 or file1.")
        test = AudioFileField(help_text="Also accepted as audio2 or file2.")

    class ClassicVerifySpeakerOutput(serializers.Serializer):
        similarity = Score(source="raw_score", help_text=RAW_SCORE_HELP)
        verification_result = serializers.BooleanField(source="accepted", help_text="The calibrated decision.")
        score = Score(help_text=SCORE_HELP)
        threshold = Score(help_text=THRESHOLD_HELP)
        processing_time_ms = Milliseconds()

    @extend_schema(request={"multipart/form-data": ClassicVerifySpeakerInput}, tags=["decisions"],
                   responses={200: ClassicVerifySpeakerOutput, **refusals(*MULTIPART, *RECORDING, *ENGINE)})
    def post(self, request: Request) -> Response:
        form = request.data if hasattr(request.data, "getlist") else QueryDict()  # an empty body parses to {}
        for aliases in self.ALIASES.values():
            used = [a for a in aliases if form.getlist(a)]
            sent = sum(len(form.getlist(a)) for a in used)
            if sent > 1:
                raise serializers.ValidationError({used[0]: [f"Send one file in one of the fields "
                                                             f"{', '.join(aliases)}, not {sent}."]})
        files = {name: next((form[a] for a in aliases if a in form), None)
                 for name, aliases in self.ALIASES.items()}
        data = self.ClassicVerifySpeakerInput(data={k: v for k, v in files.items() if v is not None})
        data.is_valid(raise_exception=True)
        # Raw cosine always: this endpoint's clients read "similarity" as a cosine.
        decision = services.recordings_compare(reference=request_recording(data.validated_data["reference"], "reference"),
                                               test=request_recording(data.validated_data["test"], "test"),
                                               actor=request_actor(request), asnorm=False)
        return Response(self.ClassicVerifySpeakerOutput(decision).data)


class BatchItemOutput(serializers.Serializer):
    filename = serializers.CharField()
    similarity = Score(source="raw_score", allow_null=True, help_text="Cosine similarity in [-1, 1].")
    score = Score(allow_null=True, help_text=SCORE_HELP)
    threshold = Score(allow_null=True, help_text=THRESHOLD_HELP)
    accepted = serializers.BooleanField(allow_null=True)
    error = serializers.SerializerMethodField()

    @extend_schema_field(ErrorOutput(allow_null=True))
    def get_error(self, item):
        return _refusal_error(item)


def _refusal_error(item) -> dict | None:
    if item.refusal is None:
        return None
    return {"code": item.refusal.code, "message": item.refusal.message, "detail": item.refusal.detail}


class BatchVerifyApi(APIView):
    required_scopes = {"POST": {VERIFY}}
    parser_classes = [MultiPartParser]

    class BatchVerifyInput(MultipartInput):
        reference = AudioFileField()
        tests = serializers.ListField(child=AudioFileField(), min_length=1,
                                      help_text="One or more recordings (repeat the field).")
        asnorm = ScoreNormalisationField()

    class BatchVerifyOutput(serializers.Serializer):
        results = BatchItemOutput(many=True, help_text="One per test file; each has its own threshold (its quality).")
        score_normalisation = serializers.ChoiceField(choices=["none", "asnorm"])
        model_version = serializers.CharField()
        processing_time_ms = Milliseconds()

    @extend_schema(request={"multipart/form-data": BatchVerifyInput}, tags=["decisions"],
                   responses={200: BatchVerifyOutput, **refusals(*MULTIPART, *RECORDING, *SCORING)})
    def post(self, request: Request) -> Response:
        data = self.BatchVerifyInput(data=request.data)
        data.is_valid(raise_exception=True)
        decision = services.recordings_batch_verify(
            reference=request_recording(data.validated_data["reference"], "reference"), actor=request_actor(request),
            tests=[request_recording(f) for f in data.validated_data["tests"]], asnorm=data.validated_data.get("asnorm"))
        return Response(self.BatchVerifyOutput(decision).data)




class ClassicBatchItemOutput(serializers.Serializer):
    filename = serializers.CharField()
    similarity = Score(source="raw_score", allow_null=True, help_text="Cosine similarity in [-1, 1].")
    result = serializers.BooleanField(source="accepted", allow_null=True,
                                      help_text="The calibrated decision (score >= threshold); null when the file "
                                                "was refused.")
    score = Score(allow_null=True, help_text=SCORE_HELP)
    threshold = Score(allow_null=True, help_text=THRESHOLD_HELP)
    error = serializers.SerializerMethodField(help_text="Why the file was refused; null when it was scored.")

    @extend_schema_field(ErrorOutput(allow_null=True))
    def get_error(self, item):
        return _refusal_error(item)


class ClassicBatchVerifyApi(APIView):
    """``POST /v1/batch-verify``: batch-verify in the response shape of the classic ECAPA demo API.

    ``similarity`` is the cosine its clients read; ``result`` is the calibrated decision, as everywhere.
    """

    required_scopes = {"POST": {VERIFY}}
    parser_classes = [MultiPartParser]

    class ClassicBatchVerifyInput(MultipartInput):
        reference = AudioFileField()
        tests = serializers.ListField(child=AudioFileField(), min_length=1,
                                      help_text="One or more recordings (repeat the field).")

    class ClassicBatchVerifyOutput(serializers.Serializer):
        batch_results = ClassicBatchItemOutput(many=True, source="results")
        total_count = serializers.SerializerMethodField()

        def get_total_count(self, decision) -> int:
            return len(decision.results)

    @extend_schema(request={"multipart/form-data": ClassicBatchVerifyInput}, tags=["decisions"],
                   responses={200: ClassicBatchVerifyOutput, **refusals(*MULTIPART, *RECORDING, *ENGINE)})
    def post(self, request: Request) -> Response:
        data = self.ClassicBatchVerifyInput(data=request.data)
        data.is_valid(raise_exception=True)
        decision = services.recordings_batch_verify(
            reference=request_recording(data.validated_data["reference"], "reference"), actor=request_actor(request),
            tests=[request_recording(f) for f in data.validated_data["tests"]], asnorm=False)
        return Response(self.ClassicBatchVerifyOutput(decision).data)

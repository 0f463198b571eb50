"""The decision policy in force."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ... import asnorm as service_asnorm
from ... import selectors
from .common import MANAGE

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
                                           asnorm_key=service_asnorm.asnorm_key())
        return Response(self.PolicyOutput({
            "model_version": policy.model_version,
            "score_normalisation_default": "asnorm" if policy.asnorm_default else "none",
            "cosine": policy.cosine, "asnorm": policy.asnorm, "asnorm_key": policy.asnorm_key,
            "calibration": policy.calibration, "quality_gates": selectors.quality_gates(),
        }).data)

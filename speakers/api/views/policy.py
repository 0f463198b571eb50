"""The decision policy in force."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ... import selectors
from ..schema import ENGINE, refusals
from .common import MANAGE, request_tenant


class SiteCalibrationOutput(serializers.Serializer):
    id = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    created_by = serializers.CharField()
    method = serializers.CharField()
    eer = serializers.FloatField()
    asnorm_eer = serializers.FloatField(allow_null=True)
    counts = serializers.JSONField()
    note = serializers.CharField()


class PolicyApi(APIView):
    """The calibration and operating points in force, and the quality gates."""

    required_scopes = {"GET": {MANAGE}}

    class PolicyOutput(serializers.Serializer):
        model_version = serializers.CharField(allow_null=True)
        score_normalisation_default = serializers.ChoiceField(choices=["none", "asnorm"])
        calibration_source = serializers.CharField(
            help_text='"shipped:<file>" (the calibration shipped for the model) or "calibration:<id>" (a site '
                      "calibration from `manage.py calibrate`).")
        far_target = serializers.FloatField(help_text="Share of impostors a verification may accept (every "
                                                      "condition).")
        fir_target = serializers.FloatField(help_text="Share of unknown voices an identification may match.")
        calibration = serializers.JSONField(help_text="The calibration's parameters (per scale: impostor models, "
                                                      "log-likelihood-ratio weights, thresholds).")
        site_calibration = SiteCalibrationOutput(allow_null=True, help_text="The site calibration in force, if any.")
        quality_gates = serializers.DictField(child=serializers.FloatField())

    @extend_schema(operation_id="policy_retrieve", tags=["policy"],
                   responses={200: PolicyOutput, **refusals(*ENGINE)})
    def get(self, request: Request) -> Response:
        policy = selectors.decision_policy(model_version=selectors.current_model_version(), tenant=request_tenant(request))
        return Response(self.PolicyOutput({
            "model_version": policy.model_version,
            "score_normalisation_default": "asnorm" if policy.asnorm_default else "none",
            "calibration_source": policy.source, "far_target": policy.far_target, "fir_target": policy.fir_target,
            "calibration": policy.calibration.to_dict(), "site_calibration": policy.site_calibration,
            "quality_gates": selectors.quality_gates(),
        }).data)

"""Health and readiness: open to anyone (no key), for operators and load balancers.

Health's counts are a tenant's: sent with an API key they are the key's tenant's; without one, the
deployment's while it serves a single tenant, and none once it serves several.
"""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ... import selectors
from ...models import ApiKey
from ...runtime import inference_owner, startup
from ..auth import OptionalApiKeyAuthentication
from ..schema import refusals
from ..throttles import ClientRateThrottle


class PopulationScaleOutput(serializers.Serializer):
    in_force = serializers.BooleanField(help_text="Whether these statistics re-level the decisions now.")
    speakers = serializers.IntegerField(help_text="Enrolled speakers they were measured on.")
    trials = serializers.IntegerField(help_text="Impostor trials (a recording against another speaker's voiceprint).")
    shift = serializers.FloatField(help_text="Added to the calibration's impostor mean (in the scale's units).")
    spread = serializers.FloatField(help_text="Factor on the calibration's impostor spread.")
    bounded = serializers.BooleanField(help_text="Whether a bound held the measured values back.")
    updated_at = serializers.DateTimeField()
    reference_score_before = serializers.FloatField(
        allow_null=True, help_text="The score (on this scale: a cosine, or an AS-norm score) a 3 s clean probe needs "
                                   "against a 6 s clean voiceprint, calibration alone.")
    reference_score_after = serializers.FloatField(allow_null=True, help_text="The same, adapted.")


class PopulationOutput(serializers.Serializer):
    enabled = serializers.BooleanField(help_text="VOICEPRINT_POPULATION_ADAPTATION.")
    min_speakers = serializers.IntegerField(help_text="Speakers the statistics need before they decide.")
    scales = serializers.DictField(child=PopulationScaleOutput(), help_text="Per score scale (cosine, asnorm).")


class HealthApi(APIView):
    authentication_classes = [OptionalApiKeyAuthentication]  # a key only scopes the counts to its tenant
    throttle_classes = [ClientRateThrottle]  # a probe with a key does not spend the key's request rate
    permission_classes = [AllowAny]

    class HealthOutput(serializers.Serializer):
        status = serializers.ChoiceField(
            choices=["ready", "warming_up", "failed", "degraded", "unavailable"],
            help_text="ready; warming_up: the model is loading; failed: it could not load (requests retry); "
                      "degraded: some voiceprints cannot be read (left out of search); unavailable: the "
                      "database cannot be reached (HTTP 503).")
        engine = serializers.ChoiceField(choices=["cold", "warming_up", "ready", "failed"],
                                         help_text="This process's inference engine.")
        model_version = serializers.CharField(allow_null=True)
        model_loaded = serializers.BooleanField()
        model_prepared = serializers.BooleanField()
        database = serializers.ChoiceField(choices=["ok", "unreachable"])
        enrolled_speakers = serializers.IntegerField(
            allow_null=True, help_text="The key's tenant's (without a key: the deployment's while it has one tenant).")
        unreadable_voiceprints = serializers.IntegerField(allow_null=True,
                                                          help_text="Damaged voiceprints (re-enroll those speakers).")
        outdated_voiceprints = serializers.IntegerField(
            allow_null=True, help_text="Speakers whose voiceprint was made by another model version (VOICEPRINT_MODELS "
                                       "changed): not verified or searched until enrolled again; "
                                       "GET /api/v1/speakers?voiceprint_status=outdated lists them.")
        partial_voiceprints = serializers.IntegerField(
            allow_null=True, help_text="Speakers whose voiceprint was made by one network of the fused engine alone "
                                       "(ECAPA, before VOICEPRINT_MODELS=ecapa,campplus): verified and identified "
                                       "with it until enrolled again; ?voiceprint_status=partial lists them.")
        missing_key_ids = serializers.ListField(child=serializers.CharField(),
                                                help_text="Key ids rows are sealed with that the configuration "
                                                          "lacks.")
        population = PopulationOutput(allow_null=True, help_text="The tenant's population adaptation "
                                      "(docs/accuracy.md): the statistics in force and how far they moved decisions.")

    @extend_schema(responses={**refusals(keyed=False), 200: HealthOutput, 503: HealthOutput}, tags=["health"], auth=[])
    def get(self, request: Request) -> Response:
        tenant = request.auth.tenant if isinstance(request.auth, ApiKey) else None
        health = selectors.health_status(tenant=tenant)
        return Response(self.HealthOutput(health).data,
                        status=503 if health["status"] == "unavailable" else 200)


class ReadinessApi(APIView):
    """200 once this process answers without waiting for the model, 503 before (for load balancers)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    class ReadinessOutput(serializers.Serializer):
        ready = serializers.BooleanField()
        status = serializers.CharField()

    @extend_schema(responses={**refusals(keyed=False), 200: ReadinessOutput, 503: ReadinessOutput}, tags=["health"],
                   auth=[])
    def get(self, request: Request) -> Response:
        ready = startup.ready()
        return Response(self.ReadinessOutput({"ready": ready, "status": inference_owner.engine_state()}).data,
                        status=200 if ready else 503)

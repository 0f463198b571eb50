"""Admin page of the population statistics: what re-levels each tenant's decisions, and recomputing them (audited)."""
from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from ..models import PopulationStatistics
from ..selectors import population_status
from ..services.population import population_refresh
from .common import ReadOnly, TenantScoped, admin_actor


@admin.register(PopulationStatistics)
class PopulationStatisticsAdmin(TenantScoped, ReadOnly, admin.ModelAdmin):
    """Read-only; the one write is "Recompute" (the service, audited). Rows are derived from the voiceprints."""

    list_display = ("tenant", "model_version", "scale", "in_force", "speakers", "trials", "shift", "spread",
                    "reference_score", "updated_at")
    list_select_related = ("tenant",)
    actions = ["recompute"]

    @admin.display(description="in force", boolean=True)
    def in_force(self, row: PopulationStatistics) -> bool:
        scales = population_status(tenant=row.tenant_id, model_version=row.model_version)["scales"]
        return bool(scales.get(row.scale, {}).get("in_force"))

    @admin.display(description="score a 3 s probe needs (6 s voiceprint): calibration -> adapted")
    def reference_score(self, row: PopulationStatistics) -> str:
        moved = row.threshold_moved or {}
        return f"{moved.get('before', float('nan')):.3f} -> {moved.get('after', float('nan')):.3f}"

    def changelist_view(self, request: HttpRequest, extra_context=None):
        extra_context = {**(extra_context or {}), "subtitle": (
            f"Adaptation {'on' if settings.VOICEPRINT_POPULATION_ADAPTATION else 'off'}; in force from "
            f"{settings.VOICEPRINT_POPULATION_MIN_SPEAKERS} enrolled speakers (VOICEPRINT_POPULATION_MIN_SPEAKERS).")}
        return super().changelist_view(request, extra_context)

    @admin.action(description="Recompute the selected tenants' statistics", permissions=["recompute"])
    def recompute(self, request: HttpRequest, queryset: QuerySet[PopulationStatistics]) -> None:
        done = set()
        for row in queryset.select_related("tenant"):
            if (row.tenant_id, row.model_version) not in done:
                population_refresh(tenant=row.tenant, model_version=row.model_version,
                                   actor=admin_actor(request, row.tenant))
                done.add((row.tenant_id, row.model_version))
        self.message_user(request, f"Recomputed the statistics of {len(done)} tenant(s).", messages.SUCCESS)

    def has_recompute_permission(self, request) -> bool:
        return request.user.has_perm("speakers.change_populationstatistics")

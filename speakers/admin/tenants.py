"""Admin pages for tenants: superusers make and delete them (through the services) and say which staff see which."""
from __future__ import annotations

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from ..models import Tenant
from ..services.tenants import tenant_create, tenant_delete
from .common import admin_actor, admin_tenants


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "speakers", "retention_days", "audit_retention_days", "created_at")
    search_fields = ("slug", "name")
    filter_horizontal = ("staff",)
    readonly_fields = ("id", "created_at", "data_key_id")

    def get_queryset(self, request):
        rows = super().get_queryset(request).annotate(speaker_count=Count("speakers"))
        return rows if request.user.is_superuser else rows.filter(pk__in=admin_tenants(request))

    @admin.display(description="speakers", ordering="speaker_count")
    def speakers(self, tenant: Tenant) -> int:
        return tenant.speaker_count

    def get_fields(self, request, obj=None):
        editable = ("slug", "name", "retention_days", "audit_retention_days", "staff")
        return editable if obj is None else (*editable, *self.readonly_fields)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is None else ("slug", *self.readonly_fields)

    def has_add_permission(self, request) -> bool:
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    def save_model(self, request: HttpRequest, obj: Tenant, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        created = tenant_create(slug=obj.slug, name=obj.name, actor=admin_actor(request),
                                retention_days=obj.retention_days, audit_retention_days=obj.audit_retention_days)
        obj.pk, obj._state.adding, obj._state.db = created.pk, False, created._state.db

    def delete_model(self, request, obj: Tenant) -> None:
        tenant_delete(tenant=obj, actor=admin_actor(request))

    def delete_queryset(self, request, queryset: QuerySet[Tenant]) -> None:
        for tenant in queryset:
            tenant_delete(tenant=tenant, actor=admin_actor(request))

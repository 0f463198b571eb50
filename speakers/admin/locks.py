"""Admin page of the verification locks in force: who is locked out of which speaker, and lifting (audited)."""
from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from ..models import VerificationLock
from ..services.lockout import verification_locks_lift
from .common import ReadOnly, TenantScoped, admin_actor


@admin.register(VerificationLock)
class VerificationLockAdmin(TenantScoped, ReadOnly, admin.ModelAdmin):
    """Read-only list of locks in force; the one write is the "Lift" action (the service, audited), never a
    delete from the page."""

    tenant_path = "speaker__tenant"
    list_display = ("speaker", "caller", "locked_at", "locked_until", "remaining", "lockouts", "rejections")
    search_fields = ("=speaker__id", "speaker__external_id", "speaker__display_name", "api_key__prefix",
                     "=client_address")
    list_select_related = ("speaker", "api_key")
    actions = ["lift"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(locked_until__gt=timezone.now()).defer(
            "speaker__voiceprint_ciphertext")

    @admin.display(description="locked out")
    def caller(self, lock: VerificationLock) -> str:
        return lock.caller

    @admin.display(description="remaining", ordering="locked_until")
    def remaining(self, lock: VerificationLock) -> str:
        return f"{max((lock.locked_until - timezone.now()).total_seconds(), 0):.0f} s"

    @admin.action(description="Lift the selected locks", permissions=["lift"])
    def lift(self, request: HttpRequest, queryset: QuerySet[VerificationLock]) -> None:
        lifted = verification_locks_lift(locks=queryset, actor=admin_actor(request))
        self.message_user(request, f"Lifted {lifted} verification lock(s).", messages.SUCCESS)

    def has_lift_permission(self, request) -> bool:
        return request.user.has_perm("speakers.delete_verificationlock")

"""Admin pages for enrollments, API keys, the audit log and site calibrations."""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import Exists, OuterRef, QuerySet, Subquery
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from .. import services
from ..models import ApiKey, ApiKeyScope, AuditEvent, Calibration, Enrollment, Speaker
from .common import EnrollmentFigures, ReadOnly, TenantChoiceField, TenantScoped, admin_actor, percent, score

# --- enrollments ---------------------------------------------------------------------------------------

ENROLLMENT_METADATA = ("id", "speaker", "filename", "model_version", "duration", "speech", "snr", "clipping",
                       "speech_share", "key_id", "created_at")


@admin.register(Enrollment)
class EnrollmentAdmin(TenantScoped, EnrollmentFigures, admin.ModelAdmin):
    tenant_path = "speaker__tenant"
    list_display = ("created_at", "speaker", "filename", "duration", "speech", "snr")
    list_filter = ("model_version", "created_at")
    search_fields = ("=speaker__id", "speaker__external_id", "speaker__display_name", "filename")
    fields = ENROLLMENT_METADATA
    readonly_fields = ENROLLMENT_METADATA
    list_select_related = ("speaker",)

    @admin.display(description="clipped samples")
    def clipping(self, enrollment: Enrollment) -> str:
        return percent(enrollment.clipping_ratio)

    @admin.display(description="speech share of the recording")
    def speech_share(self, enrollment: Enrollment) -> str:
        return percent(enrollment.speech_ratio)

    def get_queryset(self, request):
        return super().get_queryset(request).defer("embedding_ciphertext", "speaker__voiceprint_ciphertext")

    def has_add_permission(self, request) -> bool:
        return False  # added from the speaker's page ("Add enrollment recordings"), with audio

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def delete_model(self, request, obj: Enrollment) -> None:
        services.enrollment_delete(enrollment=obj, actor=admin_actor(request, obj.speaker.tenant))

    def delete_queryset(self, request, queryset: QuerySet[Enrollment]) -> None:
        for enrollment in queryset:
            services.enrollment_delete(enrollment=enrollment, actor=admin_actor(request, enrollment.speaker.tenant))


# --- API keys --------------------------------------------------------------------------------------------

class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=ApiKeyScope.choices, widget=forms.CheckboxSelectMultiple)
    request: HttpRequest | None = None  # set by the admin

    class Meta:
        model = ApiKey
        fields = ("tenant", "name", "scopes")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "tenant" in self.fields:
            self.fields["tenant"] = TenantChoiceField(self.request, label="Tenant",
                                                      help_text="The key sees only this tenant's speakers.")


@admin.register(ApiKey)
class ApiKeyAdmin(TenantScoped, admin.ModelAdmin):
    form = ApiKeyForm
    list_display = ("name", "prefix", "scope_list", "created_at", "last_used_at", "revoked")
    list_filter = ("revoked", "created_at")
    search_fields = ("name", "prefix")
    readonly_fields = ("prefix", "created_at", "last_used_at", "revoked", "revoked_at")
    actions = ["revoke"]

    @admin.display(description="scopes")
    def scope_list(self, api_key: ApiKey) -> str:
        return ", ".join(api_key.scopes)

    def get_fields(self, request, obj=None):
        return ("tenant", "name", "scopes") if obj is None else ("tenant", "name", "scopes", *self.readonly_fields)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is None else ("tenant", *self.readonly_fields)

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = type("ApiKeyForm", (ApiKeyForm,), {"request": request})
        return super().get_form(request, obj, change=change, **kwargs)

    def save_model(self, request: HttpRequest, obj: ApiKey, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        plain = services.api_key_issue(api_key=obj, actor=admin_actor(request, obj.tenant))
        # Shown once, in this message; only its hash is stored.
        messages.warning(request, f"New API key for {obj.name!r} — copy it now, it will not be shown again: {plain}")

    @admin.action(description="Revoke selected API keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for api_key in queryset:
            services.api_key_revoke(api_key=api_key, actor=admin_actor(request, api_key.tenant))
        self.message_user(request, f"Revoked {queryset.count()} API key(s).", messages.SUCCESS)


# --- the audit log ------------------------------------------------------------------------------------

@admin.register(AuditEvent)
class AuditEventAdmin(TenantScoped, ReadOnly, admin.ModelAdmin):
    list_display = ("when", "actor", "action", "speaker", "decision", "score_against_threshold", "client_address")
    list_filter = ("action", "decision", "created_at")
    search_fields = ("actor", "=speaker_id", "=client_address")
    date_hierarchy = "created_at"
    fields = ("created_at", "actor", "client_address", "api_key", "action", "speaker", "decision", "rounded_score",
              "rounded_threshold", "detail")
    readonly_fields = fields

    def get_queryset(self, request):
        # The trail keeps a speaker's id, not a foreign key (it outlives a deleted speaker): look the
        # names up in the same query.
        speaker = Speaker.objects.filter(pk=OuterRef("speaker_id"))
        return super().get_queryset(request).annotate(
            speaker_name=Subquery(speaker.values("display_name")[:1]),
            speaker_external_id=Subquery(speaker.values("external_id")[:1]),
            speaker_exists=Exists(speaker))

    @admin.display(description="speaker", ordering="speaker_name")
    def speaker(self, event: AuditEvent) -> str:
        if event.speaker_id is None:
            return "-"
        if not getattr(event, "speaker_exists", False):
            return f"deleted speaker {str(event.speaker_id)[:8]}"
        name = event.speaker_name or event.speaker_external_id or str(event.speaker_id)[:8]
        return format_html('<a href="{}" title="{}">{}</a>',
                           reverse("admin:speakers_speaker_change", args=[event.speaker_id]), event.speaker_id, name)

    @admin.display(description="when", ordering="created_at")
    def when(self, event: AuditEvent) -> str:
        return f"{event.created_at:%Y-%m-%d %H:%M:%S}"

    @admin.display(description="score / threshold", ordering="score")
    def score_against_threshold(self, event: AuditEvent) -> str:
        if event.score is None:
            return "-"
        if event.threshold is None:
            return score(event.score)
        return f"{score(event.score)} {'≥' if event.score >= event.threshold else '<'} {score(event.threshold)}"

    @admin.display(description="score", ordering="score")
    def rounded_score(self, event: AuditEvent) -> str:
        return score(event.score)

    @admin.display(description="threshold", ordering="threshold")
    def rounded_threshold(self, event: AuditEvent) -> str:
        return score(event.threshold)



@admin.register(Calibration)
class CalibrationAdmin(TenantScoped, ReadOnly, admin.ModelAdmin):
    """Read-only: site calibrations are measured and stored by `manage.py calibrate`, never typed in (withdraw one
    with `manage.py calibrate --revert`, audited)."""

    list_display = ("id", "created_at", "model_version", "method", "trials", "eer_percent", "created_by", "note")
    list_filter = ("model_version", "method", "created_at")
    search_fields = ("model_version", "note", "created_by")

    @admin.display(description="trials (target / impostor)")
    def trials(self, c: Calibration) -> str:
        return f"{c.counts.get('target', '-')} / {c.counts.get('impostor', '-')}"

    @admin.display(description="EER")
    def eer_percent(self, c: Calibration) -> str:
        return percent(c.eer)

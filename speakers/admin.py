"""Admin panel. Every write goes through the same services as the API, so the index stays right."""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from . import selectors, services
from .models import ApiKey, ApiKeyScope, AuditEvent, Calibration, Enrollment, Speaker
from .services import Actor

ENROLLMENT_METADATA = ("id", "speaker", "filename", "model_version", "duration_s", "speech_s",
                       "clipping_ratio", "snr_db", "speech_ratio", "key_id", "created_at")


class EnrolledFilter(admin.SimpleListFilter):
    title = "voiceprint"
    parameter_name = "enrolled"

    def lookups(self, request, model_admin):
        return (("yes", "has a voiceprint"), ("no", "no voiceprint"))

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(voiceprint_ciphertext__isnull=False)
        if self.value() == "no":
            return queryset.filter(voiceprint_ciphertext__isnull=True)
        return queryset


class EnrollmentInline(admin.TabularInline):
    model = Enrollment
    fields = ("id", "filename", "model_version", "duration_s", "speech_s", "snr_db", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False  # delete enrollments from their own page, through the service
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Speaker)
class SpeakerAdmin(admin.ModelAdmin):
    list_display = ("__str__", "external_id", "display_name", "enrollment_count", "enrolled",
                    "enrollment_progress", "voiceprint_model_version", "created_at", "last_verified_at",
                    "last_identified_at")
    list_filter = (EnrolledFilter, "voiceprint_unreadable", "voiceprint_model_version", "created_at",
                   "last_verified_at")
    search_fields = ("external_id", "display_name", "=id")
    fields = ("id", "external_id", "display_name", "metadata", "enrollment_count", "enrollment_progress",
              "voiceprint_model_version", "voiceprint_key_id", "voiceprint_unreadable", "created_at", "updated_at",
              "last_verified_at", "last_identified_at")
    readonly_fields = ("id", "enrollment_count", "enrollment_progress", "voiceprint_model_version",
                       "voiceprint_key_id", "voiceprint_unreadable", "created_at", "updated_at", "last_verified_at",
                       "last_identified_at")
    inlines = [EnrollmentInline]

    @admin.display(boolean=True, description="voiceprint")
    def enrolled(self, speaker: Speaker) -> bool | None:
        if speaker.voiceprint_unreadable:
            return None  # shown as "unknown": damaged, left out of search until re-enrolled
        return speaker.has_voiceprint

    @admin.display(description="enrollment progress")
    def enrollment_progress(self, speaker: Speaker) -> str:
        progress = selectors.enrollment_progress(speaker=speaker)
        return f"{progress.text} ({'complete' if progress.complete else 'incomplete'})"

    def get_queryset(self, request):
        return super().get_queryset(request).defer("voiceprint_ciphertext")

    def has_add_permission(self, request) -> bool:
        return False  # speakers are created and enrolled through the API, with audio

    def save_model(self, request, obj: Speaker, form, change: bool) -> None:
        services.speaker_update(speaker=obj, actor=Actor.from_admin(request.user), external_id=obj.external_id,
                                display_name=obj.display_name, metadata=obj.metadata)

    def delete_model(self, request, obj: Speaker) -> None:
        services.speaker_delete(speaker=obj, actor=Actor.from_admin(request.user))

    def delete_queryset(self, request, queryset: QuerySet[Speaker]) -> None:
        for speaker in queryset:
            services.speaker_delete(speaker=speaker, actor=Actor.from_admin(request.user))


@admin.register(Enrollment)
class EnrollmentAdmin(admin.ModelAdmin):
    list_display = ("id", "speaker", "filename", "model_version", "duration_s", "speech_s", "snr_db",
                    "created_at")
    list_filter = ("model_version", "created_at")
    search_fields = ("=speaker__id", "speaker__external_id", "speaker__display_name", "filename")
    fields = ENROLLMENT_METADATA
    readonly_fields = ENROLLMENT_METADATA
    list_select_related = ("speaker",)

    def get_queryset(self, request):
        return super().get_queryset(request).defer("embedding_ciphertext", "speaker__voiceprint_ciphertext")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def delete_model(self, request, obj: Enrollment) -> None:
        services.enrollment_delete(enrollment=obj, actor=Actor.from_admin(request.user))

    def delete_queryset(self, request, queryset: QuerySet[Enrollment]) -> None:
        for enrollment in queryset:
            services.enrollment_delete(enrollment=enrollment, actor=Actor.from_admin(request.user))


class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=ApiKeyScope.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = ApiKey
        fields = ("name", "scopes")


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyForm
    list_display = ("name", "prefix", "scope_list", "created_at", "last_used_at", "revoked", "revoked_at")
    list_filter = ("revoked", "created_at")
    search_fields = ("name", "prefix")
    readonly_fields = ("prefix", "created_at", "last_used_at", "revoked", "revoked_at")
    actions = ["revoke"]

    @admin.display(description="scopes")
    def scope_list(self, api_key: ApiKey) -> str:
        return ", ".join(api_key.scopes)

    def get_fields(self, request, obj=None):
        return ("name", "scopes") if obj is None else ("name", "scopes", *self.readonly_fields)

    def save_model(self, request: HttpRequest, obj: ApiKey, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        plain = services.api_key_issue(api_key=obj, actor=Actor.from_admin(request.user))
        # Shown once, in this message; only its hash is stored.
        messages.warning(request, f"New API key for {obj.name!r} — copy it now, it will not be shown again: {plain}")

    @admin.action(description="Revoke selected API keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for api_key in queryset:
            services.api_key_revoke(api_key=api_key, actor=Actor.from_admin(request.user))
        self.message_user(request, f"Revoked {queryset.count()} API key(s).", messages.SUCCESS)


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "actor", "client_address", "action", "speaker_id", "decision", "score",
                    "threshold")
    list_filter = ("action", "decision", "created_at")
    search_fields = ("actor", "=speaker_id", "=client_address")
    date_hierarchy = "created_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Calibration)
class CalibrationAdmin(admin.ModelAdmin):
    """Read-only: calibrations are measured and stored by `manage.py calibrate`, never typed in."""

    list_display = ("id", "created_at", "model_version", "method", "far_target", "verify_threshold",
                    "identify_threshold", "identify_margin", "asnorm_verify_threshold", "eer", "created_by")
    list_filter = ("model_version", "method", "created_at")
    search_fields = ("model_version", "note", "created_by")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # withdraw one with `manage.py calibrate --revert` (audited)

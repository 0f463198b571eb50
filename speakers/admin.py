"""Admin panel. Every write and decision goes through the same services as the API, so the index stays right.

Beside the lists, three tools work with recordings (held in memory, never stored): add
enrollment recordings to a speaker, verify a recording against a speaker, identify a
recording against everyone. Numbers are shown rounded; refusals in plain words.
"""
from __future__ import annotations

import uuid
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from inference import InferenceError

from . import selectors, services
from .api.clients import client_address
from .exceptions import ApplicationError
from .models import ApiKey, ApiKeyScope, AuditEvent, Calibration, Enrollment, Speaker
from .plain_words import explain
from .services import Actor, Recording

# The lists get the whole width of a 1280 px screen (the sidebar repeats the home page's links).
admin.site.enable_nav_sidebar = False
admin.site.site_header = "voiceprint administration"
admin.site.site_title = "voiceprint admin"
admin.site.site_url = "/"

# --- numbers as a person reads them ------------------------------------------------------------------


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def _decibels(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} dB"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def _score(value: float | None) -> str:
    # Three decimals tell every threshold in use apart (0.45, 7.5, calibrated ones).
    return "-" if value is None else f"{value:.3f}"


def _admin_actor(request: HttpRequest) -> Actor:
    return Actor.from_admin(request.user, client_address=client_address(request))


def _recording(upload) -> Recording:
    return Recording(filename=upload.name or "", data=upload.read())


# --- speakers ----------------------------------------------------------------------------------------

class VoiceprintFilter(admin.SimpleListFilter):
    """By voiceprint status: only ``complete`` ones are enrolled (verified and searched)."""

    title = "voiceprint"
    parameter_name = "voiceprint"

    def lookups(self, request, model_admin):
        S = selectors.VoiceprintStatus
        return ((S.COMPLETE.value, "complete (enrolled)"), (S.INCOMPLETE.value, "incomplete (needs more speech)"),
                (S.OUTDATED.value, "outdated (another model version)"), (S.NONE.value, "no recording"),
                (S.UNREADABLE.value, "unreadable (damaged)"))

    def queryset(self, request, queryset):
        if self.value() in {s.value for s in selectors.VoiceprintStatus}:
            return selectors.speakers_with_voiceprint_status(
                speakers=queryset, status=self.value(), model_version=selectors.current_model_version())
        return queryset


class EnrollmentInline(admin.TabularInline):
    model = Enrollment
    fields = ("created_at", "filename", "duration", "speech", "snr", "model_version")
    readonly_fields = fields
    extra = 0
    can_delete = False  # delete enrollments from their own page, through the service
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # recordings are added with the "Add enrollment recordings" tool

    @admin.display(description="duration")
    def duration(self, enrollment: Enrollment) -> str:
        return _seconds(enrollment.duration_s)

    @admin.display(description="net speech")
    def speech(self, enrollment: Enrollment) -> str:
        return _seconds(enrollment.speech_s)

    @admin.display(description="SNR")
    def snr(self, enrollment: Enrollment) -> str:
        return _decibels(enrollment.snr_db)


class RecordingsWidget(forms.ClearableFileInput):
    allow_multiple_selected = True


class RecordingsField(forms.FileField):
    """One or more audio files."""

    def __init__(self, **kwargs):
        kwargs.setdefault("widget", RecordingsWidget(attrs={"accept": "audio/*"}))
        super().__init__(**kwargs)

    def clean(self, data, initial=None):
        single = super().clean
        files = data if isinstance(data, (list, tuple)) else [data]
        return [single(f, initial) for f in files]


ASNORM_CHOICES = (("", "the deployment's default"), ("false", "raw cosine"), ("true", "AS-norm"))


def _asnorm(value: str) -> bool | None:
    return {"true": True, "false": False}.get(value)


class EnrollForm(forms.Form):
    audio = RecordingsField(label="Recordings", help_text="One or more recordings of this speaker (WAV, FLAC, "
                                                          "OGG...). Only their embeddings are kept.")


class VerifyForm(forms.Form):
    audio = forms.FileField(label="Recording", widget=forms.ClearableFileInput(attrs={"accept": "audio/*"}))
    asnorm = forms.ChoiceField(label="Score", choices=ASNORM_CHOICES, required=False)


class IdentifyForm(forms.Form):
    audio = forms.FileField(label="Recording", widget=forms.ClearableFileInput(attrs={"accept": "audio/*"}))
    asnorm = forms.ChoiceField(label="Score", choices=ASNORM_CHOICES, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["top_k"] = forms.IntegerField(label="Candidates", min_value=1, initial=5,
                                                  max_value=settings.VOICEPRINT_MAX_TOP_K)
        self.order_fields(["audio", "top_k", "asnorm"])


@admin.register(Speaker)
class SpeakerAdmin(admin.ModelAdmin):
    list_display = ("__str__", "external_id", "enrolled", "enrollment_progress", "enrollment_count",
                    "last_verified_at")
    list_filter = (VoiceprintFilter, "created_at", "last_verified_at")
    search_fields = ("external_id", "display_name", "=id")
    fields = ("id", "external_id", "display_name", "metadata", "voiceprint", "enrollment_progress",
              "enrollment_count", "voiceprint_model_version", "voiceprint_key_id", "created_at", "updated_at",
              "last_verified_at", "last_identified_at")
    readonly_fields = ("id", "voiceprint", "enrollment_progress", "enrollment_count", "voiceprint_model_version",
                       "voiceprint_key_id", "created_at", "updated_at", "last_verified_at", "last_identified_at")
    inlines = [EnrollmentInline]
    change_form_template = "admin/speakers/speaker/change_form.html"
    change_list_template = "admin/speakers/speaker/change_list.html"

    def get_fields(self, request, obj=None):
        return ("external_id", "display_name", "metadata") if obj is None else self.fields

    def get_inline_instances(self, request, obj=None):
        return [] if obj is None else super().get_inline_instances(request, obj)  # a new speaker has no recordings

    @staticmethod
    def _status(speaker: Speaker) -> selectors.VoiceprintStatus:
        return selectors.voiceprint_status(speaker=speaker, model_version=selectors.current_model_version())

    @admin.display(boolean=True, description="enrolled")
    def enrolled(self, speaker: Speaker) -> bool | None:
        """True only for a complete voiceprint of the loaded model version (what verify and identify use)."""
        status = self._status(speaker)
        if status is selectors.VoiceprintStatus.UNREADABLE:
            return None  # shown as "unknown": damaged, left out of search until re-enrolled
        return status is selectors.VoiceprintStatus.COMPLETE

    @admin.display(description="voiceprint")
    def voiceprint(self, speaker: Speaker) -> str:
        return {
            selectors.VoiceprintStatus.NONE: "no recording yet",
            selectors.VoiceprintStatus.INCOMPLETE: "incomplete: enroll more speech",
            selectors.VoiceprintStatus.COMPLETE: "complete: verified and identified",
            selectors.VoiceprintStatus.OUTDATED: "outdated: made by another model version, enroll again",
            selectors.VoiceprintStatus.UNREADABLE: "unreadable (damaged): enroll again",
        }[self._status(speaker)]

    @admin.display(description="net speech")
    def enrollment_progress(self, speaker: Speaker) -> str:
        progress = selectors.enrollment_progress(speaker=speaker)
        status = self._status(speaker)
        shown = {selectors.VoiceprintStatus.OUTDATED: " (outdated)", selectors.VoiceprintStatus.UNREADABLE:
                 " (unreadable)"}.get(status, "")
        return f"{progress.text}{shown}"

    def get_queryset(self, request):
        return super().get_queryset(request).defer("voiceprint_ciphertext")

    def save_model(self, request, obj: Speaker, form, change: bool) -> None:
        if not change:
            created = services.speaker_create(actor=_admin_actor(request), external_id=obj.external_id,
                                              display_name=obj.display_name, metadata=obj.metadata)
            obj.pk, obj.created_at, obj.updated_at = created.pk, created.created_at, created.updated_at
            return
        services.speaker_update(speaker=obj, actor=_admin_actor(request), external_id=obj.external_id,
                                display_name=obj.display_name, metadata=obj.metadata)

    def delete_model(self, request, obj: Speaker) -> None:
        services.speaker_delete(speaker=obj, actor=_admin_actor(request))

    def delete_queryset(self, request, queryset: QuerySet[Speaker]) -> None:
        for speaker in queryset:
            services.speaker_delete(speaker=speaker, actor=_admin_actor(request))

    # --- the recording tools --------------------------------------------------------------------------

    def get_urls(self):
        tool = self.admin_site.admin_view
        return [
            path("identify/", tool(self.identify_view), name="speakers_speaker_identify"),
            path("<uuid:speaker_id>/enroll/", tool(self.enroll_view), name="speakers_speaker_enroll"),
            path("<uuid:speaker_id>/verify/", tool(self.verify_view), name="speakers_speaker_verify"),
            *super().get_urls(),
        ]

    def _tool_page(self, request: HttpRequest, *, title: str, form: forms.Form, speaker: Speaker | None = None,
                   result: dict[str, Any] | None = None, error: str | None = None) -> HttpResponse:
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "title": title,
                   "form": form, "speaker": speaker, "result": result, "error": error,
                   "has_view_permission": self.has_view_permission(request, speaker)}
        return TemplateResponse(request, "admin/speakers/speaker/tool.html", context)

    @staticmethod
    def _bound(form_class: type[forms.Form], request: HttpRequest) -> tuple[forms.Form, str | None]:
        """The posted form; an upload over the limits is reported as the form's error."""
        try:
            return form_class(request.POST, request.FILES), None
        except ApplicationError as exc:  # raised by the in-memory upload handler (size, count)
            return form_class(), explain(exc.code, exc.message, exc.detail)

    def enroll_view(self, request: HttpRequest, speaker_id: uuid.UUID) -> HttpResponse:
        speaker = get_object_or_404(Speaker, pk=speaker_id)
        if not self.has_change_permission(request, speaker):
            raise PermissionDenied
        title = f"Add enrollment recordings: {speaker}"
        if request.method != "POST":
            return self._tool_page(request, title=title, form=EnrollForm(), speaker=speaker)
        form, error = self._bound(EnrollForm, request)
        if error or not form.is_valid():
            return self._tool_page(request, title=title, form=form, speaker=speaker, error=error)
        try:
            outcome = services.speaker_enroll(speaker=speaker, actor=_admin_actor(request),
                                              recordings=[_recording(f) for f in form.cleaned_data["audio"]])
        except (ApplicationError, InferenceError) as exc:
            return self._tool_page(request, title=title, form=form, speaker=speaker, error=self._refusal(exc))
        progress = outcome.enrollment_progress
        self.message_user(request, f"Added {len(outcome.accepted)} recording(s): {progress.text} of speech, "
                                   f"{'complete' if progress.complete else 'not complete yet'}.", messages.SUCCESS)
        for refusal in outcome.refused:
            self.message_user(request, f"{refusal.filename}: {explain(refusal.code, refusal.message, refusal.detail)}",
                              messages.WARNING)
        return HttpResponseRedirect(reverse("admin:speakers_speaker_change", args=[speaker.pk]))

    def verify_view(self, request: HttpRequest, speaker_id: uuid.UUID) -> HttpResponse:
        speaker = get_object_or_404(Speaker, pk=speaker_id)
        if not self.has_view_permission(request, speaker):
            raise PermissionDenied
        title = f"Verify a recording: is it {speaker}?"
        if request.method != "POST":
            return self._tool_page(request, title=title, form=VerifyForm(), speaker=speaker)
        form, error = self._bound(VerifyForm, request)
        if error or not form.is_valid():
            return self._tool_page(request, title=title, form=form, speaker=speaker, error=error)
        try:
            decision = services.speaker_verify(speaker=speaker, recording=_recording(form.cleaned_data["audio"]),
                                               actor=_admin_actor(request),
                                               asnorm=_asnorm(form.cleaned_data["asnorm"]))
        except (ApplicationError, InferenceError) as exc:
            return self._tool_page(request, title=title, form=form, speaker=speaker, error=self._refusal(exc))
        result = {"kind": "verify", "accepted": decision.accepted, "score": _score(decision.score),
                  "threshold": _score(decision.threshold), "raw_score": _score(decision.raw_score),
                  "score_normalisation": decision.score_normalisation,
                  "processing_time_ms": f"{decision.processing_time_ms:.0f}"}
        return self._tool_page(request, title=title, form=VerifyForm(), speaker=speaker, result=result)

    def identify_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        title = "Identify a recording: who is speaking?"
        if request.method != "POST":
            return self._tool_page(request, title=title, form=IdentifyForm())
        form, error = self._bound(IdentifyForm, request)
        if error or not form.is_valid():
            return self._tool_page(request, title=title, form=form, error=error)
        try:
            decision = services.speaker_identify(recording=_recording(form.cleaned_data["audio"]),
                                                 top_k=form.cleaned_data["top_k"], actor=_admin_actor(request),
                                                 asnorm=_asnorm(form.cleaned_data["asnorm"]))
        except (ApplicationError, InferenceError) as exc:
            return self._tool_page(request, title=title, form=form, error=self._refusal(exc))
        match_id = decision.match.speaker_id if decision.match else None
        result = {
            "kind": "identify", "threshold": _score(decision.threshold), "margin": _score(decision.margin),
            "runner_up_score": _score(decision.runner_up_score),
            "score_normalisation": decision.score_normalisation,
            "no_match_reason": {"no_candidates": "nobody is enrolled", "below_threshold":
                                "no voice scores above the threshold", "ambiguous":
                                "two voices score too close to tell apart"}.get(decision.no_match_reason or ""),
            "match": decision.match and (decision.match.display_name or decision.match.external_id
                                         or str(decision.match.speaker_id)),
            "match_url": match_id and reverse("admin:speakers_speaker_change", args=[match_id]),
            "candidates": [{"name": c.display_name or c.external_id or str(c.speaker_id),
                            "url": reverse("admin:speakers_speaker_change", args=[c.speaker_id]),
                            "score": _score(c.score), "raw_score": _score(c.raw_score),
                            "is_match": c.speaker_id == match_id} for c in decision.candidates],
            "processing_time_ms": f"{decision.processing_time_ms:.0f}",
        }
        return self._tool_page(request, title=title, form=IdentifyForm(initial={"top_k": form.cleaned_data["top_k"]}),
                               result=result)

    @staticmethod
    def _refusal(exc: ApplicationError | InferenceError) -> str:
        text = explain(exc.code, exc.message, exc.detail)
        files = exc.detail.get("files") if exc.code == "recordings_refused" else None
        if files:
            text += " " + "; ".join(f"{f['filename']}: {explain(f['code'], f['message'], f['detail'])}"
                                    for f in files)
        return text


# --- enrollments ---------------------------------------------------------------------------------------

ENROLLMENT_METADATA = ("id", "speaker", "filename", "model_version", "duration", "speech", "snr", "clipping",
                       "speech_share", "key_id", "created_at")


@admin.register(Enrollment)
class EnrollmentAdmin(admin.ModelAdmin):
    list_display = ("created_at", "speaker", "filename", "duration", "speech", "snr")
    list_filter = ("model_version", "created_at")
    search_fields = ("=speaker__id", "speaker__external_id", "speaker__display_name", "filename")
    fields = ENROLLMENT_METADATA
    readonly_fields = ENROLLMENT_METADATA
    list_select_related = ("speaker",)

    @admin.display(description="duration", ordering="duration_s")
    def duration(self, enrollment: Enrollment) -> str:
        return _seconds(enrollment.duration_s)

    @admin.display(description="net speech", ordering="speech_s")
    def speech(self, enrollment: Enrollment) -> str:
        return _seconds(enrollment.speech_s)

    @admin.display(description="SNR", ordering="snr_db")
    def snr(self, enrollment: Enrollment) -> str:
        return _decibels(enrollment.snr_db)

    @admin.display(description="clipped samples")
    def clipping(self, enrollment: Enrollment) -> str:
        return _percent(enrollment.clipping_ratio)

    @admin.display(description="speech share of the recording")
    def speech_share(self, enrollment: Enrollment) -> str:
        return _percent(enrollment.speech_ratio)

    def get_queryset(self, request):
        return super().get_queryset(request).defer("embedding_ciphertext", "speaker__voiceprint_ciphertext")

    def has_add_permission(self, request) -> bool:
        return False  # added from the speaker's page ("Add enrollment recordings"), with audio

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def delete_model(self, request, obj: Enrollment) -> None:
        services.enrollment_delete(enrollment=obj, actor=_admin_actor(request))

    def delete_queryset(self, request, queryset: QuerySet[Enrollment]) -> None:
        for enrollment in queryset:
            services.enrollment_delete(enrollment=enrollment, actor=_admin_actor(request))


# --- API keys --------------------------------------------------------------------------------------------

class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=ApiKeyScope.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = ApiKey
        fields = ("name", "scopes")


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
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
        return ("name", "scopes") if obj is None else ("name", "scopes", *self.readonly_fields)

    def save_model(self, request: HttpRequest, obj: ApiKey, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        plain = services.api_key_issue(api_key=obj, actor=_admin_actor(request))
        # Shown once, in this message; only its hash is stored.
        messages.warning(request, f"New API key for {obj.name!r} — copy it now, it will not be shown again: {plain}")

    @admin.action(description="Revoke selected API keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for api_key in queryset:
            services.api_key_revoke(api_key=api_key, actor=_admin_actor(request))
        self.message_user(request, f"Revoked {queryset.count()} API key(s).", messages.SUCCESS)


# --- the audit log ------------------------------------------------------------------------------------

@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
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
            return _score(event.score)
        return f"{_score(event.score)} {'≥' if event.score >= event.threshold else '<'} {_score(event.threshold)}"

    @admin.display(description="score", ordering="score")
    def rounded_score(self, event: AuditEvent) -> str:
        return _score(event.score)

    @admin.display(description="threshold", ordering="threshold")
    def rounded_threshold(self, event: AuditEvent) -> str:
        return _score(event.threshold)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Calibration)
class CalibrationAdmin(admin.ModelAdmin):
    """Read-only: calibrations are measured and stored by `manage.py calibrate`, never typed in."""

    list_display = ("id", "created_at", "model_version", "method", "verify", "identify", "margin",
                    "asnorm_verify", "eer_percent", "created_by")
    list_filter = ("model_version", "method", "created_at")
    search_fields = ("model_version", "note", "created_by")

    @admin.display(description="verify")
    def verify(self, c: Calibration) -> str:
        return _score(c.verify_threshold)

    @admin.display(description="identify")
    def identify(self, c: Calibration) -> str:
        return _score(c.identify_threshold)

    @admin.display(description="margin")
    def margin(self, c: Calibration) -> str:
        return _score(c.identify_margin)

    @admin.display(description="AS-norm verify")
    def asnorm_verify(self, c: Calibration) -> str:
        return _score(c.asnorm_verify_threshold)

    @admin.display(description="EER")
    def eer_percent(self, c: Calibration) -> str:
        return _percent(c.eer)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # withdraw one with `manage.py calibrate --revert` (audited)

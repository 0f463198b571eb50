"""Admin pages for speakers: lists, the voiceprint filter, and the enroll, verify and identify tools.

The tools work with recordings held in memory, never stored; every write and decision goes
through the same services as the API, so the index stays right.
"""
from __future__ import annotations

import functools
import uuid
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from rest_framework import serializers

from inference import InferenceError

from .. import selectors, services
from ..api.validators import validate_metadata
from ..exceptions import ApplicationError, InvalidExternalId
from ..external_ids import external_id_normalise
from ..models import Enrollment, Speaker
from ..plain_words import explain
from .common import (
    EnrollmentFigures,
    TenantChoiceField,
    TenantScoped,
    admin_actor,
    audit_tool_refusal,
    recording,
    score,
)

# --- speakers ----------------------------------------------------------------------------------------

class VoiceprintFilter(admin.SimpleListFilter):
    """By voiceprint status: only ``complete`` ones are enrolled (verified and searched)."""

    title = "voiceprint"
    parameter_name = "voiceprint"

    def lookups(self, request, model_admin):
        S = selectors.VoiceprintStatus
        return ((S.COMPLETE.value, "complete (enrolled)"), (S.INCOMPLETE.value, "incomplete (needs more speech)"),
                (S.PARTIAL.value, "partial (one model of the fused engine)"),
                (S.OUTDATED.value, "outdated (another model version)"), (S.NONE.value, "no recording"),
                (S.UNREADABLE.value, "unreadable (damaged)"))

    def queryset(self, request, queryset):
        if self.value() in {s.value for s in selectors.VoiceprintStatus}:
            return selectors.speakers_with_voiceprint_status(
                speakers=queryset, status=self.value(), model_version=selectors.current_model_version())
        return queryset


class EnrollmentInline(EnrollmentFigures, admin.TabularInline):
    model = Enrollment
    fields = ("created_at", "filename", "duration", "speech", "snr", "model_version")
    readonly_fields = fields
    extra = 0
    can_delete = False  # delete enrollments from their own page, through the service
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # recordings are added with the "Add enrollment recordings" tool



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

    def __init__(self, *args, request: HttpRequest, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["top_k"] = forms.IntegerField(label="Candidates", min_value=1, initial=5,
                                                  max_value=settings.VOICEPRINT_MAX_TOP_K)
        self.fields["tenant"] = TenantChoiceField(request, label="Among the speakers of")
        self.order_fields(["audio", "tenant", "top_k", "asnorm"])


class SpeakerForm(forms.ModelForm):
    """The admin's speaker form checks what the API checks: the external id's normal form, the metadata's limits."""

    class Meta:
        model = Speaker
        fields = ("external_id", "display_name", "metadata")

    def clean_external_id(self) -> str | None:
        try:
            return external_id_normalise(self.cleaned_data.get("external_id"))
        except InvalidExternalId as exc:
            raise forms.ValidationError(exc.message, code=exc.code) from None

    def clean_metadata(self):
        try:
            return validate_metadata(self.cleaned_data.get("metadata") or {})
        except serializers.ValidationError as exc:
            raise forms.ValidationError([str(message) for message in exc.detail]) from None


class SpeakerAddForm(SpeakerForm):
    """A new speaker: the tenant it belongs to, among the admin user's."""

    request: HttpRequest | None = None  # set by the admin

    class Meta(SpeakerForm.Meta):
        fields = ("tenant", "external_id", "display_name", "metadata")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tenant"] = TenantChoiceField(self.request, label="Tenant")


@admin.register(Speaker)
class SpeakerAdmin(TenantScoped, admin.ModelAdmin):
    form = SpeakerForm
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
        return ("tenant", "external_id", "display_name", "metadata") if obj is None else ("tenant", *self.fields)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is None else ("tenant", *self.readonly_fields)

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = type("SpeakerAddForm", (SpeakerAddForm,), {"request": request})
        return super().get_form(request, obj, change=change, **kwargs)

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
            selectors.VoiceprintStatus.PARTIAL: "partial: made by ECAPA alone, verified and identified with it; "
                                                "enroll again for both models",
            selectors.VoiceprintStatus.OUTDATED: "outdated: made by another model version, enroll again",
            selectors.VoiceprintStatus.UNREADABLE: "unreadable (damaged): enroll again",
        }[self._status(speaker)]

    @admin.display(description="net speech")
    def enrollment_progress(self, speaker: Speaker) -> str:
        progress = selectors.enrollment_progress(speaker=speaker)
        status = self._status(speaker)
        shown = {selectors.VoiceprintStatus.OUTDATED: " (outdated)", selectors.VoiceprintStatus.PARTIAL: " (partial)",
                 selectors.VoiceprintStatus.UNREADABLE: " (unreadable)"}.get(status, "")
        return f"{progress.text}{shown}"

    def get_queryset(self, request):
        return super().get_queryset(request).defer("voiceprint_ciphertext")

    def save_model(self, request, obj: Speaker, form, change: bool) -> None:
        if not change:
            created = services.speaker_create(actor=admin_actor(request, form.cleaned_data["tenant"]),
                                              external_id=obj.external_id, display_name=obj.display_name,
                                              metadata=obj.metadata)
            obj.pk, obj.tenant, obj.created_at, obj.updated_at = (created.pk, created.tenant, created.created_at,
                                                                  created.updated_at)
            return
        services.speaker_update(speaker=obj, actor=admin_actor(request, obj.tenant), external_id=obj.external_id,
                                display_name=obj.display_name, metadata=obj.metadata)

    def delete_model(self, request, obj: Speaker) -> None:
        services.speaker_delete(speaker=obj, actor=admin_actor(request, obj.tenant))

    def delete_queryset(self, request, queryset: QuerySet[Speaker]) -> None:
        for speaker in queryset:
            services.speaker_delete(speaker=speaker, actor=admin_actor(request, speaker.tenant))

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
    def _bound(form_class, request: HttpRequest,
               speaker: Speaker | None = None) -> tuple[forms.Form, str | None]:
        """``(form, None)`` for a valid form; else ``(form, why)``: an upload over the limits in plain words, or
        "" when the form shows its own field errors. Either refusal is audited as the API's are."""
        try:
            form = form_class(request.POST, request.FILES)
        except ApplicationError as exc:  # raised by the in-memory upload handler (size, count)
            audit_tool_refusal(request, exc, speaker_id=speaker and speaker.pk)
            return form_class(), explain(exc.code, exc.message, exc.detail)
        if not form.is_valid():
            audit_tool_refusal(request, speaker_id=speaker and speaker.pk, invalid_fields=list(form.errors))
            return form, ""
        return form, None

    def enroll_view(self, request: HttpRequest, speaker_id: uuid.UUID) -> HttpResponse:
        speaker = get_object_or_404(self.get_queryset(request), pk=speaker_id)
        if not self.has_change_permission(request, speaker):
            raise PermissionDenied
        title = f"Add enrollment recordings: {speaker}"
        if request.method != "POST":
            return self._tool_page(request, title=title, form=EnrollForm(), speaker=speaker)
        form, error = self._bound(EnrollForm, request, speaker)
        if error is not None:
            return self._tool_page(request, title=title, form=form, speaker=speaker, error=error or None)
        try:
            outcome = services.speaker_enroll(speaker=speaker, actor=admin_actor(request, speaker.tenant),
                                              recordings=[recording(f) for f in form.cleaned_data["audio"]])
        except (ApplicationError, InferenceError) as exc:
            return self._tool_page(request, title=title, form=form, speaker=speaker,
                                   error=self._refusal(request, exc, speaker))
        progress = outcome.enrollment_progress
        self.message_user(request, f"Added {len(outcome.accepted)} recording(s): {progress.text} of speech, "
                                   f"{'complete' if progress.complete else 'not complete yet'}.", messages.SUCCESS)
        for refusal in outcome.refused:
            self.message_user(request, f"{refusal.filename}: {explain(refusal.code, refusal.message, refusal.detail)}",
                              messages.WARNING)
        return HttpResponseRedirect(reverse("admin:speakers_speaker_change", args=[speaker.pk]))

    def verify_view(self, request: HttpRequest, speaker_id: uuid.UUID) -> HttpResponse:
        speaker = get_object_or_404(self.get_queryset(request), pk=speaker_id)
        if not self.has_view_permission(request, speaker):
            raise PermissionDenied
        title = f"Verify a recording: is it {speaker}?"
        if request.method != "POST":
            return self._tool_page(request, title=title, form=VerifyForm(), speaker=speaker)
        form, error = self._bound(VerifyForm, request, speaker)
        if error is not None:
            return self._tool_page(request, title=title, form=form, speaker=speaker, error=error or None)
        try:
            decision = services.speaker_verify(speaker=speaker, recording=recording(form.cleaned_data["audio"]),
                                               actor=admin_actor(request, speaker.tenant),
                                               asnorm=_asnorm(form.cleaned_data["asnorm"]))
        except (ApplicationError, InferenceError) as exc:
            return self._tool_page(request, title=title, form=form, speaker=speaker,
                                   error=self._refusal(request, exc, speaker))
        result = {"kind": "verify", "accepted": decision.accepted, "score": score(decision.score),
                  "threshold": score(decision.threshold), "raw_score": score(decision.raw_score),
                  "score_normalisation": decision.score_normalisation,
                  "processing_time_ms": f"{decision.processing_time_ms:.0f}"}
        return self._tool_page(request, title=title, form=VerifyForm(), speaker=speaker, result=result)

    def identify_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        title = "Identify a recording: who is speaking?"
        identify_form = functools.partial(IdentifyForm, request=request)
        if request.method != "POST":
            return self._tool_page(request, title=title, form=identify_form())
        form, error = self._bound(identify_form, request)
        if error is not None:
            return self._tool_page(request, title=title, form=form, error=error or None)
        try:
            decision = services.speaker_identify(recording=recording(form.cleaned_data["audio"]),
                                                 top_k=form.cleaned_data["top_k"],
                                                 actor=admin_actor(request, form.cleaned_data["tenant"]),
                                                 asnorm=_asnorm(form.cleaned_data["asnorm"]))
        except (ApplicationError, InferenceError) as exc:
            return self._tool_page(request, title=title, form=form, error=self._refusal(request, exc))
        match_id = decision.match.speaker_id if decision.match else None
        result = {
            "kind": "identify", "threshold": score(decision.threshold), "margin": score(decision.margin),
            "runner_up_score": score(decision.runner_up_score),
            "score_normalisation": decision.score_normalisation,
            "no_match_reason": {"no_candidates": "nobody is enrolled", "below_threshold":
                                "no voice scores above the threshold", "ambiguous":
                                "two voices score too close to tell apart"}.get(decision.no_match_reason or ""),
            "match": decision.match and (decision.match.display_name or decision.match.external_id
                                         or str(decision.match.speaker_id)),
            "matched_by_lead": decision.matched_by == "lead", "lead": score(decision.lead),
            "lead_required": score(decision.lead_required),
            "match_url": match_id and reverse("admin:speakers_speaker_change", args=[match_id]),
            "candidates": [{"name": c.display_name or c.external_id or str(c.speaker_id),
                            "url": reverse("admin:speakers_speaker_change", args=[c.speaker_id]),
                            "score": score(c.score), "raw_score": score(c.raw_score),
                            "is_match": c.speaker_id == match_id} for c in decision.candidates],
            "processing_time_ms": f"{decision.processing_time_ms:.0f}",
        }
        return self._tool_page(request, title=title,
                               form=identify_form(initial={"top_k": form.cleaned_data["top_k"],
                                                           "tenant": form.cleaned_data["tenant"]}),
                               result=result)

    @staticmethod
    def _refusal(request: HttpRequest, exc: ApplicationError | InferenceError, speaker: Speaker | None = None) -> str:
        """The refusal on record (as the API's are), and in plain words for the page."""
        audit_tool_refusal(request, exc, speaker_id=speaker and speaker.pk)
        text = explain(exc.code, exc.message, exc.detail)
        files = exc.detail.get("files") if exc.code == "recordings_refused" else None
        if files:
            text += " " + "; ".join(f"{f['filename']}: {explain(f['code'], f['message'], f['detail'])}"
                                    for f in files)
        return text

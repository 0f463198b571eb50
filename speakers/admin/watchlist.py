"""Admin pages for the fraud watchlist: list, add a voice from recordings or a speaker, remove (audited)."""
from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from inference import InferenceError

from .. import selectors
from ..exceptions import ApplicationError
from ..models import WatchlistEntry
from ..plain_words import explain
from ..services import watchlist as watchlist_service
from .common import TenantChoiceField, TenantScoped, admin_actor, recording
from .speakers import RecordingsField


class WatchlistEntryForm(forms.ModelForm):
    """Adding an entry: recordings (or a speaker) go through the service when the form is checked, so a
    refused recording reads as a form error and nothing is stored."""

    audio = RecordingsField(label="Recordings", required=False,
                            help_text="Recordings of the fraudster's voice (only their embeddings are kept)...")
    speaker_id = forms.UUIDField(label="...or an enrolled speaker's id", required=False,
                                 help_text="Copies that speaker's voiceprint to the watchlist.")
    request: HttpRequest | None = None  # set by the admin

    class Meta:
        model = WatchlistEntry
        fields = ("tenant", "label", "notes")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "tenant" in self.fields:
            self.fields["tenant"] = TenantChoiceField(self.request, label="Tenant")

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        if bool(data.get("audio")) == bool(data.get("speaker_id")):
            raise ValidationError("Give recordings or a speaker's id (one of the two).")
        tenant = data["tenant"]
        try:
            speaker = (selectors.speaker_get(tenant=tenant, speaker_id=data["speaker_id"]) if data.get("speaker_id")
                       else None)
            self.created = watchlist_service.watchlist_entry_create(
                label=data["label"], notes=data.get("notes", ""), actor=admin_actor(self.request, tenant),
                speaker=speaker,
                recordings=[recording(f) for f in data.get("audio") or []])
        except (ApplicationError, InferenceError) as error:
            raise ValidationError(explain(error.code, error.message, error.detail)) from error
        return data


@admin.register(WatchlistEntry)
class WatchlistEntryAdmin(TenantScoped, admin.ModelAdmin):
    form = WatchlistEntryForm
    list_display = ("label", "source", "created_by", "created_at")
    list_filter = ("source", "created_at")
    search_fields = ("label", "notes", "=id")
    readonly_fields = ("id", "source", "source_speaker_id", "created_by", "created_at", "model_versions")

    @admin.display(description="voiceprints of model")
    def model_versions(self, entry: WatchlistEntry) -> str:
        return ", ".join(v.model_version for v in entry.voiceprints.all()) or "-"

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("tenant", "label", "notes", "audio", "speaker_id")
        return ("tenant", "label", "notes", *self.readonly_fields)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"request": request})

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # an entry is replaced, not edited: its voice is what it is

    def save_model(self, request: HttpRequest, obj: WatchlistEntry, form, change: bool) -> None:
        # the form's check made the entry through the service (audited); the admin only shows it
        obj.pk, obj._state.adding, obj._state.db = form.created.pk, False, form.created._state.db

    def delete_model(self, request, obj: WatchlistEntry) -> None:
        watchlist_service.watchlist_entry_delete(entry=obj, actor=admin_actor(request, obj.tenant))

    def delete_queryset(self, request, queryset: QuerySet[WatchlistEntry]) -> None:
        for entry in queryset:
            watchlist_service.watchlist_entry_delete(entry=entry, actor=admin_actor(request, entry.tenant))

"""What the admin pages share: numbers as a person reads them, the acting user, an uploaded recording."""
from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from ..api.clients import client_address
from ..api.errors import describe_error
from ..audit import audit_refusal
from ..models import DEFAULT_TENANT_SLUG, Enrollment, Tenant
from ..services import Actor, Recording


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def decibels(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} dB"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def score(value: float | None) -> str:
    # Three decimals tell every threshold in use apart (0.45, 7.5, calibrated ones).
    return "-" if value is None else f"{value:.3f}"


def admin_actor(request: HttpRequest, tenant: Tenant | None = None) -> Actor:
    """The acting admin user, working in ``tenant`` (the tenant of the object acted on)."""
    return Actor.from_admin(request.user, client_address=client_address(request), tenant=tenant)


def admin_tenants(request: HttpRequest) -> QuerySet[Tenant]:
    """The tenants this admin user may see: every one for a superuser, the tenants that list them for staff."""
    if request.user.is_superuser:
        return Tenant.objects.all()
    return Tenant.objects.filter(staff=request.user)


class ReadOnly:
    """A model admin whose rows are never added, edited or deleted from their pages (the services write them,
    and any write an operator may make is an audited action of the page)."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class TenantScoped:
    """A model admin whose lists and pages show only the rows of the user's tenants (``tenant_path`` names the field)."""

    tenant_path = "tenant"

    def get_queryset(self, request):
        rows = super().get_queryset(request)
        if request.user.is_superuser:
            return rows
        return rows.filter(**{f"{self.tenant_path}__in": admin_tenants(request)})

    def get_list_filter(self, request):
        filters = list(super().get_list_filter(request))
        return [self.tenant_path, *filters] if admin_tenants(request).count() > 1 else filters


class TenantChoiceField(forms.ModelChoiceField):
    """Which of the admin user's tenants a new object belongs to: the default tenant unless another is chosen."""

    def __init__(self, request: HttpRequest, **kwargs):
        choices = admin_tenants(request).order_by("slug")
        kwargs.setdefault("required", False)
        super().__init__(queryset=choices, initial=choices.filter(slug=DEFAULT_TENANT_SLUG).first() or choices.first(),
                         empty_label=None, **kwargs)

    def clean(self, value):
        chosen = super().clean(value)
        if chosen is None:
            if self.initial is None:
                raise forms.ValidationError("You may not add to any tenant.")
            return self.initial
        return chosen


def audit_tool_refusal(request: HttpRequest, exc: Exception | None = None, *, speaker_id=None,
                       invalid_fields: list[str] | None = None) -> None:
    """A refusal by an admin tool goes on record as the API's do: the error's code and HTTP status, or a
    form the tool could not accept (``validation_error`` and the fields at fault)."""
    if exc is not None:
        status, code, _, detail = describe_error(exc)
    else:
        status, code, detail = 400, "validation_error", {"fields": sorted(invalid_fields or [])}
    audit_refusal(actor=admin_actor(request), code=code, status=status, method=request.method or "",
                  path=request.path, speaker_id=speaker_id, detail=detail)


def recording(upload) -> Recording:
    return Recording(filename=upload.name or "", data=upload.read())


class EnrollmentFigures:
    """The figures of an enrollment recording as a person reads them (for a list, an inline or a page)."""

    @admin.display(description="duration", ordering="duration_s")
    def duration(self, enrollment: Enrollment) -> str:
        return seconds(enrollment.duration_s)

    @admin.display(description="net speech", ordering="speech_s")
    def speech(self, enrollment: Enrollment) -> str:
        return seconds(enrollment.speech_s)

    @admin.display(description="SNR", ordering="snr_db")
    def snr(self, enrollment: Enrollment) -> str:
        return decibels(enrollment.snr_db)

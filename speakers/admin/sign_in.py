"""The admin's sign-in under guessing: django-axes locks a (username, address) pair; this module audits it.

django-axes (settings: ``AXES_*`` from ``VOICEPRINT_ADMIN_LOGIN_FAILURES`` / ``_LOCKOUT_S``) counts
failed sign-ins per username and client address and, past the limit, refuses that pair before the
password is checked, until the cool-off ends. Here: every failed sign-in goes on the audit trail
(``auth_failure``, ``invalid_credentials``), the lockout itself (``login_lockout``), and attempts
while locked (``throttled``, once a minute per address); and the page a locked-out person sees.
"""
from __future__ import annotations

import logging

from axes.helpers import get_cool_off
from axes.signals import user_locked_out
from django.contrib import admin
from django.contrib.auth.signals import user_login_failed
from django.db import DatabaseError, transaction
from django.dispatch import receiver
from django.shortcuts import render

from ..api.clients import client_address
from ..audit import Actor, audit_record, audit_refusal
from ..models import AuditAction

logger = logging.getLogger(__name__)

LOCKED = "admin_login_locked"


def _locked_attempt(request) -> bool:
    """An attempt refused because its pair is already locked (axes counted no new failure for it)."""
    return bool(getattr(request, "axes_locked_out", False)) and getattr(request, "axes_failures_since_start",
                                                                        None) is None


def _actor(request) -> Actor:
    return Actor.anonymous(client_address=client_address(request))


@receiver(user_login_failed, dispatch_uid="voiceprint_audit_failed_sign_in")
def audit_failed_sign_in(sender, credentials: dict, request=None, **kwargs) -> None:
    if request is None or _locked_attempt(request):
        return  # a locked attempt is audited with the lockout signal that axes sends for it
    audit_refusal(actor=_actor(request), code="invalid_credentials", status=401, method=request.method or "",
                  path=request.path, detail={"username": str(credentials.get("username") or "")})


@receiver(user_locked_out, dispatch_uid="voiceprint_audit_lockout")
def audit_lockout(sender, request=None, username: str | None = None, ip_address: str | None = None,
                  **kwargs) -> None:
    if request is None:
        return
    detail = {"username": str(username or ""), "method": request.method or "", "path": request.path}
    if _locked_attempt(request):
        audit_refusal(actor=_actor(request), code=LOCKED, status=429, method=detail["method"], path=detail["path"],
                      detail=detail)
        return
    cool_off = get_cool_off(request)
    try:
        with transaction.atomic():
            audit_record(actor=_actor(request), action=AuditAction.LOGIN_LOCKOUT, decision=LOCKED,
                         detail={**detail, "failures": getattr(request, "axes_failures_since_start", None),
                                 "locked_for_s": int(cool_off.total_seconds()) if cool_off else None})
    except DatabaseError:
        logger.exception("the lockout could not be audited")


def locked_out_page(request, original_response=None, credentials=None):
    """``AXES_LOCKOUT_CALLABLE``: the admin's sign-in page says what happened and when to try again (429)."""
    cool_off = get_cool_off(request)
    minutes = max(1, round(cool_off.total_seconds() / 60)) if cool_off else None
    context = {**admin.site.each_context(request), "title": "Sign-in paused", "minutes": minutes,
               "username": (credentials or {}).get("username", "")}
    return render(request, "admin/speakers/login_locked.html", context, status=429)

"""The admin's sign-in resists guessing (issue 18, item 8): failures lock a username from one address.

A red team tried 60 wrong passwords in 131 s with no throttle, and the right one still worked.
Now ``VOICEPRINT_ADMIN_LOGIN_FAILURES`` wrong passwords for one username from one address lock that
pair (the right password included) for ``VOICEPRINT_ADMIN_LOCKOUT_S``; the same username from
another address, the real administrator's, still signs in, so an attacker cannot lock them out.
Failed sign-ins and lockouts are in the audit log.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from apitools import wait_until
from django.test import Client

from speakers.models import AuditEvent

pytestmark = pytest.mark.django_db

PASSWORD = "right-password-for-the-tests-1"
ATTACKER, ADMIN_DESK = "203.0.113.66", "198.51.100.7"


@pytest.fixture
def root(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.invalid", PASSWORD)


def _sign_in(password: str, address: str, username: str = "root", client: Client | None = None):
    return (client or Client()).post("/admin/login/?next=/admin/", {"username": username, "password": password},
                                     REMOTE_ADDR=address)


def _signed_in(response) -> bool:
    return response.status_code == 302 and response["Location"] == "/admin/"


def _fail_until_locked(settings, address: str = ATTACKER, username: str = "root") -> None:
    limit = settings.VOICEPRINT_ADMIN_LOGIN_FAILURES
    for attempt in range(limit):
        response = _sign_in(f"guess-{attempt}", address, username)
        # the form again with its error, and at the limit the page that says the sign-in is paused
        assert response.status_code == (429 if attempt == limit - 1 else 200) and not _signed_in(response)


def test_wrong_passwords_lock_the_username_from_that_address_even_for_the_right_password(root, settings):
    _fail_until_locked(settings)
    locked = _sign_in(PASSWORD, ATTACKER)
    assert locked.status_code == 429 and not _signed_in(locked)
    assert "Too many failed sign-ins" in locked.content.decode()


def test_the_real_administrator_still_signs_in_from_another_address(root, settings):
    _fail_until_locked(settings)
    assert _signed_in(_sign_in(PASSWORD, ADMIN_DESK))


def test_another_username_from_the_locked_address_is_not_locked(root, django_user_model, settings):
    django_user_model.objects.create_superuser("ops", "ops@example.invalid", PASSWORD)
    _fail_until_locked(settings)
    assert _signed_in(_sign_in(PASSWORD, ATTACKER, username="ops"))


def test_fewer_failures_than_the_limit_do_not_lock_and_a_sign_in_starts_the_count_again(root, settings):
    for _ in range(2):
        for attempt in range(settings.VOICEPRINT_ADMIN_LOGIN_FAILURES - 1):
            _sign_in(f"typo-{attempt}", ADMIN_DESK)
        assert _signed_in(_sign_in(PASSWORD, ADMIN_DESK))


def test_a_lock_ends_after_the_cool_off(root, settings):
    _fail_until_locked(settings)
    assert _sign_in(PASSWORD, ATTACKER).status_code == 429
    settings.AXES_COOLOFF_TIME = timedelta(seconds=1)  # the failures are now older than the cool-off
    wait_until(lambda: _signed_in(_sign_in(PASSWORD, ATTACKER)), timeout=15, message="a sign-in after the cool-off")


def test_failed_sign_ins_and_the_lockout_are_audited(root, settings):
    _fail_until_locked(settings)
    _sign_in(PASSWORD, ATTACKER)
    _sign_in(PASSWORD, ATTACKER)
    failures = AuditEvent.objects.filter(action="auth_failure", decision="invalid_credentials")
    assert failures.count() == settings.VOICEPRINT_ADMIN_LOGIN_FAILURES
    assert {(e.actor, e.client_address, e.detail["username"], e.detail["path"]) for e in failures} == {
        ("anonymous", ATTACKER, "root", "/admin/login/")}
    lockout = AuditEvent.objects.get(action="login_lockout")
    assert (lockout.client_address, lockout.decision, lockout.detail["username"]) == (ATTACKER, "admin_login_locked",
                                                                                      "root")
    # attempts while locked: one throttled row a minute, not one a request
    assert AuditEvent.objects.filter(action="throttled", decision="admin_login_locked").count() == 1
    assert "guess-" not in str([e.detail for e in AuditEvent.objects.all()])  # never a password tried

"""Verification locks protect the victim: a caller's rejections lock that caller (its API key, its address) out
of one speaker, never the genuine speaker calling with another key from another address (issue 18, item 4)."""
from __future__ import annotations

import io

import pytest
from apitools import assert_error
from django.core.management import CommandError, call_command
from django.urls import reverse
from rest_framework.test import APIClient

from speakers.audit import Actor
from speakers.exceptions import VerificationLocked
from speakers.models import ApiKey, AuditEvent, Speaker, VerificationLock
from speakers.services.lockout import verification_lock_lift
from speakers.services.streaming import stream_speaker_reference

ATTACKER, GENUINE = "203.0.113.7", "198.51.100.20"


@pytest.fixture(autouse=True)
def _three_rejections_lock(settings) -> None:
    settings.VOICEPRINT_VERIFY_LOCKOUT_AFTER = 3


@pytest.fixture
def caller(make_key):
    """``caller()`` -> an API client with its own key (every scope)."""

    def make(name: str = "tests") -> APIClient:
        api = APIClient()
        api.credentials(HTTP_X_API_KEY=make_key(name=name))
        return api

    return make


def _verify(api: APIClient, speaker_id: str, upload, name: str, address: str):
    return api.post("/api/v1/verify", {"speaker_id": speaker_id, "audio": upload(name)}, format="multipart",
                    REMOTE_ADDR=address)


def _reject(api: APIClient, speaker_id: str, upload, address: str, times: int = 3) -> None:
    for _ in range(times):
        response = _verify(api, speaker_id, upload, "b_snt5", address)
        assert response.status_code == 200 and response.json()["accepted"] is False, response.json()


def test_one_keys_rejections_lock_that_key_and_never_the_genuine_speakers_key(caller, upload, enrolled):
    attacker, genuine = caller("attacker"), caller("genuine")
    _reject(attacker, enrolled["a"], upload, ATTACKER)
    assert_error(_verify(attacker, enrolled["a"], upload, "a_snt5", ATTACKER), 429, "verification_locked")
    accepted = _verify(genuine, enrolled["a"], upload, "a_snt5", GENUINE)
    assert accepted.status_code == 200 and accepted.json()["accepted"] is True
    # the key is locked (at any address) and so is the address (with any key); both are on record
    assert_error(_verify(attacker, enrolled["a"], upload, "a_snt5", "192.0.2.99"), 429, "verification_locked")
    assert_error(_verify(caller("another"), enrolled["a"], upload, "a_snt5", ATTACKER), 429, "verification_locked")
    prefix = ApiKey.objects.get(name="attacker").prefix
    assert {(e.detail["api_key"], e.detail["client_address"])
            for e in AuditEvent.objects.filter(action="verify_lockout")} == {(None, ATTACKER), (prefix, None)}


def test_one_addresss_rejections_through_many_keys_lock_that_address_and_never_another(caller, upload, enrolled):
    for n in range(3):  # a fresh key for every guess: no key reaches the count, the address does
        _reject(caller(f"attacker-{n}"), enrolled["a"], upload, ATTACKER, times=1)
    assert_error(_verify(caller("attacker-3"), enrolled["a"], upload, "a_snt5", ATTACKER), 429,
                 "verification_locked")
    accepted = _verify(caller("genuine"), enrolled["a"], upload, "a_snt5", GENUINE)
    assert accepted.status_code == 200 and accepted.json()["accepted"] is True
    assert VerificationLock.objects.get().client_address == ATTACKER


def test_a_lock_covers_only_the_speaker_it_was_earned_on(caller, upload, enrolled):
    attacker = caller("attacker")
    _reject(attacker, enrolled["a"], upload, ATTACKER)
    other = _verify(attacker, enrolled["b"], upload, "b_snt6", ATTACKER)
    assert other.status_code == 200 and other.json()["accepted"] is True


def test_identify_leaves_a_speaker_the_caller_is_locked_out_of_out_of_its_candidates(caller, upload, enrolled):
    attacker, genuine = caller("attacker"), caller("genuine")
    _reject(attacker, enrolled["a"], upload, ATTACKER)

    def identify(api, address):
        response = api.post("/api/v1/identify", {"audio": upload("a_snt5")}, format="multipart",
                            REMOTE_ADDR=address)
        assert response.status_code == 200, response.json()
        return response.json()

    locked_out = identify(attacker, ATTACKER)
    assert enrolled["a"] not in [c["speaker_id"] for c in locked_out["candidates"]]
    assert locked_out["match"] is None
    seen = identify(genuine, GENUINE)
    assert seen["match"]["speaker_id"] == enrolled["a"]


def test_streaming_sessions_honour_the_same_locks(caller, upload, enrolled):
    _reject(caller("attacker"), enrolled["a"], upload, ATTACKER)
    speaker = Speaker.objects.get(pk=enrolled["a"])
    attacker = Actor.from_api_key(ApiKey.objects.get(name="attacker"), client_address=GENUINE)
    with pytest.raises(VerificationLocked):
        stream_speaker_reference(tenant=speaker.tenant, speaker_id=enrolled["a"], actor=attacker)
    genuine = Actor.from_api_key(ApiKey.objects.get(name="tests"), client_address=GENUINE)
    found, _ = stream_speaker_reference(tenant=speaker.tenant, speaker_id=enrolled["a"], actor=genuine)
    assert found.pk == speaker.pk


def test_an_operator_lists_and_lifts_a_lock_with_the_commands_and_it_is_audited(caller, upload, enrolled):
    attacker = caller("attacker")
    _reject(attacker, enrolled["a"], upload, ATTACKER)
    prefix = ApiKey.objects.get(name="attacker").prefix
    listed = io.StringIO()
    call_command("list_locks", stdout=listed)
    assert enrolled["a"] in listed.getvalue() and prefix in listed.getvalue()

    call_command("lift_lock", enrolled["a"], "--key", prefix, stdout=io.StringIO())
    lifted = AuditEvent.objects.get(action="verify_lock_lift")
    assert lifted.actor == "cli:lift_lock" and str(lifted.speaker_id) == enrolled["a"]
    assert lifted.detail["locks"] == [{"api_key": prefix, "client_address": None}]
    # the key verifies again from elsewhere; the address stays locked until it is lifted too
    assert_error(_verify(attacker, enrolled["a"], upload, "a_snt5", ATTACKER), 429, "verification_locked")
    assert _verify(attacker, enrolled["a"], upload, "a_snt5", GENUINE).json()["accepted"] is True
    call_command("lift_lock", enrolled["a"], "--address", ATTACKER, stdout=io.StringIO())
    assert not VerificationLock.objects.exists()
    assert _verify(attacker, enrolled["a"], upload, "a_snt6", ATTACKER).json()["accepted"] is True
    with pytest.raises(CommandError):
        call_command("lift_lock", enrolled["a"], stdout=io.StringIO())  # nothing left to lift


def test_lifting_by_address_lifts_only_that_address(caller, upload, enrolled):
    for n in range(3):
        _reject(caller(f"attacker-{n}"), enrolled["a"], upload, ATTACKER, times=1)
    speaker = Speaker.objects.get(pk=enrolled["a"])
    assert verification_lock_lift(speaker=speaker, address="192.0.2.1", actor=Actor.cli("tests")) == 0
    assert verification_lock_lift(speaker=speaker, address=ATTACKER, actor=Actor.cli("tests")) == 1
    assert not VerificationLock.objects.exists()


def test_an_admin_sees_the_locks_and_lifts_them_with_an_action(caller, upload, enrolled, admin_client):
    _reject(caller("attacker"), enrolled["a"], upload, ATTACKER)
    url = reverse("admin:speakers_verificationlock_changelist")
    page = admin_client.get(url)
    assert page.status_code == 200 and ApiKey.objects.get(name="attacker").prefix in page.content.decode()
    locks = list(VerificationLock.objects.values_list("pk", flat=True))
    assert len(locks) == 2  # the key's and the address's
    response = admin_client.post(url, {"action": "lift", "_selected_action": locks})
    assert response.status_code == 302
    assert not VerificationLock.objects.exists()
    lifted = AuditEvent.objects.get(action="verify_lock_lift")
    assert lifted.actor.startswith("admin:") and str(lifted.speaker_id) == enrolled["a"]
    assert len(lifted.detail["locks"]) == 2


def test_a_lock_that_has_run_out_no_longer_refuses(caller, upload, enrolled):
    attacker = caller("attacker")
    _reject(attacker, enrolled["a"], upload, ATTACKER)
    VerificationLock.objects.update(locked_until="2000-01-01T00:00:00Z")
    assert _verify(attacker, enrolled["a"], upload, "a_snt5", ATTACKER).status_code == 200


def test_purge_expired_forgets_locks_over_for_a_day_and_keeps_the_others(caller, upload, enrolled):
    _reject(caller("attacker"), enrolled["a"], upload, ATTACKER)
    VerificationLock.objects.filter(api_key__isnull=False).update(locked_until="2000-01-01T00:00:00Z")
    call_command("purge_expired", stdout=io.StringIO())
    assert list(VerificationLock.objects.values_list("client_address", flat=True)) == [ATTACKER]

"""Consent, opt-out, export and retention: a voiceprint is kept only while allowed, and leaves without a trace."""
from __future__ import annotations

import datetime as dt
import uuid

import pytest
from apitools import ENROLLED, assert_error
from django.core.management import call_command
from django.utils import timezone

from speakers.models import AuditEvent, Enrollment, IndexChange, OptOut, Speaker, Tenant
from speakers.search.index import voiceprint_index

pytestmark = pytest.mark.django_db

CONSENT = {"reference": "form-2026-0412", "notice_version": "v3", "purpose": "caller verification"}


def _enrolled(client, upload, external_id: str = "cust-881", label: str = "a", **fields) -> str:
    speaker = client.post("/api/v1/speakers", {"external_id": external_id, **fields}, format="json")
    assert speaker.status_code == 201, speaker.json()
    response = client.post(f"/api/v1/speakers/{speaker.json()['id']}/enrollments",
                           {"audio": [upload(n) for n in ENROLLED[label]]}, format="multipart")
    assert response.status_code == 201, response.json()
    return speaker.json()["id"]


# --- consent ----------------------------------------------------------------------------------------------

def test_consent_given_at_creation_is_on_the_speaker_and_audited(client):
    body = client.post("/api/v1/speakers", {"external_id": "p", "consent": CONSENT}, format="json").json()
    assert body["consent"]["reference"] == "form-2026-0412" and body["consent"]["notice_version"] == "v3"
    assert body["consent"]["given_at"] is not None
    assert AuditEvent.objects.get(action="speaker_create").detail == {"consent": True}


def test_consent_can_be_recorded_later_and_changed_each_time_audited(client):
    speaker = client.post("/api/v1/speakers", {"external_id": "p"}, format="json").json()
    assert speaker["consent"] is None
    first = client.put(f"/api/v1/speakers/{speaker['id']}/consent", CONSENT, format="json").json()
    assert first["consent"]["purpose"] == "caller verification"
    second = client.put(f"/api/v1/speakers/{speaker['id']}/consent",
                        {"reference": "call-77", "given_at": "2026-01-02T03:04:05Z"}, format="json").json()
    assert second["consent"]["reference"] == "call-77" and second["consent"]["given_at"].startswith("2026-01-02")
    assert AuditEvent.objects.filter(action="consent_set", speaker_id=speaker["id"]).count() == 2
    assert_error(client.put(f"/api/v1/speakers/{speaker['id']}/consent", {}, format="json"), 400, "validation_error")


def test_with_consent_required_an_enrollment_without_it_is_refused_before_any_work(client, upload, settings,
                                                                                  monkeypatch):
    from speakers.runtime import inference_owner

    settings.VOICEPRINT_REQUIRE_CONSENT = True
    monkeypatch.setattr(inference_owner, "prepare", lambda data: pytest.fail("audio was processed"))
    speaker = client.post("/api/v1/speakers", {"external_id": "p"}, format="json").json()
    response = client.post(f"/api/v1/speakers/{speaker['id']}/enrollments", {"audio": [upload("a_snt1")]},
                           format="multipart")
    assert_error(response, 409, "consent_required")
    assert not Enrollment.objects.exists()


def test_with_consent_required_a_speaker_with_consent_enrolls(client, upload, settings):
    settings.VOICEPRINT_REQUIRE_CONSENT = True
    _enrolled(client, upload, consent=CONSENT)
    assert Speaker.objects.get().enrollment_count == 3


def test_consent_is_required_by_default_in_production_only():
    import subprocess
    import sys
    from pathlib import Path

    code = "import django; django.setup(); from django.conf import settings as s; print(s.VOICEPRINT_REQUIRE_CONSENT)"
    root = Path(__file__).resolve().parents[2]
    base = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "voiceprint_project.settings"}
    development = subprocess.run([sys.executable, "-c", code], cwd=root, env=base, capture_output=True, text=True)
    assert development.stdout.strip() == "False", development.stderr
    from django.conf import settings

    production = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, env={
        **base, "VOICEPRINT_ENV": "production", "DJANGO_SECRET_KEY": "s" * 50,
        "VOICEPRINT_ENCRYPTION_KEYS": settings.VOICEPRINT_ENCRYPTION_KEYS[0]})
    assert production.stdout.strip() == "True", production.stderr


def test_withdrawing_consent_deletes_the_biometric_data_and_keeps_the_profile(client, upload):
    speaker_id = _enrolled(client, upload, consent=CONSENT)
    client.post("/api/v1/identify", {"audio": upload("a_snt5")}, format="multipart")  # in the index
    assert uuid.UUID(speaker_id) in voiceprint_index()
    body = client.delete(f"/api/v1/speakers/{speaker_id}/consent").json()
    assert body["consent"] is None and body["enrollment_count"] == 0 and body["voiceprint_status"] == "none"
    row = Speaker.objects.get(pk=speaker_id)
    assert row.voiceprint_ciphertext is None and not Enrollment.objects.filter(speaker=row).exists()
    assert client.post("/api/v1/identify", {"audio": upload("a_snt5")}, format="multipart").json()["candidates"] == []
    assert uuid.UUID(speaker_id) not in voiceprint_index()
    assert AuditEvent.objects.get(action="consent_withdraw").detail == {"enrollments_deleted": 3}


# --- opt-out ----------------------------------------------------------------------------------------------

def test_opting_out_deletes_everything_and_blocks_the_external_id(client, upload):
    speaker_id = _enrolled(client, upload)
    client.post("/api/v1/identify", {"audio": upload("a_snt5")}, format="multipart")
    assert client.post(f"/api/v1/speakers/{speaker_id}/opt-out").status_code == 204
    assert not Speaker.objects.filter(pk=speaker_id).exists() and not Enrollment.objects.exists()
    assert client.post("/api/v1/identify", {"audio": upload("a_snt5")}, format="multipart").json()["candidates"] == []
    assert IndexChange.objects.filter(speaker_id=speaker_id).exists()
    block = OptOut.objects.get()
    assert "cust-881" not in block.external_id_hash and len(block.external_id_hash) == 64  # a keyed hash only
    assert_error(client.post("/api/v1/speakers", {"external_id": "cust-881"}, format="json"), 409, "opted_out")
    other = client.post("/api/v1/speakers", {"external_id": "someone-else"}, format="json").json()
    assert_error(client.patch(f"/api/v1/speakers/{other['id']}", {"external_id": "cust-881"}, format="json"),
                 409, "opted_out")
    event = AuditEvent.objects.get(action="opt_out")
    assert str(event.speaker_id) == speaker_id and "cust-881" not in str(event.detail)


def test_an_opt_out_blocks_only_its_own_tenant(client, upload):
    from rest_framework.test import APIClient

    from speakers.audit import Actor
    from speakers.services import api_key_create
    from speakers.services.tenants import tenant_create

    speaker_id = _enrolled(client, upload)
    client.post(f"/api/v1/speakers/{speaker_id}/opt-out")
    bank = tenant_create(slug="bank", actor=Actor.cli("tests"))
    _, plain = api_key_create(name="b", scopes=("enroll",), actor=Actor.cli("tests"), tenant=bank)
    other = APIClient()
    other.credentials(HTTP_X_API_KEY=plain)
    assert other.post("/api/v1/speakers", {"external_id": "cust-881"}, format="json").status_code == 201


def test_an_operator_lifts_an_opt_out_block_audited(client, upload, capsys):
    speaker_id = _enrolled(client, upload)
    client.post(f"/api/v1/speakers/{speaker_id}/opt-out")
    call_command("lift_opt_out", "cust-881")
    assert "Lifted" in capsys.readouterr().out
    assert client.post("/api/v1/speakers", {"external_id": "cust-881"}, format="json").status_code == 201
    assert AuditEvent.objects.filter(action="opt_out_lift").count() == 1
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No opt-out block"):
        call_command("lift_opt_out", "never-blocked")


# --- export -----------------------------------------------------------------------------------------------

def test_the_export_holds_everything_stored_about_the_speaker_but_no_vector(client, upload):
    speaker_id = _enrolled(client, upload, consent=CONSENT, display_name="Ada", metadata={"tier": "gold"})
    client.post("/api/v1/verify", {"speaker_id": speaker_id, "audio": upload("a_snt5")}, format="multipart")
    export = client.get(f"/api/v1/speakers/{speaker_id}/export").json()
    assert export["speaker"]["external_id"] == "cust-881" and export["speaker"]["metadata"] == {"tier": "gold"}
    assert export["consent"]["reference"] == "form-2026-0412"
    assert len(export["enrollments"]) == 3 and {"snr_db", "speech_s", "model_version"} <= set(export["enrollments"][0])
    assert export["voiceprint"]["model_version"] and export["last_use"]["verified"]
    assert [e["action"] for e in export["audit_events"]] == ["speaker_create", "enroll", "verify"]
    assert export["retention"]["days_of_inactivity"] == 1095
    speaker = Speaker.objects.get(pk=speaker_id)
    text = str(export)
    assert "ciphertext" not in text and bytes(speaker.voiceprint_ciphertext).hex()[:16] not in text
    assert not any(isinstance(v, list) and len(v) == 192 for v in _walk(export))
    assert AuditEvent.objects.filter(action="export", speaker_id=speaker_id).count() == 1


def _walk(value):
    yield value
    if isinstance(value, dict):
        for v in value.values():
            yield from _walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v)


# --- retention --------------------------------------------------------------------------------------------

def test_each_use_moves_the_last_use_that_retention_counts_from(client, upload):
    speaker_id = _enrolled(client, upload)
    Speaker.objects.filter(pk=speaker_id).update(last_used_at=timezone.now() - dt.timedelta(days=100))
    client.post("/api/v1/verify", {"speaker_id": speaker_id, "audio": upload("b_snt5")}, format="multipart")
    assert Speaker.objects.get(pk=speaker_id).last_used_at < timezone.now() - dt.timedelta(days=99)  # rejected
    client.post("/api/v1/verify", {"speaker_id": speaker_id, "audio": upload("a_snt5")}, format="multipart")
    assert Speaker.objects.get(pk=speaker_id).last_used_at > timezone.now() - dt.timedelta(minutes=1)
    Speaker.objects.filter(pk=speaker_id).update(last_used_at=timezone.now() - dt.timedelta(days=100))
    client.post("/api/v1/identify", {"audio": upload("a_snt6")}, format="multipart")
    assert Speaker.objects.get(pk=speaker_id).last_used_at > timezone.now() - dt.timedelta(minutes=1)


def test_purge_expired_deletes_speakers_past_their_tenants_retention_and_old_audit_events(client, upload, capsys):
    old = _enrolled(client, upload, external_id="old", label="a")
    fresh = _enrolled(client, upload, external_id="fresh", label="b")
    client.post("/api/v1/identify", {"audio": upload("b_snt5")}, format="multipart")  # both in the index
    tenant = Tenant.objects.get(slug="default")
    tenant.retention_days, tenant.audit_retention_days = 30, 60
    tenant.save()
    Speaker.objects.filter(pk=old).update(last_used_at=timezone.now() - dt.timedelta(days=31))
    AuditEvent.objects.filter(speaker_id=fresh).update(created_at=timezone.now() - dt.timedelta(days=61))

    call_command("purge_expired", "--dry-run")
    assert "Would delete 1 expired speaker(s)" in capsys.readouterr().out
    assert Speaker.objects.filter(pk=old).exists()

    call_command("purge_expired")
    assert "Deleted 1 expired speaker(s)" in capsys.readouterr().out
    assert not Speaker.objects.filter(pk=old).exists() and Speaker.objects.filter(pk=fresh).exists()
    assert not AuditEvent.objects.filter(speaker_id=fresh, action="enroll").exists()
    assert AuditEvent.objects.get(action="purge", speaker_id=old).detail["reason"] == "retention"
    found = client.post("/api/v1/identify", {"audio": upload("a_snt5")}, format="multipart").json()
    assert old not in [c["speaker_id"] for c in found["candidates"]]


def test_a_speaker_never_used_expires_from_its_creation(client):
    speaker = client.post("/api/v1/speakers", {"external_id": "idle"}, format="json").json()
    Speaker.objects.filter(pk=speaker["id"]).update(created_at=timezone.now() - dt.timedelta(days=1096))
    call_command("purge_expired", stdout=open("/dev/null", "w"))
    assert not Speaker.objects.filter(pk=speaker["id"]).exists()

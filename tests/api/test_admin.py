"""The admin panel: speakers, enrollments, API keys (shown once, revocable) and a read-only audit log."""
from __future__ import annotations

import re
import uuid

import pytest

from speakers.crypto import api_key_hash
from speakers.models import ApiKey, AuditEvent, Enrollment, IndexChange, Speaker
from speakers.voiceprint_index import voiceprint_index

pytestmark = pytest.mark.django_db


def test_adding_an_api_key_in_the_admin_shows_the_plain_key_once(admin_client, anon_client):
    response = admin_client.post("/admin/speakers/apikey/add/", {"name": "kiosk", "scopes": ["verify", "identify"]},
                                 follow=True)
    assert response.status_code == 200
    messages = [str(m) for m in response.context["messages"]]
    keys = re.findall(r"vp_[0-9a-f]+\.[A-Za-z0-9_-]+", " ".join(messages))
    assert len(keys) == 1
    plain = keys[0]
    row = ApiKey.objects.get(name="kiosk")
    assert row.hashed_key == api_key_hash(plain) and row.scopes == ["identify", "verify"]
    # shown once: neither the next page nor the key's own page has it
    assert plain not in admin_client.get("/admin/speakers/apikey/").content.decode()
    assert plain not in admin_client.get(f"/admin/speakers/apikey/{row.pk}/change/").content.decode()
    anon_client.credentials(HTTP_X_API_KEY=plain)
    assert anon_client.get("/api/v1/speakers").status_code == 403  # works, but has no enroll/manage scope


def test_revoking_keys_in_the_admin_locks_them_out(admin_client, anon_client, make_key):
    plain = make_key()
    row = ApiKey.objects.get()
    response = admin_client.post("/admin/speakers/apikey/", {"action": "revoke", "_selected_action": [row.pk]})
    assert response.status_code == 302
    row.refresh_from_db()
    assert row.revoked and row.revoked_at is not None
    anon_client.credentials(HTTP_X_API_KEY=plain)
    assert anon_client.get("/api/v1/speakers").json()["error"]["code"] == "api_key_revoked"


def test_the_speaker_list_searches_and_shows_enrollment_counts(admin_client, enrolled):
    page = admin_client.get("/admin/speakers/speaker/", {"q": "Alice"})
    assert page.status_code == 200
    html = page.content.decode()
    assert "Alice" in html and "Bob" not in html
    assert admin_client.get("/admin/speakers/speaker/", {"enrolled": "yes"}).status_code == 200


def test_deleting_a_speaker_in_the_admin_goes_through_the_service(admin_client, client, enrolled, upload):
    client.post("/api/v1/identify", {"audio": upload("a_snt4")}, format="multipart")  # build the index
    a = enrolled["a"]
    response = admin_client.post(f"/admin/speakers/speaker/{a}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Speaker.objects.filter(pk=a).exists() and not Enrollment.objects.filter(speaker_id=a).exists()
    assert AuditEvent.objects.get(action="speaker_delete").actor == "admin:admin"
    assert IndexChange.objects.filter(speaker_id=a).count() == 2
    client.post("/api/v1/identify", {"audio": upload("a_snt4")}, format="multipart")
    assert uuid.UUID(a) not in voiceprint_index()


def test_bulk_deleting_speakers_in_the_admin_goes_through_the_service(admin_client, enrolled):
    response = admin_client.post("/admin/speakers/speaker/", {
        "action": "delete_selected", "_selected_action": list(enrolled.values()), "post": "yes"})
    assert response.status_code == 302
    assert Speaker.objects.count() == 0
    assert AuditEvent.objects.filter(action="speaker_delete", actor="admin:admin").count() == 2


def test_deleting_an_enrollment_in_the_admin_updates_the_voiceprint(admin_client, enrolled):
    enrollment = Enrollment.objects.filter(speaker_id=enrolled["a"]).first()
    assert admin_client.post(f"/admin/speakers/enrollment/{enrollment.pk}/delete/", {"post": "yes"}).status_code == 302
    assert Speaker.objects.get(pk=enrolled["a"]).enrollment_count == 2


def test_enrollment_pages_show_metadata_only(admin_client, enrolled):
    enrollment = Enrollment.objects.first()
    html = admin_client.get(f"/admin/speakers/enrollment/{enrollment.pk}/change/").content.decode()
    assert enrollment.model_version in html and "ciphertext" not in html


def test_the_audit_log_is_read_only(admin_client, enrolled):
    event = AuditEvent.objects.first()
    assert admin_client.get("/admin/speakers/auditevent/").status_code == 200
    assert admin_client.get("/admin/speakers/auditevent/add/").status_code == 403
    assert admin_client.post(f"/admin/speakers/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_the_admin_needs_a_login(anon_client):
    assert anon_client.get("/admin/speakers/speaker/").status_code == 302

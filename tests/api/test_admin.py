"""The admin panel: speakers, enrollments, API keys (shown once, revocable) and a read-only audit log."""
from __future__ import annotations

import re
import uuid

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from speakers.crypto import api_key_hash
from speakers.models import ApiKey, AuditEvent, Enrollment, IndexChange, Speaker
from speakers.search.index import voiceprint_index

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
    assert admin_client.get("/admin/speakers/speaker/", {"voiceprint": "complete"}).status_code == 200


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


# --- the admin as a working tool: recordings in, through the same services as the API ------------------

LONG_DECIMAL = re.compile(r"\d\.\d{4,}")  # an unrounded float


def _tool(admin_client, url: str, speech, *names: str, **fields):
    files = [SimpleUploadedFile(f"{n}.wav", speech.bytes(n), content_type="audio/wav") for n in names]
    return admin_client.post(url, {"audio": files if len(files) > 1 else files[0], **fields}, follow=True)


def test_an_admin_adds_enrollment_recordings_to_a_speaker(admin_client, create_speaker, speech):
    speaker = create_speaker(display_name="Carol")
    page = admin_client.get(f"/admin/speakers/speaker/{speaker['id']}/change/").content.decode()
    assert f"/admin/speakers/speaker/{speaker['id']}/enroll/" in page
    response = _tool(admin_client, f"/admin/speakers/speaker/{speaker['id']}/enroll/", speech,
                     "a_snt1", "a_snt2", "a_snt3")
    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == f"/admin/speakers/speaker/{speaker['id']}/change/"
    text = " ".join(str(m) for m in response.context["messages"])
    assert "Added 3 recording(s)" in text and "complete" in text
    row = Speaker.objects.get(pk=speaker["id"])
    assert row.enrollment_count == 3 and row.has_voiceprint
    event = AuditEvent.objects.get(action="enroll", speaker_id=speaker["id"])
    assert event.actor == "admin:admin" and event.client_address == "127.0.0.1"
    assert IndexChange.objects.filter(speaker_id=speaker["id"]).exists()


def test_a_refused_recording_in_the_admin_is_explained_in_plain_words_and_changes_nothing(admin_client,
                                                                                        create_speaker, speech):
    speaker = create_speaker(display_name="Carol")
    silence = SimpleUploadedFile("silence.wav", speech.wav(np.zeros(32_000, dtype=np.float32)))
    response = admin_client.post(f"/admin/speakers/speaker/{speaker['id']}/enroll/", {"audio": silence})
    assert response.status_code == 200
    assert "No speech" in response.context["error"]
    assert Enrollment.objects.filter(speaker_id=speaker["id"]).count() == 0


def test_an_admin_verifies_a_recording_against_a_speaker(admin_client, enrolled, speech):
    url = f"/admin/speakers/speaker/{enrolled['a']}/verify/"
    assert url in admin_client.get(f"/admin/speakers/speaker/{enrolled['a']}/change/").content.decode()
    same = _tool(admin_client, url, speech, "a_snt4")
    assert same.context["result"]["accepted"] is True
    html = same.content.decode()
    assert "Accepted" in html and not LONG_DECIMAL.search(html)
    other = _tool(admin_client, url, speech, "b_snt5")
    assert other.context["result"]["accepted"] is False and "Rejected" in other.content.decode()
    events = AuditEvent.objects.filter(action="verify", speaker_id=enrolled["a"], actor="admin:admin")
    assert sorted(events.values_list("decision", flat=True)) == ["accepted", "rejected"]


def test_verifying_against_an_incomplete_voiceprint_in_the_admin_says_so(admin_client, create_speaker, enroll,
                                                                        speech):
    speaker = create_speaker(display_name="Shorty")
    enroll(speaker["id"], "a_snt1")
    response = _tool(admin_client, f"/admin/speakers/speaker/{speaker['id']}/verify/", speech, "a_snt4")
    assert "Enrollment not finished" in response.context["error"]


def test_an_admin_identifies_a_recording_against_everyone(admin_client, enrolled, speech):
    assert "/admin/speakers/speaker/identify/" in admin_client.get("/admin/speakers/speaker/").content.decode()
    response = _tool(admin_client, "/admin/speakers/speaker/identify/", speech, "b_snt5", top_k="2")
    result = response.context["result"]
    assert result["match"] == "Bob"
    assert [c["name"] for c in result["candidates"]] == ["Bob", "Alice"]
    assert not LONG_DECIMAL.search(response.content.decode())
    assert AuditEvent.objects.filter(action="identify", actor="admin:admin").exists()


def test_an_admin_sees_a_match_by_its_lead(admin_client, enrolled, create_speaker, speech, monkeypatch):
    from apitools import lead_policy, lookalike_population

    lookalike_population(create_speaker, 12, common=0.0)  # 14 voices: the lead rule applies
    lead_policy(monkeypatch, gap=2.0)  # no threshold is reachable, a lead of 2 matches
    response = _tool(admin_client, "/admin/speakers/speaker/identify/", speech, "b_snt5", top_k="2")
    result = response.context["result"]
    assert result["match"] == "Bob" and result["matched_by_lead"] is True
    assert "Matched by its lead" in response.content.decode() and result["lead_required"] == "2.000"


def test_an_admin_creates_a_speaker_through_the_service(admin_client):
    response = admin_client.post("/admin/speakers/speaker/add/", {"external_id": "emp-7", "display_name": "Dora",
                                                                  "metadata": "{}"})
    assert response.status_code == 302, response.content.decode()[:2000]
    speaker = Speaker.objects.get(external_id="emp-7")
    assert AuditEvent.objects.get(action="speaker_create", speaker_id=speaker.pk).actor == "admin:admin"


def test_admin_pages_show_numbers_rounded(admin_client, enrolled, client, upload):
    client.post("/api/v1/verify", {"speaker_id": enrolled["a"], "audio": upload("a_snt4")}, format="multipart")
    enrollment = Enrollment.objects.filter(speaker_id=enrolled["a"]).first()
    for url in ("/admin/speakers/speaker/", f"/admin/speakers/speaker/{enrolled['a']}/change/",
                "/admin/speakers/enrollment/", f"/admin/speakers/enrollment/{enrollment.pk}/change/",
                "/admin/speakers/auditevent/"):
        html = admin_client.get(url).content.decode()
        assert not LONG_DECIMAL.search(html), (url, LONG_DECIMAL.search(html))
    listing = admin_client.get("/admin/speakers/speaker/").content.decode()
    assert "8.7 s (6 s needed)" in listing  # a_snt1..3: 8.66 s of speech


def test_the_audit_log_names_speakers_and_says_when_one_was_deleted(admin_client, client, enrolled):
    html = admin_client.get("/admin/speakers/auditevent/").content.decode()
    assert re.search(rf'<a href="/admin/speakers/speaker/{enrolled["a"]}/change/"[^>]*>Alice</a>', html)
    client.delete(f"/api/v1/speakers/{enrolled['b']}")
    html = admin_client.get("/admin/speakers/auditevent/").content.decode()
    assert f"deleted speaker {enrolled['b'][:8]}" in html

"""The fraud watchlist: known fraudsters' voices screened against every enrollment and verify probe."""
from __future__ import annotations

import pytest
from apitools import assert_error

from speakers.models import AuditEvent, Enrollment, Speaker, WatchlistEntry, WatchlistVoiceprint

pytestmark = pytest.mark.django_db


@pytest.fixture
def fraudster(client, upload) -> dict:
    """Speaker b's voice on the watchlist, from recordings of b that are not enrolled anywhere."""
    response = client.post("/api/v1/watchlist", {"label": "case 17", "notes": "called three branches",
                                                 "audio": [upload("b_snt5"), upload("b_snt6")]}, format="multipart")
    assert response.status_code == 201, response.json()
    return response.json()


def verify(client, upload, speaker_id: str, name: str):
    return client.post("/api/v1/verify", {"speaker_id": speaker_id, "audio": upload(name)}, format="multipart")


def test_a_voice_is_added_from_recordings_and_listed_without_its_vector(client, fraudster):
    assert fraudster["label"] == "case 17" and fraudster["source"] == "recordings"
    assert fraudster["speech_s"] > 2 and len(fraudster["model_versions"]) == 1
    listed = client.get("/api/v1/watchlist").json()
    assert listed["count"] == 1 and listed["results"][0]["id"] == fraudster["id"]
    assert "vector" not in str(listed) and "ciphertext" not in str(listed)
    assert AuditEvent.objects.filter(action="watchlist_add", detail__entry_id=fraudster["id"]).count() == 1


def test_a_verify_probe_in_the_watchlisted_voice_reports_the_hit_and_audits_it(client, upload, enrolled, fraudster):
    body = verify(client, upload, enrolled["b"], "b_snt5").json()  # the fraudster claims an enrolled identity
    assert body["watchlist_match"]["entry_id"] == fraudster["id"]
    assert body["watchlist_match"]["label"] == "case 17"
    assert body["watchlist_match"]["score"] >= body["watchlist_match"]["threshold"]
    hit = AuditEvent.objects.get(action="watchlist_match")
    assert hit.decision == "reported" and hit.detail["during"] == "verify" and str(hit.speaker_id) == enrolled["b"]


def test_another_voice_is_not_a_watchlist_hit(client, upload, enrolled, fraudster):
    body = verify(client, upload, enrolled["a"], "a_snt5").json()
    assert body["accepted"] is True and body["watchlist_match"] is None
    assert not AuditEvent.objects.filter(action="watchlist_match").exists()


def test_an_enrollment_in_the_watchlisted_voice_reports_the_hit(client, upload, create_speaker, fraudster):
    speaker = create_speaker(external_id="new-customer")
    response = client.post(f"/api/v1/speakers/{speaker['id']}/enrollments",
                           {"audio": [upload("b_snt1"), upload("b_snt2")]}, format="multipart")
    assert response.status_code == 201
    assert response.json()["watchlist_match"]["entry_id"] == fraudster["id"]
    assert AuditEvent.objects.get(action="watchlist_match").detail["during"] == "enroll"


def test_with_refusal_on_a_hit_the_verify_and_the_enrollment_are_refused_and_nothing_is_stored(
        client, upload, enrolled, create_speaker, fraudster, settings):
    settings.VOICEPRINT_WATCHLIST_REFUSE = True
    error = assert_error(verify(client, upload, enrolled["b"], "b_snt5"), 403, "watchlist_match")
    assert error["detail"]["entry_id"] == fraudster["id"]
    assert Speaker.objects.get(pk=enrolled["b"]).last_verified_at is None
    speaker = create_speaker(external_id="new-customer")
    response = client.post(f"/api/v1/speakers/{speaker['id']}/enrollments",
                           {"audio": [upload("b_snt1"), upload("b_snt2")]}, format="multipart")
    assert_error(response, 403, "watchlist_match")
    assert not Enrollment.objects.filter(speaker_id=speaker["id"]).exists()
    assert set(AuditEvent.objects.filter(action="watchlist_match").values_list("decision", flat=True)) == {"refused"}
    # the genuine voice still goes through
    assert verify(client, upload, enrolled["a"], "a_snt5").json()["accepted"] is True


def test_an_enrolled_speaker_can_be_put_on_the_watchlist(client, upload, enrolled):
    response = client.post("/api/v1/watchlist", {"label": "account takeover", "speaker_id": enrolled["b"]},
                           format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["source"] == "speaker" and response.json()["source_speaker_id"] == enrolled["b"]
    assert verify(client, upload, enrolled["a"], "b_snt5").json()["watchlist_match"]["label"] == "account takeover"


def test_a_removed_entry_no_longer_screens(client, upload, enrolled, fraudster):
    assert client.delete(f"/api/v1/watchlist/{fraudster['id']}").status_code == 204
    assert verify(client, upload, enrolled["b"], "b_snt5").json()["watchlist_match"] is None
    assert not WatchlistVoiceprint.objects.exists()
    assert AuditEvent.objects.filter(action="watchlist_remove").count() == 1
    assert_error(client.get(f"/api/v1/watchlist/{fraudster['id']}"), 404, "watchlist_entry_not_found")


def test_the_watchlist_needs_its_own_scope(make_key, upload):
    from rest_framework.test import APIClient

    other = APIClient()
    other.credentials(HTTP_X_API_KEY=make_key("enroll", "verify", "identify", "manage"))
    assert_error(other.get("/api/v1/watchlist"), 403, "insufficient_scope")
    assert_error(other.post("/api/v1/watchlist", {"label": "x", "audio": [upload("b_snt5")]}, format="multipart"),
                 403, "insufficient_scope")
    assert not WatchlistEntry.objects.exists()


def test_an_entry_from_unusable_recordings_is_refused_and_nothing_is_stored(client, upload, speech):
    silence = speech.wav(speech.samples("a_snt1") * 0.0)
    assert_error(client.post("/api/v1/watchlist", {"label": "x", "audio": [upload(silence, "silence.wav")]},
                             format="multipart"), 422, "no_speech")
    assert_error(client.post("/api/v1/watchlist", {"label": "x"}, format="json"), 400, "validation_error")
    assert not WatchlistEntry.objects.exists()


def test_the_watchlist_survives_a_key_rotation(client, upload, enrolled, fraudster, settings):
    from django.test import override_settings

    from speakers import crypto
    from speakers.models import Tenant
    from speakers.services import Actor, encryption_keys_rotate

    new_key = crypto.generate_encryption_key()
    with override_settings(VOICEPRINT_ENCRYPTION_KEYS=[new_key, *settings.VOICEPRINT_ENCRYPTION_KEYS]):
        assert encryption_keys_rotate(actor=Actor.cli("tests")).data_keys == 1
    tenant = Tenant.objects.get(slug="default")
    assert tenant.data_key_wrapping_id == crypto.encryption_key_id(new_key)
    assert set(WatchlistVoiceprint.objects.values_list("key_id", flat=True)) == {tenant.data_key_id}
    with override_settings(VOICEPRINT_ENCRYPTION_KEYS=[new_key]):  # the old key is gone
        assert verify(client, upload, enrolled["b"], "b_snt5").json()["watchlist_match"]["entry_id"] == fraudster["id"]


def test_the_admin_adds_a_voice_from_recordings_lists_it_and_removes_it(admin_client, speech):
    from django.core.files.uploadedfile import SimpleUploadedFile

    files = [SimpleUploadedFile(f"{n}.wav", speech.bytes(n), content_type="audio/wav") for n in ("b_snt5", "b_snt6")]
    response = admin_client.post("/admin/speakers/watchlistentry/add/", {"label": "case 9", "notes": "", "audio": files})
    assert response.status_code == 302, response.content[:2000]
    entry = WatchlistEntry.objects.get()
    assert entry.label == "case 9" and entry.created_by == "admin:admin" and entry.voiceprints.count() == 1
    assert "case 9" in admin_client.get("/admin/speakers/watchlistentry/").content.decode()
    assert admin_client.post(f"/admin/speakers/watchlistentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not WatchlistEntry.objects.exists()
    assert list(AuditEvent.objects.filter(action__startswith="watchlist").order_by("id")
                .values_list("action", "actor")) == [("watchlist_add", "admin:admin"), ("watchlist_remove", "admin:admin")]


def test_the_admin_refuses_an_unusable_recording_in_plain_words_and_stores_nothing(admin_client, speech):
    from django.core.files.uploadedfile import SimpleUploadedFile

    silence = SimpleUploadedFile("silence.wav", speech.wav(speech.samples("a_snt1") * 0.0), content_type="audio/wav")
    response = admin_client.post("/admin/speakers/watchlistentry/add/", {"label": "x", "notes": "", "audio": [silence]})
    assert response.status_code == 200
    assert "No speech" in response.content.decode()
    assert not WatchlistEntry.objects.exists()

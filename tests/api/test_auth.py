"""Every call but health needs an X-API-Key with the right scope; failures have the one error shape."""
from __future__ import annotations

import pytest
from apitools import assert_error

from speakers.crypto import api_key_hash
from speakers.models import ApiKey
from speakers.services import Actor, api_key_revoke

pytestmark = pytest.mark.django_db


def test_health_needs_no_key_and_reports_the_model_and_enrolled_count(anon_client, embedder):
    response = anon_client.get("/api/v1/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["model_version"] == embedder.model_version
    assert body["enrolled_speakers"] == 0


def test_health_counts_an_enrollment_and_a_deletion_at_once(anon_client, client, create_speaker, enroll):
    assert anon_client.get("/api/v1/health").json()["enrolled_speakers"] == 0
    speaker = create_speaker(external_id="ext-a")
    assert enroll(speaker["id"], "a_snt1").status_code == 201  # not yet a usable voiceprint
    assert anon_client.get("/api/v1/health").json()["enrolled_speakers"] == 0
    assert enroll(speaker["id"], "a_snt2", "a_snt3").status_code == 201
    assert anon_client.get("/api/v1/health").json()["enrolled_speakers"] == 1
    assert client.delete(f"/api/v1/speakers/{speaker['id']}").status_code == 204
    assert anon_client.get("/api/v1/health").json()["enrolled_speakers"] == 0


def test_it_rejects_a_request_without_a_key(anon_client):
    error = assert_error(anon_client.get("/api/v1/speakers"), 401, "missing_api_key")
    assert "X-API-Key" in error["message"]


def test_it_answers_401_with_a_www_authenticate_header(anon_client):
    response = anon_client.get("/api/v1/speakers")
    assert "X-API-Key" in response["WWW-Authenticate"]


@pytest.mark.parametrize("bad_key", ["nonsense", "vp_deadbeef.not-the-secret", "vp_.x", "vp_" + "a" * 40])
def test_it_rejects_a_wrong_key(anon_client, make_key, bad_key):
    make_key()
    anon_client.credentials(HTTP_X_API_KEY=bad_key)
    assert_error(anon_client.get("/api/v1/speakers"), 401, "invalid_api_key")


def test_it_rejects_a_key_whose_secret_part_is_wrong(anon_client, make_key):
    plain = make_key()
    anon_client.credentials(HTTP_X_API_KEY=plain[:-4] + "AAAA")
    assert_error(anon_client.get("/api/v1/speakers"), 401, "invalid_api_key")


def test_it_rejects_a_revoked_key(anon_client, make_key):
    plain = make_key()
    api_key_revoke(api_key=ApiKey.objects.get(hashed_key=api_key_hash(plain)), actor=Actor.cli("tests"))
    anon_client.credentials(HTTP_X_API_KEY=plain)
    assert_error(anon_client.get("/api/v1/speakers"), 401, "api_key_revoked")


def test_it_rejects_a_key_without_the_needed_scope(anon_client, make_key, upload):
    anon_client.credentials(HTTP_X_API_KEY=make_key("verify"))
    error = assert_error(anon_client.post("/api/v1/identify", {"audio": upload("a_snt1")}, format="multipart"),
                         403, "insufficient_scope")
    assert error["detail"] == {"required_scopes": ["identify"], "granted_scopes": ["verify"]}


def test_it_refuses_an_unauthorised_upload_before_reading_it(anon_client, make_key, upload):
    anon_client.credentials(HTTP_X_API_KEY=make_key("identify"))
    assert_error(anon_client.post("/api/v1/speakers/00000000-0000-0000-0000-000000000000/enrollments",
                                  {"audio": upload("a_snt1")}, format="multipart"), 403, "insufficient_scope")


@pytest.mark.parametrize("scope, method, path", [
    ("enroll", "post", "/api/v1/speakers"),
    ("manage", "get", "/api/v1/speakers"),
])
def test_a_key_with_the_right_scope_is_let_through(anon_client, make_key, scope, method, path):
    anon_client.credentials(HTTP_X_API_KEY=make_key(scope))
    response = getattr(anon_client, method)(path, {}, format="json")
    assert response.status_code in (200, 201)


def test_deleting_a_speaker_needs_the_manage_scope(anon_client, make_key, create_speaker):
    speaker = create_speaker()
    anon_client.credentials(HTTP_X_API_KEY=make_key("enroll", "verify", "identify"))
    assert_error(anon_client.delete(f"/api/v1/speakers/{speaker['id']}"), 403, "insufficient_scope")


def test_only_a_hash_of_the_key_is_stored(make_key):
    plain = make_key()
    row = ApiKey.objects.get()
    assert row.hashed_key == api_key_hash(plain)
    stored = " ".join(str(v) for v in ApiKey.objects.values_list().get())
    assert plain not in stored
    assert plain.split(".", 1)[1] not in stored


def test_using_a_key_records_when_it_was_last_used(client):
    assert ApiKey.objects.get().last_used_at is None
    client.get("/api/v1/speakers")
    assert ApiKey.objects.get().last_used_at is not None


def test_an_unknown_api_path_answers_with_the_error_shape(client):
    assert_error(client.get("/api/v1/nothing-here"), 404, "not_found")


def test_a_wrong_method_answers_with_the_error_shape(client):
    assert_error(client.put("/api/v1/verify", {}, format="json"), 405, "method_not_allowed")

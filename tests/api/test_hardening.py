"""Inputs that used to crash a request or answer HTML, unreadable rows, throttles and the audit of refusals.

Each test reproduces a hole found by trying the service as an attacker (issue 7).
"""
from __future__ import annotations

import logging
from unittest import mock

import pytest
from apitools import assert_error
from django.db import OperationalError
from django.test import override_settings

from speakers.models import AuditEvent, Speaker

pytestmark = pytest.mark.django_db


# --- bodies and parameters that crashed a request ---------------------------------------------

def test_json_nested_100000_deep_is_a_parse_error_not_a_crash(client):
    body = "[" * 100_000 + "]" * 100_000
    response = client.generic("POST", "/api/v1/speakers", body, content_type="application/json")
    error = assert_error(response, 400, "parse_error")
    assert "nested deeper" in error["message"]


def test_metadata_nested_deeper_than_allowed_is_a_validation_error(client, settings):
    deep: dict = {}
    node = deep
    for _ in range(settings.VOICEPRINT_MAX_METADATA_DEPTH + 1):
        node["x"] = {}
        node = node["x"]
    assert_error(client.post("/api/v1/speakers", {"metadata": deep}, format="json"), 400, "validation_error")


def test_metadata_larger_than_allowed_is_a_validation_error(client, settings):
    big = {"notes": "x" * settings.VOICEPRINT_MAX_METADATA_BYTES}
    error = assert_error(client.post("/api/v1/speakers", {"metadata": big}, format="json"), 400, "validation_error")
    assert "metadata" in error["detail"]
    assert client.post("/api/v1/speakers", {"metadata": {"notes": "x" * 1000}}, format="json").status_code == 201


@pytest.mark.parametrize("metadata", [{"note": "a\u0000b"}, {"a\u0000": 1}, {"list": ["ok", {"deep": "\u0000"}]}])
def test_a_nul_character_in_metadata_is_refused_on_create_and_update(client, create_speaker, metadata):
    assert_error(client.post("/api/v1/speakers", {"metadata": metadata}, format="json"), 400, "validation_error")
    speaker = create_speaker(external_id="nul-test")
    assert_error(client.patch(f"/api/v1/speakers/{speaker['id']}", {"metadata": metadata}, format="json"), 400,
                 "validation_error")
    assert Speaker.objects.get(pk=speaker["id"]).metadata == {}


def test_a_nul_character_in_the_external_id_query_is_refused(client):
    assert_error(client.get("/api/v1/speakers", {"external_id": "a\u0000b"}), 400, "validation_error")


def test_a_json_body_larger_than_the_limit_is_refused_unread(client, settings):
    body = '{"display_name": "' + "x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE + '"}'
    assert_error(client.generic("POST", "/api/v1/speakers", body, content_type="application/json"), 413,
                 "upload_too_large")


def _asgi_post(path: str, content_length: int, *, key: str = "") -> tuple[int, dict, dict, int]:
    """POST to the ASGI app a body declared ``content_length`` bytes long that never ends.

    Returns (status, headers, JSON body, body bytes the app read).
    """
    import asyncio
    import json

    from voiceprint_project.asgi import application

    read = 0
    sent: list[dict] = []

    async def receive() -> dict:
        nonlocal read
        read += 64 * 1024
        if read > 4 * 1024 * 1024:  # more than a guard needs: the app is reading the body
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": b"x" * 64 * 1024, "more_body": True}

    async def send(message: dict) -> None:
        sent.append(message)

    headers = [(b"host", b"127.0.0.1"), (b"content-type", b"multipart/form-data; boundary=xyz"),
               (b"content-length", str(content_length).encode())]
    if key:
        headers.append((b"x-api-key", key.encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000)}
    asyncio.run(application(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), json.loads(body), read


@pytest.mark.parametrize("path", ["/api/v1/verify", "/api/v1/batch-verify", "/admin/login/"])
def test_a_declared_body_over_the_upload_limit_is_refused_before_it_is_read(path, make_key):
    from speakers.uploads import max_request_bytes

    limit = max_request_bytes()
    status, headers, body, read = _asgi_post(path, limit + 1, key=make_key())
    assert status == 413, body
    assert body["error"]["code"] == "upload_too_large"
    assert body["error"]["detail"] == {"content_length": limit + 1, "max_request_bytes": limit}
    assert read == 0
    assert headers[b"connection"] == b"close"


def test_a_declared_body_over_the_upload_limit_is_refused_by_the_wsgi_app_too(client):
    from speakers.uploads import max_request_bytes

    limit = max_request_bytes()
    response = client.generic("POST", "/api/v1/speakers", b"{}", content_type="application/json",
                              CONTENT_LENGTH=str(limit + 1))
    error = assert_error(response, 413, "upload_too_large")
    assert error["detail"] == {"content_length": limit + 1, "max_request_bytes": limit}


# --- every answer of the API in the error shape --------------------------------------------------

@pytest.mark.parametrize("path", ["/api/v1/nope", "/v1/nope", "/api/v2/speakers"])
def test_a_post_to_an_unknown_api_path_is_a_json_404_not_a_csrf_page(path):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    assert_error(browser.post(path, {"x": 1}), 404, "not_found")


def test_a_host_header_that_is_not_served_is_a_json_400(client):
    assert_error(client.get("/api/v1/health", HTTP_HOST="evil.example"), 400, "invalid_host")


def test_a_bad_host_never_shows_a_debug_page_even_with_debug_on(client, settings):
    settings.DEBUG = True
    response = client.get("/api/v1/speakers", HTTP_HOST="evil.example")
    assert_error(response, 400, "invalid_host")


def test_an_overlong_url_is_a_json_414(client, settings):
    response = client.get("/api/v1/speakers", {"external_id": "x" * settings.VOICEPRINT_MAX_URL_BYTES})
    assert_error(response, 414, "uri_too_long")


def test_a_debug_page_never_shows_settings_or_the_environment(rf, settings):
    import sys

    from django.views import debug

    settings.DEBUG = True
    # built at run time: the page quotes this file's source lines, which must not count as a leak
    password, header, local = ("pass-" + "word-1"), ("header-" + "value-2"), ("local-" + "value-3")
    request = rf.get("/admin/x", HTTP_X_SECRET=header)
    request.META["DATABASE_URL"] = f"postgres://user:{password}@db/x"
    secret_local = local  # noqa: F841 - a frame variable the page must not show
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        page = debug.technical_500_response(request, *sys.exc_info()).content.decode()
    for secret in (password, header, local, settings.SECRET_KEY):
        assert secret not in page
    assert "boom" in page  # the traceback itself stays useful


def test_debug_is_off_unless_asked_for():
    import os
    import subprocess
    import sys

    from apitools import REPO

    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_DEBUG", "VOICEPRINT_ENV"))}
    code = "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                            env={**clean, "DJANGO_SETTINGS_MODULE": "voiceprint_project.settings"})
    assert result.stdout.strip() == "False", result.stderr


def test_an_unreachable_database_is_a_503_with_a_code_and_health_says_so(client, anon_client):
    from django.db.backends.utils import CursorWrapper

    with mock.patch.object(CursorWrapper, "execute", side_effect=OperationalError("connection refused")):
        assert_error(client.get("/api/v1/speakers"), 503, "database_unavailable")
        health = anon_client.get("/api/v1/health")
    assert health.status_code == 503
    assert health.json()["status"] == "unavailable" and health.json()["database"] == "unreachable"


@pytest.mark.parametrize(("path", "field"), [("/api/v1/identify", "audio"), ("/api/v1/compare", "reference"),
                                             ("/v1/verify-speaker", "audio1")])
def test_two_files_in_a_single_file_field_are_refused_not_silently_dropped(client, upload, path, field):
    files = {field: [upload("a_snt1"), upload("b_snt1")]}
    if path == "/api/v1/compare":
        files["test"] = upload("a_snt2")
    if path == "/v1/verify-speaker":
        files["audio2"] = upload("a_snt2")
    error = assert_error(client.post(path, files, format="multipart"), 400, "validation_error")
    assert field in error["detail"]


# --- one unreadable row affects only its speaker ------------------------------------------------

def _damage_voiceprint(speaker_id: str) -> None:
    row = Speaker.objects.get(pk=speaker_id)
    data = bytearray(row.voiceprint_ciphertext)
    data[20] ^= 0x01
    Speaker.objects.filter(pk=speaker_id).update(voiceprint_ciphertext=bytes(data))


def test_a_damaged_voiceprint_affects_only_its_speaker(client, anon_client, upload, enrolled, caplog):
    from speakers.search.index import voiceprint_index

    _damage_voiceprint(enrolled["a"])
    voiceprint_index()._index = None  # as a freshly started worker: rebuilt from the database
    with caplog.at_level(logging.ERROR):
        response = client.post("/api/v1/identify", {"audio": upload("b_snt5")}, format="multipart")
    assert response.status_code == 200, response.json()
    assert response.json()["match"]["speaker_id"] == enrolled["b"]
    assert enrolled["a"] not in [c["speaker_id"] for c in response.json()["candidates"]]
    assert enrolled["a"] in caplog.text  # the log names the row
    assert AuditEvent.objects.filter(action="voiceprint_unreadable", speaker_id=enrolled["a"]).count() == 1
    health = anon_client.get("/api/v1/health").json()
    assert health["status"] == "degraded" and health["unreadable_voiceprints"] == 1
    verify = client.post("/api/v1/verify", {"speaker_id": enrolled["a"], "audio": upload("a_snt5")},
                         format="multipart")
    assert_error(verify, 409, "voiceprint_unreadable")
    assert client.post("/api/v1/verify", {"speaker_id": enrolled["b"], "audio": upload("b_snt5")},
                       format="multipart").json()["accepted"] is True


def test_a_damaged_voiceprint_found_at_verify_is_marked_and_re_enrolling_repairs_it(client, upload, enrolled, enroll):
    _damage_voiceprint(enrolled["a"])
    verify = client.post("/api/v1/verify", {"speaker_id": enrolled["a"], "audio": upload("a_snt5")},
                         format="multipart")
    assert_error(verify, 409, "voiceprint_unreadable")
    assert Speaker.objects.get(pk=enrolled["a"]).voiceprint_unreadable is True
    assert enroll(enrolled["a"], "a_snt4").status_code == 201
    assert Speaker.objects.get(pk=enrolled["a"]).voiceprint_unreadable is False
    again = client.post("/api/v1/verify", {"speaker_id": enrolled["a"], "audio": upload("a_snt5")},
                        format="multipart")
    assert again.status_code == 200 and again.json()["accepted"] is True


# --- throttles, lockouts and the audit of refusals ---------------------------------------------------

def test_guessing_a_key_from_one_address_is_throttled_and_then_even_the_right_secret_waits(anon_client, make_key,
                                                                                          settings):
    settings.VOICEPRINT_RATE_AUTH_FAILURES = "5/min"
    right = make_key()
    anon_client.credentials(HTTP_X_API_KEY=right.split(".", 1)[0] + ".wrong")
    for _ in range(5):
        assert_error(anon_client.get("/api/v1/speakers"), 401, "invalid_api_key")
    response = anon_client.get("/api/v1/speakers")
    assert_error(response, 429, "throttled")
    assert int(response["Retry-After"]) >= 1
    anon_client.credentials(HTTP_X_API_KEY=right)
    assert_error(anon_client.get("/api/v1/speakers"), 429, "throttled")
    # (other keys from that address are served: tests/api/test_auth_throttles.py)


def test_a_key_over_its_rate_is_throttled(client, settings):
    settings.VOICEPRINT_RATE_PER_KEY = "3/min"
    for _ in range(3):
        assert client.get("/api/v1/speakers").status_code == 200
    assert_error(client.get("/api/v1/speakers"), 429, "throttled")


def test_a_client_address_over_its_rate_is_throttled(anon_client, settings):
    settings.VOICEPRINT_RATE_PER_CLIENT = "4/min"
    for _ in range(4):
        assert anon_client.get("/api/v1/health").status_code == 200
    assert_error(anon_client.get("/api/v1/health"), 429, "throttled")


def test_repeated_rejected_verifications_lock_the_speaker_with_a_growing_backoff(client, upload, enrolled, settings):
    settings.VOICEPRINT_VERIFY_LOCKOUT_AFTER = 3
    for _ in range(3):
        body = client.post("/api/v1/verify", {"speaker_id": enrolled["a"], "audio": upload("b_snt5")},
                           format="multipart").json()
        assert body["accepted"] is False
    locked = client.post("/api/v1/verify", {"speaker_id": enrolled["a"], "audio": upload("a_snt5")},
                         format="multipart")
    error = assert_error(locked, 429, "verification_locked")
    assert 0 < error["detail"]["retry_after_s"] <= settings.VOICEPRINT_VERIFY_LOCKOUT_S
    assert int(locked["Retry-After"]) >= 1
    assert AuditEvent.objects.filter(action="verify_lockout", speaker_id=enrolled["a"]).exists()
    # another speaker is not affected
    assert client.post("/api/v1/verify", {"speaker_id": enrolled["b"], "audio": upload("b_snt5")},
                       format="multipart").json()["accepted"] is True


def test_an_accepted_verification_resets_the_count_of_rejections(client, upload, enrolled, settings):
    settings.VOICEPRINT_VERIFY_LOCKOUT_AFTER = 2

    def verify(name):
        return client.post("/api/v1/verify", {"speaker_id": enrolled["a"], "audio": upload(name)},
                           format="multipart")

    assert verify("b_snt5").json()["accepted"] is False
    assert verify("a_snt5").json()["accepted"] is True
    assert verify("b_snt6").json()["accepted"] is False
    assert verify("a_snt6").status_code == 200  # not locked: the two rejections were not in a row


def test_refusals_and_auth_failures_are_audited_with_the_client_address(client, anon_client, upload, speech):
    silence = speech.wav(speech.samples("a_snt1") * 0.0)
    client.post("/api/v1/identify", {"audio": upload(silence, "quiet.wav")}, format="multipart",
                REMOTE_ADDR="10.1.2.3")
    refusal = AuditEvent.objects.get(action="refusal")
    assert (refusal.decision, refusal.client_address, refusal.actor) == ("no_speech", "10.1.2.3", "api:tests")
    assert refusal.detail["path"] == "/api/v1/identify" and refusal.detail["status"] == 422

    anon_client.credentials(HTTP_X_API_KEY="vp_0123456789ab.secret-part")
    anon_client.get("/api/v1/speakers", REMOTE_ADDR="10.9.9.9")
    failure = AuditEvent.objects.get(action="auth_failure")
    assert (failure.decision, failure.client_address, failure.actor) == ("invalid_api_key", "10.9.9.9", "anonymous")
    assert failure.detail["key_prefix"] == "0123456789ab"
    assert "secret-part" not in str(failure.detail)


def test_every_decision_is_audited_with_the_client_address(client, upload, enrolled):
    client.post("/api/v1/verify", {"speaker_id": enrolled["a"], "audio": upload("a_snt5")}, format="multipart",
                REMOTE_ADDR="192.0.2.7")
    assert AuditEvent.objects.get(action="verify").client_address == "192.0.2.7"


@override_settings(VOICEPRINT_TRUSTED_PROXIES=["10.0.0.1"])
def test_behind_a_trusted_proxy_the_forwarded_address_is_recorded(client, upload, enrolled):
    client.post("/api/v1/verify", {"speaker_id": enrolled["a"], "audio": upload("a_snt5")}, format="multipart",
                REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9, 198.51.100.4")
    assert AuditEvent.objects.get(action="verify").client_address == "198.51.100.4"


def test_production_mode_sends_hsts_and_secure_cookies():
    import os
    import subprocess
    import sys

    from apitools import REPO

    from speakers import crypto

    code = ("import django; django.setup(); from django.conf import settings as s; "
            "print(s.SECURE_HSTS_SECONDS, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.DEBUG)")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "VOICEPRINT_"))},
           "DJANGO_SETTINGS_MODULE": "voiceprint_project.settings", "VOICEPRINT_ENV": "production",
           "DJANGO_SECRET_KEY": "s" * 50, "VOICEPRINT_ENCRYPTION_KEYS": crypto.generate_encryption_key()}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                            env=env)
    assert result.stdout.split() == ["31536000", "True", "True", "False"], result.stderr


# --- issue 18: no 500 anywhere ---------------------------------------------------------------------------

@pytest.mark.parametrize("body", [
    '{"metadata": {"note": "a\\ud800b"}}',        # a lone surrogate in a value
    '{"metadata": {"\\udfff": 1}}',                 # ... in a key
    '{"metadata": {"list": [{"deep": "\\ud83d"}]}}',
    '{"display_name": "x\\ud800"}',
    '{"external_id": "x\\udc00"}',
])
def test_a_lone_surrogate_in_any_text_is_a_validation_error(client, create_speaker, body):
    assert_error(client.generic("POST", "/api/v1/speakers", body, content_type="application/json"), 400,
                 "validation_error")
    speaker = create_speaker(external_id="surrogate-test")
    assert_error(client.generic("PATCH", f"/api/v1/speakers/{speaker['id']}", body, content_type="application/json"),
                 400, "validation_error")
    assert Speaker.objects.count() == 1
    assert client.post("/api/v1/speakers", {"metadata": {"emoji": "\U0001F600 ok"}}, format="json").status_code == 201


@pytest.mark.parametrize("path", ["/v1/verify-speaker", "/v1/batch-verify", "/api/v1/verify", "/api/v1/identify",
                                  "/api/v1/compare", "/api/v1/batch-verify"])
def test_an_empty_body_to_an_upload_route_is_a_validation_error(client, path):
    assert_error(client.generic("POST", path, b""), 400, "validation_error")
    assert_error(client.generic("POST", path, b"", content_type="multipart/form-data; boundary=x"), 400,
                 "validation_error")

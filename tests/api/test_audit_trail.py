"""A complete audit trail: every refusal is on record whatever bytes its request carried (issue 18, item 7).

PostgreSQL refuses a NUL or a lone surrogate in text and JSON, so a refusal whose URL held ``%00``
used to leave no row there (an attacker's way out of the log); run this module on PostgreSQL too
(``DATABASE_URL=postgres://...``). Refusals made through the admin tools are audited like the
API's, and a key sent in a query string never reaches a log line of the real servers.
"""
from __future__ import annotations

import numpy as np
import pytest
from apitools import assert_error
from django.core.files.uploadedfile import SimpleUploadedFile

from speakers.audit import Actor, audit_record
from speakers.models import AuditEvent

pytestmark = pytest.mark.django_db

HOSTILE = "a\x00b\x1b[31mc\ud800d\u202ee\n"


def _texts(value) -> list[str]:
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in [k, *_texts(v)]]
    if isinstance(value, list):
        return [t for v in value for t in _texts(v)]
    return [value] if isinstance(value, str) else []


def _storable(text: str) -> bool:
    return not any(ord(ch) < 0x20 or ord(ch) == 0x7F or 0xD800 <= ord(ch) <= 0xDFFF for ch in text)


# --- whatever the request carried ----------------------------------------------------------------------

def test_failed_authentications_whose_url_holds_a_nul_are_all_audited(anon_client):
    for _ in range(5):
        assert_error(anon_client.get("/api/v1/speakers/%00", HTTP_X_API_KEY="vp_0123456789ab.wrong"), 401,
                     "invalid_api_key")
    events = AuditEvent.objects.filter(action="auth_failure")
    assert events.count() == 5
    path = events.first().detail["path"]
    assert path == "/api/v1/speakers/\\x00"


def test_a_refusal_whose_url_holds_a_nul_names_the_path_readably(client):
    assert_error(client.get("/api/v1/speakers/ab%00cd"), 404, "speaker_not_found")
    event = AuditEvent.objects.get(action="refusal", decision="speaker_not_found")
    assert event.detail["path"] == "/api/v1/speakers/ab\\x00cd"


def test_every_text_written_to_the_audit_is_made_storable_in_one_place():
    actor = Actor(label="api:" + HOSTILE, client_address="192.0.2.1")
    event = audit_record(actor=actor, action="refusal", decision="bad\x00code", detail={
        "path": "/x" + HOSTILE, "filename": "x" * 100_000, "nested": [{"k" + HOSTILE: HOSTILE}, 3, None, 1.5],
        "key\x00": True})
    event.refresh_from_db()  # what the database kept
    for text in [event.actor, event.decision, *_texts(event.detail)]:
        assert _storable(text), repr(text)
    assert event.actor.startswith("api:a\\x00b\\x1b[31mc\\ud800d")
    assert len(event.actor) <= 150 and len(event.decision) <= 32
    assert len(event.detail["filename"]) <= 1000 and event.detail["filename"].endswith("…")
    assert event.detail["nested"][1:] == [3, None, 1.5] and event.detail["key\\x00"] is True
    assert "\\u202e" in event.detail["path"]  # a bidi override shown, not obeyed, when the log is read


# --- the admin tools ---------------------------------------------------------------------------------------

def _silence(speech) -> SimpleUploadedFile:
    return SimpleUploadedFile("silence.wav", speech.wav(np.zeros(32_000, dtype=np.float32)), content_type="audio/wav")


def test_refusals_in_the_admin_tools_are_audited_like_the_apis(admin_client, enrolled, speech):
    a = enrolled["a"]
    admin_client.post(f"/admin/speakers/speaker/{a}/verify/", {"audio": _silence(speech)}, REMOTE_ADDR="192.0.2.8")
    admin_client.post("/admin/speakers/speaker/identify/", {"audio": _silence(speech), "top_k": "3"},
                      REMOTE_ADDR="192.0.2.8")
    admin_client.post(f"/admin/speakers/speaker/{a}/enroll/", {"audio": _silence(speech)}, REMOTE_ADDR="192.0.2.8")
    refusals = AuditEvent.objects.filter(action="refusal").order_by("created_at", "id")
    assert [(e.actor, e.client_address, e.decision) for e in refusals] == [
        ("admin:admin", "192.0.2.8", "no_speech"), ("admin:admin", "192.0.2.8", "no_speech"),
        ("admin:admin", "192.0.2.8", "no_speech")]
    verify, identify, enroll = refusals
    assert verify.speaker_id is not None and str(verify.speaker_id) == a and enroll.speaker_id == verify.speaker_id
    assert identify.speaker_id is None
    assert verify.detail["path"] == f"/admin/speakers/speaker/{a}/verify/" and verify.detail["method"] == "POST"
    assert verify.detail["status"] == 422


def test_an_admin_tool_form_refused_before_any_service_is_audited_too(admin_client, enrolled, settings):
    settings.VOICEPRINT_MAX_FILES = 2
    files = [SimpleUploadedFile(f"f{n}.wav", b"RIFF", content_type="audio/wav") for n in range(4)]
    admin_client.post(f"/admin/speakers/speaker/{enrolled['a']}/enroll/", {"audio": files})
    admin_client.post("/admin/speakers/speaker/identify/", {"top_k": "3"})  # no recording at all
    decisions = list(AuditEvent.objects.filter(action="refusal", actor="admin:admin").order_by("created_at", "id")
                     .values_list("decision", flat=True))
    assert decisions == ["too_many_files", "validation_error"]


# --- logs: a key in a query string never reaches a log line --------------------------------------------

SECRET = "vp_0123456789ab.Query-String-Secret-42"


def _get(url: str) -> int:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.servers
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["runserver", "gunicorn", "gunicorn-asgi"])
def test_a_key_in_a_query_string_never_reaches_a_log_line_of_a_real_server(kind, tmp_path):
    from urllib.parse import quote

    from apitools import database_url, start_gunicorn, start_runserver, wait_until, wait_until_healthy
    from django.db import connection

    url = database_url(connection.settings_dict)
    env = {"VOICEPRINT_WARMUP": "false"}
    server = start_runserver(kind, url, tmp_path, **env) if kind == "runserver" else \
        start_gunicorn(kind, url, tmp_path, asgi=kind == "gunicorn-asgi", **env)
    try:
        wait_until_healthy(server, timeout=120)
        key = quote(SECRET)
        assert _get(f"{server.url}/api/v1/speakers?api_key={key}") == 401
        assert _get(f"{server.url}/api/v1/nothing-here?key={key}&x=1") == 404
        assert _get(f"{server.url}/admin/login/?next=/admin/&key={key}") == 200
        if kind != "gunicorn":  # WebSockets: the ASGI servers
            from websockets.exceptions import ConnectionClosed
            from websockets.sync.client import connect

            with connect(server.url.replace("http://", "ws://") + f"/ws/v1/stream-verify?key={key}",
                         open_timeout=30) as ws:
                try:
                    ws.recv(timeout=30)
                    ws.recv(timeout=30)
                except ConnectionClosed:
                    pass
        assert _get(f"{server.url}/api/v1/health?last=1") == 200
        # the access log is on: the last request's line is there (a line is written after its answer)
        wait_until(lambda: "/api/v1/health" in server.log_tail(200_000).split("/api/v1/nothing-here")[-1],
                   message="the access log line of the last request")
    finally:
        server.stop()
    log = server.log_path.read_text(errors="replace")
    assert "/api/v1/speakers?[redacted]" in log and "/api/v1/nothing-here?[redacted]" in log, log[-3000:]
    for needle in ("Query-String-Secret-42", "Query-String-Secret", quote("Query-String-Secret-42")):
        assert needle not in log, [line for line in log.splitlines() if "Secret" in line]

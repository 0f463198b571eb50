"""The people-facing pages: ``/`` links the app, the API docs and the admin; ``/app/`` is served whole.

What the app page does in a browser is tested in tests/browser (a real headless Chromium).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from speakers.plain_words import PLAIN_WORDS, explain

pytestmark = pytest.mark.django_db


def test_the_landing_page_links_the_app_the_api_docs_and_the_admin(anon_client):
    response = anon_client.get("/")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    for href in ('href="/app/"', 'href="/api/v1/docs"', 'href="/admin/"'):
        assert href in html


def test_the_app_page_is_served_with_its_config_and_a_strict_content_security_policy(anon_client):
    response = anon_client.get("/app/")
    assert response.status_code == 200
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    config = json.loads(re.search(r'<script id="vp-config" type="application/json">(.*?)</script>',
                                  response.content.decode(), re.S).group(1))
    assert config["words"]["audio_too_quiet"]["headline"] == "Too quiet"
    assert config["target_speech_s"] == 6.0
    for asset in ("app.js", "app.css"):
        assert anon_client.get(f"/static/speakers/{asset}").status_code == 200


def test_the_app_page_puts_no_form_in_a_position_to_send_the_key_in_a_url(anon_client):
    html = anon_client.get("/app/").content.decode()
    forms = re.findall(r"<form[^>]*>", html)
    assert forms and all('method="dialog"' in f for f in forms)  # a dialog form never navigates


def test_every_code_the_server_can_return_has_plain_words():
    """The page and the admin explain every refusal in words; the codes come from the server itself (the
    client's generator enumerates them), so a new code without words fails here."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "clients" / "python" / "scripts" / "generate_errors.py"
    spec = importlib.util.spec_from_file_location("generate_errors", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    missing = sorted(code for code in module.server_codes() if code not in PLAIN_WORDS)
    assert missing == []


def test_every_quality_refusal_code_has_plain_words():
    for code in ("no_speech", "audio_too_quiet", "audio_too_noisy", "audio_clipped", "insufficient_speech",
                 "audio_too_short", "audio_degenerate", "enrollment_inconsistent", "enrollment_incomplete"):
        assert code in PLAIN_WORDS
    assert explain("audio_too_noisy", "", {"snr_db": 3.21, "min_snr_db": 8.0}) == \
        "Too noisy (signal-to-noise 3.2 dB, needs 8). " + PLAIN_WORDS["audio_too_noisy"][1]
    assert explain("something_new", "The API's own words.") == "Refused. The API's own words."


# --- a content security policy and a permissions policy on every page (issue 18) -----------------------------

@pytest.mark.parametrize("path", ["/", "/app/", "/api/v1/docs", "/api/v1/schema", "/api/v1/health", "/api/v1/speakers",
                                  "/api/v1/nope", "/v1/verify-speaker", "/admin/", "/admin/login/", "/favicon.ico",
                                  "/static/speakers/app.css"])
def test_every_answer_carries_a_content_security_policy_and_a_permissions_policy(anon_client, path):
    response = anon_client.get(path)
    policy = response["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    assert directives["default-src"] == "'self'" and directives["frame-ancestors"] == "'none'"
    assert "'unsafe-inline'" not in directives.get("script-src", "") and "'unsafe-eval'" not in policy
    assert directives["object-src"] == "'none'" and directives["base-uri"] == "'none'"
    permissions = response["Permissions-Policy"]
    assert "camera=()" in permissions and "geolocation=()" in permissions
    assert ("microphone=(self)" if path == "/app/" else "microphone=()") in permissions


def test_the_app_page_keeps_its_own_stricter_policy(anon_client):
    policy = anon_client.get("/app/", HTTP_HOST="localhost")["Content-Security-Policy"]
    assert "connect-src 'self' ws://localhost wss://localhost" in policy and "form-action 'none'" in policy


def test_the_api_docs_run_no_inline_script(anon_client):
    html = anon_client.get("/api/v1/docs").content.decode()
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert scripts and all("src=" in attributes and not body.strip() for attributes, body in scripts)

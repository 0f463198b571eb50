"""Starting in production: one message naming every setting to fix, no traceback; the key generator runs anyway.

Each case runs ``manage.py`` in a fresh process with a clean environment (no VOICEPRINT_*, no Django secrets
inherited from the test run), as an operator starting the service would.
"""
from __future__ import annotations

import base64
import os
import subprocess
import sys

from apitools import REPO


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("VOICEPRINT_", "DJANGO_"))}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**clean, "DJANGO_SETTINGS_MODULE": "voiceprint_project.settings", **env})


def test_production_without_secrets_names_every_missing_setting_in_one_message_without_a_traceback():
    result = _manage("check", VOICEPRINT_ENV="production")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    assert "DJANGO_SECRET_KEY" in result.stderr and "VOICEPRINT_ENCRYPTION_KEYS" in result.stderr
    assert "generate_encryption_key" in result.stderr  # it says how to make the missing key
    assert "2 setting(s)" in result.stderr and len(result.stderr.strip().splitlines()) == 3, result.stderr


def test_production_lists_unsafe_values_together_with_missing_ones():
    result = _manage("check", VOICEPRINT_ENV="production", DJANGO_SECRET_KEY="too-short", DJANGO_DEBUG="true",
                     VOICEPRINT_ENCRYPTION_KEYS="c2hvcnQ=")
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    problems = [line for line in result.stderr.splitlines() if line.startswith("  - ")]
    assert len(problems) == 3, result.stderr
    assert any("DJANGO_SECRET_KEY is 9 characters" in p for p in problems)
    assert any("DJANGO_DEBUG is on" in p for p in problems)
    assert any("VOICEPRINT_ENCRYPTION_KEYS" in p and "expected 32" in p for p in problems)


def test_a_malformed_boolean_is_listed_too():
    result = _manage("check", VOICEPRINT_ENV="production", DJANGO_DEBUG="maybe")
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert "DJANGO_DEBUG='maybe' is not a boolean" in result.stderr


def test_production_with_a_secret_and_a_key_starts():
    key = _manage("generate_encryption_key").stdout.strip()
    result = _manage("check", VOICEPRINT_ENV="production", DJANGO_SECRET_KEY="s" * 50, VOICEPRINT_ENCRYPTION_KEYS=key)
    assert result.returncode == 0, result.stderr


def test_generate_encryption_key_works_in_production_without_any_key():
    result = _manage("generate_encryption_key", VOICEPRINT_ENV="production")
    assert result.returncode == 0, result.stderr
    assert len(base64.urlsafe_b64decode(result.stdout.strip())) == 32
    assert result.stderr == ""


def test_generate_encryption_key_works_in_development():
    result = _manage("generate_encryption_key")
    assert result.returncode == 0, result.stderr
    assert len(base64.urlsafe_b64decode(result.stdout.strip())) == 32

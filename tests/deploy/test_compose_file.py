"""The single-machine compose file (``docker compose up``: the service and PostgreSQL) agrees with the settings.

Docker is not needed: the file is read, and the web service's environment from it is loaded by the real
settings module in a subprocess (a typo, a missing variable or an invalid value fails here), as
tests/api/test_deployment_files.py does for compose.cluster.yaml.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "compose.yaml"


def _services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def _substituted(value: str, secrets: dict[str, str]) -> str:
    """What compose makes of ``${NAME:?message}`` and ``${NAME:-default}`` with ``secrets`` in the .env file."""
    def one(match: re.Match) -> str:
        name, operator, rest = match.group(1), match.group(2) or "", match.group(3) or ""
        if name in secrets:
            return secrets[name]
        assert operator != ":?", f"compose would refuse to start without {name}: {rest}"
        return rest if operator == ":-" else ""

    return re.sub(r"\$\{(\w+)(:\?|:-)?([^}]*)\}", one, str(value))


def test_the_web_service_builds_this_repository_and_waits_for_a_healthy_database():
    services = _services()
    assert {"db", "web"} <= services.keys()
    assert services["web"]["build"] == "."
    assert services["web"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert "healthcheck" in services["db"]


def test_compose_refuses_to_start_without_the_two_secrets():
    env = _services()["web"]["environment"]
    for name in ("DJANGO_SECRET_KEY", "VOICEPRINT_ENCRYPTION_KEYS"):
        assert re.fullmatch(rf"\$\{{{name}:\?.+\}}", env[name]), env[name]


def test_the_database_url_names_the_database_the_db_service_creates():
    services = _services()
    db = services["db"]["environment"]
    url = urlsplit(services["web"]["environment"]["DATABASE_URL"])
    assert url.scheme == "postgres" and url.hostname == "db" and url.port == 5432
    assert (url.username, url.password, url.path.lstrip("/")) == (db["POSTGRES_USER"], db["POSTGRES_PASSWORD"],
                                                                   db["POSTGRES_DB"])


def test_every_variable_the_web_service_gets_is_one_the_settings_read():
    read = set(re.findall(r'env_\w+\("([A-Z0-9_]+)"', (REPO / "voiceprint_project" / "settings.py").read_text()))
    read |= {"DATABASE_URL", "DJANGO_SETTINGS_MODULE"}
    assert set(_services()["web"]["environment"]) - read == set()


def test_the_settings_accept_the_web_services_environment():
    secrets = {"DJANGO_SECRET_KEY": "x" * 50, "VOICEPRINT_ENCRYPTION_KEYS": _a_key()}
    env = {name: _substituted(value, secrets) for name, value in _services()["web"]["environment"].items()}
    env.update({"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "voiceprint_project.settings"})
    code = ("import django; django.setup(); from django.conf import settings as s; "
            "print(s.PRODUCTION, s.DEBUG, s.DATABASES['default']['ENGINE'], s.DATABASES['default']['HOST'], "
            "s.SESSION_COOKIE_SECURE, ','.join(s.ALLOWED_HOSTS))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "False", "django.db.backends.postgresql", "db", "False",
                                     "127.0.0.1,localhost"]


def test_without_the_secrets_the_settings_name_both_in_one_message():
    env = {name: value for name, value in _services()["web"]["environment"].items() if "${" not in str(value)}
    env.update({"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "voiceprint_project.settings"})
    result = subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "DJANGO_SECRET_KEY" in result.stderr and "VOICEPRINT_ENCRYPTION_KEYS" in result.stderr


def _a_key() -> str:
    import base64
    import secrets

    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()

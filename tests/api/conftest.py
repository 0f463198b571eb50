"""API tests run on the real engine: the model is loaded once per session, never faked.

If the model is not prepared every test here fails (it is never skipped) with the message
telling how to prepare it.
"""
from __future__ import annotations

import pytest
from apitools import ENROLLED
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from speakers.models import ApiKeyScope
from speakers.services import Actor, api_key_create

ALL_SCOPES = tuple(ApiKeyScope.values)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(tmp_path_factory) -> None:
    """On SQLite, a file test database (not in-memory), so server processes can share it."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        database.setdefault("TEST", {})["NAME"] = str(tmp_path_factory.mktemp("db") / "test.sqlite3")


@pytest.fixture(scope="session")
def embedder():
    from speakers.exceptions import EngineUnavailable
    from speakers.runtime.inference_owner import get_embedder

    try:
        return get_embedder()
    except EngineUnavailable as exc:
        pytest.fail(f"The API tests need the real model. {exc.message}", pytrace=False)


@pytest.fixture(autouse=True)
def _real_engine(embedder) -> None:
    """Every API test runs with the real model loaded."""


@pytest.fixture(autouse=True)
def _accepted_probes_not_remembered(settings) -> None:
    """Tests send one recording as a probe many times (each scale, each route): a service keeps the last accepted
    probes of a speaker and refuses them as replays (tests/api/test_replay.py checks that with its own setting);
    here only enrollment recordings are remembered."""
    settings.VOICEPRINT_REPLAY_RECENT_PROBES = 0


@pytest.fixture
def make_key(db):
    """``make_key("verify", "identify")`` -> a new plain API key with those scopes."""

    def make(*scopes: str, name: str = "tests") -> str:
        _, plain = api_key_create(name=name, scopes=scopes or ALL_SCOPES, actor=Actor.cli("tests"))
        return plain

    return make


@pytest.fixture
def anon_client() -> APIClient:
    return APIClient()


@pytest.fixture
def client(make_key) -> APIClient:
    """A client whose key has every scope."""
    api = APIClient()
    api.credentials(HTTP_X_API_KEY=make_key())
    return api


@pytest.fixture
def upload(speech):
    """``upload("a_snt1")`` or ``upload(raw_bytes, "x.wav")`` -> a file for a multipart request."""

    def make(source: str | bytes, filename: str | None = None) -> SimpleUploadedFile:
        if isinstance(source, str):
            return SimpleUploadedFile(filename or f"{source}.wav", speech.bytes(source), content_type="audio/wav")
        return SimpleUploadedFile(filename or "upload.wav", source, content_type="audio/wav")

    return make


@pytest.fixture
def create_speaker(client):
    def create(**fields) -> dict:
        response = client.post("/api/v1/speakers", fields, format="json")
        assert response.status_code == 201, response.json()
        return response.json()

    return create


@pytest.fixture
def enroll(client, upload):
    def enroll(speaker_id: str, *names: str):
        return client.post(f"/api/v1/speakers/{speaker_id}/enrollments",
                           {"audio": [upload(n) for n in names]}, format="multipart")

    return enroll


@pytest.fixture
def enrolled(create_speaker, enroll) -> dict[str, str]:
    """Speaker ``a`` enrolled with a_snt1..3 and ``b`` with b_snt1..4, both complete; the rest are probes."""
    ids = {}
    for label, name in (("a", "Alice"), ("b", "Bob")):
        speaker = create_speaker(external_id=f"ext-{label}", display_name=name)
        response = enroll(speaker["id"], *ENROLLED[label])
        assert response.status_code == 201, response.json()
        assert response.json()["enrollment_progress"]["complete"] is True
        ids[label] = speaker["id"]
    return ids


@pytest.fixture
def milvus(settings, tmp_path) -> str:
    """The service searching a fresh Milvus collection (milvus-lite in this process, on a local file)."""
    settings.VOICEPRINT_INDEX_BACKEND = "milvus"
    settings.VOICEPRINT_MILVUS_URI = str(tmp_path / "milvus.db")
    return settings.VOICEPRINT_MILVUS_URI

"""A worker returns its freed heap to the system after a large request (issue 18: RSS 733 -> 1,217 MB stayed)."""
from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from speakers.runtime import memory

pytestmark = pytest.mark.django_db


@pytest.fixture
def trims(monkeypatch) -> list[int]:
    calls: list[int] = []
    monkeypatch.setattr(memory, "heap_trim", lambda: calls.append(1) or True)
    return calls


def test_the_c_library_trim_runs_here():
    assert isinstance(memory.heap_trim(), bool)  # glibc on Debian: callable; elsewhere False, never an error


@pytest.mark.parametrize(("declared", "above", "trimmed"), [
    ("2000000", 1_000_000, True), ("1000000", 1_000_000, False), ("999", 1_000_000, False),
    (None, 1_000_000, False), ("junk", 1_000_000, False), ("2000000", 0, False)])
def test_only_a_body_over_the_limit_is_followed_by_a_trim(trims, declared, above, trimmed):
    assert memory.trim_after(declared, above) is trimmed
    assert len(trims) == (1 if trimmed else 0)


def test_a_large_upload_is_followed_by_a_trim_and_a_small_request_is_not(client, speech, settings, trims):
    settings.VOICEPRINT_MEMORY_TRIM_ABOVE_BYTES = 50_000
    assert client.get("/api/v1/health").status_code == 200
    assert trims == []
    def upload(name: str) -> SimpleUploadedFile:  # about 80-100 kB each
        return SimpleUploadedFile(f"{name}.wav", speech.wav(speech.samples(name)), content_type="audio/wav")

    response = client.post("/api/v1/compare", {"reference": upload("a_snt1"), "test": upload("b_snt1")},
                           format="multipart")
    assert response.status_code == 200, response.content[:300]
    assert trims == [1]

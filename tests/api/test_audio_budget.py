"""Each key has a budget of audio seconds per minute (VOICEPRINT_AUDIO_SECONDS_PER_MINUTE), issue 18 item 3.

The request rate counts requests; ten recordings of 59 s are one request. The budget counts the
seconds of audio the service decodes for a key, on every route that decodes audio (batch routes pay
per file), and refuses past it: 429 ``audio_budget_exceeded`` with Retry-After.
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from apitools import assert_error
from rest_framework.test import APIClient

from speakers.services import audio_budget
from speakers.services.audio_budget import audio_budget_used

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clock(monkeypatch):
    """The budget's minute stands still (10 s into a window): a test never straddles two windows."""
    monkeypatch.setattr(audio_budget, "time", SimpleNamespace(time=lambda: 60.0 * 29_000_000 + 10.0))

# a_snt1 2.87 s, a_snt2 3.28 s, a_snt5 2.60 s, b_snt5 1.98 s (whole recordings, silence included)


def _compare(client, upload, ref="a_snt1", test="a_snt2"):
    return client.post("/api/v1/compare", {"reference": upload(ref), "test": upload(test)}, format="multipart")


def _over_budget(response) -> dict:
    error = assert_error(response, 429, "audio_budget_exceeded")
    assert int(response["Retry-After"]) >= 1
    assert 0 < error["detail"]["retry_after_s"] <= 120  # a sliding minute: at most two windows
    return error


def test_a_key_past_its_audio_seconds_per_minute_is_refused_with_retry_after(client, upload, settings):
    settings.VOICEPRINT_AUDIO_SECONDS_PER_MINUTE = 5
    assert _compare(client, upload).status_code == 200  # 6.2 s decoded: over the budget from now on
    error = _over_budget(_compare(client, upload))
    assert error["detail"]["audio_seconds_per_minute"] == 5


def test_the_budget_counts_seconds_of_audio_not_requests(client, upload, settings):
    settings.VOICEPRINT_AUDIO_SECONDS_PER_MINUTE = 30
    for _ in range(4):
        assert _compare(client, upload).status_code == 200
    assert 24 < audio_budget_used(payer=_payer_of(client)) < 26


def test_each_key_has_its_own_budget(client, make_key, upload, settings):
    settings.VOICEPRINT_AUDIO_SECONDS_PER_MINUTE = 5
    assert _compare(client, upload).status_code == 200
    _over_budget(_compare(client, upload))
    other = APIClient()
    other.credentials(HTTP_X_API_KEY=make_key())
    assert _compare(other, upload).status_code == 200


def test_a_batch_pays_for_every_file_and_stops_at_the_budget(client, upload, settings):
    settings.VOICEPRINT_AUDIO_SECONDS_PER_MINUTE = 8
    response = client.post("/api/v1/batch-verify", {
        "reference": upload("a_snt1"), "tests": [upload("a_snt2"), upload("a_snt5"), upload("b_snt5")]},
        format="multipart")
    _over_budget(response)


def test_enrollment_and_verification_pay_too(client, upload, create_speaker, settings):
    settings.VOICEPRINT_AUDIO_SECONDS_PER_MINUTE = 8
    speaker = create_speaker(external_id="budget")
    enrolled = client.post(f"/api/v1/speakers/{speaker['id']}/enrollments",
                           {"audio": [upload("a_snt1"), upload("a_snt2"), upload("a_snt3")]}, format="multipart")
    assert enrolled.status_code == 201
    _over_budget(client.post("/api/v1/verify", {"speaker_id": speaker["id"], "audio": upload("a_snt5")},
                             format="multipart"))
    _over_budget(client.post("/api/v1/identify", {"audio": upload("a_snt5")}, format="multipart"))


def test_a_budget_of_zero_turns_the_budget_off(client, upload, settings):
    settings.VOICEPRINT_AUDIO_SECONDS_PER_MINUTE = 0
    for _ in range(3):
        assert _compare(client, upload).status_code == 200


def test_the_budget_slides_a_minute_rather_than_refilling_at_a_windows_end(client, upload, settings, monkeypatch):
    settings.VOICEPRINT_AUDIO_SECONDS_PER_MINUTE = 10
    now = [60.0 * 29_000_000 + 50.0]
    monkeypatch.setattr(audio_budget, "time", SimpleNamespace(time=lambda: now[0]))
    assert _compare(client, upload).status_code == 200  # about 6 s
    assert _compare(client, upload).status_code == 200  # about 12 s: over
    sent = audio_budget_used(payer=_payer_of(client))
    now[0] += 15.0  # 5 s into the next window: 11/12 of the last window's seconds still count
    error = _over_budget(_compare(client, upload))
    assert error["detail"]["used_s"] == pytest.approx(sent * 11 / 12, abs=0.1)
    # refused until the last window's share falls below the budget
    assert error["detail"]["retry_after_s"] == pytest.approx(60 * (1 - 10 / sent) - 5, abs=0.2)
    now[0] += error["detail"]["retry_after_s"] + 0.5
    assert audio_budget_used(payer=_payer_of(client)) < 10  # the next recording is decoded


def _payer_of(client) -> str:
    from speakers import crypto
    from speakers.models import ApiKey
    from speakers.runtime.payer import payer_of

    plain = client._credentials["HTTP_X_API_KEY"]
    return payer_of(ApiKey.objects.get(prefix=crypto.api_key_prefix(plain)))

"""Crafted recordings cannot impersonate anyone through any decision endpoint.

Reproduces the attack reported in issue 7: float WAVs with one huge sample embedded to nearly
the same vector whoever spoke, so two different people compared at 0.82-1.0, and a voiceprint
enrolled from spiked recordings of several people verified spiked recordings of others.
"""
from __future__ import annotations

import pytest

from tests.adversarial import ADVERSARIAL

pytestmark = pytest.mark.django_db

REFUSED = {422}


def _crafted(speech, name: str, clip: str):
    return ADVERSARIAL[name](speech.samples(clip))


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_two_crafted_recordings_of_different_people_are_never_accepted_as_one_voice(client, upload, speech, name):
    response = client.post("/api/v1/compare", {"reference": upload(_crafted(speech, name, "a_snt1"), "a.wav"),
                                               "test": upload(_crafted(speech, name, "b_snt1"), "b.wav")},
                           format="multipart")
    if response.status_code in REFUSED:
        assert response.json()["error"]["code"]
    else:
        assert response.status_code == 200, response.json()
        assert response.json()["accepted"] is False


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_a_crafted_recording_never_verifies_as_an_enrolled_speaker(client, upload, speech, enrolled, name):
    for clip in ("b_snt5", "a_snt5"):
        owner = "a" if clip.startswith("b") else "b"  # made from the other person's voice
        response = client.post("/api/v1/verify", {"speaker_id": enrolled[owner],
                                                  "audio": upload(_crafted(speech, name, clip), "x.wav")},
                               format="multipart")
        if response.status_code in REFUSED:
            assert response.json()["error"]["code"]
        else:
            assert response.status_code == 200, response.json()
            assert response.json()["accepted"] is False


@pytest.mark.parametrize("name", ["one float sample of 1e4", "twenty float samples of 50", "one 20 ms frame repeated"])
def test_a_voiceprint_cannot_be_enrolled_from_crafted_recordings_of_several_people(
        client, upload, speech, create_speaker, name):
    speaker = create_speaker(external_id=f"crafted-{name}")
    files = [upload(_crafted(speech, name, clip), f"{clip}.wav") for clip in ("a_snt1", "b_snt1", "a_snt2", "b_snt2")]
    response = client.post(f"/api/v1/speakers/{speaker['id']}/enrollments", {"audio": files}, format="multipart")
    assert response.status_code == 422, response.json()
    assert response.json()["error"]["code"] == "recordings_refused"
    codes = {refusal["code"] for refusal in response.json()["error"]["detail"]["files"]}
    assert codes and codes <= {"audio_out_of_range", "audio_degenerate", "no_speech", "enrollment_inconsistent"}
    identify = client.post("/api/v1/identify", {"audio": upload(_crafted(speech, name, "b_snt3"), "p.wav")},
                           format="multipart")
    assert identify.status_code in REFUSED or identify.json()["match"] is None

""""Enrolled" means usable: a complete voiceprint of the loaded model version, in the API and in the admin.

A voiceprint with less net speech than VOICEPRINT_ENROLL_TARGET_SPEECH_S cannot be verified
(409 enrollment_incomplete) and is not searched; one made by another model version is never
compared (409 model_version_mismatch). Neither may be shown as enrolled.
"""
from __future__ import annotations

import re

import pytest

from speakers.models import Speaker

pytestmark = pytest.mark.django_db

TICK = re.compile(r'<img src="[^"]*icon-(yes|no|unknown)\.svg" alt="(True|False|None)">')


def _outdate(speaker_id: str) -> None:
    """Pretend the voiceprint was made by an older model (its ciphertext stays as it was)."""
    Speaker.objects.filter(pk=speaker_id).update(voiceprint_model_version="spkrec-ecapa-voxceleb@00000000")


def test_a_speaker_with_too_little_speech_is_not_enrolled(client, create_speaker, enroll, upload):
    speaker = create_speaker(external_id="short")
    body = enroll(speaker["id"], "a_snt1").json()
    assert body["enrollment_progress"]["complete"] is False
    assert body["speaker"]["enrolled"] is False
    assert body["speaker"]["voiceprint_status"] == "incomplete"
    read = client.get(f"/api/v1/speakers/{speaker['id']}").json()
    assert read["enrolled"] is False and read["voiceprint_status"] == "incomplete"
    # the decision agrees with the flag
    verify = client.post("/api/v1/verify", {"speaker_id": speaker["id"], "audio": upload("a_snt4")},
                         format="multipart")
    assert verify.json()["error"]["code"] == "enrollment_incomplete"


def test_a_complete_voiceprint_of_the_loaded_model_is_enrolled(client, enrolled):
    body = client.get(f"/api/v1/speakers/{enrolled['a']}").json()
    assert body["enrolled"] is True and body["voiceprint_status"] == "complete"


def test_a_voiceprint_of_another_model_version_is_outdated_not_enrolled(client, enrolled, upload):
    _outdate(enrolled["a"])
    body = client.get(f"/api/v1/speakers/{enrolled['a']}").json()
    assert body["enrolled"] is False and body["voiceprint_status"] == "outdated"
    verify = client.post("/api/v1/verify", {"speaker_id": enrolled["a"], "audio": upload("a_snt4")},
                         format="multipart")
    assert verify.json()["error"]["code"] == "model_version_mismatch"


def test_a_speaker_without_recordings_has_no_voiceprint(client, create_speaker):
    body = create_speaker()
    assert body["enrolled"] is False and body["voiceprint_status"] == "none"


def test_the_list_says_the_same_as_the_detail(client, enrolled, create_speaker, enroll):
    short = create_speaker(external_id="short")
    enroll(short["id"], "b_snt1")
    _outdate(enrolled["b"])
    rows = {r["id"]: r for r in client.get("/api/v1/speakers").json()["results"]}
    assert [rows[i]["voiceprint_status"] for i in (enrolled["a"], enrolled["b"], short["id"])] == \
        ["complete", "outdated", "incomplete"]
    assert [rows[i]["enrolled"] for i in (enrolled["a"], enrolled["b"], short["id"])] == [True, False, False]


def test_the_list_narrows_to_one_voiceprint_status_and_health_counts_the_outdated(client, enrolled,
                                                                                  create_speaker, enroll):
    from django.core.cache import cache

    short = create_speaker(external_id="short")
    enroll(short["id"], "b_snt1")
    _outdate(enrolled["b"])

    def listed(status: str) -> list[str]:
        return [r["id"] for r in client.get(f"/api/v1/speakers?voiceprint_status={status}").json()["results"]]

    assert listed("outdated") == [enrolled["b"]]
    assert listed("complete") == [enrolled["a"]]
    assert listed("incomplete") == [short["id"]]
    for query in ("voiceprint_status=stale", "voiceprint_status=", "voiceprint_status=stale&voiceprint_status=complete"):
        refused = client.get(f"/api/v1/speakers?{query}")  # unknown, empty, or given twice (never the last one silently)
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "validation_error", query
    cache.clear()  # the update above bypassed the change log the health figures are cached on
    health = client.get("/api/v1/health").json()
    assert health["outdated_voiceprints"] == 1 and health["enrolled_speakers"] == 1


def _ticks(html: str, names: list[str]) -> dict[str, str]:
    """The "enrolled" tick (True/False/None) on each named speaker's row of the admin's speaker list."""
    out = {}
    for row in re.findall(r"<tr>.*?</tr>", html, flags=re.S):
        for name in names:
            if f">{name}<" in row:
                match = TICK.search(row)
                out[name] = match.group(2) if match else None
    return out


def test_the_admin_ticks_only_complete_voiceprints_of_the_loaded_model(admin_client, enrolled, create_speaker,
                                                                       enroll):
    short = create_speaker(display_name="Shorty")
    enroll(short["id"], "b_snt1")
    _outdate(enrolled["b"])
    html = admin_client.get("/admin/speakers/speaker/").content.decode()
    assert _ticks(html, ["Alice", "Bob", "Shorty"]) == {"Alice": "True", "Bob": "False", "Shorty": "False"}


@pytest.mark.parametrize("status, expected", [
    ("complete", {"Alice"}), ("incomplete", {"Shorty"}), ("outdated", {"Bob"}), ("none", {"Nobody"}),
])
def test_the_admin_filters_speakers_by_voiceprint_status(admin_client, enrolled, create_speaker, enroll,
                                                         status, expected):
    short = create_speaker(display_name="Shorty")
    enroll(short["id"], "b_snt1")
    create_speaker(display_name="Nobody")
    _outdate(enrolled["b"])
    html = admin_client.get("/admin/speakers/speaker/", {"voiceprint": status}).content.decode()
    shown = {name for name in ("Alice", "Bob", "Shorty", "Nobody") if f">{name}<" in html}
    assert shown == expected


@pytest.mark.parametrize("speech_s, complete, text", [
    (8.66, True, "8.7 s (6 s needed)"),  # rounded, not cut: 8.66 s used to read "8.6 of 6 s"
    (15.7, True, "15.7 s (6 s needed)"),  # not "15.7 of 6 s"
    (4.25, False, "4.3 of 6 s"),
    (5.97, False, "5.9 of 6 s"),   # never "6.0 of 6 s" while it is not complete
    (6.0, True, "6.0 s (6 s needed)"),
    (0.0, False, "0.0 of 6 s"),
])
def test_enrollment_progress_reads_rounded_but_never_complete_before_it_is(speech_s, complete, text):
    from speakers.selectors import EnrollmentProgress

    assert EnrollmentProgress(speech_s=speech_s, required_s=6.0, complete=complete).text == text

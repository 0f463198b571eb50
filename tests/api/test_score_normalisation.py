"""AS-norm as an option of verify, identify, compare and batch-verify, and the identification margin."""
from __future__ import annotations

import pytest
from apitools import assert_error, calibrated_verdict, lead_policy, lookalike_population, voiceprint_side
from django.conf import settings
from django.test import override_settings

from inference.asnorm import ASNorm
from inference.cohort import load_cohort
from speakers import crypto
from speakers.models import AuditEvent, Speaker
from speakers.search.index import voiceprint_index

pytestmark = pytest.mark.django_db


def verify(client, upload, speaker_id: str, name: str, **fields):
    return client.post("/api/v1/verify", {"speaker_id": speaker_id, "audio": upload(name), **fields},
                       format="multipart")


def identify(client, upload, name: str, **fields):
    return client.post("/api/v1/identify", {"audio": upload(name), **fields}, format="multipart")


@pytest.fixture(scope="module")
def reference_asnorm() -> ASNorm:
    """The normalisation computed here, independently of the service's cache."""
    return ASNorm(load_cohort(settings.VOICEPRINT_ASNORM_COHORT), top_k=settings.VOICEPRINT_ASNORM_TOP_K)


def _voiceprint(speaker_id: str):
    speaker = Speaker.objects.get(pk=speaker_id)
    return crypto.vector_decrypt(key_id=speaker.voiceprint_key_id, ciphertext=speaker.voiceprint_ciphertext,
                                 context=speaker.crypto_context())


def test_verify_with_asnorm_decides_on_the_normalised_scale_and_returns_the_cosine_too(client, upload, enrolled):
    same = verify(client, upload, enrolled["a"], "a_snt4", asnorm="true").json()
    other = verify(client, upload, enrolled["a"], "b_snt5", asnorm="true").json()
    plain = verify(client, upload, enrolled["a"], "a_snt4").json()
    assert same["score_normalisation"] == other["score_normalisation"] == "asnorm"
    assert same["raw_score"] == pytest.approx(plain["raw_score"], abs=1e-6)
    assert same["accepted"] is True and same["score"] >= same["threshold"]
    assert other["accepted"] is False and other["score"] < other["threshold"]
    # a clear same-speaker pair stays above a clear impostor pair after normalisation
    assert same["score"] > other["score"] and same["raw_score"] > other["raw_score"]
    event = AuditEvent.objects.filter(action="verify").order_by("created_at", "id").first()
    assert event.detail["score_normalisation"] == "asnorm"
    assert event.threshold == pytest.approx(same["threshold"], abs=5e-4)
    assert event.score == pytest.approx(same["score"], abs=5e-4)


def test_the_normalised_score_is_as_norm_of_the_stored_voiceprint_even_after_it_changes(client, upload, enrolled,
                                                                                       embedder, speech,
                                                                                       reference_asnorm):
    probe = embedder.embed(speech.bytes("a_snt5"))
    for _ in range(2):
        body = verify(client, upload, enrolled["a"], "a_snt5", asnorm="true").json()
        voiceprint, quality = voiceprint_side(enrolled["a"])
        expected = calibrated_verdict(enroll_vector=voiceprint, enroll_quality=quality, probe=probe, scale="asnorm",
                                      asnorm=reference_asnorm).llr
        assert body["score"] == pytest.approx(expected, abs=1e-3)
        # identify normalises with the statistics kept beside the voiceprint in the index
        found = identify(client, upload, "a_snt5", asnorm="true").json()["match"]
        assert found["speaker_id"] == enrolled["a"] and found["score"] == pytest.approx(expected, abs=1e-3)
        assert voiceprint_index().cached_asnorm_stats() >= 1
        # a new enrollment changes the voiceprint: its cached statistics must not be reused
        client.post(f"/api/v1/speakers/{enrolled['a']}/enrollments", {"audio": upload("a_snt6")},
                    format="multipart")


def test_identify_with_asnorm_names_the_speaker_with_a_normalised_margin(client, upload, enrolled):
    for label, probe in (("a", "a_snt5"), ("b", "b_snt6")):
        body = identify(client, upload, probe, asnorm="true").json()
        assert body["score_normalisation"] == "asnorm"
        assert body["match"]["speaker_id"] == enrolled[label]
        assert body["match"]["score"] >= body["threshold"]
        assert body["match"]["score"] - body["runner_up_score"] >= body["margin"]
        assert all(c["score"] != c["raw_score"] for c in body["candidates"])


def test_compare_and_batch_verify_can_normalise_too(client, upload):
    same = client.post("/api/v1/compare", {"reference": upload("a_snt1"), "test": upload("a_snt2"),
                                           "asnorm": "true"}, format="multipart").json()
    other = client.post("/api/v1/compare", {"reference": upload("a_snt1"), "test": upload("b_snt2"),
                                            "asnorm": "true"}, format="multipart").json()
    assert same["score_normalisation"] == "asnorm" and same["similarity"] == same["raw_score"] != same["score"]
    assert same["accepted"] is True and other["accepted"] is False
    batch = client.post("/api/v1/batch-verify", {"reference": upload("a_snt1"), "asnorm": "true",
                                                 "tests": [upload("a_snt2"), upload("b_snt2")]},
                        format="multipart").json()
    assert batch["score_normalisation"] == "asnorm"
    assert [r["accepted"] for r in batch["results"]] == [True, False]
    assert batch["results"][0]["score"] == pytest.approx(same["score"], abs=1e-6)


def test_the_deployment_default_applies_unless_the_request_says_otherwise(client, upload, enrolled):
    with override_settings(VOICEPRINT_ASNORM=True):
        assert verify(client, upload, enrolled["a"], "a_snt4").json()["score_normalisation"] == "asnorm"
        assert verify(client, upload, enrolled["a"], "a_snt4", asnorm="false").json()["score_normalisation"] == "none"
        # the classic endpoint answers in cosine whatever the default
        classic = client.post("/v1/verify-speaker", {"reference": upload("a_snt1"), "test": upload("a_snt2")},
                              format="multipart").json()
        assert 0.3 < classic["similarity"] <= 1 and classic["verification_result"] is True
    assert verify(client, upload, enrolled["a"], "a_snt4").json()["score_normalisation"] == "none"


def test_asnorm_without_its_cohort_is_a_clear_503_and_plain_scoring_still_works(client, upload, enrolled, tmp_path):
    with override_settings(VOICEPRINT_ASNORM_COHORT=tmp_path / "missing.npy"):
        error = assert_error(verify(client, upload, enrolled["a"], "a_snt4", asnorm="true"), 503,
                             "asnorm_unavailable")
        assert error["detail"]["cohort"].endswith("missing.npy")
        assert verify(client, upload, enrolled["a"], "a_snt4").json()["accepted"] is True
    assert verify(client, upload, enrolled["a"], "a_snt4", asnorm="true").json()["accepted"] is True


def test_asnorm_must_be_a_boolean(client, upload, enrolled):
    error = assert_error(verify(client, upload, enrolled["a"], "a_snt4", asnorm="maybe"), 400, "validation_error")
    assert "asnorm" in error["detail"]


# --- the margin over the runner-up ------------------------------------------------------------------

def test_an_identification_without_a_clear_lead_is_no_match(client, upload, enrolled, monkeypatch):
    import dataclasses

    from speakers.services import decisions

    policy_in_force = decisions.decision_policy

    def wide_margin(**kwargs):
        policy = policy_in_force(**kwargs)
        cosine = dataclasses.replace(policy.calibration.scales["cosine"], identify_margin=1000.0)
        return dataclasses.replace(policy, calibration=dataclasses.replace(
            policy.calibration, scales={**policy.calibration.scales, "cosine": cosine}))

    monkeypatch.setattr(decisions, "decision_policy", wide_margin)
    body = identify(client, upload, "a_snt5").json()
    assert body["candidates"][0]["speaker_id"] == enrolled["a"]
    assert body["candidates"][0]["score"] >= body["threshold"]
    assert body["candidates"][0]["score"] - body["runner_up_score"] < body["margin"] == 1000.0
    assert body["match"] is None and body["no_match_reason"] == "ambiguous"
    event = AuditEvent.objects.get(action="identify")
    assert event.decision == "no_match" and event.detail["no_match_reason"] == "ambiguous"


def test_among_many_voices_a_clear_lead_matches_short_of_the_threshold(client, upload, enrolled, create_speaker,
                                                                      embedder, speech, monkeypatch):

    strangers = lookalike_population(create_speaker, 12, common=0.0)  # 14 voices searched: the lead rule applies
    # computed independently: the probe's t against alice and against every other voiceprint
    probe = embedder.embed(speech.bytes("a_snt5"))
    ts = {}
    for speaker_id in [enrolled["a"], enrolled["b"], *strangers]:
        vector, quality = voiceprint_side(speaker_id)
        ts[speaker_id] = calibrated_verdict(enroll_vector=vector, enroll_quality=quality, probe=probe).normalised
    runner_up = max(t for s, t in ts.items() if s != enrolled["a"])
    lead = ts[enrolled["a"]] - runner_up
    assert lead > 2.0
    lead_policy(monkeypatch, gap=lead - 0.5)
    body = identify(client, upload, "a_snt5").json()
    assert body["match"]["speaker_id"] == enrolled["a"] and body["matched_by"] == "lead"
    assert body["match"]["score"] < body["threshold"]  # the threshold alone would have matched nobody
    assert body["lead"] == pytest.approx(lead, abs=2e-3) and body["lead_required"] == pytest.approx(lead - 0.5,
                                                                                                     abs=1e-3)
    event = AuditEvent.objects.get(action="identify")
    assert event.decision == "match" and event.detail["matched_by"] == "lead"
    # a lead just short of the gap: nobody, as the threshold says
    lead_policy(monkeypatch, gap=lead + 0.5)
    body = identify(client, upload, "a_snt5").json()
    assert body["match"] is None and body["no_match_reason"] == "below_threshold" and body["matched_by"] is None


def test_an_unknown_voice_among_many_is_not_far_ahead_of_anyone(client, upload, create_speaker, enroll, embedder,
                                                               speech, monkeypatch):

    only_a = create_speaker(external_id="a")["id"]
    assert enroll(only_a, "a_snt1", "a_snt2", "a_snt3").status_code == 201
    gallery = [only_a, *lookalike_population(create_speaker, 12, common=0.0)]
    probe = embedder.embed(speech.bytes("b_snt5"))  # bob is enrolled nowhere
    ts = sorted((calibrated_verdict(enroll_vector=v, enroll_quality=q, probe=probe).normalised
                 for v, q in map(voiceprint_side, gallery)), reverse=True)
    assert ts[0] - ts[1] < 2.0  # computed independently: the nearest stranger is not far ahead of the next
    lead_policy(monkeypatch, gap=2.0)
    body = identify(client, upload, "b_snt5").json()
    assert body["match"] is None and body["matched_by"] is None and body["no_match_reason"] == "below_threshold"
    assert body["lead"] == pytest.approx(ts[0] - ts[1], abs=2e-3) and body["lead_required"] == 2.0


def test_the_runner_up_is_looked_at_even_when_one_candidate_is_asked_for(client, upload, enrolled):
    body = identify(client, upload, "a_snt5", top_k=1).json()
    assert len(body["candidates"]) == 1
    assert body["runner_up_score"] is not None and body["runner_up_score"] < body["candidates"][0]["score"]
    assert body["match"]["speaker_id"] == enrolled["a"]

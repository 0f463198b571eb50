"""VOICEPRINT_MODELS=ecapa,campplus: ECAPA and CAM++ from one decode, fused, through every decision route.

Each decision is checked against the two networks run on their own (the session's ECAPA embedder and a
CAM++ model loaded beside it): the fused vector of a recording is ``[sqrt(w) e, sqrt(1 - w) c]``, a
voiceprint the mean of its recordings' fused vectors, and the decision the shipped fused calibration's.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from apitools import ENROLLED, assert_error, calibrated_verdict, voiceprint_side

from inference.config import FusionConfig
from inference.scoring import average_embeddings, l2_normalise
from speakers.models import Speaker

FUSED = ("ecapa", "campplus")


@pytest.fixture(scope="session")
def fused_engine(embedder):
    """A fused engine around the session's ECAPA, CAM++ loaded on the inference thread (MindSpore's owner)."""
    from inference.campplus_model import CampplusModel
    from inference.fusion import FusedEmbedder
    from speakers.runtime import inference_owner

    config = dataclasses.replace(embedder.config, fusion=FusionConfig(models=FUSED))
    campplus = inference_owner._owner.get().executor.submit(CampplusModel.load, config).result()
    return FusedEmbedder(config, embedder, campplus)


@pytest.fixture
def fused(settings, fused_engine, monkeypatch):
    """The service running the fused engine (as a process started with VOICEPRINT_MODELS=ecapa,campplus)."""
    from speakers.runtime import inference_owner

    settings.VOICEPRINT_MODELS = FUSED
    monkeypatch.setattr(inference_owner._owner.get(), "embedder", fused_engine)
    return fused_engine


def by_each_model(fused_engine, data: bytes) -> np.ndarray:
    """The fused vector of a recording built from the two networks run on their own."""
    ecapa = fused_engine.ecapa.embed(data).vector
    campplus = fused_engine.campplus.embed_prepared(fused_engine.ecapa.prepare(data))
    weight = fused_engine.config.fusion.ecapa_weight
    return np.concatenate([math.sqrt(weight) * ecapa, math.sqrt(1 - weight) * campplus]).astype(np.float32)


def test_compare_scores_the_weighted_sum_of_both_models_cosines(client, upload, speech, fused):
    body = client.post("/api/v1/compare", {"reference": upload("a_snt1"), "test": upload("a_snt2")},
                       format="multipart").json()
    e1, e2 = (fused.ecapa.embed(speech.bytes(n)).vector for n in ("a_snt1", "a_snt2"))
    c1, c2 = (fused.campplus.embed_prepared(fused.ecapa.prepare(speech.bytes(n))) for n in ("a_snt1", "a_snt2"))
    weight = fused.config.fusion.ecapa_weight
    assert body["raw_score"] == pytest.approx(weight * float(e1 @ e2) + (1 - weight) * float(c1 @ c2), abs=5e-4)
    assert body["model_version"] == fused.model_version
    assert "+campplus-" in body["model_version"] and body["accepted"] is True
    other = client.post("/api/v1/compare", {"reference": upload("a_snt1"), "test": upload("b_snt1")},
                        format="multipart").json()
    assert other["accepted"] is False and other["score"] < other["threshold"]


def test_enroll_and_verify_decide_on_the_fused_voiceprint_with_the_fused_calibration(
        fused, client, upload, speech, enrolled):
    # `enrolled` comes after `fused`: the voiceprints are the fused model's
    for label in ("a", "b"):
        vector, quality = voiceprint_side(enrolled[label])
        assert vector.shape == (384,)
        expected = average_embeddings([by_each_model(fused, speech.bytes(n)) for n in ENROLLED[label]])
        np.testing.assert_allclose(vector, expected, atol=2e-5)
        assert Speaker.objects.get(pk=enrolled[label]).voiceprint_model_version == fused.model_version
    for probe, accepted in (("a_snt4", True), ("b_snt5", False)):
        body = client.post("/api/v1/verify", {"speaker_id": enrolled["a"], "audio": upload(probe)},
                           format="multipart").json()
        vector, quality = voiceprint_side(enrolled["a"])
        result = fused.embed(speech.bytes(probe))
        np.testing.assert_allclose(result.vector, by_each_model(fused, speech.bytes(probe)), atol=2e-5)
        expected = calibrated_verdict(enroll_vector=vector, enroll_quality=quality, probe=result)
        assert body["raw_score"] == pytest.approx(float(vector @ result.vector), abs=5e-4)
        assert body["score"] == pytest.approx(expected.llr, abs=5e-4)
        assert body["threshold"] == pytest.approx(expected.threshold, abs=5e-4)
        assert body["accepted"] is accepted is expected.accepted


def test_identify_searches_the_fused_index(fused, client, upload, enrolled, speech):
    body = client.post("/api/v1/identify", {"audio": upload("b_snt6")}, format="multipart").json()
    assert body["match"] is not None and body["match"]["speaker_id"] == enrolled["b"]
    assert body["model_version"] == fused.model_version
    first = body["candidates"][0]
    assert first["speaker_id"] == enrolled["b"]
    vector, _ = voiceprint_side(enrolled["b"])
    assert first["raw_score"] == pytest.approx(float(l2_normalise(vector) @ fused.embed(speech.bytes("b_snt6")).vector),
                                               abs=5e-4)


def _diarize(client, upload, speech) -> dict:
    """Diarize a conversation of a (a_snt4, a_snt5) then b (b_snt5, b_snt6), half a second between recordings."""
    import io

    import soundfile as sf

    parts = [sf.read(io.BytesIO(speech.bytes(n)), dtype="float32") for n in ("a_snt4", "a_snt5", "b_snt5", "b_snt6")]
    rate = parts[0][1]
    pause = np.zeros(int(0.5 * rate), dtype=np.float32)
    samples = np.concatenate([x for part, _ in parts for x in (part, pause)])
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype="PCM_16")
    response = client.post("/api/v1/diarize", {"audio": upload(buffer.getvalue(), "talk.wav")}, format="multipart")
    assert response.status_code == 200, response.json()
    return response.json()


def test_diarize_names_a_voice_with_the_fused_vectors(fused, client, upload, enrolled, speech):
    body = _diarize(client, upload, speech)
    assert body["model_version"] == fused.model_version
    named = {s["speaker"]["id"] for s in body["segments"] if s["speaker"] is not None}
    assert named == {enrolled["a"], enrolled["b"]}


def _switch_to_fused(settings, monkeypatch, fused_engine) -> None:
    """The deployment turns fusion on after its speakers were enrolled with ECAPA alone (a restart, as far as
    the service can tell: the cached health figures go too)."""
    from django.core.cache import cache

    from speakers.runtime import inference_owner

    settings.VOICEPRINT_MODELS = FUSED
    monkeypatch.setattr(inference_owner._owner.get(), "embedder", fused_engine)
    cache.clear()


def test_a_voiceprint_of_ecapa_alone_is_verified_with_ecapa_by_the_fused_engine(client, upload, enrolled, settings,
                                                                                 monkeypatch, fused_engine):
    # the ECAPA engine's own decisions, before the switch (computed by the engine that made the voiceprints)
    alone = {(who, clip): client.post("/api/v1/verify", {"speaker_id": enrolled[who], "audio": upload(clip)},
                                      format="multipart").json()
             for who, clip in (("a", "a_snt4"), ("a", "b_snt4"))}
    _switch_to_fused(settings, monkeypatch, fused_engine)
    for (who, clip), before in alone.items():
        after = client.post("/api/v1/verify", {"speaker_id": enrolled[who], "audio": upload(clip)},
                            format="multipart").json()
        assert after["model_version"] == fused_engine.ecapa.model_version != fused_engine.model_version
        assert after["accepted"] is before["accepted"]
        assert after["raw_score"] == pytest.approx(before["raw_score"], abs=1e-4)
        assert after["score"] == pytest.approx(before["score"], abs=1e-3)
        assert after["threshold"] == pytest.approx(before["threshold"], abs=1e-6)
    assert alone[("a", "a_snt4")]["accepted"] is True and alone[("a", "b_snt4")]["accepted"] is False
    body = client.get(f"/api/v1/speakers/{enrolled['a']}").json()
    assert body["voiceprint_status"] == "partial" and body["enrolled"] is False


def test_voiceprints_of_ecapa_alone_are_identified_as_the_ecapa_engine_identified_them(
        client, upload, enrolled, settings, monkeypatch, fused_engine):
    # every voiceprint is ECAPA's: the fused engine's identify is the ECAPA engine's own, ECAPA's part of the probe
    before = {clip: client.post("/api/v1/identify", {"audio": upload(clip)}, format="multipart").json()
              for clip in ("a_snt5", "b_snt6")}
    _switch_to_fused(settings, monkeypatch, fused_engine)
    for clip, alone in before.items():
        after = client.post("/api/v1/identify", {"audio": upload(clip)}, format="multipart").json()
        assert after["model_version"] == fused_engine.model_version
        assert after["match"]["speaker_id"] == alone["match"]["speaker_id"]
        assert [c["speaker_id"] for c in after["candidates"]] == [c["speaker_id"] for c in alone["candidates"]]
        for now, then in zip(after["candidates"], alone["candidates"]):
            assert now["model_version"] == then["model_version"] == fused_engine.ecapa.model_version
            assert now["raw_score"] == pytest.approx(then["raw_score"], abs=1e-4)
            assert now["score"] == pytest.approx(then["score"], abs=1e-3)
        assert after["threshold"] == pytest.approx(alone["threshold"], abs=1e-3)
        assert after["margin"] == pytest.approx(alone["margin"], abs=1e-9)
    assert before["a_snt5"]["match"]["speaker_id"] == enrolled["a"]


def _identify_llr(model_version: str, voiceprint: np.ndarray, quality, probe, gallery: int) -> tuple[float, float]:
    """A lone candidate's llr and identification threshold under ``model_version``'s shipped calibration, from the
    vectors (computed here, not by the service)."""
    from inference.quality_calibration import SideQuality
    from speakers.selectors import decision_policy

    policy = decision_policy(model_version=model_version, tenant=None)
    verdict = policy.calibration.identify(
        scale="cosine", scores=[float(l2_normalise(voiceprint) @ probe.vector)], enroll=[quality],
        probe=SideQuality(probe.speech_s, probe.quality.snr_db, probe.quality.bandwidth_hz),
        fir=policy.fir_target, gallery=gallery)
    return float(verdict.llrs[0]), verdict.threshold


def test_identify_ranks_fused_and_ecapa_alone_voiceprints_as_one_gallery(client, upload, enrolled, enroll, speech,
                                                                         settings, monkeypatch, fused_engine):
    from speakers.models import AuditEvent

    _switch_to_fused(settings, monkeypatch, fused_engine)
    again = enroll(enrolled["b"], *ENROLLED["b"])  # b enrolled again: a fused voiceprint; a stays ECAPA's
    assert again.status_code == 201, again.json()
    assert Speaker.objects.get(pk=enrolled["b"]).voiceprint_model_version == fused_engine.model_version
    ecapa, fused_version = fused_engine.ecapa.model_version, fused_engine.model_version
    for clip, who, version in (("a_snt5", "a", ecapa), ("b_snt6", "b", fused_version)):
        body = client.post("/api/v1/identify", {"audio": upload(clip)}, format="multipart").json()
        assert body["match"] is not None and body["match"]["speaker_id"] == enrolled[who]
        assert body["match"]["model_version"] == version
        # each speaker once, each scored by the model of their own voiceprint, against a gallery of both
        by_id = {c["speaker_id"]: c for c in body["candidates"]}
        assert sorted(by_id) == sorted(enrolled.values()) and len(body["candidates"]) == 2
        assert (by_id[enrolled["a"]]["model_version"], by_id[enrolled["b"]]["model_version"]) == (ecapa, fused_version)
        probe = fused_engine.embed(speech.bytes(clip))
        expected = {}
        for label, model_version, vector in (("a", ecapa, fused_engine.ecapa.embed(speech.bytes(clip))),
                                             ("b", fused_version, probe)):
            voiceprint, quality = voiceprint_side(enrolled[label])
            expected[label] = _identify_llr(model_version, voiceprint, quality, vector, gallery=2)
            assert by_id[enrolled[label]]["raw_score"] == pytest.approx(
                float(l2_normalise(voiceprint) @ vector.vector), abs=6e-4)
            assert by_id[enrolled[label]]["score"] == pytest.approx(expected[label][0], abs=2e-3)
        assert [c["speaker_id"] for c in body["candidates"]] == sorted(
            enrolled.values(), key=lambda s: -by_id[s]["score"])
        assert body["threshold"] == pytest.approx(expected[who][1], abs=2e-3)  # the match's own calibration's
        assert body["runner_up_score"] == pytest.approx(body["candidates"][1]["score"], abs=1e-9)
    event = AuditEvent.objects.filter(action="identify").latest("created_at")
    assert event.detail["gallery"] == 2


def test_warm_up_builds_the_index_of_the_voiceprints_enrolled_before_fusion(enrolled, settings, monkeypatch,
                                                                           fused_engine):
    import uuid

    from speakers.runtime import startup
    from speakers.search.index import part_index

    _switch_to_fused(settings, monkeypatch, fused_engine)
    monkeypatch.setattr(startup.connection, "close", lambda: None)  # keep the test's transaction
    part = part_index(fused_engine.ecapa.model_version)
    monkeypatch.setattr(part, "_index", None)  # as in a new process
    startup.warm_up()
    assert len(part) == 2 and {uuid.UUID(enrolled[w]) in part for w in "ab"} == {True}


def test_diarize_names_voices_enrolled_with_ecapa_alone_under_the_fused_engine(client, upload, enrolled, speech,
                                                                                settings, monkeypatch, fused_engine):
    _switch_to_fused(settings, monkeypatch, fused_engine)
    body = _diarize(client, upload, speech)
    assert body["model_version"] == fused_engine.model_version
    assert {s["speaker"]["id"] for s in body["segments"] if s["speaker"] is not None} == {enrolled["a"], enrolled["b"]}


def test_an_incomplete_voiceprint_of_ecapa_alone_is_outdated_under_the_fused_engine(client, upload, enrolled,
                                                                                   settings, monkeypatch, fused_engine):
    from speakers.models import Speaker

    Speaker.objects.filter(pk=enrolled["a"]).update(voiceprint_speech_s=1.0)  # less than the target
    _switch_to_fused(settings, monkeypatch, fused_engine)
    error = assert_error(client.post("/api/v1/verify", {"speaker_id": enrolled["a"], "audio": upload("a_snt4")},
                                     format="multipart"), 409, "model_version_mismatch")
    assert error["detail"]["model_version"] == fused_engine.model_version
    assert client.get(f"/api/v1/speakers/{enrolled['a']}").json()["voiceprint_status"] == "outdated"


def test_switching_to_the_fused_engine_shows_which_speakers_need_enrolling_again(client, enrolled, settings,
                                                                                monkeypatch, fused_engine):
    from speakers.models import Speaker

    Speaker.objects.filter(pk=enrolled["b"]).update(voiceprint_model_version="spkrec-ecapa-voxceleb@00000000")
    _switch_to_fused(settings, monkeypatch, fused_engine)
    health = client.get("/api/v1/health").json()
    assert health["model_version"] == fused_engine.model_version
    assert (health["partial_voiceprints"], health["outdated_voiceprints"], health["enrolled_speakers"]) == (1, 1, 0)
    for status, who in (("partial", "a"), ("outdated", "b")):
        listed = client.get(f"/api/v1/speakers?voiceprint_status={status}").json()["results"]
        assert [r["id"] for r in listed] == [enrolled[who]]
        assert listed[0]["voiceprint_status"] == status


def test_before_the_engine_loads_health_names_the_configured_models_version(settings, fused_engine, embedder):
    # a worker that has not loaded its engine yet reads the prepared manifests (the model is never loaded for health)
    from speakers.runtime import inference_owner

    settings.VOICEPRINT_MODELS = FUSED
    assert inference_owner.prepared_model_version() == fused_engine.model_version
    settings.VOICEPRINT_MODELS = ("ecapa",)
    assert inference_owner.prepared_model_version() == embedder.model_version


def test_score_normalisation_is_refused_with_a_clear_code_when_fused(fused, client, upload, enrolled):
    error = assert_error(client.post("/api/v1/verify", {"speaker_id": enrolled["a"], "audio": upload("a_snt4"),
                                                        "asnorm": "true"}, format="multipart"),
                         503, "asnorm_unavailable")
    assert "VOICEPRINT_MODELS=ecapa" in error["message"]


def test_fused_settings_refuse_asnorm_by_default_at_start(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "VOICEPRINT_MODELS": "ecapa,campplus", "VOICEPRINT_ASNORM": "true",
           "DJANGO_SETTINGS_MODULE": "voiceprint_project.settings"}
    done = subprocess.run([sys.executable, "-c", "import django; django.setup()"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0 and "VOICEPRINT_ASNORM=true needs a cohort" in done.stderr
    env["VOICEPRINT_MODELS"] = "campplus"
    done = subprocess.run([sys.executable, "-c", "import django; django.setup()"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0 and "use ecapa or ecapa,campplus" in done.stderr


@pytest.mark.django_db(transaction=True)
def test_live_identification_names_the_speaker_with_the_fused_engine(fused, create_speaker, enroll, make_key, speech):
    from test_stream_identify import A_TURN, _pcm, _session

    alice = create_speaker(external_id="alice", display_name="Alice")
    assert enroll(alice["id"], *ENROLLED["a"]).status_code == 201
    assert Speaker.objects.get(pk=alice["id"]).voiceprint_model_version == fused.model_version
    messages, code = _session(make_key("identify"), {"type": "start"}, _pcm(speech, *A_TURN))
    assert code == 1000, messages
    windows = [m for m in messages if m["type"] == "speaker"]
    assert windows and all(m["match"] is not None and m["match"]["external_id"] == "alice" for m in windows), windows


def test_the_shared_milvus_collection_holds_the_fused_vectors(fused, client, upload, enrolled, settings, tmp_path):
    """One Milvus collection of the fused model version, of the fused vector's size, answering as the flat index."""
    from inference.vector_index.milvus import MilvusIndex
    from speakers.search.shared_tier import collection_name

    answers = {}
    for backend in ("flat", "milvus"):
        settings.VOICEPRINT_INDEX_BACKEND = backend
        settings.VOICEPRINT_MILVUS_URI = str(tmp_path / "milvus.db")
        answers[backend] = client.post("/api/v1/identify", {"audio": upload("b_snt6")}, format="multipart").json()
    assert answers["milvus"]["match"]["speaker_id"] == answers["flat"]["match"]["speaker_id"] == enrolled["b"]
    assert [c["raw_score"] for c in answers["milvus"]["candidates"]] == pytest.approx(
        [c["raw_score"] for c in answers["flat"]["candidates"]], abs=1e-3)
    tier = MilvusIndex(settings.VOICEPRINT_MILVUS_URI, partitioned=True, dim=384,
                       collection=collection_name(fused.model_version, settings.VOICEPRINT_ENROLL_TARGET_SPEECH_S))
    assert len(tier) == 2


def test_on_milvus_voiceprints_of_ecapa_alone_are_searched_in_ecapa_s_own_collection(
        client, upload, enrolled, settings, monkeypatch, fused_engine, milvus):
    """A deployment on the shared tier turns fusion on: its ECAPA collection (192-d) keeps answering for the speakers
    enrolled before, beside the fused one (384-d), as the flat indexes do."""
    from inference.vector_index.milvus import MilvusIndex
    from speakers.search.shared_tier import collection_name

    before = client.post("/api/v1/identify", {"audio": upload("a_snt5")}, format="multipart").json()
    _switch_to_fused(settings, monkeypatch, fused_engine)
    answers = {}
    for backend in ("milvus", "flat"):
        settings.VOICEPRINT_INDEX_BACKEND = backend
        answers[backend] = client.post("/api/v1/identify", {"audio": upload("a_snt5")}, format="multipart").json()
    for answer in answers.values():
        assert answer["match"]["speaker_id"] == before["match"]["speaker_id"] == enrolled["a"]
        assert answer["match"]["model_version"] == fused_engine.ecapa.model_version
        assert [c["score"] for c in answer["candidates"]] == pytest.approx(
            [c["score"] for c in before["candidates"]], abs=2e-3)
    required = settings.VOICEPRINT_ENROLL_TARGET_SPEECH_S
    assert len(MilvusIndex(milvus, partitioned=True, dim=192,
                           collection=collection_name(fused_engine.ecapa.model_version, required))) == 2
    assert len(MilvusIndex(milvus, partitioned=True, dim=384,
                           collection=collection_name(fused_engine.model_version, required))) == 0


def test_rebuild_index_checks_and_rebuilds_ecapa_s_collection_beside_the_fused_one(
        client, upload, enrolled, settings, monkeypatch, fused_engine, milvus):
    import uuid
    from io import StringIO

    from django.core.management import CommandError, call_command

    from inference.vector_index.milvus import MilvusIndex
    from speakers.search.shared_tier import collection_name

    _switch_to_fused(settings, monkeypatch, fused_engine)
    client.post("/api/v1/identify", {"audio": upload("a_snt5")}, format="multipart")  # opens both collections
    required = settings.VOICEPRINT_ENROLL_TARGET_SPEECH_S
    ecapa = MilvusIndex(milvus, partitioned=True, dim=192,
                        collection=collection_name(fused_engine.ecapa.model_version, required))
    ecapa.remove([uuid.UUID(enrolled["a"])])  # a collection damaged by hand
    out = StringIO()
    with pytest.raises(CommandError, match=ecapa.collection):
        call_command("rebuild_index", "--check", stdout=out)
    report = out.getvalue()
    assert f"(model {fused_engine.model_version})" in report and f"(model {fused_engine.ecapa.model_version})" in report
    assert f"missing: 1 ({enrolled['a']})" in report
    call_command("rebuild_index", stdout=StringIO())
    assert sorted(ecapa.ids()) == sorted(uuid.UUID(enrolled[w]) for w in "ab")
    out = StringIO()
    call_command("rebuild_index", "--check", stdout=out)
    assert out.getvalue().count("in step") == 2


def test_evaluate_reports_each_network_beside_the_fusion_and_skips_asnorm(fused, db, tmp_path):
    import io
    import json
    from pathlib import Path

    from django.core.management import call_command

    speech = Path(__file__).resolve().parents[1] / "fixtures" / "speech"
    out = io.StringIO()
    call_command("evaluate", "--trials", str(speech / "trials.txt"), "--audio-root", str(speech), "--asnorm",
                 "--no-progress", "--out-dir", str(tmp_path), stdout=out)
    report = json.loads((tmp_path / "verification.json").read_text())
    assert set(report["networks"]) == {"ecapa", "campplus"} and report["asnorm"] is None
    assert report["calibration"]["source"].startswith("shipped:") and fused.model_version in report["calibration"]["source"]
    for m in (report["cosine"], *report["networks"].values()):
        assert m["eer"] == 0.0  # the two dev voices separate completely with each network and fused
    text = out.getvalue()
    assert "AS-norm: not evaluated" in text and "ecapa alone" in text and "campplus alone" in text

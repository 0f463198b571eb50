"""`manage.py evaluate` and `manage.py calibrate` on the real dev recordings, and the policy they set."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from apitools import assert_error
from django.conf import settings
from django.core.management import CommandError, call_command

from speakers import asnorm as service_asnorm
from speakers.models import AuditEvent, Calibration

pytestmark = pytest.mark.django_db

SPEECH = Path(__file__).resolve().parents[1] / "fixtures" / "speech"
TRIALS, IDENTIFY = SPEECH / "trials.txt", SPEECH / "identify.txt"


def run(command: str, *args: str) -> str:
    out = io.StringIO()
    call_command(command, *args, "--no-progress", stdout=out)
    return out.getvalue()


# --- evaluate -------------------------------------------------------------------------------------

def test_evaluate_runs_end_to_end_on_the_dev_recordings_and_writes_its_reports(tmp_path):
    out = run("evaluate", "--trials", str(TRIALS), "--audio-root", str(SPEECH), "--identify", str(IDENTIFY),
              "--unknown", "b", "--enroll-per-speaker", "3", "--asnorm", "--out-dir", str(tmp_path))

    report = json.loads((tmp_path / "verification.json").read_text())
    assert report["kind"] == "verification"
    assert report["counts"] == {"trials": 66, "scored": 66, "skipped": 0, "target": 30, "nontarget": 36,
                                "files": 12, "failed_files": 0}
    for scale in ("cosine", "asnorm"):
        metrics = report[scale]
        assert metrics["eer"] == 0.0  # the two dev voices separate completely
        assert [d["p_target"] for d in metrics["min_dcf"]] == [0.01, 0.05]
        assert {"eer_threshold", "eer_speechbrain", "threshold_at_far", "far_at_threshold", "frr_at_threshold",
                "target_mean", "nontarget_mean"} <= set(metrics)
        assert metrics["far_target"] == 0.01
    assert report["asnorm"]["top_k"] == 200 and report["asnorm"]["cohort_size"] == 7205
    # the thresholds in force and what they do on these recordings
    assert report["thresholds_in_force"]["cosine"] == {"threshold": 0.45, "source": "settings", "far": 0.0, "frr": 0.0}
    assert report["thresholds_in_force"]["asnorm"]["threshold"] == 7.5
    assert report["cosine"]["nontarget_mean"] < 0.1 < 0.45 < report["cosine"]["target_mean"]

    identification = json.loads((tmp_path / "identification.json").read_text())
    assert identification["speakers"] == {"known": ["a"], "unknown": ["b"], "skipped": []}
    assert identification["counts"]["known_probes"] == 3 and identification["counts"]["unknown_probes"] == 6
    assert identification["known"]["top1_accuracy"] == 1.0
    assert identification["unknown"]["false_identification_rate"] == 0.0
    assert identification["threshold"] == 0.5 and identification["margin"] == 0.05
    assert json.loads((tmp_path / "identification_asnorm.json").read_text())["scale"] == "asnorm"
    for name in ("verification", "identification", "identification_asnorm"):
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "EER" in out and "minDCF p_target=0.01" in out and "top-1 100.00 %" in out


def test_evaluate_records_the_files_the_service_would_refuse(tmp_path, speech):
    audio = tmp_path / "audio"
    audio.mkdir()
    for name in ("a_snt1", "a_snt2", "b_snt1", "b_snt2"):
        (audio / f"{name}.wav").write_bytes(speech.bytes(name))
    (audio / "short.wav").write_bytes(speech.wav(speech.samples("a_snt3")[:12_800]))  # 0.8 s of speech
    trials = tmp_path / "trials.txt"
    trials.write_text("1 a_snt1.wav a_snt2.wav\n0 a_snt1.wav b_snt1.wav\n1 b_snt1.wav b_snt2.wav\n"
                      "1 a_snt1.wav short.wav\n0 b_snt2.wav short.wav\n")
    run("evaluate", "--trials", str(trials), "--audio-root", str(audio), "--out-dir", str(tmp_path / "out"))
    report = json.loads((tmp_path / "out" / "verification.json").read_text())
    assert report["failed_files"] == {"short.wav": "insufficient_speech"}
    assert report["counts"]["skipped"] == 2


def test_evaluate_needs_a_list(tmp_path):
    with pytest.raises(CommandError, match="--trials, --identify"):
        call_command("evaluate", "--audio-root", str(SPEECH))


# --- calibrate ------------------------------------------------------------------------------------

def test_calibrate_stores_the_measured_thresholds_and_from_then_on_they_decide(client, upload, enrolled):
    out = run("calibrate", "--trials", str(TRIALS), "--audio-root", str(SPEECH), "--at-eer",
              "--identify", str(IDENTIFY), "--note", "kiosk microphones")
    calibration = Calibration.objects.get()
    assert calibration.method == "eer" and calibration.note == "kiosk microphones"
    assert calibration.created_by == "cli:calibrate"
    assert calibration.counts["verification"]["target"] == 30 and calibration.counts["verification"]["nontarget"] == 36
    assert calibration.eer == 0.0
    # on these two well-separated voices the EER point lies between the impostors and the targets
    assert 0.1 < calibration.verify_threshold <= 0.49
    assert calibration.identify_threshold is not None and calibration.identify_margin == 0.05
    assert calibration.counts["identification_cosine"]["unknown_probes"] == 12  # each speaker a stranger once
    assert "before" in out and "after" in out and f"calibration {calibration.pk}" in out
    assert AuditEvent.objects.filter(action="calibrate", detail__calibration_id=calibration.pk).exists()

    policy = client.get("/api/v1/policy").json()
    assert policy["cosine"]["verify"] == pytest.approx(calibration.verify_threshold)
    assert policy["cosine"]["sources"] == {"verify": calibration.source, "identify": calibration.source,
                                           "identify_margin": calibration.source}
    assert policy["calibration"]["id"] == calibration.pk
    assert policy["asnorm"]["sources"]["verify"] == "settings"  # not calibrated with --asnorm

    verified = client.post("/api/v1/verify", {"speaker_id": enrolled["a"], "audio": upload("a_snt4")},
                           format="multipart").json()
    assert verified["threshold"] == pytest.approx(calibration.verify_threshold)
    identified = client.post("/api/v1/identify", {"audio": upload("a_snt4")}, format="multipart").json()
    assert identified["threshold"] == pytest.approx(calibration.identify_threshold)
    assert AuditEvent.objects.get(action="verify").detail["policy"] == calibration.source


def test_calibrate_at_a_false_accept_rate_with_asnorm_sets_both_scales(client):
    run("calibrate", "--trials", str(TRIALS), "--audio-root", str(SPEECH), "--far", "0.05", "--asnorm")
    calibration = Calibration.objects.get()
    assert calibration.method == "far" and calibration.far_target == 0.05
    assert calibration.asnorm_key == service_asnorm.asnorm_key()
    assert calibration.asnorm_verify_threshold > 2 and calibration.asnorm_eer == 0.0
    policy = client.get("/api/v1/policy").json()
    assert policy["asnorm"]["verify"] == pytest.approx(calibration.asnorm_verify_threshold)
    assert policy["asnorm"]["sources"]["verify"] == calibration.source
    assert policy["asnorm"]["sources"]["identify"] == "settings"  # identification was not calibrated


def test_a_dry_run_measures_but_stores_nothing():
    out = run("calibrate", "--trials", str(TRIALS), "--audio-root", str(SPEECH), "--at-eer", "--dry-run")
    assert "Dry run: nothing stored." in out and "verify (cosine)" in out
    assert not Calibration.objects.exists()


def test_calibration_refuses_a_handful_of_trials(tmp_path):
    few = tmp_path / "few.txt"
    few.write_text("1 a_snt1.wav a_snt2.wav\n0 a_snt1.wav b_snt1.wav\n1 b_snt1.wav b_snt2.wav\n")
    with pytest.raises(CommandError, match="calibration_refused"):
        run("calibrate", "--trials", str(few), "--audio-root", str(SPEECH))
    assert not Calibration.objects.exists()


def test_a_calibration_holds_only_for_its_model_version_and_asnorm_thresholds_for_their_normalisation(
        client, embedder):
    Calibration.objects.create(created_by="tests", model_version="older-model@00000000", method="far",
                               far_target=0.01, verify_threshold=0.1, eer=0.05)
    assert client.get("/api/v1/policy").json()["cosine"]["sources"]["verify"] == "settings"
    mine = Calibration.objects.create(created_by="tests", model_version=embedder.model_version, method="far",
                                      far_target=0.01, verify_threshold=0.4, eer=0.05, asnorm_key="another-cohort",
                                      asnorm_verify_threshold=3.0)
    policy = client.get("/api/v1/policy").json()
    assert policy["cosine"]["verify"] == 0.4 and policy["cosine"]["sources"]["verify"] == mine.source
    assert policy["cosine"]["identify"] == settings.VOICEPRINT_IDENTIFY_THRESHOLD  # not calibrated: the setting
    assert policy["cosine"]["sources"]["identify"] == "settings"
    assert policy["asnorm"]["verify"] == settings.VOICEPRINT_ASNORM_VERIFY_THRESHOLD


def test_revert_withdraws_the_newest_calibration(client):
    run("calibrate", "--trials", str(TRIALS), "--audio-root", str(SPEECH), "--at-eer")
    out = run("calibrate", "--revert")
    assert "Withdrew calibration" in out and "(settings)" in out
    assert not Calibration.objects.exists()
    assert client.get("/api/v1/policy").json()["calibration"] is None
    assert AuditEvent.objects.filter(action="calibration_revert").exists()
    with pytest.raises(CommandError, match="No calibration"):
        run("calibrate", "--revert")


def test_the_policy_shows_the_defaults_and_the_quality_gates_and_needs_the_manage_scope(client, anon_client,
                                                                                       make_key, embedder):
    policy = client.get("/api/v1/policy").json()
    assert policy["model_version"] == embedder.model_version
    assert policy["cosine"] == {"verify": 0.45, "identify": 0.5, "identify_margin": 0.05,
                                "sources": {"verify": "settings", "identify": "settings",
                                            "identify_margin": "settings"}}
    assert (policy["asnorm"]["verify"], policy["asnorm"]["identify"], policy["asnorm"]["identify_margin"]) == (
        7.5, 8.0, 1.0)
    assert policy["asnorm_key"] == service_asnorm.asnorm_key() and policy["asnorm_key"].endswith("-m7205-k200")
    assert policy["score_normalisation_default"] == "none" and policy["calibration"] is None
    assert policy["quality_gates"] == {
        "enroll_min_speech_s": 1.5, "enroll_target_speech_s": 6.0, "probe_min_speech_s": 1.0,
        "max_clipping_ratio": 0.05, "min_speech_level_dbfs": -48.0, "enroll_min_snr_db": 8.0,
        "probe_min_snr_db": 5.0, "enroll_consistency_threshold": 0.3}
    anon_client.credentials(HTTP_X_API_KEY=make_key("verify", "identify", "enroll"))
    assert_error(anon_client.get("/api/v1/policy"), 403, "insufficient_scope")


def test_calibrations_are_read_only_in_the_admin(admin_client, embedder):
    calibration = Calibration.objects.create(created_by="tests", model_version=embedder.model_version,
                                             method="eer", verify_threshold=0.42, eer=0.02)
    assert admin_client.get("/admin/speakers/calibration/").status_code == 200
    page = admin_client.get(f"/admin/speakers/calibration/{calibration.pk}/change/")
    assert page.status_code == 200 and "0.42" in page.content.decode()
    assert admin_client.get("/admin/speakers/calibration/add/").status_code == 403
    assert admin_client.post(f"/admin/speakers/calibration/{calibration.pk}/change/",
                             {"verify_threshold": "0.1"}).status_code == 403
    assert admin_client.post(f"/admin/speakers/calibration/{calibration.pk}/delete/",
                             {"post": "yes"}).status_code == 403
    calibration.refresh_from_db()
    assert calibration.verify_threshold == 0.42


def test_a_calibrated_threshold_sits_in_the_middle_of_the_thresholds_that_decide_the_trials_alike():
    from inference.calibration import identify_threshold_within_target, threshold_within_target

    scores, labels = [0.1, 0.2, 0.3, 0.6, 0.7], [0, 0, 0, 1, 1]
    # FAR 1/3 allows the 0.3 impostor in; anything in (0.2, 0.6] takes both targets and no more impostors
    assert threshold_within_target(scores, labels, 1 / 3) == pytest.approx(0.4)
    assert threshold_within_target(scores, labels, 0.0) == pytest.approx(0.45)  # the gap between the classes
    dense = [0.40, 0.44, 0.443, 0.45, 0.46]
    assert threshold_within_target(dense, [0, 0, 1, 0, 1], 0.34) == pytest.approx(0.4415)
    probes = [{"known": False, "best_score": 0.3, "second_score": 0.1, "true_rank": None},
              {"known": True, "best_score": 0.7, "second_score": 0.2, "true_rank": 0},
              {"known": True, "best_score": 0.8, "second_score": 0.1, "true_rank": 0}]
    assert identify_threshold_within_target(probes, 0.0, margin=0.05) == pytest.approx(0.5)

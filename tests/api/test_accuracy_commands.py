"""`manage.py evaluate` and `manage.py calibrate` on the real dev recordings, and the policy they set."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from apitools import assert_error
from django.core.management import CommandError, call_command

from inference.quality_calibration import Calibration as QualityCalibration
from inference.quality_calibration import shipped_calibration_path
from speakers.models import AuditEvent, Calibration
from speakers.selectors import decision_policy
from speakers.tenancy import default_tenant

pytestmark = pytest.mark.django_db

SPEECH = Path(__file__).resolve().parents[1] / "fixtures" / "speech"
TRIALS, IDENTIFY = SPEECH / "trials.txt", SPEECH / "identify.txt"


def run(command: str, *args: str) -> str:
    out = io.StringIO()
    call_command(command, *args, "--no-progress", stdout=out)
    return out.getvalue()


# --- evaluate -------------------------------------------------------------------------------------

def test_evaluate_runs_end_to_end_on_the_dev_recordings_and_writes_its_reports(tmp_path, embedder):
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
        # the calibrated decision in force, per probe condition, beside each condition's own threshold
        everything = report["conditions"][scale]["all"]
        assert (everything["targets"], everything["impostors"]) == (30, 36)
        assert everything["far"] == 0.0 and everything["frr"] == 0.0 and everything["eer"] == 0.0
        assert sum(g["targets"] for name, g in report["conditions"][scale].items() if name != "all") == 30
    assert report["calibration"] == {"source": "shipped:" + shipped_calibration_path(
        embedder.model_version).name, "far_target": 0.01, "population": {}}  # nobody enrolled: no adaptation
    assert "conditions_adapted" not in report

    identification = json.loads((tmp_path / "identification.json").read_text())
    assert identification["speakers"] == 2 and identification["runs"] == 1
    for scale in ("cosine", "asnorm"):
        assert identification[scale]["top1_accuracy"] == 1.0 and identification[scale]["correct_match"] == 1.0
        assert identification[scale]["false_identification"] == 0.0
        assert (identification[scale]["known_probes"], identification[scale]["unknown_probes"]) == (3, 6)
        # re-levelled on the gallery as the service would be: one enrolled voice has no stranger to score against
        adapted = identification[f"{scale} adapted"]
        assert adapted["population_speakers"] == [0] and adapted["shift"] == [0.0]
        assert {k: adapted[k] for k in identification[scale]} == identification[scale]
    for name in ("verification", "verification_conditions"):
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "EER" in out and "calibrated decision (cosine)" in out and "top-1 100.00 %" in out


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

def test_calibrate_stores_a_site_calibration_and_from_then_on_it_decides(client, upload, enrolled):
    out = run("calibrate", "--trials", str(TRIALS), "--audio-root", str(SPEECH), "--note", "kiosk microphones")
    calibration = Calibration.objects.get()
    assert calibration.method == "quality" and calibration.note == "kiosk microphones"
    assert calibration.created_by == "cli:calibrate" and calibration.eer == 0.0
    assert calibration.counts["target"] == 30 and calibration.counts["impostor"] == 36
    assert set(calibration.figures) == {"cosine", "asnorm"}
    assert set(calibration.figures["cosine"]["before"]) == set(calibration.figures["cosine"]["after"])
    assert "before -> after" in out and f"calibration {calibration.pk}" in out
    assert AuditEvent.objects.filter(action="calibrate", detail__calibration_id=calibration.pk).exists()

    policy = client.get("/api/v1/policy").json()
    assert policy["calibration_source"] == calibration.source == f"calibration:{calibration.pk}"
    assert policy["site_calibration"]["id"] == calibration.pk
    assert policy["calibration"] == calibration.parameters
    assert policy["calibration"]["trained_on"]["base"].startswith("shipped:")

    verified = client.post("/api/v1/verify", {"speaker_id": enrolled["a"], "audio": upload("a_snt4")},
                           format="multipart").json()
    site = QualityCalibration.from_dict(calibration.parameters)
    in_force = decision_policy(model_version=calibration.model_version, tenant=default_tenant())
    assert in_force.calibration.to_dict() == site.to_dict()  # the site calibration is the one in force
    assert verified["accepted"] is True and verified["score"] >= verified["threshold"]
    assert AuditEvent.objects.get(action="verify").detail["policy"] == calibration.source


def test_a_dry_run_measures_but_stores_nothing():
    out = run("calibrate", "--trials", str(TRIALS), "--audio-root", str(SPEECH), "--dry-run")
    assert "Dry run: nothing stored." in out and "cosine:" in out
    assert not Calibration.objects.exists()


def test_calibration_refuses_a_handful_of_trials(tmp_path):
    few = tmp_path / "few.txt"
    few.write_text("1 a_snt1.wav a_snt2.wav\n0 a_snt1.wav b_snt1.wav\n1 b_snt1.wav b_snt2.wav\n")
    with pytest.raises(CommandError, match="calibration_refused"):
        run("calibrate", "--trials", str(few), "--audio-root", str(SPEECH))
    assert not Calibration.objects.exists()


def test_a_site_calibration_holds_only_for_its_model_version(client, embedder):
    shipped = client.get("/api/v1/policy").json()
    other = decision_policy(model_version=embedder.model_version, tenant=None).calibration.to_dict()
    Calibration.objects.create(tenant=default_tenant(), created_by="tests", model_version="older-model@00000000", method="quality",
                               parameters={**other, "model_version": "older-model@00000000"}, eer=0.05)
    assert client.get("/api/v1/policy").json()["calibration_source"] == shipped["calibration_source"]
    mine = Calibration.objects.create(tenant=default_tenant(), created_by="tests", model_version=embedder.model_version, method="quality",
                                      parameters=other, eer=0.05)
    assert client.get("/api/v1/policy").json()["calibration_source"] == mine.source


def test_revert_withdraws_the_newest_calibration(client):
    run("calibrate", "--trials", str(TRIALS), "--audio-root", str(SPEECH))
    out = run("calibrate", "--revert")
    assert "Withdrew calibration" in out and "calibration shipped:" in out
    assert not Calibration.objects.exists()
    assert client.get("/api/v1/policy").json()["site_calibration"] is None
    assert AuditEvent.objects.filter(action="calibration_revert").exists()
    with pytest.raises(CommandError, match="No site calibration"):
        run("calibrate", "--revert")


def test_the_policy_shows_the_shipped_calibration_and_the_quality_gates_and_needs_the_manage_scope(
        client, anon_client, make_key, embedder):
    policy = client.get("/api/v1/policy").json()
    assert policy["model_version"] == embedder.model_version
    assert policy["calibration_source"] == "shipped:" + shipped_calibration_path(embedder.model_version).name
    assert policy["far_target"] == 0.01 and policy["fir_target"] == 0.01
    assert set(policy["calibration"]["scales"]) == {"cosine", "asnorm"}
    assert policy["score_normalisation_default"] == "none" and policy["site_calibration"] is None
    assert set(policy["quality_gates"]) == {
        "enroll_min_speech_s", "enroll_target_speech_s", "probe_min_speech_s", "max_clipping_ratio",
        "min_speech_level_dbfs", "enroll_min_snr_db", "probe_min_snr_db", "enroll_consistency_threshold"}
    anon_client.credentials(HTTP_X_API_KEY=make_key("verify", "identify", "enroll"))
    assert_error(anon_client.get("/api/v1/policy"), 403, "insufficient_scope")


def test_calibrations_are_read_only_in_the_admin(admin_client, embedder):
    parameters = decision_policy(model_version=embedder.model_version, tenant=None).calibration.to_dict()
    calibration = Calibration.objects.create(tenant=default_tenant(), created_by="tests", model_version=embedder.model_version,
                                             method="quality", parameters=parameters, eer=0.0242,
                                             note="front desk")
    assert admin_client.get("/admin/speakers/calibration/").status_code == 200
    page = admin_client.get(f"/admin/speakers/calibration/{calibration.pk}/change/")
    assert page.status_code == 200 and "front desk" in page.content.decode()
    assert admin_client.get("/admin/speakers/calibration/add/").status_code == 403
    assert admin_client.post(f"/admin/speakers/calibration/{calibration.pk}/change/",
                             {"note": "changed"}).status_code == 403
    assert admin_client.post(f"/admin/speakers/calibration/{calibration.pk}/delete/",
                             {"post": "yes"}).status_code == 403
    calibration.refresh_from_db()
    assert calibration.note == "front desk"

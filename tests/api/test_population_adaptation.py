"""Population adaptation in the service: the tenant's own enrolled speakers re-level the calibration,
computed independently here from the stored (decrypted) vectors; a deployment with few speakers decides
exactly as shipped."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from apitools import lookalike_population, voiceprint_side

from inference import population as engine_population
from inference.quality_calibration import SideQuality, feature_vector, shipped_calibration
from speakers import crypto
from speakers.models import Enrollment, PopulationStatistics, Speaker
from speakers.selectors import current_model_version, decision_policy
from speakers.services import population as service_population


def _independent_shift(scale_name: str = "cosine") -> tuple[float, float, int]:
    """The statistics from first principles: every stored recording against every other speaker's voiceprint,
    the calibration's impostor model per pair (feature_vector), medians of per-speaker medians, the bounds."""
    base = shipped_calibration(current_model_version()).scale(scale_name)
    speakers = [s for s in Speaker.objects.all() if s.voiceprint_speech_s >= 6.0 - 1e-9]
    prints = {s.pk: voiceprint_side(s.pk) for s in speakers}
    excess: dict = {}
    for enrollment in Enrollment.objects.filter(speaker__in=speakers):
        vector = crypto.vector_decrypt(key_id=enrollment.key_id, ciphertext=enrollment.embedding_ciphertext,
                                       context=enrollment.crypto_context())
        probe = SideQuality(enrollment.speech_s, enrollment.snr_db, enrollment.bandwidth_hz)
        for owner, (voiceprint, quality) in prints.items():
            if owner == enrollment.speaker_id:
                continue
            x = feature_vector(quality, probe, base.features)
            mean, sd = float(x @ np.array(base.impostor_mean)), math.exp(float(x @ np.array(base.impostor_log_sd)))
            excess.setdefault(enrollment.speaker_id, []).append(
                (float(np.clip(vector @ voiceprint, -1, 1)) - mean, sd))
    measured = float(np.median([np.median([e for e, _ in v]) for v in excess.values()]))
    spread = float(np.median([np.median([abs(e - measured) / sd for e, sd in v]) for v in excess.values()])) / 0.6744897501960817
    x = feature_vector(*engine_population.REFERENCE_PAIR, base.features)
    bound = [b * math.exp(float(x @ np.array(base.impostor_log_sd))) for b in engine_population.SHIFT_BOUNDS_SD]
    sd_ref = math.exp(float(x @ np.array(base.impostor_log_sd)))
    shift = min(max(measured, bound[0]), bound[1])
    spread = min(max(spread, engine_population.SPREAD_BOUNDS[0]), engine_population.SPREAD_BOUNDS[1])
    return (0.0 if abs(shift) < engine_population.DEADBAND_SD * sd_ref else shift,
            1.0 if abs(spread - 1.0) < engine_population.SPREAD_DEADBAND else spread, len(excess))


def _verify(client, upload, speaker_id: str, name: str) -> dict:
    response = client.post("/api/v1/verify", {"speaker_id": speaker_id, "audio": upload(name)}, format="multipart")
    assert response.status_code == 200, response.json()
    return response.json()


def test_a_deployment_with_few_speakers_decides_exactly_as_shipped(client, upload, enrolled):
    speaker = Speaker.objects.get(pk=enrolled["a"])
    rows = PopulationStatistics.objects.filter(tenant=speaker.tenant)
    assert rows.exists() and all(row.speakers == 2 for row in rows)  # measured, for the operator to see ...
    policy = decision_policy(model_version=current_model_version(), tenant=speaker.tenant)
    assert policy.population == {}  # ... but two speakers are far below the minimum: nothing changes
    assert policy.calibration is shipped_calibration(current_model_version())
    health = client.get("/api/v1/health").json()["population"]
    assert health["min_speakers"] == 20 and health["scales"]["cosine"]["in_force"] is False


def test_the_tenants_population_re_levels_verify_as_computed_independently(client, upload, enrolled, create_speaker,
                                                                           enroll, settings):
    settings.VOICEPRINT_POPULATION_MIN_SPEAKERS = 5
    before = _verify(client, upload, enrolled["a"], "a_snt4")
    lookalike_population(create_speaker, 8)
    # the next change of the gallery measures the population (11 complete voiceprints, 2 measured before)
    third = create_speaker(external_id="real-c")
    assert enroll(third["id"], "a_snt5", "a_snt6").status_code == 201
    tenant = Speaker.objects.get(pk=enrolled["a"]).tenant
    row = PopulationStatistics.objects.get(tenant=tenant, scale="cosine")
    shift, spread, speakers = _independent_shift()
    assert row.speakers == speakers == row.enrolled_speakers
    assert row.shift == pytest.approx(shift, abs=1e-9) and row.spread == pytest.approx(spread, abs=1e-9)
    assert row.shift > 0.02  # strangers here score higher than the calibration expects: decisions get stricter

    after = _verify(client, upload, enrolled["a"], "a_snt4")
    base = shipped_calibration(current_model_version())
    adapted = dataclasses.replace(base.scale("cosine"),
                                  impostor_mean=(base.scale("cosine").impostor_mean[0] + shift,
                                                 *base.scale("cosine").impostor_mean[1:]),
                                  impostor_log_sd=(base.scale("cosine").impostor_log_sd[0] + math.log(spread),
                                                   *base.scale("cosine").impostor_log_sd[1:]))
    vector, quality = voiceprint_side(enrolled["a"])
    probe = _probe(upload)
    expected = dataclasses.replace(base, scales={"cosine": adapted}).verify(
        scale="cosine", score=float(vector @ probe.vector), enroll=quality,
        probe=SideQuality(probe.speech_s, probe.quality.snr_db, probe.quality.bandwidth_hz),
        far=settings.VOICEPRINT_FAR_TARGET)
    assert after["raw_score"] == before["raw_score"]
    assert after["threshold"] == pytest.approx(expected.threshold, abs=0.0051)  # as the API rounds it
    assert after["score"] == pytest.approx(expected.llr, abs=0.0051)
    assert after["accepted"] is expected.accepted is True  # the genuine speaker still passes
    assert after["score"] - after["threshold"] < before["score"] - before["threshold"]  # with less room
    health = client.get("/api/v1/health").json()["population"]["scales"]["cosine"]
    assert health["in_force"] is True and health["speakers"] == speakers
    assert health["reference_score_after"] > health["reference_score_before"]

    settings.VOICEPRINT_POPULATION_ADAPTATION = False  # switched off: the shipped calibration decides again
    assert _verify(client, upload, enrolled["a"], "a_snt4")["threshold"] == before["threshold"]


def _adapted_independently(shift: float, spread: float):
    """The shipped calibration with its cosine impostor model moved as the statistics say (written out here)."""
    base = shipped_calibration(current_model_version())
    cosine = base.scale("cosine")
    return dataclasses.replace(base, scales={**base.scales, "cosine": dataclasses.replace(
        cosine, impostor_mean=(cosine.impostor_mean[0] + shift, *cosine.impostor_mean[1:]),
        impostor_log_sd=(cosine.impostor_log_sd[0] + math.log(spread), *cosine.impostor_log_sd[1:]))})


def test_identify_decides_with_the_adapted_calibration(client, upload, enrolled, create_speaker, enroll, settings):
    settings.VOICEPRINT_POPULATION_MIN_SPEAKERS = 5
    lookalike_population(create_speaker, 8, seed=3)
    third = create_speaker(external_id="real-c")
    assert enroll(third["id"], "a_snt5", "a_snt6").status_code == 201
    shift, spread, _ = _independent_shift()
    assert shift > 0.02
    response = client.post("/api/v1/identify", {"audio": upload("a_snt4")}, format="multipart")
    assert response.status_code == 200, response.json()
    body = response.json()
    probe = _probe(upload)
    gallery = [s for s in Speaker.objects.all() if s.voiceprint_speech_s >= 6.0 - 1e-9]
    sides = [voiceprint_side(s.pk) for s in gallery]
    expected = _adapted_independently(shift, spread).identify(
        scale="cosine", scores=[float(v @ probe.vector) for v, _ in sides], enroll=[q for _, q in sides],
        probe=SideQuality(probe.speech_s, probe.quality.snr_db, probe.quality.bandwidth_hz),
        fir=settings.VOICEPRINT_FIR_TARGET, gallery=len(gallery))
    best = gallery[expected.best]
    assert body["threshold"] == pytest.approx(expected.threshold, abs=0.0051)
    assert (body["match"] or {}).get("speaker_id") == (str(best.pk) if expected.matched else None)
    shipped = shipped_calibration(current_model_version()).identify(
        scale="cosine", scores=[float(v @ probe.vector) for v, _ in sides], enroll=[q for _, q in sides],
        probe=SideQuality(probe.speech_s, probe.quality.snr_db, probe.quality.bandwidth_hz),
        fir=settings.VOICEPRINT_FIR_TARGET, gallery=len(gallery))
    # the same probe stands less far above this population's impostors than above the calibration's
    assert body["candidates"][0]["score"] == pytest.approx(expected.llrs[expected.best], abs=0.0051)
    assert expected.llrs[expected.best] < shipped.llrs[shipped.best] - 0.1


def _probe(upload):
    """a_snt4 embedded by the service's engine (its vector and measured quality)."""
    from speakers.runtime import inference_owner

    return inference_owner.embed_prepared(inference_owner.prepare(upload("a_snt4").read()))


def test_statistics_are_recomputed_only_when_the_gallery_moved_enough(enrolled, settings):
    tenant = Speaker.objects.get(pk=enrolled["a"]).tenant
    version = current_model_version()
    PopulationStatistics.objects.filter(tenant=tenant).update(enrolled_speakers=100)
    stale = service_population.population_stale
    assert not stale(tenant=tenant, model_version=version, enrolled=109)  # under 10% moved: kept
    assert stale(tenant=tenant, model_version=version, enrolled=110)
    assert stale(tenant=tenant, model_version=version, enrolled=90)
    PopulationStatistics.objects.filter(tenant=tenant).update(base="calibration:999")  # another calibration
    assert stale(tenant=tenant, model_version=version, enrolled=100)
    PopulationStatistics.objects.filter(tenant=tenant).delete()
    assert stale(tenant=tenant, model_version=version, enrolled=2)
    assert not stale(tenant=tenant, model_version=version, enrolled=1)


def test_a_failed_refresh_never_fails_the_enrollment(client, upload, create_speaker, enroll, monkeypatch):
    def broken(**_):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(service_population, "population_refresh", broken)
    speaker = create_speaker(external_id="x")
    assert enroll(speaker["id"], "a_snt1", "a_snt2", "a_snt3").status_code == 201


def test_the_command_and_the_admin_show_and_recompute_the_statistics(enrolled, admin_client):
    from io import StringIO

    from django.core.management import call_command

    from speakers.models import AuditAction, AuditEvent

    PopulationStatistics.objects.all().delete()
    out = StringIO()
    call_command("population", stdout=out)
    assert "not measured yet" in out.getvalue()
    call_command("population", "--refresh", stdout=out)
    assert "cosine: not in force; 2 speakers" in out.getvalue()
    assert AuditEvent.objects.filter(action=AuditAction.POPULATION_REFRESH).count() == 1
    page = admin_client.get("/admin/speakers/populationstatistics/")
    assert page.status_code == 200 and b"cosine" in page.content and b"from 20 enrolled speakers" in page.content
    rows = list(PopulationStatistics.objects.values_list("pk", flat=True))
    response = admin_client.post("/admin/speakers/populationstatistics/",
                                 {"action": "recompute", "_selected_action": rows})
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action=AuditAction.POPULATION_REFRESH).count() == 2

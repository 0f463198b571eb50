"""tools.identification_lead: the lead over the runner-up as a second way to an identification match (a measurement)."""
from __future__ import annotations

import numpy as np
import pytest

from inference.evaluation import calibrated
from inference.quality_calibration import LEAD_MIN_GALLERY, SHIPPED_DIR, Calibration
from tools import identification_lead as lead


def _run(*, gallery=40, by_threshold, lead_t, klass, known, condition="c"):
    n = len(by_threshold)
    known = np.asarray(known, dtype=bool)
    return calibrated.LeadRun(condition=condition, gallery=gallery, by_threshold=np.asarray(by_threshold, dtype=bool),
                              best=np.zeros(n, dtype=int), lead=np.asarray(lead_t, dtype=float), klass=np.asarray(klass),
                              known=known, truth=np.where(known, 0, -1))


def test_leads_follow_the_llr_ranking_and_measure_t():
    t = np.array([[3.0, 1.0, 2.5], [0.0, 0.5, 4.0]])
    llr = np.array([[1.0, 9.0, 0.0], [0.0, 1.0, 2.0]])  # the first probe's best by llr is column 1
    best, gaps = calibrated.best_and_lead(t, llr)
    np.testing.assert_array_equal(best, [1, 2])
    np.testing.assert_allclose(gaps, [1.0 - 3.0, 4.0 - 0.5])
    one_best, one_gap = calibrated.best_and_lead(t[:, :1], llr[:, :1])
    np.testing.assert_array_equal(one_best, [0, 0])
    assert np.isnan(one_gap).all()


def test_the_gap_is_the_smallest_that_keeps_the_train_unknowns_at_the_target():
    rng = np.random.default_rng(0)
    unknown_leads = rng.uniform(0, 1, 400)
    run = _run(by_threshold=np.zeros(400), lead_t=unknown_leads, klass=["short"] * 400, known=np.zeros(400))
    gaps = calibrated.fit_identify_leads([run], fir=0.01)
    assert set(gaps) == {"short"}  # no other condition had unknown probes
    assert np.mean(unknown_leads >= gaps["short"]) <= 0.01
    next_lower = np.sort(unknown_leads)[np.searchsorted(np.sort(unknown_leads), gaps["short"]) - 1]
    assert np.mean(unknown_leads >= next_lower) > 0.01  # the smallest such gap
    # what the shipped rule already matches is spent first: with 1% of them matched, the gap adds nothing
    shipped = np.zeros(400)
    shipped[:4] = 1
    spent = calibrated.fit_identify_leads([_run(by_threshold=shipped, lead_t=unknown_leads, klass=["short"] * 400, known=np.zeros(400))],
                          fir=0.01)
    assert spent["short"] > unknown_leads.max()


def test_small_galleries_and_thin_conditions_keep_the_shipped_rule():
    small = _run(gallery=LEAD_MIN_GALLERY - 1, by_threshold=[0, 0], lead_t=[9.0, 9.0], klass=["clean"] * 2, known=[1, 0])
    np.testing.assert_array_equal(lead.with_gaps(small, {"clean": 0.1}), [False, False])
    thin = _run(by_threshold=np.zeros(calibrated.MIN_LEAD_PROBES - 1), lead_t=np.ones(calibrated.MIN_LEAD_PROBES - 1),
                klass=["noisy"] * (calibrated.MIN_LEAD_PROBES - 1), known=np.zeros(calibrated.MIN_LEAD_PROBES - 1))
    assert calibrated.fit_identify_leads([thin], fir=0.5) == {}


def test_a_degraded_probe_ranked_far_ahead_is_matched_and_counted():
    run = _run(by_threshold=[1, 0, 0, 0], lead_t=[0.2, 3.0, 0.5, 3.0], klass=["short", "short", "short", "clean"],
               known=[1, 1, 0, 0])
    matched = lead.with_gaps(run, {"short": 2.0})
    np.testing.assert_array_equal(matched, [True, True, False, False])  # the clean unknown has no gap: not matched
    figures = lead.rates([run], [matched])
    assert figures["correct_match"] == 1.0 and figures["false_identification"] == 0.0
    assert figures["within_5_points"] == 1 and figures["runs"] == 1


@pytest.mark.parametrize("path", sorted(SHIPPED_DIR.glob("*.json")), ids=lambda p: p.stem[:30])
def test_lowered_moves_every_identification_offset_of_the_scale_only(path):
    calibration = Calibration.load(path)
    cosine = calibration.scale("cosine")
    moved = lead.lowered(calibration, 0.25).scale("cosine")
    assert moved.identify_offset == pytest.approx(cosine.identify_offset - 0.25)
    assert [o for _, o in moved.identify_offsets] == pytest.approx([o - 0.25 for _, o in cosine.identify_offsets])
    assert moved.t_at_far == cosine.t_at_far and moved.llr == cosine.llr


def test_the_floor_keeps_the_gap_from_matching_a_best_candidate_under_it():
    run = _run(by_threshold=[0, 0, 0], lead_t=[3.0, 3.0, np.nan], klass=["short"] * 3, known=[1, 0, 1])
    run = calibrated.LeadRun(**{**run.__dict__, "best_t": np.array([4.0, 1.0, 9.0])})
    np.testing.assert_array_equal(lead.with_gaps(run, {"short": 2.0}), [True, True, False])
    np.testing.assert_array_equal(lead.with_gaps(run, {"short": 2.0}, floor=3.6), [True, False, False])
    with pytest.raises(ValueError):  # a run without the best's t cannot be floored
        lead.with_gaps(calibrated.LeadRun(**{**run.__dict__, "best_t": None}), {"short": 2.0}, floor=3.6)
    # fitted over the floor, an unknown probe under it does not count against the gap
    unknown = _run(by_threshold=np.zeros(100), lead_t=np.full(100, 5.0), klass=["short"] * 100, known=np.zeros(100))
    unknown = calibrated.LeadRun(**{**unknown.__dict__, "best_t": np.zeros(100)})
    assert calibrated.fit_identify_leads([unknown], fir=0.01)["short"] > 5.0
    assert calibrated.fit_identify_leads([unknown], fir=0.01, floor=3.6) == {}  # none reaches the floor: nothing to fit a gap on
    unknown = calibrated.LeadRun(**{**unknown.__dict__, "best_t": np.where(np.arange(100) < 50, 4.0, 0.0)})
    assert calibrated.fit_identify_leads([unknown], fir=0.01, floor=3.6)["short"] > 5.0

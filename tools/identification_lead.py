"""Identification that keeps the ranking: would a lead over the runner-up match the degraded probes the threshold loses?

    python -m tools.identification_lead --lists <calibration corpus> --audio-root <degraded root> \\
        --cache var/cache/calibration-embeddings.npz [--markdown docs/identification-lead.md] [--json X]

Reads the embeddings ``tools.calibration_report`` cached (run it first). The measurement behind the service's lead
rule: the shipped ECAPA calibration carries the floor variant's gaps (fitted by ``tools.calibration_report`` with
:func:`inference.evaluation.calibrated.fit_identify_leads`); here the rule is taken off it and refitted, so the
threshold alone, both variants and the lowered offsets are compared on the same runs.

The service's open-set rule (:meth:`inference.quality_calibration.Calibration.identify`) matches the best
candidate when its score passes the threshold for the false-identification target among every voice searched
(about 4.6 standard deviations above 71 impostors) and leads the runner-up by the calibrated margin. A degraded
genuine probe (1 s of speech, a telephone band, noise) often still ranks its speaker first by far, yet falls
short of that threshold: the correct matches then trail top-1 by up to 50 points. Here a second way to a match
is fitted on the train speakers' identification runs: **the best leads the runner-up by at least a gap** (in
``t``, standard deviations of the calibration's impostors), per identification condition (telephone, short,
noisy, clean), only in galleries of :data:`LEAD_MIN_GALLERY` voices or more (in a small one the runner-up says little
about the impostors). Each condition's gap is the smallest whose union with the shipped rule keeps the train
runs' unknown probes, pooled, at or under ``--fir-train``. Reported on the held-out runs per condition (with
``--fit-on heldout`` the other way round: fitted on the held-out speakers, reported on the train ones): top-1,
the shipped rule, the rule with the gap and the same with a floor (the best must also pass verification's
threshold at ``--floor-far``: a match among many is at least a confident match of one); and for each, the shipped
rule with its identification offsets lowered as far as its false identification stays at or under that (is the
gain more than spending the target?).
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Mapping, Sequence

import numpy as np

from inference.evaluation import calibrated
from inference.quality_calibration import (
    COSINE,
    LEAD_MIN_GALLERY,
    SCALES,
    Calibration,
    ScaleCalibration,
    shipped_calibration,
)
from tools.calibration_report import (
    SHIPPABLE,
    corpus_arguments,
    engine_and_cache,
    identification_runs,
    write_report,
)

logger = logging.getLogger("identification_lead")

LOWERED = tuple(round(0.05 * k, 2) for k in range(0, 41))  # offsets lowered by these (t) for the comparison


def with_gaps(run: calibrated.LeadRun, gaps: Mapping[str, float], floor: float = -np.inf) -> np.ndarray:
    """Which probes of ``run`` the shipped rule or the gap (over ``floor``) matches."""
    if run.gallery < LEAD_MIN_GALLERY:
        return run.by_threshold.copy()
    needed = np.array([gaps.get(str(c), np.inf) for c in run.klass])
    return run.by_threshold | (run.gap_lead(floor) >= needed)


def rates(runs: Sequence[calibrated.LeadRun], matched: Sequence[np.ndarray]) -> dict:
    """Pooled correct-match / false-identification rates, and the runs whose correct matches are within 5 points of
    top-1."""
    known = np.concatenate([r.known for r in runs])
    truth = np.concatenate([r.truth for r in runs])
    best = np.concatenate([r.best for r in runs])
    pooled = calibrated.match_rates(np.concatenate(matched), best, known, truth)
    per_run = [calibrated.match_rates(m, r.best, r.known, r.truth) for r, m in zip(runs, matched)]
    within = sum(e["top1"] - e["correct_match"] <= 0.05 + 1e-12 for e in per_run if e["top1"] is not None)
    return {**pooled, "within_5_points": int(within), "runs": len(runs)}


def collect(calibration: Calibration, raw_runs: Mapping, *, scale: str = COSINE, fir: float = 0.01,
            asnorm=None) -> list[calibrated.LeadRun]:
    """The runs of ``tools.calibration_report.identification_runs`` decided by ``calibration``'s threshold rule (its
    lead rule removed: what the gaps are measured against) on ``scale`` (``asnorm`` needs the cohort)."""
    return calibrated.lead_runs(calibrated.with_leads(calibration, {}), raw_runs, scale=scale, fir=fir, asnorm=asnorm)


def lowered(calibration: Calibration, by: float, scale: str = COSINE) -> Calibration:
    """``calibration`` with every identification offset of ``scale`` lowered by ``by`` (t)."""
    cal = calibration.scale(scale)
    cal = dataclasses.replace(cal, identify_offset=cal.identify_offset - by,
                              identify_offsets=tuple((c, o - by) for c, o in cal.identify_offsets))
    return dataclasses.replace(calibration, scales={**calibration.scales, scale: cal})


VARIANTS = ("with_gaps", "with_gaps_over_floor")
SPLITS = ("train", "heldout")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    corpus_arguments(parser)
    parser.add_argument("--fir", type=float, default=0.01, help="the service's false-identification target")
    parser.add_argument("--fir-train", type=float,
                        help="pooled false identification the gaps may reach on the runs they are fitted on (default: "
                             "the share of --fir the calibration's fit allows, calibrated.LEAD_FIR_SHARE)")
    parser.add_argument("--floor-far", type=float, default=ScaleCalibration.identify_lead_floor_far,
                        help="the second variant's floor: the best must pass verification's threshold at this FAR "
                             "(default: the calibration's)")
    parser.add_argument("--scale", choices=SCALES, default=COSINE, help="the score scale measured")
    parser.add_argument("--fit-on", choices=SPLITS, default="train",
                        help="fit the gaps on this split's runs (shippable sources) and report on the other's (every "
                             "source): heldout confirms on other speakers what train fitted")
    args = parser.parse_args(argv)
    if args.fir_train is None:
        args.fir_train = calibrated.LEAD_FIR_SHARE * args.fir
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    embedder, asnorm, vectors, qualities = engine_and_cache(args, parser)
    calibration = shipped_calibration(embedder.model_version)
    report_on = SPLITS[1 - SPLITS.index(args.fit_on)]
    on_scale = {"scale": args.scale, "fir": args.fir, "asnorm": asnorm}
    train = collect(calibration, identification_runs(args.lists, args.fit_on, vectors, qualities, SHIPPABLE),
                    **on_scale)
    heldout_raw = identification_runs(args.lists, report_on, vectors, qualities)
    heldout = collect(calibration, heldout_raw, **on_scale)
    floors = {"with_gaps": -np.inf, "with_gaps_over_floor": calibration.scale(args.scale).verify_t(args.floor_far)}
    figures: dict = {"model_version": embedder.model_version, "scale": args.scale, "fitted_on": args.fit_on,
                     "reported_on": report_on,
                     "fir_train": args.fir_train, "floor_far": args.floor_far,
                     "floor_t": floors["with_gaps_over_floor"], "shipped": rates(heldout, [r.by_threshold for r in heldout]),
                     "per_condition": {r.condition: {"gallery": r.gallery, "shipped": calibrated.match_rates(
                         r.by_threshold, r.best, r.known, r.truth)} for r in heldout}}
    lowered_rates: dict[float, dict] = {}
    for variant, floor in floors.items():
        gaps = calibrated.fit_identify_leads(train, args.fir_train, floor)
        matched = [with_gaps(r, gaps, floor) for r in heldout]
        figures[variant] = {"gaps": gaps, **rates(heldout, matched)}
        for r, m in zip(heldout, matched):
            figures["per_condition"][r.condition][variant] = calibrated.match_rates(m, r.best, r.known, r.truth)
        for by in LOWERED:  # the shipped rule spending as much of the target as the gaps do, and no more
            if by not in lowered_rates:  # both variants walk the same steps: each decided once
                runs = collect(lowered(calibration, by, args.scale), heldout_raw, **on_scale)
                lowered_rates[by] = {"by": by, **rates(runs, [r.by_threshold for r in runs])}
            entry = lowered_rates[by]
            if entry["false_identification"] > figures[variant]["false_identification"] + 1e-12:
                break
            figures[variant]["lowered_offsets"] = entry
    write_report(figures, markdown(figures), args)
    return 0


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def markdown(figures: dict) -> str:
    floor = (f"threshold or the gap, the best over verification's threshold at FAR {100 * figures['floor_far']:g}% "
             f"(t {figures['floor_t']:.2f})")
    names = {"with_gaps": "threshold or the gap", "with_gaps_over_floor": floor}
    lines = [f"# Identification with a lead over the runner-up ({figures['model_version']}, {figures['scale']})", "",
             "Generated by `python -m tools.identification_lead`: the threshold alone (the shipped calibration "
             "without its lead rule) against the lead rule, refitted here; the service ships the second variant for "
             "ECAPA (docs/accuracy.md 0.8). Gaps (t) "
             f"fitted on the {figures['fitted_on']} runs at {100 * figures['fir_train']:.2f}% pooled false identification "
             f"(shippable sources), reported on the {figures['reported_on']} runs (every source): "
             + "; ".join(f"{names[v]}: " + ", ".join(f"{c} {g:.2f}" for c, g in figures[v]["gaps"].items())
                         for v in VARIANTS) + ".", "",
             "| rule | correct match | false identification | runs within 5 points of top-1 |", "|---|---|---|---|"]
    rows = [("threshold alone", figures["shipped"])]
    for v in VARIANTS:
        low = figures[v]["lowered_offsets"]
        rows += [(names[v], figures[v]), (f"threshold alone, offsets lowered by {low['by']:.2f}", low)]
    for name, entry in rows:
        lines.append(f"| {name} | {_pct(entry['correct_match'])} | {_pct(entry['false_identification'])} | "
                     f"{entry['within_5_points']} of {entry['runs']} |")
    lines += ["", f"Per {figures['reported_on']} condition: top-1 / correct match / false identification, %", "",
              "| condition | gallery | top-1 | threshold alone | threshold or the gap | the same over the floor |",
              "|---|---|---|---|---|---|"]
    for condition, entry in figures["per_condition"].items():
        cells = [f"{_pct(entry[k]['correct_match'])} / {_pct(entry[k]['false_identification'])}"
                 for k in ("shipped", *VARIANTS)]
        lines.append(f"| {condition} | {entry['gallery']} | {_pct(entry['shipped']['top1'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())

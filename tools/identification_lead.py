"""Identification that keeps the ranking: would a lead over the runner-up match the degraded probes the threshold loses?

    python -m tools.identification_lead --lists <calibration corpus> --audio-root <degraded root> \\
        --cache var/cache/calibration-embeddings.npz [--markdown docs/identification-lead.md] [--json X]

Reads the embeddings ``tools.calibration_report`` cached (run it first). A measurement, not what the service does.

The service's open-set rule (:meth:`inference.quality_calibration.Calibration.identify`) matches the best
candidate when its score passes the threshold for the false-identification target among every voice searched
(about 4.6 standard deviations above 71 impostors) and leads the runner-up by the calibrated margin. A degraded
genuine probe (1 s of speech, a telephone band, noise) often still ranks its speaker first by far, yet falls
short of that threshold: the correct matches then trail top-1 by up to 50 points. Here a second way to a match
is fitted on the train speakers' identification runs: **the best leads the runner-up by at least a gap** (in
``t``, standard deviations of the calibration's impostors), per identification condition (telephone, short,
noisy, clean), only in galleries of :data:`MIN_GALLERY` voices or more (in a small one the runner-up says little
about the impostors). Each condition's gap is the smallest whose union with the shipped rule keeps the train
runs' unknown probes, pooled, at or under ``--fir-train``. Reported on the held-out runs per condition: top-1,
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
from dataclasses import dataclass

import numpy as np

from inference.evaluation import calibrated
from inference.quality_calibration import IDENTIFY_CONDITIONS, Calibration, identify_class, shipped_calibration
from tools.calibration_report import (
    SHIPPABLE,
    corpus_arguments,
    engine_and_cache,
    identification_runs,
    write_report,
)

logger = logging.getLogger("identification_lead")

MIN_GALLERY = 12  # galleries smaller than this are decided by the shipped rule alone
MIN_UNKNOWN = 20  # unknown train probes of a condition its gap needs (calibrated.MIN_CONDITION_PROBES)
LOWERED = tuple(round(0.05 * k, 2) for k in range(0, 41))  # offsets lowered by these (t) for the comparison


@dataclass(frozen=True)
class Run:
    """One identification run as the comparison reads it, per probe: whether the shipped rule matched, the gallery
    index of its best candidate (by llr, as the service ranks), its lead over the runner-up in ``t`` (NaN with one
    voice), its identification condition, whether its speaker is enrolled and that speaker's index (-1: unknown)."""

    condition: str
    gallery: int
    shipped: np.ndarray
    best: np.ndarray
    lead: np.ndarray
    klass: np.ndarray
    known: np.ndarray
    truth: np.ndarray
    best_t: np.ndarray | None = None  # the best candidate's t (:func:`collect` sets it); a floor needs it

    def gap_lead(self, floor: float) -> np.ndarray:
        """The leads the gap may read: -inf where the best's t is under ``floor`` (or with one voice)."""
        lead = np.nan_to_num(self.lead, nan=-np.inf)
        if floor == -np.inf:
            return lead
        if self.best_t is None:
            raise ValueError("a floor needs the best candidates' t (best_t)")
        return np.where(self.best_t >= floor, lead, -np.inf)


def leads(t: np.ndarray, llr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(P, K)`` scores of probes against a gallery: each probe's best candidate by llr and its lead in ``t`` over
    the runner-up by llr (NaN with a one-voice gallery)."""
    order = np.argsort(-llr, axis=1, kind="stable")
    rows = np.arange(len(t))
    if t.shape[1] < 2:
        return order[:, 0], np.full(len(t), np.nan)
    return order[:, 0], t[rows, order[:, 0]] - t[rows, order[:, 1]]


def fit_gaps(runs: Sequence[Run], fir: float, floor: float = -np.inf) -> dict[str, float]:
    """Per identification condition, the smallest lead whose union with the shipped rule keeps the pooled unknown
    probes of the runs (galleries of :data:`MIN_GALLERY` or more) matched at or under ``fir``; conditions with fewer
    than :data:`MIN_UNKNOWN` unknown probes get none (the shipped rule alone). With ``floor`` the gap matches only
    a best candidate whose t reaches it, and a condition none of whose unknown probes reaches the floor gets none
    (nothing to fit it on)."""
    gaps = {}
    for condition in IDENTIFY_CONDITIONS:
        lead, shipped = [], []
        for run in runs:
            if run.gallery < MIN_GALLERY:
                continue
            mine = ~run.known & (run.klass == condition)
            lead.append(run.gap_lead(floor)[mine])
            shipped.append(run.shipped[mine])
        lead_all = np.concatenate(lead) if lead else np.zeros(0)
        shipped_all = np.concatenate(shipped).astype(bool) if shipped else np.zeros(0, dtype=bool)
        finite = np.sort(lead_all[np.isfinite(lead_all)])[::-1]
        if len(lead_all) < MIN_UNKNOWN or not len(finite):  # no unknown probe the gap could read: no evidence
            continue
        gap = float(finite[0]) + 1e-9  # nothing more than the shipped rule
        for candidate in finite:
            if np.mean(shipped_all | (lead_all >= candidate)) > fir:
                break
            gap = float(candidate)
        gaps[condition] = gap
    return gaps


def with_gaps(run: Run, gaps: Mapping[str, float], floor: float = -np.inf) -> np.ndarray:
    """Which probes of ``run`` the shipped rule or the gap (over ``floor``) matches."""
    if run.gallery < MIN_GALLERY:
        return run.shipped.copy()
    needed = np.array([gaps.get(str(c), np.inf) for c in run.klass])
    return run.shipped | (run.gap_lead(floor) >= needed)


def rates(runs: Sequence[Run], matched: Sequence[np.ndarray]) -> dict:
    """Pooled correct-match / false-identification rates, and the runs whose correct matches are within 5 points of
    top-1."""
    known = np.concatenate([r.known for r in runs])
    truth = np.concatenate([r.truth for r in runs])
    best = np.concatenate([r.best for r in runs])
    pooled = calibrated.match_rates(np.concatenate(matched), best, known, truth)
    per_run = [calibrated.match_rates(m, r.best, r.known, r.truth) for r, m in zip(runs, matched)]
    within = sum(e["top1"] - e["correct_match"] <= 0.05 + 1e-12 for e in per_run if e["top1"] is not None)
    return {**pooled, "within_5_points": int(within), "runs": len(runs)}


def collect(calibration: Calibration, raw_runs: Mapping, *, scale: str = "cosine", fir: float = 0.01) -> list[Run]:
    """The runs of ``tools.calibration_report.identification_runs`` decided by ``calibration``'s rule."""
    out = []
    for condition, (gallery, names, probes, speakers) in raw_runs.items():
        t, llr = calibrated.identification_scores(calibration, scale, gallery, probes, None)
        verdicts = calibrated.identification_verdicts(calibration, scale, gallery, probes, None, fir)
        best, lead = leads(t, llr)
        out.append(Run(condition=condition, gallery=len(gallery), shipped=np.array([v.matched for v in verdicts]),
                       best=best, lead=lead, best_t=t[np.arange(len(t)), best],
                       klass=np.array([identify_class(gallery[b].quality, p.quality) for b, p in zip(best, probes)]),
                       known=np.array([s in names for s in speakers]),
                       truth=np.array([names.index(s) if s in names else -1 for s in speakers])))
    return out


def lowered(calibration: Calibration, by: float, scale: str = "cosine") -> Calibration:
    """``calibration`` with every identification offset of ``scale`` lowered by ``by`` (t)."""
    cal = calibration.scale(scale)
    cal = dataclasses.replace(cal, identify_offset=cal.identify_offset - by,
                              identify_offsets=tuple((c, o - by) for c, o in cal.identify_offsets))
    return dataclasses.replace(calibration, scales={**calibration.scales, scale: cal})


VARIANTS = ("with_gaps", "with_gaps_over_floor")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    corpus_arguments(parser)
    parser.add_argument("--fir", type=float, default=0.01, help="the service's false-identification target")
    parser.add_argument("--fir-train", type=float, default=0.005,
                        help="pooled false identification the gaps may reach on the train runs")
    parser.add_argument("--floor-far", type=float, default=0.001,
                        help="the second variant's floor: the best must pass verification's threshold at this FAR")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    embedder, _, vectors, qualities = engine_and_cache(args, parser)
    calibration = shipped_calibration(embedder.model_version)
    train = collect(calibration, identification_runs(args.lists, "train", vectors, qualities, SHIPPABLE), fir=args.fir)
    heldout_raw = identification_runs(args.lists, "heldout", vectors, qualities)
    heldout = collect(calibration, heldout_raw, fir=args.fir)
    floors = {"with_gaps": -np.inf, "with_gaps_over_floor": calibration.scale("cosine").verify_t(args.floor_far)}
    figures: dict = {"model_version": embedder.model_version, "fir_train": args.fir_train, "floor_far": args.floor_far,
                     "floor_t": floors["with_gaps_over_floor"], "shipped": rates(heldout, [r.shipped for r in heldout]),
                     "per_condition": {r.condition: {"gallery": r.gallery, "shipped": calibrated.match_rates(
                         r.shipped, r.best, r.known, r.truth)} for r in heldout}}
    lowered_rates: dict[float, dict] = {}
    for variant, floor in floors.items():
        gaps = fit_gaps(train, args.fir_train, floor)
        matched = [with_gaps(r, gaps, floor) for r in heldout]
        figures[variant] = {"gaps": gaps, **rates(heldout, matched)}
        for r, m in zip(heldout, matched):
            figures["per_condition"][r.condition][variant] = calibrated.match_rates(m, r.best, r.known, r.truth)
        for by in LOWERED:  # the shipped rule spending as much of the target as the gaps do, and no more
            if by not in lowered_rates:  # both variants walk the same steps: each decided once
                runs = collect(lowered(calibration, by), heldout_raw, fir=args.fir)
                lowered_rates[by] = {"by": by, **rates(runs, [r.shipped for r in runs])}
            entry = lowered_rates[by]
            if entry["false_identification"] > figures[variant]["false_identification"] + 1e-12:
                break
            figures[variant]["lowered_offsets"] = entry
    write_report(figures, markdown(figures), args)
    return 0


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def markdown(figures: dict) -> str:
    floor = (f"shipped or the gap, the best over verification's threshold at FAR {100 * figures['floor_far']:g}% "
             f"(t {figures['floor_t']:.2f})")
    names = {"with_gaps": "shipped or the gap", "with_gaps_over_floor": floor}
    lines = [f"# Identification with a lead over the runner-up ({figures['model_version']})", "",
             "Generated by `python -m tools.identification_lead` (a measurement, not the service's rule). Gaps (t) "
             f"fitted on the train runs at {100 * figures['fir_train']:.2f}% pooled false identification: "
             + "; ".join(f"{names[v]}: " + ", ".join(f"{c} {g:.2f}" for c, g in figures[v]["gaps"].items())
                         for v in VARIANTS) + ".", "",
             "| rule | correct match | false identification | runs within 5 points of top-1 |", "|---|---|---|---|"]
    rows = [("shipped", figures["shipped"])]
    for v in VARIANTS:
        low = figures[v]["lowered_offsets"]
        rows += [(names[v], figures[v]), (f"shipped, offsets lowered by {low['by']:.2f}", low)]
    for name, entry in rows:
        lines.append(f"| {name} | {_pct(entry['correct_match'])} | {_pct(entry['false_identification'])} | "
                     f"{entry['within_5_points']} of {entry['runs']} |")
    lines += ["", "Per held-out condition: top-1 / correct match / false identification, %", "",
              "| condition | gallery | top-1 | shipped | shipped or the gap | the same over the floor |",
              "|---|---|---|---|---|---|"]
    for condition, entry in figures["per_condition"].items():
        cells = [f"{_pct(entry[k]['correct_match'])} / {_pct(entry[k]['false_identification'])}"
                 for k in ("shipped", *VARIANTS)]
        lines.append(f"| {condition} | {entry['gallery']} | {_pct(entry['shipped']['top1'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())

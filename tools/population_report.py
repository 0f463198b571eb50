"""Population adaptation measured on groups held out of the fit: FAR / FRR with and without it.

    python -m tools.population_report --lists <calibration corpus> --audio-root <degraded root> \\
        --cache var/cache/calibration-embeddings.npz [--markdown docs/population-adaptation.md] [--json X]

Reads the embeddings ``tools.calibration_report`` cached (run it first, e.g. ``make calibration-report``).
For each group of conditions in turn (other language, emotional, telephone, codecs, and the groups the
shipped calibration already holds on: short probes, noise, reverberation), the calibration is fitted as
the shipped one is (train speakers of the shippable sources) **without that group**; the group's
*train* speakers are then the deployment's population, measured the way the service measures it
(each enrollment recording against the other speakers' voiceprints, no labels;
``inference.population``), and FAR / FRR are measured on the group's *held-out* speakers, with the
fitted calibration alone and re-levelled on the population. A third column fits on everything (the
shipped fit) and adapts too: nothing may get worse where the calibration already held.

``--min-speakers`` draws populations of 5-80 speakers (20 seeded draws each) to show how many
enrolled speakers the statistics need before they may decide.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from inference import population as engine_population
from inference.asnorm import ASNorm
from inference.evaluation import calibrated
from inference.evaluation.lists import read_enrollment_sets, read_set_trials
from inference.evaluation.metrics import compute_eer, compute_min_dcf
from inference.population import adapted_calibration, measure_population
from tools.calibration_report import (
    SHIPPABLE,
    _quality,
    corpus_arguments,
    engine_and_cache,
    trial_pairs,
    write_report,
)

logger = logging.getLogger("population_report")

# Groups of conditions held out of the fit in turn; ``sources`` also leaves those speakers out of it.
GROUPS: dict[str, dict] = {
    "other language": {"prefixes": ("other_language",), "sources": ("aishell",)},
    "emotional": {"prefixes": ("emotional",), "sources": ()},
    "telephone": {"prefixes": ("narrowband_",), "sources": ()},
    "codecs": {"prefixes": ("codec_",), "sources": ()},
    "short probes": {"prefixes": ("short_",), "sources": ()},
    "noise": {"prefixes": ("noise_",), "sources": ()},
    "reverberation": {"prefixes": ("reverb_",), "sources": ()},
}


def _in_group(condition: str, group: dict) -> bool:
    return condition.startswith(group["prefixes"])


def population_of(lists: Path, condition: str, vectors: dict, qualities: dict,
                  speakers: list[str] | None = None, probes: bool = False) -> engine_population.Population | None:
    """The train speakers of ``condition`` as a deployment's population: their voiceprints (the enrollment
    sets) and their enrollment recordings, as the service holds them; with ``probes`` also the condition's
    probes of those speakers (what a deployment would add by keeping the scores of the probes it hears)."""
    sets = read_enrollment_sets(lists / "enrollments" / "train" / f"{condition}.txt")
    owners, voiceprints, v_quality, rec_owner, recordings, r_quality = [], [], [], [], [], []
    for speaker, files in sorted(sets.items()):
        if speakers is not None and speaker not in speakers:
            continue
        usable = [f for f in files if f in vectors]
        if not usable:
            continue
        side = calibrated.enrollment_side([vectors[f] for f in usable], [_quality(qualities[f]) for f in usable])
        owners.append(speaker)
        voiceprints.append(side.vector)
        v_quality.append(side.quality)
        for f in usable:
            rec_owner.append(speaker)
            recordings.append(vectors[f])
            r_quality.append(_quality(qualities[f]))
    if probes:
        for trial in read_set_trials(lists / "trials_dense" / "train" / f"{condition}.txt"):
            speaker = Path(trial.probe).parent.name
            if speaker in owners and trial.probe in vectors and trial.label == 1:
                rec_owner.append(speaker)
                recordings.append(vectors[trial.probe])
                r_quality.append(_quality(qualities[trial.probe]))
    if len(owners) < 2:
        return None
    return engine_population.Population(
        voiceprints=np.stack(voiceprints), voiceprint_quality=v_quality, voiceprint_owner=owners,
        recordings=np.stack(recordings), recording_quality=r_quality, recording_owner=rec_owner)


def _shift(calibration, scale: str, inputs: engine_population.Population | None,
           asnorm: ASNorm, spread_quantile: float | None = None) -> engine_population.PopulationShift:
    """The population's shift against one scale (none without a population of two speakers or more)."""
    if not inputs:
        return engine_population.IDENTITY
    return measure_population(calibration, scale, inputs, asnorm=asnorm, spread_quantile=spread_quantile)


def _fit(train_pairs, asnorm, model_version):
    return calibrated.fit(calibrated.score_trials(train_pairs, asnorm), model_version=model_version)


def _entry(table, calibration, scale, far) -> dict:
    return calibrated.condition_report(table, calibrated.calibrated_decisions(calibration, scale, far), far=far)["all"]


def discrimination(table) -> dict:
    """EER / minDCF of the raw cosine on the same trials (the calibrated ``t`` must not rank worse)."""
    y = table.labels.astype(bool)
    return {"eer": compute_eer(table.cosine, y)[0], "min_dcf_0.01": compute_min_dcf(table.cosine, y, 0.01)[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    corpus_arguments(parser)
    parser.add_argument("--scales", nargs="+", default=["cosine", "asnorm"])
    parser.add_argument("--min-speakers", action="store_true", help="also measure populations of 5-80 speakers")
    parser.add_argument("--with-probes", action="store_true",
                        help="the population also holds the condition's probes of its speakers (not what the service "
                             "measures today: an experiment)")
    parser.add_argument("--spread-quantile", type=float, metavar="Q",
                        help="read the spread from the impostors' Q-quantile instead of their median |z| (not what "
                             "the service does: an experiment; inference.population.measure)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    embedder, asnorm, vectors, qualities = engine_and_cache(args, parser)
    train_all, _, _ = trial_pairs(args.lists, "train", vectors, qualities, SHIPPABLE)
    heldout_pairs, _, _ = trial_pairs(args.lists, "heldout", vectors, qualities)
    heldout = calibrated.score_trials(heldout_pairs, asnorm)
    shipped_fit = _fit(train_all, asnorm, embedder.model_version)
    conditions = sorted(set(heldout.groups.tolist()))
    figures: dict = {"far_target": args.far, "groups": {}}
    for name, group in GROUPS.items():
        mine = [c for c in conditions if _in_group(c, group)]
        if not mine:
            continue
        sources = tuple(s for s in SHIPPABLE if s not in group["sources"])
        source_pairs = train_all if sources == SHIPPABLE else trial_pairs(args.lists, "train", vectors, qualities,
                                                                          sources)[0]
        train = [p for p in source_pairs if not _in_group(p[3], group)]
        fitted = _fit(train, asnorm, embedder.model_version)
        out = {}
        for condition in mine:
            table = heldout.subset(heldout.groups.astype(str) == condition)
            inputs = population_of(args.lists, condition, vectors, qualities, probes=args.with_probes)
            entry = {"trials": len(table.labels), "targets": int(table.labels.sum()),
                     "raw_cosine": discrimination(table), "population_speakers": 0}
            for scale in args.scales:
                if scale not in fitted.scales:
                    continue
                shift = _shift(fitted, scale, inputs, asnorm, args.spread_quantile)
                shipped_shift = _shift(shipped_fit, scale, inputs, asnorm, args.spread_quantile)
                entry["population_speakers"] = shift.speakers
                entry[scale] = {
                    "held_out_fit": _entry(table, fitted, scale, args.far),
                    "held_out_fit_adapted": _entry(table, adapted_calibration(fitted, {scale: shift}), scale, args.far),
                    "shipped_fit": _entry(table, shipped_fit, scale, args.far),
                    "shipped_fit_adapted": _entry(table, adapted_calibration(shipped_fit, {scale: shipped_shift}), scale,
                                                  args.far),
                    "shift": shift.to_dict(), "shipped_shift": shipped_shift.to_dict()}
            out[condition] = entry
            logger.info("%s / %s: %s", name, condition, json.dumps(
                {s: [round(100 * entry[s][k]["far"], 2) for k in ("held_out_fit", "held_out_fit_adapted")]
                 for s in args.scales if s in entry and "far" in entry[s]["held_out_fit"]}))
        figures["groups"][name] = out
    if args.min_speakers:
        figures["min_speakers"] = min_speakers(args, vectors, qualities, heldout, train_all, asnorm,
                                               embedder.model_version)
    write_report(figures, markdown(figures, args.far), args)
    return 0


MIN_SPEAKER_SIZES = (5, 10, 20, 40, 80)
MIN_SPEAKER_GROUPS = (("telephone", "narrowband_8k_both"), ("emotional", "emotional"))
DRAWS = 20


def min_speakers(args, vectors, qualities, heldout, train_all, asnorm, model_version) -> dict:
    """FAR of the adapted decision on held-out speakers when the population has only ``n`` speakers."""
    out = {}
    for name, condition in MIN_SPEAKER_GROUPS:
        group = GROUPS[name]
        fitted = _fit([p for p in train_all if not _in_group(p[3], group)], asnorm, model_version)
        table = heldout.subset(heldout.groups.astype(str) == condition)
        everyone = sorted(read_enrollment_sets(args.lists / "enrollments" / "train" / f"{condition}.txt"))
        rows = {}
        for n in MIN_SPEAKER_SIZES:
            if n > len(everyone):
                continue
            fars, frrs, shifts = [], [], []
            for draw in range(DRAWS):
                chosen = list(np.random.default_rng(1000 * n + draw).choice(everyone, size=n, replace=False))
                inputs = population_of(args.lists, condition, vectors, qualities, speakers=chosen)
                shift = measure_population(fitted, "cosine", inputs, spread_quantile=args.spread_quantile)
                e = _entry(table, adapted_calibration(fitted, {"cosine": shift}), "cosine", args.far)
                fars.append(e["far"])
                frrs.append(e["frr"])
                shifts.append(shift.shift)
            rows[n] = {"far_median": float(np.median(fars)), "far_max": float(np.max(fars)),
                       "far_in_band": float(np.mean([0.5 * args.far <= f <= 2 * args.far for f in fars])),
                       "frr_median": float(np.median(frrs)), "shift_sd": float(np.std(shifts))}
        out[f"{name} ({condition})"] = {"population": len(everyone), "sizes": rows}
    return out


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def _cell(e: dict, far: float) -> str:
    if "far" not in e:
        return "-"
    return (f"{_pct(e['far'])} / {_pct(e['frr'])} ({_pct(e['oracle_frr'])})"
            f"{' ok' if calibrated.holds(e, far=far) else ''}")


def markdown(figures: dict, far: float) -> str:
    lines = [f"Population adaptation, FAR target {100 * far:g}%: FAR / FRR (the condition's own-threshold FRR), %, "
             "on the group's held-out speakers; the group's train speakers are the population (no labels). "
             "`ok`: FAR within 0.5-2% and FRR within 1.25x its own-threshold FRR.", "",
             "| group | condition | trials (targets) | population | scale | fitted without the group | "
             "+ population | shipped fit | + population | shift / spread | EER / minDCF: calibrated t, raw cosine |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, conditions in figures["groups"].items():
        for condition, entry in conditions.items():
            for scale in ("cosine", "asnorm"):
                if scale not in entry:
                    continue
                e = entry[scale]
                shift = e["shift"]
                raw = entry["raw_cosine"]
                cal = e["held_out_fit_adapted"]
                lines.append(
                    f"| {name} | {condition} | {entry['trials']} ({entry['targets']}) | {entry['population_speakers']} | "
                    f"{scale} | {_cell(e['held_out_fit'], far)} | {_cell(e['held_out_fit_adapted'], far)} | "
                    f"{_cell(e['shipped_fit'], far)} | {_cell(e['shipped_fit_adapted'], far)} | "
                    f"{shift['shift']:+.3f} / {shift['spread']:.2f} | "
                    f"{_pct(cal.get('eer'))} / {cal.get('min_dcf_0.01', float('nan')):.3f}, "
                    f"{_pct(raw['eer'])} / {raw['min_dcf_0.01']:.3f} |")
    if "min_speakers" in figures:
        lines += ["", "How many speakers the statistics need: the adapted decision's FAR on held-out speakers with a "
                  f"population of n speakers ({DRAWS} seeded draws each, cosine scale)", "",
                  "| group | n | FAR median / max, % | draws with FAR in 0.5-2% | FRR median, % | sd of the shift |",
                  "|---|---|---|---|---|---|"]
        for group, entry in figures["min_speakers"].items():
            for n, row in entry["sizes"].items():
                lines.append(f"| {group} | {n} | {_pct(row['far_median'])} / {_pct(row['far_max'])} | "
                             f"{100 * row['far_in_band']:.0f}% | {_pct(row['frr_median'])} | {row['shift_sd']:.4f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())

"""Which quality terms pay: the calibration fitted with each subset of its features, measured per held-out condition.

    python -m tools.calibration_features --lists <calibration corpus> --audio-root <degraded root> \\
        --cache var/cache/calibration-embeddings.npz [--markdown X] [--json X]

Reads the embeddings ``tools.calibration_report`` cached. For each candidate feature set (and a
variant whose impostor spread does not depend on quality), the calibration is fitted as the shipped
one is (train speakers of the shippable sources) and measured on the held-out speakers, per condition:
the EER and minDCF of the decision score ``t`` beside the raw cosine's on the same trials (a
calibration may move the threshold; it must not lose discrimination), and whether the operating point
holds (FAR within 0.5-2% of the 1% target, FRR within 1.25x the condition's own). The shipped feature
set is the one that keeps ``t`` at least as discriminating as the cosine in the most conditions while
holding the operating point in as many.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging

import numpy as np

from inference.evaluation import calibrated
from inference.evaluation.metrics import compute_eer, compute_min_dcf
from inference.quality_calibration import FEATURES, fit_scale
from tools.calibration_report import (
    SHIPPABLE,
    cached_embeddings,
    corpus_arguments,
    engine_of,
    trial_pairs,
    write_report,
)

logger = logging.getLogger("calibration_features")

# The set shipped before this measurement: every quality term, the SNR read up to 40 dB.
EARLIER = ("log_probe_speech", "log_enroll_speech", "probe_snr", "probe_narrowband", "enroll_narrowband",
           "both_narrowband")
VARIANTS: dict[str, tuple[tuple[str, ...], bool]] = {  # name: (features, spread depends on quality)
    "all (shipped until 2026-12-07)": (EARLIER, True),
    "all, constant spread": (EARLIER, False),
    "no SNR": (tuple(f for f in EARLIER if f != "probe_snr"), True),
    "speech and channel, constant spread": (tuple(f for f in EARLIER if f != "probe_snr"), False),
    "channel only": (("probe_narrowband", "enroll_narrowband", "both_narrowband"), True),
    "SNR capped at 20 dB": (tuple("probe_snr_20" if f == "probe_snr" else f for f in EARLIER), True),
    "SNR capped at 20 dB, no enrollment speech (shipped)": (FEATURES, True),
}
# An EER within 0.2 points and a minDCF within 0.01 of the cosine's count as no loss (one or two trials).
TOLERANCE = 0.002
DCF_TOLERANCE = 0.01


def fit_variant(table, features: tuple[str, ...], spread: bool):
    x = table.features(features)
    scale = fit_scale(table.cosine, x, table.labels, features)
    if not spread:  # one spread for every pair: t orders pairs by cosine minus a quality-dependent mean only
        log_sd = (float(np.log(np.std(table.cosine[table.labels == 0] - x[table.labels == 0]
                                      @ np.asarray(scale.impostor_mean)))),) + (0.0,) * len(features)
        scale = dataclasses.replace(scale, impostor_log_sd=log_sd)
        t = np.asarray(scale.normalised(table.cosine, x))
        from inference.quality_calibration import FAR_GRID

        scale = dataclasses.replace(scale, t_at_far=tuple(float(np.quantile(t[table.labels == 0], 1 - far))
                                                          for far in FAR_GRID))
    return scale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    corpus_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    embedder, _ = engine_of(args)
    vectors, qualities, _ = cached_embeddings(args.cache, embedder)
    train = calibrated.score_trials(trial_pairs(args.lists, "train", vectors, qualities, SHIPPABLE)[0], None)
    heldout = calibrated.score_trials(trial_pairs(args.lists, "heldout", vectors, qualities)[0], None)
    conditions = sorted(set(heldout.groups.tolist()))
    figures: dict = {}
    for name, (features, spread) in VARIANTS.items():
        scale = fit_variant(train, features, spread)
        t = np.asarray(scale.normalised(heldout.cosine, heldout.features(features)))
        accepted = scale.accepts(t, args.far)
        rows = {}
        for condition in conditions:
            mask = heldout.groups == condition
            y = heldout.labels[mask].astype(bool)
            entry = calibrated.condition_report(heldout.subset(mask), lambda _table, t=t[mask], a=accepted[mask]: (t, a),
                                                far=args.far)["all"]
            entry["cosine_eer"] = compute_eer(heldout.cosine[mask], y)[0]
            entry["cosine_min_dcf"] = compute_min_dcf(heldout.cosine[mask], y, 0.01)[0]
            entry["holds"] = calibrated.holds(entry, far=args.far)
            entry["no_loss"] = (entry["eer"] <= entry["cosine_eer"] + TOLERANCE
                                and entry["min_dcf_0.01"] <= entry["cosine_min_dcf"] + DCF_TOLERANCE)
            rows[condition] = entry
        figures[name] = {"features": list(features), "spread_depends_on_quality": spread, "conditions": rows,
                         "holds": sum(r["holds"] for r in rows.values()),
                         "no_loss": sum(r["no_loss"] for r in rows.values()),
                         "mean_eer": float(np.mean([r["eer"] for r in rows.values()])),
                         "mean_cosine_eer": float(np.mean([r["cosine_eer"] for r in rows.values()]))}
        logger.info("%s: holds in %d, no loss in %d of %d; mean EER %.2f%% (cosine %.2f%%)", name,
                    figures[name]["holds"], figures[name]["no_loss"], len(rows), 100 * figures[name]["mean_eer"],
                    100 * figures[name]["mean_cosine_eer"])
    write_report(figures, markdown(figures, conditions), args)
    return 0


def markdown(figures: dict, conditions: list[str]) -> str:
    names = list(figures)
    lines = ["Per held-out condition: EER of the decision score t / of the raw cosine (%), and FAR / FRR at the 1% "
             "operating point; `ok` = the operating point holds, `!` = t ranks worse than the cosine (EER by more "
             f"than {100 * TOLERANCE:.1f} points or minDCF by more than {DCF_TOLERANCE}). Written by "
             "`python -m tools.calibration_features` (docs/accuracy.md §0.8).", "",
             "| variant | holds | no loss of discrimination | mean EER t / cosine |", "|---|---|---|---|"]
    for name in names:
        f = figures[name]
        lines.append(f"| {name} | {f['holds']} / {len(conditions)} | {f['no_loss']} / {len(conditions)} | "
                     f"{100 * f['mean_eer']:.2f} / {100 * f['mean_cosine_eer']:.2f} |")
    lines += ["", "| condition | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for condition in conditions:
        cells = []
        for name in names:
            e = figures[name]["conditions"][condition]
            cells.append(f"{100 * e['eer']:.2f}/{100 * e['cosine_eer']:.2f}{'' if e['no_loss'] else ' !'}; "
                         f"{100 * e.get('far', 0):.2f}/{100 * e.get('frr', 0):.2f}{' ok' if e['holds'] else ''}")
        lines.append(f"| {condition} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())

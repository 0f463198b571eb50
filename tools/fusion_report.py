"""ECAPA, CAM++ and their fusion side by side on the calibration set, each calibrated as the service calibrates.

    python -m tools.fusion_report --lists <corpus> --audio-root <degraded> --vectors-from <campplus_eval cache dir> \\
        [--markdown docs/fusion.md] [--json reports/fusion.json] [--plot docs/det-fusion.png]

Both networks' vectors come from ``tools.campplus_eval``'s cache (one decode, one VAD, both networks: the
engine's own steps). For each of ECAPA alone, CAM++ alone and the fused vector (``inference.fusion``, at
``FusionConfig.ecapa_weight``), the calibration is fitted exactly as the shipped one
(:func:`tools.calibration_report.fit_calibration`: the train speakers of the shippable sources, quality terms,
identification offsets per probe condition), then measured on the held-out speakers, per condition: EER and
minDCF of the calibrated score, FAR / FRR of the decision at the FAR target and whether it holds, and open-set
identification (correct matches, top-1, false identification of unknown probes). The weight is fitted too:
the fused cosine is ``w cos_ECAPA + (1 - w) cos_CAM++``; ``w`` on a 0.05 grid with the lowest minDCF (then EER)
of the fused cosine on the train trials of the shippable sources is what ``FusionConfig.ecapa_weight`` ships
(``--weight`` measures another). For comparison, ``w = sd_CAM / (sd_ECAPA + sd_CAM)`` (each model's impostor
cosine spread) would make it the mean of the z-normalised cosines.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from inference.config import EngineConfig, FusionConfig
from inference.evaluation import calibrated
from inference.fusion import fuse
from tools.calibration_report import SHIPPABLE, fit_calibration, identification_runs, trial_pairs, write_report
from tools.campplus_eval import GROUPS, QUALITY_FIELDS, Cache, engine_key

logger = logging.getLogger("fusion_report")

ENGINES = ("ECAPA", "CAM++", "fused")
# The engines whose shipped calibration has identification's lead rule: it pays for ECAPA and not for the fused
# engine (docs/identification-lead.md); the Makefile fits the fused calibration with --no-lead-rule to match.
LEAD_RULE = {"ECAPA": True, "CAM++": False, "fused": False}
CONSISTENCY = 0.30  # VOICEPRINT_ENROLL_CONSISTENCY_THRESHOLD's default


def model_vectors(cache_dir: Path, weight: float) -> tuple[dict[str, dict], dict]:
    """``{engine: {path: vector}}`` for ECAPA, CAM++ and the fused vector, and ``{path: quality dict}``; a file
    either network refused is left out of all three (the same trials for each)."""
    found = Cache.read_calibration(cache_dir, engine_key(EngineConfig()))
    both = sorted(set(found.vectors["ecapa"]) & set(found.vectors["campplus"]))
    vectors: dict[str, dict] = {"ECAPA": {}, "CAM++": {}, "fused": {}}
    for path in both:
        e, c = found.vectors["ecapa"][path], found.vectors["campplus"][path]
        vectors["ECAPA"][path], vectors["CAM++"][path] = e, c
        vectors["fused"][path] = fuse(e, c, weight)
    qualities = {p: dict(zip(QUALITY_FIELDS, found.quality[p])) for p in both}
    logger.info("%d files with both networks' vectors (%d refused by ECAPA, %d by CAM++)", len(both),
                len(found.refused["ecapa"]), len(found.refused["campplus"]))
    return vectors, qualities


def train_tables(lists: Path, vectors: dict[str, dict], qualities: dict) -> dict[str, calibrated.TrialTable]:
    """Each network's train trials of the shippable sources, scored (the same trials for both)."""
    return {e: calibrated.score_trials(trial_pairs(lists, "train", vectors[e], qualities, SHIPPABLE)[0], None)
            for e in ("ECAPA", "CAM++")}


def impostor_spread(tables: dict[str, calibrated.TrialTable]) -> dict[str, dict[str, float]]:
    """Each network's impostor cosine mean and standard deviation on the train trials."""
    out = {}
    for engine, table in tables.items():
        impostors = table.cosine[table.labels == 0]
        out[engine] = {"mean": float(impostors.mean()), "sd": float(impostors.std())}
    return out


WEIGHTS = tuple(round(0.05 * k, 2) for k in range(2, 19))  # 0.10 ... 0.90


def fit_weight(tables: dict[str, calibrated.TrialTable]) -> tuple[float, list[dict]]:
    """ECAPA's weight with the lowest minDCF (P_target 0.01; then EER) of the fused cosine on the train trials."""
    from inference.evaluation.metrics import compute_eer, compute_min_dcf

    y = tables["ECAPA"].labels.astype(bool)
    grid = []
    for w in WEIGHTS:
        s = w * tables["ECAPA"].cosine + (1.0 - w) * tables["CAM++"].cosine
        grid.append({"weight": w, "eer": compute_eer(s, y)[0], "min_dcf_0.01": compute_min_dcf(s, y, 0.01)[0]})
    best = min(grid, key=lambda g: (round(g["min_dcf_0.01"], 4), round(g["eer"], 4)))
    return best["weight"], grid


def measure(args: argparse.Namespace, engine: str, vectors: dict, qualities: dict) -> tuple[dict, calibrated.TrialTable,
                                                                                           np.ndarray, np.ndarray]:
    calibration = fit_calibration(args.lists, vectors, qualities, None, engine, args.fir, lead_rule=LEAD_RULE[engine])
    heldout = calibrated.score_trials(trial_pairs(args.lists, "heldout", vectors, qualities)[0], None)
    decide = calibrated.calibrated_decisions(calibration, "cosine", args.far)
    t, accepted = decide(heldout)
    figures = {"verification": calibrated.condition_report(heldout, decide, far=args.far), "identification": {}}
    # The enrollment consistency check (VOICEPRINT_ENROLL_CONSISTENCY_THRESHOLD, a raw cosine): a new recording
    # against the voiceprint, as these clean trials are
    clean = heldout.groups.astype(str) == "clean"
    y = heldout.labels[clean].astype(bool)
    cos = heldout.cosine[clean]
    figures["consistency"] = {"threshold": CONSISTENCY, "same_voice_below": float((cos[y] < CONSISTENCY).mean()),
                              "other_voice_at_or_above": float((cos[~y] >= CONSISTENCY).mean()),
                              "targets": int(y.sum()), "impostors": int((~y).sum())}
    for condition, (gallery, names, probes, speakers) in identification_runs(args.lists, "heldout", vectors,
                                                                             qualities).items():
        known = np.array([s in names for s in speakers])
        truth = np.array([names.index(s) if s in names else -1 for s in speakers])
        verdicts = calibrated.identification_verdicts(calibration, "cosine", gallery, probes, None, args.fir)
        figures["identification"][condition] = calibrated.identification_rates(verdicts, known, truth)
    return figures, heldout, t, accepted


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def _group_rows(figures: dict, far: float) -> list[str]:
    lines = ["| condition | trials (targets / impostors) | " + " | ".join(
        f"{e} EER / minDCF / FAR / FRR" for e in ENGINES) + " |", "|---|---|" + "---|" * len(ENGINES)]
    conditions = [c for c in figures["ECAPA"]["verification"] if c != "all"]
    for condition in ["all", *conditions]:
        first = figures["ECAPA"]["verification"][condition]
        cells = []
        for engine in ENGINES:
            e = figures[engine]["verification"][condition]
            mark = "" if calibrated.holds(e, far=far) else " ✗"
            cells.append(f"{_pct(e.get('eer'))} / {e.get('min_dcf_0.01', float('nan')):.3f} / {_pct(e.get('far'))} / "
                         f"{_pct(e.get('frr'))}{mark}")
        lines.append(f"| {condition} | {first['targets']} / {first['impostors']} | " + " | ".join(cells) + " |")
    return lines


def markdown(figures: dict, far: float) -> str:
    spread = figures["impostor_spread"]
    lines = ["# ECAPA, CAM++ and their fusion, per condition", "",
             "Generated by `python -m tools.fusion_report` (see its docstring); every engine calibrated as the "
             "service calibrates (train speakers of the shippable sources), measured on the held-out speakers. "
             f"Fused cosine = w x ECAPA's + (1 - w) x CAM++'s, w = {figures['weight']:.2f}: the weight with the lowest "
             f"minDCF of the fused cosine on the train trials is {figures['fitted_weight']:.2f} (the mean of the "
             f"z-normalised cosines would be w = {figures['z_weight']:.3f}: impostor cosine sd ECAPA "
             f"{spread['ECAPA']['sd']:.4f}, CAM++ {spread['CAM++']['sd']:.4f}).", "",
             "Train trials, fused cosine by weight (EER % / minDCF): " + ", ".join(
                 f"{g['weight']:.2f}: {100 * g['eer']:.2f} / {g['min_dcf_0.01']:.4f}" for g in figures["weight_grid"]), "",
             f"## Verification (percent; minDCF at P_target 0.01; FAR / FRR of the decision at FAR {100 * far:g}%, "
             "✗ where it does not hold: FAR outside 0.5-2x the target or FRR above 1.25x the condition's own)", ""]
    lines += _group_rows(figures, far)
    summary = figures["summary"]
    lines += ["", "Conditions where the engine's EER / minDCF is at least as good as ECAPA's (within 0.1 point / "
              "0.005), and where the operating point holds:", "",
              "| engine | EER not worse | minDCF not worse | holds |", "|---|---|---|---|"]
    for engine in ENGINES:
        s = summary[engine]
        lines.append(f"| {engine} | {s['eer_not_worse']} / {s['conditions']} | {s['min_dcf_not_worse']} / "
                     f"{s['conditions']} | {s['holds']} / {s['conditions']} |")
    c = {engine: figures[engine]["consistency"] for engine in ENGINES}
    lines += ["", f"Enrollment consistency (a recording against the voiceprint, raw cosine >= {CONSISTENCY}, clean "
              f"held-out trials: {c['ECAPA']['targets']} same voice / {c['ECAPA']['impostors']} other): same voice "
              "refused " + ", ".join(f"{e} {_pct(c[e]['same_voice_below'])}%" for e in ENGINES)
              + "; another voice let through " + ", ".join(f"{e} {_pct(c[e]['other_voice_at_or_above'])}%"
                                                            for e in ENGINES) + "."]
    lines += ["", "## Open-set identification (correct match / top-1 / false identification of unknown probes, "
              "percent)", "", "| condition | " + " | ".join(ENGINES) + " |", "|---|" + "---|" * len(ENGINES)]
    for condition in figures["ECAPA"]["identification"]:
        cells = []
        for engine in ENGINES:
            r = figures[engine]["identification"][condition]
            cells.append(f"{_pct(r['correct_match'])} / {_pct(r['top1'])} / {_pct(r['false_identification'])}")
        lines.append(f"| {condition} | " + " | ".join(cells) + " |")
    cells = []
    for engine in ENGINES:
        s = summary[engine]
        cells.append(f"{_pct(s['correct_match'])} / {_pct(s['top1'])} / {_pct(s['false_identification'])} "
                     f"({s['false_identifications']} of {s['unknown_probes']})")
    lines.append("| **all, pooled** | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summarise(figures: dict, far: float) -> dict:
    conditions = [c for c in figures["ECAPA"]["verification"] if c != "all"
                  and "eer" in figures["ECAPA"]["verification"][c]]
    out = {}
    for engine in ENGINES:
        mine, ecapa = figures[engine]["verification"], figures["ECAPA"]["verification"]
        out[engine] = {
            "conditions": len(conditions),
            "eer_not_worse": sum(mine[c]["eer"] <= ecapa[c]["eer"] + 0.001 for c in conditions),
            "min_dcf_not_worse": sum(mine[c]["min_dcf_0.01"] <= ecapa[c]["min_dcf_0.01"] + 0.005 for c in conditions),
            "holds": sum(calibrated.holds(mine[c], far=far) for c in conditions),
            "mean_eer": float(np.mean([mine[c]["eer"] for c in conditions])),
        }
        runs = figures[engine]["identification"].values()
        known = sum(r["known_probes"] for r in runs)
        unknown = sum(r["unknown_probes"] for r in runs)
        false = round(sum(r["false_identification"] * r["unknown_probes"] for r in runs))
        out[engine].update({
            "correct_match": sum(r["correct_match"] * r["known_probes"] for r in runs) / known,
            "top1": sum(r["top1"] * r["known_probes"] for r in runs) / known,
            "false_identification": false / unknown, "false_identifications": false, "unknown_probes": unknown})
    return out


def write_figure(tables: dict, png_path: Path) -> None:
    """DET curves of ECAPA, CAM++ and the fusion per condition group, each with its operating point."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from inference.evaluation.metrics import det_curve
    from inference.evaluation.report import _det_axes, _det_probit

    groups = [(name, members) for name, members in GROUPS.items()]
    cols = 4
    rows = -(-len(groups) // cols)
    fig = Figure(figsize=(4.2 * cols, 4.0 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (name, members) in zip(axes, groups):
        for engine in ENGINES:
            table, t, accepted = tables[engine]
            mask = np.isin(table.groups.astype(str), members)
            y = table.labels[mask].astype(bool)
            if not (y.any() and (~y).any()):
                continue
            fpr, fnr, _ = det_curve(t[mask], y)
            line = ax.plot(_det_probit(fpr), _det_probit(fnr), drawstyle="steps-post", linewidth=1.2,
                           label=f"{engine}")[0]
            far, frr = float(accepted[mask][~y].mean()), float(1.0 - accepted[mask][y].mean())
            ax.plot([_det_probit(np.array([far]))[0]], [_det_probit(np.array([frr]))[0]], "o", markersize=6,
                    markeredgecolor="black", color=line.get_color())
        _det_axes(ax)
        ax.set_title(name, fontsize=10)
        ax.grid(True, linewidth=0.4)
        ax.legend(fontsize=7, loc="upper right")
    for ax in axes[len(groups):]:
        ax.set_visible(False)
    FigureCanvasAgg(fig)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=90)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lists", type=Path, required=True)
    parser.add_argument("--vectors-from", type=Path, required=True, help="tools.campplus_eval's cache directory")
    parser.add_argument("--far", type=float, default=0.01)
    parser.add_argument("--fir", type=float, default=0.01)
    parser.add_argument("--weight", type=float, default=FusionConfig().ecapa_weight,
                        help="ECAPA's weight in the fusion (default: the shipped one)")
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--plot", type=Path, help="DET curves per condition group (PNG)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    vectors, qualities = model_vectors(args.vectors_from, args.weight)
    train = train_tables(args.lists, vectors, qualities)
    spread = impostor_spread(train)
    z_weight = spread["CAM++"]["sd"] / (spread["ECAPA"]["sd"] + spread["CAM++"]["sd"])
    fitted, grid = fit_weight(train)
    if abs(fitted - FusionConfig().ecapa_weight) > 1e-9:
        logger.warning("the train trials ask w = %.2f; FusionConfig ships %.2f", fitted, FusionConfig().ecapa_weight)
    figures: dict = {"far_target": args.far, "fir_target": args.fir, "weight": args.weight, "z_weight": z_weight,
                     "fitted_weight": fitted, "weight_grid": grid, "impostor_spread": spread}
    tables = {}
    for engine in ENGINES:
        figures[engine], heldout, t, accepted = measure(args, engine, vectors[engine], qualities)
        tables[engine] = (heldout, t, accepted)
        logger.info("%s measured", engine)
    figures["summary"] = summarise(figures, args.far)
    if args.plot:
        write_figure(tables, args.plot)
    write_report(figures, markdown(figures, args.far), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())




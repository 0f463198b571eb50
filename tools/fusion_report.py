"""ECAPA, CAM++ and their fusion side by side on the calibration set, each calibrated as the service calibrates.

    python -m tools.fusion_report --lists <corpus> --audio-root <degraded> --vectors-from <campplus_eval cache dir> \\
        [--markdown docs/fusion.md] [--json reports/fusion.json] [--plot docs/det-fusion.png]

Both networks' vectors come from ``tools.campplus_eval``'s cache (one decode, one VAD, both networks: the
engine's own steps). For each of ECAPA alone, CAM++ alone and the fused vector (``inference.fusion``, at
``FusionConfig.ecapa_weight``), the calibration is fitted exactly as the shipped one
(:func:`tools.calibration_report.fit_calibration`: the train speakers of the shippable sources, quality terms,
identification offsets per probe condition), then measured on the held-out speakers, per condition: EER and
minDCF of the calibrated score, FAR / FRR of the decision at the FAR target and whether it holds, and open-set
identification (correct matches, top-1, false identification of unknown probes). The weight is measured too:
the fused cosine is ``w cos_ECAPA + (1 - w) cos_CAM++``, and ``w = sd_CAM / (sd_ECAPA + sd_CAM)`` (each model's
impostor cosine standard deviation on the train trials) makes it the mean of the z-normalised cosines.
"""
from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path

import numpy as np

from inference.config import EngineConfig, FusionConfig
from inference.evaluation import calibrated
from tools.calibration_report import SHIPPABLE, fit_calibration, identification_runs, trial_pairs, write_report
from tools.campplus_eval import GROUPS, Cache, engine_key

logger = logging.getLogger("fusion_report")

ENGINES = ("ECAPA", "CAM++", "fused")


def model_vectors(cache_dir: Path, weight: float) -> tuple[dict[str, dict], dict]:
    """``{engine: {path: vector}}`` for ECAPA, CAM++ and the fused vector, and ``{path: quality dict}``; a file
    either network refused is left out of all three (the same trials for each)."""
    found = Cache.empty("")
    for path in sorted(cache_dir.glob("calibration*.npz")):
        found.merge(Cache.read(path, engine_key(EngineConfig())))
    both = sorted(set(found.vectors["ecapa"]) & set(found.vectors["campplus"]))
    w = (np.float32(math.sqrt(weight)), np.float32(math.sqrt(1.0 - weight)))
    vectors: dict[str, dict] = {"ECAPA": {}, "CAM++": {}, "fused": {}}
    for path in both:
        e, c = found.vectors["ecapa"][path], found.vectors["campplus"][path]
        vectors["ECAPA"][path], vectors["CAM++"][path] = e, c
        vectors["fused"][path] = np.concatenate([w[0] * e, w[1] * c]).astype(np.float32)
    fields = ("duration_s", "speech_s", "snr_db", "speech_level_dbfs", "clipping_ratio", "bandwidth_hz")
    qualities = {p: dict(zip(fields, found.quality[p])) for p in both}
    logger.info("%d files with both networks' vectors (%d refused by ECAPA, %d by CAM++)", len(both),
                len(found.refused["ecapa"]), len(found.refused["campplus"]))
    return vectors, qualities


def impostor_spread(lists: Path, vectors: dict[str, dict], qualities: dict) -> dict[str, dict[str, float]]:
    """Each network's impostor cosine mean and standard deviation on the train trials of the shippable sources."""
    out = {}
    for engine in ("ECAPA", "CAM++"):
        table = calibrated.score_trials(trial_pairs(lists, "train", vectors[engine], qualities, SHIPPABLE)[0], None)
        impostors = table.cosine[table.labels == 0]
        out[engine] = {"mean": float(impostors.mean()), "sd": float(impostors.std())}
    return out


def measure(args: argparse.Namespace, engine: str, vectors: dict, qualities: dict) -> tuple[dict, calibrated.TrialTable,
                                                                                           np.ndarray, np.ndarray]:
    calibration = fit_calibration(args.lists, vectors, qualities, None, engine, args.fir)
    heldout = calibrated.score_trials(trial_pairs(args.lists, "heldout", vectors, qualities)[0], None)
    decide = calibrated.calibrated_decisions(calibration, "cosine", args.far)
    t, accepted = decide(heldout)
    figures = {"verification": calibrated.condition_report(heldout, decide, far=args.far), "identification": {}}
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
             f"Fused cosine = w x ECAPA's + (1 - w) x CAM++'s, w = {figures['weight']:.2f} "
             f"(impostor cosine sd on the train trials: ECAPA {spread['ECAPA']['sd']:.4f}, CAM++ "
             f"{spread['CAM++']['sd']:.4f}; the z-normalised mean asks w = {figures['z_weight']:.3f}).", "",
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
    lines += ["", "## Open-set identification (correct match / top-1 / false identification of unknown probes, "
              "percent)", "", "| condition | " + " | ".join(ENGINES) + " |", "|---|" + "---|" * len(ENGINES)]
    for condition in figures["ECAPA"]["identification"]:
        cells = []
        for engine in ENGINES:
            r = figures[engine]["identification"][condition]
            cells.append(f"{_pct(r['correct_match'])} / {_pct(r['top1'])} / {_pct(r['false_identification'])}")
        lines.append(f"| {condition} | " + " | ".join(cells) + " |")
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
    parser.add_argument("--weight", type=float, default=FusionConfig().ecapa_weight, help="ECAPA's weight in the fusion")
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--plot", type=Path, help="DET curves per condition group (PNG)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    vectors, qualities = model_vectors(args.vectors_from, args.weight)
    spread = impostor_spread(args.lists, vectors, qualities)
    z_weight = spread["CAM++"]["sd"] / (spread["ECAPA"]["sd"] + spread["CAM++"]["sd"])
    figures: dict = {"far_target": args.far, "fir_target": args.fir, "weight": args.weight, "z_weight": z_weight,
                     "impostor_spread": spread}
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




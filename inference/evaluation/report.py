"""Report files: the JSON of a report and its figure (DET curves and score histograms)."""
from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from inference.evaluation.metrics import det_curve

logger = logging.getLogger(__name__)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


def write_report(report: Mapping[str, Any], json_path: Path | str, png_path: Path | str) -> None:
    """Write a report as JSON and as a PNG figure (matplotlib, Agg canvas, no display needed).

    A verification report is drawn as a DET curve (normal-deviate axes; raw and, when
    present, AS-norm) beside target / non-target score histograms with the EER and
    fixed-FAR thresholds marked. An identification report is drawn as histograms of the
    best score of correctly identified, misidentified and unknown probes with the threshold.
    """
    json_path, png_path = Path(json_path), Path(png_path)
    for path in (json_path, png_path):
        path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(_jsonable(report), indent=2, allow_nan=False) + "\n", encoding="utf-8")

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if report.get("kind") == "verification":
        fig = _verification_figure(report, Figure)
    elif report.get("kind") == "identification":
        fig = _identification_figure(report, Figure)
    else:
        raise ValueError(f"unknown report kind {report.get('kind')!r}")
    FigureCanvasAgg(fig)
    fig.savefig(png_path, dpi=110)
    logger.info("wrote %s and %s", json_path, png_path)


_DET_TICKS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4)


def _det_probit(p: np.ndarray) -> np.ndarray:
    """Error rates on a DET plot's normal-deviate axis; 0 is drawn on the axis' low edge (visible, not lost)."""
    from scipy.stats import norm

    return norm.ppf(np.clip(p, _DET_TICKS[0], 1 - _DET_TICKS[0]))


def _det_axes(ax: Any) -> None:
    """Ticks in %, limits, the EER diagonal and axis labels of a DET plot."""
    from scipy.stats import norm

    lo, hi = norm.ppf(_DET_TICKS[0]), norm.ppf(_DET_TICKS[-1])
    ax.plot([lo, hi], [lo, hi], ":", color="grey", linewidth=0.8)
    ticks = norm.ppf(_DET_TICKS)
    tick_labels = [f"{100 * t:g}" for t in _DET_TICKS]
    tick_labels[0] = f"<={tick_labels[0]}"  # the low edge also holds the rates of zero (no error at all)
    ax.set_xticks(ticks, tick_labels)
    ax.set_yticks(ticks, tick_labels)
    margin = 0.12 * (hi - lo)  # room around the edges so a curve or dot lying on one stays in view
    ax.set_xlim(lo - margin, hi)
    ax.set_ylim(lo - margin, hi)
    ax.set_xlabel("false acceptance rate (%)")
    ax.set_ylabel("false rejection rate (%)")


def _verification_figure(report: Mapping[str, Any], figure_cls: Any) -> Any:

    scores = report.get("scores") or {}
    if not scores.get("cosine"):
        raise ValueError("the verification report has no scores to plot")
    labels = np.asarray(scores["labels"])
    scales = [("cosine", "cosine")] + ([("asnorm", "AS-norm")] if scores.get("asnorm") is not None else [])
    fig = figure_cls(figsize=(5.0 * (1 + len(scales)), 4.5), layout="constrained")
    axes = fig.subplots(1, 1 + len(scales))

    det = axes[0]
    for key, title in scales:
        fpr, fnr, _ = det_curve(scores[key], labels)
        eer = report[key]["eer"]
        det.plot(_det_probit(fpr), _det_probit(fnr), drawstyle="steps-post", label=f"{title} (EER {100 * eer:.2f}%)")
        det.plot([_det_probit(eer)], [_det_probit(eer)], "o", color=det.lines[-1].get_color())
    _det_axes(det)
    counts = report["counts"]
    det.set_title(f"DET, {counts['target']} target / {counts['nontarget']} non-target trials")
    det.grid(True, linewidth=0.4)
    det.legend(loc="upper right", fontsize=8)

    for ax, (key, title) in zip(axes[1:], scales):
        s = np.asarray(scores[key])
        bins = np.linspace(s.min(), s.max(), 50)
        ax.hist(s[labels == 0], bins=bins, density=True, alpha=0.55, label="non-target")
        ax.hist(s[labels == 1], bins=bins, density=True, alpha=0.55, label="target")
        metrics = report[key]
        ax.axvline(
            metrics["eer_threshold"],
            color="black",
            linestyle="--",
            label=f"EER threshold {metrics['eer_threshold']:.3f}",
        )
        ax.axvline(
            metrics["threshold_at_far"],
            color="red",
            linestyle=":",
            label=f"FAR {100 * metrics['far_target']:g}% threshold {metrics['threshold_at_far']:.3f}",
        )
        ax.set_xlabel(f"{title} score")
        ax.set_ylabel("density")
        ax.set_title(f"{title} scores")
        ax.legend(fontsize=8)
    return fig


def _identification_figure(report: Mapping[str, Any], figure_cls: Any) -> Any:
    probes = report["probes"]
    groups = {
        "known, identified": [p["best_score"] for p in probes if p["known"] and p["true_rank"] == 0],
        "known, misidentified": [p["best_score"] for p in probes if p["known"] and p["true_rank"] != 0],
        "unknown speaker": [p["best_score"] for p in probes if not p["known"]],
    }
    fig = figure_cls(figsize=(6.5, 4.5), layout="constrained")
    ax = fig.subplots()
    every = [s for v in groups.values() for s in v]
    bins = np.linspace(min(every), max(every), 40) if every else 10
    for name, values in groups.items():
        if values:
            ax.hist(values, bins=bins, alpha=0.55, label=f"{name} ({len(values)})")
    ax.axvline(report["threshold"], color="black", linestyle="--", label=f"threshold {report['threshold']:.3f}")
    ax.set_xlabel(f"best {report['scale']} score of each probe")
    ax.set_ylabel("probes")
    known = report.get("known") or {}
    unknown = report.get("unknown") or {}
    ax.set_title(
        f"top-1 {100 * known.get('top1_accuracy', float('nan')):.1f}%, "
        f"FIR {100 * unknown.get('false_identification_rate', float('nan')):.1f}%"
    )
    ax.legend(fontsize=8)
    return fig


def write_condition_figure(table: Any, decide: Any, png_path: Path | str, *, max_groups: int = 12) -> None:
    """DET curves of every condition of a :class:`~inference.evaluation.calibrated.TrialTable` in one figure,
    each with the operating point its ``decide`` reaches (a dot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    scores, accepted = decide(table)
    fig = Figure(figsize=(7.5, 6.5), layout="constrained")
    ax = fig.subplots()
    groups = [g for g in sorted(set(table.groups.tolist()))
              if 0 < table.labels[table.groups == g].sum() < (table.groups == g).sum()][:max_groups]
    markers = "osD^v<>pP*Xh"
    for i, group in enumerate(groups):
        mask = table.groups == group
        y = table.labels[mask].astype(bool)
        fpr, fnr, _ = det_curve(scores[mask], y)
        far, frr = float(accepted[mask][~y].mean()), float(1.0 - accepted[mask][y].mean())
        separated = bool(np.min(fpr + fnr) == 0)  # some threshold makes no error: the curve runs along the edges
        line = ax.plot(_det_probit(fpr), _det_probit(fnr), drawstyle="steps-post",
                       linewidth=2.2 if separated else 1.0, linestyle="--" if separated else "-",
                       label=(f"{group} ({int(y.sum())} / {int((~y).sum())}"
                              f"{', no error possible' if separated else ''}): "
                              f"FAR {100 * far:.1f}%, FRR {100 * frr:.1f}%"), zorder=2)[0]
        ax.plot([_det_probit(np.array([far]))[0]], [_det_probit(np.array([frr]))[0]], markers[i % len(markers)],
                markersize=8, markeredgecolor="black", color=line.get_color(), zorder=3)
    _det_axes(ax)
    ax.set_title("DET per condition; dots: where the calibrated decision lands\n"
                 "(rates of zero on the low edges; dashed: a condition some threshold separates without error)",
                 fontsize=9)
    ax.grid(True, linewidth=0.4)
    ax.legend(fontsize=6, loc="upper right")
    FigureCanvasAgg(fig)
    Path(png_path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=110)


def write_identification_figure(report: Mapping[str, Any], png_path: Path | str) -> None:
    """Open-set identification as bars per score scale: top-1, correct matches, false identification of unknowns."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    scales = [scale for scale in ("cosine", "asnorm") if scale in report]
    measures = [("top1_accuracy", "right person ranked first"), ("correct_match", "right person matched"),
                ("false_identification", "unknown voice matched to someone")]
    fig = Figure(figsize=(7.5, 4.5), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / max(len(scales), 1)
    for j, scale in enumerate(scales):
        values = [100 * (report[scale].get(key) or 0.0) for key, _ in measures]
        bars = ax.bar(np.arange(len(measures)) + (j - (len(scales) - 1) / 2) * width, values, width,
                      label=f"{scale} ({report[scale]['known_probes']} known / {report[scale]['unknown_probes']} "
                            "unknown probes)")
        for bar, value in zip(bars, values):
            ax.annotate(f"{value:.1f}%", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=8)
    ax.set_xticks(np.arange(len(measures)), [label for _, label in measures])
    ax.set_ylim(0, 110)
    ax.set_ylabel("% of probes")
    ax.set_title(f"Open-set identification: {report['speakers']} speakers, {report['runs']} hold-out run(s)")
    ax.legend(fontsize=8, loc="upper right")
    FigureCanvasAgg(fig)
    Path(png_path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=110)

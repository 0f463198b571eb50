"""Should identify search a voiceprint short of the enrollment target? Identification with incomplete voiceprints.

    python -m tools.incomplete_voiceprints --lists <calibration corpus> --audio-root <degraded root> \\
        --cache var/cache/calibration-embeddings.npz [--markdown docs/incomplete-voiceprints.md] [--json X]

Reads the embeddings ``tools.calibration_report`` cached (run it first). The service searches only complete
voiceprints (net speech >= ``VOICEPRINT_ENROLL_TARGET_SPEECH_S``, 6 s); this measures what searching the others
would do. In every held-out identification run of the calibration set (one per condition, the same galleries
and probes as the per-condition report), the known speakers' voiceprints are made from their first ``k``
enrollment recordings (``k`` = 1 or 2 of 3: what a speaker who has not finished enrolling holds) and the probes
are identified by the service's rule (:meth:`inference.quality_calibration.Calibration.identify`: the shipped
calibration, the false-identification target among every voice searched):

* **complete**: every voiceprint from all its recordings (for reference), and the same gallery holding only
  those of ``--target-s`` or more (what the service searches; the others' speakers are then unknown voices);
* **all incomplete**: every voiceprint from ``k`` recordings;
* **mixed**: a third of the known speakers with more than one recording (seeded per run) from ``k``
  recordings, the rest complete: a deployment where some speakers are still enrolling. Reported apart: the
  incomplete speakers' probes matched to them, and the unknown probes matched to an incomplete voiceprint;
  and per probe against the same gallery without the incomplete voiceprints (the service today: their
  speakers' probes are then unknown voices).

And per band of voiceprint net speech (every voiceprint of the complete galleries, each shortened one of the
others): its own probes' top-1 and correct matches, and the unknown probes matched to it per unknown probe
searched against it (a voiceprint's own false-match rate).

The calibration has no term for the voiceprint's net speech (it did not pay: docs/calibration-features.md), so
an incomplete voiceprint is decided as a complete one would be; the question is whether its impostors stay
under the threshold and its own probes pass it.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from inference.evaluation import calibrated
from inference.evaluation.calibrated import Side
from inference.evaluation.lists import read_identification_list
from inference.quality_calibration import Calibration, shipped_calibration_path
from tools.calibration_report import _quality, _side, corpus_arguments, engine_and_cache, write_report

logger = logging.getLogger("incomplete_voiceprints")

DEPTHS = (1, 2)
# Voiceprints by their net speech (s): the service searches only the last band (VOICEPRINT_ENROLL_TARGET_SPEECH_S).
BANDS = ((0.0, 3.0), (3.0, 4.5), (4.5, 6.0), (6.0, float("inf")))
TARGET_S = 6.0  # the net speech the service searches from (VOICEPRINT_ENROLL_TARGET_SPEECH_S's default)
MIXED_SHARE = 3  # one known speaker in this many is incomplete in the mixed gallery
SEED = 20261207


def _run(lists: Path, condition: str, vectors: dict, qualities: dict):
    """The held-out identification run of ``condition``: each known speaker's enrollment files (in the list's order),
    the probes' sides and speakers; None when fewer than two speakers can be enrolled."""
    enrolled, probes = read_identification_list(lists / "ident" / "heldout" / f"{condition}.txt")
    files = {s: [p for p in paths if p in vectors] for s, paths in sorted(enrolled.items())}
    files = {s: paths for s, paths in files.items() if paths}
    kept = [(s, p) for s, p in probes if p in vectors]
    if len(files) < 2 or not kept:
        return None
    return files, [Side(vectors[p], _quality(qualities[p])) for _, p in kept], [s for s, _ in kept]


def _gallery(files: dict[str, list[str]], depth: dict[str, int], vectors: dict, qualities: dict) -> list[Side]:
    """Each speaker's voiceprint from their first ``depth[speaker]`` enrollment recordings, in ``files``' order."""
    return [_side(paths[:depth[s]], vectors, qualities) for s, paths in files.items()]


def _identify(calibration: Calibration, gallery: list[Side], names: list[str], probes: list[Side],
              probe_speakers: list[str], fir: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(matched, best index, true index)`` of every probe under the service's rule (true index -1: unknown)."""
    verdicts = calibrated.identification_verdicts(calibration, "cosine", gallery, probes, None, fir)
    matched = np.array([v.matched for v in verdicts], dtype=bool)
    best = np.array([-1 if v.best is None else v.best for v in verdicts], dtype=int)
    truth = np.array([names.index(s) if s in names else -1 for s in probe_speakers], dtype=int)
    return matched, best, truth


class Tally:
    """Counts pooled over runs: known probes, top-1, correct matches; unknown probes, false identifications."""

    def __init__(self) -> None:
        self.known = self.top1 = self.correct = self.unknown = self.false = 0

    def add(self, matched: np.ndarray, best: np.ndarray, truth: np.ndarray, known: np.ndarray,
            false_mask: np.ndarray | None = None) -> None:
        """``known``: the probes to count as known (their own speaker searched); ``false_mask``: which unknown
        probes' matches count as false identifications (default all the unknown probes)."""
        unknown = truth < 0
        self.known += int(known.sum())
        self.top1 += int((known & (best == truth)).sum())
        self.correct += int((known & matched & (best == truth)).sum())
        self.unknown += int(unknown.sum())
        counted = unknown & matched if false_mask is None else unknown & matched & false_mask
        self.false += int(counted.sum())

    def to_dict(self) -> dict:
        def rate(n: int, d: int) -> float | None:
            return n / d if d else None

        return {"known_probes": self.known, "unknown_probes": self.unknown, "top1": rate(self.top1, self.known),
                "correct_match": rate(self.correct, self.known), "false_identification": rate(self.false, self.unknown),
                "false_identifications": self.false}


class Choice:
    """The mixed galleries' question, counted per probe: searching the incomplete voiceprints or not (today)."""

    def __init__(self) -> None:
        self.counts = dict.fromkeys(("complete_probes", "complete_right", "incomplete_probes", "incomplete_right",
                                     "incomplete_wrong", "unknown_probes", "unknown_matched"), 0)

    def add(self, matched: np.ndarray, best: list[str | None], speakers: list[str], searched: list[str],
            short: set[str]) -> None:
        """``best``: each probe's best candidate's name; ``searched``: the gallery's speakers; ``short``: the
        speakers enrolled short of their recordings (searched or not)."""
        c = self.counts
        for hit, name, own in zip(matched, best, speakers):
            if own in short:
                c["incomplete_probes"] += 1
                c["incomplete_right"] += int(bool(hit) and name == own)
                c["incomplete_wrong"] += int(bool(hit) and name != own)
            elif own in searched:
                c["complete_probes"] += 1
                c["complete_right"] += int(bool(hit) and name == own)
            else:
                c["unknown_probes"] += 1
                c["unknown_matched"] += int(bool(hit))


class BandTally:
    """Per band of voiceprint net speech: its voiceprints' own probes (top-1, correct match) and the unknown probes
    matched to one of them, per unknown probe and voiceprint searched (a voiceprint's own false-match rate)."""

    def __init__(self) -> None:
        self.counts = {band: dict.fromkeys(("voiceprints", "known", "top1", "correct", "exposures", "false"), 0)
                       for band in BANDS}

    def add(self, gallery: list[Side], names: list[str], matched: np.ndarray, best: np.ndarray, truth: np.ndarray,
            include: set[str]) -> None:
        unknown = truth < 0
        for j, (name, side) in enumerate(zip(names, gallery)):
            if name not in include:
                continue
            c = self.counts[next(b for b in BANDS if b[0] <= side.quality.speech_s < b[1])]
            own = truth == j
            c["voiceprints"] += 1
            c["known"] += int(own.sum())
            c["top1"] += int((own & (best == j)).sum())
            c["correct"] += int((own & matched & (best == j)).sum())
            c["exposures"] += int(unknown.sum())
            c["false"] += int((unknown & matched & (best == j)).sum())

    def to_dict(self) -> dict:
        return {f"{low:g}-{high:g}": {**c, "top1_rate": c["top1"] / c["known"] if c["known"] else None,
                                      "correct_rate": c["correct"] / c["known"] if c["known"] else None,
                                      "false_per_1000": 1000 * c["false"] / c["exposures"] if c["exposures"] else None}
                for (low, high), c in self.counts.items()}


def measure(lists: Path, vectors: dict, qualities: dict, calibration: Calibration, fir: float,
            target_s: float = TARGET_S) -> dict:
    """Every figure of the module docstring, pooled over the held-out runs and per condition."""
    conditions = sorted(p.stem for p in (lists / "ident" / "heldout").glob("*.txt"))
    pooled = {"complete": Tally(), "searchable": Tally(), **{f"incomplete_{k}": Tally() for k in DEPTHS},
              **{f"mixed_{k}_{part}": Tally() for k in DEPTHS for part in ("incomplete", "complete", "all")}}
    speech = {k: [] for k in ("complete", *DEPTHS)}
    bands = BandTally()
    choice = {("today", 0): Choice(), **{("searched", k): Choice() for k in DEPTHS}}
    per_condition = {}
    for condition in conditions:
        run = _run(lists, condition, vectors, qualities)
        if run is None:
            continue
        files, probes, probe_speakers = run
        names = list(files)
        rows = {}
        complete = _gallery(files, {s: len(paths) for s, paths in files.items()}, vectors, qualities)
        speech["complete"] += [side.quality.speech_s for side in complete]
        matched, best, truth = _identify(calibration, complete, names, probes, probe_speakers, fir)
        pooled["complete"].add(matched, best, truth, truth >= 0)
        bands.add(complete, names, matched, best, truth, set(names))
        rows["complete"] = calibrated.match_rates(matched, best, truth >= 0, truth)
        searchable = [n for n, side in zip(names, complete) if side.quality.speech_s >= target_s - 1e-9]
        if searchable:  # the service's gallery: the others are not searched, their speakers unknown voices
            matched, best, truth = _identify(calibration, [complete[names.index(n)] for n in searchable], searchable,
                                             probes, probe_speakers, fir)
            pooled["searchable"].add(matched, best, truth, truth >= 0)
        rng = np.random.default_rng([SEED, *condition.encode()])
        several = [n for n in names if len(files[n]) > 1]  # only these can be enrolled short of their recordings
        short = set(rng.choice(several, size=max(1, len(several) // MIXED_SHARE), replace=False).tolist()
                    if several else [])
        today = [n for n in names if n not in short]  # the service today: an incomplete voiceprint is not searched
        matched, best, truth = _identify(calibration, [complete[names.index(n)] for n in today], today, probes,
                                         probe_speakers, fir)
        choice[("today", 0)].add(matched, [today[b] if b >= 0 else None for b in best], probe_speakers, today, short)
        for k in DEPTHS:
            everyone = _gallery(files, {s: min(k, len(paths)) for s, paths in files.items()}, vectors, qualities)
            speech[k] += [side.quality.speech_s for side in everyone]
            matched, best, truth = _identify(calibration, everyone, names, probes, probe_speakers, fir)
            pooled[f"incomplete_{k}"].add(matched, best, truth, truth >= 0)
            bands.add(everyone, names, matched, best, truth, {n for n in names if len(files[n]) > k})  # shortened
            rows[f"incomplete_{k}"] = calibrated.match_rates(matched, best, truth >= 0, truth)
            mixed = _gallery(files, {s: min(k, len(paths)) if s in short else len(paths) for s, paths in files.items()},
                             vectors, qualities)
            matched, best, truth = _identify(calibration, mixed, names, probes, probe_speakers, fir)
            of_short = np.array([s in short for s in probe_speakers])
            lands_short = np.array([b >= 0 and names[b] in short for b in best])
            pooled[f"mixed_{k}_incomplete"].add(matched, best, truth, (truth >= 0) & of_short, lands_short)
            pooled[f"mixed_{k}_complete"].add(matched, best, truth, (truth >= 0) & ~of_short, ~lands_short)
            pooled[f"mixed_{k}_all"].add(matched, best, truth, truth >= 0)
            choice[("searched", k)].add(matched, [names[b] if b >= 0 else None for b in best], probe_speakers, names,
                                        short)
            rows[f"mixed_{k}"] = {"incomplete_speakers": len(short), **calibrated.match_rates(matched, best, truth >= 0,
                                                                                          truth)}
        per_condition[condition] = rows
        logger.info("%s: %s", condition, json.dumps({k: round(100 * (v["false_identification"] or 0), 2)
                                                    for k, v in rows.items()}))
    return {"fir_target": fir, "target_s": target_s, "pooled": {k: v.to_dict() for k, v in pooled.items()}, "bands": bands.to_dict(),
            "choice": {f"{how}_{k}": c.counts for (how, k), c in choice.items()},
            "voiceprint_speech_s": {str(k): {"median": float(np.median(v)), "p10": float(np.percentile(v, 10)),
                                             "p90": float(np.percentile(v, 90))} for k, v in speech.items() if v},
            "conditions": per_condition}


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _frac(n: int, d: int) -> str:
    return f"{100 * n / d:.2f}% ({n} of {d})" if d else "-"


def markdown(figures: dict) -> str:
    p, sp = figures["pooled"], figures["voiceprint_speech_s"]
    lines = [
        "# Incomplete voiceprints in identification (measured)",
        "",
        "Generated by `python -m tools.incomplete_voiceprints` (module docstring: what is measured). Held-out "
        "speakers of the calibration set, every condition's identification run pooled; the service's rule with "
        f"the shipped calibration, false-identification target {_pct(figures['fir_target'])} among every voice "
        "searched.",
        "",
        "| gallery | voiceprint net speech (median, p10-p90) | known probes | top-1 | correct match | unknown probes "
        "| false identification |",
        "|---|---|---|---|---|---|---|",
    ]

    def row(label: str, key: str, speech_key: str | None, speech: str = "mixed") -> str:
        r = p[key]
        s = sp.get(speech_key) if speech_key else None
        speech = f"{s['median']:.1f} s ({s['p10']:.1f}-{s['p90']:.1f})" if s else speech
        return (f"| {label} | {speech} | {r['known_probes']} | {_pct(r['top1'])} | {_pct(r['correct_match'])} | "
                f"{r['unknown_probes']} | {_pct(r['false_identification'])} ({r['false_identifications']}) |")

    lines.append(row("complete (all their recordings), every voiceprint searched", "complete", "complete"))
    lines.append(row(f"complete, only those of {figures['target_s']:g} s or more searched (the service's rule; the "
                     "others' speakers are unknown voices)", "searchable", None, f">= {figures['target_s']:g} s"))
    for k in DEPTHS:
        lines.append(row(f"all incomplete ({k} recording{'s' if k > 1 else ''})", f"incomplete_{k}", str(k)))
    for k in DEPTHS:
        lines.append(row(f"mixed, {k} recording{'s' if k > 1 else ''}: every probe", f"mixed_{k}_all", None))
        lines.append(row(f"mixed, {k}: the incomplete speakers' probes / unknown probes matched to an incomplete "
                         "voiceprint", f"mixed_{k}_incomplete", None))
    lines += ["", "Searching the incomplete voiceprints or not, in the mixed galleries (a third of the speakers with "
              "more than one recording enrolled short): per probe, matched to the right speaker, matched to "
              "another, and unknown voices matched to anyone:", "",
              "| the incomplete voiceprints | complete speakers' probes matched right | incomplete speakers' probes "
              "matched right / to another | unknown voices matched |", "|---|---|---|---|"]
    for key, c in figures["choice"].items():
        how, k = key.rsplit("_", 1)
        label = "not searched (the service today)" if how == "today" else (
            f"searched, {k} recording{'s' if k != '1' else ''}")
        lines.append(f"| {label} | {_frac(c['complete_right'], c['complete_probes'])} | "
                     f"{_frac(c['incomplete_right'], c['incomplete_probes'])} / "
                     f"{_frac(c['incomplete_wrong'], c['incomplete_probes'])} | "
                     f"{_frac(c['unknown_matched'], c['unknown_probes'])} |")
    lines += ["", "By the voiceprint's net speech (every voiceprint of the complete galleries, and each shortened one of "
              "the others): its own probes, and unknown probes matched to it per 1000 unknown probes searched "
              "against it (a voiceprint's own false-match rate; the service searches only the last band):", "",
              "| voiceprint net speech | voiceprints | own probes | top-1 | correct match | false matches per 1000 |",
              "|---|---|---|---|---|---|"]
    for band, c in figures["bands"].items():
        rate = "-" if c["false_per_1000"] is None else f"{c['false_per_1000']:.3f} ({c['false']})"
        lines.append(f"| {band} s | {c['voiceprints']} | {c['known']} | {_pct(c['top1_rate'])} | "
                     f"{_pct(c['correct_rate'])} | {rate} |")
    lines += ["", "Per condition, false identification (complete / 1 recording / 2 recordings, all incomplete):", "",
              "| condition | complete | 1 | 2 |", "|---|---|---|---|"]
    for condition, rows in figures["conditions"].items():
        lines.append(f"| {condition} | {_pct(rows['complete']['false_identification'])} | "
                     f"{_pct(rows['incomplete_1']['false_identification'])} | "
                     f"{_pct(rows['incomplete_2']['false_identification'])} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    corpus_arguments(parser)
    parser.add_argument("--fir", type=float, default=0.01)
    parser.add_argument("--target-s", type=float, default=TARGET_S,
                        help="the net speech a voiceprint needs to be searched (VOICEPRINT_ENROLL_TARGET_SPEECH_S)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    embedder, _, vectors, qualities = engine_and_cache(args, parser)
    calibration = Calibration.load(shipped_calibration_path(embedder.model_version))
    figures = measure(args.lists, vectors, qualities, calibration, args.fir, args.target_s)
    write_report(figures, markdown(figures), args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

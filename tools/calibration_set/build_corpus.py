"""Rebuild the calibration corpus from fetched snapshots, deterministically.

::

    python -m tools.calibration_set.build_corpus \\
        --snapshot resemble-ai/Resemblyzer=<snapshot git dir> [...] \\
        --out var/calibration-corpus

reads every file of ``sources.csv`` at its pinned commit and writes ``<out>/audio/<speaker>/
<name>.wav`` (16 kHz mono PCM16) and ``<out>/provenance.csv``. Per recipe:

* ``copy``: decode, average channels, resample to 16 kHz (polyphase), cut leading and
  trailing silence to 0.15 s.
* ``split``: the same, then cut in two at the quietest point near half the net speech
  (``_a``, ``_b``); a part longer than ``MAX_PART_S`` is cut at its quietest point before that.
* ``concat``: each part as ``copy`` with 0.05 s margins, joined with ``GAP_S`` of silence.

Levels are left as recorded (level is one of the qualities the set should cover).
"""
from __future__ import annotations

import argparse
import csv
import itertools
import logging
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from tools.calibration_set import dsp, snapshots
from tools.calibration_set.datasets import DATASETS
from tools.calibration_set.select_sources import parse_snapshots

logger = logging.getLogger(__name__)

MAX_PART_S = 8.0
GAP_S = 0.15
PROVENANCE_FIELDS = (
    "path", "speaker", "gender", "source_dataset", "language", "style", "recording",
    "original_sample_rate", "original_channels", "bandwidth_hz", "duration_s", "net_speech_s",
    "speech_level_dbfs", "segment", "licence", "shippable", "repo", "commit", "original_path",
)


def cap_at_pause(x: np.ndarray, max_s: float, rate: int = dsp.RATE) -> np.ndarray:
    """``x`` if it is at most ``max_s`` long, else cut at its quietest point in the last
    1.5 s before ``max_s`` (see :func:`dsp.quiet_cut`)."""
    if x.size <= int(max_s * rate):
        return x
    return dsp.trim_silence(x[: dsp.quiet_cut(x, max_s - 1.5, max_s, rate)], rate)


def _load(snaps: dict[str, Path], repo: str, commit: str, path: str) -> tuple[np.ndarray, int, int]:
    if repo not in snaps:
        raise snapshots.SnapshotError(f"no --snapshot given for {repo}")
    x, rate, channels = dsp.decode(snapshots.read_file(snaps[repo], commit, path))
    return dsp.resample(x, rate, dsp.RATE), rate, channels


def build_item(rows: list[dict[str, str]], snaps: dict[str, Path]) -> list[tuple[str, np.ndarray, dict[str, str]]]:
    """One item of ``sources.csv`` (all its rows) -> [(relative wav path, samples, provenance)]."""
    first = rows[0]
    dataset = DATASETS[first["dataset"]]
    recipe = first["recipe"]
    rows = sorted(rows, key=lambda r: int(r["part"]))
    base = {
        "speaker": first["speaker"], "gender": first["gender"], "source_dataset": dataset.key,
        "language": dataset.language, "style": dataset.style, "recording": dataset.recording,
        "licence": dataset.licence, "shippable": "yes" if dataset.shippable else "no",
        "repo": first["repo"], "commit": first["commit"],
        "original_path": ";".join(r["original_path"] for r in rows),
    }
    outputs: list[tuple[str, np.ndarray, str]] = []
    if recipe == "concat":
        pieces = []
        for r in rows:
            x, rate, channels = _load(snaps, r["repo"], r["commit"], r["original_path"])
            pieces.append(dsp.trim_silence(x, pad_s=0.05))
        gap = np.zeros(int(GAP_S * dsp.RATE))
        joined = np.concatenate([p for piece in pieces for p in (piece, gap)][:-1])
        outputs.append((first["item"], joined, "concat"))
    else:
        if len(rows) != 1:
            raise ValueError(f"{first['item']}: recipe {recipe} takes one file, got {len(rows)}")
        x, rate, channels = _load(snaps, first["repo"], first["commit"], first["original_path"])
        x = dsp.trim_silence(x)
        if recipe == "copy":
            outputs.append((first["item"], x, "whole"))
        elif recipe == "split":
            cuts = dsp.balanced_cut_points(x, 2)
            bounds = [0, *cuts, x.size]
            for suffix, (start, end) in zip("ab", itertools.pairwise(bounds)):
                part = cap_at_pause(dsp.trim_silence(x[start:end]), MAX_PART_S)
                outputs.append((f"{first['item']}_{suffix}", part,
                                f"{start / dsp.RATE:.2f}-{end / dsp.RATE:.2f}s (of the trimmed file)"))
        else:
            raise ValueError(f"{first['item']}: unknown recipe {recipe!r}")
    bandwidth = min(rate, dsp.RATE) // 2
    results = []
    for item, samples, segment in outputs:
        level = 10 * np.log10(dsp.speech_power(samples) + 1e-12)
        prov = dict(base, path=f"audio/{item}.wav", original_sample_rate=str(rate), original_channels=str(channels),
                    bandwidth_hz=str(bandwidth), duration_s=f"{samples.size / dsp.RATE:.3f}",
                    net_speech_s=f"{dsp.net_speech_s(samples):.2f}", speech_level_dbfs=f"{level:.1f}",
                    segment=segment)
        results.append((f"audio/{item}.wav", samples, prov))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", type=Path, default=Path(__file__).with_name("sources.csv"))
    parser.add_argument("--snapshot", action="append", default=[], metavar="OWNER/NAME=DIR", required=True)
    parser.add_argument("--out", type=Path, required=True, help="corpus directory (audio/ and provenance.csv)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    snaps = parse_snapshots(args.snapshot)
    with open(args.sources, newline="") as f:
        rows = list(csv.DictReader(f))
    by_item: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        by_item[row["item"]].append(row)
    provenance = []
    for n, item in enumerate(sorted(by_item), 1):
        for rel, samples, prov in build_item(by_item[item], snaps):
            dsp.write_wav(args.out / rel, samples)
            provenance.append(prov)
        if n % 200 == 0:
            logger.info("%d / %d items", n, len(by_item))
    with open(args.out / "provenance.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, PROVENANCE_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(provenance)
    seconds = sum(float(p["duration_s"]) for p in provenance)
    logger.info("%d recordings, %d speakers, %.0f s -> %s", len(provenance),
                len({p["speaker"] for p in provenance}), seconds, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Check that the set's files decode and hold speech, with the service's own engine.

::

    python -m tools.calibration_set.check_speech --root var/calibration \\
        --corpus var/calibration-corpus --per-condition 20 --out reports/calibration_check.csv

embeds every clean recording of the corpus and ``--per-condition`` degraded probes of each
condition and split (a seeded sample of ``degradations.csv``), in one process, and writes
one row per file: ``path, condition, status`` (``ok`` or the error code the engine raised,
e.g. ``no_speech``), the engine's duration and speech seconds, and the message. A summary
per condition goes to the log. Refusals are reported, not worked around.
"""
from __future__ import annotations

import argparse
import csv
import logging
import sys
from collections import Counter, defaultdict
from pathlib import Path

from tools.calibration_set import dsp

logger = logging.getLogger(__name__)


def sample(corpus: Path, per_condition: int) -> list[tuple[str, str]]:
    """(path, condition) of every clean recording and a seeded sample of degraded probes."""
    with open(corpus / "provenance.csv", newline="") as f:
        files = [(r["path"], f"corpus:{r['source_dataset']}") for r in csv.DictReader(f)]
    with open(corpus / "splits.csv", newline="") as f:
        split_of = {r["speaker"]: r["split"] for r in csv.DictReader(f)}
    groups: dict[str, list[str]] = defaultdict(list)
    with open(corpus / "degradations.csv", newline="") as f:
        for r in csv.DictReader(f):
            groups[f"{r['condition']}/{split_of[r['path'].split('/')[-2]]}"].append(r["path"])
    for group, paths in sorted(groups.items()):
        chosen = dsp.rng_for("check", group).permutation(paths)[:per_condition]
        files += [(str(p), group.split("/")[0]) for p in sorted(chosen)]
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True, help="audio root of the lists (see degrade --root)")
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--per-condition", type=int, default=20)
    parser.add_argument("--model-dir", type=Path, default=Path("var/model"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from inference.config import EngineConfig  # imported late: loads MindSpore
    from inference.embedder import Embedder
    from inference.errors import InferenceError

    embedder = Embedder.load(EngineConfig(model_dir=args.model_dir))
    files = sample(args.corpus, args.per_condition)
    summary: dict[str, Counter] = defaultdict(Counter)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(("path", "condition", "status", "duration_s", "speech_s", "message"))
        for n, (path, condition) in enumerate(files, 1):
            try:
                result = embedder.embed((args.root / path).read_bytes())
                row = (path, condition, "ok", f"{result.duration_s:.2f}", f"{result.speech_s:.2f}", "")
            except InferenceError as exc:
                row = (path, condition, exc.code, "", "", exc.message)
            w.writerow(row)
            summary[condition][row[2]] += 1
            if n % 200 == 0:
                logger.info("%d / %d", n, len(files))
    for condition, counts in sorted(summary.items()):
        total = sum(counts.values())
        refused = ", ".join(f"{code} {k}" for code, k in sorted(counts.items()) if code != "ok") or "none refused"
        logger.info("%-28s %4d files: %s", condition, total, refused)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Choose the original files of the calibration set and write ``sources.csv``.

Run once per change of the recipe, with every snapshot named in ``datasets.py``::

    python -m tools.calibration_set.select_sources \\
        --snapshot resemble-ai/Resemblyzer=<snapshot git dir> \\
        --snapshot simiya/Projet-Son-Jedha=... [...] --out tools/calibration_set/sources.csv

The choice is a pure function of the snapshots at the pinned commits (random picks use
:func:`dsp.rng_for`), so the committed ``sources.csv`` can be checked by running this again.

Each row is one original file: ``dataset, speaker, gender, item, recipe, part, repo, commit,
original_path``. ``item`` is the recording it becomes (``<speaker>/<name>``); ``recipe`` is
``copy`` (one file, one recording), ``split`` (one file cut in two recordings at a quiet point,
``<name>_a`` and ``<name>_b``) or ``concat`` (several files joined, in ``part`` order).
"""
from __future__ import annotations

import argparse
import csv
import io
import logging
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import soundfile as sf

from tools.calibration_set import dsp, snapshots
from tools.calibration_set.datasets import DATASETS

logger = logging.getLogger(__name__)

FIELDS = ("dataset", "speaker", "gender", "item", "recipe", "part", "repo", "commit", "original_path")

# LibriSpeech readers already in shared/speech/multi (the development set) stay out.
LIBRISPEECH_EXCLUDED = {"19", "26", "27"}
LIBRISPEECH_MIN_SPLIT_S = 6.0
RAVDESS_EMOTIONS = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry",
                    "06": "fearful", "07": "disgust", "08": "surprised"}
EMODB_GENDER = {"03": "M", "08": "F", "09": "F", "10": "M", "11": "M", "12": "M", "13": "F", "14": "F",
                "15": "M", "16": "F"}
EMODB_NEUTRAL_MAX = 10
EMODB_PER_EMOTION = 2
AISHELL_PER_SPEAKER = 30
FSDD_RECORDINGS = 10
FSDD_DIGITS = 6
FSDD_FIRST_INDEX = 40


class Row(NamedTuple):
    dataset: str
    speaker: str
    gender: str
    item: str
    recipe: str
    part: int
    repo: str
    commit: str
    original_path: str


def _rows(key: str, speaker: str, gender: str, item: str, recipe: str, paths: list[str]) -> Iterator[Row]:
    d = DATASETS[key]
    for part, path in enumerate(paths):
        yield Row(key, speaker, gender, item, recipe, part, d.repo, d.commit, path)


def _librispeech_genders(gdir: Path, commit: str) -> dict[str, str]:
    text = snapshots.read_file(gdir, commit, "audio_data/librispeech_test-other/SPEAKERS.TXT").decode()
    genders = {}
    for line in text.splitlines():
        if line.startswith(";") or "|" not in line:
            continue
        fields = [f.strip() for f in line.split("|")]
        genders[fields[0]] = fields[1]
    return genders


def select_librispeech(gdir: Path) -> Iterator[Row]:
    d = DATASETS["librispeech-test-other"]
    genders = _librispeech_genders(gdir, d.commit)
    for path in snapshots.list_files(gdir, d.commit, "audio_data/librispeech_test-other/"):
        if not path.endswith(".flac"):
            continue
        spk = path.split("/")[-2]
        yield from _rows(d.key, f"ls-{spk}", genders[spk], f"ls-{spk}/{Path(path).stem}", "copy", [path])
    d = DATASETS["librispeech-train-clean-100"]
    for path in snapshots.list_files(gdir, d.commit, "audio_data/librispeech_train-clean-100/"):
        if not path.endswith(".flac"):
            continue
        spk = Path(path).name.split("-")[0]
        if spk in LIBRISPEECH_EXCLUDED:
            continue
        info = sf.info(io.BytesIO(snapshots.read_file(gdir, d.commit, path)))
        if info.duration < LIBRISPEECH_MIN_SPLIT_S:
            logger.info("skipping %s: %.1f s is too short to split", path, info.duration)
            continue
        yield from _rows(d.key, f"ls-{spk}", genders[spk], f"ls-{spk}/{Path(path).stem}", "split", [path])


def select_ravdess(gdir: Path) -> Iterator[Row]:
    """Per actor: every neutral file (4), calm at normal intensity, first repetition (2), and
    the six other emotions at strong intensity, first repetition, both sentences (12)."""
    d = DATASETS["ravdess"]
    pattern = re.compile(r"03-01-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)\.wav$")
    for path in snapshots.list_files(gdir, d.commit, "Speech_Emotion_Recogntion_from_audio/data/RAVDESS/"):
        m = pattern.search(path)
        if not m:
            continue
        emotion, intensity, _statement, repetition, actor = m.groups()
        keep = (emotion == "01"
                or (emotion == "02" and intensity == "01" and repetition == "01")
                or (emotion not in ("01", "02") and intensity == "02" and repetition == "01"))
        if keep:
            gender = "M" if int(actor) % 2 else "F"
            yield from _rows(d.key, f"rav-{actor}", gender, f"rav-{actor}/{Path(path).stem}", "copy", [path])


def select_emodb(gdir: Path) -> Iterator[Row]:
    """Per speaker: up to ten neutral files and two of each other emotion (sorted names)."""
    d = DATASETS["emodb"]
    by_speaker: dict[str, dict[str, list[str]]] = {}
    for path in snapshots.list_files(gdir, d.commit, "wav/"):
        stem = Path(path).stem
        if not re.fullmatch(r"\d\d[ab]\d\d[WLEAFTN][a-z]", stem):
            continue
        by_speaker.setdefault(stem[:2], {}).setdefault(stem[5], []).append(path)
    for spk, by_emotion in sorted(by_speaker.items()):
        for emotion, paths in sorted(by_emotion.items()):
            for path in sorted(paths)[: EMODB_NEUTRAL_MAX if emotion == "N" else EMODB_PER_EMOTION]:
                yield from _rows(d.key, f"emodb-{spk}", EMODB_GENDER[spk], f"emodb-{spk}/{Path(path).stem}",
                                 "copy", [path])


def select_aishell(gdir: Path) -> Iterator[Row]:
    d = DATASETS["aishell1"]
    by_speaker: dict[str, list[str]] = {}
    for path in snapshots.list_files(gdir, d.commit, "AISHELL_Sample_data/"):
        m = re.search(r"BAC009(S\d{4})W\d{4}\.wav$", path)
        if m:
            by_speaker.setdefault(m.group(1), []).append(path)
    for spk, paths in sorted(by_speaker.items()):
        rng = dsp.rng_for("select", "aishell1", spk)
        for path in sorted(rng.choice(paths, size=AISHELL_PER_SPEAKER, replace=False)):
            yield from _rows(d.key, f"aishell-{spk}", "", f"aishell-{spk}/{Path(path).stem}", "copy", [str(path)])


def select_fsdd(gdir: Path) -> Iterator[Row]:
    """Per speaker, ten recordings of six digits: recording k says digits k, k+1, ... k+5
    (mod 10), all of take ``FSDD_FIRST_INDEX + k``."""
    d = DATASETS["fsdd"]
    present = set(snapshots.list_files(gdir, d.commit, "recordings/"))
    speakers = sorted({Path(p).stem.split("_")[1] for p in present if p.endswith(".wav")})
    for spk in speakers:
        for k in range(FSDD_RECORDINGS):
            take = FSDD_FIRST_INDEX + k
            paths = [f"recordings/{(k + j) % 10}_{spk}_{take}.wav" for j in range(FSDD_DIGITS)]
            missing = [p for p in paths if p not in present]
            if missing:
                raise snapshots.SnapshotError(f"FSDD files missing: {missing}")
            yield from _rows(d.key, f"fsdd-{spk}", "M", f"fsdd-{spk}/digits{take}", "concat", paths)


SELECTORS = {
    "resemble-ai/Resemblyzer": select_librispeech,
    "simiya/Projet-Son-Jedha": select_ravdess,
    "sylaschacko/voice-emotion-analysis": select_emodb,
    "QianZ423/kaldi-asr-aishell-sample": select_aishell,
    "Jakobovski/free-spoken-digit-dataset": select_fsdd,
}


def parse_snapshots(items: list[str]) -> dict[str, Path]:
    """``owner/name=DIR`` arguments -> {repo: git dir}."""
    out = {}
    for item in items:
        repo, sep, path = item.partition("=")
        if not sep:
            raise ValueError(f"--snapshot wants owner/name=DIR, got {item!r}")
        out[repo] = snapshots.git_dir(path)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--snapshot", action="append", default=[], metavar="OWNER/NAME=DIR", required=True)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("sources.csv"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    snaps = parse_snapshots(args.snapshot)
    missing = sorted(set(SELECTORS) - set(snaps))
    if missing:
        parser.error(f"snapshots missing for: {', '.join(missing)}")
    rows: list[Row] = []
    for repo, select in SELECTORS.items():
        rows.extend(select(snaps[repo]))
    with open(args.out, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(FIELDS)
        writer.writerows(rows)
    speakers = {r.speaker for r in rows}
    logger.info("%d source files, %d recordings, %d speakers -> %s", len(rows), len({r.item for r in rows}),
                len(speakers), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

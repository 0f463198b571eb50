"""Speaker-disjoint split, enrollment sets, per-condition trial and identification lists.

::

    python -m tools.calibration_set.make_lists --corpus var/calibration-corpus

reads ``<corpus>/provenance.csv`` and writes, under ``<corpus>`` (every path in every list
is relative to one audio root: ``audio/...`` for clean recordings, ``degraded/...`` for the
files :mod:`tools.calibration_set.degrade` makes):

``splits.csv``
    ``speaker, split, population, role``: ``train`` (fit the calibration) or ``heldout``
    (report); ``role`` is ``trials`` or ``babble`` (a talker of that split's babble noise,
    in no list).
``enrollments/<split>/<condition>.txt``
    ``<enroll_id> <path> [<path> ...]``: the enrollment set of each speaker of the condition
    (``enroll_id`` = speaker). Clean recordings, except in conditions that put the enrollment
    through the channel too (``narrowband_8k_both``: a caller enrolled by phone).
``trials/<split>/<condition>.txt``
    ``<label> <enroll_id> <probe_path>``, label 1 = same speaker; ``enroll_id`` refers to
    ``enrollments/<split>/<condition>.txt``. Balanced: one non-target
    per target (``--dense`` adds ``trials_dense/`` with ten).
``pairs/<split>/<condition>.txt``
    The same trials as ``<label> <enroll_path> <probe_path>`` with the first file of the
    enrollment set: the format ``manage.py evaluate --trials`` reads today.
``ident/<split>/<condition>.txt``
    ``enroll <speaker> <path>`` and ``probe <speaker> <path>`` lines. A probe whose speaker
    has no ``enroll`` line is an unknown voice (open set); a third of each population is
    unknown, the same speakers in every condition.
``degradations.csv``
    ``path, condition, kind, source, params``: how each degraded probe is made.
``counts.csv``
    Speakers, probes, target and non-target trials per split and condition.

Non-targets pair a probe with other speakers of the same population (language and corpus
style) and split, chosen by a seed that depends on the clean probe, not on the condition:
the same impostor pairs recur across conditions, so conditions compare paired.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.calibration_set import dsp
from tools.calibration_set.degrade import CODECS

logger = logging.getLogger(__name__)

SPLITS = ("train", "heldout")
ENROLL_FILES = 3
MIN_ENROLL_NET_S = 2.0
MIN_PROBE_NET_S = 1.0
BABBLE_POOL = 8
BABBLE_TALKERS = 5
UNKNOWN_FRACTION = 1 / 3
CROPS_PER_PROBE = 2
MAX_OTHER_LANGUAGE_PROBES = 27
DENSE_NONTARGETS = 10

POPULATION = {
    "librispeech-test-other": "en-read", "librispeech-train-clean-100": "en-read", "ravdess": "en-acted",
    "emodb": "de-acted", "aishell1": "zh-read", "fsdd": "en-digits",
}
# Populations whose speakers all go to one split: AISHELL has two speakers (held out, so the
# report has another language with a non-target pair), FSDD's six are the development set's
# speakers (train only, never reported).
FIXED_SPLIT = {"zh-read": "heldout", "en-digits": "train"}
RAVDESS_LOW_AROUSAL = ("01", "02")  # neutral, calm


@dataclass(frozen=True)
class Condition:
    name: str
    populations: tuple[str, ...]
    probe_kind: str  # which clean probes: "probe", "emotional", "neutral"
    kind: str = "clean"  # degradation kind
    params: dict[str, Any] = field(default_factory=dict)
    ext: str = "wav"
    degrade_enrollment: bool = False  # the enrollment recordings go through the channel too


def _conditions() -> list[Condition]:
    read = ("en-read",)
    out = [Condition("clean", read, "probe")]
    out += [Condition(f"short_{s:.1f}s", read, "probe", "crop", {"seconds": s}) for s in (1.0, 1.5, 2.0, 3.0)]
    out.append(Condition("narrowband_8k", read, "probe", "telephone"))
    out.append(Condition("narrowband_8k_both", read, "probe", "telephone", degrade_enrollment=True))
    out += [Condition(f"codec_{c}", read, "probe", "codec", {"codec": c}, CODECS[c]["ext"]) for c in CODECS]
    out += [Condition(f"noise_{n}_{snr}db", read, "probe", "noise", {"noise": n, "snr_db": snr})
            for n in ("white", "pink", "babble", "hum") for snr in (0, 5, 10, 20)]
    out += [Condition(f"reverb_rt60_{rt:.1f}s", read, "probe", "reverb", {"rt60": rt}) for rt in (0.3, 0.6, 0.9)]
    out.append(Condition("emotional", ("en-acted", "de-acted"), "emotional"))
    out.append(Condition("other_language", ("de-acted", "zh-read"), "neutral"))
    out.append(Condition("narrowband_real", ("en-digits",), "probe"))
    return out


CONDITIONS = _conditions()


@dataclass
class Speaker:
    name: str
    population: str
    dataset: str
    recordings: list[dict[str, str]]
    split: str = ""
    role: str = "trials"
    known: bool = True
    enroll: list[str] = field(default_factory=list)
    probes: dict[str, list[str]] = field(default_factory=dict)  # probe kind -> clean paths


def _net(r: dict[str, str]) -> float:
    return float(r["net_speech_s"])


def _stem(path: str) -> str:
    return Path(path).stem


def _emotion(r: dict[str, str]) -> str:
    """Emotion code of an acted recording: RAVDESS two digits, Emo-DB one letter."""
    stem = _stem(r["path"])
    return stem.split("-")[2] if r["source_dataset"] == "ravdess" else stem[5]


def assign_roles(spk: Speaker) -> None:
    """Enrollment set and clean probes of one speaker (seeded by the speaker's name)."""
    rng = dsp.rng_for("enroll", spk.name)
    recs = sorted(spk.recordings, key=lambda r: r["path"])
    usable = [r for r in recs if _net(r) >= MIN_PROBE_NET_S]
    if spk.dataset == "librispeech-train-clean-100":
        a = [r for r in usable if r["path"].endswith("_a.wav")]
        b = [r for r in usable if r["path"].endswith("_b.wav")]
        if a and b and _net(a[0]) >= MIN_ENROLL_NET_S:
            spk.enroll, spk.probes = [a[0]["path"]], {"probe": [b[0]["path"]]}
        return
    if spk.dataset == "ravdess":
        pool = [r for r in usable if _emotion(r) in RAVDESS_LOW_AROUSAL]
        spk.enroll = sorted(r["path"] for r in rng.permutation(pool)[:ENROLL_FILES])
        spk.probes = {"emotional": [r["path"] for r in usable if _emotion(r) not in RAVDESS_LOW_AROUSAL]}
        return
    if spk.dataset == "emodb":
        neutral = [r for r in usable if _emotion(r) == "N"]
        chosen = {r["path"] for r in rng.permutation(neutral)[:ENROLL_FILES]}
        spk.enroll = sorted(chosen)
        spk.probes = {"emotional": [r["path"] for r in usable if _emotion(r) != "N"],
                      "neutral": [r["path"] for r in neutral if r["path"] not in chosen]}
        return
    # LibriSpeech test-other, AISHELL, FSDD: three enrollment files with enough speech.
    candidates = [r for r in usable if _net(r) >= MIN_ENROLL_NET_S]
    chosen = {r["path"] for r in rng.permutation(candidates)[:ENROLL_FILES]}
    spk.enroll = sorted(chosen)
    rest = [r["path"] for r in usable if r["path"] not in chosen]
    if spk.dataset == "aishell1":
        spk.probes = {"neutral": sorted(rng.permutation(rest)[:MAX_OTHER_LANGUAGE_PROBES].tolist())}
    else:
        spk.probes = {"probe": rest}


def split_speakers(speakers: dict[str, Speaker]) -> None:
    """Half of each population (and LibriSpeech subset) to train, half to held-out; a babble
    pool per split from LibriSpeech train-clean readers; a third of each population unknown."""
    strata: dict[tuple[str, str], list[Speaker]] = defaultdict(list)
    for spk in speakers.values():
        strata[(spk.population, spk.dataset)].append(spk)
    for (population, dataset), group in sorted(strata.items()):
        group = sorted(group, key=lambda s: s.name)
        order = dsp.rng_for("split", dataset).permutation(len(group))
        for rank, i in enumerate(order):
            group[i].split = FIXED_SPLIT.get(population, SPLITS[rank % 2])
    for split in SPLITS:
        pool = sorted(s.name for s in speakers.values()
                      if s.split == split and s.dataset == "librispeech-train-clean-100")
        for name in dsp.rng_for("babble-pool", split).permutation(pool)[:BABBLE_POOL]:
            speakers[name].role = "babble"
    by_population: dict[tuple[str, str], list[Speaker]] = defaultdict(list)
    for spk in speakers.values():
        if spk.role == "trials":
            by_population[(spk.split, spk.population)].append(spk)
    for (split, population), group in sorted(by_population.items()):
        names = sorted(s.name for s in group)
        n_unknown = int(round(len(names) * UNKNOWN_FRACTION))
        for name in dsp.rng_for("unknown", split, population).permutation(names)[:n_unknown]:
            speakers[name].known = False


def degraded_path(cond: Condition, probe: str, copy: int = 0) -> str:
    speaker, stem = probe.split("/")[-2], _stem(probe)
    suffix = f"_crop{copy}" if cond.kind == "crop" else ""
    return f"degraded/{cond.name}/{speaker}/{stem}{suffix}.{cond.ext}"


def build_lists(speakers: dict[str, Speaker], *, nontargets: int, net_s: Callable[[str], float]) -> dict[str, Any]:
    """Every list, as in-memory rows (see the module docstring for the files)."""
    babble_pool = {split: sorted(r["path"] for s in speakers.values() if s.split == split and s.role == "babble"
                                 for r in s.recordings) for split in SPLITS}
    trial_speakers = [s for s in speakers.values() if s.role == "trials" and s.enroll and s.probes]
    out: dict[str, Any] = {"trials": {}, "ident": {}, "degradations": [], "counts": [], "enrollments": {}}
    for split in SPLITS:
        for cond in CONDITIONS:
            members = sorted((s for s in trial_speakers if s.split == split and s.population in cond.populations),
                             key=lambda s: s.name)
            probes: list[tuple[Speaker, str, str, int]] = []  # (speaker, clean probe, listed probe, copy)
            for spk in members:
                for clean in spk.probes.get(cond.probe_kind, []):
                    if cond.kind == "clean":
                        probes.append((spk, clean, clean, 0))
                        continue
                    copies = CROPS_PER_PROBE if cond.kind == "crop" else 1
                    if cond.kind == "crop" and net_s(clean) < cond.params["seconds"] + 0.1:
                        continue
                    for copy in range(copies):
                        path = degraded_path(cond, clean, copy)
                        params = dict(cond.params)
                        if cond.params.get("noise") == "babble":
                            params["talkers"] = sorted(dsp.rng_for("babble", path).choice(
                                babble_pool[split], size=BABBLE_TALKERS, replace=False).tolist())
                        out["degradations"].append({"path": path, "condition": cond.name, "kind": cond.kind,
                                                    "source": clean, "params": json.dumps(params, sort_keys=True)})
                        probes.append((spk, clean, path, copy))
            if not probes:
                continue
            enrollments = {s.name: s.enroll for s in members}
            if cond.degrade_enrollment:
                for spk in members:
                    enrollments[spk.name] = [degraded_path(cond, p) for p in spk.enroll]
                    out["degradations"] += [{"path": degraded_path(cond, p), "condition": cond.name, "kind": cond.kind,
                                             "source": p, "params": json.dumps(cond.params, sort_keys=True)}
                                            for p in spk.enroll]
            out["enrollments"][(split, cond.name)] = sorted(enrollments.items())
            by_population: dict[str, list[str]] = defaultdict(list)
            for s in members:
                by_population[s.population].append(s.name)
            rows = []
            for spk, clean, path, copy in probes:
                rows.append((1, spk.name, path))
                others = [n for n in by_population[spk.population] if n != spk.name]
                rng = dsp.rng_for("nontarget", split, clean, copy)
                for other in rng.permutation(others)[:nontargets]:
                    rows.append((0, str(other), path))
            out["trials"][(split, cond.name)] = rows
            ident = [("enroll", s.name, p) for s in members if s.known for p in enrollments[s.name]]
            ident += [("probe", spk.name, path) for spk, _, path, _ in probes]
            out["ident"][(split, cond.name)] = ident
            out["counts"].append({
                "split": split, "condition": cond.name, "speakers": len(members),
                "probes": len(probes), "targets": sum(r[0] for r in rows),
                "nontargets": sum(1 - r[0] for r in rows),
                "known_speakers": sum(s.known for s in members),
                "unknown_probes": sum(not spk.known for spk, _, _, _ in probes),
            })
    return out


def load_speakers(corpus: Path) -> tuple[dict[str, Speaker], dict[str, float]]:
    with open(corpus / "provenance.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    speakers: dict[str, Speaker] = {}
    for r in rows:
        spk = speakers.setdefault(r["speaker"], Speaker(r["speaker"], POPULATION[r["source_dataset"]],
                                                        r["source_dataset"], []))
        spk.recordings.append(r)
    return speakers, {r["path"]: _net(r) for r in rows}


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    speakers, net = load_speakers(args.corpus)
    for spk in speakers.values():
        assign_roles(spk)
    split_speakers(speakers)
    with open(args.corpus / "splits.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(("speaker", "split", "population", "dataset", "role", "known", "enroll_files", "usable"))
        for s in sorted(speakers.values(), key=lambda s: s.name):
            if s.role == "babble":
                w.writerow((s.name, s.split, s.population, s.dataset, s.role, "-", 0, "-"))
                continue
            w.writerow((s.name, s.split, s.population, s.dataset, s.role, "yes" if s.known else "no",
                        len(s.enroll), "yes" if s.enroll and s.probes else "no"))
    balanced = build_lists(speakers, nontargets=1, net_s=net.__getitem__)
    dense = build_lists(speakers, nontargets=DENSE_NONTARGETS, net_s=net.__getitem__)
    enroll_first = {}
    for (split, cond), sets in balanced["enrollments"].items():
        _write(args.corpus / "enrollments" / split / f"{cond}.txt", [" ".join([n, *paths]) for n, paths in sets])
        enroll_first.update({(split, cond, n): paths[0] for n, paths in sets})
    for lists, trials_dir, pairs_dir in ((balanced, "trials", "pairs"), (dense, "trials_dense", "pairs_dense")):
        for (split, cond), rows in lists["trials"].items():
            _write(args.corpus / trials_dir / split / f"{cond}.txt", [f"{label} {e} {p}" for label, e, p in rows])
            _write(args.corpus / pairs_dir / split / f"{cond}.txt",
                   [f"{label} {enroll_first[(split, cond, e)]} {p}" for label, e, p in rows])
    for (split, cond), rows in balanced["ident"].items():
        _write(args.corpus / "ident" / split / f"{cond}.txt", [" ".join(r) for r in rows])
    with open(args.corpus / "degradations.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ("path", "condition", "kind", "source", "params"), lineterminator="\n")
        w.writeheader()
        w.writerows(balanced["degradations"])
    with open(args.corpus / "counts.csv", "w", newline="") as f:
        dense_nt = {(c["split"], c["condition"]): c["nontargets"] for c in dense["counts"]}
        fields = ("split", "condition", "speakers", "known_speakers", "probes", "unknown_probes", "targets",
                  "nontargets", "nontargets_dense")
        w = csv.DictWriter(f, fields, lineterminator="\n")
        w.writeheader()
        for c in balanced["counts"]:
            w.writerow(dict(c, nontargets_dense=dense_nt[(c["split"], c["condition"])]))
    logger.info("%d conditions x %d splits, %d degraded files -> %s", len(CONDITIONS), len(SPLITS),
                len(balanced["degradations"]), args.corpus)
    return 0


if __name__ == "__main__":
    sys.exit(main())

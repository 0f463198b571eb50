"""Fit the shipped calibration on the calibration set's train part and report the held-out part, per condition.

    python -m tools.calibration_report --lists ../shared/speech/calibration --audio-root var/calibration \\
        [--write-calibration] [--markdown docs/accuracy-conditions.md] [--plot docs/det-conditions.png]

``--lists`` holds the calibration set's lists and ``audio/`` (see tools/calibration_set/); the degraded
probes are made under ``--audio-root`` by ``python -m tools.calibration_set.degrade``. Every file is
embedded once with the engine (cached in ``--cache``, keyed by the model and engine configuration).
The calibration is fitted on the train speakers of the sources that may be shipped, then every
figure is measured on the held-out speakers: before (the fixed cosine threshold 0.45 the service used)
and after (the calibrated decision at the FAR target), per condition; identification likewise; the
quality gates' refusals per condition; and the enrollment strategies (averaged voiceprint, mean or
max of per-recording scores).
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from inference import Embedder, EngineConfig, InferenceError
from inference.asnorm import ASNorm
from inference.cohort import load_cohort
from inference.config import FusionConfig
from inference.evaluation import calibrated
from inference.evaluation.calibrated import Side, enrollment_side
from inference.evaluation.lists import read_enrollment_sets, read_identification_list, read_set_trials
from inference.evaluation.metrics import compute_eer
from inference.fusion import fuse, load_engine
from inference.gates import GateLimits, gate_refusal
from inference.quality_calibration import COSINE, Calibration, SideQuality, identify_class, shipped_calibration_path

logger = logging.getLogger("calibration_report")

SHIPPABLE = ("ls", "aishell", "fsdd")  # sources whose licence allows shipping what is fitted on them
BEFORE_THRESHOLD = 0.45  # the fixed cosine threshold the service decided with before calibration
BEFORE_IDENTIFY = (0.50, 0.05)  # and its identification threshold and margin
QUALITY_FIELDS = ("duration_s", "speech_s", "snr_db", "speech_level_dbfs", "clipping_ratio", "bandwidth_hz")


# --- embedding, cached ---------------------------------------------------------------------------

def _config_key(embedder: Embedder) -> str:
    config = dataclasses.asdict(embedder.config)
    config.pop("model_dir", None)
    # CAM++'s settings: ECAPA's vectors do not depend on them (a fused engine's version names CAM++ and the weight)
    for cam_plus_plus in ("campplus", "kaldi_fbank", "fusion"):
        config.pop(cam_plus_plus, None)
    return hashlib.sha256(json.dumps([embedder.model_version, config], sort_keys=True, default=str)
                          .encode()).hexdigest()[:16]


def embed_all(paths: list[str], roots: list[Path], embedder: Embedder, cache: Path) -> tuple[dict, dict, dict]:
    """``{path: vector}``, ``{path: quality dict}``, ``{path: refusal code}`` for every path (cached)."""
    key = _config_key(embedder)
    vectors: dict[str, np.ndarray] = {}
    qualities: dict[str, dict] = {}
    refused: dict[str, str] = {}
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as data:
            if str(data["key"]) == key:
                names = [str(n) for n in data["names"]]
                vectors = dict(zip(names, data["vectors"]))
                qualities = {n: dict(zip(QUALITY_FIELDS, row.tolist())) for n, row in zip(names, data["quality"])}
                refused = dict(zip([str(n) for n in data["refused_names"]], [str(c) for c in data["refused_codes"]]))
    todo = [p for p in paths if p not in vectors and p not in refused]
    started = time.monotonic()
    for done, path in enumerate(todo, start=1):
        source = next((root / path for root in roots if (root / path).is_file()), None)
        try:
            if source is None:
                raise FileNotFoundError(path)
            result = embedder.embed(source.read_bytes())
        except (InferenceError, FileNotFoundError) as exc:
            refused[path] = getattr(exc, "code", "file_not_found")
            continue
        vectors[path] = result.vector
        qualities[path] = {"duration_s": result.duration_s, "speech_s": result.speech_s,
                           "snr_db": result.quality.snr_db, "speech_level_dbfs": result.quality.speech_level_dbfs,
                           "clipping_ratio": result.quality.clipping_ratio,
                           "bandwidth_hz": result.quality.bandwidth_hz}
        if done % 250 == 0 or done == len(todo):
            logger.info("embedded %d of %d new files (%.0f s)", done, len(todo), time.monotonic() - started)
            _save_cache(cache, key, vectors, qualities, refused)
    return vectors, qualities, refused


def _save_cache(cache: Path, key: str, vectors: dict, qualities: dict, refused: dict) -> None:
    cache.parent.mkdir(parents=True, exist_ok=True)
    names = sorted(vectors)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, key=key, names=np.array(names), vectors=np.stack([vectors[n] for n in names]),
             quality=np.array([[qualities[n][f] for f in QUALITY_FIELDS] for n in names], dtype=np.float64),
             refused_names=np.array(sorted(refused)), refused_codes=np.array([refused[n] for n in sorted(refused)]))
    tmp.replace(cache)


def vectors_from_campplus_eval(cache_dir: Path, embedder: Embedder, cache: Path) -> None:
    """Fill ``cache`` with the vectors ``tools.campplus_eval`` made of the same files (one decode, both networks,
    the engine's own steps): ECAPA's as they are, or the fused engine's ``[sqrt(w) e, sqrt(1 - w) c]``. A file
    either network refused is refused. Embeds nothing."""
    from tools.campplus_eval import Cache, engine_key

    found = Cache.read_calibration(cache_dir, engine_key(embedder.config))
    fused = embedder.config.fusion.fused
    vectors, qualities, refused = {}, {}, {}
    for path, row in found.quality.items():
        codes = [found.refused[m].get(path) for m in (("ecapa", "campplus") if fused else ("ecapa",))]
        if any(codes):
            refused[path] = next(c for c in codes if c)
            continue
        if path not in found.vectors["ecapa"] or (fused and path not in found.vectors["campplus"]):
            continue
        e = found.vectors["ecapa"][path]
        vectors[path] = fuse(e, found.vectors["campplus"][path], embedder.config.fusion.ecapa_weight) if fused else e
        qualities[path] = dict(zip(QUALITY_FIELDS, row))
    for path, code in found.refused["ecapa"].items():  # refused before any network (decoding, VAD)
        refused.setdefault(path, code)
    logger.info("%d vectors and %d refusals taken from %s", len(vectors), len(refused), cache_dir)
    _save_cache(cache, _config_key(embedder), vectors, qualities, refused)


def _shard_cache(cache: Path, k: int) -> Path:
    return cache.with_name(f"{cache.stem}.shard{k}.npz")


def cached_embeddings(cache: Path, embedder: Embedder) -> tuple[dict, dict, dict]:
    """What is embedded so far, read from the shard caches (``--shard`` runs) and ``cache``; embeds nothing.
    For the tools that measure on the calibration set after this one embedded it."""
    vectors: dict = {}
    qualities: dict = {}
    refused: dict = {}
    for path in [*sorted(cache.parent.glob(cache.stem + ".shard*.npz")), cache]:
        if path.is_file():
            for mine, theirs in zip((vectors, qualities, refused), embed_all([], [], embedder, path)):
                mine.update(theirs)
    return vectors, qualities, refused


# --- the command line -----------------------------------------------------------------------------

def models_argument(text: str) -> tuple[str, ...]:
    models = tuple(m.strip() for m in text.split(",") if m.strip())
    try:
        FusionConfig(models=models)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return models


def corpus_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every tool on the calibration set takes: where the set is, the model, the embeddings, the
    operating point and where the report goes."""
    parser.add_argument("--lists", type=Path, required=True)
    parser.add_argument("--audio-root", type=Path, required=True, help="where degraded/ was made")
    parser.add_argument("--model-dir", type=Path, default=Path("var/model"))
    parser.add_argument("--cache", type=Path, default=Path("var/cache/calibration-embeddings.npz"))
    parser.add_argument("--models", type=models_argument, default=("ecapa",),
                        help="ecapa, or ecapa,campplus for the fused engine (inference/fusion.py)")
    parser.add_argument("--far", type=float, default=0.01)
    parser.add_argument("--markdown", type=Path, help="write the report's tables here")
    parser.add_argument("--json", type=Path, help="write every figure here")


def engine_of(args: argparse.Namespace) -> tuple[Embedder, ASNorm | None]:
    """The engine ``--models`` names, and AS-norm: ECAPA's cohort (its classifier's speakers), None for the fused
    engine (calibrated on the cosine alone)."""
    embedder = load_engine(EngineConfig(model_dir=args.model_dir, threads=1, fusion=FusionConfig(models=args.models)))
    asnorm = None if embedder.config.fusion.fused else ASNorm(load_cohort(args.model_dir / "cohort.npy"), top_k=200)
    return embedder, asnorm


def engine_and_cache(args: argparse.Namespace, parser: argparse.ArgumentParser) -> tuple[Embedder, ASNorm | None,
                                                                                       dict, dict]:
    """For the tools that measure on what this one embedded: the engine (:func:`engine_of`) and its cached vectors and
    qualities (:func:`cached_embeddings`); stops with a usage error when nothing is cached yet."""
    embedder, asnorm = engine_of(args)
    vectors, qualities, _ = cached_embeddings(args.cache, embedder)
    logger.info("%d embedded files read from the cache", len(vectors))
    if not vectors:
        parser.error("no cached embeddings: run tools.calibration_report first")
    return embedder, asnorm, vectors, qualities


def write_report(figures: dict, text: str, args: argparse.Namespace) -> None:
    """Every figure to ``--json``, the tables to standard output and ``--markdown``."""
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1, default=float) + "\n")
    sys.stdout.write(text + "\n")
    if args.markdown:
        args.markdown.write_text(text + "\n", encoding="utf-8")


# --- the lists -------------------------------------------------------------------------------------

def _side(paths: list[str], vectors: dict, qualities: dict) -> Side | None:
    usable = [p for p in paths if p in vectors]
    if not usable:
        return None
    return enrollment_side([vectors[p] for p in usable], [_quality(qualities[p]) for p in usable])


def _quality(q: dict) -> SideQuality:
    return SideQuality(speech_s=q["speech_s"], snr_db=q["snr_db"], bandwidth_hz=q["bandwidth_hz"])


def _source(speaker: str) -> str:
    return speaker.split("-", 1)[0]


def trial_pairs(lists: Path, split: str, vectors: dict, qualities: dict, sources=None):
    """``(label, enrollment side, probe side, condition)`` of every dense trial of a split, the refused
    trials per condition, and each trial's probe path."""
    pairs, missing, probes = [], defaultdict(int), []
    for path in sorted((lists / "trials_dense" / split).glob("*.txt")):
        condition = path.stem
        sets = read_enrollment_sets(lists / "enrollments" / split / f"{condition}.txt")
        sides: dict[str, Side | None] = {}
        for trial in read_set_trials(path):
            if sources and _source(trial.enroll_id) not in sources:
                continue
            if trial.enroll_id not in sides:
                sides[trial.enroll_id] = _side(sets[trial.enroll_id], vectors, qualities)
            enroll = sides[trial.enroll_id]
            if enroll is None or trial.probe not in vectors:
                missing[condition] += 1
                continue
            pairs.append((trial.label, enroll, Side(vectors[trial.probe], _quality(qualities[trial.probe])),
                          condition))
            probes.append(trial.probe)
    return pairs, dict(missing), probes


def identification_runs(lists: Path, split: str, vectors: dict, qualities: dict, sources=None):
    """Per condition: ``(gallery sides, gallery speakers, probe sides, probe speakers)``."""
    runs = {}
    for path in sorted((lists / "ident" / split).glob("*.txt")):
        enrolled, probes = read_identification_list(path)
        names, gallery = [], []
        for speaker, files in sorted(enrolled.items()):
            if sources and _source(speaker) not in sources:
                continue
            side = _side(files, vectors, qualities)
            if side is not None:
                names.append(speaker)
                gallery.append(side)
        kept = [(s, p) for s, p in probes if p in vectors and (not sources or _source(s) in sources)]
        if len(gallery) >= 2 and kept:
            runs[path.stem] = (gallery, names, [Side(vectors[p], _quality(qualities[p])) for _, p in kept],
                               [s for s, _ in kept])
    return runs


# --- main ----------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    corpus_arguments(parser)
    parser.add_argument("--shard", metavar="K/N",
                        help="only embed every N-th file from the K-th (0-based) into its own cache, then stop; "
                             "run N of these side by side, then once without --shard")
    parser.add_argument("--fir", type=float, default=0.01)
    parser.add_argument("--write-calibration", action="store_true",
                        help="write the fitted calibration to inference/calibrations/<model version>.json")
    parser.add_argument("--no-lead-rule", dest="lead_rule", action="store_false",
                        help="fit no identification lead rule (the threshold alone decides; docs/identification-lead.md "
                             "measured that it pays for ECAPA and not for the fused engine)")
    parser.add_argument("--vectors-from", type=Path, metavar="DIR",
                        help="take the vectors from tools.campplus_eval's cache directory instead of embedding")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    embedder, asnorm = engine_of(args)
    if args.vectors_from:
        vectors_from_campplus_eval(args.vectors_from, embedder, args.cache)
    paths = set()
    for f in (args.lists / "enrollments").glob("*/*.txt"):
        for files in read_enrollment_sets(f).values():
            paths.update(files)
    for f in (args.lists / "trials_dense").glob("*/*.txt"):
        paths.update(t.probe for t in read_set_trials(f))
    for f in (args.lists / "ident").glob("*/*.txt"):
        enrolled, probes = read_identification_list(f)
        paths.update(p for files in enrolled.values() for p in files)
        paths.update(p for _, p in probes)
    if args.shard:  # embed one share of the files into its own cache, and stop
        k, n = (int(v) for v in args.shard.split("/"))
        share = sorted(paths)[k::n]
        embed_all(share, [args.lists, args.audio_root], embedder, _shard_cache(args.cache, k))
        return 0
    vectors, qualities, refused = {}, {}, {}
    for shard_cache in sorted(args.cache.parent.glob(args.cache.stem + ".shard*.npz")):
        found = embed_all([], [], embedder, shard_cache)
        for mine, theirs in zip((vectors, qualities, refused), found):
            mine.update(theirs)
    todo = sorted(p for p in paths if p not in vectors and p not in refused)
    if todo:
        for mine, theirs in zip((vectors, qualities, refused),
                                embed_all(todo, [args.lists, args.audio_root], embedder, args.cache)):
            mine.update(theirs)
    logger.info("%d files embedded, %d refused by the engine", len(vectors), len(refused))

    calibration = fit_calibration(args.lists, vectors, qualities, asnorm, embedder.model_version, args.fir,
                                  lead_rule=args.lead_rule)
    if args.write_calibration:
        target = shipped_calibration_path(embedder.model_version)
        calibration.save(target)
        logger.info("wrote %s", target)

    figures = report(args, calibration, vectors, qualities, refused, asnorm)
    write_report(figures, markdown(figures, args.far), args)
    return 0


def fit_calibration(lists: Path, vectors: dict, qualities: dict, asnorm: ASNorm | None, model_version: str,
                    fir: float, *, lead_rule: bool = True) -> Calibration:
    """The shipped calibration's fit: verification on the train speakers' trials of the shippable sources, then
    identification's offsets per probe condition on their identification runs, then (``lead_rule``, on the cosine
    scale) the lead over the runner-up per probe condition that also makes a match, the smallest keeping those
    runs' unknown probes at :data:`calibrated.LEAD_FIR_SHARE` of ``fir`` with the threshold rule's matches."""
    train_pairs, _, _ = trial_pairs(lists, "train", vectors, qualities, SHIPPABLE)
    train = calibrated.score_trials(train_pairs, asnorm)
    calibration = calibrated.fit(train, model_version=model_version, trained_on={
        "set": "calibration set (tools/calibration_set), train speakers", "sources": list(SHIPPABLE),
        "targets": int(train.labels.sum()), "impostors": int((train.labels == 0).sum())})
    offsets = {}
    train_ident = identification_runs(lists, "train", vectors, qualities, SHIPPABLE)
    for scale in calibration.scales:
        runs = []
        for gallery, names, probes, probe_speakers in train_ident.values():
            t, llr = calibrated.identification_scores(calibration, scale, gallery, probes, asnorm)
            best = np.argmax(llr, axis=1)
            runs.append(calibrated.IdentificationRun(
                t=t, llr=llr, known=np.array([s in names for s in probe_speakers]),
                true_index=np.array([names.index(s) if s in names else -1 for s in probe_speakers]),
                condition=np.array([identify_class(gallery[b].quality, p.quality) for b, p in zip(best, probes)])))
        offsets[scale] = calibrated.fit_identification(calibration, scale, runs, fir)
    calibration = calibrated.with_identification(calibration, offsets)
    if not lead_rule:
        return calibration
    cosine = calibration.scale(COSINE)
    runs = calibrated.lead_runs(calibration, train_ident, scale=COSINE, fir=fir, asnorm=asnorm)
    gaps = calibrated.fit_identify_leads(runs, calibrated.LEAD_FIR_SHARE * fir,
                                         floor=cosine.verify_t(cosine.identify_lead_floor_far))
    return calibrated.with_leads(calibration, {COSINE: gaps})


def report(args, calibration, vectors, qualities, refused, asnorm) -> dict:
    heldout_pairs, missing, probe_paths = trial_pairs(args.lists, "heldout", vectors, qualities)
    heldout = calibrated.score_trials(heldout_pairs, asnorm)
    figures: dict = {"far_target": args.far, "fir_target": args.fir, "refused_trials": missing,
                     "verification": {}, "identification": {}}
    decisions = {"before (cosine >= 0.45)": calibrated.fixed_threshold_decisions("cosine", BEFORE_THRESHOLD)}
    for scale in calibration.scales:
        decisions[f"calibrated ({scale})"] = calibrated.calibrated_decisions(calibration, scale, args.far)
    for name, decide in decisions.items():
        figures["verification"][name] = calibrated.condition_report(heldout, decide, far=args.far)

    for condition, (gallery, names, probes, speakers) in identification_runs(args.lists, "heldout", vectors,
                                                                             qualities).items():
        known = np.array([s in names for s in speakers])
        truth = np.array([names.index(s) if s in names else -1 for s in speakers])
        entry = {}
        raw = np.clip(np.stack([p.vector for p in probes]) @ np.stack([g.vector for g in gallery]).T, -1, 1)
        entry["before"] = calibrated.identification_rates_fixed(raw, known, truth, *BEFORE_IDENTIFY)
        for scale in calibration.scales:
            verdicts = calibrated.identification_verdicts(calibration, scale, gallery, probes, asnorm, args.fir)
            entry[scale] = calibrated.identification_rates(verdicts, known, truth)
        entry["gallery"] = len(gallery)
        figures["identification"][condition] = entry
    limits = _gate_limits()
    figures["gates"] = gate_refusals(args.lists, qualities, refused, limits)
    # How the calibrated decision does on the trials whose probe a gate refuses: a gate earns its
    # refusals only where the decision fails there.
    by_gate = dataclasses.replace(heldout, groups=np.array([_gate_code(qualities[p], limits) for p in probe_paths],
                                                           dtype=object))
    figures["decision_under_gates"] = {
        scale: calibrated.condition_report(by_gate, calibrated.calibrated_decisions(calibration, scale, args.far),
                                           far=args.far)
        for scale in calibration.scales}
    figures["enrollment"] = enrollment_strategies(args.lists, vectors)
    figures["site_calibration"] = site_calibration(args, calibration, heldout, vectors, qualities, asnorm)
    return figures


SITE_CONDITIONS = ("emotional", "other_language")  # acted, same-studio speech: no shippable source has it


def site_calibration(args, calibration, heldout, vectors, qualities, asnorm) -> dict:
    """What ``manage.py calibrate`` does for a site whose speech the shipped calibration never saw: per
    condition, re-level it (:func:`adapt_scale`) on that condition's train speakers (the site's own
    labelled recordings) and report the condition's held-out speakers."""
    from inference.quality_calibration import adapt_scale

    pairs, _, _ = trial_pairs(args.lists, "train", vectors, qualities)
    out: dict = {}
    for condition in SITE_CONDITIONS:
        site = calibrated.score_trials([p for p in pairs if p[3] == condition], asnorm)
        scales = {name: adapt_scale(cal, site.scores(name), site.features(cal.features), site.labels)
                  for name, cal in calibration.scales.items()}
        relevelled = dataclasses.replace(calibration, scales=scales)
        table = heldout.subset(heldout.groups.astype(str) == condition)
        entry: dict = {"site_trials": {"targets": int(site.labels.sum()), "impostors": int((site.labels == 0).sum())}}
        for scale in calibration.scales:
            entry[scale] = {
                "shipped": calibrated.condition_report(
                    table, calibrated.calibrated_decisions(calibration, scale, args.far), far=args.far)["all"],
                "site": calibrated.condition_report(
                    table, calibrated.calibrated_decisions(relevelled, scale, args.far), far=args.far)["all"]}
        out[condition] = entry
    return out


STRATEGIES = ("averaged voiceprint", "mean of scores", "max of scores", "first recording only",
              "first two recordings averaged")


def enrollment_strategies(lists: Path, vectors: dict) -> dict:
    """EER (cosine) per held-out condition of each way to use an enrollment set of several recordings."""
    out = {}
    for path in sorted((lists / "trials_dense" / "heldout").glob("*.txt")):
        sets = read_enrollment_sets(lists / "enrollments" / "heldout" / f"{path.stem}.txt")
        scores: dict[str, list[float]] = {name: [] for name in STRATEGIES}
        labels = []
        for trial in read_set_trials(path):
            files = [vectors[f] for f in sets[trial.enroll_id] if f in vectors]
            if len(files) < 2 or trial.probe not in vectors:
                continue
            probe = vectors[trial.probe]
            each = np.array([float(v @ probe) for v in files])
            for name, value in zip(STRATEGIES, (
                    float(enrollment_side(files, [SideQuality(1.0)] * len(files)).vector @ probe),
                    float(each.mean()), float(each.max()), float(each[0]),
                    float(enrollment_side(files[:2], [SideQuality(1.0)] * 2).vector @ probe))):
                scores[name].append(value)
            labels.append(trial.label)
        if sum(labels) and len(labels) > sum(labels):
            out[path.stem] = {"trials": len(labels),
                              **{name: compute_eer(np.array(v), np.array(labels))[0] for name, v in scores.items()}}
    return out


def _gate_limits() -> GateLimits:
    """The service's probe gates, read as the service reads them (its settings)."""
    import os

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "voiceprint_project.settings")
    django.setup()
    from speakers.services.recordings import Purpose, gate_limits

    return gate_limits(Purpose.PROBE)


def _gate_code(q: dict, limits: GateLimits) -> str:
    gate = gate_refusal(clipping_ratio=q["clipping_ratio"], speech_level_dbfs=q["speech_level_dbfs"],
                        snr_db=q["snr_db"], speech_s=q["speech_s"], limits=limits)
    return "passes" if gate is None else gate.code


def gate_refusals(lists: Path, qualities: dict, refused: dict, limits: GateLimits) -> dict:
    """How many probes of each held-out condition the engine and each probe gate refuse."""
    out = {}
    for path in sorted((lists / "trials_dense" / "heldout").glob("*.txt")):
        probes = sorted({t.probe for t in read_set_trials(path)})
        counts: dict[str, int] = defaultdict(int)
        for probe in probes:
            if probe in refused:
                counts[refused[probe]] += 1
                continue
            if probe not in qualities:
                counts["not_embedded"] += 1
                continue
            code = _gate_code(qualities[probe], limits)
            if code != "passes":
                counts[code] += 1
        out[path.stem] = {"probes": len(probes), **counts}
    return out


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def markdown(figures: dict, far: float) -> str:
    lines = [f"Held-out speakers of the calibration set; operating point: FAR {100 * far:g}% "
             "(calibrated); `ok` = FAR within 0.5-2% and FRR within 1.25x the condition's own 1%-FAR FRR.", ""]
    names = list(figures["verification"])
    header = "| condition | trials (targets) | " + " | ".join(
        f"{n}: EER / minDCF / FAR / FRR (own-threshold FRR)" for n in names) + " |"
    lines += [header, "|---|---|" + "---|" * len(names)]
    conditions = list(figures["verification"][names[0]])
    for condition in conditions:
        first = figures["verification"][names[0]][condition]
        cells = []
        for n in names:
            e = figures["verification"][n][condition]
            if "far" not in e:
                cells.append("-")
                continue
            mark = " ok" if calibrated.holds(e, far=far) else ""
            cells.append(f"{_pct(e['eer'])} / {e['min_dcf_0.01']:.3f} / {_pct(e['far'])} / {_pct(e['frr'])} "
                         f"({_pct(e['oracle_frr'])}){mark}")
        lines.append(f"| {condition} | {first['targets'] + first['impostors']} ({first['targets']}) | "
                     + " | ".join(cells) + " |")
    lines += ["", "Identification (held-out): correct match (top-1: the right person ranked first) / false "
              "identification of unknown voices, %", "",
              "| condition | gallery | known / unknown probes | before (cosine 0.50, margin 0.05) | "
              + " | ".join(f"calibrated ({s})" for s in next(iter(figures["identification"].values()))
                           if s not in ("before", "gallery")) + " |"]
    lines.append("|---|---|---|---|" + "---|" * (len(lines[-1].split("|")) - 6))
    for condition, entry in figures["identification"].items():
        before = entry["before"]
        cells = [f"{_pct(entry[s]['correct_match'])} ({_pct(entry[s].get('top1'))}) / "
                 f"{_pct(entry[s]['false_identification'])}" for s in entry if s not in ("before", "gallery")]
        lines.append(f"| {condition} | {entry['gallery']} | {before['known_probes']} / {before['unknown_probes']} | "
                     f"{_pct(before['correct_match'])} / {_pct(before['false_identification'])} | "
                     + " | ".join(cells) + " |")
    lines += ["", "Quality gates on the held-out probes (refusals per condition)", "",
              "| condition | probes | refused (code: count) |", "|---|---|---|"]
    for condition, counts in figures["gates"].items():
        refused = ", ".join(f"{k}: {v}" for k, v in counts.items() if k != "probes") or "none"
        lines.append(f"| {condition} | {counts['probes']} | {refused} |")
    lines += ["", "The calibrated decision on the held-out trials each probe gate refuses (and on those it lets "
              "through): FAR / FRR (own-threshold FRR), %", "",
              "| probes | " + " | ".join(f"calibrated ({s})" for s in figures["decision_under_gates"]) + " |",
              "|---|" + "---|" * len(figures["decision_under_gates"])]
    first = next(iter(figures["decision_under_gates"].values()))
    for group in first:
        cells = []
        for entries in figures["decision_under_gates"].values():
            e = entries[group]
            cells.append("-" if "far" not in e else f"{_pct(e['far'])} / {_pct(e['frr'])} ({_pct(e['oracle_frr'])}) "
                         f"[{e['targets']} targets, {e['impostors']} impostors]")
        lines.append(f"| {group} | " + " | ".join(cells) + " |")
    lines += ["", "Site calibration (`manage.py calibrate`) for acted, same-studio speech: the shipped calibration "
              "re-levelled on the condition's train speakers, measured on its held-out speakers: FAR / FRR "
              "(own-threshold FRR), %", "",
              "| condition | site trials (targets / impostors) | scale | shipped | site-calibrated |", "|---|---|---|---|---|"]
    for condition, entry in figures["site_calibration"].items():
        trials = f"{entry['site_trials']['targets']} / {entry['site_trials']['impostors']}"
        for scale in (k for k in entry if k != "site_trials"):
            e, after = entry[scale]["shipped"], entry[scale]["site"]
            if "far" in e:
                lines.append(f"| {condition} | {trials} | {scale} | {_pct(e['far'])} / {_pct(e['frr'])} "
                             f"({_pct(e['oracle_frr'])}) | {_pct(after['far'])} / {_pct(after['frr'])} "
                             f"({_pct(after['oracle_frr'])}){' ok' if calibrated.holds(after, far=far) else ''} |")
    lines += ["", "Enrollment strategies, held out (EER %, cosine; the enrollment sets of two or more recordings)", "",
              "| condition | trials | " + " | ".join(STRATEGIES) + " |", "|---|---|" + "---|" * len(STRATEGIES)]
    for condition, entry in figures["enrollment"].items():
        lines.append(f"| {condition} | {entry['trials']} | " + " | ".join(_pct(entry[n]) for n in STRATEGIES) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())

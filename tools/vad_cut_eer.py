"""Does cutting long pauses before the embedding help? EER with and without the cut.

For every recording of a trial list (default: the shared multi-speaker set) and for versions of
it made here (long pauses inserted, steady noise mixed in, both), each file is embedded twice
with the engine: the whole recording, and the recording with every pause over
``max_silence_s`` cut to ``keep_silence_s`` (``inference.vad.drop_long_silences``, as the
engine did). Prints EER per version and mode, and the cosine between the two embeddings of each
file. Loads MindSpore: run it alone.

    python -m tools.vad_cut_eer --speech /path/to/shared/speech [--model-dir var/model]
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

from inference import vad
from inference.config import EngineConfig
from inference.embedder import AudioQuality, Embedder, PreparedAudio
from inference.errors import NoSpeechError
from inference.evaluation import evaluate_verification, read_trials
from tools import vad_corpus

VERSIONS: dict[str, Callable[[str, np.ndarray], np.ndarray]] = {
    "original": lambda name, x: x,
    "pauses +1.5 s every 1.5 s (-60 dBFS)": lambda name, x: vad_corpus.insert_pauses(
        x, 1.5, 1.5, -60.0, vad_corpus.seed_for(name, "pauses")),
    "pink noise 10 dB": lambda name, x: vad_corpus.mix(x, "pink", 10.0, vad_corpus.seed_for(name, "pink", 10))[0],
    "pauses +1.5 s, then pink noise 10 dB": lambda name, x: vad_corpus.mix(
        vad_corpus.insert_pauses(x, 1.5, 1.5, -60.0, vad_corpus.seed_for(name, "pauses")), "pink", 10.0,
        vad_corpus.seed_for(name, "pauses", "pink", 10))[0],
    "pauses +3 s every 2 s, then white+hum60 6 dB": lambda name, x: vad_corpus.mix(
        vad_corpus.insert_pauses(x, 3.0, 2.0, -60.0, vad_corpus.seed_for(name, "pauses3")), "white+hum60", 6.0,
        vad_corpus.seed_for(name, "pauses3", "white+hum60", 6))[0],
}


def _embed(embedder: Embedder, samples: np.ndarray, cut: bool) -> np.ndarray:
    config = embedder.config
    mask, report = vad.detect_speech(samples, config.audio.sample_rate, config.vad)
    speech = vad.drop_long_silences(samples, mask, config.audio.sample_rate, config.vad) if cut else samples
    quality = AudioQuality(clipping_ratio=0.0, snr_db=report.snr_db, speech_ratio=report.speech_ratio,
                           speech_level_dbfs=report.speech_level_dbfs)
    prepared = PreparedAudio(speech=speech, duration_s=samples.size / config.audio.sample_rate,
                             speech_s=report.speech_s, quality=quality, segments=report.segments)
    return embedder._embed_prepared([prepared])[0].vector


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speech", type=Path, required=True, help="the shared speech directory (holds multi/)")
    parser.add_argument("--model-dir", type=Path, default=Path("var/model"))
    parser.add_argument("--versions", nargs="*", default=list(VERSIONS), help="which versions to run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    root = args.speech / "multi"
    trials = read_trials(root / "trials.txt")
    files = sorted({p for t in trials for p in (t.a, t.b)})
    embedder = Embedder.load(dataclasses.replace(EngineConfig(), model_dir=args.model_dir))
    originals = {rel: vad_corpus.read_wave(root / rel) for rel in files}
    print(f"{len(files)} files, {len(trials)} trials ({sum(t.label for t in trials)} target)\n")
    print("| version | EER whole | EER cut | cosine whole vs cut: min / median | audio cut away |")
    print("|---|---|---|---|---|")
    for version in args.versions:
        started = time.perf_counter()
        made = {rel: VERSIONS[version](rel, x) for rel, x in originals.items()}
        vectors: dict[bool, dict[str, np.ndarray]] = {False: {}, True: {}}
        kept = []
        for rel, x in made.items():
            try:
                for cut in (False, True):
                    vectors[cut][rel] = _embed(embedder, x, cut)
                mask, _ = vad.detect_speech(x, embedder.config.audio.sample_rate, embedder.config.vad)
                kept.append(vad.drop_long_silences(x, mask, 16_000, embedder.config.vad).size / x.size)
            except NoSpeechError:
                print(f"  {version}: {rel} is no_speech", file=sys.stderr)
        eers = []
        for cut in (False, True):
            table = vectors[cut]
            report = evaluate_verification(trials, root, lambda path, t=table: t[path.relative_to(root).as_posix()],
                                           progress=False)
            eers.append(100 * report["raw"]["eer"])
        cosines = np.array([float(vectors[False][r] @ vectors[True][r]) for r in vectors[True]])
        print(f"| {version} | {eers[0]:.2f}% | {eers[1]:.2f}% | {cosines.min():.3f} / {np.median(cosines):.4f} "
              f"| {100 * (1 - np.mean(kept)):.0f}% |", flush=True)
        logging.getLogger(__name__).info("%s took %.0f s", version, time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

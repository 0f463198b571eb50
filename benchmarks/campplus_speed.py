"""CAM++ beside ECAPA: forward-pass time in one process, load and compile, and the memory of a process with both.

``python -m benchmarks.campplus_speed [--rounds 5] [--repeats 10] [--threads 1] [--lengths 3 10]``

Speed: one process loads ECAPA (:class:`inference.embedder.Embedder`) and CAM++
(:class:`inference.campplus_model.CampplusModel`); real speech of each length (the fixture
recordings joined, ``benchmarks.common.speech_of``) is decoded and its speech found once, each
network's features are made once, then ``--rounds`` rounds alternate the two forward passes,
``--repeats`` calls each; the median call of every round, and the median and best of those, are
printed with the ratio CAM++ / ECAPA of the medians (the same machine, the same moment). The
front ends (features) are timed the same way.

Memory: a fresh process per case (ECAPA alone, ECAPA and CAM++) loads, then embeds real speech of
every whole length from 1 s to 30 s through every network it has: resident memory after load, after
the last length, and the peak. The figures are the engine's alone; a server worker adds Django,
the index and the rest.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from benchmarks.common import REPO, machine_note, rss_mb, speech_of, wav_bytes


def _load(model_dir: str, threads: int, campplus: bool):
    from inference import EngineConfig
    from inference.campplus_model import CampplusModel
    from inference.embedder import Embedder

    config = EngineConfig(model_dir=model_dir, threads=threads)
    started = time.perf_counter()
    ecapa = Embedder.load(config)
    ecapa_s = time.perf_counter() - started
    if not campplus:
        return config, ecapa, None, {"ecapa_load_s": ecapa_s, "ecapa_compile_s": ecapa.compile_seconds}
    started = time.perf_counter()
    model = CampplusModel.load(config)
    return config, ecapa, model, {"ecapa_load_s": ecapa_s, "ecapa_compile_s": ecapa.compile_seconds,
                                  "campplus_load_s": time.perf_counter() - started,
                                  "campplus_compile_s": model.compile_seconds}


def _timed(call, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3


def speed(model_dir: str, threads: int, lengths: list[float], rounds: int, repeats: int) -> dict:
    from inference.embedder import prepare_audio

    config, ecapa, campplus, loads = _load(model_dir, threads, campplus=True)
    out = {"loads": loads, "lengths": {}}
    for seconds in lengths:
        prepared = prepare_audio(wav_bytes(speech_of(seconds)), config)
        windows = {"ecapa": ecapa.features(prepared), "campplus": campplus.features(prepared)}
        forward = {"ecapa": lambda w=windows["ecapa"]: ecapa.forward(w),
                   "campplus": lambda w=windows["campplus"]: campplus.forward(w)}
        features = {"ecapa": lambda p=prepared: ecapa.features(p), "campplus": lambda p=prepared: campplus.features(p)}
        for f in (*forward.values(), *features.values()):  # the first call of a length warms caches
            f()
        figures = {f"{kind}_{name}": [] for kind in ("forward", "features") for name in forward}
        for _ in range(rounds):
            for name in forward:
                figures[f"forward_{name}"].append(_timed(forward[name], repeats))
                figures[f"features_{name}"].append(_timed(features[name], repeats))
        out["lengths"][seconds] = {
            "speech_s": prepared.speech_s,
            "frames": {name: sum(w.shape[0] for w in windows[name]) for name in windows},
            **{key: {"median_ms": statistics.median(v), "best_ms": min(v), "rounds_ms": v} for key, v in figures.items()},
        }
    return out


def memory(model_dir: str, threads: int, campplus: bool, longest: int) -> dict:
    from inference.embedder import prepare_audio

    config, ecapa, model, loads = _load(model_dir, threads, campplus)
    after_load = rss_mb()
    for seconds in range(1, longest + 1):
        prepared = prepare_audio(wav_bytes(speech_of(seconds)), config)
        ecapa.forward(ecapa.features(prepared))
        if model is not None:
            model.forward(model.features(prepared))
    return {"loads": loads, "rss_after_load_mb": after_load, "rss_after_all_mb": rss_mb(),
            "peak_rss_mb": rss_mb(field="VmHWM")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.campplus_speed", description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", default=str(REPO / "var" / "model"))
    parser.add_argument("--threads", type=int, default=1, help="MindSpore threads (default 1: a worker per core)")
    parser.add_argument("--lengths", type=float, nargs="+", default=[3.0, 10.0], help="seconds of speech")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--longest", type=int, default=30, help="memory: every length from 1 s to this")
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("--child", choices=("speed", "ecapa", "both"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "speed":
        print(json.dumps(speed(args.model_dir, args.threads, args.lengths, args.rounds, args.repeats)))
        return 0
    if args.child:
        print(json.dumps(memory(args.model_dir, args.threads, args.child == "both", args.longest)))
        return 0

    def child(kind: str) -> dict:
        run = subprocess.run([sys.executable, "-m", "benchmarks.campplus_speed", "--child", kind,
                              "--model-dir", args.model_dir, "--threads", str(args.threads),
                              "--lengths", *map(str, args.lengths), "--rounds", str(args.rounds),
                              "--repeats", str(args.repeats), "--longest", str(args.longest)],
                             cwd=REPO, capture_output=True, text=True)
        if run.returncode != 0:
            raise SystemExit(f"{kind} child failed:\n{run.stderr[-3000:]}")
        return json.loads(run.stdout.strip().splitlines()[-1])

    print(f"{machine_note()}; MindSpore threads {args.threads}; {args.rounds} rounds x {args.repeats} calls, "
          "ECAPA and CAM++ alternating in one process")
    figures = {"speed": child("speed")}
    loads = figures["speed"]["loads"]
    print(f"load + compile: ECAPA {loads['ecapa_load_s']:.2f} s (compile {loads['ecapa_compile_s']:.2f} s), "
          f"CAM++ {loads['campplus_load_s']:.2f} s (compile {loads['campplus_compile_s']:.2f} s)")
    print(f"{'speech':>8} {'ECAPA forward':>15} {'CAM++ forward':>15} {'CAM++/ECAPA':>12} "
          f"{'ECAPA features':>15} {'CAM++ features':>15}   (median of round medians; best round)")
    for seconds, row in figures["speed"]["lengths"].items():
        e, c = row["forward_ecapa"], row["forward_campplus"]
        fe, fc = row["features_ecapa"], row["features_campplus"]
        print(f"{float(seconds):>7.0f}s {e['median_ms']:>9.1f} ms ({e['best_ms']:.0f}) {c['median_ms']:>8.1f} ms "
              f"({c['best_ms']:.0f}) {c['median_ms'] / e['median_ms']:>11.2f}x {fe['median_ms']:>12.1f} ms "
              f"{fc['median_ms']:>12.1f} ms")
    print(f"memory, a fresh process each, every length 1-{args.longest} s through each network it has:")
    for kind, label in (("ecapa", "ECAPA alone"), ("both", "ECAPA + CAM++")):
        m = figures[kind] = child(kind)
        print(f"  {label:<14} RSS after load {m['rss_after_load_mb']:.0f} MB, after all lengths "
              f"{m['rss_after_all_mb']:.0f} MB, peak {m['peak_rss_mb']:.0f} MB")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(figures, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

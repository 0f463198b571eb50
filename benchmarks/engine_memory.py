"""Memory and compile stalls of the engine over every length, per window size.

``python -m benchmarks.engine_memory [--windows 801 2001 ...] [--lengths 1 2 ... 60]``

For each window length (the longest stretch embedded in one forward pass, in frames), a fresh
process loads the engine (its graph compiled at load), then embeds real speech of every whole
length from 1 s to 60 s (``--lengths``) twice, and reports: resident memory after load and after
the last length, the peak, and the largest "stall" (first call of a length minus its second
call: the time a length's first request spends on anything the second does not, compilation
included), in wall time and in the process's CPU time (which other processes on a shared
machine do not inflate). The figures are the engine's alone; a server worker adds Django,
FAISS and the index.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from benchmarks.common import REPO, machine_note, rss_mb, speech_of, wav_bytes


def run_window(window: int, lengths: list[int], model_dir: str) -> dict:
    """Child mode."""
    from inference import EngineConfig
    from inference.embedder import Embedder

    started = time.perf_counter()
    embedder = Embedder.load(EngineConfig(model_dir=model_dir, window_frames=window))
    load_s = time.perf_counter() - started
    after_load = rss_mb()
    stalls = []
    for seconds in lengths:
        data = wav_bytes(speech_of(seconds))
        first, first_cpu = time.perf_counter(), time.process_time()
        embedder.embed(data)
        second, second_cpu = time.perf_counter(), time.process_time()
        embedder.embed(data)
        done, done_cpu = time.perf_counter(), time.process_time()
        stalls.append({"seconds": seconds, "first_ms": (second - first) * 1e3, "second_ms": (done - second) * 1e3,
                       "first_cpu_ms": (second_cpu - first_cpu) * 1e3, "second_cpu_ms": (done_cpu - second_cpu) * 1e3})
    worst = max(stalls, key=lambda s: s["first_ms"] - s["second_ms"])
    worst_cpu = max(stalls, key=lambda s: s["first_cpu_ms"] - s["second_cpu_ms"])
    return {
        "window_frames": window,
        "load_s": load_s,
        "compile_s": embedder.compile_seconds,
        "rss_after_load_mb": after_load,
        "rss_after_all_mb": rss_mb(),
        "peak_rss_mb": rss_mb(field="VmHWM"),
        "worst_stall_ms": worst["first_ms"] - worst["second_ms"],
        "worst_stall_seconds": worst["seconds"],
        "worst_cpu_stall_ms": worst_cpu["first_cpu_ms"] - worst_cpu["second_cpu_ms"],
        "worst_cpu_stall_seconds": worst_cpu["seconds"],
        "calls": stalls,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.engine_memory", description=__doc__.split("\n")[0])
    parser.add_argument("--windows", type=int, nargs="+", default=[801, 1001, 1501, 2001, 3001])
    parser.add_argument("--lengths", type=int, nargs="+", default=list(range(1, 61)), help="seconds of speech")
    parser.add_argument("--model-dir", default=str(REPO / "var" / "model"))
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_window(args.child, args.lengths, args.model_dir)))
        return 0
    print(f"{machine_note()}; lengths {args.lengths[0]}-{args.lengths[-1]} s of real speech ({len(args.lengths)} lengths), "
          "each twice, one fresh process per window")
    print(f"{'window':>8}{'load s':>8}{'compile s':>10}{'RSS load':>10}{'RSS after':>11}{'peak':>8}{'worst stall (wall)':>20}{'(CPU)':>16}")
    results = []
    for window in args.windows:
        child = subprocess.run(
            [sys.executable, "-m", "benchmarks.engine_memory", "--child", str(window), "--lengths",
             *map(str, args.lengths), "--model-dir", args.model_dir],
            cwd=REPO, capture_output=True, text=True,
        )
        if child.returncode != 0:
            raise SystemExit(f"window {window} failed:\n{child.stderr[-3000:]}")
        r = json.loads(child.stdout.strip().splitlines()[-1])
        results.append(r)
        print(f"{window:>8}{r['load_s']:>8.2f}{r['compile_s']:>10.2f}{r['rss_after_load_mb']:>8.0f}MB"
              f"{r['rss_after_all_mb']:>9.0f}MB{r['peak_rss_mb']:>6.0f}MB"
              f"{r['worst_stall_ms']:>12.0f} ms @{r['worst_stall_seconds']}s"
              f"{r['worst_cpu_stall_ms']:>9.0f} ms @{r['worst_cpu_stall_seconds']}s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

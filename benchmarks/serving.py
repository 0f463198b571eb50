"""Throughput of the served API under concurrent clients, with locust (headless) against gunicorn.

``python -m benchmarks.serving [--layouts 1x2 2x1 ...] [--clients 1 2 4 8] [--probes verify:3 ...] [--run-time 20]``

A layout ``WxE`` is W gunicorn workers with E MindSpore threads each (``auto``: what
voiceprint_project/gunicorn.conf.py picks for this host); every worker also runs
``--threads`` request threads. For each layout, a fresh database with two enrolled speakers,
then for each probe (verify or identify of 3 s or 10 s of real speech) and each number of
concurrent clients, locust runs for ``--run-time`` seconds after a warm-up request and reports
requests/s, p50, p95 and failures. The engine bound is ``cores x 1000 / engine ms`` with the
engine's ms per request for the same probe measured in this run (one process, MindSpore's
default threads, whole path from WAV bytes); the table gives requests/s as a fraction of it, and
of what ``cores`` engines running side by side (one thread each, no server) actually reach here.
Resident memory of every worker is read at the end of each layout.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import REPO, children, machine_note, rss_mb, speech_of, wav_bytes
from benchmarks.service import Deployment


def engine_ms(probes: list[tuple[str, float]], repeats: int) -> dict[float, float]:
    """Child process: median ms of the engine's whole path per probe length (no server)."""
    code = (
        "import json, statistics, sys, time\n"
        "from benchmarks.common import speech_of, wav_bytes\n"
        "from inference import EngineConfig\nfrom inference.embedder import Embedder\n"
        "e = Embedder.load(EngineConfig(model_dir=sys.argv[1]))\nout = {}\n"
        "for s in json.loads(sys.argv[2]):\n"
        "    d = wav_bytes(speech_of(s)); e.embed(d); t = []\n"
        f"    for _ in range({repeats}):\n"
        "        a = time.perf_counter(); e.embed(d); t.append((time.perf_counter() - a) * 1e3)\n"
        "    out[s] = statistics.median(t)\n"
        "print(json.dumps(out))\n"
    )
    seconds = sorted({s for _, s in probes})
    model_dir = os.environ.get("VOICEPRINT_MODEL_DIR", str(REPO / "var" / "model"))
    done = subprocess.run([sys.executable, "-c", code, model_dir, json.dumps(seconds)], cwd=REPO,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return {float(k): v for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items()}


def engine_parallel_rps(probes: list[tuple[str, float]], repeats: int, processes: int) -> dict[float, float]:
    """``processes`` engines side by side (1 MindSpore thread each, started together): their summed requests/s.

    What the hardware gives when every core runs an engine: on a VM whose cores share a physical
    core's units, or memory bandwidth, this is below ``cores x`` one engine's rate.
    """
    code = (
        "import json, sys, time\n"
        "from benchmarks.common import speech_of, wav_bytes\n"
        "from inference import EngineConfig\nfrom inference.embedder import Embedder\n"
        "e = Embedder.load(EngineConfig(model_dir=sys.argv[1], threads=1))\nout = {}\n"
        "for s in json.loads(sys.argv[2]):\n"
        "    d = wav_bytes(speech_of(s)); e.embed(d)\n"
        "    start = float(sys.argv[3]) + 15.0 * json.loads(sys.argv[2]).index(s)\n"
        "    while time.time() < start: time.sleep(0.01)\n"
        f"    a = time.perf_counter()\n    for _ in range({repeats}): e.embed(d)\n"
        f"    out[s] = {repeats} / (time.perf_counter() - a)\n"
        "print(json.dumps(out))\n"
    )
    seconds = sorted({s for _, s in probes})
    model_dir = os.environ.get("VOICEPRINT_MODEL_DIR", str(REPO / "var" / "model"))
    start = str(time.time() + 10.0)  # every child loaded and warm before any starts timing
    children_ = [subprocess.Popen([sys.executable, "-c", code, model_dir, json.dumps(seconds), start], cwd=REPO,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(processes)]
    totals: dict[float, float] = {s: 0.0 for s in seconds}
    for child in children_:
        out, err = child.communicate()
        if child.returncode != 0:
            raise SystemExit(err[-3000:])
        for k, v in json.loads(out.strip().splitlines()[-1]).items():
            totals[float(k)] += v
    return totals


def run_locust(url: str, operation: str, probe: Path, key: str, speaker: str, clients: int, run_time: int,
               workdir: Path) -> dict:
    prefix = workdir / f"{operation}-{probe.stem}-{clients}"
    env = dict(os.environ, BENCH_OPERATION=operation, BENCH_PROBE=str(probe), BENCH_API_KEY=key,
               BENCH_SPEAKER_ID=speaker)
    done = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(REPO / "benchmarks" / "locustfile.py"), "--headless",
         "-u", str(clients), "-r", str(clients), "--run-time", f"{run_time}s", "--host", url, "--csv", str(prefix),
         "--only-summary", "--stop-timeout", "30", "--loglevel", "WARNING"],
        cwd=REPO, env=env, capture_output=True, text=True,
    )
    rows = list(csv.DictReader(open(f"{prefix}_stats.csv")))
    total = next(r for r in rows if r["Name"] == "Aggregated")
    return {
        "requests": int(total["Request Count"]),
        "failures": int(total["Failure Count"]),
        "rps": float(total["Requests/s"]),
        "p50_ms": float(total["50%"]),
        "p95_ms": float(total["95%"]),
        "locust_exit": done.returncode,
    }


def parse_layout(text: str) -> tuple[int | None, int | None]:
    if text == "auto":
        return None, None
    workers, engine_threads = text.split("x")
    return int(workers), int(engine_threads)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serving", description=__doc__.split("\n")[0])
    parser.add_argument("--layouts", nargs="+", default=["auto"], help="WxE: W workers, E MindSpore threads each; or auto")
    parser.add_argument("--threads", type=int, help="request threads per worker (default: gunicorn.conf.py's)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--probes", nargs="+", default=["verify:3", "verify:10", "identify:3", "identify:10"])
    parser.add_argument("--run-time", type=int, default=20, help="seconds per locust run")
    parser.add_argument("--engine-repeats", type=int, default=15)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)

    cores = os.cpu_count() or 1
    probes = [(p.split(":")[0], float(p.split(":")[1])) for p in args.probes]
    workdir = Path(tempfile.mkdtemp(prefix="voiceprint-serving-"))
    probe_files = {}
    for _, seconds in probes:
        path = workdir / f"probe-{seconds:g}s.wav"
        path.write_bytes(wav_bytes(speech_of(seconds)))
        probe_files[seconds] = path
    print(f"{machine_note()}; locust headless, closed loop (no think time), {args.run_time} s per run")
    engine = engine_ms(probes, args.engine_repeats)
    for seconds, ms in engine.items():
        print(f"engine alone, {seconds:g} s probe: {ms:.1f} ms per request -> bound {cores} x 1000 / {ms:.1f} = "
              f"{cores * 1000 / ms:.1f} req/s")
    parallel = engine_parallel_rps(probes, args.engine_repeats, cores)
    for seconds, rps in parallel.items():
        print(f"{cores} engines side by side (1 thread each), {seconds:g} s probe: {rps:.1f} req/s "
              f"({rps / (cores * 1000 / engine[seconds]):.0%} of the bound): what this machine's cores give")
    results = []
    for layout in args.layouts:
        workers, engine_threads = parse_layout(layout)
        deployment = Deployment.create()
        server = deployment.start(workers=workers, threads=args.threads, engine_threads=engine_threads,
                                  GUNICORN_ACCESSLOG="")
        ready_s = server.wait_ready()
        deployment.enroll(server)
        time.sleep(2.0)  # every worker loads its model after the fork; let the others finish too
        print(f"\nlayout {layout}: {workers or 'auto'} workers x {engine_threads or 'auto'} engine threads "
              f"(request threads {args.threads or 'per gunicorn.conf.py'}); ready after {ready_s:.1f} s")
        print(f"{'probe':<13}{'clients':>8}{'req/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'of bound':>10}"
              f"{'of side by side':>17}{'failed':>8}")
        for operation, seconds in probes:
            for _ in range(2 * (workers or cores)):  # a warm-up request per worker and probe
                server.upload(f"/api/v1/{operation}", {"speaker_id": deployment.speakers["alice"]} if operation == "verify" else {},
                              [("audio", "probe.wav", probe_files[seconds].read_bytes())])
            for clients in args.clients:
                r = run_locust(server.url, operation, probe_files[seconds], deployment.key,
                               deployment.speakers["alice"], clients, args.run_time, workdir)
                bound = cores * 1000 / engine[seconds]
                r.update(layout=layout, operation=operation, seconds=seconds, clients=clients, bound_rps=bound,
                         fraction=r["rps"] / bound, fraction_of_parallel=r["rps"] / parallel[seconds])
                results.append(r)
                print(f"{operation + f' {seconds:g} s':<13}{clients:>8}{r['rps']:>8.2f}{r['p50_ms']:>9.0f}{r['p95_ms']:>9.0f}"
                      f"{r['fraction']:>9.0%}{r['fraction_of_parallel']:>16.0%}{r['failures']:>8}")
        workers_rss = [rss_mb(pid) for pid in children(server.process.pid)]
        print(f"worker RSS after the runs: {', '.join(f'{m:.0f} MB' for m in workers_rss)}")
        results.append({"layout": layout, "worker_rss_mb": workers_rss})
        server.stop()
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"engine_ms": engine, "engines_side_by_side_rps": parallel, "results": results}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

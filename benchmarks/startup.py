"""From process start to the first verify answered, with the model prepared.

``python -m benchmarks.startup [--rounds 5] [--server gunicorn|runserver] [--workers N]``

Prepares a database with two enrolled speakers (one server run, not timed), then for each
round starts a fresh server with the repository's configuration and, from the moment the
process is spawned, sends a verify of 3 s of real speech as soon as the port accepts it (a
request waits for the model if it arrives first) while another thread polls ``/api/v1/health``
and ``/api/v1/ready`` every 50 ms. Prints, per round and as medians: when health first
answered and what it said, when readiness turned 200, when the first verify was answered, and
how long that verify took from its sending, and the CPU time the server's processes had used by
then (which other processes on a shared machine do not inflate: on an idle machine the wall
time approaches it divided by the cores in use). Target (issue 10): first verify <= 5 s.
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time

from benchmarks.common import children, machine_note, median, speech_of, wav_bytes
from benchmarks.service import Deployment
from benchmarks.worker_memory import cpu_seconds


def one_round(deployment: Deployment, server_kind: str, workers: int | None, probe: bytes) -> dict:
    server = deployment.start(server=server_kind, workers=workers)
    timeline: list[tuple[float, str, int, str]] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            for path in ("/api/v1/health", "/api/v1/ready"):
                try:
                    status, body = server.get(path, timeout=2)
                    timeline.append((time.perf_counter() - server.started, path, status, body.get("status", "")))
                except OSError:
                    pass
            time.sleep(0.05)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        sent_at, first_verify = server.first_answer("/api/v1/verify", {"speaker_id": deployment.speakers["alice"]},
                                                    [("audio", "probe.wav", probe)])
        cpu = sum(cpu_seconds(pid) for pid in [server.process.pid, *children(server.process.pid)])
    finally:
        stop.set()
        poller.join()
        server.stop()
    health = [t for t in timeline if t[1] == "/api/v1/health"]
    ready = [t for t in timeline if t[1] == "/api/v1/ready" and t[2] == 200]
    return {
        "first_health_s": health[0][0] if health else None,
        "health_states": sorted({t[3] for t in health}, key=["cold", "warming_up", "ready", "failed"].index),
        "ready_s": ready[0][0] if ready else None,
        "ready_503_seen": any(t[1] == "/api/v1/ready" and t[2] == 503 for t in timeline),
        "first_verify_s": first_verify,
        "first_verify_sent_s": sent_at,
        "cpu_s": cpu,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.startup", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--server", choices=["gunicorn", "runserver"], default="gunicorn")
    parser.add_argument("--workers", type=int, help="default: what voiceprint_project/gunicorn.conf.py picks for this host")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)

    deployment = Deployment.create()
    setup = deployment.start(server="gunicorn", workers=1)
    setup.wait_ready()
    deployment.enroll(setup)
    setup.stop()
    probe = wav_bytes(speech_of(3.0))
    print(f"{machine_note()}; {args.server}, workers {args.workers or 'per gunicorn.conf.py'}; seconds from process start")
    print(f"{'round':>5}{'health':>9}{'ready':>8}{'verify sent':>13}{'verify answered':>17}{'CPU s':>7}  health said")
    rounds = []
    for i in range(args.rounds):
        r = one_round(deployment, args.server, args.workers, probe)
        rounds.append(r)
        print(f"{i + 1:>5}{r['first_health_s'] or float('nan'):>9.2f}{r['ready_s'] or float('nan'):>8.2f}"
              f"{r['first_verify_sent_s']:>13.2f}{r['first_verify_s']:>17.2f}{r['cpu_s']:>7.1f}  {' -> '.join(r['health_states'])}"
              f"{' (ready 503 before)' if r['ready_503_seen'] else ''}")
    med = {k: median([r[k] for r in rounds if r[k] is not None]) for k in ("first_health_s", "ready_s", "first_verify_s", "cpu_s")}
    print(f"median: health {med['first_health_s']:.2f} s, ready {med['ready_s']:.2f} s, "
          f"first verify answered {med['first_verify_s']:.2f} s (target <= 5 s); server CPU by then {med['cpu_s']:.1f} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rounds": rounds, "median": med}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the voiceprint change log's row lock costs writers: voiceprint writes per second with and without it.

``python -m benchmarks.change_log [--database-url postgres://.../db] [--threads 1 2 4 8] [--seconds 5]``

Every voiceprint write ends its transaction with ``index_change_record``: it locks the one
``IndexState`` row, bumps the generation and appends to the log, so generations commit in order
(a reader that sees generation N has every change up to N). That serialises the tail of every
voiceprint transaction across the whole cluster. This measures how much: T threads, each in a
loop of transactions that rewrite one speaker's voiceprint columns (a random speaker of 1,000),
once with the change record (as the service does) and once without (the reference), alternating,
in one run. Printed: transactions per second, p50 / p95 latency, and their ratio. The database
named by ``--database-url`` is dropped and created again (never point it at data you keep); the
default is a SQLite file in a temporary directory.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SPEAKERS = 1000


def _setup(database_url: str | None) -> str:
    if database_url:
        from benchmarks.service_scale import fresh_postgres

        fresh_postgres(database_url)
        os.environ["DATABASE_URL"] = database_url
    else:
        os.environ["DATABASE_URL"] = f"sqlite:///{Path(tempfile.mkdtemp(prefix='voiceprint-log-')) / 'db.sqlite3'}"
    os.environ["DATABASE_CONN_MAX_AGE"] = "600"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "voiceprint_project.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return "PostgreSQL" if database_url else "SQLite"


def _run(threads: int, seconds: float, with_log: bool, ids: list[uuid.UUID]) -> dict:
    import random

    from django.db import connection, transaction

    from speakers.models import Speaker
    from speakers.search.index import index_change_record

    latencies: list[list[float]] = [[] for _ in range(threads)]
    stop = time.perf_counter() + seconds
    barrier = threading.Barrier(threads)

    def work(slot: int) -> None:
        rng = random.Random(slot)
        barrier.wait()
        while time.perf_counter() < stop:
            speaker_id = rng.choice(ids)
            started = time.perf_counter()
            with transaction.atomic():
                Speaker.objects.filter(pk=speaker_id).update(voiceprint_speech_s=8.0 + rng.random(),
                                                             voiceprint_snr_db=30.0)
                if with_log:
                    index_change_record(speaker_id=speaker_id)
            latencies[slot].append((time.perf_counter() - started) * 1e3)
        connection.close()

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    started = time.perf_counter()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - started
    flat = sorted(x for per in latencies for x in per)
    return {"tps": len(flat) / elapsed, "p50": statistics.median(flat), "p95": flat[int(0.95 * (len(flat) - 1))]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="a PostgreSQL database to drop and create (default: SQLite)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--seconds", type=float, default=5.0, help="per cell")
    args = parser.parse_args(argv)
    engine = _setup(args.database_url)

    from benchmarks.common import machine_note
    from speakers.models import Speaker

    Speaker.objects.bulk_create([Speaker(display_name=f"s{i}") for i in range(SPEAKERS)])
    ids = list(Speaker.objects.values_list("id", flat=True))
    print(f"{machine_note()}; {engine}; transactions rewriting one of {SPEAKERS} speakers' voiceprint columns, "
          f"{args.seconds:g} s per cell, with and without the change record alternating")
    print(f"{'threads':>7}{'with log tx/s':>15}{'p50/p95 ms':>14}{'without tx/s':>14}{'p50/p95 ms':>14}{'ratio':>8}")
    for threads in args.threads:
        without = _run(threads, args.seconds, False, ids)
        with_log = _run(threads, args.seconds, True, ids)
        print(f"{threads:>7}{with_log['tps']:>15.0f}{with_log['p50']:>7.1f}/{with_log['p95']:<6.1f}"
              f"{without['tps']:>14.0f}{without['p50']:>7.1f}/{without['p95']:<6.1f}{with_log['tps'] / without['tps']:>8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

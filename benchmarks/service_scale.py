"""The embedded search path at scale, through the service's own rows: identify and start-up with N voiceprints.

``python -m benchmarks.service_scale [--sizes 10000 100000] [--database-url postgres://.../db] [--queries 30]``

For each size: a fresh database (SQLite in a temporary directory, or the PostgreSQL database
named by ``--database-url``, dropped and created again: never point it at data you keep) with
N speakers whose voiceprints are synthetic unit vectors sealed by the service's own crypto
(real encrypted rows, as many bytes as real ones), plus Alice and Bob enrolled from real
recordings. Then gunicorn with the host's layout is started and measured:

* start-up: process start -> the first identify answered (each worker rebuilds its index from
  the rows after it loads the model; a request waits for it);
* identify of 3 s of real speech, end to end over HTTP, p50 / p95, and the engine's own time for
  the same recording in a separate process: the difference is everything else (search,
  calibration, database, HTTP);
* resident memory of every worker;
* an enrollment made through the server: time until identify names the new speaker in six
  answers in a row (requests go to any worker, so every worker has caught up).

The N voiceprints belong to the benchmark key's tenant; ``--other-tenant`` seeds as many again in a
second tenant, which identify must not search: the difference is what tenant scoping costs.

With ``--milvus`` the workers search one shared Milvus collection (milvus-lite's engine serving
a port, as a Milvus server would): after seeding, ``manage.py rebuild_index`` builds the
collection from the rows (timed: "tier build s"), and start-up no longer rebuilds anything per
worker. ``--milvus-index HNSW`` picks the collection's index (``VOICEPRINT_MILVUS_INDEX``).

The backend-only figures (flat / IVF / Milvus, 1M, recall) are ``benchmarks/index_scale.py``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from benchmarks.common import REPO, children, machine_note, milvus_lite_server, rss_mb, speech_of, wav_bytes
from benchmarks.service import ENROLL, SPEECH, Deployment
from benchmarks.serving import engine_ms

SEED_CODE = """
import sys, uuid, numpy as np, django
django.setup()
from speakers import crypto
from speakers.models import Speaker, Tenant
from speakers.tenancy import default_tenant, tenant_data_key
from inference.prepare import model_version
n, others, version = int(sys.argv[1]), int(sys.argv[2]), model_version()
rng = np.random.default_rng(1)
tenants = [(default_tenant(), n)]
if others:
    tenants.append((Tenant.objects.get_or_create(slug="bench-other")[0], others))
for tenant, count in tenants:
    key = tenant_data_key(tenant)
    batch = []
    for i in range(count):
        v = rng.standard_normal(192).astype(np.float32); v /= np.linalg.norm(v)
        sid = uuid.uuid4()
        sealed = crypto.vector_encrypt(v, context=Speaker.voiceprint_context(sid, version), key=key)
        batch.append(Speaker(id=sid, tenant=tenant, display_name=f"synthetic {i}", voiceprint_ciphertext=sealed.ciphertext,
                             voiceprint_key_id=sealed.key_id, voiceprint_model_version=version, voiceprint_speech_s=8.0,
                             voiceprint_snr_db=30.0, voiceprint_bandwidth_hz=8000.0))
        if len(batch) == 5000 or i == count - 1:
            Speaker.objects.bulk_create(batch)
            batch = []
print(Speaker.objects.count())
"""


def fresh_postgres(url: str) -> None:
    """Drop and create the database ``url`` names (connecting to the server's ``postgres`` database)."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def one_size(n: int, database_url: str | None, queries: int, engine: float, milvus: str, others: int = 0) -> dict:
    with ExitStack() as stack:
        env = {}
        if database_url:
            fresh_postgres(database_url)
            env["DATABASE_URL"] = database_url
        if milvus:
            uri = stack.enter_context(milvus_lite_server(Path(tempfile.mkdtemp(prefix="voiceprint-milvus-"))))
            env.update(VOICEPRINT_INDEX_BACKEND="milvus", VOICEPRINT_MILVUS_URI=uri, VOICEPRINT_MILVUS_INDEX=milvus)
        return _measure(n, queries, engine, Deployment.create(**env), milvus=bool(milvus), others=others)


def _measure(n: int, queries: int, engine: float, deployment: Deployment, *, milvus: bool, others: int) -> dict:
    started = time.perf_counter()
    seeded = subprocess.run([sys.executable, "-c", SEED_CODE, str(n), str(others)], cwd=REPO, env=deployment.env,
                            capture_output=True, text=True)
    if seeded.returncode != 0:
        raise SystemExit(seeded.stderr[-3000:])
    seed_s = time.perf_counter() - started
    # Alice and Bob from real recordings (a server run that is not timed)
    server = deployment.start()
    try:  # a failure here (SystemExit) must not leave the server running
        server.wait_ready(timeout=900)
        deployment.enroll(server)
    finally:
        server.stop()
    tier_s = None
    if milvus:  # the shared collection from the rows, once (what an operator runs before switching)
        started = time.perf_counter()
        deployment.manage("rebuild_index")
        tier_s = time.perf_counter() - started

    server = deployment.start()
    try:
        return _timed(n, queries, engine, server, seed_s, tier_s)
    finally:
        server.stop()


def _timed(n: int, queries: int, engine: float, server, seed_s: float, tier_s: float | None) -> dict:
    probe = [("audio", "probe.wav", wav_bytes(speech_of(3.0)))]
    _, first = server.first_answer("/api/v1/identify", {}, probe, timeout=900)
    time.sleep(1.0)
    for _ in range(4):  # every worker warm
        server.upload("/api/v1/identify", {}, probe)
    latencies = []
    for _ in range(queries):
        sent = time.perf_counter()
        status, body = server.upload("/api/v1/identify", {}, probe)
        latencies.append((time.perf_counter() - sent) * 1000)
        assert status == 200, body
    workers_rss = [rss_mb(pid) for pid in children(server.process.pid)]

    # an enrollment through the server: how soon does every worker's identify name her?
    status, carol = server.json("POST", "/api/v1/speakers", {"external_id": "carol-bench"})
    files = [("audio", f"{c}.wav", (SPEECH / f"{c}.wav").read_bytes()) for c in ENROLL["alice"]]
    their_probe = [("audio", "a_snt5.wav", (SPEECH / "a_snt5.wav").read_bytes())]
    status, _ = server.upload(f"/api/v1/speakers/{carol['id']}/enrollments", {}, files)
    committed = time.perf_counter()
    in_a_row, visible = 0, None
    while visible is None and time.perf_counter() - committed < 60:
        _, body = server.upload("/api/v1/identify", {"top_k": "3"}, their_probe)
        named = [c["speaker_id"] for c in body.get("candidates", [])]
        in_a_row = in_a_row + 1 if carol["id"] in named else 0
        if in_a_row == 6:
            visible = time.perf_counter() - committed
    return {"n": n, "seed_s": seed_s, "first_identify_s": first, "p50": statistics.median(latencies),
            "p95": percentile(latencies, 0.95), "engine_ms": engine, "rss": workers_rss, "visible_s": visible,
            "tier_s": tier_s}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--database-url", help="a PostgreSQL database to drop and create per size (default: SQLite)")
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--milvus", action="store_true", help="search a shared Milvus collection (milvus-lite)")
    parser.add_argument("--milvus-index", default="FLAT", choices=["FLAT", "HNSW", "IVF_FLAT"])
    parser.add_argument("--other-tenant", action="store_true",
                        help="also seed as many voiceprints in a second tenant: identify searches the first one only "
                             "(the cost of tenant scoping: the same search among twice the voiceprints)")
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "voiceprint_project.settings")
    engine = engine_ms([("identify", 3.0)], 15)[3.0]
    print(f"{machine_note()}; database {'PostgreSQL' if args.database_url else 'SQLite'}; gunicorn, workers per "
          f"gunicorn.conf.py; identify of 3 s of real speech (the engine alone: {engine:.1f} ms); search: "
          f"{'Milvus ' + args.milvus_index + ' (milvus-lite on a port)' if args.milvus else 'in each worker'}; "
          f"{'as many voiceprints again in another tenant' if args.other_tenant else 'one tenant'}")
    print(f"{'voiceprints':>11}{'seed s':>8}{'tier build s':>14}{'first identify s':>18}{'p50 ms':>8}{'p95 ms':>8}"
          f"{'not engine ms':>15}{'worker RSS MB':>16}{'visible s':>11}")
    for n in args.sizes:
        r = one_size(n, args.database_url, args.queries, engine, args.milvus_index if args.milvus else "",
                     others=n if args.other_tenant else 0)
        visible = "-" if r["visible_s"] is None else f"{r['visible_s']:.2f}"
        tier = "-" if r["tier_s"] is None else f"{r['tier_s']:.1f}"
        print(f"{r['n'] + 2:>11}{r['seed_s']:>8.1f}{tier:>14}{r['first_identify_s']:>18.2f}{r['p50']:>8.0f}"
              f"{r['p95']:>8.0f}{r['p50'] - engine:>15.0f}{' / '.join(f'{m:.0f}' for m in r['rss']):>16}{visible:>11}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

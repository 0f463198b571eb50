"""How the 1:N search tiers scale: latency, recall, memory, build and change costs, in one run.

For each size (10k, 100k, 1M by default) and each kind of data (random unit vectors, and
"real-like" clusters around the 7205 real speaker directions in ``var/model/cohort.npy`` with
within-speaker spread matching real ECAPA same-speaker cosines of 0.5-0.8) it prints:

* search p50/p95 of one top-5 query (ms), per backend, in rounds that alternate the backends;
* recall@1 and recall@5 against exact search (FAISS brute force);
* add / update / delete latency of one voiceprint (median, p95 and the worst, which for
  today's index is the first add after a bulk load);
* memory of the index and its key maps (growth of anonymous RSS over the build), build time;
* the IVF ``nprobe`` sweep and the HNSW ``efSearch`` sweep the choice of IVF rests on;
* FAISS OpenMP threads per search (1 vs 2), alone and with a competing request thread;
* optionally Milvus through pymilvus (``--milvus``; milvus-lite when no server uri is given,
  possibly from another virtualenv: ``--milvus-python``) and several worker processes
  sharing one memory-mapped array against private copies (``--mmap-workers``).

"today" is benchmarks.baseline_index.BaselineFlatIndex (the retired index) with the two UUID<->int dicts of
speakers.search.index (the reference every ratio is taken against).

Every backend runs in a child process, so one's memory does not hide another's. The machine
is shared with other workers: latencies are pooled over alternating rounds and reported as
medians/percentiles of those; build times are single runs.

    .venv/bin/python benchmarks/index_scale.py                       # 10k, 100k, 1M (~30 min)
    .venv/bin/python benchmarks/index_scale.py --sizes 10000 --queries 50 --recall-queries 100
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DIM = 192
K = 5


# --- data -----------------------------------------------------------------------------------


def _noise_shape(cohort: np.ndarray) -> np.ndarray:
    """A ``(D, D)`` matrix turning white noise into noise shaped like real speaker variation.

    Half the variance follows the covariance of the 7205 real speaker directions (ECAPA space
    is far from isotropic), half is isotropic; the total variance is 1.
    """
    centred = cohort - cohort.mean(axis=0)
    cov = centred.T @ centred / len(cohort)
    mix = 0.5 * cov / np.trace(cov) + 0.5 * np.eye(DIM) / DIM
    values, vectors = np.linalg.eigh(mix)
    return (vectors * np.sqrt(np.maximum(values, 0))) @ vectors.T


def real_like(count: int, rng: np.random.Generator, cohort: np.ndarray, shape: np.ndarray,
              speakers: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``count`` voiceprints: a real speaker direction plus shaped noise (cosine to it 0.70-0.92).

    Two samples of one direction then score ~0.5-0.85 (real ECAPA: same speaker min 0.49,
    mean 0.64 on tests/fixtures/speech), samples of different directions ~0.
    """
    if speakers is None:
        speakers = rng.integers(0, len(cohort), count)
    out = np.empty((count, DIM), dtype=np.float32)
    for start in range(0, count, 100_000):
        part = slice(start, min(count, start + 100_000))
        n = part.stop - part.start
        to_centre = rng.uniform(0.70, 0.92, n)
        scale = np.sqrt(1 / to_centre ** 2 - 1)
        noise = rng.standard_normal((n, DIM)).astype(np.float32) @ shape.astype(np.float32)
        rows = cohort[speakers[part]] + scale[:, None].astype(np.float32) * noise
        out[part] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return out, speakers


def random_unit(count: int, rng: np.random.Generator) -> np.ndarray:
    out = np.empty((count, DIM), dtype=np.float32)
    for start in range(0, count, 100_000):
        rows = rng.standard_normal((min(count, start + 100_000) - start, DIM)).astype(np.float32)
        out[start:start + len(rows)] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return out


def make_data(folder: Path, size: int, kind: str, queries: int, seed: int) -> dict:
    """Write base.npy, queries.npy, keys.npy and truth.npy (exact top-5 rows) into ``folder``."""
    import faiss

    rng = np.random.default_rng(seed)
    extra: dict = {}
    if kind == "random":
        base, query = random_unit(size, rng), random_unit(queries, rng)
    else:
        cohort = np.load(REPO / "var" / "model" / "cohort.npy").astype(np.float32)
        cohort /= np.linalg.norm(cohort, axis=1, keepdims=True)
        shape = _noise_shape(cohort)
        base, speakers = real_like(size, rng, cohort, shape)
        # queries: a new recording of an enrolled speaker direction
        query, _ = real_like(queries, rng, cohort, shape, speakers=speakers[rng.integers(0, size, queries)])
        pairs, _ = real_like(2000, rng, cohort, shape, speakers=np.repeat(rng.integers(0, len(cohort), 1000), 2))
        same = np.einsum("ij,ij->i", pairs[0::2], pairs[1::2])
        other = np.einsum("ij,ij->i", base[:1000], base[1000:2000]) if size >= 2000 else np.zeros(1)
        extra = {"same_speaker_cos": [float(np.percentile(same, p)) for p in (5, 50, 95)],
                 "other_cos_p99": float(np.percentile(other, 99))}
    keys = np.frombuffer(_uuid_bytes(size, rng), dtype=np.uint8)
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    _, truth = faiss.knn(query, base, K, metric=faiss.METRIC_INNER_PRODUCT)
    np.save(folder / "base.npy", base)
    np.save(folder / "queries.npy", query)
    np.save(folder / "keys.npy", keys.reshape(size, 16))
    np.save(folder / "truth.npy", truth)
    return extra


def _uuid_bytes(size: int, rng: np.random.Generator) -> bytes:
    raw = bytearray(rng.bytes(16 * size))
    view = np.frombuffer(raw, dtype=np.uint8).reshape(size, 16)
    view[:, 6] = (view[:, 6] & 0x0F) | 0x40  # version 4
    view[:, 8] = (view[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    return bytes(raw)


# --- measuring helpers ----------------------------------------------------------------------


def rss_anon_mb() -> float:
    """Anonymous resident memory of this process (excludes memory-mapped input files)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(samples: list[float], p: float) -> float:
    return float(np.percentile(samples, p)) if samples else float("nan")


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


class Today:
    """The index the service used before inference.vector_index: benchmarks.baseline_index plus UUID<->int dicts."""

    def __init__(self) -> None:
        from benchmarks.baseline_index import BaselineFlatIndex as PreviousIndex

        self.index = PreviousIndex()
        self.int_of: dict[uuid.UUID, int] = {}
        self.uuid_of: dict[int, uuid.UUID] = {}
        self.next = 1

    def _int_for(self, key: uuid.UUID) -> int:
        value = self.int_of.get(key)
        if value is None:
            value, self.next = self.next, self.next + 1
            self.int_of[key], self.uuid_of[value] = value, key
        return value

    def build(self, keys: list[uuid.UUID], rows: np.ndarray) -> None:
        self.index.add(np.asarray([self._int_for(k) for k in keys], dtype=np.int64), rows)

    def upsert(self, keys: list[uuid.UUID], rows: np.ndarray) -> None:
        self.index.upsert(np.asarray([self._int_for(k) for k in keys], dtype=np.int64), rows)

    def remove(self, keys: list[uuid.UUID]) -> int:
        gone = [self.int_of.pop(k) for k in keys if k in self.int_of]
        for value in gone:
            del self.uuid_of[value]
        return self.index.remove(np.asarray(gone, dtype=np.int64))

    def search(self, vector: np.ndarray, k: int) -> list[tuple[uuid.UUID, float]]:
        return [(self.uuid_of[i], s) for i, s in self.index.search(vector, k)]

    def search_many(self, vectors: np.ndarray, k: int) -> list[list[tuple[uuid.UUID, float]]]:
        return [self.search(v, k) for v in vectors]


class Hnsw:
    """Raw FAISS HNSW, only to compare against IVF (it cannot remove vectors)."""

    def __init__(self, m: int = 32, ef_construction: int = 40) -> None:
        import faiss

        self.index = faiss.IndexHNSWFlat(DIM, m, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = ef_construction
        self.keys: list[uuid.UUID] = []

    def build(self, keys: list[uuid.UUID], rows: np.ndarray) -> None:
        import faiss

        faiss.omp_set_num_threads(os.cpu_count() or 1)
        self.index.add(np.ascontiguousarray(rows))
        self.keys = keys

    def search_many(self, vectors: np.ndarray, k: int) -> list[list[tuple[uuid.UUID, float]]]:
        import faiss

        faiss.omp_set_num_threads(1)
        scores, rows = self.index.search(np.ascontiguousarray(vectors, dtype=np.float32), k)
        return [[(self.keys[r], float(s)) for r, s in zip(rr, ss) if r >= 0] for rr, ss in zip(rows, scores)]

    def search(self, vector: np.ndarray, k: int) -> list[tuple[uuid.UUID, float]]:
        return self.search_many(vector[None], k)[0]


def recall(index, queries: np.ndarray, truth_keys: list[list[uuid.UUID]], batch: int = 200) -> tuple[float, float]:
    found: list[list[uuid.UUID]] = []
    for start in range(0, len(queries), batch):
        found.extend([k for k, _ in hits] for hits in index.search_many(queries[start:start + batch], K))
    at1 = np.mean([bool(f) and f[0] == t[0] for f, t in zip(found, truth_keys)])
    at5 = np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth_keys)])
    return float(at1), float(at5)


def mutations(index, rows: np.ndarray, keys: list[uuid.UUID], ops: int, rng: np.random.Generator) -> dict:
    """ms per add of a new key, update of an existing one, delete of an existing one."""
    fresh = [uuid.uuid4() for _ in range(ops)]
    vectors = random_unit(3 * ops, rng)
    picks = rng.choice(len(keys), 2 * ops, replace=False)
    add = [timed(lambda i=i: index.upsert([fresh[i]], vectors[i][None])) for i in range(ops)]
    update = [timed(lambda i=i: index.upsert([keys[picks[i]]], vectors[ops + i][None])) for i in range(ops)]
    delete = [timed(lambda i=i: index.remove([keys[picks[ops + i]]])) for i in range(ops)]
    index.remove(fresh)
    return {name: {"p50": pct(s, 50), "p95": pct(s, 95), "max": max(s), "first": s[0]}
            for name, s in (("add", add), ("update", update), ("delete", delete))}


# --- workers (child processes) --------------------------------------------------------------


def _load(folder: Path):
    base = np.load(folder / "base.npy", mmap_mode="r")
    queries = np.load(folder / "queries.npy")
    raw = np.load(folder / "keys.npy").tobytes()
    keys = [uuid.UUID(bytes=raw[i:i + 16]) for i in range(0, len(raw), 16)]
    truth = np.load(folder / "truth.npy")
    return base, queries, keys, [[keys[r] for r in row] for row in truth]


def worker_faiss(args: argparse.Namespace) -> dict:
    import faiss

    from inference.vector_index import FlatIndex, IVFIndex, set_search_threads

    folder = Path(args.dir)
    base, queries, keys, truth_keys = _load(folder)
    size = len(keys)
    rng = np.random.default_rng(args.seed)
    result: dict = {"backends": {}}
    built: dict = {}
    names = ["today", "flat", "ivf"] + (["hnsw"] if size <= args.hnsw_max else [])
    for name in names:
        before = rss_anon_mb()
        start = time.perf_counter()
        if name == "today":
            index = Today()
            index.build(keys, base)
        elif name == "hnsw":
            index = Hnsw()
            index.build(keys, np.asarray(base))
        else:
            index = FlatIndex(capacity=size) if name == "flat" else IVFIndex(capacity=size)
            index.upsert(keys, base)
        build_s = time.perf_counter() - start
        built[name] = index
        result["backends"][name] = {"build_s": build_s, "rss_mb": rss_anon_mb() - before}
        if name == "ivf":
            result["backends"][name].update(nlist=index.nlist, nprobe=index.nprobe)
        if name == "hnsw":
            result["backends"][name]["efSearch_default"] = int(index.index.hnsw.efSearch)
    set_search_threads(1)

    # search latency, alternating backends round by round
    latency: dict[str, list[float]] = {name: [] for name in names}
    lat_queries = queries[:args.queries]
    for round_ in range(args.rounds):
        order = names[round_ % len(names):] + names[:round_ % len(names)]
        for name in order:
            index = built[name]
            latency[name].extend(timed(lambda q=q: index.search(q, K)) for q in lat_queries)  # noqa: B023 - called right here
    for name in names:
        result["backends"][name].update(p50=pct(latency[name], 50), p95=pct(latency[name], 95))
        result["backends"][name]["recall1"], result["backends"][name]["recall5"] = recall(built[name], queries,
                                                                                          truth_keys)

    # IVF nprobe and HNSW efSearch sweeps: recall@1 and p50 for each setting
    ivf = built["ivf"]
    default_nprobe = ivf.nprobe
    sweep = []
    for nprobe in sorted({8, 16, 32, 64, 128, 256, default_nprobe}):
        if nprobe > ivf.nlist:
            continue
        ivf.nprobe = nprobe
        times = [timed(lambda q=q: ivf.search(q, K)) for q in lat_queries[:100]]
        sweep.append({"nprobe": nprobe, "recall1": recall(ivf, queries, truth_keys)[0], "p50": pct(times, 50)})
    ivf.nprobe = default_nprobe
    result["ivf_sweep"] = sweep
    if "hnsw" in built:
        hnsw = built["hnsw"]
        sweep = []
        for ef in (16, 32, 64, 128, 256):
            hnsw.index.hnsw.efSearch = ef
            times = [timed(lambda q=q: hnsw.search(q, K)) for q in lat_queries[:100]]
            sweep.append({"efSearch": ef, "recall1": recall(hnsw, queries, truth_keys)[0], "p50": pct(times, 50)})
        result["hnsw_sweep"] = sweep

    # one voiceprint added / updated / deleted (HNSW cannot delete: not measured)
    for name in [n for n in names if n != "hnsw"]:
        result["backends"][name]["changes"] = mutations(built[name], base, keys, args.ops, rng)

    # OpenMP threads per search, alone and with one competing request thread
    if args.threads_experiment:
        flat = built["flat"]
        cases = [(threads, load) for load in (False, True) for threads in (1, 2)]
        samples: dict = {case: [] for case in cases}
        for round_ in range(args.rounds):
            for threads, load in cases[round_ % 4:] + cases[:round_ % 4]:
                stop = threading.Event()

                def compete(threads: int = threads) -> None:
                    set_search_threads(threads)
                    rows = random_unit(16, np.random.default_rng(9))
                    while not stop.is_set():  # noqa: B023 - the thread ends before stop changes
                        for row in rows:
                            flat._scan(row[None], K)  # the same scan a request runs
                competitor = threading.Thread(target=compete, daemon=True) if load else None
                if competitor:
                    competitor.start()
                flat.search_threads = threads
                samples[(threads, load)].extend(timed(lambda q=q: flat.search(q, K)) for q in lat_queries[:50])
                stop.set()
                if competitor:
                    competitor.join()
        flat.search_threads = 1
        # raw FAISS IndexFlatIP over one array, the floor the chunked scan is compared with
        raw = faiss.IndexFlatIP(DIM)
        raw.add(np.ascontiguousarray(base))
        set_search_threads(1)
        raw_ms = [timed(lambda q=q: raw.search(q[None], K)) for q in lat_queries[:100]]
        result["threads"] = [{"threads": t, "competing_thread": load, "p50": pct(s, 50), "p95": pct(s, 95)}
                             for (t, load), s in samples.items()]
        result["raw_faiss_flat_p50"] = pct(raw_ms, 50)
    return result


def _tree_rss_mb() -> float:
    import psutil

    me = psutil.Process()
    return sum(p.memory_info().rss for p in [me, *me.children(recursive=True)]) / 2 ** 20


def worker_milvus(args: argparse.Namespace) -> dict:
    import pymilvus

    from inference.vector_index.milvus import MilvusIndex

    try:
        import milvus_lite
        lite = getattr(milvus_lite, "__version__", "?")
    except ImportError:
        lite = None
    folder = Path(args.dir)
    base, queries, keys, truth_keys = _load(folder)
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory(prefix="milvus-bench-") as tmp:
        uri = args.milvus_uri or str(Path(tmp) / "bench.db")
        params = json.loads(args.milvus_params)
        before = _tree_rss_mb()
        index = MilvusIndex(uri, collection=f"bench_{uuid.uuid4().hex[:8]}", index_type=args.milvus_index,
                            index_params=params.get("index", {}), search_params=params.get("search", {}),
                            flush_after_rows=1)
        start = time.perf_counter()
        for s in range(0, len(keys), 50_000):  # as a rebuild streams rows from the database
            index.upsert(keys[s:s + 50_000], np.asarray(base[s:s + 50_000]))
        build_s = time.perf_counter() - start
        index.flush_after_rows = 10_000  # single writes below are not flushed, as in service
        index.search(queries[0], K)  # loads/compiles whatever the engine builds lazily
        rss = _tree_rss_mb() - before
        times: list[float] = []
        for _ in range(args.rounds):
            times.extend(timed(lambda q=q: index.search(q, K)) for q in queries[:args.milvus_queries])
        r1, r5 = recall(index, queries[:args.milvus_recall_queries], truth_keys[:args.milvus_recall_queries],
                        batch=50)
        changes = mutations(index, base, keys, min(args.ops, 20), rng)
        index.clear()
        index.close()
    return {"pymilvus": pymilvus.__version__, "milvus_lite": lite, "uri": args.milvus_uri or "milvus-lite (.db)",
            "index": args.milvus_index, "params": params, "build_s": build_s, "rss_mb": rss,
            "p50": pct(times, 50), "p95": pct(times, 95), "recall1": r1, "recall5": r5,
            "recall_queries": min(args.milvus_recall_queries, len(queries)), "changes": changes}


def worker_mmap(args: argparse.Namespace) -> dict:
    """One of several processes holding the same vectors: memory-mapped (shared) or private."""
    import faiss
    import psutil

    folder = Path(args.dir)
    if args.mode == "mmap":
        base = np.load(folder / "base.npy", mmap_mode="r")
    else:
        base = np.load(folder / "base.npy")
    queries = np.load(folder / "queries.npy")
    faiss.omp_set_num_threads(1)
    times = [timed(lambda q=q: faiss.knn(q[None], base, K, metric=faiss.METRIC_INNER_PRODUCT))
             for q in queries[:20]]

    def barrier(name: str) -> None:
        (folder / f"{name}_{args.rank}").touch()
        while len(list(folder.glob(f"{name}_*"))) < args.workers:
            time.sleep(0.05)

    barrier(f"ready_{args.mode}")
    info = psutil.Process().memory_full_info()
    barrier(f"measured_{args.mode}")
    return {"rss_mb": info.rss / 2 ** 20, "pss_mb": info.pss / 2 ** 20, "uss_mb": info.uss / 2 ** 20,
            "p50": pct(times[5:], 50)}


# --- parent ---------------------------------------------------------------------------------


def child(args: argparse.Namespace, worker: str, interpreter: str | None = None, **extra) -> dict | subprocess.Popen:
    command = [interpreter or sys.executable, str(Path(__file__).resolve()), "--worker", worker,
               "--dir", str(extra.pop("dir")), "--seed", str(args.seed), "--queries", str(args.queries),
               "--rounds", str(args.rounds), "--ops", str(args.ops), "--hnsw-max", str(args.hnsw_max),
               "--milvus-index", args.milvus_index, "--milvus-params", args.milvus_params,
               "--milvus-queries", str(args.milvus_queries),
               "--milvus-recall-queries", str(args.milvus_recall_queries)]
    if args.milvus_uri:
        command += ["--milvus-uri", args.milvus_uri]
    for key, value in extra.items():
        if value is False or key == "background":
            continue
        command += [f"--{key.replace('_', '-')}"] + ([] if value is True else [str(value)])
    env = dict(os.environ, PYTHONPATH=str(REPO))
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env, cwd=str(REPO))
    if extra.get("background"):
        return process
    out, _ = process.communicate()
    if process.returncode:
        raise SystemExit(f"worker {worker} failed ({process.returncode})")
    return json.loads(out.strip().splitlines()[-1])


def mmap_experiment(args: argparse.Namespace, folder: Path) -> dict:
    found = {}
    for mode in ("private", "mmap"):
        processes = [child(args, "mmap", dir=folder, mode=mode, rank=rank, workers=args.mmap_workers,
                           background=True) for rank in range(args.mmap_workers)]
        outputs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in processes]
        found[mode] = {key: float(np.median([o[key] for o in outputs])) for key in outputs[0]}
    return found


def print_size(size: int, kind: str, data: dict, faiss_part: dict, milvus_part: dict) -> None:
    print(f"\n=== {size:,} voiceprints, {kind} vectors ===")
    if data:
        lo, mid, hi = data["same_speaker_cos"]
        print(f"same-direction cosine p5/p50/p95 {lo:.2f}/{mid:.2f}/{hi:.2f}; "
              f"other-direction cosine p99 {data['other_cos_p99']:.2f}")
    rows = dict(faiss_part["backends"])
    rows.update(milvus_part or {})
    today = rows["today"]
    print(f"{'backend':<12} {'p50 ms':>8} {'p95 ms':>8} {'x today':>8} {'rec@1':>6} {'rec@5':>6} "
          f"{'RSS MB':>8} {'build s':>8}  {'add p50/max ms':>15} {'upd p50/max':>13} {'del p50/max':>13}")
    for name, row in rows.items():
        changes = row.get("changes")
        change_text = "".join(f" {changes[c]['p50']:7.2f}/{changes[c]['max']:<7.1f}" for c in ("add", "update", "delete")) \
            if changes else "  (no delete)"
        print(f"{name:<12} {row['p50']:8.2f} {row['p95']:8.2f} {today['p50'] / row['p50']:8.2f} "
              f"{row['recall1']:6.3f} {row['recall5']:6.3f} {row['rss_mb']:8.0f} {row['build_s']:8.1f} {change_text}")
    ivf = faiss_part["backends"]["ivf"]
    print(f"IVF nlist {ivf['nlist']}, nprobe {ivf['nprobe']} (default); sweep: " + ", ".join(
        f"nprobe {s['nprobe']}: rec@1 {s['recall1']:.3f} p50 {s['p50']:.2f} ms" for s in faiss_part["ivf_sweep"]))
    if "hnsw_sweep" in faiss_part:
        print("HNSW M 32, efConstruction 40; sweep: " + ", ".join(
            f"ef {s['efSearch']}: rec@1 {s['recall1']:.3f} p50 {s['p50']:.2f} ms" for s in faiss_part["hnsw_sweep"]))
    for part in (milvus_part or {}).values():
        print(f"Milvus: pymilvus {part['pymilvus']}, milvus-lite {part['milvus_lite']}, {part['uri']}, "
              f"{part['index']} {part['params']}, recall over {part['recall_queries']} queries")
    if "threads" in faiss_part:
        print(f"flat search, OpenMP threads (raw FAISS IndexFlatIP p50 {faiss_part['raw_faiss_flat_p50']:.2f} ms): " +
              ", ".join(f"{t['threads']} thread{'s' if t['threads'] > 1 else ''}"
                        f"{' + competing request' if t['competing_thread'] else ''}: p50 {t['p50']:.2f} p95 {t['p95']:.2f}"
                        for t in faiss_part["threads"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--data", nargs="+", default=["random", "real-like"], choices=["random", "real-like"])
    parser.add_argument("--queries", type=int, default=200, help="single top-5 searches timed per round")
    parser.add_argument("--recall-queries", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ops", type=int, default=50, help="adds, updates and deletes timed each")
    parser.add_argument("--hnsw-max", type=int, default=100_000, help="largest size HNSW is built at (slow)")
    parser.add_argument("--milvus", action="store_true", help="also measure Milvus (pymilvus)")
    parser.add_argument("--milvus-python", nargs="+", default=[None],
                        help="interpreters with pymilvus (+ milvus-lite) installed, one row each")
    parser.add_argument("--milvus-uri", help="a Milvus server; default: milvus-lite in a temporary .db")
    parser.add_argument("--milvus-index", default="FLAT")
    parser.add_argument("--milvus-params", default="{}", help='JSON {"index": {...}, "search": {...}}')
    parser.add_argument("--milvus-data", nargs="+", default=["random", "real-like"], choices=["random", "real-like"],
                        help="kinds of data Milvus is measured on (its FLAT index is exact on either)")
    parser.add_argument("--milvus-queries", type=int, default=50)
    parser.add_argument("--milvus-recall-queries", type=int, default=200)
    parser.add_argument("--mmap-workers", type=int, default=0, help="processes sharing the largest index")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write every figure to this file")
    # worker mode
    parser.add_argument("--worker", choices=["faiss", "milvus", "mmap"], help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--rank", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--threads-experiment", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--background", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        run = {"faiss": worker_faiss, "milvus": worker_milvus, "mmap": worker_mmap}[args.worker]
        print(json.dumps(run(args)))
        return 0

    import faiss

    print(f"index_scale: sizes {args.sizes}, data {args.data}, top-{K}, {args.rounds} alternating rounds of "
          f"{args.queries} queries, {os.cpu_count()} cores shared with other workers; FAISS {faiss.__version__}, "
          f"load average {os.getloadavg()[0]:.1f}")
    report: dict = {"args": vars(args), "results": []}
    started = time.perf_counter()
    for size in args.sizes:
        for kind in args.data:
            with tempfile.TemporaryDirectory(prefix="index-scale-") as tmp:
                folder = Path(tmp)
                start = time.perf_counter()
                data = make_data(folder, size, kind, max(args.recall_queries, args.queries), args.seed)
                print(f"\n[{size:,} {kind}: data and exact top-{K} in {time.perf_counter() - start:.0f} s]", flush=True)
                faiss_part = child(args, "faiss", dir=folder,
                                   threads_experiment=(size == max(args.sizes) and kind == args.data[0]))
                milvus_part = {}
                for interpreter in args.milvus_python if args.milvus and kind in args.milvus_data else []:
                    found = child(args, "milvus", interpreter, dir=folder)
                    milvus_part[f"milvus {found['milvus_lite'] or 'server'}"] = found
                mmap_part = (mmap_experiment(args, folder) if args.mmap_workers and size == max(args.sizes)
                             and kind == args.data[0] else None)
                print_size(size, kind, data, faiss_part, milvus_part)
                if mmap_part:
                    print(f"{args.mmap_workers} processes each searching the same {size:,} vectors (median per process): " +
                          ", ".join(f"{mode}: RSS {m['rss_mb']:.0f} MB, PSS {m['pss_mb']:.0f} MB, "
                                    f"USS {m['uss_mb']:.0f} MB, p50 {m['p50']:.1f} ms" for mode, m in mmap_part.items()))
                report["results"].append({"size": size, "kind": kind, "data": data, "faiss": faiss_part,
                                          "milvus": milvus_part, "mmap": mmap_part})
                if args.json:  # after every part: a long run stopped half-way keeps what it measured
                    Path(args.json).write_text(json.dumps(report, indent=1, default=str))
                sys.stdout.flush()
    print(f"\n[total {time.perf_counter() - started:.0f} s; load average now {os.getloadavg()[0]:.1f}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

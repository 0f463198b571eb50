"""gunicorn configuration: ``gunicorn -c voiceprint_project/gunicorn.conf.py voiceprint_project.wsgi``.

The layout follows the host: :func:`layout` turns the cores this process may use (CPU affinity
and a cgroup CPU quota, so a container's limit counts) into workers x MindSpore threads per
worker, and the request threads of each worker. The figures behind it are in docs/serving.md.
``WEB_CONCURRENCY`` (workers), ``VOICEPRINT_ENGINE_THREADS`` (MindSpore threads per worker) and
``GUNICORN_THREADS`` (request threads per worker) override it; so does the command line.

Threaded workers (gthread): several requests run at once in one process; decoding, VAD and
features run in the request threads and only the forward pass on the one inference thread per
process (see speakers/runtime/inference_owner.py). The app is not preloaded: every worker imports Django and
loads the model after the fork (MindSpore is not fork-safe).

(HTTP and WebSockets: the same with ``-k voiceprint_project.asgi_server.UvicornWorker
voiceprint_project.asgi:application``, as ``make serve-gunicorn`` and the Dockerfile run it.)
"""
import math
import os
from pathlib import Path


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup v2 CPU quota."""
    cores = len(os.sched_getaffinity(0))
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cores


def layout(cores: int) -> tuple[int, int, int]:
    """``(workers, MindSpore threads per worker, request threads per worker)`` for ``cores``.

    One forward pass at a time per worker, on ``engine_threads`` cores; the request threads
    decode and extract features meanwhile, so a worker keeps its cores busy with a queue of two
    or three requests (docs/serving.md: the measurements on 2 cores and the reasoning for more).
    """
    engine_threads = 1 if cores <= 4 else 2 if cores <= 16 else 4
    workers = max(1, cores // engine_threads)
    return workers, engine_threads, 4


_workers, _engine_threads, _threads = layout(available_cores())
_engine_threads = int(os.environ.get("VOICEPRINT_ENGINE_THREADS") or _engine_threads)

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY") or _workers)
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS") or _threads)
raw_env = [f"VOICEPRINT_ENGINE_THREADS={_engine_threads}"]
preload_app = False  # MindSpore must never be imported before the fork
timeout = 120
graceful_timeout = 30
accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-") or None  # query strings redacted (post_fork)
# gunicorn's largest request line; the app answers URLs beyond VOICEPRINT_MAX_URL_BYTES (4 KiB)
# with a JSON 414 before this limit (and gunicorn's own plain 400) is reached.
limit_request_line = 8190


def on_starting(server):
    """In the master: no query string in its log lines (a key sent in a URL must never be logged)."""
    from voiceprint_project.log_redaction import redact_server_logs

    redact_server_logs()


def post_fork(server, worker):
    """In each worker: its access and error logs print no query string."""
    from voiceprint_project.log_redaction import redact_server_logs

    redact_server_logs()


def post_worker_init(worker):
    """In each worker, after the fork and once the app is loaded: load the model and index in the background."""
    from speakers.runtime.startup import warm_up_in_background

    warm_up_in_background()

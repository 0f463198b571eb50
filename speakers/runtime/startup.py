"""What a server process does when it starts (after any fork): load the model, build the index.

Called by ``manage.py runserver``, gunicorn's ``post_worker_init`` and the ASGI application, in
the background, so the process answers health checks at once (``warming_up`` until ready).
The network is one graph for every length, so loading it compiles everything: no request ever
waits for a compilation afterwards. Failures are logged, never fatal: requests load what they
need themselves, and a readiness probe on a cold or failed process starts the warm-up again.
"""
from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.db import connection

from ..search.index import part_index, voiceprint_index
from . import inference_owner
from .process_local import ProcessLocal

logger = logging.getLogger(__name__)


def warm_up(*, ready_url: str | None = None) -> None:
    """Load the model (its one graph compiles for every length) and build the index now, not at the first request.

    Each step is logged, and the last line says the service is ready (with ``ready_url`` when the
    server knows its address), so a person starting it sees what it is doing.
    """
    started = time.perf_counter()
    try:
        logger.info("warm-up: loading the speaker model (it compiles once, for every length)")
        embedder = inference_owner.get_embedder()
        logger.info("warm-up: model %s ready (%.1f s); building the search index", embedder.model_version,
                    time.perf_counter() - started)
        index = voiceprint_index()
        index.sync()
        logger.info("warm-up: search index built (%d voiceprints)", len(index))
        for version in inference_owner.part_model_versions():  # the fused engine's speakers enrolled before fusion
            part = part_index(version)
            part.sync(version)
            logger.info("warm-up: search index of %s built (%d voiceprints enrolled before fusion)", version, len(part))
        where = f" at {ready_url}" if ready_url else ""
        logger.info("voiceprint is ready%s (warm-up took %.1f s)", where, time.perf_counter() - started)
    except Exception:  # noqa: BLE001 - a warm-up failure must not kill the server; requests retry
        logger.exception("warm-up failed; the model and index will load at the first request")
    finally:
        connection.close()


class _WarmUp:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.ready_url: str | None = None


_warm_up: ProcessLocal[_WarmUp] = ProcessLocal(_WarmUp)


def _start_warm_up() -> None:
    state = _warm_up.get()
    with state.lock:
        if state.thread is not None and state.thread.is_alive():
            return
        state.thread = threading.Thread(target=warm_up, kwargs={"ready_url": state.ready_url},
                                        name="voiceprint-warm-up", daemon=True)
        state.thread.start()


def warm_up_in_background(*, ready_url: str | None = None) -> None:
    """Start the warm-up in this process (after any fork); ``ready_url`` is named in the "ready" line."""
    _warm_up.get().ready_url = ready_url
    if settings.VOICEPRINT_WARMUP:
        _start_warm_up()


def ready() -> bool:
    """Whether a request is answered without waiting for the model; a cold process starts warming up.

    For a load balancer's readiness probe: it only routes traffic to a ready process, so asking
    is the signal to get ready even where the warm-up at start is switched off.
    """
    state = inference_owner.engine_state()
    if state in (inference_owner.COLD, inference_owner.FAILED):
        _start_warm_up()
    return state == inference_owner.READY

"""What a server process does when it starts (after any fork): load the model, build the index, compile.

Called by ``manage.py runserver``, gunicorn's ``post_worker_init`` and the ASGI application, in
the background, so the process answers health checks at once. Failures are logged, never fatal:
requests load what they need themselves.
"""
from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.db import connection

from . import inference_owner
from .voiceprint_index import voiceprint_index

logger = logging.getLogger(__name__)


def warm_up(*, ready_url: str | None = None) -> None:
    """Load the model and build the index now rather than at the first request, then compile.

    Each step is logged, and the last line says the service is ready (with ``ready_url`` when
    the server knows its address), so a person starting it sees what it is doing.
    """
    started = time.monotonic()
    try:
        logger.info("warm-up: loading the speaker model")
        embedder = inference_owner.get_embedder()
        index = voiceprint_index()
        index.sync()
        logger.info("warm-up: search index built (%d voiceprints)", len(index))
        # One task per length bucket, so a request arriving meanwhile waits behind one at most.
        buckets = list(embedder.config.buckets)
        tasks = [inference_owner.submit(embedder.warmup, [frames]) for frames in buckets]
        for done, (frames, task) in enumerate(zip(buckets, tasks), start=1):
            task.result()
            logger.info("warm-up: compiled %d of %d speech lengths (up to %.0f s)", done, len(buckets),
                        frames * embedder.config.frontend.hop_length / embedder.config.frontend.sample_rate)
        where = f" at {ready_url}" if ready_url else ""
        logger.info("voiceprint is ready%s (warm-up took %.0f s)", where, time.monotonic() - started)
    except Exception:  # noqa: BLE001 - a warm-up failure must not kill the server; requests retry
        logger.exception("warm-up failed; the model and index will load at the first request")
    finally:
        connection.close()


def warm_up_in_background(*, ready_url: str | None = None) -> None:
    if settings.VOICEPRINT_WARMUP:
        threading.Thread(target=warm_up, kwargs={"ready_url": ready_url}, name="voiceprint-warm-up",
                         daemon=True).start()

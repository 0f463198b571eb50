"""What a server process does when it starts (after any fork): load the model, build the index, compile.

Called by ``manage.py runserver``, gunicorn's ``post_worker_init`` and the ASGI application, in
the background, so the process answers health checks at once. Failures are logged, never fatal:
requests load what they need themselves.
"""
from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import connection

from . import inference_owner
from .voiceprint_index import voiceprint_index

logger = logging.getLogger(__name__)


def warm_up() -> None:
    """Load the model and build the index now rather than at the first request, then compile."""
    try:
        embedder = inference_owner.get_embedder()
        voiceprint_index().sync()
        # One task per length bucket, so a request arriving meanwhile waits behind one at most.
        for frames in embedder.config.buckets:
            inference_owner.submit(embedder.warmup, [frames])
    except Exception:  # noqa: BLE001 - a warm-up failure must not kill the server; requests retry
        logger.exception("warm-up failed; the model and index will load at the first request")
    finally:
        connection.close()


def warm_up_in_background() -> None:
    if settings.VOICEPRINT_WARMUP:
        threading.Thread(target=warm_up, name="voiceprint-warm-up", daemon=True).start()

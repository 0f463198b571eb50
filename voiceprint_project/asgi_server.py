"""How uvicorn serves the ASGI app (HTTP and WebSockets): the options, and gunicorn's worker class.

``manage.py runserver`` runs uvicorn with :func:`uvicorn_options`; production runs gunicorn with
:class:`UvicornWorker` (``make serve-gunicorn``, the Dockerfile)::

    gunicorn -c voiceprint_project/gunicorn.conf.py -k voiceprint_project.asgi_server.UvicornWorker \
        voiceprint_project.asgi:application

Each worker imports the app and loads the model after the fork (never ``--preload``), as with the
threaded WSGI workers, which still serve ``voiceprint_project.wsgi`` (HTTP only) unchanged.
"""
from __future__ import annotations

import os
from typing import Any

from uvicorn_worker import UvicornWorker as _UvicornWorker

from .log_redaction import redact_server_logs


def uvicorn_options() -> dict[str, Any]:
    """uvicorn's settings for this app (reads Django's settings, not the engine)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "voiceprint_project.settings")
    from django.conf import settings

    return {
        "lifespan": "off",  # the app has no lifespan handlers; start-up work is speakers.runtime.startup's warm-up
        # uvicorn closes with 1009 a WebSocket message larger than this before the app sees it.
        "ws_max_size": settings.VOICEPRINT_WS_MAX_MESSAGE_BYTES,
        # PCM barely compresses, and inflating every frame would cost the event loop time for nothing.
        "ws_per_message_deflate": False,
        # uvicorn believes X-Forwarded-For (and -Proto) from 127.0.0.1 unless told otherwise, so a local
        # client could pick its own address. Only the proxies the settings trust, and none by default;
        # the app reads the header by the same rule (speakers/api/clients.py).
        "proxy_headers": bool(settings.VOICEPRINT_TRUSTED_PROXIES),
        "forwarded_allow_ips": list(settings.VOICEPRINT_TRUSTED_PROXIES),
    }


class UvicornWorker(_UvicornWorker):
    """gunicorn's uvicorn worker with :func:`uvicorn_options`; gunicorn's ``post_worker_init`` still warms up."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.CONFIG_KWARGS = {**_UvicornWorker.CONFIG_KWARGS, **uvicorn_options()}
        super().__init__(*args, **kwargs)
        redact_server_logs()  # uvicorn's loggers now write through gunicorn's handlers

"""``runserver`` on ASGI (uvicorn): HTTP and the WebSocket routes, with the model check and the warm-up.

Refuses to start without a prepared model, then serves ``voiceprint_project.asgi.application``
with uvicorn in the serving process (the autoreloader's child, which restarts on code changes as
Django's own runserver does; ``--noreload`` serves from the command's process). The warm-up runs
there too, never in the watcher. The address is bound before anything else starts: an address in
use ends the command with a plain message and a non-zero status, before the warm-up could announce
a server that is not there.
"""
from __future__ import annotations

import errno
import os
import socket

from django.conf import settings
from django.contrib.staticfiles.management.commands.runserver import Command as StaticfilesRunserver
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError
from django.db import connections
from django.utils import autoreload

from speakers.runtime.inference_owner import require_prepared_model
from speakers.runtime.startup import warm_up_in_background
from voiceprint_project.asgi_server import uvicorn_options


class Command(StaticfilesRunserver):
    help = "Serve HTTP and the WebSocket routes (ASGI, uvicorn) for development."

    def handle(self, *args, **options) -> None:
        try:
            require_prepared_model()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        super().handle(*args, **options)

    def inner_run(self, *args, **options) -> None:
        import uvicorn

        autoreload.raise_last_exception()
        if not options["skip_checks"]:
            self.stdout.write("Performing system checks...\n\n")
            self.check(display_num_errors=True)
        self.check_migrations()
        for connection in connections.all(initialized_only=True):
            connection.close()
        host = self.addr if not self._raw_ipv6 else self.addr.strip("[]")
        host = "0.0.0.0" if host == "0" else host
        shown = f"[{host}]" if self._raw_ipv6 else host
        listening = self._bind(host, shown)
        warm_up_in_background(ready_url=f"http://{shown}:{self.port}/")
        self.stdout.write(
            f"Serving HTTP on http://{shown}:{self.port}/ and WebSockets on ws://{shown}:{self.port}/ws/v1/stream-verify "
            f"(ASGI, uvicorn; settings {settings.SETTINGS_MODULE}).\nQuit the server with CONTROL-C.\n")
        server = uvicorn.Server(uvicorn.Config("voiceprint_project.asgi:application", host=host, port=int(self.port),
                                               log_level="info", **uvicorn_options()))
        server.run(sockets=[listening])
        if not server.started:
            self.stderr.write(f"Error: cannot serve on {shown}:{self.port} (see above).")
            os._exit(1)  # sys.exit would end only this thread under the autoreloader

    def _bind(self, host: str, shown: str) -> socket.socket:
        """The listening socket, bound now; an address that cannot be bound ends the command (status 1)."""
        family = socket.AF_INET6 if self._raw_ipv6 or ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: a restart reuses TIME_WAIT
        try:
            sock.bind((host, int(self.port)))
            sock.listen(2048)
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                reason = (f"port {self.port} is already in use (another server is running there?); stop it or "
                          f"choose another port, e.g. `make serve PORT={int(self.port) + 1}`")
            else:
                reason = exc.strerror or str(exc)
            self.stderr.write(f"Error: cannot serve on {shown}:{self.port}: {reason}.")
            os._exit(1)  # sys.exit would end only this thread under the autoreloader
        sock.set_inheritable(True)
        return sock

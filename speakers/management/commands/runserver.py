"""``runserver`` that refuses to start without a prepared model, then warms the model in the background.

The warm-up runs in the serving process (the autoreloader's child), never in the watcher.
"""
from __future__ import annotations

from django.contrib.staticfiles.management.commands.runserver import Command as StaticfilesRunserver
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError
from django.core.servers import basehttp

from speakers.inference_owner import require_prepared_model
from speakers.startup import warm_up_in_background

# The development server's own refusals (a request line over 64 KiB, a malformed request) in the
# API's error shape rather than an HTML page.
basehttp.WSGIRequestHandler.error_content_type = "application/json"
basehttp.WSGIRequestHandler.error_message_format = (
    '{"error": {"code": "http_%(code)d", "message": "%(message)s", "detail": {}}}')


class Command(StaticfilesRunserver):
    def handle(self, *args, **options) -> None:
        try:
            require_prepared_model()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        super().handle(*args, **options)

    def inner_run(self, *args, **options) -> None:
        host = f"[{self.addr}]" if self._raw_ipv6 else self.addr
        warm_up_in_background(ready_url=f"{self.protocol}://{host}:{self.port}/")
        super().inner_run(*args, **options)

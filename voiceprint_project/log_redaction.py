"""Query strings never reach a log line.

The service never reads a key from a URL, but a client may still put one there (``?api_key=...``),
and every server logs request lines: uvicorn's access log and its WebSocket lines, gunicorn's access
log (its request line, referer and query atoms), Django's request warnings. :class:`RedactQueryStrings`
replaces what follows the ``?`` of any URL in a record with ``?[redacted]``; it sits on the console
handler of Django's LOGGING and, through :func:`redact_server_logs`, on the servers' own loggers (the
runserver command, gunicorn.conf.py's hooks, the uvicorn worker).
"""
from __future__ import annotations

import logging
import re

REDACTED = "?[redacted]"
# A "?" right after a path or URL character, and everything up to a space or a quote.
_QUERY = re.compile(r"(?<=[\w/.~%-])\?[^\s\"']*")
SERVER_LOGGERS = ("uvicorn.access", "uvicorn.error", "gunicorn.access", "gunicorn.error", "django.request",
                  "django.server")


def redact(text: str) -> str:
    """``text`` with the query string of every URL in it replaced by ``?[redacted]``."""
    return _QUERY.sub(REDACTED, text) if "?" in text else text


def _redacted(value):
    return redact(value) if isinstance(value, str) else value


class RedactQueryStrings(logging.Filter):
    """Redacts a record's message and arguments in place (the formatters that read them stay unchanged)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        args = record.args
        if isinstance(args, dict):  # gunicorn's access atoms: "q" is the query string alone
            for name in list(args):
                args[name] = "[redacted]" if name == "q" and args[name] not in ("", "-") else _redacted(args[name])
        elif isinstance(args, tuple):
            record.args = tuple(_redacted(arg) for arg in args)
        return True


_FILTER = RedactQueryStrings()


def redact_server_logs() -> None:
    """Put the filter on every server logger of this process (idempotent)."""
    for name in SERVER_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, RedactQueryStrings) for existing in logger.filters):
            logger.addFilter(_FILTER)

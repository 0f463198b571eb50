"""Write ``voiceprint_client/codes.py``: one exception class per error ``code`` the server can return.

Run from the repository root with the project's venv (it imports the server to ask it):

    .venv/bin/python clients/python/scripts/generate_errors.py

The codes come from the server itself, not from a list kept by hand:

- every ``ApplicationError`` (speakers/exceptions.py and any module of ``speakers``) and every engine
  ``InferenceError`` (``inference``), each passed through the one mapping ``speakers.api.errors.describe_error``
  for its HTTP status;
- every DRF ``APIException`` and every other exception type ``describe_error`` tests with ``isinstance``
  (read from its source), instantiated and mapped the same way, and its fallback (``internal_error``);
- every ``JsonResponse(error_body("<code>", ...), status=N)`` written out in ``speakers/`` (the handlers
  for unknown paths, bad hosts, long URLs, CSRF).

``clients/python/tests/test_client_errors.py`` runs :func:`server_codes` and fails when the client lacks one.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import os
import pkgutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
OUTPUT = Path(__file__).resolve().parents[1] / "voiceprint_client" / "codes.py"


def _setup_django() -> None:
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "voiceprint_project.settings")
    import django

    django.setup()


def _import_all(package: str, skip: tuple[str, ...] = ("migrations", "tests", "__main__")) -> None:
    module = importlib.import_module(package)
    for info in pkgutil.walk_packages(module.__path__, prefix=f"{package}."):
        if not any(part in skip for part in info.name.split(".")):
            importlib.import_module(info.name)


def _subclasses(cls: type) -> list[type]:
    found, pending = [], [cls]
    while pending:
        for sub in pending.pop().__subclasses__():
            found.append(sub)
            pending.append(sub)
    return found


def _instance(cls: type) -> BaseException | None:
    for args in ((), ("message",), ("GET",)):
        try:
            return cls(*args)
        except Exception:  # noqa: BLE001 - an adapter that takes another error, not a code of its own
            continue
    return None


def server_codes() -> dict[str, int]:
    """Every error ``code`` the server can answer with -> its HTTP status."""
    _setup_django()
    _import_all("speakers")
    _import_all("inference")
    from rest_framework import exceptions as drf

    from inference.errors import InferenceError
    from speakers.api import errors
    from speakers.exceptions import ApplicationError

    codes: dict[str, int] = {}
    import logging

    logging.disable(logging.CRITICAL)  # the mapping logs the database, decryption and "unhandled" errors it is shown

    def add(exc: BaseException | None) -> None:
        if exc is not None:
            status, code, _, _ = errors.describe_error(exc)
            codes.setdefault(code, status)

    for base in (ApplicationError, InferenceError, drf.APIException):
        for cls in [base, *_subclasses(base)]:
            if cls is base:
                continue  # the abstract bases: never raised themselves
            add(_instance(cls))
    # The exception types the mapping tests one by one (isinstance branches of _describe), and its fallback.
    tree = ast.parse(inspect.getsource(errors._describe))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance":
            names = node.args[1].elts if isinstance(node.args[1], ast.Tuple) else [node.args[1]]
            for name in names:
                target = eval(compile(ast.Expression(name), "<isinstance>", "eval"), vars(errors))  # noqa: S307
                if target not in (ApplicationError, InferenceError, drf.APIException):
                    add(_instance(target))
    add(RuntimeError("any other exception"))  # the fallback
    logging.disable(logging.NOTSET)
    # Responses written out with the error shape outside the handler.
    for path in (REPO / "speakers").rglob("*.py"):
        for call in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(call, ast.Call) and getattr(call.func, "id", None) == "JsonResponse" and call.args):
                continue
            body = call.args[0]
            if isinstance(body, ast.Call) and getattr(body.func, "id", None) == "error_body":
                status = next((k.value.value for k in call.keywords if k.arg == "status"), None)
                codes.setdefault(body.args[0].value, int(status))
    return dict(sorted(codes.items()))


FAMILIES = {400: "InvalidRequest", 401: "AuthenticationFailed", 403: "PermissionDenied", 404: "NotFound",
            408: "InvalidRequest", 405: "InvalidRequest", 409: "Conflict", 413: "PayloadTooLarge",
            414: "PayloadTooLarge", 415: "InvalidRequest", 422: "RecordingRefused", 429: "RateLimited",
            500: "ServerError", 503: "ServiceUnavailable"}


def class_name(code: str) -> str:
    name = "".join(part.capitalize() for part in code.split("_"))
    return name if name.endswith("Error") else f"{name}Error"


def family(status: int) -> str:
    return FAMILIES.get(status, "ServerError" if status >= 500 else "InvalidRequest")


def render(codes: dict[str, int]) -> str:
    lines = ['"""One exception class per error ``code`` of the voiceprint server (GENERATED: do not edit).',
             "",
             "Made by ``clients/python/scripts/generate_errors.py`` from the server's own list; each class",
             "derives from the family of its HTTP status (``errors.py``).",
             '"""', "from __future__ import annotations", "",
             "from .errors import (", *[f"    {name}," for name in sorted(set(map(family, codes.values())))],
             "    VoiceprintError,", ")", ""]
    for code, status in codes.items():
        lines += ["", f"class {class_name(code)}({family(status)}):",
                  f'    """HTTP {status} ``{code}``."""', "", f'    code = "{code}"', f"    status = {status}", ""]
    lines += ["", "# code -> its exception class: what the client raises for an error object of that code.",
              "ERRORS: dict[str, type[VoiceprintError]] = {", *[f'    "{c}": {class_name(c)},' for c in codes], "}",
              ""]
    return "\n".join(lines)


def main() -> int:
    codes = server_codes()
    OUTPUT.write_text(render(codes), encoding="utf-8")
    sys.stdout.write(f"wrote {len(codes)} codes to {OUTPUT}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The scope table of docs/api.md is exactly what is enforced: every scope against every route, HTTP and WebSocket.

A key with one scope calls every operation. Where the table allows it the request gets past authorisation
(whatever it then answers: these requests carry no valid body); where it does not, 403 insufficient_scope.
"""
from __future__ import annotations

import asyncio
import uuid

import pytest
from apitools import assert_error

from speakers.models import ApiKeyScope

pytestmark = pytest.mark.django_db

NOBODY = "00000000-0000-0000-0000-000000000001"

# (method, path, the scopes that allow it): the table of docs/api.md "Authentication and scopes".
HTTP_TABLE = [
    ("get", "/api/v1/speakers", {"manage"}),
    ("post", "/api/v1/speakers", {"enroll"}),
    ("get", f"/api/v1/speakers/{NOBODY}", {"enroll", "manage"}),
    ("patch", f"/api/v1/speakers/{NOBODY}", {"manage"}),
    ("delete", f"/api/v1/speakers/{NOBODY}", {"manage"}),
    ("put", f"/api/v1/speakers/{NOBODY}/consent", {"enroll", "manage"}),
    ("delete", f"/api/v1/speakers/{NOBODY}/consent", {"manage"}),
    ("post", f"/api/v1/speakers/{NOBODY}/opt-out", {"manage"}),
    ("get", f"/api/v1/speakers/{NOBODY}/export", {"manage"}),
    ("get", f"/api/v1/speakers/{NOBODY}/enrollments", {"enroll", "manage"}),
    ("post", f"/api/v1/speakers/{NOBODY}/enrollments", {"enroll"}),
    ("delete", f"/api/v1/speakers/{NOBODY}/enrollments/{NOBODY}", {"manage"}),
    ("post", "/api/v1/verify", {"verify"}),
    ("post", "/api/v1/compare", {"verify"}),
    ("post", "/api/v1/batch-verify", {"verify"}),
    ("post", "/v1/verify-speaker", {"verify"}),
    ("post", "/v1/batch-verify", {"verify"}),
    ("post", "/api/v1/identify", {"identify"}),
    ("post", "/api/v1/diarize", {"identify"}),
    ("get", "/api/v1/policy", {"manage"}),
    ("get", "/api/v1/watchlist", {"watchlist"}),
    ("post", "/api/v1/watchlist", {"watchlist"}),
    ("get", f"/api/v1/watchlist/{NOBODY}", {"watchlist"}),
    ("delete", f"/api/v1/watchlist/{NOBODY}", {"watchlist"}),
]
WEBSOCKET_TABLE = [
    ("/ws/v1/stream-verify", {"verify"}),
    ("/ws/v1/stream-identify", {"identify"}),
    ("/ws/stream-verify", {"verify"}),
]


def test_the_table_covers_every_route_of_the_api():
    """A new route must be added to the table (and to the docs) before it can pass this test."""
    from django.urls import get_resolver

    def patterns(resolver, prefix=""):
        for entry in resolver.url_patterns:
            route = prefix + str(entry.pattern)
            if hasattr(entry, "url_patterns"):
                yield from patterns(entry, route)
            else:
                yield route

    api = {p for p in patterns(get_resolver()) if (p.startswith("api/v1/") or p.startswith("v1/"))
           and not p.endswith(("schema", "docs", "health", "ready"))}
    covered = set()
    for _, path, _ in HTTP_TABLE:
        parts = path.strip("/").split("/")
        covered.add("/".join("<str:" if _is_uuid(part) else part for part in parts))
    normalised = {"/".join("<str:" if part.startswith("<") else part for part in p.split("/")) for p in api}
    assert normalised <= covered, normalised - covered


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
        return True
    except ValueError:
        return False


@pytest.mark.parametrize("scope", ApiKeyScope.values)
def test_each_scope_reaches_exactly_the_operations_the_table_gives_it(anon_client, make_key, scope):
    anon_client.credentials(HTTP_X_API_KEY=make_key(scope))
    for method, path, allowed in HTTP_TABLE:
        response = getattr(anon_client, method)(path, {}, format="json")
        refused = response.status_code == 403 and response.json()["error"]["code"] == "insufficient_scope"
        if scope in allowed:
            assert not refused, (scope, method, path, response.json())
        else:
            assert_error(response, 403, "insufficient_scope")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("scope", ApiKeyScope.values)
def test_each_scope_opens_exactly_the_websocket_routes_the_table_gives_it(make_key, scope):
    from asgiref.testing import ApplicationCommunicator

    from voiceprint_project.asgi import application

    key = make_key(scope)

    async def close_code(path: str) -> int | None:
        """The handshake as a client makes it; the code the server closes with (None: it stays open)."""
        communicator = ApplicationCommunicator(application, {
            "type": "websocket", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "scheme": "ws", "headers": [(b"x-api-key", key.encode()), (b"host", b"localhost")],
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80), "subprotocols": []})
        await communicator.send_input({"type": "websocket.connect"})
        wait = 30.0  # for the accept (the first request loads the model)
        try:
            while True:
                output = await communicator.receive_output(timeout=wait)
                if output["type"] == "websocket.close":
                    return output.get("code")
                wait = 5.0  # accepted: a refusal follows at once (the key is checked before anything is read)
        except (TimeoutError, asyncio.CancelledError):
            return None  # still open: the handshake was let through
        finally:
            try:  # (a session still open after the wait was cancelled by the test harness: nothing to close)
                await communicator.send_input({"type": "websocket.disconnect", "code": 1000})
                await communicator.wait(timeout=10)
            except (TimeoutError, asyncio.CancelledError):
                pass

    for path, allowed in WEBSOCKET_TABLE:
        closed = asyncio.run(close_code(path))
        if scope in allowed:
            assert closed != 4403, (scope, path)
        else:
            assert closed == 4403, (scope, path, closed)

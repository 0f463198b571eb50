"""Failed authentications throttle the one who fails, and the client address cannot be forged (issue 18, item 5).

Failures count per (client address, key prefix tried): a guesser of one key's secret is throttled
on that key from that address, while a right key from the same address (an office behind one NAT)
is served. The address comes from ``X-Forwarded-For`` only when the peer is one of
``VOICEPRINT_TRUSTED_PROXIES``; the last tests spoof the header against real servers (uvicorn under
runserver, gunicorn's uvicorn workers), whose own proxy-header handling used to believe it from 127.0.0.1.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from apitools import REPO, assert_error
from django.test import override_settings

from speakers.api.clients import address_of
from speakers.models import AuditEvent

pytestmark = pytest.mark.django_db


def _guess(client, key: str, *, address: str = "127.0.0.1", forwarded: str | None = None):
    extra = {"REMOTE_ADDR": address}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return client.get("/api/v1/speakers", HTTP_X_API_KEY=key, **extra)


# --- buckets per (address, key prefix) --------------------------------------------------------------

def test_a_right_key_is_served_from_an_address_where_other_keys_failed(anon_client, make_key, settings):
    settings.VOICEPRINT_RATE_AUTH_FAILURES = "5/min"
    for _ in range(5):
        assert_error(_guess(anon_client, "vp_abcdef012345.wrong"), 401, "invalid_api_key")
    assert_error(_guess(anon_client, "vp_abcdef012345.wrong"), 429, "throttled")
    # a colleague behind the same NAT, with her own key
    assert _guess(anon_client, make_key()).status_code == 200


def test_guessing_one_keys_secret_is_throttled_and_that_key_waits_at_that_address_only(anon_client, make_key,
                                                                                         settings):
    settings.VOICEPRINT_RATE_AUTH_FAILURES = "5/min"
    right = make_key()
    prefix = right.split(".", 1)[0]
    for attempt in range(5):
        assert_error(_guess(anon_client, f"{prefix}.guess-{attempt}"), 401, "invalid_api_key")
    throttled = _guess(anon_client, f"{prefix}.guess-5")
    assert_error(throttled, 429, "throttled")
    assert int(throttled["Retry-After"]) >= 1
    # from the guesser's address even the right secret waits: the throttle gives nothing away
    assert_error(_guess(anon_client, right), 429, "throttled")
    # from anywhere else the key works
    assert _guess(anon_client, right, address="198.51.100.20").status_code == 200


class Clock:
    """The throttle's clock, set by the test (speakers.api.throttles._now)."""

    def __init__(self, monkeypatch, t: float) -> None:
        from speakers.api import throttles

        self.t = t
        monkeypatch.setattr(throttles, "_now", lambda: self.t)


def test_no_stretch_of_a_window_holds_more_failures_than_the_limit_across_a_boundary_of_the_clock(
    anon_client, settings, monkeypatch
):
    # Fixed windows of the clock let a guesser make the limit just before a minute turns and the limit again
    # just after it: twice the limit within a second. The limit holds for every stretch of a minute.
    settings.VOICEPRINT_RATE_AUTH_FAILURES = "5/min"
    clock = Clock(monkeypatch, 1_800_000_059.5)  # half a second before the clock's minute turns
    for _ in range(5):
        assert_error(_guess(anon_client, "vp_abcdef012345.wrong"), 401, "invalid_api_key")
    clock.t += 1.0  # the next minute of the clock
    refused = _guess(anon_client, "vp_abcdef012345.wrong")
    assert_error(refused, 429, "throttled")
    # it waits until the minute after those failures has passed (their 6 s slice: at most one slice more)
    assert 59 <= int(refused["Retry-After"]) <= 60 + 6
    clock.t += 58.0  # 59.5 s after the failures: still within a minute of them
    assert_error(_guess(anon_client, "vp_abcdef012345.wrong"), 429, "throttled")
    clock.t += int(refused["Retry-After"]) - 58.0  # when Retry-After said
    assert_error(_guess(anon_client, "vp_abcdef012345.wrong"), 401, "invalid_api_key")


def test_failures_spread_over_a_window_leave_it_one_at_a_time(anon_client, settings, monkeypatch):
    settings.VOICEPRINT_RATE_AUTH_FAILURES = "5/min"
    clock = Clock(monkeypatch, 1_800_000_000.0)  # the start of a minute and of a 6 s slice
    for _ in range(5):  # one failure every 12 s
        assert_error(_guess(anon_client, "vp_abcdef012345.wrong"), 401, "invalid_api_key")
        clock.t += 12.0
    # a minute after the first failure: counted by slices of 6 s, it is let go when its slice has passed
    refused = _guess(anon_client, "vp_abcdef012345.wrong")
    assert_error(refused, 429, "throttled")
    assert int(refused["Retry-After"]) <= 7
    clock.t += 6.0
    assert_error(_guess(anon_client, "vp_abcdef012345.wrong"), 401, "invalid_api_key")  # one more, then the limit
    assert_error(_guess(anon_client, "vp_abcdef012345.wrong"), 429, "throttled")


def test_keys_of_no_known_prefix_share_one_bucket_per_address(anon_client, make_key, settings):
    settings.VOICEPRINT_RATE_AUTH_FAILURES = "5/min"
    for attempt in range(5):
        assert_error(_guess(anon_client, f"vp_{attempt:012x}.random"), 401, "invalid_api_key")
    assert_error(_guess(anon_client, "vp_ffffffffffff.random"), 429, "throttled")
    assert_error(_guess(anon_client, "not-even-shaped-like-a-key"), 429, "throttled")
    assert _guess(anon_client, make_key()).status_code == 200
    assert_error(_guess(anon_client, "vp_eeeeeeeeeeee.random", address="198.51.100.21"), 401, "invalid_api_key")


def test_requests_without_a_key_have_a_bucket_of_their_own(anon_client, make_key, settings):
    settings.VOICEPRINT_RATE_AUTH_FAILURES = "3/min"
    for _ in range(3):
        assert_error(anon_client.get("/api/v1/speakers"), 401, "missing_api_key")
    assert_error(anon_client.get("/api/v1/speakers"), 429, "throttled")
    assert _guess(anon_client, make_key()).status_code == 200


def test_a_throttled_flood_of_guesses_is_audited_once_a_minute(anon_client, settings):
    settings.VOICEPRINT_RATE_AUTH_FAILURES = "2/min"
    for _ in range(6):
        _guess(anon_client, "vp_abcdef012345.wrong")
    assert AuditEvent.objects.filter(action="auth_failure").count() == 2
    assert AuditEvent.objects.filter(action="throttled").count() == 1


# --- the client address --------------------------------------------------------------------------------

def test_a_forwarded_for_header_is_ignored_without_trusted_proxies(settings):
    settings.VOICEPRINT_TRUSTED_PROXIES = []
    assert address_of("127.0.0.1", "203.0.113.9") == "127.0.0.1"


@override_settings(VOICEPRINT_TRUSTED_PROXIES=["10.0.0.2", "172.18.0.0/16"])
def test_a_forwarded_for_header_counts_only_when_the_peer_is_a_trusted_proxy():
    assert address_of("192.0.2.50", "203.0.113.9") == "192.0.2.50"  # a client talking directly: its own address
    assert address_of("10.0.0.2", "203.0.113.9") == "203.0.113.9"
    assert address_of("172.18.4.7", "203.0.113.9") == "203.0.113.9"


@override_settings(VOICEPRINT_TRUSTED_PROXIES=["10.0.0.2", "172.18.0.0/16"])
def test_the_chain_is_walked_from_the_right_past_trusted_proxies_only():
    # the client wrote "6.6.6.6" itself; the balancer saw 203.0.113.9; an inner proxy saw the balancer
    assert address_of("10.0.0.2", "6.6.6.6, 203.0.113.9, 172.18.0.5") == "203.0.113.9"
    # every hop trusted: the leftmost is as far as the chain can be believed
    assert address_of("10.0.0.2", "172.18.0.9, 172.18.0.5") == "172.18.0.9"
    # garbage a client put at the left is never an address: the last believed hop is
    assert address_of("10.0.0.2", "not-an-ip, 172.18.0.5") == "172.18.0.5"
    assert address_of("10.0.0.2", "") == "10.0.0.2"


@override_settings(VOICEPRINT_TRUSTED_PROXIES=["10.0.0.0/8"])
def test_behind_a_trusted_proxy_the_audit_records_the_forwarded_client(anon_client):
    _guess(anon_client, "vp_abcdef012345.wrong", address="10.0.0.1", forwarded="6.6.6.6, 203.0.113.9")
    assert AuditEvent.objects.get(action="auth_failure").client_address == "203.0.113.9"


def _settings_value(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "VOICEPRINT_"))}
    code = ("import django; django.setup(); from django.conf import settings as s; "
            "print(json.dumps(s.VOICEPRINT_TRUSTED_PROXIES))")
    return subprocess.run([sys.executable, "-c", "import json; " + code], cwd=REPO, capture_output=True, text=True,
                          timeout=60, env={**clean, "DJANGO_SETTINGS_MODULE": "voiceprint_project.settings", **env})


def test_trusted_proxies_are_addresses_or_networks():
    result = _settings_value(VOICEPRINT_TRUSTED_PROXIES="10.0.0.2, 172.18.0.0/16,2001:db8::/32")
    assert json.loads(result.stdout) == ["10.0.0.2/32", "172.18.0.0/16", "2001:db8::/32"], result.stderr
    assert json.loads(_settings_value(VOICEPRINT_TRUSTED_PROXIES="0").stdout) == []  # the old "none"
    assert json.loads(_settings_value().stdout) == []


@pytest.mark.parametrize("value", ["1", "2", "10.0.0.300", "proxy.example"])
def test_a_count_or_a_name_instead_of_addresses_refuses_to_start(value):
    result = _settings_value(VOICEPRINT_TRUSTED_PROXIES=value)
    assert result.returncode != 0
    assert "VOICEPRINT_TRUSTED_PROXIES" in result.stderr and "address" in result.stderr


# --- real servers, spoofed headers ----------------------------------------------------------------------

def _http_status(url: str, headers: dict[str, str]) -> int:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _handshake_close_code(url: str, headers: dict[str, str]) -> int | None:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    with connect(url, additional_headers=headers, open_timeout=30, close_timeout=10) as ws:
        try:
            while True:
                ws.recv(timeout=30)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None


@pytest.fixture
def real_server(transactional_db, tmp_path):
    """``real_server(kind, **env)`` -> a started, healthy server (stopped at the end); no model warm-up."""
    from apitools import database_url, start_gunicorn, start_runserver, wait_until_healthy
    from django.db import connection

    started = []

    def start(kind: str, **env: str):
        env = {"VOICEPRINT_WARMUP": "false", **env}
        url = database_url(connection.settings_dict)
        server = start_runserver(kind, url, tmp_path, **env) if kind == "runserver" else \
            start_gunicorn(kind, url, tmp_path, asgi=True, **env)
        started.append(server)
        wait_until_healthy(server, timeout=120)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.mark.servers
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["runserver", "gunicorn-asgi"])
def test_a_spoofed_forwarded_for_does_not_escape_the_throttle_of_a_real_server(real_server, kind):
    server = real_server(kind, VOICEPRINT_RATE_AUTH_FAILURES="5/min")
    statuses = [_http_status(f"{server.url}/api/v1/speakers", {"X-API-Key": f"vp_abcdef012345.guess-{n}",
                                                                "X-Forwarded-For": f"203.0.113.{n}"})
                for n in range(8)]
    assert statuses == [401] * 5 + [429] * 3, (statuses, server.log_tail())
    # the WebSocket handshake counts the same failures, whatever the header says
    ws_url = server.url.replace("http://", "ws://") + "/ws/v1/stream-verify"
    assert _handshake_close_code(ws_url, {"X-API-Key": "vp_abcdef012345.guess-ws",
                                          "X-Forwarded-For": "203.0.113.99"}) == 4429
    addresses = set(AuditEvent.objects.filter(action="auth_failure").values_list("client_address", flat=True))
    assert addresses == {"127.0.0.1"}


@pytest.mark.servers
@pytest.mark.django_db(transaction=True)
def test_a_real_server_behind_a_trusted_proxy_records_the_forwarded_client(real_server):
    server = real_server("gunicorn-asgi", VOICEPRINT_TRUSTED_PROXIES="127.0.0.1")
    status = _http_status(f"{server.url}/api/v1/speakers", {"X-API-Key": "vp_abcdef012345.wrong",
                                                            "X-Forwarded-For": "6.6.6.6, 203.0.113.7"})
    assert status == 401
    assert AuditEvent.objects.get(action="auth_failure").client_address == "203.0.113.7"

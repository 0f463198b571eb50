"""``manage.py runserver`` (what `make serve` runs) on an address it cannot bind: a plain refusal, never "ready"."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest
from apitools import REPO, free_port

pytestmark = pytest.mark.servers


def _runserver(address: str, *extra: str, env: dict[str, str] | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", "runserver", *extra, address], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("extra", [["--noreload"], []], ids=["noreload", "autoreloader"])
def test_a_port_already_in_use_ends_the_command_with_a_clear_message_and_no_ready_line(extra, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _runserver(f"127.0.0.1:{port}", *extra, env={"DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"})
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert f"cannot serve on 127.0.0.1:{port}: port {port} is already in use" in result.stderr, output
    assert "voiceprint is ready" not in output and "Serving HTTP" not in output, output
    assert "Traceback" not in output, output


def test_a_free_port_is_served_and_announced_ready(tmp_path):
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "PYTHONUNBUFFERED": "1"}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=REPO, env=env, check=True,
                   capture_output=True, timeout=300)
    port = free_port()
    log = tmp_path / "server.log"
    process = subprocess.Popen([sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
                               cwd=REPO, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while "voiceprint is ready" not in log.read_text(errors="replace"):
            assert process.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.2)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            assert client.recv(64).startswith(b"HTTP/1.1 200"), log.read_text(errors="replace")
        assert f"voiceprint is ready at http://127.0.0.1:{port}/" in log.read_text(errors="replace")
    finally:
        process.terminate()
        process.wait(timeout=30)

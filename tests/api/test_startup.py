"""Servers refuse to start without a prepared model, with a message that says what to run."""
from __future__ import annotations

import pytest
from apitools import start_gunicorn, start_runserver


@pytest.mark.servers
@pytest.mark.parametrize("kind", ["runserver", "gunicorn"])
def test_a_server_refuses_to_start_without_a_prepared_model(kind, tmp_path):
    starter = start_runserver if kind == "runserver" else start_gunicorn
    server = starter(kind, f"sqlite:///{tmp_path / 'unused.sqlite3'}", tmp_path,
                     VOICEPRINT_MODEL_DIR=str(tmp_path / "no-model"))
    try:
        server.process.wait(timeout=60)
    finally:
        server.stop()
    assert server.process.returncode != 0
    assert "python manage.py prepare_model" in server.log_tail(20_000)

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


def test_a_server_refuses_to_start_with_a_tampered_model_graph(tmp_path, settings):
    import shutil

    from django.core.exceptions import ImproperlyConfigured

    from speakers.runtime.inference_owner import require_prepared_model

    model_dir = tmp_path / "model"
    shutil.copytree(settings.VOICEPRINT_MODEL_DIR, model_dir)
    checkpoint = model_dir / "ecapa.mindir"  # what the workers load
    checkpoint.chmod(0o600)
    data = bytearray(checkpoint.read_bytes())
    data[len(data) // 2] ^= 0x01
    checkpoint.write_bytes(bytes(data))
    settings.VOICEPRINT_MODEL_DIR = model_dir
    with pytest.raises(ImproperlyConfigured, match="sha256"):
        require_prepared_model()


def test_a_server_refuses_a_model_graph_exported_by_another_mindspore(tmp_path, settings):
    import json
    import shutil

    from django.core.exceptions import ImproperlyConfigured

    from speakers.runtime.inference_owner import require_prepared_model

    model_dir = tmp_path / "model"
    shutil.copytree(settings.VOICEPRINT_MODEL_DIR, model_dir)
    manifest = json.loads((model_dir / "manifest.json").read_text())
    manifest["mindspore"] = "2.0.0"
    (model_dir / "manifest.json").write_text(json.dumps(manifest))
    settings.VOICEPRINT_MODEL_DIR = model_dir
    with pytest.raises(ImproperlyConfigured, match="MindSpore 2.0.0"):
        require_prepared_model()


def test_a_server_that_diarizes_with_campplus_windows_refuses_to_start_without_campplus(tmp_path, settings):
    import shutil

    from django.core.exceptions import ImproperlyConfigured

    from speakers.runtime.inference_owner import require_prepared_model

    model_dir = tmp_path / "model"
    shutil.copytree(settings.VOICEPRINT_MODEL_DIR, model_dir)
    (model_dir / "campplus.json").unlink()  # ECAPA alone prepared
    settings.VOICEPRINT_MODEL_DIR = model_dir
    settings.VOICEPRINT_MODELS = ("ecapa",)
    settings.VOICEPRINT_DIARIZE_WINDOWS = "campplus"
    with pytest.raises(ImproperlyConfigured, match="VOICEPRINT_DIARIZE_WINDOWS=ecapa") as caught:
        require_prepared_model()
    assert "make model" in str(caught.value)
    settings.VOICEPRINT_DIARIZE_WINDOWS = "ecapa"  # ECAPA's windows: ECAPA alone suffices
    require_prepared_model()

"""``voiceprint compare --local`` decides as the server's ``/api/v1/compare`` does, with no server."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from clienttools import REPO
from voiceprint_client import VoiceprintClient
from voiceprint_client.local import AUDIO_LIMITS, FAR_TARGET, PROBE_GATE

pytestmark = pytest.mark.servers
PAIRS = [("a_snt1", "a_snt6"), ("a_snt2", "b_snt3"), ("b_snt1", "b_snt5")]


def _local(*args, cwd=REPO, **env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-m", "voiceprint_client", "compare", "--local", *map(str, args)],
                          capture_output=True, text=True, timeout=600, cwd=cwd, env={**clean, **env})


def test_local_and_the_servers_compare_agree_on_the_same_files(voiceprint_server, wav):
    with VoiceprintClient(voiceprint_server.url, api_key=voiceprint_server.api_key) as vp:
        for reference, test in PAIRS:
            served = vp.compare(wav(reference), wav(test))
            done = _local(wav(reference), wav(test), "--json")
            assert done.returncode == (0 if served.accepted else 1), done.stderr
            local = json.loads(done.stdout)
            assert local["accepted"] == served.accepted, (reference, test)
            assert local["model_version"] == served.model_version
            assert local["score"] == pytest.approx(served.score, abs=1e-3)
            assert local["threshold"] == pytest.approx(served.threshold, abs=1e-3)
            # the server shows three decimals; the local command prints the full figure
            assert local["similarity"] == pytest.approx(served.similarity, abs=5e-4)


def test_local_refuses_an_unusable_recording_with_the_servers_code(wav, tmp_path):
    from clienttools import silence_wav

    quiet = tmp_path / "quiet.wav"
    quiet.write_bytes(silence_wav())
    done = _local(wav("a_snt1"), quiet)
    assert done.returncode == 2 and "no_speech" in done.stderr


def test_local_says_how_to_run_it_when_the_engine_is_not_importable(wav, tmp_path):
    done = _local(wav("a_snt1"), wav("a_snt2"), cwd=tmp_path)
    assert done.returncode == 2
    assert "local_engine_unavailable" in done.stderr and "project's venv" in done.stderr
    assert "Traceback" not in done.stderr


def test_local_says_what_to_do_without_a_prepared_model(wav, tmp_path):
    done = _local(wav("a_snt1"), wav("a_snt2"), VOICEPRINT_MODEL_DIR=str(tmp_path / "no-model"))
    assert done.returncode == 2 and "make model" in done.stderr and "Traceback" not in done.stderr


def test_the_local_defaults_are_the_servers():
    pytest.importorskip("django")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "voiceprint_project.settings")
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from django.conf import settings

    assert AUDIO_LIMITS == {"min_duration_s": settings.VOICEPRINT_MIN_AUDIO_S,
                            "max_duration_s": settings.VOICEPRINT_MAX_AUDIO_S,
                            "max_bytes": settings.VOICEPRINT_MAX_UPLOAD_BYTES,
                            "max_channels": settings.VOICEPRINT_MAX_CHANNELS,
                            "max_decoded_values": settings.VOICEPRINT_MAX_DECODED_VALUES}
    assert PROBE_GATE == {"max_clipping_ratio": settings.VOICEPRINT_MAX_CLIPPING_RATIO,
                          "min_speech_level_dbfs": settings.VOICEPRINT_MIN_SPEECH_LEVEL_DBFS,
                          "min_snr_db": settings.VOICEPRINT_PROBE_MIN_SNR_DB,
                          "min_speech_s": settings.VOICEPRINT_PROBE_MIN_SPEECH_S}
    assert FAR_TARGET == settings.VOICEPRINT_FAR_TARGET

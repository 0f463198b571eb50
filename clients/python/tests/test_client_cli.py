"""The ``voiceprint`` command against a real server: the README's tour, --json, exit statuses, errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from clienttools import conversation_wav, silence_wav, unique

pytestmark = pytest.mark.servers


@pytest.fixture
def voiceprint(voiceprint_server, tmp_path):
    """``voiceprint("verify", ...)`` -> the finished command (``python -m voiceprint_client``, as the script runs)."""

    def run(*args: str, key: str | None = None, url: str | None = None) -> subprocess.CompletedProcess:
        env = {**os.environ, "VOICEPRINT_URL": url or voiceprint_server.url,
               "VOICEPRINT_API_KEY": voiceprint_server.api_key if key is None else key}
        return subprocess.run([sys.executable, "-m", "voiceprint_client", *map(str, args)], capture_output=True,
                              text=True, timeout=300, env=env, cwd=tmp_path)

    return run


def test_the_command_is_installed_beside_this_python():
    assert (Path(sys.executable).parent / "voiceprint").is_file()


def test_the_tour_enroll_verify_identify_compare_list(voiceprint, wav):
    name = unique("alice")
    enrolled = voiceprint("enroll", name, wav("a_snt1"), wav("a_snt2"), wav("a_snt3"))
    assert enrolled.returncode == 0, enrolled.stderr
    assert f"created speaker {name}" in enrolled.stdout and "enrolled 3 of 3" in enrolled.stdout
    again = voiceprint("enroll", name, wav("a_snt4"))  # an existing external id is enrolled, not created again
    assert again.returncode == 0 and "created" not in again.stdout

    accepted = voiceprint("verify", name, wav("a_snt5"))
    assert accepted.returncode == 0 and accepted.stdout.startswith("accepted:"), accepted.stderr
    rejected = voiceprint("verify", name, wav("b_snt5"))
    assert rejected.returncode == 1 and rejected.stdout.startswith("rejected:")

    identified = voiceprint("identify", wav("a_snt6"))
    assert identified.returncode == 0 and f"is {name}" in identified.stdout, identified.stdout
    assert voiceprint("compare", wav("a_snt1"), wav("a_snt6")).returncode == 0
    different = voiceprint("compare", wav("a_snt1"), wav("b_snt6"))
    assert different.returncode == 1 and different.stdout.startswith("different speakers")

    listed = voiceprint("speakers")
    assert listed.returncode == 0 and name in listed.stdout and "complete" in listed.stdout


def test_json_prints_the_servers_answers_and_several_files_show_progress_on_stderr(voiceprint, enrolled, wav):
    done = voiceprint("verify", enrolled.alice_external_id, wav("a_snt5"), wav("b_snt5"), "--json")
    assert done.returncode == 1  # one of the two rejected
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["accepted"] for line in lines] == [True, False]
    assert lines[0]["file"].endswith("a_snt5.wav") and "threshold" in lines[0]
    assert "[1/2]" in done.stderr and "[2/2]" in done.stderr
    by_id = voiceprint("verify", enrolled.alice, wav("a_snt4"), "--json")
    assert by_id.returncode == 0 and json.loads(by_id.stdout)["speaker_id"] == enrolled.alice
    speakers = [json.loads(line) for line in voiceprint("speakers", "--json").stdout.splitlines()]
    assert {enrolled.alice, enrolled.bob} <= {s["id"] for s in speakers}


def test_a_refused_recording_exits_2_with_its_code(voiceprint, enrolled, tmp_path):
    quiet = tmp_path / "quiet.wav"
    quiet.write_bytes(silence_wav())
    done = voiceprint("verify", enrolled.alice, quiet, "--json")
    assert done.returncode == 2 and "no_speech" in done.stderr
    assert json.loads(done.stdout)["error"]["code"] == "no_speech"


def test_enrolling_files_that_are_all_refused_exits_2_and_an_incomplete_voiceprint_exits_1(voiceprint, wav, tmp_path):
    quiet = tmp_path / "quiet.wav"
    quiet.write_bytes(silence_wav())
    assert voiceprint("enroll", unique("nobody"), quiet).returncode == 2
    partial = voiceprint("enroll", unique("partial"), wav("b_snt1"))
    assert partial.returncode == 1 and "incomplete" in partial.stdout


def test_usage_errors_unknown_speakers_missing_keys_and_absent_servers_exit_2(voiceprint, wav):
    assert voiceprint("verify").returncode == 2  # argparse: usage
    unknown = voiceprint("verify", unique("nobody"), wav("a_snt1"))
    assert unknown.returncode == 2 and "speaker_not_found" in unknown.stderr
    keyless = voiceprint("speakers", key="")
    assert keyless.returncode == 2 and "missing_api_key" in keyless.stderr and "VOICEPRINT_API_KEY" in keyless.stderr
    nowhere = voiceprint("health", url="http://127.0.0.1:9")
    assert nowhere.returncode == 2 and "cannot be reached" in nowhere.stderr and "make serve" in nowhere.stderr


def test_health_and_a_streamed_file(voiceprint, enrolled, wav):
    health = voiceprint("health")
    assert health.returncode == 0 and health.stdout.startswith("ready")
    streamed = voiceprint("stream", wav("a_snt5"), "--speaker", enrolled.alice_external_id)
    assert streamed.returncode == 0 and "final: accepted" in streamed.stdout and "score" in streamed.stdout


def test_diarize_prints_the_turns_and_each_voices_time(voiceprint, enrolled, wav, tmp_path):
    talk = conversation_wav(wav, tmp_path / "talk.wav")
    done = voiceprint("diarize", talk)
    assert done.returncode == 0, done.stderr
    assert f"{talk}: " in done.stdout and " turn(s)" in done.stdout
    done = voiceprint("diarize", talk, "--json")
    answer = json.loads(done.stdout)
    assert answer["file"] == str(talk) and answer["segments"]


def test_a_match_by_its_lead_says_so(capsys):
    """A server that matched the best short of the threshold, by its lead over the runner-up (matched_by lead)."""
    import argparse

    from voiceprint_client.cli import OK, Output, cmd_identify
    from voiceprint_client.models import IdentifyResult

    alice = {"speaker_id": "s1", "external_id": "alice", "display_name": "Alice", "score": 0.8, "raw_score": 0.41,
             "model_version": "m"}
    answer = {"candidates": [alice], "match": alice, "threshold": 1.9, "margin": 1.0, "runner_up_score": -6.2,
              "no_match_reason": None, "matched_by": "lead", "lead": 4.6, "lead_required": 3.1,
              "score_normalisation": "none", "model_version": "m", "processing_time_ms": 12.0}

    class Client:
        def identify(self, path, *, top_k, asnorm):
            return IdentifyResult.from_json(answer)

    args = argparse.Namespace(files=["probe.wav"], top_k=3, asnorm=None)
    assert cmd_identify(Client(), args, Output(as_json=False, quiet=True)) == OK
    line = capsys.readouterr().out.strip()
    assert line.startswith("match: probe.wav is alice (score 0.80 < threshold 1.90")
    assert "lead 4.60 >= 3.10 sd" in line
    older = IdentifyResult.from_json({k: v for k, v in answer.items()
                                      if k not in ("matched_by", "lead", "lead_required")})
    assert older.matched_by is None and older.lead_required is None  # a server before the lead rule

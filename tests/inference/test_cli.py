"""``python -m inference embed``: one unit row per embedded file in argument order, a JSON report; a bad
file is named and left out (non-zero exit), or with ``--strict`` nothing is written."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from inference.scoring import cosine


def _run_embed(clips, model_dir: Path, files: list[Path], out: Path, *options: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, VOICEPRINT_MODEL_DIR=str(model_dir))
    command = [sys.executable, "-m", "inference", "embed", *map(str, files), "--out", str(out), "--json", *options]
    return subprocess.run(command, cwd=clips.repo, env=env, capture_output=True, text=True, timeout=300)


def test_embed_writes_one_unit_row_per_file_in_argument_order(clips, prepared_model_dir, dev_results, tmp_path) -> None:
    names = ["b_snt2", "a_snt1"]  # not alphabetical: the order must be the arguments'
    out = tmp_path / "embeddings.npy"
    run = _run_embed(clips, prepared_model_dir, [clips.path(n) for n in names], out)
    assert run.returncode == 0, run.stderr
    rows = np.load(out)
    assert rows.shape == (2, 192) and rows.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    for row, name in zip(rows, names):
        assert cosine(row, dev_results[name].vector) > 0.9999
    report = json.loads(run.stdout)
    assert [entry["file"] for entry in report] == [str(clips.path(n)) for n in names]
    for entry, name in zip(report, names):
        assert entry["duration_s"] == round(dev_results[name].duration_s, 3)
        assert entry["speech_s"] == round(dev_results[name].speech_s, 3)
        assert entry["model_version"] == "spkrec-ecapa-voxceleb@0575cb64"


def test_embed_writes_what_succeeded_and_lists_what_failed(clips, prepared_model_dir, dev_results, tmp_path) -> None:
    bad = tmp_path / "notes.wav"
    bad.write_text("meeting notes, not a recording\n" * 20)
    out = tmp_path / "embeddings.npy"
    run = _run_embed(clips, prepared_model_dir, [clips.path("a_snt1"), bad, clips.path("b_snt1")], out)
    assert run.returncode == 1  # not everything was embedded
    assert f"{bad}: audio_not_audio" in run.stderr and "1 of 3 files failed" in run.stderr
    rows = np.load(out)
    assert rows.shape == (2, 192)
    assert cosine(rows[0], dev_results["a_snt1"].vector) > 0.9999
    assert cosine(rows[1], dev_results["b_snt1"].vector) > 0.9999
    report = json.loads(run.stdout)
    assert [entry.get("row") for entry in report] == [0, None, 1]
    assert [entry.get("error", {}).get("code") for entry in report] == [None, "audio_not_audio", None]


def test_embed_strict_with_a_bad_file_fails_naming_it_and_writes_nothing(clips, prepared_model_dir, tmp_path) -> None:
    bad = tmp_path / "notes.wav"
    bad.write_text("meeting notes, not a recording\n" * 20)
    out = tmp_path / "embeddings.npy"
    run = _run_embed(clips, prepared_model_dir, [clips.path("a_snt1"), bad, clips.path("b_snt1")], out, "--strict")
    assert run.returncode != 0
    assert f"{bad}: audio_not_audio" in run.stderr
    assert "a_snt1" not in run.stderr and "b_snt1" not in run.stderr
    assert not out.exists()
    report = json.loads(run.stdout)
    assert [entry.get("error", {}).get("code") for entry in report] == [None, "audio_not_audio", None]


def test_embed_with_no_usable_file_writes_nothing(clips, prepared_model_dir, tmp_path) -> None:
    bad = tmp_path / "notes.wav"
    bad.write_text("meeting notes, not a recording\n" * 20)
    out = tmp_path / "embeddings.npy"
    run = _run_embed(clips, prepared_model_dir, [bad], out)
    assert run.returncode == 1 and "1 of 1 files failed" in run.stderr and not out.exists()

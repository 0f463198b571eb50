"""tools.incomplete_voiceprints on a synthetic identification run: who is enrolled from how much, and what is counted."""
from __future__ import annotations

import numpy as np
import pytest

from inference.prepare import model_version as prepared_version
from inference.quality_calibration import shipped_calibration


@pytest.fixture
def run(tmp_path):
    """One held-out run: 9 known speakers with 3 enrollment files of 3 s each, 2 probes each, 6 unknown probes."""
    rng = np.random.default_rng(0)
    vectors, qualities, lines = {}, {}, []

    def file(path: str, direction: np.ndarray, noise: float) -> str:
        v = direction + noise * rng.standard_normal(192)
        vectors[path] = (v / np.linalg.norm(v)).astype(np.float32)
        qualities[path] = {"speech_s": 3.0, "snr_db": 30.0, "bandwidth_hz": 8000.0}
        return path

    for i in range(9):
        direction = rng.standard_normal(192)
        direction /= np.linalg.norm(direction)
        lines += [f"enroll s{i} {file(f'e{i}_{j}.wav', direction, 0.05)}" for j in range(3)]
        lines += [f"probe s{i} {file(f'p{i}_{j}.wav', direction, 0.05)}" for j in range(2)]
    for i in range(6):
        lines.append(f"probe u{i} {file(f'u{i}.wav', rng.standard_normal(192), 0.0)}")
    (tmp_path / "ident" / "heldout").mkdir(parents=True)
    (tmp_path / "ident" / "heldout" / "clean.txt").write_text("\n".join(lines) + "\n")
    return tmp_path, vectors, qualities


def test_galleries_are_enrolled_from_the_first_recordings_and_every_probe_is_counted(run):
    from tools.incomplete_voiceprints import MIXED_SHARE, markdown, measure

    lists, vectors, qualities = run
    calibration = shipped_calibration(prepared_version())
    if calibration is None:
        pytest.skip("no shipped calibration for the prepared model")
    figures = measure(lists, vectors, qualities, calibration, 0.01)
    pooled = figures["pooled"]
    # voiceprints of 3, 1 and 2 recordings of 3 s each
    assert {k: v["median"] for k, v in figures["voiceprint_speech_s"].items()} == {"complete": 9.0, "1": 3.0, "2": 6.0}
    # every complete voiceprint holds 9 s, so the service's gallery (6 s or more) is the whole one
    assert pooled["searchable"] == pooled["complete"]
    for key in ("complete", "incomplete_1", "incomplete_2", "mixed_1_all", "mixed_2_all"):
        assert (pooled[key]["known_probes"], pooled[key]["unknown_probes"]) == (18, 6)
        # distinct voices, clean probes: each is its own speaker, and a random unknown voice is nobody
        assert pooled[key]["top1"] == 1.0 and pooled[key]["correct_match"] == 1.0
        assert pooled[key]["false_identification"] == 0.0
    # the mixed gallery: a third of the speakers incomplete, their probes counted apart
    incomplete_probes = 2 * (9 // MIXED_SHARE)
    assert pooled["mixed_1_incomplete"]["known_probes"] == incomplete_probes
    assert pooled["mixed_1_complete"]["known_probes"] == 18 - incomplete_probes
    # not searched (today) an incomplete speaker is nobody; searched, each is found; unknown voices stay nobody
    today, searched = figures["choice"]["today_0"], figures["choice"]["searched_1"]
    assert (today["incomplete_probes"], today["incomplete_right"], today["complete_right"]) == (
        incomplete_probes, 0, 18 - incomplete_probes)
    assert (searched["incomplete_right"], searched["incomplete_wrong"], searched["unknown_matched"]) == (
        incomplete_probes, 0, 0)
    # with a target of 10 s no voiceprint is searched: no gallery to identify against, nothing counted
    nobody = measure(lists, vectors, qualities, calibration, 0.01, target_s=10.0)["pooled"]["searchable"]
    assert (nobody["known_probes"], nobody["unknown_probes"]) == (0, 0)
    text = markdown(figures)
    assert "| complete (all their recordings), every voiceprint searched | 9.0 s" in text
    assert "| not searched (the service today) | 100.00% (12 of 12) | 0.00% (0 of 6) / 0.00% (0 of 6) |" in text

"""The diarization benchmark's cache: the first pass and the second pass are windows of the dense layout it holds."""
from __future__ import annotations

import numpy as np

from benchmarks.diarization import dense_layout, thin
from inference.config import DiarizationConfig
from inference.diarization import WindowEmbeddings
from inference.diarization.windows import plan_windows, windows_between_changes
from inference.vad import SpeechReport


def _stretches(rng: np.random.Generator) -> list[tuple[float, float]]:
    out, t = [], 0.0
    for length in rng.uniform(0.2, 12.0, size=40):
        start = t + float(rng.uniform(0.1, 1.0))
        out.append((round(start, 2), round(start + float(length), 2)))
        t = out[-1][1]
    return out


def _cached(plan, rng) -> WindowEmbeddings:
    report = SpeechReport(speech_s=0.0, duration_s=0.0, speech_ratio=0.0, snr_db=0.0, speech_level_dbfs=0.0,
                          bandwidth_hz=0.0, segments=plan.regions)
    return WindowEmbeddings(plan=plan, embeddings=rng.standard_normal((len(plan), 4)), speech=np.zeros(0, bool),
                            frame_s=0.02, report=report, samples=np.zeros(0, np.float32))


def test_the_first_pass_is_every_kth_window_of_the_dense_layout_and_the_second_pass_is_among_them():
    rng = np.random.default_rng(3)
    config = DiarizationConfig(hop_s=1.5, refine_hop_s=0.75)
    dense, every = dense_layout(config)
    assert (dense.hop_s, dense.refine_hop_s, every) == (0.75, None, 2)
    stretches = _stretches(rng)
    cached = _cached(plan_windows(stretches, dense), rng)

    first = thin(cached, every).plan
    assert np.array_equal(first.bounds, plan_windows(stretches, config).bounds)
    second = windows_between_changes(first, rng.integers(0, 3, size=len(first)), config.window_s, config.refine_hop_s)
    assert len(second) > 0
    assert set(map(tuple, second.bounds.tolist())) <= set(map(tuple, cached.plan.bounds.tolist()))

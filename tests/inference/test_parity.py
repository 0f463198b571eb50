"""Parity with SpeechBrain's PyTorch ECAPA-TDNN (tests/fixtures/reference_embeddings.npz): the full
path on the dev clips, the network on every reference clip we have, and the dev scores themselves."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from inference.features import compute_features
from inference.scoring import cosine

# Measured: features -> network >= 0.9999998 on all 102 clips; the full path >= 0.999 on the dev
# clips (VAD drops long silences, which the reference keeps).
PARITY = 0.999
# The reference embeds each clip whole; LibriSpeech clips up to 15 s need a bucket beyond the
# production ones (whose largest is a window of a long recording, not a whole one).
WHOLE_CLIP_BUCKET = 1501


def test_every_dev_clip_through_the_full_path_matches_speechbrain(dev_results, reference_embeddings) -> None:
    scores = {name: cosine(result.vector, reference_embeddings[f"dev/{name}.wav"]) for name, result in dev_results.items()}
    assert len(scores) == 12
    worst = min(scores, key=scores.get)
    assert scores[worst] >= PARITY, f"{worst}: cosine {scores[worst]:.6f} to the reference"


def test_our_network_on_our_features_matches_speechbrain_on_the_dev_clips(embedder, clips, reference_embeddings) -> None:
    scores = {
        name: cosine(embedder.embed_features([compute_features(clips.wave(name))])[0], reference_embeddings[f"dev/{name}.wav"])
        for name in clips.dev_names
    }
    worst = min(scores, key=scores.get)
    assert scores[worst] >= PARITY, f"{worst}: cosine {scores[worst]:.6f} to the reference"


def test_our_network_on_our_features_matches_speechbrain_on_the_multi_speaker_clips(
    embedder, separate_embedder, clips, reference_embeddings
) -> None:
    if not clips.multi_dir.is_dir():
        pytest.skip(f"{clips.multi_dir} is not there (CI keeps ../shared beside the clone)")
    names = sorted(n for n in reference_embeddings if n.startswith("multi/"))
    assert len(names) == 90
    missing = [n for n in names if not (clips.multi_dir / n.removeprefix("multi/")).is_file()]
    assert not missing, f"reference clips missing from {clips.multi_dir}: {missing[:5]}"
    whole_clip = separate_embedder((WHOLE_CLIP_BUCKET,))  # freed after the test, with its 1.5 GB graph
    scores = {}
    for name in names:
        features = compute_features(clips.wave(clips.multi_dir / name.removeprefix("multi/")))
        fits = features.shape[0] <= embedder.config.buckets[-1]
        vector = (embedder if fits else whole_clip).embed_features([features])[0]
        scores[name] = cosine(vector, reference_embeddings[name])
    assert whole_clip.compiled_shapes, "no clip was longer than the production buckets"
    worst = min(scores, key=scores.get)
    assert scores[worst] >= PARITY, f"{worst}: cosine {scores[worst]:.6f} to the reference"


def test_dev_scores_separate_the_two_speakers_as_the_reference_does(dev_results) -> None:
    same, different = [], []
    for x, y in itertools.combinations(sorted(dev_results), 2):
        score = cosine(dev_results[x].vector, dev_results[y].vector)
        (same if x[0] == y[0] else different).append(score)
    assert (len(same), len(different)) == (30, 36)
    # reference: same speaker min 0.490 / mean 0.641, different speaker max 0.098 / mean 0.005
    assert min(same) >= 0.490 - 0.01
    assert max(different) <= 0.098 + 0.01
    assert np.mean(same) > np.mean(different) + 0.6
    assert np.mean(same) == pytest.approx(0.641, abs=0.01)
    assert np.mean(different) == pytest.approx(0.005, abs=0.01)

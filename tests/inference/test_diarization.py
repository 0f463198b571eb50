"""Diarization: who spoke when on real recordings, and the open-set naming of the clusters."""
from __future__ import annotations

import numpy as np
import pytest

from inference import vad
from inference.config import DiarizationConfig, EngineConfig
from inference.diarization import ClusterVerdict, diarize, embed_recording, name_clusters, name_verdicts, voiceprint_by
from inference.diarization.clustering import agglomerate, first_appearance
from inference.diarization.refinement import smooth_islands, turns_per_cluster
from inference.diarization.windows import plan_windows, windows_between_changes
from inference.errors import NoSpeechError

RATE = 16_000
# Tolerances of the two-speaker test: a turn change found within this of the true one, and this
# share of the speech given to the right speaker.
BOUNDARY_TOLERANCE_S = 0.5
MIN_RIGHT_SHARE = 0.90


def conversation(clips, order: list[str], pauses: list[float]) -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    """The dev clips in ``order`` (``a_snt1``, ...) joined with ``pauses`` seconds after each; the truth."""
    parts, truth, t = [], [], 0.0
    for name, pause in zip(order, pauses):
        x = clips.wave(name)
        parts.append(x)
        truth.append((t, t + x.size / RATE, name[0]))
        parts.append(np.zeros(int(round(pause * RATE)), dtype=np.float32))
        t += x.size / RATE + pause
    return np.concatenate(parts), truth


@pytest.fixture(scope="module")
def two_speakers(clips) -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    # a and b alternate; half the changes have no pause at all (only a pause-free change tests the windows)
    order = [f"{s}_snt{i}" for i in range(1, 7) for s in "ab"]
    pauses = [0.4 if k % 2 else 0.0 for k in range(len(order))]
    return conversation(clips, order, pauses)


@pytest.fixture(scope="module")
def two_speaker_result(embedder, two_speakers):
    samples, _ = two_speakers
    return diarize(samples, RATE, embedder.embed_windows, engine=embedder.config)  # the service's way


def test_windows_batched_or_one_per_call_give_the_same_diarization(embedder, two_speakers, two_speaker_result):
    samples, _ = two_speakers
    alone = diarize(samples, RATE, embedder.embed_features, engine=embedder.config)
    assert alone.segments == two_speaker_result.segments and alone.windows == two_speaker_result.windows
    for mine, theirs in zip(two_speaker_result.clusters, alone.clusters, strict=True):
        assert np.abs(mine.voiceprint - theirs.voiceprint).max() < 1e-5


@pytest.fixture(scope="module")
def campplus_result(embedder, campplus, two_speakers):
    """CAM++'s windows (its features, its batched graph, its stopping distances), ECAPA naming: the service's default."""
    samples, _ = two_speakers
    return diarize(samples, RATE, campplus.embed_windows, engine=embedder.config,
                   config=DiarizationConfig.for_windows("campplus"), window_features=campplus.window_features,
                   voiceprint_of=voiceprint_by(embedder.embed_features, embedder.config))


def test_campplus_windows_find_the_same_two_speakers_and_their_changes(campplus_result, two_speaker_result,
                                                                      two_speakers, campplus, embedder):
    _, truth = two_speakers
    assert len(campplus_result.clusters) == 2 and campplus_result.windows == two_speaker_result.windows
    true_changes = [b[0] for a, b in zip(truth, truth[1:])]
    segments = campplus_result.segments
    found = [b[0] for a, b in zip(segments, segments[1:]) if a[2] != b[2]]
    assert len(found) == len(true_changes)
    assert np.abs(np.asarray(found) - np.asarray(true_changes)).max() <= BOUNDARY_TOLERANCE_S
    # the voices' voiceprints are ECAPA's (voiceprint_of), not CAM++'s windows' mean
    for mine, ecapa in zip(campplus_result.clusters, two_speaker_result.clusters, strict=True):
        assert mine.voiceprint.shape == (192,) and float(mine.voiceprint @ ecapa.voiceprint) > 0.95


def test_campplus_windows_batched_or_one_per_call_give_the_same_diarization(embedder, campplus, two_speakers,
                                                                            campplus_result):
    samples, _ = two_speakers
    alone = diarize(samples, RATE, campplus.embed_features, engine=embedder.config,
                    config=DiarizationConfig.for_windows("campplus"), window_features=campplus.window_features,
                    voiceprint_of=voiceprint_by(embedder.embed_features, embedder.config))
    assert alone.segments == campplus_result.segments


def test_each_network_of_the_windows_has_its_own_stopping_distances():
    assert DiarizationConfig.for_windows("ecapa") == DiarizationConfig()
    campplus = DiarizationConfig.for_windows("campplus", max_speakers=4)
    assert (campplus.stop_distance, campplus.stop_distance_narrowband, campplus.max_speakers) == (0.675, 0.525, 4)
    assert DiarizationConfig.for_windows("campplus", stop_distance=0.6).stop_distance == 0.6
    with pytest.raises(ValueError, match="no stopping distances"):
        DiarizationConfig.for_windows("xvector")


def test_it_finds_two_speakers_in_a_two_speaker_recording(two_speaker_result):
    assert len(two_speaker_result.clusters) == 2
    assert [c.cluster for c in two_speaker_result.clusters] == [0, 1]
    assert two_speaker_result.clusters[0].first_s < two_speaker_result.clusters[1].first_s


def test_it_places_each_change_of_speaker_within_the_tolerance(two_speaker_result, two_speakers):
    _, truth = two_speakers
    true_changes = [b[0] for a, b in zip(truth, truth[1:])]
    segments = two_speaker_result.segments
    found_changes = [b[0] for a, b in zip(segments, segments[1:]) if a[2] != b[2]]
    assert len(found_changes) == len(true_changes)
    errors = np.abs(np.asarray(found_changes) - np.asarray(true_changes))
    assert errors.max() <= BOUNDARY_TOLERANCE_S, errors


def test_it_gives_most_of_the_speech_to_the_right_speaker(two_speaker_result, two_speakers):
    _, truth = two_speakers
    step = 0.01
    frames = int(truth[-1][1] / step) + 1
    true_label = np.full(frames, "", dtype=object)
    for start, end, who in truth:
        true_label[int(start / step) : int(end / step)] = who
    found = np.full(frames, -1)
    for start, end, cluster in two_speaker_result.segments:
        found[int(start / step) : int(end / step)] = cluster
    scored = (true_label != "") & (found >= 0)
    # the cluster that first speaks is speaker a (she opens the conversation)
    right = np.sum(scored & (true_label == "a") & (found == 0)) + np.sum(scored & (true_label == "b") & (found == 1))
    assert right / np.sum(true_label != "") >= MIN_RIGHT_SHARE


def test_its_cluster_totals_add_up_to_the_segments(two_speaker_result):
    for cluster in two_speaker_result.clusters:
        mine = [(s, e) for s, e, c in two_speaker_result.segments if c == cluster.cluster]
        assert cluster.speech_s == pytest.approx(sum(e - s for s, e in mine), abs=0.05)
        assert cluster.turns == 6
        assert cluster.voiceprint.shape == (192,)
        assert np.linalg.norm(cluster.voiceprint) == pytest.approx(1.0, abs=1e-5)
        assert 0 < cluster.voiceprint_speech_s <= cluster.speech_s


def test_a_cluster_voiceprint_is_closer_to_its_own_speaker(two_speaker_result, dev_results):
    a_print, b_print = (c.voiceprint for c in two_speaker_result.clusters)
    # a_snt6 / b_snt6 are in the conversation too: a fairer probe would be unseen, but the dev set has six clips each
    a_clip, b_clip = dev_results["a_snt6"].vector, dev_results["b_snt6"].vector
    assert a_print @ a_clip > a_print @ b_clip
    assert b_print @ b_clip > b_print @ a_clip


@pytest.mark.parametrize("speaker", ["a", "b"])
def test_it_finds_one_speaker_in_a_one_speaker_recording(embedder, clips, speaker):
    samples, _ = conversation(clips, [f"{speaker}_snt{i}" for i in range(1, 7)], [0.3, 0.0] * 3)
    result = diarize(samples, RATE, embedder.embed_features, engine=embedder.config)
    assert len(result.clusters) == 1
    assert result.clusters[0].turns == 1


def test_it_splits_into_the_number_of_speakers_it_is_given(embedder, two_speakers):
    samples, _ = two_speakers
    result = diarize(samples, RATE, embedder.embed_features, engine=embedder.config, num_speakers=1)
    assert len(result.clusters) == 1


def _loud_then_quiet(clips, pause_s: float) -> tuple[np.ndarray, int]:
    """a_snt1, ``pause_s`` of silence, then b_snt2 37 dB under it (under the engine's loudness gate, within
    diarization's sensitive detector's); the quiet voice's first frame."""
    loud, quiet = clips.wave("a_snt1"), clips.wave("b_snt2") * np.float32(10 ** (-37 / 20))
    pause = np.zeros(int(round(pause_s * RATE)), np.float32)
    return np.concatenate([loud, pause, quiet]), (loud.size + pause.size) // 320


def test_its_windows_come_from_the_engines_detector_and_quieter_edges_extend_its_speech(embedder, clips):
    x, quiet_from = _loud_then_quiet(clips, 0.0)  # the quiet voice goes on where the loud one stops
    config = DiarizationConfig()
    windows = embed_recording(x, RATE, embedder.embed_windows, engine=embedder.config, config=config)
    centred = x - np.float32(x.mean())
    engines, report = vad.detect_speech(centred, RATE, EngineConfig().vad)
    sensitive = vad.detect_speech(centred, RATE, config.speech_vad)[0]
    assert np.array_equal(windows.plan.bounds, plan_windows(report.segments, config).bounds)  # what the network embeds
    assert np.all(windows.speech[engines]) and np.all(windows.speech <= (engines | sensitive))
    assert windows.speech[quiet_from:].sum() > engines[quiet_from:].sum() + 50  # a second more of the stretch


def test_a_stretch_only_the_sensitive_detector_finds_is_left_out(embedder, clips):
    x, quiet_from = _loud_then_quiet(clips, 0.5)  # the quiet voice after a pause: no frame of the engine's
    config = DiarizationConfig()
    sensitive = vad.detect_speech(x - np.float32(x.mean()), RATE, config.speech_vad)[0]
    assert sensitive[quiet_from:].sum() > 50  # it is speech to the sensitive detector
    windows = embed_recording(x, RATE, embedder.embed_windows, engine=embedder.config, config=config)
    assert not windows.speech[quiet_from:].any()
    result = diarize(x, RATE, embedder.embed_windows, engine=embedder.config, config=config)
    assert result.segments[-1][1] <= quiet_from * 0.02  # no neighbour's label on it


def test_it_refuses_a_recording_without_speech(embedder):
    with pytest.raises(NoSpeechError):
        diarize(np.zeros(5 * RATE, dtype=np.float32), RATE, embedder.embed_features, engine=embedder.config)


def test_it_refuses_an_embedder_that_returns_the_wrong_shape(clips):
    samples, _ = conversation(clips, ["a_snt1", "b_snt1"], [0.3, 0.0])
    with pytest.raises(ValueError, match="embed_windows returned"):
        diarize(samples, RATE, lambda feats: np.zeros((len(feats), 10)))


def test_it_hands_the_network_at_most_a_batch_of_windows_per_call(clips):
    samples, _ = conversation(clips, [f"a_snt{i}" for i in range(1, 4)], [0.0, 0.0, 0.0])
    calls: list[int] = []

    def embed(feats):
        calls.append(len(feats))
        assert all(f.shape[1] == 80 for f in feats)
        return np.tile(np.eye(1, 192, dtype=np.float32), (len(feats), 1))

    result = diarize(samples, RATE, embed, config=DiarizationConfig(batch_windows=4))
    assert max(calls[:-1]) <= 4  # the last call is the voiceprints, one per cluster
    assert sum(calls[:-1]) == result.windows and calls[-1] == len(result.clusters) == 1


# --- windows, clustering, smoothing (no network) --------------------------------------------------

def test_windows_stay_inside_each_stretch_of_speech():
    config = DiarizationConfig(window_s=1.5, hop_s=0.75, min_window_s=0.5)
    plan = plan_windows([(0.0, 4.0), (5.0, 5.3), (6.0, 7.0)], config)
    assert plan.bounds.tolist() == [[0.0, 1.5], [0.75, 2.25], [1.5, 3.0], [2.25, 3.75], [2.5, 4.0], [6.0, 7.0]]
    assert plan.region.tolist() == [0, 0, 0, 0, 0, 2]  # 0.3 s is too short for a window of its own


def test_the_second_pass_adds_the_dense_layouts_windows_only_between_windows_of_different_clusters():
    coarse = plan_windows([(0.0, 8.0), (9.0, 12.2)], DiarizationConfig(hop_s=1.5, refine_hop_s=0.75))
    dense = plan_windows([(0.0, 8.0), (9.0, 12.2)], DiarizationConfig(hop_s=0.75, refine_hop_s=None))
    assert coarse.bounds[:, 0].tolist() == [0.0, 1.5, 3.0, 4.5, 6.0, 6.5, 9.0, 10.5, 10.7]
    # changes at 1.5|3.0, 6.0|6.5 (no window of the dense layout lies between those two), 9.0|10.5;
    # 6.5|9.0 is a pause between two stretches
    labels = np.array([0, 0, 1, 1, 1, 0, 0, 1, 1])

    extra = windows_between_changes(coarse, labels, window_s=1.5, hop_s=0.75)

    assert extra.bounds.tolist() == [[2.25, 3.75], [9.75, 11.25]]
    assert extra.region.tolist() == [0, 1]
    assert set(map(tuple, extra.bounds.tolist())) <= set(map(tuple, dense.bounds.tolist()))


def test_with_a_second_pass_only_the_windows_around_a_change_go_through_the_network_again(
        embedder, two_speakers, two_speaker_result):
    samples, truth = two_speakers
    calls: list[int] = []

    def embed(feats):
        calls.append(len(feats))
        return embedder.embed_features(feats)

    result = diarize(samples, RATE, embed, engine=embedder.config, config=DiarizationConfig(hop_s=1.5, refine_hop_s=0.75))

    first, second, voiceprints = calls  # one batch each: the first pass, the second, the voiceprints
    assert (first + second, second, voiceprints) == (result.windows, result.refined_windows, len(result.clusters))
    assert 0 < second < first < two_speaker_result.windows  # fewer windows than one pass every 0.75 s
    assert len(result.clusters) == 2
    found = [b[0] for a, b in zip(result.segments, result.segments[1:]) if a[2] != b[2]]
    true = [b[0] for a, b in zip(truth, truth[1:])]
    assert len(found) == len(true)
    assert np.abs(np.asarray(found) - np.asarray(true)).max() <= BOUNDARY_TOLERANCE_S


def test_a_second_pass_no_finer_than_the_first_adds_no_window():
    config = DiarizationConfig(hop_s=0.75, refine_hop_s=0.75)
    plan = plan_windows([(0.0, 4.0)], config)
    assert len(windows_between_changes(plan, np.arange(len(plan)), config.window_s, config.refine_hop_s)) == 0
    with pytest.raises(ValueError, match="refine_hop_s"):
        DiarizationConfig(refine_hop_s=0.0)


def test_clustering_stops_at_the_distance_and_obeys_the_caps():
    rng = np.random.default_rng(0)
    centres = np.eye(3, 16)
    x = np.concatenate([c + 0.05 * rng.standard_normal((10, 16)) for c in centres])
    labels, last, following = agglomerate(x, stop_distance=0.5)
    assert labels.tolist() == [0] * 10 + [1] * 10 + [2] * 10
    assert last < 0.5 < following
    assert int(agglomerate(x, stop_distance=0.5, max_speakers=2)[0].max()) + 1 == 2
    assert int(agglomerate(x, stop_distance=0.5, num_speakers=3)[0].max()) + 1 == 3
    assert agglomerate(x[:1], stop_distance=0.5)[0].tolist() == [0]


def test_labels_are_numbered_by_first_appearance():
    assert first_appearance(np.array([5, 5, 2, 7, 2])).tolist() == [0, 0, 1, 2, 1]


def test_short_islands_take_their_longer_neighbours_speaker_but_a_pause_keeps_them():
    labels = np.array([0] * 10 + [1] * 2 + [0] * 5 + [-1] * 3 + [1] * 2 + [-1])
    smoothed = smooth_islands(labels, min_frames=3)
    assert smoothed.tolist() == [0] * 17 + [-1] * 3 + [1] * 2 + [-1]


def test_turns_end_when_another_speaker_speaks_not_at_a_pause():
    segments = [(0.0, 1.0, 0), (1.5, 2.0, 0), (2.0, 3.0, 1), (3.5, 4.0, 0)]
    assert turns_per_cluster(segments, 2).tolist() == [2, 1]


# --- naming (pure) ---------------------------------------------------------------------------------

ENROLLED = ["alice", "bob", "carol"]


def test_naming_never_names_a_cluster_below_its_threshold():
    llr = np.array([[1.0, -3.0, -2.0], [-1.0, 2.9, -4.0], [-5.0, -5.0, -5.0]])
    names = name_clusters(llr, np.full_like(llr, 3.0), ENROLLED, margin=1.0)
    assert [n.label for n in names] == ["unknown-1", "unknown-2", "unknown-3"]
    assert all(n.enrolled is None and n.reason == "below_threshold" for n in names)
    assert names[1].best == "bob" and names[1].llr == 2.9


def test_naming_never_names_one_enrolled_speaker_twice():
    llr = np.array([[8.0, 0.0, 0.0], [9.0, 0.0, 0.0], [0.0, 0.0, 7.0]])
    names = name_clusters(llr, np.full_like(llr, 3.0), ENROLLED, margin=1.0)
    assert [n.label for n in names] == ["unknown-1", "alice", "carol"]
    assert names[0].reason == "taken" and names[0].best == "alice"


def test_a_cluster_whose_best_candidate_is_taken_does_not_fall_back_on_its_runner_up():
    # cluster 0 sounds most like alice, then bob; cluster 1 is more surely alice
    llr = np.array([[5.0, 4.9, 0.0], [5.5, 0.0, 0.0]])
    names = name_clusters(llr, np.full_like(llr, 3.0), ENROLLED, margin=0.0)
    assert [n.label for n in names] == ["unknown-1", "alice"]
    assert names[0].reason == "taken"


def test_naming_needs_a_lead_over_the_runner_up():
    llr = np.array([[6.0, 5.5, 0.0]])
    names = name_clusters(llr, np.full_like(llr, 3.0), ENROLLED, margin=1.0)
    assert names[0].label == "unknown-1" and names[0].reason == "ambiguous"
    assert names[0].runner_up_llr == 5.5


def test_naming_uses_each_pairs_own_threshold():
    llr = np.array([[4.0, 0.0, 0.0], [0.0, 4.0, 0.0]])
    threshold = np.array([[3.0, 3.0, 3.0], [3.0, 5.0, 3.0]])  # e.g. a telephone probe needs more
    names = name_clusters(llr, threshold, ENROLLED)
    assert [n.label for n in names] == ["alice", "unknown-1"]


def test_unknown_clusters_are_numbered_in_the_order_they_first_speak():
    llr = np.array([[0.0, 0.0, 0.0], [9.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    names = name_clusters(llr, np.full_like(llr, 3.0), ENROLLED, margin=1.0, first_speech_s=[30.0, 0.0, 12.0])
    assert [n.label for n in names] == ["unknown-2", "alice", "unknown-1"]


def test_naming_with_nobody_enrolled_leaves_everyone_unknown():
    names = name_clusters(np.zeros((2, 0)), np.zeros((2, 0)), [])
    assert [(n.label, n.reason) for n in names] == [("unknown-1", "no_candidates"), ("unknown-2", "no_candidates")]


def test_naming_given_verdicts_keeps_their_reasons_and_gives_a_speaker_to_the_surer_cluster_only():
    verdicts = [ClusterVerdict(best="alice", llr=6.0, threshold=3.0, runner_up_llr=1.0, reason=None),
                ClusterVerdict(best=None, llr=None, threshold=None, runner_up_llr=None, reason="no_candidates"),
                ClusterVerdict(best="alice", llr=8.0, threshold=3.0, runner_up_llr=0.0, reason=None),
                ClusterVerdict(best="bob", llr=2.0, threshold=3.0, runner_up_llr=None, reason="below_threshold")]
    names = name_verdicts(verdicts, first_speech_s=[0.0, 5.0, 10.0, 15.0])
    assert [(n.label, n.reason) for n in names] == [("unknown-1", "taken"), ("unknown-2", "no_candidates"),
                                                    ("alice", None), ("unknown-3", "below_threshold")]
    assert names[0].best == "alice" and names[0].llr == 6.0 and names[3].best == "bob"


def test_naming_refuses_matrices_that_do_not_match():
    with pytest.raises(ValueError):
        name_clusters(np.zeros((2, 3)), np.zeros((2, 2)), ENROLLED)
    with pytest.raises(ValueError):
        name_clusters(np.full((1, 3), np.nan), np.zeros((1, 3)), ENROLLED)

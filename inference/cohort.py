"""The AS-norm cohort: impostor voiceprints that scores are normalised against.

The shipped cohort is the weight matrix of the pretrained model's AAM-softmax classifier
(SpeechBrain ``classifier.ckpt``, ``{'weight': (7205, 192)}``): one row per training speaker
(7205 = the 1211 VoxCeleb1-dev + 5994 VoxCeleb2-dev speakers the model was trained on).
SpeechBrain's ``Classifier.forward`` L2-normalises both its weights and its input, so each
row, normalised, is the direction of one speaker in embedding space, directly comparable with
our unit-length embeddings by cosine. None of these speakers is a user of the service.

``prepare_model`` converts it once into ``cohort.npy`` beside the converted model
(:func:`save_cohort`); the service loads that with :func:`load_cohort` (no torch, no pickle).
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from inference.config import ModelConfig
from inference.errors import ModelIntegrityError, ModelNotPreparedError
from inference.scoring import l2_normalise
from inference.torch_checkpoint import load_torch_state_dict

logger = logging.getLogger(__name__)

COHORT_FILENAME = "cohort.npy"
# Training speakers of the classifier: VoxCeleb1 dev (1211) + VoxCeleb2 dev (5994).
CLASSIFIER_SPEAKERS = 7205
_CLASSIFIER_KEY = "weight"


def load_classifier_cohort(
    source: Path | str | bytes,
    *,
    expected_shape: tuple[int, int] = (CLASSIFIER_SPEAKERS, ModelConfig.embedding_size),
    expected_sha256: str | None = None,
) -> np.ndarray:
    """Read the classifier checkpoint and return its class directions.

    Parameters
    ----------
    source
        SpeechBrain ``classifier.ckpt`` (PyTorch zip state dict ``{'weight': (7205, 192)}``),
        as a path or its bytes, read without torch by
        :func:`inference.torch_checkpoint.load_torch_state_dict`.
    expected_shape
        ``(M, D)`` the weight must have.
    expected_sha256
        If given, the file's sha256 must match (e.g. ``ModelConfig.classifier_sha256``).

    Returns
    -------
    np.ndarray
        ``(M, D)`` float32 rows of unit L2 norm.

    Raises
    ------
    ModelNotPreparedError
        The file does not exist.
    ModelIntegrityError
        Wrong checksum, not a checkpoint, other tensors than ``weight``, wrong shape or
        non-finite values.
    """
    if isinstance(source, bytes):
        path, data = Path("<bytes>"), source
    else:
        path = Path(source)
        if not path.is_file():
            raise ModelNotPreparedError(f"classifier checkpoint not found: {path}", path=str(path))
        data = path.read_bytes()
    if expected_sha256 is not None:
        digest = hashlib.sha256(data).hexdigest()
        if digest != expected_sha256:
            raise ModelIntegrityError(
                "classifier checkpoint checksum mismatch", path=str(path), expected=expected_sha256, found=digest
            )
    state = load_torch_state_dict(data)
    if set(state) != {_CLASSIFIER_KEY}:
        raise ModelIntegrityError(
            "classifier checkpoint should hold exactly one tensor, 'weight'", path=str(path), keys=sorted(state)[:10]
        )
    weight = state[_CLASSIFIER_KEY]
    if weight.shape != tuple(expected_shape):
        raise ModelIntegrityError(
            "classifier weight has the wrong shape",
            path=str(path),
            expected=list(expected_shape),
            found=list(weight.shape),
        )
    _check_finite(weight, path)
    logger.info("loaded classifier cohort %s: %d x %d", path, *weight.shape)
    return l2_normalise(weight)


def save_cohort(npy_path: Path | str, array: np.ndarray) -> None:
    """Write a cohort as ``.npy`` (float32, unit rows, no pickle), atomically.

    Parameters
    ----------
    npy_path
        Destination, conventionally ``<model_dir>/cohort.npy``.
    array
        ``(M, D)`` cohort vectors; rows are L2-normalised before writing.
    """
    npy_path = Path(npy_path)
    cohort = np.asarray(array, dtype=np.float32)
    _check_matrix(cohort, npy_path, embedding_size=None)
    npy_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = npy_path.with_name(npy_path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, l2_normalise(cohort), allow_pickle=False)
    os.replace(tmp, npy_path)
    logger.info("wrote cohort %s: %d x %d", npy_path, *cohort.shape)


def load_cohort(npy_path: Path | str, *, embedding_size: int | None = ModelConfig.embedding_size) -> np.ndarray:
    """Load a cohort written by :func:`save_cohort`.

    Parameters
    ----------
    npy_path
        The ``.npy`` file.
    embedding_size
        Required number of columns ``D`` (``None`` to accept any).

    Returns
    -------
    np.ndarray
        ``(M, D)`` float32 rows of unit L2 norm.

    Raises
    ------
    ModelNotPreparedError
        The file does not exist (run ``prepare-model``).
    ModelIntegrityError
        Not a plain ``.npy`` array, wrong shape or non-finite values.
    """
    npy_path = Path(npy_path)
    if not npy_path.is_file():
        raise ModelNotPreparedError(f"cohort not found: {npy_path}; run prepare-model", path=str(npy_path))
    try:
        cohort = np.load(npy_path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ModelIntegrityError("cohort file is not a plain .npy array", path=str(npy_path), error=str(exc)) from exc
    _check_matrix(cohort, npy_path, embedding_size=embedding_size)
    return l2_normalise(cohort)


def _check_matrix(cohort: np.ndarray, path: Path, *, embedding_size: int | None) -> None:
    if cohort.ndim != 2 or cohort.shape[0] < 2:
        raise ModelIntegrityError("cohort must be a (M, D) array with M >= 2", path=str(path), found=list(cohort.shape))
    if embedding_size is not None and cohort.shape[1] != embedding_size:
        raise ModelIntegrityError(
            "cohort has the wrong embedding size", path=str(path), expected=embedding_size, found=int(cohort.shape[1])
        )
    _check_finite(cohort, path)


def _check_finite(array: np.ndarray, path: Path) -> None:
    if not np.issubdtype(array.dtype, np.floating) or not np.all(np.isfinite(array)):
        raise ModelIntegrityError("cohort holds non-float, NaN or infinite values", path=str(path))

"""Read a PyTorch ``torch.save`` zip checkpoint without torch and without running pickled code.

A PyTorch checkpoint is a zip archive: ``<root>/data.pkl`` is a pickle that describes the
state dict, and every tensor's raw little-endian bytes live in ``<root>/data/<key>``. The
pickle names a handful of callables (``torch._utils._rebuild_tensor_v2``, ``torch.FloatStorage``,
``collections.OrderedDict``). A plain ``pickle.load`` would import and call whatever the file
names; :class:`_RestrictedUnpickler` resolves only the names in :data:`_ALLOWED` to harmless
local stand-ins that rebuild numpy arrays, and refuses everything else.
"""
from __future__ import annotations

import collections
import io
import pickle
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from inference.errors import ModelIntegrityError

_STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class _StorageType:
    """Stand-in for ``torch.FloatStorage`` & co.: only remembers the element dtype."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]


def _rebuild_tensor_v2(
    storage: np.ndarray,
    storage_offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    requires_grad: bool = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> np.ndarray:
    """Numpy version of ``torch._utils._rebuild_tensor_v2``: a strided view, copied to C order."""
    itemsize = storage.dtype.itemsize
    if len(size) == 0:
        return storage[storage_offset : storage_offset + 1].reshape(()).copy()
    view = np.lib.stride_tricks.as_strided(
        storage[storage_offset:],
        shape=tuple(size),
        strides=tuple(s * itemsize for s in stride),
        writeable=False,
    )
    return np.ascontiguousarray(view)


def _rebuild_parameter(data: np.ndarray, requires_grad: bool = False, backward_hooks: Any = None) -> np.ndarray:
    return data


_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, archive: zipfile.ZipFile, root: str) -> None:
        super().__init__(file)
        self._archive = archive
        self._root = root
        self._storages: dict[str, np.ndarray] = {}

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise ModelIntegrityError(
                f"checkpoint refers to {module}.{name}, which a tensor checkpoint never needs; refusing to load it",
                module=module,
                name=name,
            ) from None

    def persistent_load(self, pid: Any) -> np.ndarray:
        # pid = ('storage', storage_type, key, location, numel)
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise ModelIntegrityError("unexpected persistent id in checkpoint", pid=repr(pid)[:100])
        storage_type, key, numel = pid[1], str(pid[2]), int(pid[4])
        if not isinstance(storage_type, _StorageType):
            raise ModelIntegrityError("unexpected storage type in checkpoint", storage=repr(storage_type)[:100])
        if key not in self._storages:
            raw = self._archive.read(f"{self._root}/data/{key}")
            array = np.frombuffer(raw, dtype=storage_type.dtype)
            if array.size != numel:
                raise ModelIntegrityError("truncated tensor data in checkpoint", key=key, expected=numel, found=array.size)
            self._storages[key] = array
        return self._storages[key]


def load_torch_state_dict(source: Path | bytes) -> dict[str, np.ndarray]:
    """Load a ``torch.save``'d state dict (zip format) as ``{name: numpy array}``.

    Parameters
    ----------
    source
        Path of the ``.ckpt``/``.pt`` file, or its bytes.

    Raises
    ------
    ModelIntegrityError
        The file is not a zip checkpoint, names a callable outside the tensor-rebuilding
        allow-list, or its tensor data is truncated.
    """
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise ModelIntegrityError("not a PyTorch zip checkpoint", error=str(exc)) from exc
    pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
    if len(pickles) != 1:
        raise ModelIntegrityError("checkpoint has no single data.pkl", files=archive.namelist()[:10])
    root = pickles[0][: -len("/data.pkl")]
    with archive.open(pickles[0]) as fh:
        state = _RestrictedUnpickler(io.BytesIO(fh.read()), archive, root).load()
    if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
        raise ModelIntegrityError("checkpoint is not a flat state dict of tensors")
    return dict(state)

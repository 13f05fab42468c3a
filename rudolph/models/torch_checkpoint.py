"""Reading a torch checkpoint (a ``state_dict`` saved by ``torch.save``) into numpy arrays
with :mod:`pickle` only, no torch: both the legacy and the zip formats. The labels model's
weights ship this way (rudolph/models/efficientnet_graph.py turns them into ONNX).
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

_STORAGE_DTYPES: dict[str, str] = {
    "DoubleStorage": "<f8",
    "FloatStorage": "<f4",
    "HalfStorage": "<f2",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}


@dataclass(frozen=True)
class _StorageType:
    name: str

    @property
    def dtype(self) -> str:
        return _STORAGE_DTYPES[self.name]

    @property
    def itemsize(self) -> int:
        return 2 if self.dtype == "bfloat16" else np.dtype(self.dtype).itemsize


class _Storage:
    """A flat typed buffer; ``data`` is filled when the bytes are available."""

    def __init__(self, storage_type: _StorageType, numel: int) -> None:
        self.storage_type = storage_type
        self.numel = numel
        self.data: np.ndarray | None = None

    def set_bytes(self, raw: bytes) -> None:
        dtype = self.storage_type.dtype
        if dtype == "bfloat16":
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            self.data = bits.view(np.float32)
        else:
            self.data = np.frombuffer(raw, dtype=dtype).astype(np.dtype(dtype).newbyteorder("="))


@dataclass
class _LazyTensor:
    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    def materialise(self) -> np.ndarray:
        flat = self.storage.data
        if flat is None:
            raise ValueError("checkpoint storage was never read")
        if not self.size:
            return flat[self.offset : self.offset + 1].reshape(()).copy()
        base = flat[self.offset :]
        strides = tuple(s * flat.itemsize for s in self.stride)
        view = np.lib.stride_tricks.as_strided(base, shape=self.size, strides=strides)
        return np.ascontiguousarray(view).copy()


def _rebuild_tensor_v2(
    storage: _Storage,
    storage_offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    requires_grad: bool = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> _LazyTensor:
    return _LazyTensor(storage, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_parameter(data: Any, requires_grad: bool = False, backward_hooks: Any = None) -> Any:
    return data


class _TorchUnpickler(pickle.Unpickler):
    """Unpickler that only knows the handful of torch globals a ``state_dict`` needs."""

    def __init__(
        self, file: BinaryIO, load_storage: Callable[[_StorageType, str, int], _Storage]
    ) -> None:
        super().__init__(file)
        self._load_storage = load_storage

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a checkpoint")

    def persistent_load(self, pid: Any) -> _Storage:
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        # legacy: ('storage', type, key, location, numel, view_metadata)
        # zip:    ('storage', type, key, location, numel)
        storage_type, key, _location, numel = pid[1:5]
        if len(pid) > 5 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views in legacy checkpoints are not supported")
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"unsupported storage type {storage_type!r}")
        return self._load_storage(storage_type, str(key), int(numel))


def _materialise(obj: Any) -> Any:
    if isinstance(obj, _LazyTensor):
        return obj.materialise()
    if isinstance(obj, collections.OrderedDict):
        return collections.OrderedDict((k, _materialise(v)) for k, v in obj.items())
    if isinstance(obj, dict):
        return {k: _materialise(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_materialise(v) for v in obj)
    return obj


def _load_zip(path: Path) -> Any:
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkl = next((n for n in names if n.endswith("/data.pkl") or n == "data.pkl"), None)
        if pkl is None:
            raise ValueError(f"{path}: zip checkpoint without data.pkl")
        prefix = pkl[: -len("data.pkl")]
        cache: dict[str, _Storage] = {}

        def load_storage(storage_type: _StorageType, key: str, numel: int) -> _Storage:
            if key not in cache:
                storage = _Storage(storage_type, numel)
                storage.set_bytes(zf.read(f"{prefix}data/{key}"))
                cache[key] = storage
            return cache[key]

        with zf.open(pkl) as fh:
            obj = _TorchUnpickler(io.BytesIO(fh.read()), load_storage).load()
    return _materialise(obj)


def _load_legacy(path: Path) -> Any:
    with open(path, "rb") as fh:
        magic = pickle.load(fh)
        if magic != _LEGACY_MAGIC:
            raise ValueError(f"{path}: not a torch checkpoint (bad magic)")
        protocol = pickle.load(fh)
        if protocol != 1001:
            raise ValueError(f"{path}: unsupported legacy protocol {protocol}")
        sys_info = pickle.load(fh)
        if not sys_info.get("little_endian", True):
            raise ValueError(f"{path}: big-endian checkpoints are not supported")

        storages: dict[str, _Storage] = {}

        def load_storage(storage_type: _StorageType, key: str, numel: int) -> _Storage:
            if key not in storages:
                storages[key] = _Storage(storage_type, numel)
            return storages[key]

        obj = _TorchUnpickler(fh, load_storage).load()
        keys = pickle.load(fh)
        # Each storage: int64 element count, then the raw little-endian elements.
        for key in keys:
            storage = storages[str(key)]
            (numel,) = struct.unpack("<q", fh.read(8))
            nbytes = numel * storage.storage_type.itemsize
            raw = fh.read(nbytes)
            if len(raw) != nbytes:
                raise ValueError(f"{path}: truncated storage {key}")
            storage.set_bytes(raw)
    return _materialise(obj)


def load_state_dict(pth_path: Path) -> dict[str, np.ndarray]:
    """Read a torch ``state_dict`` checkpoint into numpy arrays, without importing torch."""
    pth_path = Path(pth_path)
    obj = _load_zip(pth_path) if zipfile.is_zipfile(pth_path) else _load_legacy(pth_path)
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise ValueError(f"{pth_path}: expected a state_dict, got {type(obj).__name__}")
    return {str(k): v for k, v in obj.items() if isinstance(v, np.ndarray)}

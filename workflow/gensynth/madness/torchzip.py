"""What a ``torch.save`` file holds, read without torch: tensor names, shapes and dtypes, and the values of small ones.

Plain Python (the Snakefile checks the group's checkpoints at parse time, where importing torch would cost
every dry-run seconds). ``torch.save`` writes a zip archive: ``<name>/data.pkl`` pickles the object, each
tensor as ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`` with its storage a
persistent id ``("storage", torch.FloatStorage, key, location, numel)`` whose bytes are ``<name>/data/<key>``.
The unpickler here admits only those few globals, maps them to stubs that record shapes, and refuses
anything else, so reading a file never runs its code.
"""

from __future__ import annotations

import array
import math
import pickle
import sys
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import GensynthError

# torch's storage types -> (dtype name, the array module's typecode for reading values; "" = not readable here)
STORAGE_TYPES = {
    "FloatStorage": ("float32", "f"),
    "DoubleStorage": ("float64", "d"),
    "HalfStorage": ("float16", ""),
    "BFloat16Storage": ("bfloat16", ""),
    "LongStorage": ("int64", "q"),
    "IntStorage": ("int32", "i"),
    "ShortStorage": ("int16", "h"),
    "CharStorage": ("int8", "b"),
    "ByteStorage": ("uint8", "B"),
    "BoolStorage": ("bool", "B"),
}
REBUILD_FUNCTIONS = ("_rebuild_tensor_v2", "_rebuild_parameter")


class Refused(pickle.UnpicklingError):
    """A global outside the allowed few: the file holds more than tensors."""


@dataclass(frozen=True)
class StorageType:
    name: str


@dataclass(frozen=True)
class Storage:
    dtype: str
    key: str
    numel: int


@dataclass(frozen=True)
class TensorInfo:
    """A tensor as the file describes it; its values stay in the archive until :meth:`TorchZip.values`."""

    dtype: str
    shape: tuple[int, ...]
    storage: Storage
    offset: int
    stride: tuple[int, ...]


def rebuild_tensor(storage, storage_offset, size, stride, *_ignored) -> TensorInfo:
    if not isinstance(storage, Storage):
        raise pickle.UnpicklingError("a tensor without a storage")
    return TensorInfo(storage.dtype, tuple(int(s) for s in size), storage, int(storage_offset), tuple(int(s) for s in stride))


def rebuild_parameter(data, *_ignored) -> TensorInfo:
    if not isinstance(data, TensorInfo):
        raise pickle.UnpicklingError("a parameter without a tensor")
    return data


class RestrictedUnpickler(pickle.Unpickler):
    """Only OrderedDict, torch's tensor rebuild functions and its storage types; each a stub."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if module == "torch._utils" and name in REBUILD_FUNCTIONS:
            return rebuild_tensor if name == "_rebuild_tensor_v2" else rebuild_parameter
        if module == "torch" and name in STORAGE_TYPES:
            return StorageType(name)
        raise Refused(f"an object of {module}.{name}")

    def persistent_load(self, pid: Any) -> Storage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], StorageType)):
            raise pickle.UnpicklingError(f"unknown persistent id {str(pid)[:60]}")
        _, kind, key, _location, numel = pid
        return Storage(STORAGE_TYPES[kind.name][0], str(key), int(numel))


class TorchZip:
    """One ``torch.save`` archive: :attr:`obj` is the unpickled object with :class:`TensorInfo` for each tensor.
    A context manager (the archive stays open for :meth:`values`)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise GensynthError(f"{self.path}: not found")
        try:
            self.archive = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise GensynthError(
                f"{self.path}: not a torch.save zip archive ({exc}; torch.save writes one since torch 1.6: a legacy file needs loading and saving again)"
            ) from None
        pickles = [n for n in self.archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            self.archive.close()
            raise GensynthError(f"{self.path}: not a torch.save zip archive (no single <name>/data.pkl)")
        self.prefix = pickles[0].removesuffix("data.pkl")
        byteorder = f"{self.prefix}byteorder"
        self.byteorder = self.archive.read(byteorder).decode().strip() if byteorder in self.archive.namelist() else "little"
        try:
            with self.archive.open(pickles[0]) as handle:
                self.obj = RestrictedUnpickler(handle).load()
        except Refused as exc:
            self.archive.close()
            raise GensynthError(f"{self.path}: refused, it holds more than tensors ({exc})") from None
        except Exception as exc:  # a truncated or hand-made pickle: never executed, always refused
            self.archive.close()
            raise GensynthError(f"{self.path}: not a readable torch.save file ({' '.join(str(exc).split()) or type(exc).__name__})") from None

    def __enter__(self) -> TorchZip:
        return self

    def __exit__(self, *_exc) -> None:
        self.archive.close()

    def values(self, tensor: TensorInfo) -> list[float]:
        """A tensor's values, flattened in row-major order (for small tensors: the schedule buffers)."""
        kind = next(code for dtype, code in STORAGE_TYPES.values() if dtype == tensor.dtype)
        if not kind:
            raise GensynthError(f"{self.path}: {tensor.dtype} values cannot be read without torch")
        raw = array.array(kind)
        try:
            raw.frombytes(self.archive.read(f"{self.prefix}data/{tensor.storage.key}"))
        except (KeyError, ValueError, zipfile.BadZipFile) as exc:
            raise GensynthError(f"{self.path}: storage {tensor.storage.key} unreadable ({exc})") from None
        if self.byteorder != sys.byteorder:
            raw.byteswap()
        count = math.prod(tensor.shape)
        index = [tensor.offset]  # element positions, row-major over the shape
        for size, stride in zip(tensor.shape, tensor.stride):
            index = [i + k * stride for i in index for k in range(size)]
        if count and max(index) >= len(raw):
            raise GensynthError(f"{self.path}: storage {tensor.storage.key} holds {len(raw)} values, the tensor reads beyond them")
        return [raw[i] for i in index]


def tensor_shapes(obj: Any) -> dict[str, tuple[int, ...]] | None:
    """name -> shape of a state dict of tensors; None when ``obj`` is anything else."""
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, TensorInfo) for k, v in obj.items()):
        return None
    return {name: tensor.shape for name, tensor in obj.items()}

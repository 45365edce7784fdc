"""Atomic writers and safe loaders.

Every writer puts its bytes in a temporary file beside the target and renames it into
place, so a failed or killed job never leaves a half-written artifact. Loaders never
unpickle (``allow_pickle=False``, ``weights_only=True``) and turn a missing, truncated
or wrong-format file into one :class:`GensynthError` naming the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .errors import GensynthError

# Fixed member timestamp: the same arrays give byte-identical NPZ files.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        tmp.chmod(0o666 & ~current_umask())  # mkstemp's 0600 would hide shared artifacts
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; on success it replaces ``target`` whole (a killed job
    leaves no half-written folder, e.g. a diffusers pipeline saved with ``save_pretrained``)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    try:
        yield tmp
        # mkdtemp's 0700 (and the 0600 of files written through temporary files) would hide shared artifacts
        mask = current_umask()
        for path in (tmp, *tmp.rglob("*")):
            path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old)
        else:
            tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_open(target: str | os.PathLike, mode: str = "wb", **kwargs) -> Iterator[Any]:
    with atomic_path(target) as tmp, open(tmp, mode, **kwargs) as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


class NpzWriter:
    """Writes an NPZ member by member, each array whole or in chunks along axis 0.

    Chunked members keep the peak memory at one chunk however large the array.
    """

    def __init__(self, zip_file: zipfile.ZipFile):
        self.zip_file = zip_file

    def _member(self, name: str):
        info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_EPOCH)
        info.compress_type = self.zip_file.compression
        info.external_attr = 0o644 << 16
        return self.zip_file.open(info, "w", force_zip64=True)

    def add(self, name: str, array: np.ndarray) -> None:
        with self._member(name) as member:
            np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)

    def add_chunks(self, name: str, shape: tuple[int, ...], dtype, chunks: Iterable[np.ndarray]) -> None:
        """Member ``name`` of ``shape``/``dtype`` from chunks that stack along axis 0."""
        dtype = np.dtype(dtype)
        written = 0
        with self._member(name) as member:
            header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(shape)}
            np.lib.format.write_array_header_1_0(member, header)
            for chunk in chunks:
                chunk = np.ascontiguousarray(chunk, dtype=dtype)
                if chunk.shape[1:] != tuple(shape[1:]):
                    raise ValueError(f"{name}: chunk of shape {chunk.shape} does not stack into {shape}")
                member.write(chunk.tobytes())
                written += chunk.shape[0]
        if written != shape[0]:
            raise ValueError(f"{name}: chunks gave {written} rows, expected {shape[0]}")


@contextlib.contextmanager
def npz_writer(target: str | os.PathLike, compress: bool = True) -> Iterator[NpzWriter]:
    """An atomic, deterministic NPZ (same arrays, same bytes)."""
    compression = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with atomic_path(target) as tmp, zipfile.ZipFile(tmp, "w", compression=compression, allowZip64=True) as zf:
        yield NpzWriter(zf)


def save_npz(target: str | os.PathLike, arrays: Mapping[str, np.ndarray], compress: bool = True) -> None:
    with npz_writer(target, compress) as writer:
        for name, array in arrays.items():
            writer.add(name, array)


def save_json(target: str | os.PathLike, obj: Any) -> None:
    with atomic_open(target, "w", encoding="utf-8") as handle:
        json.dump(obj, handle, indent=2, sort_keys=False, default=_json_default)
        handle.write("\n")


def json_line(obj: Any) -> str:
    """``obj`` as one line of JSON (a JSON-lines record), numpy values as plain numbers."""
    return json.dumps(obj, default=_json_default)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def save_figure(fig, target: str | os.PathLike, **savefig_kwargs) -> None:
    """Save a matplotlib figure atomically (format from the target's suffix) and close it."""
    import matplotlib.pyplot as plt

    target = Path(target)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format=target.suffix.lstrip(".") or "png", **savefig_kwargs)
    plt.close(fig)


def save_checkpoint(target: str | os.PathLike, state: Mapping[str, Any]) -> None:
    """torch.save of plain tensors, numbers, strings, lists and dicts (loadable with weights_only). Saved through
    a file object: torch names the archive after a path it is given (here a random temporary one), so the same
    state gives the same bytes, and the same SHA-256 in provenance, on every run."""
    import torch

    with atomic_open(target) as handle:
        torch.save(dict(state), handle)


def _require_file(path: Path, what: str) -> None:
    if not path.exists():
        raise GensynthError(f"{path}: {what} not found")
    if not path.is_file():
        raise GensynthError(f"{path}: expected a {what}, found a directory or special file")


def load_npz(path: str | os.PathLike, required: Iterable[str] = ()) -> dict[str, np.ndarray]:
    """All arrays of an NPZ, loaded eagerly; ``required`` names must be present."""
    path = Path(path)
    _require_file(path, "NPZ file")
    try:
        with np.load(path, allow_pickle=False) as data:
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise GensynthError(f"{path}: expected an NPZ archive, found a single .npy array")
            arrays = {name: data[name] for name in data.files}
    except GensynthError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise GensynthError(f"{path}: holds object (pickled) arrays, which are refused") from None
        raise GensynthError(f"{path}: not a readable NPZ file ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError) as exc:
        raise GensynthError(f"{path}: not a readable NPZ file, truncated or of another format ({exc})") from None
    missing = [name for name in required if name not in arrays]
    if missing:
        raise GensynthError(f"{path}: missing array(s) {', '.join(missing)}; it has {', '.join(sorted(arrays)) or 'none'}")
    return arrays


def npz_member_shape(path: str | os.PathLike, name: str) -> tuple[int, ...]:
    """The shape of one array of an NPZ, from its header alone (cheap: nothing is decompressed but the header)."""
    path = Path(path)
    _require_file(path, "NPZ file")
    try:
        with zipfile.ZipFile(path) as archive, archive.open(f"{name}.npy") as member:
            major, _ = np.lib.format.read_magic(member)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, _, _ = read_header(member)
    except KeyError:
        raise GensynthError(f"{path}: missing array {name!r}") from None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise GensynthError(f"{path}: not a readable NPZ file ({exc})") from None
    return tuple(shape)


def load_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    _require_file(path, "JSON file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GensynthError(f"{path}: not valid JSON ({exc})") from None


def load_yaml(path: str | os.PathLike, what: str = "YAML file") -> Any:
    """A YAML file's contents (the safe loader: plain values only); ``what`` names it in the errors."""
    import yaml

    path = Path(path)
    _require_file(path, what)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise GensynthError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict[str, Any]:
    """torch.load with ``weights_only=True``; a checkpoint must be a dict."""
    import torch

    path = Path(path)
    _require_file(path, "checkpoint")
    if not zipfile.is_zipfile(path):
        raise GensynthError(f"{path}: not a readable torch checkpoint, truncated or of another format (not the zip archive torch.save writes)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else "unpickling refused"
        raise GensynthError(f"{path}: refused, it holds more than tensors and plain values ({first_line})") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise GensynthError(f"{path}: not a readable torch checkpoint, truncated or of another format ({exc})") from None
    if not isinstance(state, dict):
        raise GensynthError(f"{path}: expected a checkpoint dict, found {type(state).__name__}")
    return state


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()

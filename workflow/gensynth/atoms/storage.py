"""Dataset files on disk (the group's ``visualization.py`` savers, and the streaming writer).

A dataset directory holds ``train.npz``, ``val.npz``, ``test.npz`` (arrays ``images``
uint8 (N, G, G) and ``labels`` uint8 (N,), deflate-compressed, with fixed ZIP timestamps so
the same data give the same bytes), ``metadata.json`` and ``validation_report.png``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import queue
import re
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import GensynthError
from ..io import load_npz, npz_writer, save_json, sha256_file
from .corpus import DEFAULT_FRACTIONS, SPLIT_NAMES, estimate_memory
from .generators import DEFAULT_GENERATOR
from .naming import dataset_files, split_file

METADATA_VERSION = "1.0.0"
FILES = dataset_files()  # role -> file name
METADATA_FILE, REPORT_FILE = FILES["metadata"], FILES["report"]
DATA_FILES = (*(FILES[name] for name in SPLIT_NAMES), METADATA_FILE)
log = logging.getLogger(__name__)
QUEUE_BLOCKS = 4  # blocks waiting per split writer: bounds memory while the writers compress


def save_corpus(splits: Mapping[str, tuple[np.ndarray, np.ndarray]], output_dir: str | os.PathLike, dtype=np.uint8) -> None:
    """Save each split to ``<output_dir>/<split>.npz`` as ``dtype`` (the group's API; deterministic bytes)."""
    os.makedirs(output_dir, exist_ok=True)
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    for split_name, (images, labels) in splits.items():
        for what, array in (("images", images), ("labels", labels)):
            if info is not None and np.size(array) and (np.min(array) < info.min or np.max(array) > info.max):
                raise GensynthError(f"save_corpus: {split_name} {what} have values outside {np.dtype(dtype).name} range {info.min}..{info.max}")
        filepath = Path(output_dir) / split_file(split_name)
        with npz_writer(filepath) as writer:
            writer.add("images", np.asarray(images).astype(dtype))
            writer.add("labels", np.asarray(labels).astype(dtype))
        log.info("Saved %s: %d samples → %s", split_name, len(images), filepath)


def load_split(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, G, G), labels (N,)) of one split file, checked."""
    arrays = load_npz(path, required=("images", "labels"))
    images, labels = arrays["images"], arrays["labels"]
    if images.ndim != 3 or images.shape[1] != images.shape[2]:
        raise GensynthError(f"{path}: images of shape {images.shape}, expected (N, G, G)")
    if labels.shape != (len(images),):
        raise GensynthError(f"{path}: labels of shape {labels.shape}, expected ({len(images)},) to match the images")
    return images, labels


def load_corpus(dataset_dir: str | os.PathLike, splits: Iterable[str] = SPLIT_NAMES) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"train": (images, labels), ...} of a dataset directory, in memory."""
    return {name: load_split(Path(dataset_dir) / split_file(name)) for name in splits}


@contextlib.contextmanager
def open_npy_member(path: str | os.PathLike, name: str) -> Iterator[tuple[tuple[int, ...], np.dtype, Any]]:
    """(shape, dtype, stream at the first row) of array ``name`` in an NPZ, without loading it."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive, archive.open(f"{name}.npy") as member:
            version = np.lib.format.read_magic(member)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran_order, dtype = read_header(member)
            if fortran_order or dtype.hasobject:
                raise GensynthError(f"{path}: array {name} is Fortran-ordered or holds objects; expected a plain C array")
            yield shape, dtype, member
    except FileNotFoundError:
        raise GensynthError(f"{path}: NPZ file not found") from None
    except KeyError:
        raise GensynthError(f"{path}: missing array {name}") from None
    except (zipfile.BadZipFile, ValueError, EOFError, OSError) as exc:
        raise GensynthError(f"{path}: not a readable NPZ file ({exc})") from None


def iter_rows(path: str | os.PathLike, name: str, rows_per_chunk: int = 65536) -> Iterator[np.ndarray]:
    """Array ``name`` of an NPZ in chunks along axis 0 (bounded memory for any size)."""
    with open_npy_member(path, name) as (shape, dtype, member):
        row_shape = tuple(shape[1:])
        row_bytes = int(np.prod(row_shape, dtype=np.int64)) * dtype.itemsize
        for start in range(0, shape[0] if shape else 0, rows_per_chunk):
            count = min(rows_per_chunk, shape[0] - start)
            buffer = member.read(count * row_bytes)
            if len(buffer) != count * row_bytes:
                raise GensynthError(f"{path}: array {name} is truncated")
            yield np.frombuffer(buffer, dtype).reshape(count, *row_shape)


def read_rows(path: str | os.PathLike, name: str, rows: np.ndarray) -> np.ndarray:
    """Rows ``rows`` (sorted, unique) of array ``name`` of an NPZ, streaming through the file."""
    with open_npy_member(path, name) as (shape, dtype, _):
        picked, start = [np.empty((0, *shape[1:]), dtype)], 0
    for chunk in iter_rows(path, name):
        inside = rows[(rows >= start) & (rows < start + len(chunk))]
        picked.append(chunk[inside - start])
        start += len(chunk)
    return np.concatenate(picked)


class _Abort(Exception):
    """Tells a split writer to drop its file: generation failed."""


_END, _ABORT = object(), object()


class _SplitWriter(threading.Thread):
    """Writes one split's NPZ from blocks put on its queue; compresses while the next blocks are made."""

    def __init__(self, path: Path, count: int, grid_size: int):
        super().__init__(name=f"atoms-write-{path.stem}", daemon=True)
        self.path, self.count, self.grid_size = path, count, grid_size
        self.blocks: queue.Queue = queue.Queue(maxsize=QUEUE_BLOCKS)
        self.labels = np.empty(count, np.uint8)  # (count,) filled by the producer before _END
        self.error: BaseException | None = None

    def _images(self) -> Iterator[np.ndarray]:
        while True:
            block = self.blocks.get()
            if block is _END or block is _ABORT:
                self.stopped = True
                if block is _ABORT:
                    raise _Abort
                return
            yield block

    def run(self) -> None:
        self.stopped = False
        try:
            with npz_writer(self.path) as writer:
                writer.add_chunks("images", (self.count, self.grid_size, self.grid_size), np.uint8, self._images())
                writer.add("labels", self.labels)
        except _Abort:
            pass  # the producer failed and reports it; npz_writer dropped the partial file
        except BaseException as exc:  # reported by write_splits
            self.error = exc
            while not self.stopped:  # keep taking blocks so the producer never blocks on a full queue
                block = self.blocks.get()
                self.stopped = block is _END or block is _ABORT


def write_splits(
    blocks: Iterable[tuple[np.ndarray, np.ndarray]],
    assignment: np.ndarray,
    output_dir: str | os.PathLike,
    grid_size: int,
) -> dict[str, int]:
    """Stream a corpus's blocks into ``<output_dir>/{train,val,test}.npz``; returns the count per split.

    ``assignment`` (N,) gives each image's split (index into SPLIT_NAMES). One thread per
    split compresses and writes; at most QUEUE_BLOCKS blocks wait per split.
    """
    counts = {name: int(np.count_nonzero(assignment == code)) for code, name in enumerate(SPLIT_NAMES)}
    writers = {name: _SplitWriter(Path(output_dir) / FILES[name], counts[name], grid_size) for name in SPLIT_NAMES}
    for writer in writers.values():
        writer.start()
    filled = dict.fromkeys(SPLIT_NAMES, 0)
    start = 0
    try:
        for images, labels in blocks:
            codes = assignment[start : start + len(labels)]
            if len(codes) != len(labels):
                raise GensynthError(f"the generator gave more images than the {len(assignment)} asked for")
            for code, name in enumerate(SPLIT_NAMES):
                rows = np.flatnonzero(codes == code)
                writers[name].labels[filled[name] : filled[name] + len(rows)] = labels[rows]
                writers[name].blocks.put(images[rows])
                filled[name] += len(rows)
            start += len(labels)
        if start != len(assignment):
            raise GensynthError(f"the generator gave {start} images, expected {len(assignment)}")
    except BaseException:
        for writer in writers.values():
            writer.blocks.put(_ABORT)
            writer.join()
        raise
    for writer in writers.values():
        writer.blocks.put(_END)
        writer.join()
    for writer in writers.values():
        if writer.error is not None:
            raise writer.error
    return counts


def save_metadata(
    output_dir: str | os.PathLike,
    num_images: int,
    seed: int,
    splits_info: Mapping[str, int],
    *,
    grid_size: int = 16,
    fractions: Mapping[str, float] = DEFAULT_FRACTIONS,
    generator: str = DEFAULT_GENERATOR,
    provenance: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``metadata.json``: the published metadata fields, the NPZ files' SHA-256 and sizes, and provenance."""
    output_dir = Path(output_dir)
    memory = estimate_memory(num_images, grid_size)
    files = {}
    for name in SPLIT_NAMES:
        path = output_dir / FILES[name]
        if path.is_file():
            files[path.name] = {"sha256": sha256_file(path), "size_bytes": path.stat().st_size}
    metadata = {
        "version": METADATA_VERSION,
        "timestamp": dt.datetime.now().isoformat(),
        "generation_params": {
            "num_images": num_images,
            "seed": seed,
            "grid_size": grid_size,
            "splits": {name: float(fractions[name]) for name in SPLIT_NAMES},
            "generator": generator,
        },
        "dataset_info": dict(splits_info),
        "memory_info": {"bytes_per_image": memory["bytes_per_image"], "total_bytes": memory["bytes"], "readable": memory["readable"]},
        "file_format": {"dtype": "uint8", "compression": "npz"},
        "files": files,
    }
    if provenance is not None:
        metadata["provenance"] = dict(provenance)
    save_json(output_dir / METADATA_FILE, metadata)
    log.debug("Saved metadata: %s", output_dir / METADATA_FILE)  # debug: the CLI writes into a staging directory
    return metadata


def next_dataset_dir(root: str | os.PathLike = "datasets", today: dt.date | None = None) -> Path:
    """``<root>/YYYY-MM-DD-vN`` with N one more than the highest version of today already there."""
    stamp = (today or dt.date.today()).isoformat()
    root = Path(root)
    pattern = re.compile(rf"{re.escape(stamp)}-v([0-9]+)")
    taken = [int(match.group(1)) for path in (root.iterdir() if root.is_dir() else ()) if (match := pattern.fullmatch(path.name))]
    return root / f"{stamp}-v{max(taken, default=0) + 1}"


def existing_dataset_files(output_dir: str | os.PathLike) -> list[str]:
    output_dir = Path(output_dir)
    return [name for name in DATA_FILES if (output_dir / name).exists()]


def check_writable(output_dir: str | os.PathLike) -> None:
    """Fail before any work if ``output_dir`` cannot be created or written (without creating it)."""
    output_dir = Path(output_dir)
    probe = output_dir
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise GensynthError(f"--output-dir {output_dir}: {probe} is a file, not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise GensynthError(f"--output-dir {output_dir}: directory {probe} is not writable")


@contextlib.contextmanager
def staged_dataset(output_dir: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """A hidden staging directory inside ``output_dir``; on success its files replace the dataset's.

    Nothing is lost on failure: an existing dataset stays whole until every new file is
    complete, and metadata.json moves last, so a directory with it holds a complete dataset.
    """
    output_dir = Path(output_dir)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=".staging-", dir=output_dir))
    except OSError as exc:
        raise GensynthError(f"--output-dir {output_dir}: cannot create or write it ({exc.strerror or exc})") from None
    try:
        yield stage
        found = existing_dataset_files(output_dir)
        if found and not overwrite:
            raise GensynthError(f"--output-dir {output_dir}: a dataset appeared there meanwhile ({', '.join(found)}); pass --overwrite")
        new_files = sorted((path.name for path in stage.iterdir()), key=lambda name: name == METADATA_FILE)
        (output_dir / METADATA_FILE).unlink(missing_ok=True)
        for name in (*DATA_FILES, REPORT_FILE):
            if name not in new_files:
                (output_dir / name).unlink(missing_ok=True)  # a stale file would describe the old data
        for name in new_files:
            os.replace(stage / name, output_dir / name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)

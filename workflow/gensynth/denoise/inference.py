"""Denoising with a trained MambaUV: arrays, and whole manifests into a mirrored tree of ``_denoised.npy`` files.

:func:`denoise_manifest` is what ``scripts/run_denoise_from_manifest.py`` runs: every distinct file of the
manifest denoised once (the Noise2Noise duplicates point at the same ``.npy``) to
``<output_root>/<relative_path without .npy>_denoised.npy``, each written atomically; shard ``i`` of ``n``
takes every n-th distinct file, so the shard jobs of the DAG split the work without coordination.

Resuming: a rerun skips a file that is already there and loads as a finite spectrum of the grid's length,
but only when the shard's stamp (``.denoise/shard_<i>_of_<n>.json``: the checkpoint's and dose files'
SHA-256) shows it was made by the same model; with another model the shard's old outputs are deleted before
the new stamp is written, so no output of an older model is ever taken for a finished one.
"""

from __future__ import annotations

import json
import logging
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import GensynthError
from ..io import save_json, sha256_file
from ..progress import progress
from .checkpoint import build_denoiser, read_denoiser_checkpoint
from .data import DoseTable, load_manifest, load_spectrum, save_spectrum
from .kernels import warm_up_kernels
from .layout import denoised_relative_path

log = logging.getLogger(__name__)
STAMP_DIR = ".denoise"


@dataclass
class Denoiser:
    """A checkpoint's model with what it was trained on: dose features and their normalisation, the grid."""

    model: torch.nn.Module
    state: dict[str, Any]
    path: Path
    sha256: str
    device: torch.device

    @classmethod
    def load(cls, path: str | os.PathLike, device: torch.device | str = "cpu") -> Denoiser:
        path = Path(path)
        state = read_denoiser_checkpoint(path)
        warm_up_kernels(device)
        return cls(build_denoiser(state, device), state, path, sha256_file(path), torch.device(device))

    @property
    def grid(self) -> np.ndarray:
        return self.state["wavelength_grid"].numpy()

    def dose_table(self, features_csv: str | os.PathLike, stats_json: str | os.PathLike | None = None) -> DoseTable:
        """The dose features of ``features_csv`` normalised as in training; a ``stats_json`` given must agree with it."""
        trained = self.state["dose_stats"]
        if stats_json is not None:
            given = DoseTable.load(features_csv, stats_json).stats()
            if given["features"] != trained["features"] or not all(
                np.allclose([given[k][f] for f in given["features"]], [trained[k][f] for f in trained["features"]], rtol=1e-6) for k in ("mean", "std")
            ):
                raise GensynthError(
                    f"{stats_json}: dose normalisation {given} differs from the one {self.path} was trained with "
                    f"({trained}); expected the training's dose_stats.json"
                )
        return DoseTable.load(features_csv, trained)

    def check_grid(self, grid: np.ndarray, where: str | os.PathLike) -> None:
        trained = self.grid
        if len(grid) != len(trained) or not np.allclose(grid, trained, rtol=0, atol=1e-6):
            raise GensynthError(
                f"{where}: {len(grid)} wavelengths {grid[0]:g}-{grid[-1]:g} nm; {self.path} was trained on "
                f"{len(trained)} wavelengths {trained[0]:g}-{trained[-1]:g} nm"
            )

    @torch.no_grad()
    def __call__(self, spectra: np.ndarray, dose: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """(N, L) spectra and (N, D) normalised dose -> (N, L) float32; per spectrum, so any batch size gives the same values."""
        out = np.empty(spectra.shape, np.float32)
        for start in range(0, len(spectra), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(spectra[start : start + batch_size], np.float32)).to(self.device)  # (b, L)
            d = torch.from_numpy(np.ascontiguousarray(dose[start : start + batch_size], np.float32)).to(self.device)  # (b, D)
            # float32 on every device (no fp16 autocast): the small model is cheap, and a selective scan's
            # products of decays lose their precision in half
            out[start : start + len(x)] = self.model(x, d).cpu().numpy()  # (b, L)
        return out


@dataclass
class ManifestRun:
    """What :func:`denoise_manifest` did."""

    rows: int  # manifest rows
    files: int  # distinct files of this shard
    written: int
    skipped: int  # already finished by an earlier run of the same model
    seconds: float  # the whole call: manifest checks, model load, reading, denoising, writing
    outputs: list[str]  # the shard's output paths, relative to the output root

    @property
    def spectra_per_s(self) -> float:
        return self.files / self.seconds if self.seconds > 0 else float("inf")


def shard_stamp(output_root: Path, shard: int, num_shards: int) -> Path:
    return output_root / STAMP_DIR / f"shard_{shard}_of_{num_shards}.json"


def read_stamp(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def finished(path: Path, length: int) -> bool:
    """An output an earlier run completed: it loads as a finite spectrum of the right length."""
    if not path.is_file():
        return False
    try:
        load_spectrum(path, length, "resume")
    except GensynthError:
        return False
    return True


def denoise_manifest(
    manifest_path: str | os.PathLike,
    root: str | os.PathLike,
    checkpoint: str | os.PathLike,
    output_root: str | os.PathLike,
    dose_features_csv: str | os.PathLike,
    dose_stats_json: str | os.PathLike | None = None,
    batch_size: int = 128,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
    shard: int = 0,
    num_shards: int = 1,
    show_progress: bool | None = None,
) -> ManifestRun:
    """Denoise shard ``shard`` of ``num_shards`` of a manifest's distinct files into the mirrored tree (see the module doc).

    ``num_workers`` threads read the next batch and write the last while the model runs (0: all in this thread)."""
    started = time.perf_counter()
    if not 0 <= shard < num_shards:
        raise GensynthError(f"--shard {shard}: expected 0 <= shard < --num-shards {num_shards}")
    output_root = Path(output_root)
    manifest = load_manifest(manifest_path, root)
    denoiser = Denoiser.load(checkpoint, device)
    dose_table = denoiser.dose_table(dose_features_csv, dose_stats_json)
    length = len(denoiser.grid)
    files = manifest.files.iloc[shard::num_shards]
    dose = manifest.dose(dose_table, files)
    outputs = [denoised_relative_path(r) for r in files["relative_path"]]

    stamp = {"checkpoint_sha256": denoiser.sha256, "dose_features_sha256": sha256_file(dose_features_csv), "length": length}
    stamp_path = shard_stamp(output_root, shard, num_shards)
    if read_stamp(stamp_path) != stamp:
        for relative in outputs:  # another model's (or an unknown) run: its outputs must not pass for ours
            (output_root / relative).unlink(missing_ok=True)
        save_json(stamp_path, stamp)
    todo = [i for i, relative in enumerate(outputs) if not finished(output_root / relative, length)]
    log.info(
        "%s: shard %d/%d, %d distinct files of %d rows; %d to denoise, %d finished before",
        manifest.path,
        shard,
        num_shards,
        len(files),
        len(manifest.rows),
        len(todo),
        len(files) - len(todo),
    )

    lines = files["line"].tolist()
    relatives = files["relative_path"].tolist()

    def read(batch: list[int]) -> np.ndarray:
        return np.stack([load_spectrum(manifest.file_path(relatives[i]), length, f"{manifest.path}: line {lines[i]}") for i in batch])

    def write(batch: list[int], denoised: np.ndarray) -> None:
        for i, spectrum in zip(batch, denoised):
            save_spectrum(output_root / outputs[i], spectrum)

    batches = [todo[start : start + batch_size] for start in range(0, len(todo), batch_size)]
    with ThreadPoolExecutor(max_workers=max(1, num_workers)) as pool:
        run = (lambda f, *a: pool.submit(f, *a)) if num_workers > 0 else immediate
        pending_read = run(read, batches[0]) if batches else None
        writes = []
        for k, batch in enumerate(progress(batches, desc="denoising", unit="batch", show=show_progress)):
            spectra = pending_read.result()
            if k + 1 < len(batches):
                pending_read = run(read, batches[k + 1])
            writes.append(run(write, batch, denoiser(spectra, dose[batch], batch_size)))
        for future in writes:
            future.result()  # a failed write raises here
    return ManifestRun(len(manifest.rows), len(files), len(todo), len(files) - len(todo), time.perf_counter() - started, outputs)


def immediate(function, *args) -> Future:
    """Run now, as a completed Future (the num_workers = 0 path)."""
    future: Future = Future()
    try:
        future.set_result(function(*args))
    except BaseException as exc:  # re-raised by result(), as a pool's would be
        future.set_exception(exc)
    return future


@dataclass
class Throughput:
    spectra: int
    seconds: float
    spectra_per_s: float


def manifest_throughput(
    manifest_path,
    root,
    checkpoint,
    dose_features_csv,
    dose_stats_json=None,
    batch_size: int = 128,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
    scratch_dir: str | os.PathLike | None = None,
) -> Throughput:
    """Spectra per second of a whole :func:`denoise_manifest` run (manifest checks, model load, reading, denoising,
    writing; not the interpreter's start), into a fresh temporary directory (in ``scratch_dir``), so nothing is skipped."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="denoise-throughput-", dir=scratch_dir) as scratch:
        run = denoise_manifest(
            manifest_path,
            root,
            checkpoint,
            scratch,
            dose_features_csv,
            dose_stats_json,
            batch_size=batch_size,
            num_workers=num_workers,
            device=device,
            show_progress=False,
        )
    return Throughput(run.files, run.seconds, run.spectra_per_s)

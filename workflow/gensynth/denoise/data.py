"""The group's data layout, read with every check: manifests, spectra, the wavelength grid, dose features.

- A **spectra tree** (``root``): one float ``.npy`` per spectrum, ``<treatment>/<sample>/<angle>/<replicate>.npy``
  by convention (any relative path inside the root is accepted).
- A **manifest** (CSV) keyed by ``relative_path``, with ``treatment, sample, angle, replicate, group_id`` and
  ``n2n_partner``, the relative path of the other replicate that is the row's Noise2Noise target. A file may
  have several rows (Noise2Noise duplicates, other partners), all with the same metadata.
- ``wavelength_grid.npy``: the wavelengths (nm) of every spectrum, strictly increasing.
- ``dose_features.csv``: one row per treatment, ``treatment`` then numeric feature columns; ``dose_stats.json``:
  ``{"features": [...], "mean": {feature: m}, "std": {feature: s}}``, the normalisation of the FiLM input.

Every problem is one :class:`GensynthError` naming the file, the line (the header is line 1) and what was
expected: a missing column or file, a path that leaves the root (absolute, ``..``, a symlink out), a
spectrum whose length differs from the grid, NaN or inf, a treatment without dose features, a
``relative_path`` listed twice with different metadata.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from ..errors import GensynthError
from ..io import atomic_open, atomic_path, load_json

MANIFEST_COLUMNS = ("relative_path", "treatment", "sample", "angle", "replicate", "group_id", "n2n_partner")
METADATA_COLUMNS = ("treatment", "sample", "angle", "replicate", "group_id")  # must agree between a file's rows
DOSE_FEATURES = ("dose", "log_dose", "sqrt_dose")  # what the phantom writes; users' files may name others
HEADER_LINES = 1


def dose_feature_values(dose: float) -> dict[str, float]:
    """The phantom's dose features of one treatment."""
    return {"dose": dose, "log_dose": math.log1p(dose), "sqrt_dose": math.sqrt(dose)}


def sample_labels(rows: pd.DataFrame) -> np.ndarray:
    """Each row's ``treatment/sample``: a held-out unit, as its replicates and angles share the sample's spectrum."""
    return (rows["treatment"].astype(str) + "/" + rows["sample"].astype(str)).to_numpy()


def line_of(index: int) -> int:
    """The CSV line of data row ``index`` (0-based)."""
    return index + HEADER_LINES + 1


def write_manifest(path: str | os.PathLike, rows: pd.DataFrame) -> None:
    with atomic_open(path, "w", newline="") as handle:
        rows.loc[:, list(MANIFEST_COLUMNS)].to_csv(handle, index=False)


def save_spectrum(path: str | os.PathLike, spectrum: np.ndarray) -> None:
    """One float32 spectrum, atomically (a killed job leaves no half-written file); no fsync per file, which would
    dominate the time of thousands of small files."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, np.asarray(spectrum, np.float32))


def read_csv(path: Path, what: str) -> pd.DataFrame:
    if not path.is_file():
        raise GensynthError(f"{path}: {what} not found")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise GensynthError(f"{path}: not a readable CSV {what} ({exc})") from None


def inside_root(root: Path, relative: str, where: str, real_root: str | None = None) -> Path:
    """``root / relative`` for a relative path that stays inside the root, symlinks resolved; else an error
    saying ``where`` (the manifest, line and column). ``real_root``: ``os.path.realpath(root)``, when known."""
    if not relative:
        raise GensynthError(f"{where}: empty path")
    pure = PurePosixPath(relative.replace("\\", "/"))
    if pure.is_absolute() or os.path.isabs(relative) or (pure.parts and ":" in pure.parts[0]):
        raise GensynthError(f"{where}: {relative!r} is an absolute path; expected a path relative to the root {root}")
    if ".." in pure.parts:
        raise GensynthError(f"{where}: {relative!r} leaves the root {root} (a '..' component)")
    path = root / pure
    real_root = real_root or os.path.realpath(root)
    real_path = os.path.realpath(path)
    if os.path.commonpath([real_root, real_path]) != real_root:
        raise GensynthError(f"{where}: {relative!r} leaves the root {root} (a symlink to {real_path})")
    return path


@dataclass
class Manifest:
    """A manifest's rows with the metadata checked; ``files`` has one row per distinct ``relative_path``."""

    path: Path
    root: Path
    rows: pd.DataFrame  # every row: "line" (in the CSV), then MANIFEST_COLUMNS, angle and replicate as int
    files: pd.DataFrame  # the first row of each relative_path, in manifest order

    def file_path(self, relative: str) -> Path:
        return self.root / PurePosixPath(relative)

    def dose(self, table: DoseTable, rows: pd.DataFrame | None = None) -> np.ndarray:
        """(N, D) normalised dose features of ``rows`` (default: the distinct files)."""
        rows = self.files if rows is None else rows
        return table.normalised(rows["treatment"], rows["line"], self.path)


def load_manifest(path: str | os.PathLike, root: str | os.PathLike, partners: bool = False) -> Manifest:
    """Read and check a manifest against its spectra tree: columns, metadata, every path inside ``root`` and
    present; with ``partners`` every ``n2n_partner`` too (it must be a file of the same group)."""
    path, root = Path(path), Path(root)
    if not root.is_dir():
        raise GensynthError(f"{root}: spectra root directory not found (for {path})")
    table = read_csv(path, "manifest")
    missing = [c for c in MANIFEST_COLUMNS if c not in table.columns and (c != "n2n_partner" or partners)]
    if missing:
        raise GensynthError(f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(MANIFEST_COLUMNS)}")
    if table.empty:
        raise GensynthError(f"{path}: no rows")
    if "n2n_partner" not in table.columns:
        table["n2n_partner"] = ""
    table = table.loc[:, list(MANIFEST_COLUMNS)].copy()
    for column in ("angle", "replicate"):
        numbers = pd.to_numeric(table[column], errors="coerce")
        bad = numbers.isna() | (numbers != numbers.round())
        if bad.any():
            index = int(np.flatnonzero(bad.to_numpy())[0])
            raise GensynthError(f"{path}: line {line_of(index)}: {column} {table[column].iloc[index]!r} is not an integer")
        table[column] = numbers.astype(np.int64)
    for column in ("treatment", "group_id"):
        empty = table[column].str.strip() == ""
        if empty.any():
            raise GensynthError(f"{path}: line {line_of(int(np.flatnonzero(empty.to_numpy())[0]))}: empty {column}")

    real_root = os.path.realpath(root)
    for index, relative in enumerate(table["relative_path"]):
        file = inside_root(root, relative, f"{path}: line {line_of(index)} (relative_path)", real_root)
        if not file.is_file():
            raise GensynthError(f"{path}: line {line_of(index)}: spectrum {relative!r} not found under {root}")

    table.insert(0, "line", [line_of(i) for i in range(len(table))])
    files = table[~table.duplicated("relative_path")]
    check_duplicates_agree(path, table, files)
    if partners:
        check_partners(path, root, table, real_root)
    return Manifest(path, root, table, files.reset_index(drop=True))


def check_duplicates_agree(path: Path, table: pd.DataFrame, files: pd.DataFrame) -> None:
    """Every row of a relative_path carries its first row's metadata (the Noise2Noise duplicates may differ only
    in their partner)."""
    first = table[["relative_path"]].merge(files[["relative_path", "line", *METADATA_COLUMNS]], on="relative_path", how="left")
    for column in METADATA_COLUMNS:
        differs = table[column].to_numpy() != first[column].to_numpy()
        if differs.any():
            index = int(np.flatnonzero(differs)[0])
            raise GensynthError(
                f"{path}: line {line_of(index)}: relative_path {table['relative_path'].iloc[index]!r} is listed on line "
                f"{first['line'].iloc[index]} with {column} {first[column].iloc[index]!r}, here with {table[column].iloc[index]!r}; "
                "expected the same metadata on every row of a file"
            )


def check_partners(path: Path, root: Path, table: pd.DataFrame, real_root: str) -> None:
    group_of = dict(zip(table["relative_path"], table["group_id"]))
    for index, (relative, partner, group) in enumerate(zip(table["relative_path"], table["n2n_partner"], table["group_id"])):
        where = f"{path}: line {line_of(index)} (n2n_partner)"
        file = inside_root(root, partner, where, real_root)
        if partner == relative:
            raise GensynthError(f"{where}: {partner!r} is the row's own spectrum; expected another replicate of group {group!r}")
        if not file.is_file():
            raise GensynthError(f"{where}: partner spectrum {partner!r} not found under {root}")
        if partner in group_of and group_of[partner] != group:
            raise GensynthError(f"{where}: partner {partner!r} belongs to group {group_of[partner]!r}; expected a replicate of {group!r}")


def load_grid(path: str | os.PathLike) -> np.ndarray:
    path = Path(path)
    grid = load_array(path, "wavelength grid")
    if grid.ndim != 1 or len(grid) < 2:
        raise GensynthError(f"{path}: expected a 1-D wavelength grid of at least 2 points, found shape {grid.shape}")
    if not np.isfinite(grid).all() or not (np.diff(grid) > 0).all():
        raise GensynthError(f"{path}: expected finite, strictly increasing wavelengths")
    return grid.astype(np.float64)


def load_array(path: Path, what: str) -> np.ndarray:
    if not path.is_file():
        raise GensynthError(f"{path}: {what} not found")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise GensynthError(f"{path}: not a readable .npy {what} ({exc})") from None
    if not isinstance(array, np.ndarray) or not np.issubdtype(array.dtype, np.number):
        raise GensynthError(f"{path}: expected a numeric .npy array for the {what}")
    return array


def load_spectrum(path: Path, length: int, where: str) -> np.ndarray:
    """One spectrum as float32 (length,), checked: 1-D (or (1, L) / (L, 1)), the grid's length, finite."""
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise GensynthError(f"{where}: {path} is not a readable .npy spectrum ({exc})") from None
    if not np.issubdtype(array.dtype, np.number) or array.ndim not in (1, 2) or (array.ndim == 2 and 1 not in array.shape):
        raise GensynthError(f"{where}: {path} holds an array of shape {array.shape} ({array.dtype}); expected a 1-D numeric spectrum")
    spectrum = array.reshape(-1)
    if len(spectrum) != length:
        raise GensynthError(f"{where}: {path} has {len(spectrum)} points; the wavelength grid has {length}")
    if not np.isfinite(spectrum).all():
        raise GensynthError(f"{where}: {path} holds NaN or inf (first at index {int(np.flatnonzero(~np.isfinite(spectrum))[0])})")
    return spectrum.astype(np.float32)


def load_tree_spectra(manifest: Manifest, length: int, relatives: list[str] | None = None, root: Path | None = None) -> np.ndarray:
    """(N, length) float32: the manifest's distinct files in order (or ``relatives``), from ``root`` (default
    the manifest's own; another tree with the same relative paths, e.g. the clean spectra)."""
    root = manifest.root if root is None else Path(root)
    lines = dict(zip(manifest.files["relative_path"], manifest.files["line"]))
    relatives = list(manifest.files["relative_path"]) if relatives is None else relatives
    spectra = np.empty((len(relatives), length), np.float32)
    real_root = os.path.realpath(root)
    for i, relative in enumerate(relatives):
        where = f"{manifest.path}: line {lines.get(relative, '?')}"
        path = inside_root(root, relative, where, real_root)
        if not path.is_file():
            raise GensynthError(f"{where}: spectrum {relative!r} not found under {root}")
        spectra[i] = load_spectrum(path, length, where)
    return spectra


def partner_pairs(manifest: Manifest, length: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, length) inputs and Noise2Noise targets, one pair per manifest row: its spectrum and its partner's,
    every distinct file read once (the duplicates point at the same files)."""
    rows = manifest.rows
    if (rows["n2n_partner"] == "").any():
        line = int(rows.loc[rows["n2n_partner"] == "", "line"].iloc[0])
        raise GensynthError(f"{manifest.path}: line {line}: no n2n_partner; Noise2Noise pairs need each row's partner replicate")
    relatives = list(dict.fromkeys([*rows["relative_path"], *rows["n2n_partner"]]))
    spectra = load_tree_spectra(manifest, length, relatives)
    index = {relative: i for i, relative in enumerate(relatives)}
    return spectra[[index[r] for r in rows["relative_path"]]], spectra[[index[r] for r in rows["n2n_partner"]]]


@dataclass
class DoseTable:
    """Dose features per treatment and their normalisation (FiLM's input is (value - mean) / std)."""

    features: tuple[str, ...]
    values: dict[str, np.ndarray]  # treatment -> raw features
    mean: np.ndarray
    std: np.ndarray
    path: Path

    @classmethod
    def load(cls, csv: str | os.PathLike, stats: dict | str | os.PathLike) -> DoseTable:
        """From dose_features.csv and dose_stats.json (or its already-loaded contents, e.g. a checkpoint's)."""
        csv = Path(csv)
        table = read_csv(csv, "dose features table")
        if "treatment" not in table.columns:
            raise GensynthError(f"{csv}: missing column treatment; expected treatment and numeric dose feature columns")
        stats_where = "the checkpoint's dose_stats" if isinstance(stats, dict) else str(stats)
        stats = stats if isinstance(stats, dict) else load_json(stats)
        features = tuple(stats.get("features", ()))
        if not features or any(f not in stats.get("mean", {}) or f not in stats.get("std", {}) for f in features):
            raise GensynthError(
                f"{stats_where}: expected {{'features': [...], 'mean': {{feature: m}}, 'std': {{feature: s}}}} with a mean and std for every feature"
            )
        missing = [f for f in features if f not in table.columns]
        if missing:
            raise GensynthError(f"{csv}: missing dose feature column(s) {', '.join(missing)} named in {stats_where}")
        numbers = table.loc[:, list(features)].apply(pd.to_numeric, errors="coerce")
        bad = ~np.isfinite(numbers.to_numpy(dtype=np.float64))
        if bad.any():
            index, column = np.argwhere(bad)[0]
            raise GensynthError(f"{csv}: line {line_of(int(index))}: {features[column]} {table[features[column]].iloc[index]!r} is not a finite number")
        duplicated = table["treatment"].duplicated()
        if duplicated.any():
            index = int(np.flatnonzero(duplicated.to_numpy())[0])
            raise GensynthError(f"{csv}: line {line_of(index)}: treatment {table['treatment'].iloc[index]!r} listed twice")
        std = np.array([float(stats["std"][f]) for f in features])
        if not (np.isfinite(std).all() and (std > 0).all()):
            raise GensynthError(f"{stats_where}: expected a positive std for every feature, got {std.tolist()}")
        values = {t: row.astype(np.float64) for t, row in zip(table["treatment"], numbers.to_numpy(dtype=np.float64))}
        return cls(features, values, np.array([float(stats["mean"][f]) for f in features]), std, csv)

    def stats(self) -> dict:
        return {"features": list(self.features), "mean": dict(zip(self.features, self.mean.tolist())), "std": dict(zip(self.features, self.std.tolist()))}

    def normalised(self, treatments, lines, manifest: Path) -> np.ndarray:
        """(N, D) float32 normalised features of each treatment; an unknown one is an error naming its manifest line."""
        rows = []
        for treatment, line in zip(treatments, lines):
            if treatment not in self.values:
                raise GensynthError(
                    f"{manifest}: line {line}: treatment {treatment!r} has no dose features in {self.path} (it lists {', '.join(sorted(self.values))})"
                )
            rows.append((self.values[treatment] - self.mean) / self.std)
        return np.asarray(rows, np.float32).reshape(len(rows), len(self.features))

"""The slice dataset (NPZ) and the test distribution (CSV): formats, validation, conversions.

Slice dataset NPZ, one row per 2-D slice (other arrays in the file are ignored):

==================  =============  ==========================  ===================================
array               shape          dtype                       values
==================  =============  ==========================  ===================================
``images``          (N, H, H)      float16/32/64               FLAIR image in [-1, 1]
``masks``           (N, H, H)      float16/32/64               lesion mask in [-1, 1] (-1 = none)
``zbin``            (N,)           integer                     0 .. z_bins-1
``lesion_present``  (N,)           integer or bool             0 or 1
``domain``          (N,)           integer or unicode string   0/1 or ``control``/``epilepsy``
==================  =============  ==========================  ===================================

Test distribution CSV: columns ``zbin, lesion_present, domain, n_slices`` (others ignored),
``domain`` by name; several rows of one condition are summed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import GensynthError
from ..io import atomic_open, load_npz, save_npz

# A replica's NPZ: each array and its dtype (every array has one row per sample).
REPLICA_ARRAYS = {
    "images": np.float16,
    "masks": np.float16,
    "zbin": np.int32,
    "lesion_present": np.uint8,
    "domain": np.uint8,
    "condition_token": np.int32,
    "seed": np.int64,
    "k_index": np.int32,
    "replica_id": np.int32,
}

DOMAIN_MAPPING = {"control": 0, "epilepsy": 1}
DOMAIN_NAMES = {code: name for name, code in DOMAIN_MAPPING.items()}
SLICE_ARRAYS = ("images", "masks", "zbin", "lesion_present", "domain")
CONDITION_COLUMNS = ["zbin", "lesion_present", "domain"]
CSV_COLUMNS = [*CONDITION_COLUMNS, "n_slices"]
# Values may overshoot [-1, 1] by float16 rounding.
RANGE_TOLERANCE = 1e-3


def condition_token(zbin, lesion_present, z_bins: int):
    """The model's class token: ``zbin + lesion_present * z_bins`` (the domain is not conditioned on)."""
    return zbin + lesion_present * z_bins


@dataclass
class SliceDataset:
    images: np.ndarray  # (N, H, H) float32 in [-1, 1]
    masks: np.ndarray  # (N, H, H) float32 in [-1, 1]
    zbin: np.ndarray  # (N,) int32
    lesion_present: np.ndarray  # (N,) uint8
    domain: np.ndarray  # (N,) uint8, DOMAIN_MAPPING codes

    def __len__(self) -> int:
        return len(self.zbin)

    @property
    def image_size(self) -> int:
        return self.images.shape[-1]

    def condition_tokens(self, z_bins: int) -> np.ndarray:
        return condition_token(self.zbin.astype(np.int64), self.lesion_present.astype(np.int64), z_bins)  # (N,)

    def stacked(self) -> np.ndarray:
        """Image and mask as the model's two channels: (N, 2, H, H) float32."""
        return np.stack([self.images, self.masks], axis=1)

    def subset(self, index: np.ndarray) -> SliceDataset:
        return SliceDataset(self.images[index], self.masks[index], self.zbin[index], self.lesion_present[index], self.domain[index])


def save_slice_dataset(path: str | Path, dataset: SliceDataset, extra: dict[str, np.ndarray] | None = None) -> None:
    """Images and masks as float16 (exact for the masks' -1/1, ~1e-3 for images) to halve the file."""
    save_npz(
        path,
        {
            "images": dataset.images.astype(np.float16),
            "masks": dataset.masks.astype(np.float16),
            "zbin": dataset.zbin.astype(np.int32),
            "lesion_present": dataset.lesion_present.astype(np.uint8),
            "domain": dataset.domain.astype(np.uint8),
            **(extra or {}),
        },
    )


def domain_codes(values: np.ndarray, source: str) -> np.ndarray:
    """Domain names or 0/1 codes -> uint8 codes; anything else is an error naming the value."""
    if values.dtype.kind in "US":
        names = values.astype(str)
        unknown = sorted(set(names.tolist()) - set(DOMAIN_MAPPING))
        if unknown:
            raise GensynthError(f"{source}: unknown domain name {unknown[0]!r} (expected one of {', '.join(DOMAIN_MAPPING)})")
        return np.array([DOMAIN_MAPPING[name] for name in names], dtype=np.uint8)
    if values.dtype.kind not in "iub":
        raise GensynthError(f"{source}: dtype {values.dtype}, expected domain names (strings) or integer codes")
    bad = values[(values < 0) | (values >= len(DOMAIN_MAPPING))]
    if bad.size:
        raise GensynthError(f"{source}: domain code {bad[0]}, expected one of {DOMAIN_NAMES} (code: name)")
    return values.astype(np.uint8)


def check_integer_range(values: np.ndarray, source: str, low: int, high: int) -> np.ndarray:
    """Integer (or bool) values in [low, high]; returns them as int64."""
    if values.dtype.kind not in "iub":
        raise GensynthError(f"{source}: dtype {values.dtype}, expected integers in {low}..{high}")
    values = values.astype(np.int64)
    bad = values[(values < low) | (values > high)]
    if bad.size:
        raise GensynthError(f"{source}: value {bad[0]} out of range, expected {low}..{high}")
    return values


def check_unit_range(values: np.ndarray, source: str) -> np.ndarray:
    if values.dtype.kind != "f":
        raise GensynthError(f"{source}: dtype {values.dtype}, expected floats normalised to [-1, 1]")
    values = values.astype(np.float32)
    if not np.isfinite(values).all():
        raise GensynthError(f"{source}: holds NaN or infinite values, expected floats in [-1, 1]")
    low, high = float(values.min()), float(values.max())
    if low < -1 - RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE:
        raise GensynthError(f"{source}: values span [{low:.4g}, {high:.4g}], expected [-1, 1] (normalise the data first)")
    return np.clip(values, -1, 1)


def load_slice_dataset(path: str | Path, z_bins: int) -> SliceDataset:
    """Load and validate a slice dataset NPZ (see the module docstring); one clear error per problem."""
    arrays = load_npz(path, required=SLICE_ARRAYS)
    images, masks = arrays["images"], arrays["masks"]
    if images.ndim != 3 or images.shape[1] != images.shape[2] or images.shape[0] == 0:
        raise GensynthError(f"{path}: 'images' has shape {images.shape}, expected (N, H, H) square slices with N >= 1")
    if masks.shape != images.shape:
        raise GensynthError(f"{path}: 'masks' has shape {masks.shape}, expected the images' shape {images.shape}")
    n = images.shape[0]
    for name in ("zbin", "lesion_present", "domain"):
        if arrays[name].shape != (n,):
            raise GensynthError(f"{path}: '{name}' has shape {arrays[name].shape}, expected ({n},), one value per slice")
    return SliceDataset(
        images=check_unit_range(images, f"{path}: 'images'"),
        masks=check_unit_range(masks, f"{path}: 'masks'"),
        zbin=check_integer_range(arrays["zbin"], f"{path}: 'zbin'", 0, z_bins - 1).astype(np.int32),
        lesion_present=check_integer_range(arrays["lesion_present"], f"{path}: 'lesion_present'", 0, 1).astype(np.uint8),
        domain=domain_codes(arrays["domain"], f"{path}: 'domain'"),
    )


def condition_counts(dataset: SliceDataset) -> pd.DataFrame:
    """Slices per condition (zbin, lesion_present, domain name), sorted: the test CSV's rows."""
    table = pd.DataFrame(
        {
            "zbin": dataset.zbin.astype(int),
            "lesion_present": dataset.lesion_present.astype(int),
            "domain": [DOMAIN_NAMES[int(code)] for code in dataset.domain],
        }
    )
    counts = table.groupby(CONDITION_COLUMNS).size().rename("n_slices").reset_index()
    return sort_conditions(counts)


def sort_conditions(table: pd.DataFrame) -> pd.DataFrame:
    """Conditions in the replica's sample order: zbin, then lesion_present, then domain code."""
    key = table["domain"].map(DOMAIN_MAPPING)
    order = np.lexsort((key.to_numpy(), table["lesion_present"].to_numpy(), table["zbin"].to_numpy()))
    return table.iloc[order].reset_index(drop=True)


def save_test_distribution(path: str | Path, table: pd.DataFrame) -> None:
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        table[CSV_COLUMNS].to_csv(handle, index=False)


def load_test_distribution(path: str | Path, z_bins: int) -> pd.DataFrame:
    """Validated test distribution: one row per condition with n_slices > 0 (rows of a condition summed)."""
    path = Path(path)
    if not path.is_file():
        raise GensynthError(f"{path}: test distribution CSV not found")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise GensynthError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    missing = [column for column in CSV_COLUMNS if column not in table.columns]
    if missing:
        raise GensynthError(f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(CSV_COLUMNS)} (found {', '.join(table.columns)})")
    integer_columns = {"zbin": (0, z_bins - 1), "lesion_present": (0, 1), "n_slices": (0, None)}
    parsed = {}
    for column, (low, high) in integer_columns.items():
        values = table[column].str.strip()
        numeric = pd.to_numeric(values, errors="coerce")
        bad = numeric.isna() | (numeric != numeric.round()) | (numeric < low) | ((numeric > high) if high is not None else False)
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            wanted = f"an integer in {low}..{high}" if high is not None else f"an integer >= {low}"
            raise GensynthError(f"{path}: line {row + 2}, column '{column}' = {values.iloc[row]!r}: expected {wanted}")
        parsed[column] = numeric.astype(np.int64)
    domains = table["domain"].str.strip()
    unknown = ~domains.isin(list(DOMAIN_MAPPING))
    if unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0])
        raise GensynthError(
            f"{path}: line {row + 2}, column 'domain' = {domains.iloc[row]!r}: unknown domain name, expected one of {', '.join(DOMAIN_MAPPING)}"
        )
    rows = pd.DataFrame({**parsed, "domain": domains})
    summed = rows.groupby(CONDITION_COLUMNS, as_index=False)["n_slices"].sum()
    summed = summed[summed["n_slices"] > 0]
    if summed.empty:
        raise GensynthError(f"{path}: no slices to generate (every n_slices is 0, or the file has no rows)")
    return sort_conditions(summed)

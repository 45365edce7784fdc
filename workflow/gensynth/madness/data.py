"""Real images for the loop: scikit-learn's digits or MNIST IDX files, in [-1, 1].

Two sources give one format, a ``RealData`` of (N, 1, S, S) float32 images in [-1, 1] and
int64 labels, split into train and held-out test:

- ``digits``: scikit-learn's bundled 1,797 handwritten 8x8 digits (values 0..16), resized
  to S x S and split with a stratified, seeded ``train_test_split``;
- ``mnist_idx``: the four standard MNIST IDX files (plain or gzipped) from a directory, with
  MNIST's own train/test split, resized when S differs from 28.

The IDX format (LeCun et al., http://yann.lecun.com/exdb/mnist/): two zero bytes, a type
code, the number of dimensions ``n``, ``n`` big-endian uint32 sizes, then the values in
row-major order, big-endian.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import GensynthError
from ..io import load_npz, save_npz
from .naming import MNIST_FILES

NUM_CLASSES = 10
SOURCES = ("digits", "mnist_idx")
# IDX type code -> big-endian NumPy dtype
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
ARRAYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass
class RealData:
    x_train: np.ndarray  # (N_train, 1, S, S) float32 in [-1, 1]
    y_train: np.ndarray  # (N_train,) int64 in [0, 10)
    x_test: np.ndarray  # (N_test, 1, S, S)
    y_test: np.ndarray  # (N_test,)

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in ARRAYS}


def read_idx(path: str | Path) -> np.ndarray:
    """One IDX file (plain, or gzipped when the name ends in .gz) as a NumPy array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise GensynthError(f"{path}: IDX file not found") from None
    except (OSError, EOFError) as exc:  # a bad gzip stream
        raise GensynthError(f"{path}: not readable as {'gzip' if opener is gzip.open else 'a file'} ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise GensynthError(f"{path}: not an IDX file (expected the magic number 0x0000 followed by a type code and rank)")
    type_code, ndim = raw[2], raw[3]
    if type_code not in IDX_DTYPES:
        raise GensynthError(f"{path}: IDX type code 0x{type_code:02X} unknown (expected one of {', '.join(f'0x{c:02X}' for c in IDX_DTYPES)})")
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise GensynthError(f"{path}: IDX header truncated or of rank 0 (rank {ndim}, {len(raw)} bytes)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(IDX_DTYPES[type_code])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise GensynthError(f"{path}: IDX header says shape {shape} ({expected} bytes), but the file has {len(raw)} bytes")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def find_idx_file(directory: Path, stem: str) -> Path:
    for name in (stem, f"{stem}.gz"):
        if (directory / name).is_file():
            return directory / name
    raise GensynthError(f"{directory}: MNIST file {stem} (or {stem}.gz) not found")


def check_images_labels(images: np.ndarray, labels: np.ndarray, images_path: Path, labels_path: Path) -> None:
    if images.ndim != 3:
        raise GensynthError(f"{images_path}: expected images of rank 3 (N, H, W), found shape {images.shape}")
    if labels.ndim != 1:
        raise GensynthError(f"{labels_path}: expected labels of rank 1 (N,), found shape {labels.shape}")
    if len(images) != len(labels):
        raise GensynthError(f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels")
    if len(labels) == 0:
        raise GensynthError(f"{images_path}: no images")
    if labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise GensynthError(f"{labels_path}: labels must lie in [0, {NUM_CLASSES}), found {labels.min()}..{labels.max()}")
    if images.dtype != np.uint8:
        raise GensynthError(f"{images_path}: expected unsigned-byte pixels (IDX type 0x08), found {images.dtype}")


def load_mnist_idx(directory: str | Path) -> dict[str, np.ndarray]:
    """The four MNIST IDX files of ``directory``: uint8 images (N, 28, 28) and labels (N,)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise GensynthError(f"madness.data.mnist_dir {str(directory)!r}: not a directory (expected the folder holding the four MNIST IDX files)")
    paths = {name: find_idx_file(directory, stem) for name, stem in MNIST_FILES.items()}
    arrays = {name: read_idx(path) for name, path in paths.items()}
    for split in ("train", "test"):
        check_images_labels(arrays[f"x_{split}"], arrays[f"y_{split}"], paths[f"x_{split}"], paths[f"y_{split}"])
    return arrays


def resize(images: np.ndarray, size: int) -> np.ndarray:
    """(N, H, W) -> (N, size, size) float32, bilinear (antialiased when shrinking)."""
    import torch
    import torch.nn.functional as F

    if images.shape[-1] == size and images.shape[-2] == size:
        return images.astype(np.float32)
    x = torch.from_numpy(images.astype(np.float32))[:, None]  # (N, 1, H, W)
    shrink = size < images.shape[-1]
    out = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink)
    return out[:, 0].numpy()


def to_unit_range(images: np.ndarray, max_value: float) -> np.ndarray:
    """Pixels in [0, max_value] -> float32 (N, 1, S, S) in [-1, 1]."""
    return np.clip(images / max_value * 2.0 - 1.0, -1.0, 1.0).astype(np.float32)[:, None]


def subsample(x: np.ndarray, y: np.ndarray, limit: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """At most ``limit`` (0 = all) items, drawn without replacement, in their original order."""
    if limit == 0 or limit >= len(y):
        return x, y
    keep = np.sort(rng.choice(len(y), size=limit, replace=False))
    return x[keep], y[keep]


def load_real_data(
    source: str,
    image_size: int,
    seed: int,
    test_fraction: float = 0.3,
    mnist_dir: str | Path | None = None,
    max_train: int = 0,
    max_test: int = 0,
) -> RealData:
    rng = np.random.default_rng(seed)
    if source == "digits":
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        images = resize(digits.images, image_size)  # (1797, S, S) in [0, 16]
        x_train, x_test, y_train, y_test = train_test_split(images, digits.target, test_size=test_fraction, stratify=digits.target, random_state=seed % 2**32)
        max_value = 16.0
    elif source == "mnist_idx":
        if not mnist_dir:
            raise GensynthError("madness.data.mnist_dir is empty: source mnist_idx needs the folder holding the four MNIST IDX files")
        arrays = load_mnist_idx(mnist_dir)
        x_train, y_train = arrays["x_train"], arrays["y_train"]
        x_test, y_test = arrays["x_test"], arrays["y_test"]
        max_value = 255.0
    else:
        raise GensynthError(f"madness.data.source {source!r}: expected one of {', '.join(SOURCES)}")
    x_train, y_train = subsample(x_train, y_train, max_train, rng)
    x_test, y_test = subsample(x_test, y_test, max_test, rng)
    return RealData(
        x_train=to_unit_range(resize(x_train, image_size), max_value),
        y_train=y_train.astype(np.int64),
        x_test=to_unit_range(resize(x_test, image_size), max_value),
        y_test=y_test.astype(np.int64),
    )


def save_real_data(path: str | Path, data: RealData) -> None:
    save_npz(path, data.arrays())


def check_images(path, x: np.ndarray, y: np.ndarray, x_name: str, y_name: str) -> None:
    """Images (N, C, S, S) float32 in [-1, 1] with N int labels in [0, 10)."""
    if x.ndim != 4 or x.shape[2] != x.shape[3]:
        raise GensynthError(f"{path}: array {x_name} must have shape (N, C, S, S), found {x.shape}")
    if y.shape != (x.shape[0],):
        raise GensynthError(f"{path}: array {y_name} must have shape ({x.shape[0]},) to match {x_name}, found {y.shape}")
    if not np.issubdtype(x.dtype, np.floating) or not np.isfinite(x).all() or x.min() < -1.0 - 1e-6 or x.max() > 1.0 + 1e-6:
        raise GensynthError(f"{path}: array {x_name} must hold finite floats in [-1, 1]")
    if not np.issubdtype(y.dtype, np.integer) or (len(y) and (y.min() < 0 or y.max() >= NUM_CLASSES)):
        raise GensynthError(f"{path}: array {y_name} must hold integer labels in [0, {NUM_CLASSES})")


def load_real(path: str | Path) -> RealData:
    arrays = load_npz(path, required=ARRAYS)
    for split in ("train", "test"):
        check_images(path, arrays[f"x_{split}"], arrays[f"y_{split}"], f"x_{split}", f"y_{split}")
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        raise GensynthError(f"{path}: x_train images {arrays['x_train'].shape[1:]} and x_test images {arrays['x_test'].shape[1:]} differ in shape")
    return RealData(**{name: arrays[name] for name in ARRAYS})


def save_images(path: str | Path, x: np.ndarray, y: np.ndarray) -> None:
    """A set of (generated) images: ``x`` (N, C, S, S) float32 in [-1, 1], ``y`` (N,) int64."""
    save_npz(path, {"x": x.astype(np.float32), "y": y.astype(np.int64)})


def load_images(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    arrays = load_npz(path, required=("x", "y"))
    check_images(path, arrays["x"], arrays["y"], "x", "y")
    return arrays["x"], arrays["y"]

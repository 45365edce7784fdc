"""Generating a corpus block by block, splitting it, and sizing it (the group's ``pipeline.py``).

Determinism: the corpus is cut into fixed blocks of :func:`block_size` images; block ``k``
draws from its own ``numpy.random.Generator`` seeded with
``sha256_seed("gensynth.atoms", seed, k)``, so the images do not depend on how many
threads generate them or how the blocks are written. The split is a seeded permutation
of the image indices (``sha256_seed("gensynth.atoms.split", seed)``); each split keeps its
images in corpus order, which is already random since the images are drawn independently.
"""

from __future__ import annotations

import collections
import concurrent.futures
from collections.abc import Iterator, Mapping

import numpy as np

from ..errors import GensynthError
from ..progress import progress
from ..seeding import numpy_generator, sha256_seed
from .generators import DEFAULT_GENERATOR, ImageGenerator, load_generator
from .naming import SPLIT_NAMES

DEFAULT_FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}
BLOCK_PIXELS = 2**21  # 8192 images of 16 x 16: a few MB per array, well inside the memory bound
MAX_SEED = 2**32 - 1  # np.random.seed's range, which per-image generators are seeded with


def block_size(grid_size: int) -> int:
    """Images per generation block (fixed for a grid size: the data depend on it)."""
    return max(1, BLOCK_PIXELS // (grid_size * grid_size))


def estimate_memory(num_images: int, grid_size: int = 16) -> dict:
    """Bytes of the uint8 images, with a 1024-based readable size (the group's formula).

    The group's metadata example reads 25,600,000 bytes as "25.60 MB"; its formula, kept
    here, gives "24.41 MB" (MiB, 1024**2 bytes).
    """
    bytes_per_image = grid_size * grid_size  # uint8: 1 byte per pixel
    total_bytes = num_images * bytes_per_image
    if total_bytes < 1024:
        readable = f"{total_bytes} bytes"
    elif total_bytes < 1024**2:
        readable = f"{total_bytes / 1024:.2f} KB"
    elif total_bytes < 1024**3:
        readable = f"{total_bytes / (1024**2):.2f} MB"
    else:
        readable = f"{total_bytes / (1024**3):.2f} GB"
    return {"bytes": total_bytes, "readable": readable, "num_images": num_images, "bytes_per_image": bytes_per_image}


def check_fractions(fractions: Mapping[str, float], key: str = "split fraction {}") -> dict[str, float]:
    """Split fractions: keys train/val/test, each in [0, 1], train > 0, summing to 1.

    ``key`` names a fraction in the messages (``"--{}-fraction"`` for the CLI's flags).
    """
    if set(fractions) != set(SPLIT_NAMES):
        raise GensynthError(f"split fractions {dict(fractions)}: expected exactly the keys {', '.join(SPLIT_NAMES)}")
    checked = {name: float(fractions[name]) for name in SPLIT_NAMES}
    for name, value in checked.items():
        if not 0.0 <= value <= 1.0:
            raise GensynthError(f"{key.format(name)} = {value:g}: expected a fraction between 0 and 1")
    if checked["train"] <= 0.0:
        raise GensynthError(f"{key.format('train')} = {checked['train']:g}: expected a fraction > 0")
    total = sum(checked.values())
    if abs(total - 1.0) > 1e-6:
        listed = " + ".join(f"{key.format(name)} {checked[name]:g}" for name in SPLIT_NAMES)
        raise GensynthError(f"split fractions {listed} = {total:g}: expected them to sum to 1")
    return checked


def split_counts(num_images: int, fractions: Mapping[str, float] = DEFAULT_FRACTIONS) -> dict[str, int]:
    """Images per split by largest remainder: exact for 0.8/0.1/0.1 of 100,000 and summing to ``num_images``."""
    fractions = check_fractions(fractions)
    exact = np.array([num_images * fractions[name] for name in SPLIT_NAMES])
    counts = np.floor(exact + 1e-9).astype(np.int64)  # the epsilon absorbs 0.7 * 10 = 6.999...
    order = np.argsort(-(exact - counts), kind="stable")  # ties go to train, then val
    counts[order[: num_images - counts.sum()]] += 1
    return dict(zip(SPLIT_NAMES, counts.tolist()))


def split_assignment(num_images: int, fractions: Mapping[str, float] = DEFAULT_FRACTIONS, seed: int = 0) -> np.ndarray:
    """(N,) uint8: the split (index into SPLIT_NAMES) of each image, from a seeded permutation."""
    counts = split_counts(num_images, fractions)
    permutation = np.arange(num_images, dtype=np.int32 if num_images < 2**31 else np.int64)  # (N,)
    numpy_generator(sha256_seed("gensynth.atoms.split", seed)).shuffle(permutation)
    codes = np.empty(num_images, np.uint8)
    start = 0
    for code, name in enumerate(SPLIT_NAMES):
        codes[permutation[start : start + counts[name]]] = code
        start += counts[name]
    return codes


def _resolve_seed(seed: int | None) -> int:
    """``None``: draw one from NumPy's global state, so ``np.random.seed(s)`` reproduces a run (as in the group's scripts)."""
    seed = int(np.random.randint(0, MAX_SEED + 1, dtype=np.int64)) if seed is None else int(seed)
    if not 0 <= seed <= MAX_SEED:
        raise GensynthError(f"--seed {seed}: expected an integer from 0 to {MAX_SEED}")
    return seed


def iter_blocks(
    num_images: int,
    seed: int,
    grid_size: int = 16,
    generator: ImageGenerator | str = DEFAULT_GENERATOR,
    threads: int = 1,
    show_progress: bool | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield the corpus in order as blocks (images (b, G, G) uint8, labels (b,) uint8).

    A batch generator's blocks are made by ``threads`` workers (NumPy releases the GIL in
    its array loops), at most ``2 * threads`` blocks ahead, so memory stays bounded.
    """
    if isinstance(generator, str):
        generator = load_generator(generator)
    size = block_size(grid_size)
    starts = range(0, num_images, size)

    def make_block(start: int) -> tuple[np.ndarray, np.ndarray]:
        rng = numpy_generator(sha256_seed("gensynth.atoms", seed, start // size))
        return generator.batch(rng, min(size, num_images - start), grid_size)

    generator.seed_global_state(seed)
    with progress(total=num_images, desc="Generating images", unit="img", show=show_progress) as bar:
        if generator.per_image or threads <= 1:
            for start in starts:
                block = make_block(start)
                bar.update(len(block[1]))
                yield block
            return
        with concurrent.futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="atoms-generate") as pool:
            pending: collections.deque = collections.deque()
            for start in starts:
                pending.append(pool.submit(make_block, start))
                if len(pending) >= 2 * threads:
                    block = pending.popleft().result()
                    bar.update(len(block[1]))
                    yield block
            while pending:
                block = pending.popleft().result()
                bar.update(len(block[1]))
                yield block


def generate_corpus(
    num_samples: int,
    show_progress: bool = True,
    *,
    seed: int | None = None,
    grid_size: int = 16,
    generator: ImageGenerator | str = DEFAULT_GENERATOR,
    threads: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """The whole corpus in memory: images (N, G, G) uint8 and labels (N,) uint8 (the group's API).

    For large N use the CLI (``scripts/generate_dataset.py``), which streams blocks to disk.
    """
    seed = _resolve_seed(seed)
    images = np.empty((num_samples, grid_size, grid_size), np.uint8)
    labels = np.empty(num_samples, np.uint8)
    start = 0
    for block_images, block_labels in iter_blocks(num_samples, seed, grid_size, generator, threads, show_progress):
        images[start : start + len(block_labels)] = block_images
        labels[start : start + len(block_labels)] = block_labels
        start += len(block_labels)
    return images, labels


def split_corpus(
    images: np.ndarray,
    labels: np.ndarray,
    fractions: Mapping[str, float] = DEFAULT_FRACTIONS,
    seed: int | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"train": (images, labels), "val": ..., "test": ...} by :func:`split_assignment` (the group's API)."""
    if len(images) != len(labels):
        raise GensynthError(f"split_corpus: {len(images)} images but {len(labels)} labels")
    codes = split_assignment(len(labels), fractions, _resolve_seed(seed))
    splits = {}
    for code, name in enumerate(SPLIT_NAMES):
        rows = np.flatnonzero(codes == code)
        splits[name] = (images[rows], labels[rows])
    return splits

"""atoms: large, versioned datasets of simulated Z-contrast images of crystal lattices.

The seed's API (``001_7df1600396f9a849.txt``) with its names and signatures:
:func:`generate_corpus`, :func:`split_corpus`, :func:`estimate_memory` (its ``pipeline.py``),
:func:`save_corpus`, :func:`load_corpus`, :func:`save_metadata`, :func:`validate_dataset`
(its ``visualization.py``) and the per-image :func:`generate_atomic_image`. The CLI
``scripts/generate_dataset.py`` streams any number of images to disk in bounded memory.
"""

from .corpus import (
    DEFAULT_FRACTIONS,
    SPLIT_NAMES,
    block_size,
    check_fractions,
    estimate_memory,
    generate_corpus,
    iter_blocks,
    split_assignment,
    split_corpus,
    split_counts,
)
from .generators import DEFAULT_GENERATOR, ImageGenerator, load_generator
from .lattice import (
    LatticeImageConfig,
    LatticeParams,
    draw_params,
    generate_atomic_image,
    generate_batch,
    render_fast,
    render_reference,
)
from .report import validate_dataset
from .storage import load_corpus, load_split, save_corpus, save_metadata, write_splits

__all__ = [
    "DEFAULT_FRACTIONS",
    "DEFAULT_GENERATOR",
    "SPLIT_NAMES",
    "ImageGenerator",
    "LatticeImageConfig",
    "LatticeParams",
    "block_size",
    "check_fractions",
    "draw_params",
    "estimate_memory",
    "generate_atomic_image",
    "generate_batch",
    "generate_corpus",
    "iter_blocks",
    "load_corpus",
    "load_generator",
    "load_split",
    "render_fast",
    "render_reference",
    "save_corpus",
    "save_metadata",
    "split_assignment",
    "split_corpus",
    "split_counts",
    "validate_dataset",
    "write_splits",
]

"""atoms: large, versioned datasets of simulated Z-contrast images of crystal lattices.

The group's API with its names and signatures:
:func:`generate_corpus`, :func:`split_corpus`, :func:`estimate_memory` (its ``pipeline.py``),
:func:`save_corpus`, :func:`load_corpus`, :func:`save_metadata`, :func:`validate_dataset`
(its ``visualization.py``) and the per-image :func:`generate_atomic_image`. The CLI
``scripts/generate_dataset.py`` streams any number of images to disk in bounded memory.
"""

from ..lazy import lazy_exports

# Imported on first use: the Snakefile imports gensynth.atoms.dag at parse time, which runs this file.
_EXPORTS = {
    "DEFAULT_FRACTIONS": "corpus",
    "SPLIT_NAMES": "corpus",
    "block_size": "corpus",
    "check_fractions": "corpus",
    "estimate_memory": "corpus",
    "generate_corpus": "corpus",
    "iter_blocks": "corpus",
    "split_assignment": "corpus",
    "split_corpus": "corpus",
    "split_counts": "corpus",
    "DEFAULT_GENERATOR": "generators",
    "ImageGenerator": "generators",
    "load_generator": "generators",
    "LatticeImageConfig": "lattice",
    "LatticeParams": "lattice",
    "draw_params": "lattice",
    "generate_atomic_image": "lattice",
    "generate_batch": "lattice",
    "render_fast": "lattice",
    "render_reference": "lattice",
    "validate_dataset": "report",
    "load_corpus": "storage",
    "load_split": "storage",
    "save_corpus": "storage",
    "save_metadata": "storage",
    "write_splits": "storage",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)

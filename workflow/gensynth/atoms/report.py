"""The visual validation report: a 10 x 10 grid of random train images and the label histogram."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..errors import GensynthError
from ..io import save_figure
from .lattice import Z_MAX
from .storage import FILES, REPORT_FILE, iter_rows, read_rows

GRID_COLUMNS = 10
MAX_SHOWN = 100
log = logging.getLogger(__name__)


def validate_dataset(
    dataset_dir: str | os.PathLike,
    num_samples: int = 100,
    *,
    seed: int = 0,
    output_path: str | os.PathLike | None = None,
    title: str | None = None,
) -> Path:
    """Save ``validation_report.png`` for ``dataset_dir/train.npz`` (the group's API); returns its path.

    Up to 100 random train images (seeded, so the report is reproducible) with their
    labels, and the histogram of all train labels. The train split is streamed, never
    loaded whole, and the figure is drawn without a display (never blocks).
    """
    import matplotlib
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, nothing to block on

    if num_samples < 1:
        raise GensynthError(f"validate_dataset: num_samples {num_samples}, expected at least 1")
    dataset_dir = Path(dataset_dir)
    train = dataset_dir / FILES["train"]
    labels = np.concatenate([np.empty(0, np.uint8), *iter_rows(train, "labels")])  # (N,)
    if len(labels) == 0:
        raise GensynthError(f"{train}: the train split is empty; nothing to validate")
    shown = min(num_samples, MAX_SHOWN, len(labels))
    rows = np.sort(np.random.default_rng(seed).choice(len(labels), shown, replace=False))  # (k,)
    images = read_rows(train, "images", rows)  # (k, G, G)

    # One mosaic image with gaps (NaN, drawn white) instead of 100 axes: ten times faster to draw.
    grid_rows, side = -(-shown // GRID_COLUMNS), images.shape[1]
    cell = side + max(1, side // 4)  # tile plus gap, pixels
    mosaic = np.full((grid_rows * cell, GRID_COLUMNS * cell), np.nan)  # (rows * cell, 10 * cell)
    fig = Figure(figsize=(10, 1.05 * grid_rows + 3.2))
    layout = fig.add_gridspec(2, 1, height_ratios=[1.05 * grid_rows, 2.4], hspace=0.12, left=0.07, right=0.98, top=0.95, bottom=0.06)
    ax = fig.add_subplot(layout[0])
    for i, (image, label) in enumerate(zip(images, labels[rows])):
        top, left = (i // GRID_COLUMNS) * cell + (cell - side), (i % GRID_COLUMNS) * cell
        mosaic[top : top + side, left : left + side] = image
        ax.text(left + side / 2 - 0.5, top - 0.6, f"Z={label}", ha="center", va="bottom", fontsize=7)
    cmap = matplotlib.colormaps["gray"].with_extremes(bad="white")
    ax.imshow(mosaic, cmap=cmap, vmin=0, vmax=255, interpolation="nearest")
    ax.axis("off")
    ax.set_title(f"{title or dataset_dir.name}: {shown} random train images", fontsize=11)

    ax = fig.add_subplot(layout[1])
    counts = np.bincount(labels, minlength=256)  # (256,)
    top = max(Z_MAX, int(labels.max()))
    ax.bar(np.arange(top + 1), counts[: top + 1], width=1.0, color="tab:blue")
    ax.set_xlim(-0.5, top + 0.5)
    ax.set_xlabel("label (atomic number Z)")
    ax.set_ylabel("images")
    ax.set_title(f"Label distribution: all {len(labels):,} train images", fontsize=10)

    output_path = Path(output_path) if output_path is not None else dataset_dir / REPORT_FILE
    save_figure(fig, output_path, dpi=100)
    log.debug("Validation report saved: %s", output_path)  # debug: the CLI writes into a staging directory
    return output_path

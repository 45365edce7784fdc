"""The module's figures: the dataset's visits, real and synthetic samples, the comparison of the arms."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (after the backend)
import numpy as np  # noqa: E402

from ..io import save_figure  # noqa: E402
from .augmentation import MODALITIES, PHASE_NAMES, PHASES  # noqa: E402
from .data import WoundDataset  # noqa: E402
from .experiment import METRIC_LABELS, METRICS  # noqa: E402


def show_image(axis, image: np.ndarray) -> None:
    """(C, S, S) in [0, 1]: RGB as it is, a map in viridis."""
    if image.shape[0] == 3:
        axis.imshow(image.transpose(1, 2, 0).clip(0, 1), interpolation="nearest")
    else:
        axis.imshow(image[0], cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    axis.set_xticks([])
    axis.set_yticks([])


def dataset_figure(dataset: WoundDataset, path: str | Path, per_phase: int = 3) -> None:
    """The first ``per_phase`` visits of each phase, one row each, the four modalities side by side."""
    rows = [i for phase in range(len(PHASES)) for i in np.flatnonzero(dataset.phase == phase)[:per_phase]]
    fig, axes = plt.subplots(len(rows), len(MODALITIES), figsize=(1.6 * len(MODALITIES), 1.6 * len(rows)), squeeze=False)
    for r, index in enumerate(rows):
        for c, modality in enumerate(MODALITIES):
            show_image(axes[r, c], dataset.images[modality][index])
            if r == 0:
                axes[r, c].set_title(modality, fontsize=8)
        phase = PHASES[dataset.phase[index]]
        axes[r, 0].set_ylabel(f"{dataset.patient[index]} v{dataset.visit[index]}\n{phase} ({PHASE_NAMES[phase]})", fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def samples_figure(panels: Sequence[tuple[str, np.ndarray, np.ndarray]], path: str | Path) -> None:
    """Per panel (label, synthetic (n, C, S, S), real (n, C, S, S)): a row of synthetic images, then a row of real ones."""
    columns = max(max(len(s), len(r)) for _, s, r in panels)
    fig, axes = plt.subplots(2 * len(panels), columns, figsize=(1.1 * columns, 1.2 * 2 * len(panels)), squeeze=False)
    for p, (label, synthetic, real) in enumerate(panels):
        for offset, (kind, images) in enumerate((("synthetic", synthetic), ("real", real))):
            row = axes[2 * p + offset]
            for c, axis in enumerate(row):
                if c < len(images):
                    show_image(axis, images[c])
                else:
                    axis.axis("off")
            row[0].set_ylabel(f"{label}\n{kind}", fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def comparison_figure(rows: Sequence[Mapping[str, Any]], per_seed: Mapping[str, Mapping[str, list[float]]], confidence: float, path: str | Path) -> None:
    """Top: each arm's metrics with intervals (dots: seeds); bottom: the paired differences from the baseline."""
    arms = [row["arm"] for row in rows]
    x = np.arange(len(arms))
    fig, axes = plt.subplots(2, len(METRICS), figsize=(4 * len(METRICS), 6.5), squeeze=False)
    for column, metric in enumerate(METRICS):
        top, bottom = axes[0, column], axes[1, column]
        estimate = np.array([row[metric] for row in rows])
        errors = np.array([[row[metric] - row[f"{metric}_low"], row[f"{metric}_high"] - row[metric]] for row in rows]).T
        top.errorbar(x, estimate, yerr=errors, fmt="o", color="black", capsize=4, label=f"estimate, {100 * confidence:g} % interval")
        for i, arm in enumerate(arms):
            seeds = per_seed[arm][metric]
            top.scatter(np.full(len(seeds), i + 0.12), seeds, s=12, color="tab:blue", alpha=0.7, label="seeds" if i == 0 else None)
        top.set_title(METRIC_LABELS[metric])
        top.set_xticks(x, arms, rotation=20, ha="right", fontsize=8)
        bottom.axhline(0, color="grey", lw=1)
        if len(rows) > 1:
            diff = np.array([row[f"{metric}_diff"] for row in rows[1:]])
            diff_errors = np.array(
                [[row[f"{metric}_diff"] - row[f"{metric}_diff_low"], row[f"{metric}_diff_high"] - row[f"{metric}_diff"]] for row in rows[1:]]
            ).T
            bottom.errorbar(x[1:], diff, yerr=diff_errors, fmt="s", color="tab:red", capsize=4)
        bottom.set_xlim(top.get_xlim())
        bottom.set_xticks(x, arms, rotation=20, ha="right", fontsize=8)
        bottom.set_title(f"{METRIC_LABELS[metric]}: arm - baseline (paired)", fontsize=9)
    axes[0, 0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)

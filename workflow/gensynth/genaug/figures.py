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


def arm_labels(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Arm names, with the regime's share of training patients when the rows span several."""
    several = len({row.get("train_fraction", 1.0) for row in rows}) > 1
    return [f"{row['arm']} ({100 * row.get('train_fraction', 1.0):g} %)" if several else row["arm"] for row in rows]


def comparison_figure(rows: Sequence[Mapping[str, Any]], per_run: Mapping[float, Mapping[str, Any]], confidence: float, path: str | Path) -> None:
    """Top: each arm's metrics with intervals (dots: runs); bottom: the paired differences from its regime's baseline."""
    labels = arm_labels(rows)
    x = np.arange(len(rows))
    fig, axes = plt.subplots(2, len(METRICS), figsize=(max(4 * len(METRICS), 0.45 * len(rows) * len(METRICS)), 7), squeeze=False)
    for column, metric in enumerate(METRICS):
        top, bottom = axes[0, column], axes[1, column]
        estimate = np.array([row[metric] for row in rows])
        errors = np.array([[row[metric] - row[f"{metric}_low"], row[f"{metric}_high"] - row[metric]] for row in rows]).T
        top.errorbar(x, estimate, yerr=errors, fmt="o", color="black", capsize=4, label=f"estimate, {100 * confidence:g} % interval")
        for i, row in enumerate(rows):
            values = per_run[row.get("train_fraction", 1.0)]["metrics"][row["arm"]][metric]
            top.scatter(np.full(len(values), i + 0.12), values, s=10, color="tab:blue", alpha=0.6, label="runs" if i == 0 else None)
        top.set_title(METRIC_LABELS[metric])
        top.set_xticks(x, labels, rotation=60, ha="right", fontsize=7)
        bottom.axhline(0, color="grey", lw=1)
        paired = [i for i, row in enumerate(rows) if not np.isnan(row[f"{metric}_diff"])]
        if paired:
            diff = np.array([rows[i][f"{metric}_diff"] for i in paired])
            low, high = (np.array([rows[i][f"{metric}_diff_{end}"] for i in paired]) for end in ("low", "high"))
            bottom.errorbar(x[paired], diff, yerr=[diff - low, high - diff], fmt="s", color="tab:red", capsize=4)
        bottom.set_xlim(top.get_xlim())
        bottom.set_xticks(x, labels, rotation=60, ha="right", fontsize=7)
        bottom.set_title(f"{METRIC_LABELS[metric]}: arm - baseline (paired)", fontsize=9)
    axes[0, 0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


CONTROL_STYLES = {"wrong_phase": ("v", "tab:red", "negative control: wrong phase"), "real": ("^", "tab:green", "positive control: real, other patients")}
MODE_COLOURS = {"replace": "tab:blue", "add": "tab:purple"}


def share_errorbars(axis, metric: str, rows: Sequence[Mapping[str, Any]], offset: float, **style) -> None:
    """The rows' paired differences with their intervals at their share (shifted by ``offset``, to stand beside)."""
    share = np.array([float(row["share"]) + offset for row in rows])
    diff = np.array([row[f"{metric}_diff"] for row in rows])
    low, high = (np.array([row[f"{metric}_diff_{end}"] for row in rows]) for end in ("low", "high"))
    axis.errorbar(share, diff, yerr=[diff - low, high - diff], capsize=3, **style)


def dose_figure(rows: Sequence[Mapping[str, Any]], confidence: float, path: str | Path) -> None:
    """Per regime (rows) and metric (columns): the paired difference from the baseline against the synthetic share, one line
    per mode of the dose axis, the controls beside at their share, the production arm at its expected share."""
    regimes = sorted({row.get("train_fraction", 1.0) for row in rows}, reverse=True)
    fig, axes = plt.subplots(len(regimes), len(METRICS), figsize=(4.2 * len(METRICS), 3.4 * len(regimes)), squeeze=False)
    for r, fraction in enumerate(regimes):
        mine = [row for row in rows if row.get("train_fraction", 1.0) == fraction and row["arm"] != "baseline"]
        for column, metric in enumerate(METRICS):
            axis = axes[r, column]
            axis.axhline(0, color="grey", lw=1)

            for mode, colour in MODE_COLOURS.items():
                axis_rows = sorted(
                    (row for row in mine if row.get("source") == "generated" and row.get("share") != "" and row["mode"] == mode), key=lambda row: row["share"]
                )
                if axis_rows:
                    start = {"share": 0.0, f"{metric}_diff": 0.0, f"{metric}_diff_low": 0.0, f"{metric}_diff_high": 0.0}
                    share_errorbars(axis, metric, [start, *axis_rows], 0.0, fmt="-o", color=colour, label=f"generated, {mode}")
            for source, (marker, colour, label) in CONTROL_STYLES.items():
                controls = [row for row in mine if row.get("source") == source]
                if controls:
                    share_errorbars(axis, metric, controls, 0.012, fmt=marker, color=colour, ms=8, label=label)
            production = [row for row in mine if row.get("source") == "generated" and row.get("share") == ""]
            if production:
                expected = [{**row, "share": row["prob"] * (row["mix_low"] + row["mix_high"]) / 2} for row in production]
                share_errorbars(axis, metric, expected, 0.0, fmt="D", color="black", ms=5, label="production/sweep (expected share)")
            axis.set_xlabel("synthetic share of a training batch")
            axis.set_title(f"Δ {METRIC_LABELS[metric]}, {100 * fraction:g} % of training patients", fontsize=9)
        axes[r, 0].set_ylabel(f"arm - baseline ({100 * confidence:g} % interval)")
    axes[0, 0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)

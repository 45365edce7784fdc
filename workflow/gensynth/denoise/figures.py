"""The module's figures: the ROI windows per panel group, and the panel PSNR per group and method."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..io import save_figure  # noqa: E402
from .layout import QA_FILES  # noqa: E402
from .quality import RoiConfig  # noqa: E402

COLOURS = {"raw": "0.65", "baseline": "tab:orange", "denoised": "tab:blue", "reference": "k"}


@dataclass
class GroupSpectra:
    """One panel group's spectra to draw: one replicate raw, denoised, by a baseline, and the reference if known."""

    group_id: str
    relative_path: str
    raw: np.ndarray
    denoised: np.ndarray
    baseline: np.ndarray | None = None
    reference: np.ndarray | None = None


def roi_figure(grid: np.ndarray, roi: RoiConfig, groups: list[GroupSpectra], target: Path, baseline_label: str = "baseline") -> None:
    """Rows: groups; columns: ROI windows; in each, the replicate's raw, baseline, denoised and reference spectra."""
    fig, axes = plt.subplots(len(groups), len(roi.windows), figsize=(3.6 * len(roi.windows), 2.3 * len(groups)), squeeze=False)
    for row, group in zip(axes, groups):
        for ax, window in zip(row, roi.windows):
            margin = 0.15 * (window.high - window.low)
            inside = (grid >= window.low - margin) & (grid <= window.high + margin)
            curves = (("raw", group.raw, 0.8), ("baseline", group.baseline, 1.2), ("denoised", group.denoised, 1.4), ("reference", group.reference, 1.0))
            for name, spectrum, width in curves:
                if spectrum is not None:
                    ax.plot(
                        grid[inside],
                        spectrum[inside],
                        color=COLOURS[name],
                        lw=width,
                        ls="--" if name == "reference" else "-",
                        label={"baseline": baseline_label, "denoised": "MambaUV"}.get(name, name),
                    )
            ax.axvspan(window.low, window.high, color="tab:green", alpha=0.06)
            ax.set_title(f"{group.group_id}: {window.name}", fontsize=8)
            ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7, loc="best")
    for ax in axes[-1]:
        ax.set_xlabel("wavelength (nm)", fontsize=8)
    fig.tight_layout()
    save_figure(fig, target, dpi=110)


def panel_psnr_figure(output_dir: Path, summary: dict[str, Any]) -> Path:
    """Every method's mean PSNR gain over the raw spectra (paired per spectrum, so the samples' different levels
    cancel) with its 95 % interval over held-out samples (and seeds, for the arms), in the table's PSNR order."""
    table = pd.DataFrame(summary["methods"]).iloc[::-1]  # best at the top
    positions = np.arange(len(table))
    colours = {"raw": COLOURS["raw"], "identity": COLOURS["raw"], "baseline": "tab:orange", "checkpoint": "tab:blue", "comparison": "tab:green", "arm": "k"}
    fig, ax = plt.subplots(figsize=(7.0, 0.32 * len(table) + 1.4))
    errors = np.vstack([table["psnr_gain_db"] - table["psnr_gain_db_low"], table["psnr_gain_db_high"] - table["psnr_gain_db"]])
    ax.errorbar(table["psnr_gain_db"], positions, xerr=errors, fmt="none", ecolor="0.4", elinewidth=1, capsize=2)
    ax.scatter(table["psnr_gain_db"], positions, c=[colours[k] for k in table["kind"]], zorder=3, s=18)
    ax.set_yticks(positions, table["method"], fontsize=7)
    ax.set_xlabel("mean panel PSNR gain over the raw spectra (dB), 95 % interval")
    held_out = len(summary["manifest"]["held_out_samples"])
    ax.set_title(
        f"validation panel: {held_out} held-out samples, {summary['reference']} reference; gates {'passed' if summary['passed'] else 'FAILED'}",
        fontsize=9,
    )
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    target = output_dir / QA_FILES["psnr_figure"]
    save_figure(fig, target, dpi=110)
    return target

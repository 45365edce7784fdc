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
from .layout import QA_FILES, QA_METHOD_FILES, SAVGOL_NAME  # noqa: E402
from .quality import RoiConfig  # noqa: E402

COLOURS = {"raw": "0.65", SAVGOL_NAME: "tab:orange", "denoised": "tab:blue", "reference": "k"}


@dataclass
class GroupSpectra:
    """One panel group's spectra to draw: one replicate raw, denoised, Savitzky-Golay, and the reference if known."""

    group_id: str
    relative_path: str
    raw: np.ndarray
    denoised: np.ndarray
    savgol: np.ndarray | None = None
    reference: np.ndarray | None = None


def roi_figure(grid: np.ndarray, roi: RoiConfig, groups: list[GroupSpectra], target: Path) -> None:
    """Rows: groups; columns: ROI windows; in each, the replicate's raw, baseline, denoised and reference spectra."""
    fig, axes = plt.subplots(len(groups), len(roi.windows), figsize=(3.6 * len(roi.windows), 2.3 * len(groups)), squeeze=False)
    for row, group in zip(axes, groups):
        for ax, window in zip(row, roi.windows):
            margin = 0.15 * (window.high - window.low)
            inside = (grid >= window.low - margin) & (grid <= window.high + margin)
            curves = (("raw", group.raw, 0.8), ("savgol", group.savgol, 1.2), ("denoised", group.denoised, 1.4), ("reference", group.reference, 1.0))
            for name, spectrum, width in curves:
                if spectrum is not None:
                    ax.plot(
                        grid[inside],
                        spectrum[inside],
                        color=COLOURS[name],
                        lw=width,
                        ls="--" if name == "reference" else "-",
                        label={"savgol": "Savitzky-Golay", "denoised": "MambaUV"}.get(name, name),
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
    """Mean panel PSNR per group: raw and every scored method (from their per-group CSVs)."""
    output_dir = Path(output_dir)
    methods = [m["method"] for m in summary["methods"] if m["kind"] != "raw"]
    tables = {name: pd.read_csv(output_dir / QA_METHOD_FILES["per_group"].format(name=name)) for name in methods}
    first = tables[methods[0]]
    series = {"raw": first["psnr_raw_db"].to_numpy(), **{name: t["psnr_db"].to_numpy() for name, t in tables.items()}}
    positions = np.arange(len(first))
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(first) + 2), 3.6))
    others = iter(("tab:blue", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan"))
    for i, (name, values) in enumerate(series.items()):
        colour = COLOURS[name] if name in ("raw", SAVGOL_NAME) else next(others, None)
        ax.bar(positions + (i - (len(series) - 1) / 2) * width, values, width, label=name, color=colour)
    ax.set_xticks(positions, first["group_id"], rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("mean PSNR (dB)")
    low = min(float(np.min(v)) for v in series.values())
    ax.set_ylim(low - 3, None)
    ax.legend(fontsize=7, ncol=len(series))
    ax.set_title(f"validation panel ({summary['reference']} reference); gates {'passed' if summary['passed'] else 'FAILED'}", fontsize=9)
    fig.tight_layout()
    target = output_dir / QA_FILES["psnr_figure"]
    save_figure(fig, target, dpi=110)
    return target

"""Replicas against the real test set: layout, exact counts, lesion agreement, per-z-bin statistics, figures.

A mask counts as non-empty when at least ``min_mask_pixels`` of its pixels are above 0 (the
masks span [-1, 1] with -1 = no lesion); the same rule is applied to the real test masks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..io import atomic_open
from .data import CONDITION_COLUMNS, DOMAIN_NAMES, REPLICA_ARRAYS, SliceDataset

LESION_AGREEMENT_TARGET = 0.9


def layout_problems(arrays: dict[str, np.ndarray]) -> list[str]:
    """Where a replica's arrays differ from the published table (names, dtypes, shapes); empty when none."""
    if sorted(arrays) != sorted(REPLICA_ARRAYS):
        return [f"arrays {sorted(arrays)}, expected {sorted(REPLICA_ARRAYS)}"]
    problems = []
    n = len(arrays["seed"])
    for name, dtype in REPLICA_ARRAYS.items():
        if arrays[name].dtype != np.dtype(dtype):
            problems.append(f"'{name}' has dtype {arrays[name].dtype}, expected {np.dtype(dtype)}")
        expected_ndim = 3 if name in ("images", "masks") else 1
        if arrays[name].ndim != expected_ndim or arrays[name].shape[0] != n:
            problems.append(f"'{name}' has shape {arrays[name].shape}, expected {'(N, H, H)' if expected_ndim == 3 else '(N,)'} with N = {n}")
    return problems


def mask_nonempty(masks: np.ndarray, min_mask_pixels: int) -> np.ndarray:
    """(N,) bool: the mask has at least ``min_mask_pixels`` lesion pixels (> 0)."""
    return (masks > 0).reshape(len(masks), -1).sum(axis=1) >= min_mask_pixels


def condition_count_mismatches(arrays: dict[str, np.ndarray], distribution: pd.DataFrame) -> list[dict[str, Any]]:
    """Conditions whose sample count differs from the test CSV (empty when all are exact)."""
    generated = pd.DataFrame(
        {
            "zbin": arrays["zbin"].astype(int),
            "lesion_present": arrays["lesion_present"].astype(int),
            "domain": [DOMAIN_NAMES.get(int(code), str(code)) for code in arrays["domain"]],
        }
    )
    counts = generated.groupby(CONDITION_COLUMNS).size().rename("generated").reset_index()
    merged = distribution.merge(counts, on=CONDITION_COLUMNS, how="outer").fillna({"n_slices": 0, "generated": 0})
    wrong = merged[merged["n_slices"] != merged["generated"]]
    return [
        {"zbin": int(row.zbin), "lesion_present": int(row.lesion_present), "domain": row.domain, "expected": int(row.n_slices), "generated": int(row.generated)}
        for row in wrong.itertuples(index=False)
    ]


def per_zbin_stats(images: np.ndarray, masks: np.ndarray, zbin: np.ndarray, lesion_present: np.ndarray, z_bins: int) -> list[dict[str, Any]]:
    """Per z-bin: mean image intensity (all samples), mean lesion area in pixels (lesion samples)."""
    pixels = images.reshape(len(images), -1).astype(np.float32).mean(axis=1)  # (N,)
    area = (masks > 0).reshape(len(masks), -1).sum(axis=1)  # (N,)
    rows = []
    for z in range(z_bins):
        in_bin = zbin == z
        lesion = in_bin & (lesion_present == 1)
        rows.append(
            {
                "zbin": z,
                "n_samples": int(in_bin.sum()),
                "mean_intensity": float(pixels[in_bin].mean()) if in_bin.any() else None,
                "n_lesion_samples": int(lesion.sum()),
                "mean_lesion_area": float(area[lesion].mean()) if lesion.any() else None,
            }
        )
    return rows


def agreement(nonempty: np.ndarray, lesion_present: np.ndarray) -> dict[str, Any]:
    lesion = lesion_present == 1
    return {
        "lesion_agreement": float((nonempty == lesion).mean()),
        "lesion_sensitivity": float(nonempty[lesion].mean()) if lesion.any() else None,
        "lesion_false_positive_rate": float(nonempty[~lesion].mean()) if (~lesion).any() else None,
    }


def real_qa(real: SliceDataset, z_bins: int, min_mask_pixels: int) -> dict[str, Any]:
    return {
        "n_samples": len(real),
        **agreement(mask_nonempty(real.masks, min_mask_pixels), real.lesion_present),
        "per_zbin": per_zbin_stats(real.images, real.masks, real.zbin, real.lesion_present, z_bins),
    }


def replica_qa(arrays: dict[str, np.ndarray], distribution: pd.DataFrame, z_bins: int, min_mask_pixels: int) -> dict[str, Any]:
    """QA of one replica; ``arrays`` must hold at least the nine published arrays."""
    problems = layout_problems(arrays)
    mismatches = condition_count_mismatches(arrays, distribution)
    nonempty = mask_nonempty(arrays["masks"], min_mask_pixels)
    return {
        "replica_id": int(arrays["replica_id"][0]),
        "n_samples": int(len(arrays["seed"])),
        "layout_ok": not problems,
        "layout_problems": problems,
        "counts_exact": not mismatches,
        "count_mismatches": mismatches,
        **agreement(nonempty, arrays["lesion_present"]),
        "per_zbin": per_zbin_stats(arrays["images"], arrays["masks"], arrays["zbin"], arrays["lesion_present"], z_bins),
    }


def summarize(replicas: list[dict[str, Any]]) -> dict[str, Any]:
    rates = [r["lesion_agreement"] for r in replicas]
    return {
        "n_replicas": len(replicas),
        "layout_ok": all(r["layout_ok"] for r in replicas),
        "counts_exact": all(r["counts_exact"] for r in replicas),
        "lesion_agreement_mean": float(np.mean(rates)),
        "lesion_agreement_min": float(np.min(rates)),
        "lesion_agreement_target": LESION_AGREEMENT_TARGET,
        "meets_lesion_agreement_target": bool(np.min(rates) >= LESION_AGREEMENT_TARGET),
    }


TABLE_COLUMNS = ["replica_id", "n_samples", "layout_ok", "counts_exact", "lesion_agreement", "lesion_sensitivity", "lesion_false_positive_rate"]


def save_table(path, replicas: list[dict[str, Any]]) -> None:
    """One row per replica, the QA figures a reader scans first."""
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        pd.DataFrame([{key: r[key] for key in TABLE_COLUMNS} for r in replicas]).to_csv(handle, sep="\t", index=False, float_format="%.4f")


def grid_picks(zbin: np.ndarray, lesion_present: np.ndarray, z_bins: int, per_bin: int) -> list[list[int]]:
    """Up to ``per_bin`` sample indices per z-bin, lesion samples first (at most half), evenly spread."""
    picks = []
    for z in range(z_bins):
        lesion = np.flatnonzero((zbin == z) & (lesion_present == 1))
        clear = np.flatnonzero((zbin == z) & (lesion_present == 0))
        n_lesion = min(len(lesion), per_bin // 2)
        n_clear = min(len(clear), per_bin - n_lesion)
        spread = lambda index, k: index[np.linspace(0, len(index) - 1, k).astype(int)] if k else index[:0]  # noqa: E731
        picks.append([*spread(lesion, n_lesion), *spread(clear, n_clear)])
    return picks


def zbin_series(rows: list[dict], key: str) -> tuple[list, list]:
    """(z-bins, values) of ``key`` over per-z-bin rows, where it has a value."""
    return [r["zbin"] for r in rows if r[key] is not None], [r[key] for r in rows if r[key] is not None]


def plot_summary(history: dict[str, Any], real: dict[str, Any], replicas: list[dict[str, Any]]):
    """Training losses; mean intensity and lesion area per z-bin, real against each replica."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), constrained_layout=True)
    epochs = [e["epoch"] for e in history["epochs"]]
    axes[0].plot(epochs, [e["train_loss"] for e in history["epochs"]], label="train")
    axes[0].plot(epochs, [e["val_loss"] for e in history["epochs"]], label="validation (EMA)")
    if history.get("best_epoch"):
        axes[0].axvline(history["best_epoch"], color="grey", linestyle=":", label=f"best (epoch {history['best_epoch']})")
    axes[0].set(xlabel="epoch", ylabel="diffusion loss", yscale="log", title="Training")
    axes[0].legend()
    for ax, key, label in ((axes[1], "mean_intensity", "mean image intensity"), (axes[2], "mean_lesion_area", "mean lesion area (pixels)")):
        ax.plot(*zbin_series(real["per_zbin"], key), "k-o", linewidth=2.5, label="real test set")
        for r in replicas:
            ax.plot(*zbin_series(r["per_zbin"], key), "--.", alpha=0.8, label=f"replica {r['replica_id']:03d} (agreement {r['lesion_agreement']:.2f})")
        ax.set(xlabel="z-bin", ylabel=label, title=f"{label} per z-bin")
    axes[2].legend(fontsize="small")
    return fig


def plot_sample_grid(real: SliceDataset, real_picks: list[list[int]], generated: dict[str, np.ndarray], generated_picks: list[list[int]], replica_id: int):
    """Rows: z-bins; left the real test slices, right the replica's, each with its mask in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    z_bins = len(real_picks)
    per_side = max(max(map(len, real_picks)), max(map(len, generated_picks)), 1)
    fig, axes = plt.subplots(z_bins, 2 * per_side, figsize=(1.3 * 2 * per_side, 1.4 * z_bins + 0.6), squeeze=False)
    panels = (
        (0, real.images, real.masks, real.lesion_present, real_picks, "real"),
        (per_side, generated["images"], generated["masks"], generated["lesion_present"], generated_picks, f"replica {replica_id:03d}"),
    )
    for ax in axes.flat:
        ax.axis("off")
    for offset, images, masks, lesion, picks, name in panels:
        for z, row in enumerate(picks):
            for col, index in enumerate(row):
                ax = axes[z, offset + col]
                ax.imshow(images[index].astype(np.float32), cmap="gray", vmin=-1, vmax=1)
                overlay = np.ma.masked_where(masks[index] <= 0, np.ones(masks[index].shape))
                ax.imshow(overlay, cmap=ListedColormap(["red"]), alpha=0.6)
                ax.set_title(f"{name} z{z} L{int(lesion[index])}", fontsize=6)
    fig.suptitle("Samples per z-bin (rows), mask overlay in red; L1 = lesion_present", fontsize=9)
    fig.tight_layout()
    return fig

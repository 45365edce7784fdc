"""The madness figures (matplotlib, Agg): metric curves, Jacobian spectra, signals, t-SNE, scenario comparison."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .evaluation import METRICS  # noqa: E402

METRIC_TITLES = {"fid": "FID (LeNet features)", "precision": "precision", "recall": "recall", "density": "density", "coverage": "coverage"}


def metric_curves(metrics_per_generation: list[dict], title: str):
    """FID and PRDC against generation, with +-1 bootstrap standard deviation."""
    generations = np.arange(len(metrics_per_generation))
    fig, axes = plt.subplots(1, len(METRICS), figsize=(3.2 * len(METRICS), 3.0))
    for ax, name in zip(axes, METRICS):
        values = np.array([m[name]["value"] for m in metrics_per_generation])
        std = np.array([m[name]["bootstrap_std"] for m in metrics_per_generation])
        ax.errorbar(generations, values, yerr=std, marker="o", ms=3, capsize=2)
        ax.set(title=METRIC_TITLES[name], xlabel="generation", xticks=generations)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def jacobian_spectra(eigenvalues_per_generation: list[np.ndarray], timesteps: np.ndarray, title: str):
    """Eigenvalues of J^T J against rank, the median over probe images, one column per timestep.

    Top row: the spectra (log scale); bottom row: each generation's median spectrum divided by
    generation 0's, where a change in the tail shows. ``eigenvalues_per_generation[g]`` is (P, K),
    descending per probe; colour runs with generation.
    """
    steps = np.unique(timesteps)
    colours = plt.cm.viridis(np.linspace(0, 1, len(eigenvalues_per_generation)))
    fig, axes = plt.subplots(2, len(steps), figsize=(4.2 * len(steps), 6.0), squeeze=False, sharex=True)
    for column, t in enumerate(steps):
        medians = [np.clip(np.median(e[timesteps == t], axis=0), 1e-12, None) for e in eigenvalues_per_generation]  # (K,) each
        ranks = np.arange(1, len(medians[0]) + 1)
        for g, (median, colour) in enumerate(zip(medians, colours)):
            axes[0][column].semilogy(ranks, median, color=colour, lw=1.2, label=f"gen {g}")
            axes[1][column].semilogy(ranks, median / medians[0], color=colour, lw=1.2)
        axes[0][column].set(title=f"t = {int(t)}", ylabel="eigenvalue of $J^T J$")
        axes[1][column].set(xlabel="rank", ylabel="ratio to generation 0")
    axes[0][-1].legend(fontsize=7, ncol=2)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def signal_departures(detection: dict, title: str):
    """Every signal's z-score against its generation-0 baseline, with the +-k band of the rule."""
    k = detection["k"]
    families = (("sample", "sample metrics (LeNet features)"), ("jacobian", "Jacobian spectrum statistics"))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, (family, family_title) in zip(axes, families):
        for name, record in detection["signals"].items():
            if record["family"] != family:
                continue
            z = np.array([np.nan if v is None else v for v in record["z"]], dtype=float)
            departure = record["first_departure"]
            label = f"{name} (departs at {departure})" if departure is not None else f"{name} (stays)"
            ax.plot(np.arange(len(z)), z, marker="o", ms=3, lw=1, label=label)
        ax.axhspan(-k, k, color="0.85", zorder=0, label=f"|z| <= k = {k:g}")
        ax.set(title=family_title, xlabel="generation", xticks=np.arange(detection["num_generations"]))
        ax.set_yscale("symlog", linthresh=max(k, 1.0))
        ax.legend(fontsize=6, loc="best")
    axes[0].set_ylabel("z = (s_g - s_0) / sqrt(sd_0² + sd_g²)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def tsne_figure(embedding: np.ndarray, generated: np.ndarray, title: str):
    """A generation's t-SNE: real test features and generated ones, embedded together."""
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(*embedding[~generated].T, s=6, alpha=0.6, label="real (test split)", color="tab:blue")
    ax.scatter(*embedding[generated].T, s=6, alpha=0.6, label="generated", color="tab:red")
    ax.set(title=title, xticks=[], yticks=[])
    ax.legend(loc="best", fontsize=8, markerscale=2)
    fig.tight_layout()
    return fig


def scenario_comparison(fid_by_scenario: dict[str, tuple[np.ndarray, np.ndarray]], title: str):
    """FID against generation, one line per scenario (values and bootstrap standard deviations)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for scenario, (values, std) in fid_by_scenario.items():
        generations = np.arange(len(values))
        ax.errorbar(generations, values, yerr=std, marker="o", ms=3, capsize=2, label=scenario)
    ax.set(title=title, xlabel="generation", ylabel="FID (LeNet features)")
    ax.legend()
    fig.tight_layout()
    return fig

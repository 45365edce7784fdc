"""The madness figures (matplotlib, Agg): metric curves, Jacobian spectra, signals, t-SNE, scenario comparison."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .evaluation import METRICS  # noqa: E402

METRIC_TITLES = {"fid": "FID (LeNet features)", "precision": "precision", "recall": "recall", "density": "density", "coverage": "coverage"}


def metric_curves(metrics: list[list[dict]], title: str):
    """FID and PRDC against generation: every replicate (thin) and their mean +- sd across replicates.
    ``metrics[r][g]`` is replicate r's metrics record of generation g."""
    generations = np.arange(len(metrics[0]))
    fig, axes = plt.subplots(1, len(METRICS), figsize=(3.2 * len(METRICS), 3.0))
    for ax, name in zip(axes, METRICS):
        values = np.array([[m[name]["value"] for m in chain] for chain in metrics])  # (R, G)
        for chain in values:
            ax.plot(generations, chain, color="0.7", lw=0.8)
        ax.errorbar(
            generations, values.mean(axis=0), yerr=values.std(axis=0, ddof=1) if len(values) > 1 else None, marker="o", ms=3, capsize=2, color="tab:blue"
        )
        ax.set(title=METRIC_TITLES[name], xlabel="generation", xticks=generations)
    fig.suptitle(f"{title} ({len(metrics)} replicates: grey each, blue mean +- sd)")
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
    """Every signal's t statistic against generation 0 (its change over the replicate spread), with the
    Bonferroni bound of the family (Holm's first, strictest threshold) and the generations Holm rejects ringed."""
    from scipy import stats

    alpha, tests = detection["alpha"], detection["tests"]
    df = detection["num_generations"] * (detection["replicates"] - 1)
    bound = stats.t.ppf(1 - alpha / (2 * tests), df)
    families = (("sample", "sample metrics (LeNet features)"), ("jacobian", "Jacobian spectrum statistics"))
    generations = np.arange(detection["num_generations"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, (family, family_title) in zip(axes, families):
        for name, record in detection["signals"].items():
            if record["family"] != family:
                continue
            t = np.array([np.nan if v is None else v for v in record["t"]], dtype=float)
            departure = record["departure"]
            label = f"{name} (departs at {departure})" if departure is not None else f"{name} (stays)"
            (line,) = ax.plot(generations, t, marker="o", ms=3, lw=1, label=label)
            rejected = np.array(record["rejected"])
            ax.scatter(generations[rejected], t[rejected], s=60, facecolors="none", edgecolors=line.get_color())
        ax.axhspan(-bound, bound, color="0.85", zorder=0, label=f"|t| <= {bound:.2f} (Bonferroni, {tests} tests)")
        ax.set(title=family_title, xlabel="generation", xticks=generations)
        ax.set_yscale("symlog", linthresh=max(bound, 1.0))
        ax.legend(fontsize=6, loc="best")
    axes[0].set_ylabel("t = mean change / (s sqrt(2/R))")
    fig.suptitle(f"{title}: family-wise alpha {alpha:g}, Holm; ringed = rejected")
    fig.tight_layout()
    return fig


def error_rates(records: dict[str, dict], alpha: float, title: str):
    """The rule's measured error rates: share of tests that fire on each control scenario (where nothing
    collapses) and between replicates of one generation, against alpha (a family-wise bound)."""
    names, rates, colours = [], [], []
    any_record = next(iter(records.values()))
    for control, rate in any_record["error_rates"]["controls"].items():
        names.append(f"{control}\n(control)")
        rates.append(rate["test_rate"])
        colours.append("tab:orange")
    for scenario, record in records.items():
        between = record["error_rates"]["between_replicates"]
        if between is not None:
            names.append(f"{scenario}\n(between replicates)")
            rates.append(between["test_rate"])
            colours.append("tab:blue")
    fig, ax = plt.subplots(figsize=(max(5.0, 1.4 * len(names)), 3.6))
    ax.bar(np.arange(len(names)), rates, color=colours)
    ax.axhline(alpha, color="k", ls="--", lw=1, label=f"alpha = {alpha:g} (family-wise bound)")
    ax.set_xticks(np.arange(len(names)), names, fontsize=7)
    ax.set(ylabel="share of tests that fire", title=f"where nothing collapses, {title}".strip(", "))
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def tsne_panels(panels: list[tuple[np.ndarray, np.ndarray, str]], title: str):
    """A replicate chain's t-SNEs, one panel per generation: real test features (blue) and generated ones (red).
    Each panel is ``(embedding (n, 2), generated mask (n,), its title)``."""
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4), squeeze=False)
    for ax, (embedding, generated, panel_title) in zip(axes[0], panels):
        ax.scatter(*embedding[~generated].T, s=5, alpha=0.6, label="real (test split)", color="tab:blue")
        ax.scatter(*embedding[generated].T, s=5, alpha=0.6, label="generated", color="tab:red")
        ax.set(title=panel_title, xticks=[], yticks=[])
    axes[0][0].legend(loc="best", fontsize=7, markerscale=2)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def scenario_comparison(fid_by_scenario: dict[str, np.ndarray], title: str):
    """FID against generation, one line per scenario: the mean over replicates +- their sd. Arrays are (R, G)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for scenario, values in fid_by_scenario.items():
        generations = np.arange(values.shape[1])
        spread = values.std(axis=0, ddof=1) if len(values) > 1 else None
        ax.errorbar(generations, values.mean(axis=0), yerr=spread, marker="o", ms=3, capsize=2, label=scenario)
    ax.set(title=title, xlabel="generation", ylabel="FID (LeNet features), mean +- sd over replicates")
    ax.legend()
    fig.tight_layout()
    return fig

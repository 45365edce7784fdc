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
    """Every signal's mean unit difference (full_synthetic minus matched_real) per generation, relative to the
    matched control's mean at that generation, with its t interval; the generations Holm rejects over the whole family ringed."""
    families = (("sample", "sample metrics (LeNet features)"), ("jacobian", "Jacobian spectrum statistics"))
    generations = np.arange(detection["num_generations"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (family, family_title) in zip(axes, families):
        for offset, (name, record) in enumerate((n, r) for n, r in detection["signals"].items() if r["family"] == family):
            control = np.abs(record["control_mean"])
            scale = np.divide(100, control, out=np.ones_like(control), where=control > 0)  # per generation
            mean = np.array(record["difference"]["mean"]) * scale
            low, high = (np.array(bound) * scale for bound in record["difference"]["interval"])
            x = generations + 0.04 * offset  # side by side: the intervals overlap otherwise
            delay = record["delay"]
            label = f"{name} (delay {delay})" if delay is not None else f"{name} (no delay)"
            container = ax.errorbar(x, mean, yerr=[mean - low, high - mean], marker="o", ms=3, lw=1, capsize=2, label=label)
            rejected = np.array(record["rejected"])
            ax.scatter(x[rejected], mean[rejected], s=70, facecolors="none", edgecolors=container.lines[0].get_color())
        ax.axhline(0, color="k", lw=0.8)
        ax.set(title=family_title, xlabel="generation", xticks=generations)
        ax.legend(fontsize=6, loc="best")
    for ax in axes:
        ax.set_ylabel("difference, % of the matched control")
    level = 100 * (1 - detection["alpha"])
    fig.suptitle(
        f"{title}: full_synthetic - matched_real over {detection['initial_models']} initial models, {level:g}% t intervals; "
        f"ringed = rejected (Holm, {detection['tests']} tests)",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def error_rates(detection: dict, title: str):
    """The rule's false-alarm rates measured on placebo comparisons where nothing differs: each signal's own
    family (its generations, the race) and the whole family (signals x generations), against alpha."""
    alarms = detection["false_alarms"]
    kinds = [(kind, alarms[kind]) for kind in ("within_units", "between_units") if alarms[kind] is not None]
    names = [*detection["signals"], "whole family"]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(names)), 3.8))
    width = 0.8 / max(len(kinds), 1)
    for k, (kind, record) in enumerate(kinds):
        rates = [detection["signals"][n]["false_alarm_rate"][kind] for n in detection["signals"]] + [record["family_rate"]]
        ax.bar(
            np.arange(len(names)) + k * width,
            rates,
            width=width,
            label=f"{kind.replace('_', ' ')} ({record['placebos']} placebo{'s' if record['placebos'] > 1 else ''})",
        )
    if not kinds:
        ax.text(0.5, 0.5, "no placebo: needs replicates >= 2 or initial_models >= 4", ha="center", transform=ax.transAxes)
    ax.axhline(detection["alpha"], color="k", ls="--", lw=1, label=f"alpha = {detection['alpha']:g}")
    ax.set_xticks(np.arange(len(names)) + width * (len(kinds) - 1) / 2, names, fontsize=6, rotation=60, ha="right")
    ax.set(ylabel="share of placebos that fire", title=f"false alarms where nothing differs, {title}".strip(", "))
    ax.legend(fontsize=7)
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

"""Figures of one scenario and w: FID/PRDC curves over its chains, and the Jacobian spectra across generations.

Example (one metrics JSON and one Jacobian NPZ per chain, unit-major):
    python scripts/madness_figures.py --scenario fresh --metrics results/madness/fresh/w0/unit{0,1,2}/rep{0,1}/metrics_w0.json \
        --jacobians results/madness/fresh/w0/unit{0,1,2}/rep{0,1}/jacobian_w0.npz --label "fresh, w=0" \
        --out-curves results/madness/figures/fresh_w0_metrics.png --out-spectra results/madness/figures/fresh_w0_spectra.png
"""

from __future__ import annotations

import argparse

import numpy as np

from gensynth.cli import exit_main
from gensynth.errors import GensynthError
from gensynth.io import save_figure
from gensynth.madness.detection import load_chains
from gensynth.madness.evaluation import add_scenario_arguments, load_metrics, scenario_files
from gensynth.madness.figures import jacobian_spectra, metric_curves


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_scenario_arguments(parser, jacobians=True)
    parser.add_argument("--label", default="", help="figure title")
    parser.add_argument("--out-curves", required=True)
    parser.add_argument("--out-spectra", required=True)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    groups = scenario_files(args)
    if len(groups) != 1:
        raise GensynthError(f"--scenario given {len(groups)} times: the figures are of one scenario")
    metrics, jacobians = next(iter(groups.values()))
    save_figure(metric_curves(load_metrics(metrics), args.label), args.out_curves, dpi=120)
    _, chains, timesteps = load_chains(jacobians, ())  # eigenvalues [chain][generation] (P, K)
    eigenvalues = [np.concatenate([chain[g] for chain in chains]) for g in range(len(chains[0]))]  # the probes of every chain
    timesteps = np.tile(timesteps, len(chains))
    save_figure(jacobian_spectra(eigenvalues, timesteps, args.label), args.out_spectra, dpi=120)


if __name__ == "__main__":
    exit_main(main)

"""Figures of one scenario and w: FID/PRDC curves and Jacobian spectra across generations.

Example: python scripts/madness_figures.py --metrics results/madness/fresh/w0/metrics_{0,1,2,3}_w0.json \
    --jacobians results/madness/fresh/w0/jacobian_{0,1,2,3}_w0.npz --label "fresh, w=0" \
    --out-curves results/madness/figures/fresh_w0_metrics.png --out-spectra results/madness/figures/fresh_w0_spectra.png
"""

from __future__ import annotations

import argparse
import sys

from gensynth.cli import run_main
from gensynth.errors import GensynthError
from gensynth.io import load_json, save_figure
from gensynth.madness.detection import load_jacobian_stats
from gensynth.madness.figures import jacobian_spectra, metric_curves


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metrics", nargs="+", required=True, help="metrics JSON of generations 0, 1, ... in order")
    parser.add_argument("--jacobians", nargs="+", required=True, help="Jacobian NPZ of generations 0, 1, ... in order")
    parser.add_argument("--label", default="", help="figure title")
    parser.add_argument("--out-curves", required=True)
    parser.add_argument("--out-spectra", required=True)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if len(args.metrics) != len(args.jacobians):
        raise GensynthError(f"--metrics ({len(args.metrics)} files) and --jacobians ({len(args.jacobians)}): expected one of each per generation")
    save_figure(metric_curves([load_json(p) for p in args.metrics], args.label), args.out_curves, dpi=120)
    _, eigenvalues, timesteps = load_jacobian_stats(args.jacobians, ())
    save_figure(jacobian_spectra(eigenvalues, timesteps, args.label), args.out_spectra, dpi=120)


if __name__ == "__main__":
    sys.exit(run_main(main))

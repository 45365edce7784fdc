"""Tune the Savitzky-Golay baseline on the training manifest: the window and order a spectroscopist would pick.

Every (window, polyorder) of the candidates filters each training row's spectrum and is scored by the mean
squared difference to the row's Noise2Noise partner (the same criterion as the model's loss; its argmin is the
clean-target one, see gensynth/denoise/baseline.py). Writes the best setting and every score (JSON, with
provenance); the panel QA applies it to the panel's raw spectra.

    python scripts/tune_savgol_baseline.py --train-manifest results/denoise/data/manifest_train.csv \
        --root-dir results/denoise/data/spectra --wavelength-grid results/denoise/data/wavelength_grid.npy \
        --out results/denoise/baseline/savgol.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gensynth.cli import exit_main
from gensynth.denoise.baseline import tune_savgol
from gensynth.denoise.data import load_grid, load_manifest, partner_pairs
from gensynth.denoise.settings import SavgolCandidates
from gensynth.io import save_json
from gensynth.provenance import Provenance
from gensynth.steps import add_settings_arguments


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-manifest", "--train_manifest", required=True, type=Path, help="training rows with their n2n_partner")
    parser.add_argument("--root-dir", "--root_dir", required=True, type=Path, help="the training manifest's spectra tree")
    parser.add_argument("--wavelength-grid", "--wavelength_grid", required=True, type=Path)
    add_settings_arguments(parser, SavgolCandidates, "denoise")
    parser.add_argument("--out", required=True, type=Path, help="output: the tuned window and order (JSON)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    provenance = Provenance({"windows": args.windows, "polyorders": args.polyorders})
    length = len(load_grid(args.wavelength_grid))
    manifest = load_manifest(args.train_manifest, args.root_dir, partners=True)
    inputs, targets = partner_pairs(manifest, length)
    best, scores = tune_savgol(inputs, targets, args.windows, args.polyorders)
    print(
        f"Savitzky-Golay: window {best.window}, polyorder {best.polyorder} "
        f"(mean squared difference to the partners {min(s['mse'] for s in scores):.4g}, {len(inputs)} training rows)",
        flush=True,
    )
    save_json(
        args.out,
        {
            "window": best.window,
            "polyorder": best.polyorder,
            "criterion": "mse to the n2n_partner",
            "n_rows": len(inputs),
            "scores": scores,
            "provenance": provenance.record({"train_manifest": args.train_manifest, "wavelength_grid": args.wavelength_grid}),
        },
    )
    return 0


if __name__ == "__main__":
    exit_main(main)

"""Tune the classical baselines on the training manifest: the settings a spectroscopist would pick.

Savitzky-Golay (window, polyorder), Whittaker smoothing (lam), wavelet shrinkage (wavelet, level,
threshold_scale) and PCA projection (components) are each scored by the mean squared difference between a
training row's denoised spectrum and its Noise2Noise partner (the model's loss; its argmin is the
clean-target one, see gensynth/denoise/baseline.py). The filters are scored on every training row; PCA,
which learns from the spectra, by cross-validation over (treatment, sample) groups, then refitted on every
training spectrum. Writes every method's choice and scores (JSON, with provenance) and the fitted PCA's
arrays (NPZ, named in the JSON relative to its folder, so that the two move together); the panel QA reads
them with gensynth.denoise.baseline.load_baselines.

    python scripts/tune_baselines.py --train-manifest results/denoise/data/manifest_train.csv \
        --root-dir results/denoise/data/spectra --wavelength-grid results/denoise/data/wavelength_grid.npy \
        --out results/denoise/baseline/baselines.json --pca-out results/denoise/baseline/pca.npz
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from gensynth.cli import exit_main
from gensynth.denoise.baseline import CRITERION, describe, save_pca, tune_pca, tune_savgol, tune_wavelet, tune_whittaker
from gensynth.denoise.data import load_grid, load_manifest, partner_pairs, sample_labels
from gensynth.denoise.settings import BaselineCandidates
from gensynth.io import save_json
from gensynth.provenance import Provenance
from gensynth.steps import add_settings_arguments, settings_from_args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-manifest", "--train_manifest", required=True, type=Path, help="training rows with their n2n_partner")
    parser.add_argument("--root-dir", "--root_dir", required=True, type=Path, help="the training manifest's spectra tree")
    parser.add_argument("--wavelength-grid", "--wavelength_grid", required=True, type=Path)
    add_settings_arguments(parser, BaselineCandidates, "denoise")
    parser.add_argument("--out", required=True, type=Path, help="output: every method's choice and scores (JSON)")
    parser.add_argument("--pca-out", "--pca_out", required=True, type=Path, help="output: the fitted PCA's mean and components (NPZ)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    candidates = settings_from_args(BaselineCandidates, args)
    provenance = Provenance(dataclasses.asdict(candidates))
    length = len(load_grid(args.wavelength_grid))
    manifest = load_manifest(args.train_manifest, args.root_dir, partners=True)
    inputs, targets = partner_pairs(manifest, length)
    groups = sample_labels(manifest.rows)  # a sample is fitted or scored whole

    tuned = {
        "savgol": tune_savgol(inputs, targets, candidates.windows, candidates.polyorders),
        "whittaker": tune_whittaker(inputs, targets, candidates.lams),
        "wavelet": tune_wavelet(inputs, targets, candidates.wavelets, candidates.levels, candidates.threshold_scales),
        "pca": tune_pca(inputs, targets, groups, candidates.components, candidates.folds),
    }
    methods = {}
    for name, (best, scores) in tuned.items():
        mse = min(score["mse"] for score in scores)
        methods[name] = {"best": best.params(), "mse": mse, "scores": scores}
        print(f"{name}: {describe(best)}, mean squared difference to the partners {mse:.4g}", flush=True)
    save_pca(args.pca_out, tuned["pca"][0])
    methods["pca"].update(arrays=os.path.relpath(args.pca_out, args.out.parent), folds=candidates.folds, groups="treatment, sample")
    save_json(
        args.out,
        {
            "criterion": CRITERION,
            "n_rows": len(inputs),
            "methods": methods,
            "provenance": provenance.record({"train_manifest": args.train_manifest, "wavelength_grid": args.wavelength_grid}, outputs={"pca": args.pca_out}),
        },
    )
    print(f"({len(inputs)} training rows; PCA scored by {candidates.folds}-fold cross-validation)", flush=True)
    return 0


if __name__ == "__main__":
    exit_main(main)

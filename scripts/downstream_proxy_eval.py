"""Gate 4 of the panel QA, the generic downstream proxy: replicate variance, treatment separability, dose
monotonicity and peak stability of denoised spectra, each next to the raw spectra's (see
gensynth/denoise/downstream.py for the definitions).

Reads the denoised panel (``<denoised-dir>/<relative_path without .npy>_denoised.npy``, as the panel QA and
scripts/run_denoise_from_manifest.py write them) and the raw spectra; writes ``downstream_metrics.json``
beside the denoised spectra (with provenance) and exits 0 when all four checks pass, 1 when one fails
(2 on bad input).

    python scripts/downstream_proxy_eval.py --denoised-dir results/denoise/panel_eval/mamba_tiny_uv_best_panel_preds \
        --manifest results/denoise/data/validation_panel.csv --root-dir results/denoise/data/spectra \
        --metadata results/denoise/data/metadata/dose_features.csv \
        --wavelength-grid results/denoise/data/wavelength_grid.npy --roi-windows resources/denoise/roi_windows.yaml
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from gensynth.cli import exit_main
from gensynth.denoise.data import load_grid, load_manifest, load_tree_spectra
from gensynth.denoise.downstream import downstream_metrics, spectrum_doses
from gensynth.denoise.layout import DOWNSTREAM_JSON, denoised_relative_path
from gensynth.denoise.quality import load_roi_windows
from gensynth.denoise.settings import DownstreamProxySettings, DownstreamThresholds
from gensynth.io import save_json
from gensynth.provenance import Provenance
from gensynth.steps import add_settings_arguments, narrow, settings_from_args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--denoised-dir", required=True, type=Path, help="the denoised panel (mirrored _denoised.npy tree)")
    parser.add_argument("--manifest", required=True, type=Path, help="the panel manifest")
    parser.add_argument("--root-dir", required=True, type=Path, help="the raw spectra tree")
    parser.add_argument("--metadata", required=True, type=Path, help="dose_features.csv (the dose of each treatment)")
    parser.add_argument("--wavelength-grid", required=True, type=Path)
    add_settings_arguments(parser, DownstreamProxySettings, "denoise")
    parser.add_argument("--out", type=Path, help=f"output JSON (default: <denoised-dir>/{DOWNSTREAM_JSON})")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    thresholds = narrow(settings_from_args(DownstreamProxySettings, args), DownstreamThresholds)
    provenance = Provenance({"dose_column": args.dose_column, **dataclasses.asdict(thresholds)})
    grid = load_grid(args.wavelength_grid)
    roi = load_roi_windows(args.roi_windows)
    roi.check_grid(grid, args.wavelength_grid)
    panel = load_manifest(args.manifest, args.root_dir)
    raw = load_tree_spectra(panel, len(grid))
    denoised_paths = [denoised_relative_path(r) for r in panel.files["relative_path"]]
    denoised = load_tree_spectra(panel, len(grid), denoised_paths, root=args.denoised_dir)
    files = panel.files
    result = downstream_metrics(
        denoised,
        raw,
        grid,
        roi,
        files["group_id"].to_numpy(),
        files["treatment"].to_numpy(),
        spectrum_doses(args.metadata, args.dose_column, files["treatment"], args.manifest),
        thresholds,
        str(args.manifest),
    )
    for name, check in result["checks"].items():
        print(
            f"{name:<23} {check['value']:10.4g} {check['rule']} {check['threshold']:<6g} (denoised {check['denoised']:.4g}, "
            f"raw {check['raw']:.4g}) {'PASS' if check['passed'] else 'FAIL'}",
            flush=True,
        )
    output = args.out or args.denoised_dir / DOWNSTREAM_JSON
    inputs = {"manifest": args.manifest, "metadata": args.metadata, "wavelength_grid": args.wavelength_grid, "roi_windows": args.roi_windows}
    save_json(output, {**result, "provenance": provenance.record(inputs)})
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    exit_main(main)

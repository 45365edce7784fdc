"""ROI overlays (the group's legacy utility): raw, denoised and baseline spectra in each ROI window, per group.

For the first replicate of each panel group (one row per group, at most ``--max-groups``), every ROI window of
``--roi-windows``: the raw spectrum, the MambaUV-denoised one (``--denoised-dir``, the mirrored
``_denoised.npy`` tree), the Savitzky-Golay baseline (``--baseline-dir``, the same layout) and, where the
data have them, the clean spectrum (``--clean-dir``).

    python scripts/plot_roi_windows.py --manifest results/denoise/data/validation_panel.csv \
        --root-dir results/denoise/data/spectra \
        --denoised-dir results/denoise/panel_eval/mamba_tiny_uv_best_panel_preds \
        --baseline-dir results/denoise/panel_eval/savgol_panel_preds --clean-dir results/denoise/data/clean \
        --wavelength-grid results/denoise/data/wavelength_grid.npy --out results/denoise/figures/roi_windows.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gensynth.cli import exit_main
from gensynth.denoise.data import load_grid, load_manifest, load_tree_spectra
from gensynth.denoise.figures import GroupSpectra, roi_figure
from gensynth.denoise.layout import denoised_relative_path
from gensynth.denoise.quality import load_roi_windows
from gensynth.denoise.settings import RoiWindows
from gensynth.steps import add_settings_arguments


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", required=True, type=Path, help="the panel (or any manifest with groups)")
    parser.add_argument("--root-dir", required=True, type=Path, help="the raw spectra tree")
    parser.add_argument("--denoised-dir", required=True, type=Path, help="the denoised spectra (mirrored _denoised.npy tree)")
    parser.add_argument("--baseline-dir", type=Path, help="the baseline's spectra in the same layout (the Savitzky-Golay filter)")
    parser.add_argument("--clean-dir", type=Path, help="clean spectra, same relative paths (drawn dashed)")
    parser.add_argument("--wavelength-grid", required=True, type=Path)
    add_settings_arguments(parser, RoiWindows, "denoise")
    parser.add_argument("--max-groups", type=int, default=8, help="at most this many groups (rows), in manifest order")
    parser.add_argument("--out", required=True, type=Path, help="output figure (PNG)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    grid = load_grid(args.wavelength_grid)
    roi = load_roi_windows(args.roi_windows)
    roi.check_grid(grid, args.wavelength_grid)
    manifest = load_manifest(args.manifest, args.root_dir)
    first = manifest.files.drop_duplicates("group_id").head(args.max_groups)  # each group's first replicate
    relatives = list(first["relative_path"])
    denoised_paths = [denoised_relative_path(r) for r in relatives]

    def tree(root: Path | None, paths: list[str]):
        return None if root is None else load_tree_spectra(manifest, len(grid), paths, root=root)

    raw, denoised = tree(args.root_dir, relatives), tree(args.denoised_dir, denoised_paths)
    savgol, clean = tree(args.baseline_dir, denoised_paths), tree(args.clean_dir, relatives)
    groups = [
        GroupSpectra(group, relative, raw[i], denoised[i], None if savgol is None else savgol[i], None if clean is None else clean[i])
        for i, (group, relative) in enumerate(zip(first["group_id"], relatives))
    ]
    roi_figure(grid, roi, groups, args.out)
    print(f"{len(groups)} groups x {len(roi.windows)} ROI windows -> {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    exit_main(main)

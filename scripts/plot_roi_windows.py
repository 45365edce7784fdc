"""ROI overlays (the group's legacy utility): raw, denoised and baseline spectra in each ROI window, per group.

For the first replicate of each panel group (one row per group, at most ``--max-groups``), every ROI window of
``--roi-windows``: the raw spectrum, the MambaUV-denoised one (``--denoised-dir``, the mirrored
``_denoised.npy`` tree), a baseline's (``--baseline-dir``, the same layout) and, where the data have them,
the clean spectrum (``--clean-dir``). ``--qa-summary`` (the panel QA's summary) takes both from the QA: the
selected checkpoint's denoised panel and the best baseline's.

    python scripts/plot_roi_windows.py --manifest results/denoise/data/validation_panel.csv \
        --root-dir results/denoise/data/spectra \
        --qa-summary results/denoise/panel_eval/panel_eval_summary.json --clean-dir results/denoise/data/clean \
        --wavelength-grid results/denoise/data/wavelength_grid.npy --out results/denoise/figures/roi_windows.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gensynth.cli import exit_main
from gensynth.denoise.data import load_grid, load_manifest, load_tree_spectra
from gensynth.denoise.figures import GroupSpectra, roi_figure
from gensynth.denoise.layout import QA_METHOD_FILES, denoised_relative_path
from gensynth.denoise.quality import load_roi_windows
from gensynth.denoise.settings import RoiWindows
from gensynth.io import load_json
from gensynth.steps import add_settings_arguments


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", required=True, type=Path, help="the panel (or any manifest with groups)")
    parser.add_argument("--root-dir", required=True, type=Path, help="the raw spectra tree")
    parser.add_argument("--denoised-dir", type=Path, help="the denoised spectra (mirrored _denoised.npy tree)")
    parser.add_argument("--baseline-dir", type=Path, help="a baseline's spectra in the same layout")
    parser.add_argument("--baseline-label", default="baseline", help="the baseline's name in the legend")
    parser.add_argument(
        "--qa-summary", type=Path, help="the panel QA's panel_eval_summary.json: the selected checkpoint's and the best baseline's panel predictions"
    )
    parser.add_argument("--clean-dir", type=Path, help="clean spectra, same relative paths (drawn dashed)")
    parser.add_argument("--wavelength-grid", required=True, type=Path)
    add_settings_arguments(parser, RoiWindows, "denoise")
    parser.add_argument("--max-groups", type=int, default=8, help="at most this many groups (rows), in manifest order")
    parser.add_argument("--out", required=True, type=Path, help="output figure (PNG)")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.qa_summary is not None:
        summary = load_json(args.qa_summary)
        preds = args.qa_summary.parent / QA_METHOD_FILES["preds"]
        args.denoised_dir = Path(preds.as_posix().format(name=summary["selected"]))
        if summary.get("best_baseline"):
            args.baseline_dir, args.baseline_label = Path(preds.as_posix().format(name=summary["best_baseline"])), summary["best_baseline"]
    if args.denoised_dir is None:
        parser.error("--denoised-dir or --qa-summary is required")
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
    baseline, clean = tree(args.baseline_dir, denoised_paths), tree(args.clean_dir, relatives)
    groups = [
        GroupSpectra(group, relative, raw[i], denoised[i], None if baseline is None else baseline[i], None if clean is None else clean[i])
        for i, (group, relative) in enumerate(zip(first["group_id"], relatives))
    ]
    roi_figure(grid, roi, groups, args.out, args.baseline_label)
    print(f"{len(groups)} groups x {len(roi.windows)} ROI windows -> {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    exit_main(main)

"""The panel QA (the group's primary QA script, its flags kept): every checkpoint on the fixed hold-out panel,
the top-k ranked, and four readiness gates; a version banner first.

The panel manifest's SHA-256 is checked against ``--expected-hash`` before any model loads. Every ``*.pt`` in
``--checkpoint-dir`` denoises the panel and is scored against the reference (the clean spectra of
``--clean-dir``, else each spectrum's leave-one-out replicate mean) and ranked by mean PSNR; the best is gated:

1. PSNR gain over the raw spectra (of ``--baseline-dir``) of at least ``--psnr-gain-min-db``;
2. spectral angle no worse than the raw spectra's (at most ``--sam-max-increase-deg`` more);
3. ROI integrity: the share of spectra whose peaks and areas in the ``--roi-windows`` stay within tolerance;
4. the downstream proxy on the denoised panel, all four of its checks (gensynth.denoise.downstream in this
   process; ``--downstream-script`` runs a script of your own instead, as the group's command below does).

The tuned Savitzky-Golay filter (``--savgol-params``) and a comparison checkpoint (``--comparison-checkpoint``,
the clean-target arm) are scored side by side. Writes, in ``--output-dir``: ``<name>_per_spectrum_metrics.csv``
(keyed by relative_path) and ``<name>_per_group_summary.csv`` per method, ``<name>_panel_preds/`` (the gated
checkpoint's and the baseline's denoised spectra, with downstream_metrics.json), ``panel_methods_summary.csv``,
``panel_psnr_by_group.png`` and ``panel_eval_summary.json`` (each gate's value, threshold and verdict, the
manifest hash, the git commit, the ranked checkpoints, provenance). Exits 1 when a gate fails.

    PANEL_HASH=$(sha256sum data/validation_panel.csv | cut -d' ' -f1)
    python scripts/evaluate_validation_panel.py \
      --checkpoint-dir checkpoints/god_run \
      --manifest data/validation_panel.csv \
      --root-dir data/spectra_for_fold \
      --baseline-dir data/spectra_for_fold \
      --metadata data/metadata/dose_features.csv \
      --wavelength-grid data/spectra_for_fold/wavelength_grid.npy \
      --expected-hash $PANEL_HASH \
      --output-dir final_analytics/panel_eval \
      --top-k 5 \
      --downstream-script scripts/downstream_proxy_eval.py \
      --batch-size 256
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gensynth.cli import add_device_arguments, exit_main
from gensynth.denoise.layout import COMPARISON_NAME, QA_FILES
from gensynth.denoise.qa import QaOptions, gate_lines, run_panel_qa
from gensynth.denoise.settings import DownstreamThresholds, GateThresholds, PanelQASettings
from gensynth.io import save_json
from gensynth.provenance import Provenance
from gensynth.steps import add_settings_arguments, narrow, settings_from_args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint-dir", required=True, type=Path, help="every *.pt in it is evaluated")
    parser.add_argument("--manifest", required=True, type=Path, help="the fixed validation panel (CSV)")
    parser.add_argument("--root-dir", required=True, type=Path, help="the panel's spectra tree (the models' input)")
    parser.add_argument("--baseline-dir", type=Path, help="the raw spectra of gate 1 (default: --root-dir)")
    parser.add_argument("--metadata", required=True, type=Path, help="dose_features.csv")
    parser.add_argument("--wavelength-grid", required=True, type=Path)
    parser.add_argument("--expected-hash", help="the panel manifest's SHA-256 (checked before any model loads)")
    parser.add_argument("--output-dir", required=True, type=Path)
    parser.add_argument(
        "--downstream-script",
        type=Path,
        help="a gate-4 script of your own, run on each denoised panel with scripts/downstream_proxy_eval.py's flags (it writes "
        "downstream_metrics.json there and exits 0 when its checks pass, 1 when one fails); default: gensynth's proxy, in this process",
    )
    parser.add_argument("--clean-dir", type=Path, help="clean spectra (same relative paths): the reference; default: replicate means")
    parser.add_argument("--savgol-params", type=Path, help="the tuned Savitzky-Golay baseline (scripts/tune_savgol_baseline.py)")
    parser.add_argument("--comparison-checkpoint", type=Path, help="a checkpoint scored beside the gated one (the clean-target arm)")
    parser.add_argument("--comparison-name", default=COMPARISON_NAME)
    add_settings_arguments(parser, PanelQASettings, "denoise")
    add_device_arguments(parser)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from gensynth.denoise.figures import panel_psnr_figure
    from gensynth.device import use_device

    device = use_device(args)
    step = settings_from_args(PanelQASettings, args)
    options = QaOptions(
        checkpoint_dir=args.checkpoint_dir,
        manifest=args.manifest,
        root_dir=args.root_dir,
        baseline_dir=args.baseline_dir or args.root_dir,
        metadata=args.metadata,
        wavelength_grid=args.wavelength_grid,
        output_dir=args.output_dir,
        downstream_script=args.downstream_script,
        roi_windows=step.roi_windows,
        expected_hash=args.expected_hash,
        clean_dir=args.clean_dir,
        savgol_params=args.savgol_params,
        comparison_checkpoint=args.comparison_checkpoint,
        comparison_name=args.comparison_name,
        top_k=step.top_k,
        batch_size=step.batch_size,
        dose_column=step.dose_column,
        gates=narrow(step, GateThresholds),
        downstream=narrow(step, DownstreamThresholds),
    )
    provenance = Provenance({k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, str(device))
    summary = run_panel_qa(options, device)
    panel_psnr_figure(args.output_dir, summary)
    inputs = {
        "manifest": args.manifest,
        "metadata": args.metadata,
        "wavelength_grid": args.wavelength_grid,
        "roi_windows": args.roi_windows,
        **{f"checkpoint {entry['name']}": entry["path"] for entry in summary["ranked_checkpoints"]},
    }
    for name in ("savgol_params", "comparison_checkpoint"):
        if getattr(args, name):
            inputs[name] = getattr(args, name)
    save_json(args.output_dir / QA_FILES["summary"], {**summary, "provenance": provenance.record(inputs)})
    for line in gate_lines(summary):
        print(line, flush=True)
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    exit_main(main)

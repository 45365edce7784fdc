"""The panel QA (the group's primary QA script, its flags kept): every method on the fixed hold-out panel
against the same four gates, the checkpoints ranked on the validation manifest, a version banner first.

The panel manifest's SHA-256 is checked against ``--expected-hash`` before any model loads, then the panel's
(treatment, sample) pairs and spectra against ``--train-manifest`` and ``--val-manifest``: an overlapping
panel is refused (``--no-forbid-overlap`` scores it anyway and records the overlap). Every ``*.pt`` under
``--checkpoint-dir`` (or each of ``--checkpoints``) is ranked by mean PSNR on ``--val-manifest`` (on the panel when none is given, which the
summary then says); the first is gated. The raw spectra (of ``--baseline-dir``), the identity map, the tuned
baselines (``--baselines``, scripts/tune_baselines.py), every checkpoint and the comparison checkpoints
(``--comparison-checkpoint``, the clean-target arm) are all scored against the reference (the clean spectra of
``--clean-dir``, else each spectrum's leave-one-out replicate mean) and all face the gates, each a margin over
the raw spectra:

1. PSNR gain over the raw spectra of at least ``--psnr-gain-min-db``;
2. spectral angle below the raw spectra's by at least ``--sam-min-improvement-deg``;
3. ROI integrity: the share of spectra whose peaks and band areas (above each window's chord) in the
   ``--roi-windows`` stay within tolerance, at least ``--roi-min-fraction``;
4. the downstream proxy on the denoised panel, all four of its checks, each relative to the raw spectra
   (gensynth.denoise.downstream in this process; ``--downstream-script`` runs a script of your own instead).

A gate that the raw spectra or the identity map passes is "not discriminating" and fails the QA. Writes, in
``--output-dir``: ``<name>_per_spectrum_metrics.csv`` (keyed by relative_path), ``<name>_per_group_summary.csv``
and ``<name>_panel_preds/`` (with downstream_metrics.json) per method, ``panel_methods_summary.csv`` (every
method ranked by panel PSNR with 95 % intervals over the held-out samples and seeds, and its gates),
``panel_psnr_by_group.png`` and ``panel_eval_summary.json`` (the gates with the raw and identity values, the
leakage check, the ranked checkpoints, the paired gaps, the manifest hash, the git commit, provenance). The
selected checkpoint is copied to ``--promote-to`` when it passes. Exits 1 when a gate fails or does not
discriminate (``--no-enforce-gates``: reports only, exits 0).

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
    checkpoints = parser.add_mutually_exclusive_group(required=True)
    checkpoints.add_argument("--checkpoint-dir", type=Path, help="every *.pt under it is evaluated")
    checkpoints.add_argument(
        "--checkpoints", type=Path, nargs="+", help="these checkpoints only (the DAG's seeds: no other file in their folder is taken for one)"
    )
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
    parser.add_argument("--baselines", type=Path, help="the tuned baselines (scripts/tune_baselines.py's JSON)")
    parser.add_argument(
        "--comparison-checkpoint", type=Path, nargs="+", default=[], help="checkpoints scored beside the gated ones (the clean-target arm, one per seed)"
    )
    parser.add_argument("--comparison-name", default=COMPARISON_NAME)
    parser.add_argument("--train-manifest", type=Path, help="the training manifest (the leakage check)")
    parser.add_argument("--val-manifest", type=Path, help="the validation manifest: ranks the checkpoints (and the leakage check)")
    parser.add_argument("--promote-to", type=Path, help="copy the selected checkpoint here when it passes")
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
        checkpoints=args.checkpoints,
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
        baselines=args.baselines,
        comparison_checkpoints=args.comparison_checkpoint,
        comparison_name=args.comparison_name,
        train_manifest=args.train_manifest,
        val_manifest=args.val_manifest,
        forbid_overlap=step.forbid_overlap,
        enforce_gates=step.enforce_gates,
        promote_to=args.promote_to,
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
    for name in ("baselines", "train_manifest", "val_manifest"):
        if getattr(args, name):
            inputs[name] = getattr(args, name)
    inputs |= {f"comparison {path}": path for path in args.comparison_checkpoint}
    save_json(args.output_dir / QA_FILES["summary"], {**summary, "provenance": provenance.record(inputs)})
    for line in gate_lines(summary):
        print(line, flush=True)
    return 0 if summary["passed"] or not summary["enforced"] else 1


if __name__ == "__main__":
    exit_main(main)

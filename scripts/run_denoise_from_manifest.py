"""Denoise every spectrum of a manifest with a trained MambaUV (the group's batch inference helper, its flags kept).

Writes ``<output-root>/<relative_path without .npy>_denoised.npy``, mirroring the manifest's
treatment/sample/angle/replicate tree; rows that point at the same file (the Noise2Noise duplicates) are
denoised once. Every file is written atomically, and a rerun skips the files an earlier run of the same
checkpoint finished (never a half-written one). ``--shard i --num-shards n`` denoises every n-th distinct file
only (the DAG runs the shards as separate jobs); ``--done-json`` records what the shard wrote, with provenance.

    python scripts/run_denoise_from_manifest.py \
      --manifest data/spectra_for_fold/manifest_full.csv \
      --root-dir data/spectra_for_fold \
      --checkpoint checkpoints/god_run/mamba_tiny_uv_best.pt \
      --output-root denoised_full_run \
      --dose-features-csv data/metadata/dose_features.csv \
      --dose-stats-json data/metadata/dose_stats.json \
      --batch-size 128 \
      --num-workers 4
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gensynth.cli import add_device_arguments, exit_main
from gensynth.denoise.settings import InferSettings
from gensynth.io import save_json
from gensynth.provenance import Provenance
from gensynth.steps import add_settings_arguments


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", required=True, type=Path, help="manifest CSV keyed by relative_path")
    parser.add_argument("--root-dir", "--root_dir", required=True, type=Path, help="the spectra tree the manifest points into")
    parser.add_argument("--checkpoint", required=True, type=Path, help="a MambaUV checkpoint (mamba_tiny_uv_best.pt)")
    parser.add_argument("--output-root", "--output_root", required=True, type=Path, help="where the mirrored _denoised.npy tree goes")
    parser.add_argument("--dose-features-csv", "--dose_features_csv", required=True, type=Path)
    parser.add_argument("--dose-stats-json", "--dose_stats_json", type=Path, help="must match the checkpoint's normalisation (default: the checkpoint's own)")
    add_settings_arguments(parser, InferSettings, "denoise", underscores=True)
    parser.add_argument("--shard", type=int, default=0, help="this job's shard, 0 .. --num-shards - 1")
    parser.add_argument("--num-shards", type=int, default=1)
    parser.add_argument("--done-json", type=Path, help="output: what this shard wrote (counts, paths, timing, provenance)")
    add_device_arguments(parser)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from gensynth.denoise.inference import denoise_manifest
    from gensynth.device import use_device

    device = use_device(args)
    provenance = Provenance({"batch_size": args.batch_size, "num_workers": args.num_workers, "shard": args.shard, "num_shards": args.num_shards}, str(device))
    run = denoise_manifest(
        args.manifest,
        args.root_dir,
        args.checkpoint,
        args.output_root,
        args.dose_features_csv,
        args.dose_stats_json,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        device=device,
        shard=args.shard,
        num_shards=args.num_shards,
    )
    print(
        f"{args.manifest}: {run.rows} rows, {run.files} distinct files in shard {args.shard}/{args.num_shards}: {run.written} denoised, "
        f"{run.skipped} already done; {run.seconds:.1f} s, {run.spectra_per_s:.0f} spectra/s (I/O included) -> {args.output_root}",
        flush=True,
    )
    if args.done_json:
        inputs = {"manifest": args.manifest, "checkpoint": args.checkpoint, "dose_features_csv": args.dose_features_csv}
        if args.dose_stats_json:
            inputs["dose_stats_json"] = args.dose_stats_json
        save_json(
            args.done_json,
            {
                "output_root": str(args.output_root),
                "rows": run.rows,
                "files": run.files,
                "written": run.written,
                "skipped": run.skipped,
                "seconds": run.seconds,
                "spectra_per_s": run.spectra_per_s,
                "outputs": run.outputs,
                "provenance": provenance.record(inputs),
            },
        )
    return 0


if __name__ == "__main__":
    exit_main(main)

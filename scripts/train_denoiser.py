"""Train the MambaUV denoiser (the group's ``python -m src.train``, its flags kept): Noise2Noise or clean targets.

Each training manifest row is one pair: the row's spectrum in, its ``n2n_partner`` replicate as the target
(``--target noise2noise``), or its own clean spectrum from ``--clean_dir`` (``--target clean``, the comparison
arm). AdamW with an EMA of the weights; after every epoch the EMA weights are scored on ``--val_manifest``
(the same kind of target) and training stops ``--patience`` epochs after the last improvement.

Writes ``<checkpoint_dir>/mamba_tiny_uv_best.pt`` (the best epoch's EMA weights with the model's config, the
dose features' normalisation and the wavelength grid; loads with ``torch.load(weights_only=True)``) and, in
``--log_dir``, ``metrics.csv`` (one row per epoch), ``audit.log`` (the command, start, resume and end) and
``train_summary.json`` (with provenance). A killed run continues from ``<checkpoint_dir>/.mamba_tiny_uv_best.pt.resume``
(saved every ``--resume_every_s`` seconds) to the same weights; ``--init_checkpoint`` warm-starts from
another run's checkpoint of the same shape.

    python scripts/train_denoiser.py --train_dir results/denoise/data/spectra \
        --train_manifest results/denoise/data/manifest_train.csv --val_dir results/denoise/data/spectra \
        --val_manifest results/denoise/data/manifest_val.csv --wavelength_grid results/denoise/data/wavelength_grid.npy \
        --dose_features_csv results/denoise/data/metadata/dose_features.csv \
        --dose_stats_json results/denoise/data/metadata/dose_stats.json \
        --log_dir results/denoise/train/noise2noise --checkpoint_dir results/denoise/checkpoints/noise2noise
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import shlex
import socket
import sys
from pathlib import Path

from gensynth.cli import add_device_arguments, exit_main
from gensynth.denoise.layout import BEST_CHECKPOINT, TRAIN_LOGS
from gensynth.denoise.settings import DenoiseModelSettings, DenoiseTrainSettings, TrainDenoiserSettings
from gensynth.io import atomic_open, save_checkpoint, save_json, sha256_file
from gensynth.provenance import Provenance, git_commit, utc_now
from gensynth.steps import add_settings_arguments, narrow, settings_from_args


def flag(name: str) -> tuple[str, str]:
    """The group's spelling (--train_dir) and the dashed one (--train-dir)."""
    return f"--{name}", f"--{name.replace('_', '-')}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(*flag("train_dir"), required=True, type=Path, help="spectra tree of the training manifest")
    parser.add_argument(*flag("train_manifest"), required=True, type=Path, help="training rows with their n2n_partner")
    parser.add_argument(*flag("val_dir"), type=Path, help="spectra tree of the validation manifest (default: --train_dir)")
    parser.add_argument(*flag("val_manifest"), required=True, type=Path, help="validation rows (early stopping)")
    parser.add_argument(*flag("init_checkpoint"), type=Path, help="warm start from this checkpoint (same model shape)")
    parser.add_argument(*flag("log_dir"), required=True, type=Path, help="output: metrics.csv, audit.log, train_summary.json")
    parser.add_argument(*flag("checkpoint_dir"), required=True, type=Path, help=f"output: {BEST_CHECKPOINT} (and the resume file)")
    parser.add_argument(*flag("wavelength_grid"), required=True, type=Path)
    parser.add_argument(*flag("dose_features_csv"), required=True, type=Path)
    parser.add_argument(*flag("dose_stats_json"), required=True, type=Path)
    parser.add_argument(*flag("clean_dir"), type=Path, help="clean spectra tree (same relative paths), for --target clean")
    add_settings_arguments(parser, TrainDenoiserSettings, "denoise", underscores=True)
    parser.add_argument(*flag("resume_every_s"), type=float, default=600.0, help="seconds between saves of the resume file")
    add_device_arguments(parser)
    return parser


def append_audit(path: Path, line: str) -> None:
    """The audit log, one timestamped line per event, rewritten atomically."""
    previous = path.read_text() if path.is_file() else ""
    with atomic_open(path, "w") as handle:
        handle.write(f"{previous}{utc_now()} {line}\n")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    import pandas as pd

    from gensynth.denoise.data import DoseTable, load_grid, load_manifest
    from gensynth.denoise.mamba import MambaUVConfig
    from gensynth.denoise.train import checkpoint_state, paired_spectra, train_denoiser
    from gensynth.device import use_device
    from gensynth.training import discard_resume_state, resume_path

    audit = args.log_dir / TRAIN_LOGS["audit"]
    command = shlex.join([sys.executable, __file__, *(sys.argv[1:] if argv is None else argv)])
    append_audit(audit, f"start on {socket.gethostname()}, git {git_commit()}: {command}")
    device = use_device(args)
    step = settings_from_args(TrainDenoiserSettings, args)
    settings = narrow(step, DenoiseTrainSettings)  # the checkpoint's and the resume fingerprint's settings, as before

    grid = load_grid(args.wavelength_grid)
    dose = DoseTable.load(args.dose_features_csv, args.dose_stats_json)
    partners = args.target == "noise2noise"
    train_manifest = load_manifest(args.train_manifest, args.train_dir, partners=partners)
    val_manifest = load_manifest(args.val_manifest, args.val_dir or args.train_dir, partners=partners)
    train = paired_spectra(train_manifest, dose, len(grid), args.target, args.clean_dir)
    val = paired_spectra(val_manifest, dose, len(grid), args.target, args.clean_dir)
    config = MambaUVConfig(dose_dim=len(dose.features), **dataclasses.asdict(narrow(step, DenoiseModelSettings)))

    # the arrays themselves, so that a resumed run must have read the same spectra
    digest = hashlib.sha256()
    for tensor in (*train.tensors(), *val.tensors()):
        digest.update(tensor.numpy().tobytes())
    inputs = {
        "train_manifest": args.train_manifest,
        "val_manifest": args.val_manifest,
        "wavelength_grid": args.wavelength_grid,
        "dose_features_csv": args.dose_features_csv,
        "dose_stats_json": args.dose_stats_json,
    }
    if args.init_checkpoint:
        inputs["init_checkpoint"] = args.init_checkpoint
    data = {
        "spectra_sha256": digest.hexdigest(),
        "n_train_rows": len(train.inputs),
        "n_val_rows": len(val.inputs),
        **{f"{name}_sha256": sha256_file(path) for name, path in inputs.items()},
    }
    provenance = Provenance({"model": config.to_dict(), "train": vars(settings)}, str(device))

    checkpoint = args.checkpoint_dir / BEST_CHECKPOINT
    resume = resume_path(checkpoint)  # a hidden *.resume, not a *.pt: the panel QA evaluates every *.pt there
    resumed = resume.is_file()
    result = train_denoiser(
        train, val, config, settings, device, resume, fingerprint=data, init_checkpoint=args.init_checkpoint, dose=dose, resume_every_s=args.resume_every_s
    )
    save_checkpoint(checkpoint, checkpoint_state(result, config, dose, grid, settings, data))

    with atomic_open(args.log_dir / TRAIN_LOGS["metrics"], "w", newline="") as handle:
        pd.DataFrame(result.history).to_csv(handle, index=False, float_format="%.8g")
    stopped_early = result.history[-1]["epoch"] < settings.epochs
    save_json(
        args.log_dir / TRAIN_LOGS["summary"],
        {
            "target": args.target,
            "seed": settings.seed,
            "best_epoch": result.best_epoch,
            "best_val_loss": result.best_val_loss,
            "epochs_run": result.history[-1]["epoch"],
            "stopped_early": stopped_early,
            "checkpoint": str(checkpoint),
            "checkpoint_sha256": sha256_file(checkpoint),
            "resume_file_found": resumed,
            "data": data,
            "history": result.history,
            "provenance": provenance.record({**inputs, "checkpoint": checkpoint}),
        },
    )
    append_audit(
        audit,
        f"done: {result.history[-1]['epoch']} epochs{' (early stop)' if stopped_early else ''}, best epoch "
        f"{result.best_epoch}, validation loss {result.best_val_loss:.6g}, {checkpoint} sha256 {sha256_file(checkpoint)}",
    )
    discard_resume_state(resume)
    print(f"best epoch {result.best_epoch}: validation loss {result.best_val_loss:.6g} -> {checkpoint}", flush=True)
    return 0


if __name__ == "__main__":
    exit_main(main)

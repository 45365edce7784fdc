"""Train the replica model: a class-conditional UNet on (FLAIR image, lesion mask) slices.

Writes ``best.ckpt`` (the lowest validation loss, EMA weights inside), its ``config.yaml``
and the loss history. The run's state lives in ``--resume-dir``: a rerun after an
interruption continues from the last finished epoch.

    python scripts/train_replica_model.py --data results/replicas/data/train.npz --z-bins 4 \
        --out results/replicas/model/best.ckpt --config-out results/replicas/model/config.yaml \
        --history results/replicas/model/history.json --resume-dir results/replicas/model/resume
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from gensynth.cli import add_device_arguments, exit_main
from gensynth.config import schema_default
from gensynth.io import sha256_file
from gensynth.provenance import Provenance
from gensynth.replicas.settings import ReplicaTrainSettings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="training slices (NPZ, the slice dataset format)")
    parser.add_argument("--z-bins", type=int, default=schema_default("replicas", "z_bins"), help="number of z-bins (condition tokens: 2 * z_bins)")
    parser.add_argument("--out", required=True, type=Path, help="output: best checkpoint")
    parser.add_argument("--config-out", required=True, type=Path, help="output: the model's config.yaml")
    parser.add_argument("--history", required=True, type=Path, help="output: loss history (JSON)")
    parser.add_argument("--resume-dir", required=True, type=Path, help="the run's last and best checkpoints, for resuming")
    parser.add_argument(
        "--block-out-channels", type=int, nargs="+", default=schema_default("replicas", "model.block_out_channels"), help="UNet channels per level"
    )
    parser.add_argument("--layers-per-block", type=int, default=schema_default("replicas", "model.layers_per_block"))
    parser.add_argument(
        "--attention", action=argparse.BooleanOptionalAction, default=schema_default("replicas", "model.attention"), help="self-attention below the top level"
    )
    for field in dataclasses.fields(ReplicaTrainSettings):  # the replicas.train section
        default = schema_default("replicas", f"train.{field.name}")
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=type(default), default=default)
    add_device_arguments(parser)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from gensynth.device import use_device
    from gensynth.diffusion import UNetConfig
    from gensynth.replicas.data import load_slice_dataset
    from gensynth.replicas.train import RESUME_FILES, export_model, save_history, train_replica_model
    from gensynth.training import discard_resume_state

    device = use_device(args)
    settings = ReplicaTrainSettings(**{field.name: getattr(args, field.name) for field in dataclasses.fields(ReplicaTrainSettings)})
    dataset = load_slice_dataset(args.data, args.z_bins)
    unet_cfg = UNetConfig(
        sample_size=dataset.image_size,
        in_channels=2,
        out_channels=2,
        num_classes=2 * args.z_bins,
        block_out_channels=tuple(args.block_out_channels),
        layers_per_block=args.layers_per_block,
        attention=args.attention,
    )
    provenance = Provenance({"z_bins": args.z_bins, "unet": unet_cfg.to_dict(), "train": dataclasses.asdict(settings)}, str(device))
    data_sha256 = sha256_file(args.data)
    history = train_replica_model(dataset, data_sha256, args.z_bins, unet_cfg, settings, device, args.resume_dir)
    data = {"path": str(args.data), "sha256": data_sha256, "n_train": history["n_train"], "n_val": history["n_val"]}
    export_model(args.resume_dir, args.out, args.config_out, args.z_bins, unet_cfg, settings, history, data)
    save_history(args.history, history, provenance.record({"data": args.data}, {"checkpoint": args.out, "config": args.config_out}))
    discard_resume_state(*(args.resume_dir / name for name in RESUME_FILES))
    return 0


if __name__ == "__main__":
    exit_main(main)

"""Train the replica model: a class-conditional UNet on (FLAIR image, lesion mask) slices.

Writes ``best.ckpt`` (the lowest validation loss, EMA weights inside), its ``config.yaml``
and the loss history. The run's state lives beside the checkpoint (``.best.ckpt.resume``), saved every
``--checkpoint-every`` seconds: a rerun after an interruption continues from it.

    python scripts/train_replica_model.py --data results/replicas/data/train.npz --z-bins 4 \
        --out results/replicas/model/best.ckpt --out-config results/replicas/model/config.yaml \
        --out-history results/replicas/model/history.json
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from gensynth.cli import add_device_arguments, exit_main
from gensynth.io import sha256_file
from gensynth.provenance import Provenance
from gensynth.replicas.settings import ReplicaTrainSettings, TrainReplicaModelSettings
from gensynth.steps import add_settings_arguments, narrow, settings_from_args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="training slices (NPZ, the slice dataset format)")
    parser.add_argument("--out", required=True, type=Path, help="output: best checkpoint")
    parser.add_argument("--out-config", required=True, type=Path, help="output: the model's config.yaml")
    parser.add_argument("--out-history", required=True, type=Path, help="output: loss history (JSON)")
    parser.add_argument("--checkpoint-every", type=float, default=600.0, help="seconds between saves of the resume file (.<out>.resume beside the checkpoint)")
    add_settings_arguments(parser, TrainReplicaModelSettings, "replicas")
    add_device_arguments(parser)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from gensynth.device import use_device
    from gensynth.diffusion import UNetConfig
    from gensynth.replicas.data import load_slice_dataset
    from gensynth.replicas.train import export_model, save_history, train_replica_model
    from gensynth.training import discard_resume_state, resume_path

    device = use_device(args)
    step = settings_from_args(TrainReplicaModelSettings, args)
    settings = narrow(step, ReplicaTrainSettings)
    dataset = load_slice_dataset(args.data, args.z_bins)
    unet_cfg = UNetConfig(
        sample_size=dataset.image_size,
        in_channels=2,
        out_channels=2,
        num_classes=2 * args.z_bins,
        block_out_channels=step.block_out_channels,
        layers_per_block=step.layers_per_block,
        attention=step.attention,
    )
    provenance = Provenance({"z_bins": args.z_bins, "unet": unet_cfg.to_dict(), "train": dataclasses.asdict(settings)}, str(device))
    data_sha256 = sha256_file(args.data)
    resume = resume_path(args.out)
    trained = train_replica_model(dataset, data_sha256, args.z_bins, unet_cfg, settings, device, resume, args.checkpoint_every)
    history = trained.history
    data = {"path": str(args.data), "sha256": data_sha256, "n_train": history["n_train"], "n_val": history["n_val"]}
    export_model(trained, args.out, args.out_config, args.z_bins, unet_cfg, settings, data)
    save_history(args.out_history, history, provenance.record({"data": args.data}, {"checkpoint": args.out, "config": args.out_config}))
    discard_resume_state(resume)
    return 0


if __name__ == "__main__":
    exit_main(main)

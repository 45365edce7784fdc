"""Train model_initial, the class-conditional DDPM on real data that starts every scenario.

Example: python scripts/madness_train_initial.py --data results/madness/data/real.npz --epochs 25 \
    --out results/madness/initial/model_initial.ckpt --out-info results/madness/initial/model_initial.json
"""

from __future__ import annotations

import argparse
import logging
import sys

import numpy as np
import torch

from gensynth.cli import run_main
from gensynth.device import add_device_arguments, use_device
from gensynth.diffusion import ARCHITECTURES, Trainer, UNetConfig, build_unet, make_train_scheduler, save_model_checkpoint
from gensynth.errors import GensynthError
from gensynth.io import save_json
from gensynth.madness.data import NUM_CLASSES, load_real
from gensynth.madness.loop import TrainingSet, add_training_arguments, train, train_config, trainer_seed
from gensynth.provenance import Provenance
from gensynth.seeding import sha256_seed

log = logging.getLogger("madness.train_initial")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="real-data NPZ (madness_prepare_data.py)")
    parser.add_argument("--epochs", type=int, required=True, help="passes over the real training split (the seed's n_epoch)")
    parser.add_argument("--architecture", choices=ARCHITECTURES, default="unet2d", help="unet2d (diffusers' UNet2DModel) or the seed's context_unet")
    parser.add_argument("--channels", type=int, nargs="+", default=[16, 32, 32], help="UNet block_out_channels (context_unet: n_feat 2*n_feat)")
    parser.add_argument("--layers-per-block", type=int, default=1)
    parser.add_argument("--attention", action=argparse.BooleanOptionalAction, default=False, help="self-attention below the top level")
    parser.add_argument("--n-T", type=int, default=500, help="diffusion timesteps of the linear beta schedule")
    parser.add_argument("--beta-start", type=float, default=1e-4)
    parser.add_argument("--beta-end", type=float, default=0.02)
    add_training_arguments(parser)
    parser.add_argument("--seed", type=int, default=0)
    add_device_arguments(parser)
    parser.add_argument("--out", required=True, help="checkpoint (gensynth.diffusion format)")
    parser.add_argument("--out-info", required=True, help="JSON: losses, sizes, provenance")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.n_T < 2 or not 0 < args.beta_start < args.beta_end < 1:
        raise GensynthError(
            f"--epochs {args.epochs} (>= 1), --n-T {args.n_T} (>= 2), --beta-start {args.beta_start} < --beta-end {args.beta_end} "
            "(both in (0, 1)): out of range"
        )
    device = use_device(args)
    provenance = Provenance(vars(args), device)
    real = load_real(args.data)
    cfg = UNetConfig(
        sample_size=real.x_train.shape[-1], in_channels=real.x_train.shape[1], out_channels=real.x_train.shape[1],
        num_classes=NUM_CLASSES, block_out_channels=tuple(args.channels), layers_per_block=args.layers_per_block,
        attention=args.attention, architecture=args.architecture,
        num_train_timesteps=args.n_T if args.architecture == "context_unet" else None,
    )
    torch.manual_seed(sha256_seed("madness", args.seed, "initial", "init"))  # the UNet's initial weights
    unet = build_unet(cfg).to(device)
    scheduler = make_train_scheduler(args.n_T, beta_start=args.beta_start, beta_end=args.beta_end)
    trainer = Trainer(unet, scheduler, train_config(args, trainer_seed(args.seed, "initial", 0, -1)))
    data = TrainingSet(torch.from_numpy(real.x_train), torch.from_numpy(real.y_train), 0, np.arange(len(real.y_train)))
    losses = train(trainer, data, args.epochs)
    info = {"epoch_losses": losses, "steps": trainer.step, "num_train": len(data.y), "provenance": provenance.record({"data": args.data})}
    save_model_checkpoint(args.out, unet, cfg, scheduler, trainer, extra={"epoch_losses": losses})
    save_json(args.out_info, info)
    log.info("model_initial: %d steps, last epoch loss %.4f", trainer.step, losses[-1])


if __name__ == "__main__":
    sys.exit(run_main(main))

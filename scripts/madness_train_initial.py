"""Train model_initial, the class-conditional DDPM on real data that starts every scenario.

Example: python scripts/madness_train_initial.py --data results/madness/data/real.npz --n-epoch 25 \
    --out results/madness/initial/model_initial.ckpt --out-info results/madness/initial/model_initial.json
"""

from __future__ import annotations

import argparse
import logging

from gensynth.cli import add_device_arguments, exit_main
from gensynth.errors import GensynthError
from gensynth.io import save_json
from gensynth.madness.settings import InitialEpochs, ModelSettings, Seed, TrainInitialSettings, TrainSettings
from gensynth.provenance import Provenance
from gensynth.seeding import sha256_seed
from gensynth.steps import add_settings_arguments, settings_from_args

log = logging.getLogger("madness.train_initial")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="real-data NPZ (madness_prepare_data.py)")
    add_settings_arguments(parser, InitialEpochs, "madness")
    add_settings_arguments(parser.add_argument_group("model and noise schedule (madness.model)"), ModelSettings, "madness")
    add_settings_arguments(parser.add_argument_group("training (madness.train)"), TrainSettings, "madness")
    add_settings_arguments(parser, Seed, "madness")
    add_device_arguments(parser)
    parser.add_argument("--out", required=True, help="checkpoint (gensynth.diffusion format)")
    parser.add_argument("--out-info", required=True, help="JSON: losses, sizes, provenance")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    settings = settings_from_args(TrainInitialSettings, args)
    if args.n_epoch < 1:
        raise GensynthError(f"--n-epoch {args.n_epoch}: expected >= 1")
    import numpy as np
    import torch

    from gensynth.device import use_device
    from gensynth.diffusion import build_model, diffusion_trainer, save_model_checkpoint
    from gensynth.madness.data import load_real
    from gensynth.madness.loop import TrainingSet, model_config, resume_file, train, train_config, train_scheduler, trainer_seed

    device = use_device(args)
    provenance = Provenance(vars(args), device)
    real = load_real(args.data)
    cfg = model_config(settings, real.x_train.shape[1:])
    torch.manual_seed(sha256_seed("madness", args.seed, "initial", "init"))  # the model's initial weights
    model = build_model(cfg).to(device)
    scheduler = train_scheduler(settings)
    trainer = diffusion_trainer(model, scheduler, train_config(settings, trainer_seed(args.seed, "initial", 0, -1)))
    data = TrainingSet(torch.from_numpy(real.x_train), torch.from_numpy(real.y_train), 0, np.arange(len(real.y_train)))
    resume = resume_file(args, args.out, {"data": args.data})
    losses = train(trainer, data, args.n_epoch, resume)
    save_model_checkpoint(args.out, model, cfg, scheduler, trainer, extra={"epoch_losses": losses})
    provenance_record = provenance.record({"data": args.data}, {"checkpoint": args.out})
    save_json(args.out_info, {"epoch_losses": losses, "steps": trainer.step, "num_train": len(data.y), "provenance": provenance_record})
    resume.remove()
    log.info("model_initial: %d steps, last epoch loss %.4f", trainer.step, losses[-1])


if __name__ == "__main__":
    exit_main(main)

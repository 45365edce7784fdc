"""Train one unit's model_initial, the class-conditional DDPM on real data that starts every scenario's chains of
the unit (each unit an independent initial model: its own initial weights, batches and noise).

Example: python scripts/madness_train_initial.py --data results/madness/data/real.npz --unit 0 --n-epoch 25 \
    --out results/madness/initial/unit0/model_initial.ckpt --out-info results/madness/initial/unit0/model_initial.json
"""

from __future__ import annotations

import argparse
import logging

from gensynth.cli import add_device_arguments, exit_main
from gensynth.errors import GensynthError
from gensynth.io import save_json
from gensynth.madness.settings import InitialEpochs, ModelSettings, Seed, TrainInitialSettings, TrainSettings
from gensynth.provenance import Provenance
from gensynth.steps import add_settings_arguments, settings_from_args

log = logging.getLogger("madness.train_initial")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="real-data NPZ (madness_prepare_data.py)")
    parser.add_argument("--unit", type=int, default=0, help="which independent initial model (its seeds)")
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
    if args.n_epoch < 1 or args.unit < 0:
        raise GensynthError(f"--n-epoch {args.n_epoch} (>= 1) and --unit {args.unit} (>= 0): out of range")
    import numpy as np
    import torch

    from gensynth.device import use_device
    from gensynth.diffusion import build_model, diffusion_trainer, save_model_checkpoint
    from gensynth.madness.data import load_real
    from gensynth.madness.loop import TrainingSet, initial_seed, model_config, resume_file, train, train_config, train_scheduler

    device = use_device(args)
    provenance = Provenance(vars(args), device)
    real = load_real(args.data)
    cfg = model_config(settings, real.x_train.shape[1:])
    torch.manual_seed(initial_seed(args.seed, args.unit, "init"))  # the model's initial weights
    model = build_model(cfg).to(device)
    scheduler = train_scheduler(settings)
    trainer = diffusion_trainer(model, scheduler, train_config(settings, initial_seed(args.seed, args.unit, "train")))
    data = TrainingSet(torch.from_numpy(real.x_train), torch.from_numpy(real.y_train), 0, np.arange(len(real.y_train)))
    resume = resume_file(args, args.out, {"data": args.data})
    losses = train(trainer, data, args.n_epoch, resume)
    save_model_checkpoint(args.out, model, cfg, scheduler, trainer, extra={"epoch_losses": losses})
    provenance_record = provenance.record({"data": args.data}, {"checkpoint": args.out})
    save_json(args.out_info, {"unit": args.unit, "epoch_losses": losses, "steps": trainer.step, "num_train": len(data.y), "provenance": provenance_record})
    resume.remove()
    log.info("model_initial of unit %d: %d steps, last epoch loss %.4f", args.unit, trainer.step, losses[-1])


if __name__ == "__main__":
    exit_main(main)

"""One generation of a self-consuming loop: train on the scenario's data, save model_{g}_w{w},
sample the next generation's data (N_next) and an evaluation set (N_eval).

Example (generation 1 of full_synthetic at w = 0):
    python scripts/madness_generation.py --scenario full_synthetic --generation 1 --w 0 \
        --real results/madness/data/real.npz \
        --synthetic results/madness/full_synthetic/w0/gen_data_0_w0.npz \
        --prev-model results/madness/full_synthetic/w0/model_0_w0.ckpt --n-epoch 60 --n-next 10 --n-eval 200 \
        --out-model results/madness/full_synthetic/w0/model_1_w0.ckpt ...
"""

from __future__ import annotations

import argparse
import logging

from gensynth.cli import add_device_arguments, exit_main
from gensynth.errors import GensynthError
from gensynth.io import save_json
from gensynth.madness.naming import SCENARIOS
from gensynth.madness.settings import GenerationLoopSettings, GenerationSettings, SamplingSettings, Seed, TrainSettings
from gensynth.provenance import Provenance
from gensynth.steps import add_settings_arguments, settings_from_args

log = logging.getLogger("madness.generation")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=SCENARIOS, required=True)
    parser.add_argument("--generation", type=int, required=True, help="g >= 0")
    parser.add_argument("--w", type=float, required=True, help="guidance weight w of the sampled sets (scale 1 + w)")
    parser.add_argument("--replicate", type=int, default=0, help="which training-seed replicate of the loop (its seeds; 0 = the loop's own)")
    parser.add_argument("--real", required=True, help="real-data NPZ")
    parser.add_argument("--synthetic", required=True, help="the previous generation's samples (initial set for g = 0)")
    parser.add_argument("--prev-model", required=True, help="the previous generation's checkpoint (model_initial for g = 0)")
    parser.add_argument("--n-epoch", type=int, required=True, help="passes over this generation's training data (the scenario's n_epoch)")
    parser.add_argument("--n-next", type=int, required=True, help="images sampled for the next generation (N_next)")
    parser.add_argument("--n-real", type=int, default=0, help="fresh: new real images per generation")
    parser.add_argument(
        "--n-initial", type=int, default=0, help="train on the first N images of --synthetic only (0 = all; the scenario's N_initial, at g = 0)"
    )
    add_settings_arguments(parser, GenerationLoopSettings, "madness")
    add_settings_arguments(parser.add_argument_group("training (madness.train)"), TrainSettings, "madness")
    add_settings_arguments(parser.add_argument_group("sampling (madness.sampling)"), SamplingSettings, "madness")
    add_settings_arguments(parser, Seed, "madness")
    add_device_arguments(parser)
    parser.add_argument("--out-model", required=True)
    parser.add_argument("--out-next", required=True, help="NPZ: the next generation's synthetic data")
    parser.add_argument("--out-eval", required=True, help="NPZ: the evaluation set")
    parser.add_argument("--out-info", required=True, help="JSON: data composition, losses, provenance")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    settings = settings_from_args(GenerationSettings, args)
    counts = (args.n_epoch, args.n_next, args.n_eval)
    if args.generation < 0 or min(counts) < 1 or min(args.n_real, args.n_initial, args.w, args.replicate) < 0:
        raise GensynthError(
            f"--generation {args.generation} (>= 0), --n-epoch {args.n_epoch}, --n-next {args.n_next}, --n-eval {args.n_eval} (>= 1), "
            f"--n-real {args.n_real}, --n-initial {args.n_initial}, --w {args.w} and --replicate {args.replicate} (>= 0): out of range"
        )
    if args.scenario == "fresh" and args.n_real < 1:
        raise GensynthError("--n-real: the fresh scenario adds n_real >= 1 new real images per generation")
    from gensynth.device import use_device
    from gensynth.diffusion import save_model_checkpoint, scheduler_config
    from gensynth.madness.data import load_images, load_real, save_images
    from gensynth.madness.loop import (
        init_seed,
        resume_file,
        sample_images,
        sample_seed_parts,
        sampler_settings,
        starting_trainer,
        train,
        train_config,
        trainer_seed,
        training_set,
    )

    device = use_device(args)
    provenance = Provenance(vars(args), device)
    real = load_real(args.real)
    x_synthetic, y_synthetic = load_images(args.synthetic)
    if args.n_initial:  # image i of a set depends only on its seed: the first N are a set of N
        if args.n_initial > len(y_synthetic):
            raise GensynthError(f"--n-initial {args.n_initial}: {args.synthetic} holds only {len(y_synthetic)} images")
        x_synthetic, y_synthetic = x_synthetic[: args.n_initial], y_synthetic[: args.n_initial]
    data = training_set(args.scenario, args.generation, (x_synthetic, y_synthetic), real, args.n_real, args.seed)
    config = train_config(settings, trainer_seed(args.seed, args.scenario, args.w, args.generation, args.replicate))
    cold_seed = init_seed(args.seed, args.scenario, args.w, args.generation, args.replicate)
    trainer, cfg = starting_trainer(args.prev_model, args.warm_start, config, cold_seed, device)
    inputs = {"real": args.real, "synthetic": args.synthetic, "prev_model": args.prev_model}
    resume = resume_file(args, args.out_model, inputs)
    losses = train(trainer, data, args.n_epoch, resume)
    train_scheduler = trainer.loss.scheduler
    save_model_checkpoint(args.out_model, trainer.model, cfg, train_scheduler, trainer, extra={"epoch_losses": losses})

    sampling = sampler_settings(settings)
    with trainer.ema_weights():  # sample with the weights the checkpoint's users load
        for n, out, purpose in ((args.n_next, args.out_next, "next"), (args.n_eval, args.out_eval, "eval")):
            seed_parts = sample_seed_parts(args.seed, args.scenario, args.w, args.generation, purpose, args.replicate)
            x, y = sample_images(trainer.model, scheduler_config(train_scheduler), n, args.w, sampling, *seed_parts)
            save_images(out, x, y)
    save_json(
        args.out_info,
        {
            "scenario": args.scenario,
            "generation": args.generation,
            "w": args.w,
            "replicate": args.replicate,
            "warm_start": args.warm_start,
            "n_synthetic": data.n_synthetic,
            "n_real": len(data.real_indices),
            "real_indices": data.real_indices.tolist() if args.scenario == "fresh" else None,
            "steps": trainer.step,
            "epoch_losses": losses,
            "provenance": provenance.record(inputs, {"model": args.out_model, "next": args.out_next, "eval": args.out_eval}),
        },
    )
    resume.remove()
    log.info(
        "%s generation %d (w=%g): %d synthetic + %d real images, %d steps, last loss %.4f",
        args.scenario,
        args.generation,
        args.w,
        data.n_synthetic,
        len(data.real_indices),
        trainer.step,
        losses[-1],
    )


if __name__ == "__main__":
    exit_main(main)

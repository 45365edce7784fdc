"""One generation of one chain (a unit's replicate) of a loop: train on the scenario's data, save model_{g}_w{w},
sample the next generation's data (N_next) and an evaluation set (N_eval).

Every generation trains on the first N_next images of --synthetic (generation 0: of the unit's initial set),
plus the scenario's real images; matched_real trains on N_next (--n-real) new real images instead, and takes
no --synthetic. Example (generation 1 of full_synthetic at w = 0, unit 0, replicate 1):
    python scripts/madness_generation.py --scenario full_synthetic --generation 1 --w 0 --unit 0 --replicate 1 \
        --real results/madness/data/real.npz \
        --synthetic results/madness/full_synthetic/w0/unit0/rep1/gen_data_0_w0.npz \
        --prev-model results/madness/full_synthetic/w0/unit0/rep1/model_0_w0.ckpt --n-epoch 60 --n-next 10 --n-eval 200 \
        --out-model results/madness/full_synthetic/w0/unit0/rep1/model_1_w0.ckpt ...
"""

from __future__ import annotations

import argparse
import logging

from gensynth.cli import add_device_arguments, exit_main
from gensynth.errors import GensynthError
from gensynth.io import save_json
from gensynth.madness.naming import NEW_REAL_IMAGES, SCENARIOS
from gensynth.madness.settings import GenerationLoopSettings, GenerationSettings, SamplingSettings, Seed, TrainSettings
from gensynth.provenance import Provenance
from gensynth.steps import add_settings_arguments, settings_from_args

log = logging.getLogger("madness.generation")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=SCENARIOS, required=True)
    parser.add_argument("--generation", type=int, required=True, help="g >= 0")
    parser.add_argument("--w", type=float, required=True, help="guidance weight w of the sampled sets (scale 1 + w)")
    parser.add_argument("--unit", type=int, default=0, help="which independent initial model the chain starts from (its seeds, its real draws)")
    parser.add_argument("--replicate", type=int, default=0, help="which training-seed replicate of the loop within the unit (its seeds)")
    parser.add_argument("--real", required=True, help="real-data NPZ")
    parser.add_argument(
        "--synthetic", help="the previous generation's samples (the unit's initial set for g = 0); trains on its first N_next; none for matched_real"
    )
    parser.add_argument("--prev-model", required=True, help="the previous generation's checkpoint (the unit's model_initial for g = 0)")
    parser.add_argument("--n-epoch", type=int, required=True, help="passes over this generation's training data (the scenario's n_epoch)")
    parser.add_argument("--n-next", type=int, required=True, help="images sampled for the next generation, and synthetic images trained on (N_next)")
    parser.add_argument("--n-real", type=int, default=0, help="fresh, matched_real: new real images per generation")
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
    if args.generation < 0 or min(counts) < 1 or min(args.n_real, args.w, args.unit, args.replicate) < 0:
        raise GensynthError(
            f"--generation {args.generation} (>= 0), --n-epoch {args.n_epoch}, --n-next {args.n_next}, --n-eval {args.n_eval} (>= 1), "
            f"--n-real {args.n_real}, --w {args.w}, --unit {args.unit} and --replicate {args.replicate} (>= 0): out of range"
        )
    if args.scenario in NEW_REAL_IMAGES and args.n_real < 1:
        raise GensynthError(f"--n-real: the {args.scenario} scenario trains on n_real >= 1 new real images per generation")
    if (args.synthetic is None) != (args.scenario == "matched_real"):
        raise GensynthError(
            f"--synthetic: {args.scenario} trains on real images only, it takes none"
            if args.synthetic
            else f"--synthetic: {args.scenario} trains on the previous generation's samples (the unit's initial set for g = 0): give their NPZ"
        )
    from gensynth.device import use_device
    from gensynth.diffusion import save_model_checkpoint, scheduler_config
    from gensynth.madness.data import load_images, load_real, save_images
    from gensynth.madness.loop import (
        first_images,
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
    synthetic = None if args.synthetic is None else first_images(load_images(args.synthetic), args.n_next, args.synthetic)
    data = training_set(args.scenario, args.generation, synthetic, real, args.n_real, args.seed, args.unit)
    chain = (args.seed, args.scenario, args.w, args.unit, args.replicate)
    config = train_config(settings, trainer_seed(*chain, args.generation))
    trainer, cfg = starting_trainer(args.prev_model, args.warm_start, config, init_seed(*chain, args.generation), device)
    inputs = {"real": args.real, "prev_model": args.prev_model, **({"synthetic": args.synthetic} if args.synthetic else {})}
    resume = resume_file(args, args.out_model, inputs)
    losses = train(trainer, data, args.n_epoch, resume)
    train_scheduler = trainer.loss.scheduler
    save_model_checkpoint(args.out_model, trainer.model, cfg, train_scheduler, trainer, extra={"epoch_losses": losses})

    sampling = sampler_settings(settings)
    with trainer.ema_weights():  # sample with the weights the checkpoint's users load
        for n, out, purpose in ((args.n_next, args.out_next, "next"), (args.n_eval, args.out_eval, "eval")):
            seed_parts = sample_seed_parts(*chain, args.generation, purpose)
            x, y = sample_images(trainer.model, scheduler_config(train_scheduler), n, args.w, sampling, *seed_parts)
            save_images(out, x, y)
    save_json(
        args.out_info,
        {
            "scenario": args.scenario,
            "generation": args.generation,
            "w": args.w,
            "unit": args.unit,
            "replicate": args.replicate,
            "warm_start": args.warm_start,
            "n_synthetic": data.n_synthetic,
            "n_real": len(data.real_indices),
            "real_indices": data.real_indices.tolist() if args.scenario in NEW_REAL_IMAGES else None,
            "steps": trainer.step,
            "epoch_losses": losses,
            "provenance": provenance.record(inputs, {"model": args.out_model, "next": args.out_next, "eval": args.out_eval}),
        },
    )
    resume.remove()
    log.info(
        "%s generation %d (w=%g, unit %d, replicate %d): %d synthetic + %d real images, %d steps, last loss %.4f",
        args.scenario,
        args.generation,
        args.w,
        args.unit,
        args.replicate,
        data.n_synthetic,
        len(data.real_indices),
        trainer.step,
        losses[-1],
    )


if __name__ == "__main__":
    exit_main(main)

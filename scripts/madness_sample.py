"""Sample a set of images from a unit's model_initial (the unit's initial synthetic data, per w).

Labels cycle 0..9; image i comes from its own seed (the unit, the tag, w and i), so a set is the same in any
batch size. Example: python scripts/madness_sample.py --model results/madness/initial/unit0/model_initial.ckpt \
    --unit 0 --n-with-w 500 --w 0 --out results/madness/initial/unit0/gen_data_initial_w0.npz
"""

from __future__ import annotations

import argparse
import logging

from gensynth.cli import add_device_arguments, exit_main
from gensynth.errors import GensynthError
from gensynth.io import save_json
from gensynth.madness.settings import InitialSetSize, SamplingSettings, Seed
from gensynth.provenance import Provenance
from gensynth.steps import add_settings_arguments, settings_from_args

log = logging.getLogger("madness.sample")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="checkpoint (its EMA weights are used)")
    parser.add_argument("--unit", type=int, default=0, help="the unit whose model_initial --model is (the set's seeds)")
    add_settings_arguments(parser, InitialSetSize, "madness")
    parser.add_argument("--w", type=float, required=True, help="guidance weight w (guidance scale 1 + w)")
    parser.add_argument("--tag", default="initial", help="names the set in its seeds")
    add_settings_arguments(parser.add_argument_group("sampling (madness.sampling)"), SamplingSettings, "madness")
    add_settings_arguments(parser, Seed, "madness")
    add_device_arguments(parser)
    parser.add_argument("--out", required=True, help="NPZ with x (N, C, S, S) in [-1, 1] and y (N,)")
    parser.add_argument("--out-info", required=True, help="JSON sidecar with provenance")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.n_with_w < 1 or args.w < 0 or args.unit < 0:
        raise GensynthError(f"--n-with-w {args.n_with_w} (>= 1), --w {args.w} and --unit {args.unit} (>= 0): out of range")
    from gensynth.device import use_device
    from gensynth.diffusion import load_model_checkpoint
    from gensynth.madness.data import save_images
    from gensynth.madness.loop import initial_set_parts, sample_images, sampler_settings

    device = use_device(args)
    provenance = Provenance(vars(args), device)
    model = load_model_checkpoint(args.model, device=device)
    sampling = sampler_settings(settings_from_args(SamplingSettings, args))
    x, y = sample_images(model.model, model.scheduler_config, args.n_with_w, args.w, sampling, *initial_set_parts(args.seed, args.unit, args.tag, args.w))
    save_images(args.out, x, y)
    save_json(args.out_info, {"unit": args.unit, "n": args.n_with_w, "w": args.w, "provenance": provenance.record({"model": args.model}, {"npz": args.out})})
    log.info("unit %d: sampled %d images at w=%g", args.unit, args.n_with_w, args.w)


if __name__ == "__main__":
    exit_main(main)

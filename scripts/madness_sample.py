"""Sample a set of images from a madness checkpoint (the initial synthetic data, per w).

Labels cycle 0..9; image i comes from its own seed, so a set is the same in any batch size.
Example: python scripts/madness_sample.py --model results/madness/initial/model_initial.ckpt \
    --n-with-w 500 --w 0 --out results/madness/initial/gen_data_initial_w0.npz
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
    if args.n_with_w < 1 or args.w < 0:
        raise GensynthError(f"--n-with-w {args.n_with_w} (>= 1) and --w {args.w} (>= 0): out of range")
    from gensynth.device import use_device
    from gensynth.diffusion import load_model_checkpoint
    from gensynth.madness.data import save_images
    from gensynth.madness.loop import sample_images, sample_seed_parts, sampler_settings

    device = use_device(args)
    provenance = Provenance(vars(args), device)
    model = load_model_checkpoint(args.model, device=device)
    sampling = sampler_settings(settings_from_args(SamplingSettings, args))
    x, y = sample_images(model.model, model.scheduler_config, args.n_with_w, args.w, sampling, *sample_seed_parts(args.seed, args.tag, args.w, -1, "data"))
    save_images(args.out, x, y)
    save_json(args.out_info, {"n": args.n_with_w, "w": args.w, "provenance": provenance.record({"model": args.model}, {"npz": args.out})})
    log.info("sampled %d images at w=%g", args.n_with_w, args.w)


if __name__ == "__main__":
    exit_main(main)

"""One unit's Jacobian probe set: real test images noised at fixed timesteps with fixed noise, made once per unit
(the unit in the seeds of the images' choice and of the noise).

Example: python scripts/madness_make_probes.py --data results/madness/data/real.npz --unit 0 --num-images 6 \
    --timesteps 50 250 --out results/madness/probes/unit0.npz
"""

from __future__ import annotations

import argparse
import logging

from gensynth.cli import exit_main
from gensynth.errors import GensynthError
from gensynth.io import save_npz
from gensynth.madness.settings import MakeProbesSettings
from gensynth.steps import add_settings_arguments

log = logging.getLogger("madness.make_probes")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="real-data NPZ")
    parser.add_argument("--unit", type=int, default=0, help="which independent initial model the probes are of (their seeds)")
    add_settings_arguments(parser, MakeProbesSettings, "madness")
    parser.add_argument("--out", required=True, help="NPZ: x_t, timesteps, labels, image_index, x0, noise")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.num_images < 1 or args.unit < 0:
        raise GensynthError(f"--num-images {args.num_images} (>= 1) and --unit {args.unit} (>= 0): out of range")
    from gensynth.madness.data import load_real
    from gensynth.madness.probes import make_probes

    probes = make_probes(load_real(args.data), args.num_images, args.timesteps, args.n_t, args.beta_start, args.beta_end, args.seed, args.unit)
    save_npz(args.out, probes)
    log.info("unit %d: %d probes (%d images x timesteps %s)", args.unit, len(probes["timesteps"]), args.num_images, args.timesteps)


if __name__ == "__main__":
    exit_main(main)

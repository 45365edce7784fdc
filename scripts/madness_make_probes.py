"""The Jacobian probe set: real test images noised at fixed timesteps with fixed noise, made once per run.

Example: python scripts/madness_make_probes.py --data results/madness/data/real.npz --num-images 6 \
    --timesteps 50 250 --out results/madness/probes/probes.npz
"""

from __future__ import annotations

import argparse
import logging

from gensynth.cli import exit_main
from gensynth.config import schema_default
from gensynth.errors import GensynthError
from gensynth.io import save_npz

log = logging.getLogger("madness.make_probes")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="real-data NPZ")
    parser.add_argument("--num-images", type=int, default=schema_default("madness", "jacobian.num_images"), help="test images (classes in turn)")
    parser.add_argument("--timesteps", type=int, nargs="+", default=schema_default("madness", "jacobian.timesteps"), help="diffusion timesteps of the probes")
    parser.add_argument("--n-t", type=int, default=schema_default("madness", "model.n_T"), help="the models' number of diffusion timesteps n_T")
    parser.add_argument("--beta-start", type=float, default=schema_default("madness", "model.beta_start"))
    parser.add_argument("--beta-end", type=float, default=schema_default("madness", "model.beta_end"))
    parser.add_argument("--seed", type=int, default=schema_default("madness", "seed"))
    parser.add_argument("--out", required=True, help="NPZ: x_t, timesteps, labels, image_index, x0, noise")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.num_images < 1:
        raise GensynthError(f"--num-images {args.num_images}: expected >= 1")
    from gensynth.madness.data import load_real
    from gensynth.madness.probes import make_probes

    probes = make_probes(load_real(args.data), args.num_images, args.timesteps, args.n_t, args.beta_start, args.beta_end, args.seed)
    save_npz(args.out, probes)
    log.info("%d probes (%d images x timesteps %s)", len(probes["timesteps"]), args.num_images, args.timesteps)


if __name__ == "__main__":
    exit_main(main)

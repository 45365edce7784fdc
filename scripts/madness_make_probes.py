"""The Jacobian probe set: real test images noised at fixed timesteps with fixed noise, made once per run.

Example: python scripts/madness_make_probes.py --data results/madness/data/real.npz --num-images 6 \
    --timesteps 50 250 --out results/madness/probes/probes.npz
"""

from __future__ import annotations

import argparse
import logging
import sys

from gensynth.cli import run_main
from gensynth.errors import GensynthError
from gensynth.io import save_npz
from gensynth.madness.data import load_real
from gensynth.madness.probes import make_probes

log = logging.getLogger("madness.make_probes")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="real-data NPZ")
    parser.add_argument("--num-images", type=int, required=True, help="test images (classes in turn)")
    parser.add_argument("--timesteps", type=int, nargs="+", required=True, help="diffusion timesteps of the probes")
    parser.add_argument("--n-T", type=int, default=500, help="the models' number of diffusion timesteps")
    parser.add_argument("--beta-start", type=float, default=1e-4)
    parser.add_argument("--beta-end", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="NPZ: x_t, timesteps, labels, image_index, x0, noise")
    args = parser.parse_args(argv)
    if args.num_images < 1:
        raise GensynthError(f"--num-images {args.num_images}: expected >= 1")
    probes = make_probes(load_real(args.data), args.num_images, args.timesteps, args.n_T, args.beta_start, args.beta_end, args.seed)
    save_npz(args.out, probes)
    log.info("%d probes (%d images x timesteps %s)", len(probes["timesteps"]), args.num_images, args.timesteps)


if __name__ == "__main__":
    sys.exit(run_main(main))

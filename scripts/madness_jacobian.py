"""A generation's Jacobian spectrum: eigenvalues of J^T J, J = d eps_theta(x_t, t, y) / d x_t, at every probe.

Saves all eigenvalues (exact) or the top k (lanczos) per probe, and each probe's summary
statistics (trace, top, participation ratio, effective rank, spectral entropy). Example:
    python scripts/madness_jacobian.py --model results/madness/fresh/w0/model_2_w0.ckpt \
        --probes results/madness/probes/probes.npz --out results/madness/fresh/w0/jacobian_2_w0.npz
"""

from __future__ import annotations

import argparse
import logging
import sys

import numpy as np
import torch

from gensynth.cli import run_main
from gensynth.config import schema_default
from gensynth.device import add_device_arguments, use_device
import gensynth.madness.context_unet  # noqa: F401  (registers the seed's architecture: checkpoints may hold it)
from gensynth.diffusion import load_model_checkpoint
from gensynth.errors import GensynthError
from gensynth.io import save_npz
from gensynth.madness.detection import JACOBIAN_STATS
from gensynth.madness.jacobian import METHODS, jacobian_spectrum, spectrum_stats
from gensynth.madness.probes import load_probes

log = logging.getLogger("madness.jacobian")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="checkpoint (its EMA weights: the model that sampled)")
    parser.add_argument("--probes", required=True, help="probe NPZ (madness_make_probes.py)")
    parser.add_argument("--method", choices=METHODS, default=schema_default("madness", "jacobian.method"),
                        help="auto: exact up to 1,024 dimensions, else lanczos")
    parser.add_argument("--k", type=int, default=schema_default("madness", "jacobian.k"), help="eigenvalues per probe for lanczos")
    add_device_arguments(parser)
    parser.add_argument("--out", required=True, help="NPZ: eigenvalues (P, K), timesteps, labels, image_index, one array per statistic")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.k < 1:
        raise GensynthError(f"--k {args.k}: expected >= 1")
    device = use_device(args)
    unet = load_model_checkpoint(args.model, device=device).model
    probes = load_probes(args.probes)
    eigenvalues = jacobian_spectrum(
        unet, torch.from_numpy(probes["x_t"]).to(device), torch.from_numpy(probes["timesteps"]),
        torch.from_numpy(probes["labels"]), method=args.method, k=args.k,
    )  # (P, K) descending
    stats = [spectrum_stats(row) for row in eigenvalues]
    save_npz(args.out, {
        "eigenvalues": eigenvalues,
        "timesteps": probes["timesteps"],
        "labels": probes["labels"],
        "image_index": probes["image_index"],
        **{name: np.array([s[name] for s in stats]) for name in JACOBIAN_STATS},
    })
    for t in np.unique(probes["timesteps"]):
        at_t = probes["timesteps"] == t
        log.info("t=%d: mean trace %.4g, mean effective rank %.2f", t, np.mean([s["trace"] for s, m in zip(stats, at_t) if m]),
                 np.mean([s["effective_rank"] for s, m in zip(stats, at_t) if m]))


if __name__ == "__main__":
    sys.exit(run_main(main))

"""One chain's Jacobian spectra: eigenvalues of J^T J, J = d eps_theta(x_t, t, y) / d x_t, at every probe,
for the model of every generation (one job per chain: the models load in one process).

Saves all eigenvalues (exact) or the top k (lanczos) per generation and probe, and each probe's summary
statistics (trace, top, participation ratio, effective rank, spectral entropy). Example:
    python scripts/madness_jacobian.py --models results/madness/fresh/w0/unit0/rep0/model_{0,1,2,3,4}_w0.ckpt \
        --probes results/madness/probes/unit0.npz --out results/madness/fresh/w0/unit0/rep0/jacobian_w0.npz
"""

from __future__ import annotations

import argparse
import logging

from gensynth.cli import add_device_arguments, exit_main
from gensynth.errors import GensynthError
from gensynth.io import save_npz
from gensynth.madness.settings import JacobianSettings
from gensynth.steps import add_settings_arguments

log = logging.getLogger("madness.jacobian")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", required=True, help="the chain's checkpoints, generations 0, 1, ... (their EMA weights sampled)")
    parser.add_argument("--probes", required=True, help="the chain's unit's probe NPZ (madness_make_probes.py)")
    add_settings_arguments(parser, JacobianSettings, "madness")
    add_device_arguments(parser)
    parser.add_argument("--out", required=True, help="NPZ: eigenvalues (G, P, K) and one (G, P) array per statistic; timesteps, labels, image_index (P,)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.k < 1:
        raise GensynthError(f"--k {args.k}: expected >= 1")
    import numpy as np
    import torch

    import gensynth.madness.context_unet  # noqa: F401  (registers the group's architecture: checkpoints may hold it)
    from gensynth.device import use_device
    from gensynth.diffusion import load_model_checkpoint
    from gensynth.madness.jacobian import STAT_NAMES, jacobian_spectrum, spectrum_stats
    from gensynth.madness.probes import load_probes

    device = use_device(args)
    probes = load_probes(args.probes)
    x_t, timesteps, labels = (torch.from_numpy(probes[name]) for name in ("x_t", "timesteps", "labels"))
    eigenvalues, stats = [], {name: [] for name in STAT_NAMES}
    for g, path in enumerate(args.models):
        model = load_model_checkpoint(path, device=device).model
        spectrum = jacobian_spectrum(model, x_t.to(device), timesteps, labels, method=args.method, k=args.k)  # (P, K) descending
        per_probe = [spectrum_stats(row) for row in spectrum]
        for name in STAT_NAMES:
            stats[name].append([s[name] for s in per_probe])
        eigenvalues.append(spectrum)
        at = {int(t): probes["timesteps"] == t for t in np.unique(probes["timesteps"])}
        log.info("generation %d: %s", g, ", ".join(f"t={t} mean effective rank {np.mean(np.array(stats['effective_rank'][-1])[m]):.2f}" for t, m in at.items()))
    save_npz(
        args.out,
        {
            "eigenvalues": np.stack(eigenvalues),  # (G, P, K)
            "timesteps": probes["timesteps"],
            "labels": probes["labels"],
            "image_index": probes["image_index"],
            **{name: np.array(values) for name, values in stats.items()},  # (G, P)
        },
    )


if __name__ == "__main__":
    exit_main(main)

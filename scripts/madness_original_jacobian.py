"""The Jacobian spectra of the group's own DDPM-MNIST checkpoints: eigenvalues of J^T J, J = d eps(x_t, t, y) / d x_t,
for every generation of one w, on probes made as the group's models take them.

Each checkpoint (``model_{g}_w{w}.pth``, ``torch.save(ddpm.state_dict())``) loads with ``weights_only=True``
into gensynth's ContextUnet with the group's conventions (gensynth.madness.original). The probes are the
module's probe images of unit 0 (the same seeded choice from the real test split), back in [0, 1] and noised with
the group's schedule, ``x_t = sqrtab[t] x0 + sqrtmab[t] eps``; they are saved as fed to the models.
Example:
    python scripts/madness_original_jacobian.py --models originals/model_{0,1,2}_w0.0.pth --generations 0 1 2 \\
        --real results/madness/data/real.npz --n-feat 128 --n-t 500 --out results/madness/original/w0.0/jacobian_w0.0.npz
"""

from __future__ import annotations

import argparse
import logging

from gensynth.cli import add_device_arguments, exit_main
from gensynth.errors import GensynthError
from gensynth.io import save_npz
from gensynth.madness.original_layout import MODEL_FILE, generations_of
from gensynth.madness.settings import OriginalJacobianSettings
from gensynth.steps import add_settings_arguments, settings_from_args

log = logging.getLogger("madness.original_jacobian")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", required=True, help="the group's model_{g}_w{w}.pth files of one w, generations in order")
    parser.add_argument("--generations", nargs="+", type=int, help="their generations (default: read from the file names)")
    parser.add_argument("--real", required=True, help="real-data NPZ at 28x28 (its test split gives the probe images)")
    add_settings_arguments(parser, OriginalJacobianSettings, "madness")
    add_device_arguments(parser)
    parser.add_argument(
        "--out",
        required=True,
        help="NPZ: eigenvalues (G, P, D), a (G, P) array per statistic; generations (G,); x_t, x0, noise (P, 1, 28, 28); timesteps, labels, image_index (P,)",
    )
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    settings = settings_from_args(OriginalJacobianSettings, args)
    generations = generations_of(args.models, args.generations, MODEL_FILE, "--models")
    if settings.k < 1 or settings.num_images < 1 or not settings.betas[0] < settings.betas[1]:
        raise GensynthError(f"--k {settings.k} (>= 1), --num-images {settings.num_images} (>= 1), --betas {list(settings.betas)} (increasing): out of range")
    import numpy as np
    import torch

    from gensynth.device import use_device
    from gensynth.madness.data import load_real
    from gensynth.madness.jacobian import STAT_NAMES, jacobian_spectrum, spectrum_stats
    from gensynth.madness.original import load_original, original_probes

    device = use_device(args)
    probes = original_probes(load_real(args.real), settings.num_images, list(settings.timesteps), settings.n_t, settings.betas, settings.seed)
    x_t, timesteps, labels = (torch.from_numpy(probes[name]) for name in ("x_t", "timesteps", "labels"))
    eigenvalues, stats = [], {name: [] for name in STAT_NAMES}
    for g, path in zip(generations, args.models):
        model = load_original(path, settings.n_feat, settings.n_classes, settings.n_t, settings.betas).to(device)
        spectrum = jacobian_spectrum(model, x_t.to(device), timesteps, labels, method=settings.method, k=settings.k)  # (P, D) descending
        per_probe = [spectrum_stats(row) for row in spectrum]
        for name in STAT_NAMES:
            stats[name].append([s[name] for s in per_probe])
        eigenvalues.append(spectrum)
        log.info(
            "generation %d: mean effective rank %s",
            g,
            ", ".join(f"t={t} {np.mean(np.array(stats['effective_rank'][-1])[probes['timesteps'] == t]):.2f}" for t in settings.timesteps),
        )
    save_npz(
        args.out,
        {
            "eigenvalues": np.stack(eigenvalues),  # (G, P, D)
            "generations": np.array(generations, dtype=np.int64),
            **probes,  # x_t as fed to the models; x0, noise; timesteps, labels, image_index
            **{name: np.array(values) for name, values in stats.items()},  # (G, P)
        },
    )


if __name__ == "__main__":
    exit_main(main)

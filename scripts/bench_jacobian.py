"""Benchmark the Jacobian spectrum: exact (all eigenvalues) against matrix-free Lanczos (top k).

At each size, the same small UNet (``gensynth.diffusion.build_model``: 32/64/64 channels,
single-head attention on the second and third levels, class embeddings; random weights from --seed) and
one probe ``x_t ~ N(0, I)`` at --timestep. Prints time, products and the top-k's largest
relative error against exact where exact runs (sizes up to --exact-max).

Exact's time is also projected at every size from measured pieces (Jacobian row = one
vector-Jacobian product, as the exact method batches them):

    forward + D x (seconds per row, from one vmapped backward pass of --projection-rows rows)
            + SVD (timed at n0 = min(D, 2048) and scaled by (D / n0)^3)

For sizes in --lanczos-projected, Lanczos is not run to the end either: its seconds per
``J^T J v`` product are measured (--timed-products of them) and multiplied by
--assumed-products (a count measured at that size elsewhere, e.g. on a GPU, where the run is
short; the count does not depend on the device).

    python scripts/bench_jacobian.py --sizes 16 28 64 128 --exact-max 64 --threads 2
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch
from torch.func import vjp, vmap

from gensynth.cli import exit_main
from gensynth.device import pick_device
from gensynth.diffusion import UNetConfig, build_model
from gensynth.madness.jacobian import LANCZOS_TOL, denoiser, exact_spectrum, gram_operator, jacobian_ready, lanczos_spectrum
from gensynth.seeding import torch_generator

SVD_REFERENCE_DIM = 2048


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, function, *args, **kwargs):
    synchronize(device)
    start = time.perf_counter()
    result = function(*args, **kwargs)
    synchronize(device)
    return result, time.perf_counter() - start


def small_unet(size: int, seed: int, device: torch.device):
    torch.manual_seed(seed)
    return build_model(UNetConfig(sample_size=size, in_channels=1, out_channels=1, num_classes=10)).to(device).eval()


def project_exact_seconds(unet, probe, timestep, label, rows: int, device: torch.device) -> dict:
    """Exact's time from its pieces: one forward, D rows (vector-Jacobian products), one SVD."""
    dim = probe.numel()
    with jacobian_ready(unet):
        (_, rows_fn), forward_s = timed(device, vjp, denoiser(unet, timestep, label), probe)
        basis = torch.eye(dim, device=device)[:rows].reshape(rows, *probe.shape)  # (R, C, H, W)
        vmap(rows_fn)(basis[:1])  # warm-up
        _, rows_s = timed(device, vmap(rows_fn), basis)
    n0 = min(dim, SVD_REFERENCE_DIM)
    matrix = torch.randn(n0, n0, generator=torch_generator(0), dtype=torch.float64).to(device)
    _, svd_s = timed(device, torch.linalg.svdvals, matrix)
    per_row = rows_s / rows
    return {"row_s": per_row, "projected_exact_s": forward_s + dim * per_row + svd_s * (dim / n0) ** 3}


def time_products(unet, probe, timestep, label, count: int, device: torch.device) -> float:
    """Seconds per J^T J v product (after one warm-up product)."""
    generator = np.random.default_rng(0)
    with jacobian_ready(unet):
        operator = gram_operator(unet, probe, timestep, label)
        operator.matvec(generator.standard_normal(probe.numel()))
        _, seconds = timed(device, lambda: [operator.matvec(generator.standard_normal(probe.numel())) for _ in range(count)])
    return seconds / count


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 28, 64, 128], help="image sizes (H = W, one channel)")
    parser.add_argument("--k", type=int, default=50, help="top eigenvalues for Lanczos")
    parser.add_argument("--exact-max", type=int, default=64, help="run exact only up to this size")
    parser.add_argument("--lanczos-projected", type=int, nargs="*", default=[], help="sizes where Lanczos time is projected, not run")
    parser.add_argument("--assumed-products", type=int, default=0, help="products a projected Lanczos run takes (measured elsewhere)")
    parser.add_argument("--timed-products", type=int, default=3, help="products timed for a projected Lanczos run")
    parser.add_argument("--projection-rows", type=int, default=8, help="Jacobian rows timed to project exact's time")
    parser.add_argument("--rows-per-pass", type=int, help="exact: Jacobian rows per backward pass (default: by size)")
    parser.add_argument("--tol", type=float, default=LANCZOS_TOL, help="Lanczos residual tolerance")
    parser.add_argument("--timestep", type=int, default=250)
    parser.add_argument("--label", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda or mps")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="also write the table as CSV here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    print(f"device {device}, torch threads {torch.get_num_threads()}, k = {args.k}, timestep {args.timestep}", flush=True)

    rows = []
    for size in args.sizes:
        unet = small_unet(size, args.seed, device)
        probe = torch.randn(1, 1, size, size, generator=torch_generator(args.seed)).to(device)  # (1, C, H, W)
        timestep = torch.tensor([args.timestep], device=device)
        label = torch.tensor([args.label], device=device)
        row = {"size": size, "dim": size * size}
        row.update(project_exact_seconds(unet, probe[0], timestep[0], label[0], args.projection_rows, device))

        if size in args.lanczos_projected:
            row["product_s"] = time_products(unet, probe[0], timestep[0], label[0], args.timed_products, device)
            row["products"] = args.assumed_products
            row["lanczos_s"] = row["product_s"] * args.assumed_products
            row["lanczos"] = "projected"
            top = None
        else:
            counts: list[int] = []
            top, row["lanczos_s"] = timed(device, lanczos_spectrum, unet, probe, timestep, label, k=args.k, tol=args.tol, products=counts)
            row["products"] = counts[0]
            row["product_s"] = row["lanczos_s"] / counts[0]
            row["lanczos"] = "measured"

        if size <= args.exact_max:
            exact, row["exact_s"] = timed(device, exact_spectrum, unet, probe, timestep, label, rows_per_pass=args.rows_per_pass)
            if top is not None:
                row["max_rel_err"] = float(np.max(np.abs(top[0] - exact[0, : args.k]) / exact[0, : args.k]))
            row["top"] = float(exact[0, 0])
            row["kth"] = float(exact[0, args.k - 1])
        row["speedup"] = row.get("exact_s", row["projected_exact_s"]) / row["lanczos_s"]
        rows.append(row)
        print(" ".join(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}" for key, value in row.items()), flush=True)
        del unet

    columns = ["size", "dim", "exact_s", "projected_exact_s", "row_s", "lanczos", "lanczos_s", "products", "product_s", "speedup", "max_rel_err", "top", "kth"]
    table = pd.DataFrame(rows).reindex(columns=columns)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-"))
    if args.out:
        table.to_csv(args.out, index=False)
    return 0


if __name__ == "__main__":
    exit_main(main)

"""Benchmark the MambaUV forward pass: the project's fused scan against mambapy 1.2's two scans, in one run.

mambapy's ``Mamba`` with its default parallel scan (``pscan=True``) and with its sequential loop
(``pscan=False``), and the project's causal ``MambaStack`` with the fused scan, all three holding the
same weights (copied), run on one random input (batch, length, d_model); each prints spectra/s (the
median of --repeats forward passes), its largest |difference| to mambapy's parallel-scan output, and
the speedups. Then the spectra/s of the full MambaUV (the pipeline's default config, bidirectional)
forward, and of one training step (forward and backward), with the fused scan. The first line is the
fused kernels' first-call time (numba's compile, or its cache load when the cache is warm).

    python scripts/bench_denoise.py --batch 128 --length 601 --d-model 64 --layers 4 --repeats 3 --threads 2

With --manifest-data (the default run's results/denoise/data) and --checkpoint, two end-to-end figures on
that data, I/O included: the whole scripts/run_denoise_from_manifest.py command (interpreter start and
imports too), and the manifest run alone (gensynth.denoise.inference.manifest_throughput).

    python scripts/bench_denoise.py --skip-mambapy --manifest-data results/denoise/data \
        --checkpoint results/denoise/checkpoints/promoted/mamba_tiny_uv_best.pt
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from gensynth.cli import add_device_arguments, exit_main
from gensynth.denoise import scan
from gensynth.denoise.mamba import MambaStack, MambaUV, MambaUVConfig
from gensynth.device import use_device
from gensynth.errors import GensynthError
from gensynth.io import save_json
from gensynth.provenance import Provenance
from gensynth.seeding import sha256_seed, torch_generator

EQUAL_TOLERANCE = 1e-4
DOSE_DIM = 8  # dose features of the benchmark's MambaUV (the FiLM input; its cost hardly depends on it)


@dataclass
class Figure:
    name: str
    spectra_per_s: float
    max_abs_diff: float | None = None  # to mambapy's parallel-scan output, where comparable


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128, help="spectra per forward pass")
    parser.add_argument("--length", type=int, default=601, help="wavelength points per spectrum")
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3, help="timed forward passes per model (the median is reported)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-mambapy", action="store_true", help="time only the project's models (mambapy's take minutes)")
    parser.add_argument("--manifest-data", type=Path, help="a denoise data folder (manifest_full.csv, spectra/, metadata/) for the end-to-end figures")
    parser.add_argument("--checkpoint", type=Path, help="the checkpoint the end-to-end figures denoise with")
    parser.add_argument("--out", help="also write the figures as JSON (with provenance) here")
    add_device_arguments(parser)
    parser.set_defaults(threads=2, device="cpu")
    return parser


def median_seconds(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@torch.no_grad()
def forward_figure(name: str, model, inputs, reference: torch.Tensor | None, args) -> tuple[Figure, torch.Tensor]:
    """The figure and the output; the untimed first call that gives the output also warms caches and allocator."""
    output = model(*inputs)
    diff = None if reference is None else (output - reference).abs().max().item()
    seconds = median_seconds(lambda: model(*inputs), args.repeats)
    return Figure(name, args.batch / seconds, diff), output


def training_figure(model: MambaUV, spectra: torch.Tensor, dose: torch.Tensor, kernels: str, args) -> Figure:
    def step():
        model.zero_grad(set_to_none=True)
        (model(spectra, dose) - spectra).square().mean().backward()

    step()  # warm
    return Figure(f"MambaUV training step (forward + backward), {kernels} kernels", args.batch / median_seconds(step, args.repeats))


def end_to_end_figures(args, device) -> list[Figure]:
    """The whole script on the manifest (a fresh output tree, so every file is denoised), and the run alone."""
    from gensynth.denoise.inference import manifest_throughput

    data = args.manifest_data
    files = dict(
        manifest=data / "manifest_full.csv", root=data / "spectra", dose_csv=data / "metadata/dose_features.csv", dose_stats=data / "metadata/dose_stats.json"
    )
    run = manifest_throughput(
        files["manifest"], files["root"], args.checkpoint, files["dose_csv"], files["dose_stats"], batch_size=args.batch, num_workers=1, device=str(device)
    )
    with tempfile.TemporaryDirectory() as out:
        command = [
            sys.executable,
            str(Path(__file__).with_name("run_denoise_from_manifest.py")),
            "--manifest",
            str(files["manifest"]),
            "--root-dir",
            str(files["root"]),
            "--checkpoint",
            str(args.checkpoint),
            "--output-root",
            out,
            "--dose-features-csv",
            str(files["dose_csv"]),
            "--dose-stats-json",
            str(files["dose_stats"]),
            "--batch-size",
            str(args.batch),
            "--num-workers",
            "1",
            "--device",
            str(device),
        ]
        start = time.perf_counter()
        done = subprocess.run(command, check=False, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise GensynthError(f"run_denoise_from_manifest.py failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return [
        Figure(f"whole run_denoise_from_manifest.py, {run.spectra} spectra", run.spectra / seconds),
        Figure("the manifest run alone (no interpreter start)", run.spectra_per_s),
    ]


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if (args.manifest_data is None) != (args.checkpoint is None):
        raise GensynthError("--manifest-data and --checkpoint: give both (for the end-to-end figures) or neither")
    device = use_device(args)
    provenance = Provenance(vars(args), device)

    start = time.perf_counter()
    scan.warm_up()
    first_call_s = time.perf_counter() - start
    print(f"fused kernels' first call, forward and backward (numba's compile, or its cache load): {first_call_s:.2f} s", flush=True)

    torch.manual_seed(sha256_seed("bench-denoise-weights", args.seed))
    stack_config = MambaUVConfig(dose_dim=0, d_model=args.d_model, n_layers=args.layers, bidirectional=False)
    ours = MambaStack(stack_config).to(device).eval()
    generator = torch_generator(sha256_seed("bench-denoise-input", args.seed))
    x = torch.randn(args.batch, args.length, args.d_model, generator=generator).to(device)  # (B, L, D)

    mambapy_figures = []
    reference = None
    if not args.skip_mambapy:
        from mambapy.mamba import Mamba, MambaConfig  # the reference, a test extra

        for pscan, name in ((True, "mambapy 1.2 Mamba, parallel scan (default)"), (False, "mambapy 1.2 Mamba, sequential scan")):
            theirs = Mamba(MambaConfig(d_model=args.d_model, n_layers=args.layers, pscan=pscan)).to(device).eval()
            theirs.load_state_dict(ours.state_dict())
            figure, output = forward_figure(name, theirs, (x,), reference, args)
            reference = output if reference is None else reference
            mambapy_figures.append(figure)
            print(f"{name}: {figure.spectra_per_s:.2f} spectra/s", flush=True)
    kernels = scan.resolve_backend("auto", x)  # fused on the CPU
    stack_figure, _ = forward_figure(f"project MambaStack (causal), {kernels} kernels", ours, (x,), reference, args)
    print(f"{stack_figure.name}: {stack_figure.spectra_per_s:.2f} spectra/s", flush=True)

    model = MambaUV(MambaUVConfig(dose_dim=DOSE_DIM, d_model=args.d_model, n_layers=args.layers)).to(device)
    for parameter in (model.film.weight, model.head.weight):  # nonzero, so the FiLM and head paths do real work
        torch.nn.init.normal_(parameter, std=0.02)
    spectra = torch.randn(args.batch, args.length, generator=generator).to(device)  # (B, L)
    dose = torch.randn(args.batch, DOSE_DIM, generator=generator).to(device)  # (B, dose_dim)
    uv_name = f"MambaUV default (bidirectional, FiLM) forward, {kernels} kernels"
    uv_figure, _ = forward_figure(uv_name, model.eval(), (spectra, dose), None, args)
    figures = [*mambapy_figures, stack_figure, uv_figure, training_figure(model.train(), spectra, dose, kernels, args)]
    if args.manifest_data is not None:
        figures += end_to_end_figures(args, device)

    print(f"\nbatch {args.batch}, length {args.length}, d_model {args.d_model}, {args.layers} layers, {args.threads} threads, {device}")
    equal = True
    for figure in figures:
        line = f"{figure.name:<62} {figure.spectra_per_s:9.2f} spectra/s"
        if figure.max_abs_diff is not None:
            equal &= figure.max_abs_diff <= EQUAL_TOLERANCE
            line += f"   max |diff| to mambapy parallel {figure.max_abs_diff:.2e}"
        print(line)
    if mambapy_figures:
        parallel, sequential = (stack_figure.spectra_per_s / figure.spectra_per_s for figure in mambapy_figures)
        print(
            f"speedup of the fused stack: {parallel:.1f}x mambapy parallel, {sequential:.1f}x mambapy sequential; "
            f"outputs equal within {EQUAL_TOLERANCE:g}: {equal}"
        )
    if args.out:
        save_json(
            args.out,
            {
                "first_call_s": first_call_s,
                "figures": [vars(figure) for figure in figures],
                "outputs_equal": equal,
                "provenance": provenance.record({}),
            },
        )
    return 0 if equal else 1


if __name__ == "__main__":
    exit_main(main)

"""Benchmark PRDC: gensynth's exact blocked metric against clovaai's ``prdc.compute_prdc`` (prdc 0.2).

Each run is a subprocess of its own that reports its peak resident memory
(``getrusage(RUSAGE_SELF).ru_maxrss``, which counts torch's and BLAS's allocations, unlike
tracemalloc) and the memory it held before computing (Python, NumPy, torch and the
features). ``--repeats`` alternates the two methods that many times and keeps each one's
fastest run, so a burst of load on shared cores hits both alike. ``compute_prdc`` is run
only up to ``--reference-max`` samples: it builds three N x N float64 distance matrices
(scikit-learn's, 20 GB each at 50,000) and holds about two at its peak.

    python scripts/bench_prdc.py --sizes 10000 50000 --reference-max 10000 --threads 2 --repeats 3
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import resource
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import torch
from threadpoolctl import threadpool_limits

from gensynth.cli import exit_main
from gensynth.errors import GensynthError
from gensynth.metrics import PRDC_CHUNK_SIZE, prdc
from gensynth.seeding import numpy_generator, sha256_seed

METHODS = ("gensynth", "compute_prdc")
KEYS = ("precision", "recall", "density", "coverage")


def features(count: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Real ~ N(0, I) and fake ~ N(0.1, 1.1^2 I) features: overlapping, not identical."""
    real = numpy_generator(sha256_seed("bench-prdc-real", seed, count)).standard_normal((count, dim))
    fake = 0.1 + 1.1 * numpy_generator(sha256_seed("bench-prdc-fake", seed, count)).standard_normal((count, dim))
    return real, fake


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run_case(args) -> dict:
    """One run in this process: a dict with its time, memory and the four values."""
    real, fake = features(args.case_size, args.features, args.seed)
    torch.set_num_threads(args.threads)
    if args.case == "compute_prdc":
        from prdc import compute_prdc  # the reference: a benchmark dependency, never the pipeline's

        def compute():
            with contextlib.redirect_stdout(io.StringIO()):  # it prints the set sizes
                return compute_prdc(real, fake, nearest_k=args.nearest_k)
    else:

        def compute():
            return prdc(real, fake, nearest_k=args.nearest_k, chunk_size=args.chunk_size)

    before = max_rss_mb()
    with threadpool_limits(args.threads):
        start = time.perf_counter()
        result = compute()
        seconds = time.perf_counter() - start
    return {
        "method": args.case,
        "samples": args.case_size,
        "seconds": seconds,
        "peak_mb": max_rss_mb(),
        "before_mb": before,
        **{key: float(result[key]) for key in KEYS},
    }


def spawn(method: str, size: int, args) -> dict:
    command = [
        sys.executable,
        __file__,
        "--case",
        method,
        "--case-size",
        str(size),
        "--features",
        str(args.features),
        "--nearest-k",
        str(args.nearest_k),
        "--chunk-size",
        str(args.chunk_size),
        "--seed",
        str(args.seed),
        "--threads",
        str(args.threads),
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise GensynthError(f"benchmark run {method} at {size} samples failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000], help="samples per set (real = fake)")
    parser.add_argument("--features", type=int, default=64, help="feature dimension")
    parser.add_argument("--nearest-k", type=int, default=5)
    parser.add_argument("--chunk-size", type=int, default=PRDC_CHUNK_SIZE, help="most rows per distance block of gensynth's metric")
    parser.add_argument("--reference-max", type=int, default=10_000, help="run compute_prdc only up to this many samples")
    parser.add_argument("--threads", type=int, default=2, help="torch and BLAS threads per run (compute_prdc adds its 8 joblib threads)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per method and size; the fastest counts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="also write every run as CSV here")
    parser.add_argument("--case", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--case-size", type=int, help=argparse.SUPPRESS)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.case:
        print(json.dumps(run_case(args)))
        return 0
    if args.repeats < 1:
        raise GensynthError(f"--repeats {args.repeats}: expected at least 1")

    runs = []
    for size in args.sizes:
        methods = METHODS if size <= args.reference_max else METHODS[:1]
        if size > args.reference_max:
            matrix_gb = size * size * 8 / 1e9
            print(f"compute_prdc at {size} samples skipped: each of its three {size}x{size} float64 distance matrices takes {matrix_gb:.1f} GB", flush=True)
        for repeat in range(args.repeats):
            for method in methods:
                run = spawn(method, size, args)
                runs.append(run)
                print(
                    f"{method:>12} {size:>7} samples, run {repeat + 1}: {run['seconds']:8.2f} s, peak {run['peak_mb']:7.0f} MB "
                    f"(+{run['peak_mb'] - run['before_mb']:.0f} MB over the features)",
                    flush=True,
                )
        best = {method: min((run for run in runs if run["method"] == method and run["samples"] == size), key=lambda run: run["seconds"]) for method in methods}
        ours = best["gensynth"]
        print(
            f"{size} x {args.features}, k = {args.nearest_k}, {args.threads} threads: gensynth {ours['seconds']:.2f} s, "
            f"peak {ours['peak_mb']:.0f} MB; " + ", ".join(f"{key} {ours[key]:.6g}" for key in KEYS)
        )
        if "compute_prdc" in best:
            reference = best["compute_prdc"]
            values = [run for run in runs if run["samples"] == size]
            identical = all(run[key] == reference[key] for run in values for key in KEYS)
            print(
                f"{size} x {args.features}: compute_prdc {reference['seconds']:.2f} s, peak {reference['peak_mb']:.0f} MB; "
                f"speedup {reference['seconds'] / ours['seconds']:.1f}x; "
                f"all four values identical in every run: {'yes' if identical else 'NO'}"
            )
    if args.out:
        pd.DataFrame(runs).to_csv(args.out, index=False)
    return 0


if __name__ == "__main__":
    exit_main(main)

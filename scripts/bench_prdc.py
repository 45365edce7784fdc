"""Benchmark PRDC: time and peak memory of the chunked metric against the published all-pairs one.

Each case runs in its own subprocess, which reports its peak resident memory
(``getrusage(RUSAGE_SELF).ru_maxrss``) and the memory it held before computing (Python,
NumPy, scikit-learn and the features), so one case's peak does not hide another's.

    python scripts/bench_prdc.py --sizes 10000 50000 --reference-max 10000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from gensynth.cli import run_main
from gensynth.errors import GensynthError
from gensynth.metrics import PRDC_CHUNK_SIZE, prdc, prdc_reference
from gensynth.seeding import numpy_generator, sha256_seed

METHODS = ("chunked", "reference")


def features(count: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Real ~ N(0, I) and fake ~ N(0.1, 1.1^2 I) features: overlapping, not identical."""
    real = numpy_generator(sha256_seed("bench-prdc-real", seed, count)).standard_normal((count, dim))
    fake = 0.1 + 1.1 * numpy_generator(sha256_seed("bench-prdc-fake", seed, count)).standard_normal((count, dim))
    return real, fake


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run_case(args) -> dict:
    """One case in this process: prints a JSON line with time, memory and the metrics."""
    real, fake = features(args.case_size, args.features, args.seed)
    before = max_rss_mb()
    start = time.perf_counter()
    with threadpool_limits(args.threads):
        if args.case == "chunked":
            result = prdc(real, fake, nearest_k=args.nearest_k, chunk_size=args.chunk_size)
        else:
            result = prdc_reference(real, fake, nearest_k=args.nearest_k)
    seconds = time.perf_counter() - start
    return {"method": args.case, "samples": args.case_size, "seconds": seconds, "peak_mb": max_rss_mb(), "before_mb": before, **result}


def spawn(method: str, size: int, args) -> dict:
    command = [
        sys.executable, __file__, "--case", method, "--case-size", str(size), "--features", str(args.features),
        "--nearest-k", str(args.nearest_k), "--chunk-size", str(args.chunk_size), "--seed", str(args.seed),
        "--threads", str(args.threads),
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise GensynthError(f"benchmark case {method} at {size} samples failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000], help="samples per set (real = fake)")
    parser.add_argument("--features", type=int, default=64, help="feature dimension")
    parser.add_argument("--nearest-k", type=int, default=5)
    parser.add_argument("--chunk-size", type=int, default=PRDC_CHUNK_SIZE, help="rows per distance block of the chunked metric")
    parser.add_argument("--reference-max", type=int, default=10_000, help="run the all-pairs reference only up to this many samples")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads per case")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="also write the table as CSV here")
    parser.add_argument("--case", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--case-size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(args)))
        return 0

    rows = []
    for size in args.sizes:
        for method in METHODS:
            if method == "reference" and size > args.reference_max:
                need_gb = 3 * size * size * 8 / 1e9
                print(f"reference at {size} samples skipped: its three {size}x{size} float64 distance matrices need {need_gb:.1f} GB", flush=True)
                continue
            row = spawn(method, size, args)
            row["extra_mb"] = row["peak_mb"] - row["before_mb"]
            rows.append(row)
            print(f"{method:>9} {size:>7} samples: {row['seconds']:8.1f} s, peak {row['peak_mb']:8.0f} MB "
                  f"(+{row['extra_mb']:.0f} MB over the features)", flush=True)
    table = pd.DataFrame(rows)[["method", "samples", "seconds", "peak_mb", "extra_mb", "precision", "recall", "density", "coverage"]]
    print(table.to_string(index=False, float_format=lambda v: f"{v:.6g}"))
    for size, group in table.groupby("samples"):
        if len(group) == 2:
            chunked, reference = (group[group.method == m].iloc[0] for m in METHODS)
            worst = max(abs(chunked[key] - reference[key]) / max(abs(reference[key]), 1e-300) for key in ("precision", "recall", "density", "coverage"))
            print(f"{size} samples: chunked vs reference, largest relative difference {worst:.3g}")
    if args.out:
        table.to_csv(args.out, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))

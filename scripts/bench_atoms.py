#!/usr/bin/env python3
"""Benchmark of the atoms generator and dataset CLI: throughput and peak memory.

Prints images/s for generation alone (blocks made in memory, nothing written) and for the
whole CLI (generation, split, compressed NPZ files, metadata; without the validation
figure), and the CLI's peak resident memory at each --rss-sizes size. Targets (a
2-core CPU): generation >= 100,000 img/s, the 1M-image CLI run < 30 s, peak RSS < 1 GB at 10M.

    python scripts/bench_atoms.py                                  # 1M images; RSS at 1M and 10M
    python scripts/bench_atoms.py --num-images 200000 --rss-sizes 200000 --threads 1

The generator is NumPy on the CPU by design (its cost is small next to the deflate
compression of the NPZ files), so there is no --device.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from gensynth.atoms import generate_atomic_image, iter_blocks
from gensynth.cli import exit_main
from gensynth.errors import GensynthError

SCRIPT = Path(__file__).resolve().parent / "generate_dataset.py"
TARGETS = {"generation_img_s": 100_000, "cli_1m_s": 30.0, "rss_10m_gb": 1.0}


def bench_generation(num_images: int, threads: int) -> tuple[float, float]:
    """(wall img/s, CPU seconds) of making ``num_images`` images in memory, block by block."""
    cpu, began = time.process_time(), time.perf_counter()
    made = sum(len(labels) for _, labels in iter_blocks(num_images, seed=0, threads=threads, show_progress=False))
    wall = time.perf_counter() - began
    assert made == num_images
    return num_images / wall, time.process_time() - cpu


def bench_reference(num_images: int) -> float:
    """img/s of the per-image reference path (the group's one-image-at-a-time loop)."""
    np.random.seed(0)
    began = time.perf_counter()
    for _ in range(num_images):
        generate_atomic_image()
    return num_images / (time.perf_counter() - began)


def bench_cli(num_images: int, threads: int, work_dir: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS in GB) of one CLI run in a child process, figure skipped."""
    output_dir = work_dir / f"bench-{num_images}"
    command = [
        sys.executable,
        str(SCRIPT),
        "--num-images",
        str(num_images),
        "--yes",
        "--no-validation-report",
        "--threads",
        str(threads),
        "--output-dir",
        str(output_dir),
        "--overwrite",
    ]
    began = time.perf_counter()
    child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - began
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise GensynthError(f"{' '.join(command)} failed ({child.returncode}): {child.stderr.read().decode()[-2000:]}")
    child.stderr.close()
    return wall, usage.ru_maxrss / 1024**2  # ru_maxrss is in KiB on Linux


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=1_000_000, help="Images for the throughput runs (default: 1,000,000)")
    parser.add_argument("--rss-sizes", type=int, nargs="*", default=[1_000_000, 10_000_000], help="CLI sizes whose peak RSS is measured (default: 1M and 10M)")
    parser.add_argument("--threads", type=int, default=2, help="Generation threads (default: 2)")
    parser.add_argument("--reference-images", type=int, default=1000, help="Images for the per-image reference rate (default: 1000)")
    parser.add_argument("--work-dir", type=Path, default=None, help="Where the CLI writes its datasets (default: a temporary directory)")
    args = parser.parse_args(argv)
    if args.num_images < 1 or args.threads < 1 or args.reference_images < 1 or any(n < 1 for n in args.rss_sizes):
        raise GensynthError("--num-images, --rss-sizes, --threads and --reference-images must be positive")

    print(f"host: {os.uname().nodename}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    rate = bench_reference(args.reference_images)
    print(f"per-image reference generator  : {rate:12,.0f} img/s  ({args.reference_images:,} images)")
    for threads in sorted({1, args.threads}):
        rate, cpu = bench_generation(args.num_images, threads)
        print(
            f"generation alone, {threads} thread(s)  : {rate:12,.0f} img/s  ({args.num_images:,} images, "
            f"{args.num_images / cpu:,.0f} img per CPU-second)  target >= {TARGETS['generation_img_s']:,}"
        )

    with tempfile.TemporaryDirectory(dir=args.work_dir, prefix="bench_atoms-") as work_dir:
        sizes = [args.num_images] + [n for n in args.rss_sizes if n != args.num_images]
        for n in sizes:
            wall, rss = bench_cli(n, args.threads, Path(work_dir))
            line = f"whole CLI, {n:>10,} images    : {n / wall:12,.0f} img/s  ({wall:.1f} s, peak RSS {rss:.2f} GB)"
            if n == 1_000_000:
                line += f"  target < {TARGETS['cli_1m_s']:.0f} s"
            if n == 10_000_000:
                line += f"  target RSS < {TARGETS['rss_10m_gb']:.0f} GB"
            print(line, flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f} (other work on the machine slows every figure)")
    return 0


if __name__ == "__main__":
    exit_main(main)

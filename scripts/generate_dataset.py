#!/usr/bin/env python3
"""Generate a large-scale atomic image dataset: train/val/test NPZ, metadata.json, validation_report.png.

Usage:
    python scripts/generate_dataset.py --num-images 100000
    python scripts/generate_dataset.py --num-images 50000 --output-dir datasets/2025-10-22-v2 --seed 123
    python scripts/generate_dataset.py --num-images 1000 --generator my_module:my_function --yes

The plan (images, memory, output) is printed and confirmed with y/n before anything is
written; --yes skips the question, and without a terminal on stdin --yes is required.
Images are generated and compressed block by block, so memory stays bounded at any size.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from gensynth.atoms import (
    SPLIT_NAMES,
    block_size,
    check_fractions,
    estimate_memory,
    iter_blocks,
    load_generator,
    save_metadata,
    split_assignment,
    validate_dataset,
    write_splits,
)
from gensynth.atoms.corpus import MAX_SEED
from gensynth.atoms.settings import GenerateDatasetSettings
from gensynth.atoms.storage import check_writable, existing_dataset_files, next_dataset_dir, staged_dataset
from gensynth.cli import exit_main
from gensynth.errors import GensynthError
from gensynth.provenance import Provenance
from gensynth.steps import add_settings_arguments, settings_from_args

MIN_GRID_SIZE = 4


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Generate large-scale atomic image datasets")
    parser.add_argument("--num-images", type=int, required=True, help="Total number of images to generate (e.g., 1000, 100000)")
    parser.add_argument(
        "--output-dir",
        type=str,
        default=None,
        help="Output directory (default: datasets/YYYY-MM-DD-vN, N the next free version of today)",
    )
    add_settings_arguments(parser, GenerateDatasetSettings, "atoms")
    parser.add_argument("--yes", "-y", action="store_true", help="Generate without asking for confirmation")
    parser.add_argument("--overwrite", action="store_true", help="Replace a dataset already in --output-dir")
    parser.add_argument("--no-validation-report", action="store_true", help="Skip validation_report.png")
    parser.add_argument(
        "--threads",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="Threads generating blocks of images (the data do not depend on it; default: 2, or 1 on a 1-CPU machine)",
    )
    return parser


def confirm(assume_yes: bool) -> bool:
    """The group's y/n question; never waits on a stdin that is not a terminal."""
    if assume_yes:
        return True
    if sys.stdin is None or not sys.stdin.isatty():
        raise GensynthError("stdin is not a terminal, so the y/n confirmation cannot be asked: pass --yes to generate without it")
    try:
        response = input("\nProceed with generation? (y/n): ")
    except EOFError:
        response = ""
    return response.strip().lower() in ("y", "yes")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    settings = settings_from_args(GenerateDatasetSettings, args)
    if args.num_images <= 0:
        raise GensynthError(f"--num-images {args.num_images}: expected a positive number of images")
    if settings.grid_size < MIN_GRID_SIZE:
        raise GensynthError(f"--grid-size {settings.grid_size}: expected at least {MIN_GRID_SIZE} pixels")
    if not 0 <= settings.seed <= MAX_SEED:
        raise GensynthError(f"--seed {settings.seed}: expected an integer from 0 to {MAX_SEED}")
    if args.threads < 1:
        raise GensynthError(f"--threads {args.threads}: expected at least 1")
    fractions = check_fractions({name: getattr(settings, f"{name}_fraction") for name in SPLIT_NAMES}, key="--{}-fraction")
    generator = load_generator(settings.generator)

    output_dir = Path(args.output_dir) if args.output_dir else next_dataset_dir()
    found = existing_dataset_files(output_dir)
    if found and not args.overwrite:
        raise GensynthError(
            f"--output-dir {output_dir} already holds a dataset ({', '.join(found)}): pass --overwrite to replace it, or choose another --output-dir"
        )
    check_writable(output_dir)

    mem_info = estimate_memory(args.num_images, settings.grid_size)
    print("\nDataset Generation Plan:")
    print(f"  Images: {mem_info['num_images']:,} ({settings.grid_size}x{settings.grid_size} uint8)")
    print(f"  Memory: {mem_info['readable']} (uncompressed; streamed in blocks of {block_size(settings.grid_size):,} images)")
    print(f"  Output: {output_dir}")
    print("  Splits: " + ", ".join(f"{name} {fractions[name]:g}" for name in SPLIT_NAMES) + f"; seed {settings.seed}")
    print(f"  Generator: {generator.name}")
    try:
        if not confirm(args.yes):
            print("Generation cancelled.")
            return 0
    except KeyboardInterrupt:
        print("\nGeneration cancelled.")
        return 130

    generation_params = {
        "num_images": args.num_images,
        "seed": settings.seed,
        "grid_size": settings.grid_size,
        "splits": fractions,
        "generator": generator.name,
    }
    provenance = Provenance(generation_params, device="cpu")
    began = time.perf_counter()
    with staged_dataset(output_dir, overwrite=args.overwrite) as stage:
        print(f"\nGenerating {args.num_images:,} images...", flush=True)
        assignment = split_assignment(args.num_images, fractions, settings.seed)
        blocks = iter_blocks(args.num_images, settings.seed, settings.grid_size, generator, args.threads)
        counts = write_splits(blocks, assignment, stage, settings.grid_size)
        del assignment
        elapsed = time.perf_counter() - began
        print(f"Generated and saved {args.num_images:,} images in {elapsed:.1f} s ({args.num_images / elapsed:,.0f} img/s)")
        splits_info = {f"{name}_count": counts[name] for name in SPLIT_NAMES} | {"total_count": args.num_images}
        inputs = {"generator": generator.source} if generator.source else {}
        save_metadata(
            stage,
            args.num_images,
            settings.seed,
            splits_info,
            grid_size=settings.grid_size,
            fractions=fractions,
            generator=generator.name,
            provenance=provenance.record(inputs=inputs),
        )
        if not args.no_validation_report:
            print("\nValidating dataset...")
            validate_dataset(stage, title=output_dir.name)
    print("\nDataset generation complete!")
    for name in sorted(os.listdir(output_dir)):
        if not name.startswith("."):
            print(f"  {output_dir / name}: {(output_dir / name).stat().st_size:,} bytes")
    print(f"Location: {output_dir}")
    return 0


if __name__ == "__main__":
    exit_main(main)

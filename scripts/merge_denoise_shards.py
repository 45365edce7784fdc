"""Gather the shard jobs of one denoised manifest: an index of every row's denoised file, and the run's totals.

Checks that every distinct file of the manifest was written by one of the shards (each shard's
``--done-json`` of scripts/run_denoise_from_manifest.py) and is there, then writes the manifest with a
``denoised_path`` column (relative to the output root) and a summary with the shards' counts and timings.

    python scripts/merge_denoise_shards.py --manifest results/denoise/data/manifest_full.csv \
        --output-root results/denoise/denoised/full --shards results/denoise/denoised/full/shards/shard_0.json \
        results/denoise/denoised/full/shards/shard_1.json --index results/denoise/denoised/full/denoised_manifest.csv \
        --summary results/denoise/denoised/full/denoise_summary.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gensynth.cli import exit_main
from gensynth.denoise.data import read_csv
from gensynth.denoise.layout import denoised_relative_path
from gensynth.errors import GensynthError
from gensynth.io import atomic_open, load_json, save_json
from gensynth.provenance import Provenance


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", required=True, type=Path, help="the manifest the shards denoised")
    parser.add_argument("--output-root", required=True, type=Path, help="the shards' --output-root")
    parser.add_argument("--shards", required=True, type=Path, nargs="+", help="each shard's --done-json")
    parser.add_argument("--index", required=True, type=Path, help="output: the manifest with a denoised_path column")
    parser.add_argument("--summary", required=True, type=Path, help="output: totals and per-shard timings (JSON)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    provenance = Provenance({"shards": len(args.shards)})
    manifest = read_csv(args.manifest, "manifest")
    shards = [load_json(path) for path in args.shards]
    written = {relative for shard in shards for relative in shard["outputs"]}
    manifest["denoised_path"] = [denoised_relative_path(r) for r in manifest["relative_path"]]
    for line, relative in enumerate(manifest["denoised_path"], 2):
        if relative not in written or not (args.output_root / relative).is_file():
            raise GensynthError(f"{args.manifest}: line {line}: {relative} was not written by any of the {len(shards)} shards")
    with atomic_open(args.index, "w", newline="") as handle:
        manifest.to_csv(handle, index=False)
    seconds = [shard["seconds"] for shard in shards]
    save_json(
        args.summary,
        {
            "manifest": str(args.manifest),
            "output_root": str(args.output_root),
            "rows": len(manifest),
            "distinct_files": int(manifest["relative_path"].nunique()),
            "written": sum(s["written"] for s in shards),
            "skipped": sum(s["skipped"] for s in shards),
            "shards": [
                {"path": str(p), "files": s["files"], "seconds": s["seconds"], "spectra_per_s": s["spectra_per_s"]} for p, s in zip(args.shards, shards)
            ],
            "longest_shard_s": max(seconds),
            "summed_shard_s": sum(seconds),
            "provenance": provenance.record({"manifest": args.manifest, **{f"shard_{i}": p for i, p in enumerate(args.shards)}}),
        },
    )
    files = manifest["relative_path"].nunique()
    print(f"{args.manifest}: {len(manifest)} rows, {files} files denoised by {len(shards)} shards", flush=True)
    return 0


if __name__ == "__main__":
    exit_main(main)

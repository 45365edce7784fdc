"""QA of the replicas against the real test set: a JSON and two figures.

Per replica: the published layout (names, dtypes, shapes), per-condition counts against the
test CSV (exact), lesion agreement (mask non-empty exactly when lesion_present is 1), and
mean intensity and lesion area per z-bin next to the real test slices'.

    python scripts/replicas_qa.py --replicas results/replicas/replica_000.npz results/replicas/replica_001.npz \
        --real results/replicas/data/test.npz --test-csv results/replicas/data/test_distribution.csv \
        --history results/replicas/model/history.json --z-bins 4 --out-json results/replicas/qa/qa.json \
        --out-summary results/replicas/qa/summary.png --out-samples results/replicas/qa/samples.png
"""

from __future__ import annotations

import argparse
import math

from gensynth.cli import exit_main
from gensynth.errors import GensynthError
from gensynth.io import load_json, load_npz, save_figure, save_json
from gensynth.provenance import Provenance
from gensynth.replicas.data import REPLICA_ARRAYS, load_slice_dataset, load_test_distribution
from gensynth.replicas.qa import grid_picks, plot_sample_grid, plot_summary, real_qa, replica_qa, save_table, summarize
from gensynth.replicas.settings import ReplicasQASettings
from gensynth.steps import add_settings_arguments


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", nargs="+", required=True, help="replica NPZ files")
    parser.add_argument("--real", required=True, help="the real test slices (NPZ, slice dataset format)")
    parser.add_argument("--test-csv", required=True, help="the test distribution the replicas were generated for")
    parser.add_argument("--history", required=True, help="the training's history.json (loss curves)")
    add_settings_arguments(parser, ReplicasQASettings, "replicas")
    parser.add_argument("--out-json", required=True)
    parser.add_argument("--out-table", required=True, help="TSV: one row per replica (counts, lesion agreement)")
    parser.add_argument("--out-summary", required=True, help="figure: losses, intensity and lesion area per z-bin")
    parser.add_argument("--out-samples", required=True, help="figure: sample grid per z-bin with mask overlay")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    provenance = Provenance(vars(args))
    distribution = load_test_distribution(args.test_csv, args.z_bins)
    real = load_slice_dataset(args.real, args.z_bins)
    min_mask_pixels = max(1, math.ceil(args.min_mask_fraction * real.image_size**2))
    history = load_json(args.history)
    real_result = real_qa(real, args.z_bins, min_mask_pixels)
    results, grid_source = [], None
    for path in args.replicas:  # one at a time: a full-scale replica is hundreds of MB
        arrays = load_npz(path, required=REPLICA_ARRAYS)
        if not len(arrays["seed"]):
            raise GensynthError(f"{path}: a replica without samples")
        results.append({"file": str(path), **replica_qa(arrays, distribution, args.z_bins, min_mask_pixels)})
        if grid_source is None:
            grid_source = arrays
    save_json(
        args.out_json,
        {
            "min_mask_pixels": min_mask_pixels,
            "summary": summarize(results),
            "real": real_result,
            "replicas": results,
            "provenance": provenance.record({"test_csv": args.test_csv, "real": args.real, **{f"replica_{i}": p for i, p in enumerate(args.replicas)}}),
        },
    )
    save_table(args.out_table, results)
    save_figure(plot_summary(history, real_result, results), args.out_summary, dpi=110)
    real_picks = grid_picks(real.zbin, real.lesion_present, args.z_bins, args.grid_per_bin)
    generated_picks = grid_picks(grid_source["zbin"], grid_source["lesion_present"], args.z_bins, args.grid_per_bin)
    figure = plot_sample_grid(real, real_picks, grid_source, generated_picks, int(grid_source["replica_id"][0]))
    save_figure(figure, args.out_samples, dpi=110)
    return 0


if __name__ == "__main__":
    exit_main(main)

"""The experiment's comparison: each arm's kappa, macro F1 and accuracy with intervals, the paired differences, the quality table.

    python scripts/genaug_report.py --dataset results/genaug/data/dataset.npz \
        --arm baseline results/genaug/runs/baseline/fold0.npz ... --history baseline results/genaug/runs/baseline/fold0.json ... \
        --arm augmented results/genaug/runs/augmented/fold0.npz ... --history augmented ... \
        --quality results/genaug/quality/fold0.json ... --n-bootstrap 2000 --confidence 0.95 \
        --out-table results/genaug/results.csv --out-markdown results/genaug/results.md \
        --out-figure results/genaug/comparison.png --out-quality results/genaug/quality.csv --out-json results/genaug/summary.json

The statistics are gensynth.genaug.experiment's: per seed the metrics of the pooled out-of-fold
predictions, their mean over seeds, a bootstrap over patients and seeds for the intervals, paired
between the arms for the differences.
"""

from __future__ import annotations

import argparse

import numpy as np

from gensynth.cli import exit_main
from gensynth.errors import GensynthError
from gensynth.genaug.data import load_dataset
from gensynth.genaug.experiment import METRICS, markdown_table, per_seed_metrics, pool_predictions, summarize, write_csv
from gensynth.genaug.figures import comparison_figure
from gensynth.genaug.settings import ReportSettings
from gensynth.io import atomic_open, load_json, load_npz, save_json
from gensynth.provenance import Provenance
from gensynth.steps import add_settings_arguments

QUALITY_COLUMNS = (
    "fold",
    "folder",
    "modality",
    "phase",
    "inference_steps",
    "n_synthetic",
    "n_train_real",
    "n_heldout_real",
    "fid_synthetic",
    "fid_heldout",
    "note",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, help="the dataset NPZ (labels and patients of the visits)")
    parser.add_argument(
        "--arm",
        nargs="+",
        action="append",
        required=True,
        metavar=("NAME", "PREDICTIONS"),
        help="an arm and its per-fold prediction files (genaug_classify.py --out-predictions); once per arm",
    )
    parser.add_argument(
        "--history",
        nargs="+",
        action="append",
        default=[],
        metavar=("NAME", "HISTORY"),
        help="an arm and its per-fold history files (settings and synthetic counts); once per arm",
    )
    parser.add_argument("--quality", nargs="*", default=[], help="the quality rule's JSON files (genaug_quality.py --out)")
    add_settings_arguments(parser, ReportSettings, "genaug")
    parser.add_argument("--out-table", required=True, help="output: one row per arm (CSV)")
    parser.add_argument("--out-markdown", required=True, help="output: the same as a markdown table")
    parser.add_argument("--out-figure", required=True, help="output: the arms and their paired differences (PNG)")
    parser.add_argument("--out-quality", required=True, help="output: FID per fold, folder, modality and step count (CSV)")
    parser.add_argument("--out-json", required=True, help="output: the table, per-seed values and settings (JSON, with provenance)")
    return parser


def arm_settings(histories: list[dict]) -> dict:
    """What the table shows of an arm: its sweep settings (those of its first enabled modality) and the synthetic images per epoch."""
    first = histories[0]
    enabled = [m for m, c in first["augmentation"].items() if c["enabled"]] if first["augmenting"] else []
    settings = {"augmented": ", ".join(enabled) or "none", "prob": "", "mix_low": "", "mix_high": "", "inference_steps": ""}
    if enabled:
        config = first["augmentation"][enabled[0]]
        settings.update(
            prob=config["prob"], mix_low=config["mix_ratio_range"][0], mix_high=config["mix_ratio_range"][1], inference_steps=config["inference_steps"]
        )
    per_epoch = [h["synthetic_per_epoch"] for history in histories for h in history["seeds_history"].values()]
    hit_rates = [history["cache"]["hit_rate"] for history in histories if history["cache"]]
    settings["synthetic_per_epoch"] = float(np.mean(per_epoch))
    settings["cache_hit_rate"] = float(np.mean(hit_rates)) if hit_rates else ""
    return settings


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    provenance = Provenance({k: v for k, v in vars(args).items() if not k.startswith("out_")})
    dataset = load_dataset(args.dataset)
    for what, entries in (("--arm", args.arm), ("--history", args.history)):
        for entry in entries:
            if len(entry) < 2:
                raise GensynthError(f"{what} {' '.join(entry)}: expected an arm's name and at least one file")
    runs = {name: [load_npz(path, required=("seed", "index", "label", "prediction")) for path in files] for name, *files in args.arm}
    experiment = pool_predictions(dataset.phase, dataset.patient, runs)
    histories = {name: [load_json(path) for path in files] for name, *files in args.history}
    experiment.settings = {arm: arm_settings(histories[arm]) for arm in runs if arm in histories}
    rows = summarize(experiment, args.n_bootstrap, args.confidence, args.seed, args.kappa_weights)
    per_seed = per_seed_metrics(experiment, args.kappa_weights)
    write_csv(args.out_table, rows)
    with atomic_open(args.out_markdown, "w", encoding="utf-8") as handle:
        handle.write(markdown_table(rows, args.confidence))
    comparison_figure(rows, per_seed, args.confidence, args.out_figure)
    quality = [row for path in args.quality for row in load_json(path)["rows"]]
    write_csv(args.out_quality, quality, QUALITY_COLUMNS)
    inputs = {f"{name}_{i}": path for name, *files in args.arm for i, path in enumerate(files)}
    inputs.update({f"quality_{i}": path for i, path in enumerate(args.quality)})
    save_json(
        args.out_json,
        {
            "rows": rows,
            "per_seed": per_seed,
            "seeds": experiment.seeds,
            "metrics": list(METRICS),
            "provenance": provenance.record(
                {"dataset": args.dataset, **inputs}, {"table": args.out_table, "markdown": args.out_markdown, "quality": args.out_quality}
            ),
        },
    )
    print(markdown_table(rows, args.confidence))
    return 0


if __name__ == "__main__":
    exit_main(main)

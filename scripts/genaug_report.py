"""The experiment's comparison: each arm's kappa, macro F1 and accuracy with intervals, the paired differences, the dose
response and the controls per regime, the quality table.

    python scripts/genaug_report.py --dataset results/genaug/data/dataset.npz \
        --arm baseline results/genaug/runs/baseline/fold0.npz ... --history baseline results/genaug/runs/baseline/fold0.json ... \
        --arm augmented results/genaug/runs/augmented/fold0.npz ... --history augmented ... \
        --quality results/genaug/quality/fold0.json ... --n-bootstrap 2000 --confidence 0.95 \
        --out-table results/genaug/results.csv --out-markdown results/genaug/results.md \
        --out-figure results/genaug/comparison.png --out-dose results/genaug/dose_response.csv \
        --out-dose-figure results/genaug/dose_response.png --out-quality results/genaug/quality.csv --out-json results/genaug/summary.json

The statistics are gensynth.genaug.experiment's, per regime (the share of training patients): per
run (partition, seed) the metrics of the pooled out-of-fold predictions, their mean over runs, a
bootstrap over patients, partitions and seeds for the intervals, paired between the arms for the
differences; the slope of the differences on the synthetic share; each control's reading.
"""

from __future__ import annotations

import argparse

import numpy as np

from gensynth.cli import exit_main
from gensynth.errors import GensynthError
from gensynth.genaug.data import load_dataset
from gensynth.genaug.experiment import (
    METRICS,
    by_regime,
    control_verdict,
    controls_markdown,
    dose_markdown,
    dose_response,
    generators_markdown,
    generators_summary,
    markdown_table,
    per_run_metrics,
    pool_predictions,
    summarize,
    write_csv,
)
from gensynth.genaug.figures import comparison_figure, dose_figure
from gensynth.genaug.settings import ReportSettings
from gensynth.io import atomic_open, load_json, load_npz, save_json
from gensynth.provenance import Provenance
from gensynth.steps import add_settings_arguments

SCALE_NOTES = {
    "demo": "a demo of every artifact at the default scale; too few patients, seeds and partitions for a finding",
    "study": "the study scale (docs/genaug.md gives its result, command, commit and date)",
    "full": "the full scale",
}
DOSE_COLUMNS = ("train_fraction", "family", "metric", "shares", "slope", "slope_low", "slope_high")
QUALITY_COLUMNS = (
    "fold",
    "train_fraction",
    "partition",
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
    parser.add_argument("--out-table", required=True, help="output: one row per regime and arm (CSV)")
    parser.add_argument("--out-markdown", required=True, help="output: the same as a markdown table")
    parser.add_argument("--out-figure", required=True, help="output: the arms and their paired differences (PNG)")
    parser.add_argument("--out-dose", required=True, help="output: the dose-response slopes per regime, family and metric (CSV)")
    parser.add_argument("--out-dose-figure", required=True, help="output: the paired differences against the share, controls beside (PNG)")
    parser.add_argument("--out-quality", required=True, help="output: FID per fold, folder, modality and step count (CSV)")
    parser.add_argument("--out-json", required=True, help="output: the table, per-seed values and settings (JSON, with provenance)")
    return parser


def arm_settings(histories: list[dict]) -> dict:
    """What the table shows of an arm: its source, mode and settings (those of its first enabled modality), the fixed share
    of a dose arm or control, and the synthetic images per epoch."""
    first = histories[0]
    enabled = [m for m, c in first["augmentation"].items() if c["enabled"]] if first["augmenting"] else []
    settings = {
        "augmented": ", ".join(enabled) or "none",
        "source": "",
        "mode": "",
        "share": "",
        "prob": "",
        "mix_low": "",
        "mix_high": "",
        "inference_steps": "",
    }
    if enabled:
        config = first["augmentation"][enabled[0]]
        low, high = config["mix_ratio_range"]
        settings.update(
            source=first.get("augment_source") or "generated",
            mode=first.get("augment_mode") or "replace",
            prob=config["prob"],
            mix_low=low,
            mix_high=high,
            inference_steps=config["inference_steps"],
            share=low if config["prob"] == 1 and low == high else "",
        )
    per_epoch = [h["synthetic_per_epoch"] for history in histories for h in history["seeds_history"].values()]
    hit_rates = [history["cache"]["hit_rate"] for history in histories if history["cache"]]
    settings["synthetic_per_epoch"] = float(np.mean(per_epoch))
    settings["cache_hit_rate"] = float(np.mean(hit_rates)) if hit_rates else ""
    return settings


def regime_of(history: dict) -> float:
    return float(history.get("split", {}).get("train_fraction", 1.0))


def families(settings: dict[str, dict]) -> dict[str, dict[str, float]]:
    """The dose axis: generated images at fixed shares, one family per mode ("generated, replace" -> {arm: share})."""
    result: dict[str, dict[str, float]] = {}
    for arm, values in settings.items():
        if values["source"] == "generated" and values["share"] != "":
            result.setdefault(f"generated, {values['mode']}", {})[arm] = values["share"]
    return result


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    provenance = Provenance({k: v for k, v in vars(args).items() if not k.startswith("out_")})
    dataset = load_dataset(args.dataset)
    for what, entries in (("--arm", args.arm), ("--history", args.history)):
        for entry in entries:
            if len(entry) < 2:
                raise GensynthError(f"{what} {' '.join(entry)}: expected an arm's name and at least one file")
    runs = {name: [load_npz(path, required=("seed", "index", "label", "prediction")) for path in files] for name, *files in args.arm}
    histories = {name: [load_json(path) for path in files] for name, *files in args.history}
    rows, slopes, controls, per_run, sections = [], [], [], {}, []
    for fraction, regime_runs in by_regime(runs).items():
        experiment = pool_predictions(dataset.phase, dataset.patient, regime_runs)
        regime_histories = {arm: [h for h in histories.get(arm, []) if regime_of(h) == fraction] for arm in regime_runs}
        experiment.settings = {arm: arm_settings(h) for arm, h in regime_histories.items() if h}
        regime = {"train_fraction": fraction}
        regime_rows = [{**regime, **row} for row in summarize(experiment, args.n_bootstrap, args.confidence, args.seed, args.kappa_weights)]
        regime_slopes = [
            {**regime, **row}
            for row in dose_response(experiment, families(experiment.settings), args.n_bootstrap, args.confidence, args.seed, args.kappa_weights)
        ]
        regime_controls = [
            {
                **regime,
                "arm": row["arm"],
                "source": row["source"],
                "share": row["share"],
                **{k: row[k] for k in ("kappa_diff", "kappa_diff_low", "kappa_diff_high")},
                "verdict": control_verdict(row, row["source"]),
            }
            for row in regime_rows
            if row.get("source") in ("wrong_phase", "real")
        ]
        rows += regime_rows
        slopes += regime_slopes
        controls += regime_controls
        per_run[fraction] = {"runs": experiment.runs, "metrics": per_run_metrics(experiment, args.kappa_weights)}
        heading = (
            f"## Regime: {100 * fraction:g} % of each fold's training patients ({len(experiment.partitions)} partition(s) x {len(experiment.seeds)} seeds)"
        )
        sections.append(
            "\n".join(
                [heading, "", markdown_table(regime_rows, args.confidence), dose_markdown(regime_slopes, args.confidence), controls_markdown(regime_controls)]
            )
        )
    write_csv(args.out_table, rows)
    write_csv(args.out_dose, slopes, DOSE_COLUMNS)
    quality = [{**row, **dataset.plan.describe(int(row["fold"]))} for path in args.quality for row in load_json(path)["rows"]]
    write_csv(args.out_quality, quality, QUALITY_COLUMNS)
    generators = generators_summary(quality, args.fid_factor)
    markdown = "\n".join([f"# genaug: {SCALE_NOTES[args.scale]}", "", *sections, generators_markdown(generators, args.fid_factor)])
    with atomic_open(args.out_markdown, "w", encoding="utf-8") as handle:
        handle.write(markdown)
    comparison_figure(rows, per_run, args.confidence, args.out_figure)
    dose_figure(rows, args.confidence, args.out_dose_figure)
    inputs = {f"{name}_{i}": path for name, *files in args.arm for i, path in enumerate(files)}
    inputs.update({f"quality_{i}": path for i, path in enumerate(args.quality)})
    save_json(
        args.out_json,
        {
            "scale": args.scale,
            "finding": args.scale != "demo",
            "rows": rows,
            "dose_response": slopes,
            "controls": controls,
            "generators": generators,
            "per_run": {str(k): v for k, v in per_run.items()},
            "metrics": list(METRICS),
            "provenance": provenance.record(
                {"dataset": args.dataset, **inputs},
                {"table": args.out_table, "markdown": args.out_markdown, "quality": args.out_quality, "dose": args.out_dose},
            ),
        },
    )
    print(markdown)
    return 0


if __name__ == "__main__":
    exit_main(main)

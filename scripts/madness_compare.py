"""Scenario comparison at one w: a table of every metric per scenario, unit, replicate and generation, and a FID figure.

Example (one metrics JSON per chain, unit-major: unit0/rep0, unit0/rep1, unit1/rep0, ...; --replicates per unit):
    python scripts/madness_compare.py --replicates 2 \
        --scenario full_synthetic --metrics results/madness/full_synthetic/w0/unit{0,1,2}/rep{0,1}/metrics_w0.json \
        --scenario matched_real --metrics results/madness/matched_real/w0/unit{0,1,2}/rep{0,1}/metrics_w0.json --label "w=0" \
        --out-table results/madness/summary_w0.csv --out-figure results/madness/figures/fid_scenarios_w0.png
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from gensynth.cli import exit_main
from gensynth.errors import GensynthError
from gensynth.io import atomic_open, save_figure
from gensynth.madness.evaluation import METRICS, add_scenario_arguments, load_metrics, scenario_files
from gensynth.madness.figures import scenario_comparison
from gensynth.madness.settings import CompareSettings
from gensynth.steps import add_settings_arguments


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_scenario_arguments(parser, jacobians=False)
    add_settings_arguments(parser, CompareSettings, "madness")
    parser.add_argument("--label", default="", help="figure title")
    parser.add_argument("--out-table", required=True, help="CSV: scenario, unit, replicate, generation, each metric and its bootstrap std")
    parser.add_argument("--out-figure", required=True)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.replicates < 1:
        raise GensynthError(f"--replicates {args.replicates}: expected >= 1")
    rows, fid_by_scenario = [], {}
    for name, (metrics, _) in scenario_files(args).items():
        if len(metrics) % args.replicates:
            raise GensynthError(f"--scenario {name}: {len(metrics)} metrics files, not units of --replicates {args.replicates} chains each")
        records = load_metrics(metrics)
        for index, chain in enumerate(records):
            unit, replicate = divmod(index, args.replicates)  # unit-major
            for generation, record in enumerate(chain):
                rows.append(
                    {
                        "scenario": name,
                        "unit": unit,
                        "replicate": replicate,
                        "generation": generation,
                        **{m: record[m]["value"] for m in METRICS},
                        **{f"{m}_std": record[m]["bootstrap_std"] for m in METRICS},
                    }
                )
        fid_by_scenario[name] = np.array([[record["fid"]["value"] for record in chain] for chain in records])
    table = pd.DataFrame(rows)
    with atomic_open(args.out_table, "w", encoding="utf-8", newline="") as handle:
        table.to_csv(handle, index=False, float_format="%.6g")
    save_figure(scenario_comparison(fid_by_scenario, f"FID across generations {args.label}".strip()), args.out_figure, dpi=120)
    print(table.pivot_table(index="generation", columns="scenario", values="fid", aggfunc="mean").to_string(float_format=lambda v: f"{v:.2f}"))


if __name__ == "__main__":
    exit_main(main)

"""Scenario comparison at one w: a table of every metric per scenario, replicate and generation, and a FID figure.

Example (one metrics JSON per replicate chain):
    python scripts/madness_compare.py --scenario full_synthetic --metrics results/madness/full_synthetic/w0/rep{0,1,2}/metrics_w0.json \
        --scenario fresh --metrics results/madness/fresh/w0/rep{0,1,2}/metrics_w0.json --label "w=0" \
        --out-table results/madness/summary_w0.csv --out-figure results/madness/figures/fid_scenarios_w0.png
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from gensynth.cli import exit_main
from gensynth.io import atomic_open, save_figure
from gensynth.madness.evaluation import METRICS, add_scenario_arguments, load_metrics, scenario_files
from gensynth.madness.figures import scenario_comparison


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_scenario_arguments(parser, jacobians=False)
    parser.add_argument("--label", default="", help="figure title")
    parser.add_argument("--out-table", required=True, help="CSV: scenario, replicate, generation, each metric and its bootstrap std")
    parser.add_argument("--out-figure", required=True)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    rows, fid_by_scenario = [], {}
    for name, (metrics, _) in scenario_files(args).items():
        records = load_metrics(metrics)
        for replicate, chain in enumerate(records):
            for generation, record in enumerate(chain):
                rows.append(
                    {
                        "scenario": name,
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

"""Scenario comparison at one w: a table of every metric per scenario and generation, and a FID figure.

Example: python scripts/madness_compare.py \
    --scenario full_synthetic results/madness/full_synthetic/w0/metrics_{0,1,2,3}_w0.json \
    --scenario fresh results/madness/fresh/w0/metrics_{0,1,2,3}_w0.json --label "w=0" \
    --out-table results/madness/summary_w0.csv --out-figure results/madness/figures/fid_scenarios_w0.png
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from gensynth.cli import run_main
from gensynth.errors import GensynthError
from gensynth.io import atomic_open, load_json, save_figure
from gensynth.madness.evaluation import METRICS
from gensynth.madness.figures import scenario_comparison


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", nargs="+", action="append", required=True, metavar=("NAME", "METRICS_JSON"),
                        help="a scenario's name, then its metrics JSON of generations 0, 1, ... in order (repeat per scenario)")
    parser.add_argument("--label", default="", help="figure title")
    parser.add_argument("--out-table", required=True, help="CSV: scenario, generation, each metric and its bootstrap std")
    parser.add_argument("--out-figure", required=True)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    rows, fid_by_scenario = [], {}
    for name, *paths in args.scenario:
        if not paths:
            raise GensynthError(f"--scenario {name}: expected its metrics JSON files after the name")
        for generation, path in enumerate(paths):
            record = load_json(path)
            row = {"scenario": name, "generation": generation}
            for metric in METRICS:
                if metric not in record:
                    raise GensynthError(f"{path}: missing metric {metric!r} (expected the output of madness_metrics.py)")
                row[metric] = record[metric]["value"]
                row[f"{metric}_std"] = record[metric]["bootstrap_std"]
            rows.append(row)
        table = pd.DataFrame([r for r in rows if r["scenario"] == name])
        fid_by_scenario[name] = (table["fid"].to_numpy(), table["fid_std"].to_numpy())
    with atomic_open(args.out_table, "w", encoding="utf-8", newline="") as handle:
        pd.DataFrame(rows).to_csv(handle, index=False, float_format="%.6g")
    save_figure(scenario_comparison(fid_by_scenario, f"FID across generations {args.label}".strip()), args.out_figure, dpi=120)
    print(pd.DataFrame(rows).pivot(index="generation", columns="scenario", values="fid").to_string(float_format=lambda v: f"{v:.2f}"))


if __name__ == "__main__":
    sys.exit(run_main(main))

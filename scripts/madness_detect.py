"""Detection at one w: for every scenario, the generation at which each signal (FID, PRDC, each Jacobian
statistic at each probe timestep) departs from generation 0 beyond the spread of the loop's training-seed
replicates, Holm-corrected; the rule's error rates measured on the control scenarios and between replicates.
The rule is in gensynth.madness.detection and written into each JSON.

Example (one metrics JSON and one Jacobian NPZ per replicate chain):
    python scripts/madness_detect.py \
        --scenario full_synthetic --metrics results/madness/full_synthetic/w0/rep{0,1,2}/metrics_w0.json \
        --jacobians results/madness/full_synthetic/w0/rep{0,1,2}/jacobian_w0.npz \
        --scenario fresh --metrics ... --jacobians ... \
        --out-json full.json fresh.json --out-figure full.png fresh.png --out-error-rates rates.png
"""

from __future__ import annotations

import argparse
import logging

from gensynth.cli import exit_main
from gensynth.errors import GensynthError
from gensynth.io import save_figure, save_json
from gensynth.madness.detection import JACOBIAN_STATS, detect, jacobian_signals, load_chains, sample_signals
from gensynth.madness.evaluation import add_scenario_arguments, load_metrics, scenario_files
from gensynth.madness.figures import error_rates, signal_departures
from gensynth.madness.settings import DetectSettings
from gensynth.provenance import Provenance
from gensynth.seeding import sha256_seed
from gensynth.steps import add_settings_arguments

log = logging.getLogger("madness.detect")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_scenario_arguments(parser, jacobians=True)
    add_settings_arguments(parser, DetectSettings, "madness")
    parser.add_argument("--label", default="", help="figure titles, e.g. 'w=0'")
    parser.add_argument("--out-json", nargs="+", required=True, help="detection JSON per scenario, in --scenario order")
    parser.add_argument("--out-figure", nargs="+", required=True, help="signals figure per scenario, in --scenario order")
    parser.add_argument("--out-error-rates", required=True, help="figure: the rule's measured error rates")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if not 0 < args.alpha < 1 or args.n_bootstrap < 10:
        raise GensynthError(f"--alpha {args.alpha} (in (0, 1)) and --n-bootstrap {args.n_bootstrap} (>= 10): out of range")
    groups = scenario_files(args)
    if len(args.out_json) != len(groups) or len(args.out_figure) != len(groups):
        raise GensynthError(
            f"--out-json and --out-figure: expected one each per --scenario ({len(groups)}), got {len(args.out_json)} and {len(args.out_figure)}"
        )
    provenance = Provenance(vars(args), "cpu")
    signals = {}
    for name, (metrics, jacobians) in groups.items():
        stats, _, timesteps = load_chains(jacobians, JACOBIAN_STATS)
        signals[name] = sample_signals(load_metrics(metrics)) + jacobian_signals(stats, timesteps)
    records = detect(signals, args.alpha, args.n_bootstrap, sha256_seed("madness", args.seed, "departure-bootstrap"))
    inputs = {f"{name}_{kind}_rep{r}": p for name, files in groups.items() for kind, paths in zip(("metrics", "jacobian"), files) for r, p in enumerate(paths)}
    for (name, record), out_json, out_figure in zip(records.items(), args.out_json, args.out_figure):
        save_figure(signal_departures(record, f"{name}, {args.label}".strip(", ")), out_figure, dpi=120)
        save_json(out_json, {**record, "provenance": provenance.record(inputs)})
        log.info(
            "%s: earliest departures %s; fired on controls: %s",
            name,
            record["earliest_departure"],
            {c: r["fired"] for c, r in record["error_rates"]["controls"].items()},
        )
    save_figure(error_rates(records, args.alpha, args.label), args.out_error_rates, dpi=120)


if __name__ == "__main__":
    exit_main(main)

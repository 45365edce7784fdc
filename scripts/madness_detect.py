"""Detection at one w: full_synthetic against its matched control matched_real, paired over independent initial
models (units), for every signal (FID, PRDC, each Jacobian statistic at each probe timestep): the generation at
which it departs (Holm over the family, and per signal at the same false-alarm rate), intervals, noise, power,
and the rule's false-alarm rates measured on placebos. The rule is in gensynth.madness.detection and written into
the JSON.

Example (one metrics JSON and one Jacobian NPZ per chain, unit-major: unit0/rep0, unit0/rep1, unit1/rep0, ...):
    python scripts/madness_detect.py --initial-models 3 --replicates 2 \
        --scenario full_synthetic --metrics results/madness/full_synthetic/w0/unit{0,1,2}/rep{0,1}/metrics_w0.json \
        --jacobians results/madness/full_synthetic/w0/unit{0,1,2}/rep{0,1}/jacobian_w0.npz \
        --scenario matched_real --metrics ... --jacobians ... \
        --out-json detection_w0.json --out-figure signals_w0.png --out-error-rates error_rates_w0.png
"""

from __future__ import annotations

import argparse
import logging

from gensynth.cli import exit_main
from gensynth.errors import GensynthError
from gensynth.io import save_figure, save_json
from gensynth.madness.detection import CONTROL, JACOBIAN_STATS, TREATED, detect, jacobian_signals, load_chains, sample_signals
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
    parser.add_argument("--out-json", required=True, help="the detection record")
    parser.add_argument("--out-figure", required=True, help="figure: each signal's difference per generation")
    parser.add_argument("--out-error-rates", required=True, help="figure: the rule's false-alarm rates on placebos")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if not 0 < args.alpha < 1 or args.n_bootstrap < 10 or args.initial_models < 2 or args.replicates < 1:
        raise GensynthError(
            f"--alpha {args.alpha} (in (0, 1)), --n-bootstrap {args.n_bootstrap} (>= 10), --initial-models {args.initial_models} (>= 2) "
            f"and --replicates {args.replicates} (>= 1): out of range"
        )
    groups = scenario_files(args)
    if sorted(groups) != sorted((TREATED, CONTROL)):
        raise GensynthError(f"--scenario: expected {TREATED} and {CONTROL} once each, got {', '.join(args.scenario)}")
    provenance = Provenance(vars(args), "cpu")
    arms = {}
    for name, (metrics, jacobians) in groups.items():
        stats, _, timesteps = load_chains(jacobians, JACOBIAN_STATS)
        arms[name] = sample_signals(load_metrics(metrics), args.initial_models, args.replicates) + jacobian_signals(
            stats, timesteps, args.initial_models, args.replicates
        )
    record = detect(arms[TREATED], arms[CONTROL], args.alpha, args.n_bootstrap, sha256_seed("madness", args.seed, "detection"), args.scale)
    inputs = {f"{name}_{kind}_{c}": p for name, files in groups.items() for kind, paths in zip(("metrics", "jacobian"), files) for c, p in enumerate(paths)}
    save_figure(signal_departures(record, args.label), args.out_figure, dpi=120)
    save_figure(error_rates(record, args.label), args.out_error_rates, dpi=120)
    save_json(args.out_json, {**record, "provenance": provenance.record(inputs)})
    alarms = record["false_alarms"]
    log.info(
        "%s (%s): detected %s; earliest %s; race %s; placebo family rates within units %s, between units %s",
        args.label,
        args.scale,
        record["detected"],
        record["earliest"],
        [(row["signal"], row["delay"]) for row in record["race"]],
        None if alarms["within_units"] is None else alarms["within_units"]["family_rate"],
        None if alarms["between_units"] is None else alarms["between_units"]["family_rate"],
    )


if __name__ == "__main__":
    exit_main(main)

"""Detection for one scenario and w: the generation at which each signal (FID, PRDC, each Jacobian
statistic at each probe timestep) first departs from its generation-0 baseline, and one figure of
every signal's z-score. The rule is in gensynth.madness.detection and written into the JSON.

Example: python scripts/madness_detect.py --metrics results/madness/fresh/w0/metrics_{0,1,2,3}_w0.json \
    --jacobians results/madness/fresh/w0/jacobian_{0,1,2,3}_w0.npz --k 3 \
    --out results/madness/fresh/w0/detection_w0.json --out-figure results/madness/fresh/w0/signals_w0.png
"""

from __future__ import annotations

import argparse
import logging
import sys

from gensynth.cli import run_main
from gensynth.config import schema_default
from gensynth.errors import GensynthError
from gensynth.io import load_json, save_figure, save_json
from gensynth.madness.detection import JACOBIAN_STATS, detect, jacobian_signals, load_jacobian_stats, sample_signals
from gensynth.madness.evaluation import METRICS
from gensynth.madness.figures import signal_departures
from gensynth.provenance import Provenance
from gensynth.seeding import sha256_seed

log = logging.getLogger("madness.detect")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metrics", nargs="+", required=True, help="metrics JSON of generations 0, 1, ... in order")
    parser.add_argument("--jacobians", nargs="+", required=True, help="Jacobian NPZ of generations 0, 1, ... in order")
    parser.add_argument("--k", type=float, default=schema_default("madness", "detection.k"), help="departure threshold in standard deviations")
    parser.add_argument("--n-bootstrap", type=int, default=schema_default("madness", "detection.n_bootstrap"), help="resamples of the probe images")
    parser.add_argument("--label", default="", help="figure title")
    parser.add_argument("--seed", type=int, default=schema_default("madness", "seed"))
    parser.add_argument("--out", required=True, help="detection JSON")
    parser.add_argument("--out-figure", required=True, help="signals figure")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if len(args.metrics) != len(args.jacobians) or len(args.metrics) < 2:
        raise GensynthError(f"--metrics ({len(args.metrics)} files) and --jacobians ({len(args.jacobians)}): expected the same number, >= 2 generations")
    if args.k <= 0 or args.n_bootstrap < 2:
        raise GensynthError(f"--k {args.k} (> 0) and --n-bootstrap {args.n_bootstrap} (>= 2): out of range")
    provenance = Provenance(vars(args), "cpu")
    metrics = [load_json(path) for path in args.metrics]
    for path, record in zip(args.metrics, metrics):
        missing = [name for name in METRICS if name not in record]
        if missing:
            raise GensynthError(f"{path}: missing metric(s) {', '.join(missing)} (expected the output of madness_metrics.py)")
    stats, _, timesteps = load_jacobian_stats(args.jacobians, JACOBIAN_STATS)
    signals = sample_signals(metrics, METRICS) + jacobian_signals(stats, timesteps, JACOBIAN_STATS, args.n_bootstrap,
                                                                   sha256_seed("madness", args.seed, "probe-bootstrap"))
    detection = detect(signals, args.k)
    save_figure(signal_departures(detection, args.label), args.out_figure, dpi=120)
    inputs = {f"metrics_{g}": p for g, p in enumerate(args.metrics)} | {f"jacobian_{g}": p for g, p in enumerate(args.jacobians)}
    save_json(args.out, {**detection, "provenance": provenance.record(inputs)})
    log.info("earliest departures: %s", detection["earliest_departure"])


if __name__ == "__main__":
    sys.exit(run_main(main))

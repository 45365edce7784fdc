"""What the group's own loop at one w supports: each signal's value per generation and its change from the first,
and no departure test.

The group's files hold one chain per w. Without training-seed replicates the noise of retraining (how far
a generation's value would move under another seed) is not measured, so the change from the first
generation cannot be told from that noise and no generation is declared a departure. The JSON says so and
gives the values: FID and PRDC with their bootstrap spreads (the sampling noise of each evaluated set,
not the training noise) when the sample sets were measured, and each Jacobian statistic at each probe
timestep, its mean over the probe images and their spread. Example:
    python scripts/madness_original_detect.py --jacobian results/madness/original/w0.0/jacobian_w0.0.npz \\
        --metrics results/madness/original/w0.0/metrics_w0.0.json --out results/madness/original/w0.0/detection_w0.0.json
"""

from __future__ import annotations

import argparse
import logging

from gensynth.cli import exit_main
from gensynth.io import save_json
from gensynth.madness.settings import OriginalDetectSettings
from gensynth.provenance import Provenance
from gensynth.steps import add_settings_arguments

log = logging.getLogger("madness.original_detect")

SUPPORTS = (
    "the trajectory of every signal along this one chain: its value per generation and its change from the first "
    "generation; for FID and PRDC also the bootstrap spread of each evaluated sample set (the sampling noise of that "
    "set given its model)"
)
CANNOT_SUPPORT = (
    "a departure test: one chain per w has no training-seed replicates, so the noise of retraining (the spread of a "
    "generation's value over seeds) is not measured, and no change from the first generation can be told from it; no "
    "generation is declared a departure and no p-value is given. The bootstrap spread covers the sample set only, not "
    "retraining, so a change beyond it is no evidence of a departure either. The module's loops measure that noise over "
    "independent initial models (madness.detection.initial_models) and test against a matched real-data control"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jacobian", required=True, help="the chain's Jacobian NPZ (madness_original_jacobian.py)")
    parser.add_argument("--metrics", help="the chain's sample metrics JSON (madness_original_metrics.py); none when the sample sets were not given")
    add_settings_arguments(parser, OriginalDetectSettings, "madness")
    parser.add_argument("--label", default="", help='what the chain is, e.g. "the group\'s checkpoints, w=0.0"')
    parser.add_argument("--out", required=True, help="JSON: per signal its values and change per generation, and what one chain supports")
    return parser


def trajectory(generations: list[int], values, family: str, spread_name: str, spread) -> dict:
    first = float(values[0])
    return {
        "family": family,
        "generations": [int(g) for g in generations],
        "values": [float(v) for v in values],
        "change_from_first": [float(v) - first for v in values],
        spread_name: [float(s) for s in spread],
    }


def main(argv=None):
    args = build_parser().parse_args(argv)
    import numpy as np

    from gensynth.io import load_npz
    from gensynth.madness.detection import DROPPED, JACOBIAN_STATS, SAMPLE_METRICS, load_jacobian_stats
    from gensynth.madness.evaluation import load_metrics

    provenance = Provenance(vars(args), "cpu")
    stats, _, timesteps = load_jacobian_stats(args.jacobian, JACOBIAN_STATS)
    generations = load_npz(args.jacobian, required=("generations",))["generations"].tolist()
    signals = {}
    if args.metrics:
        (chain,) = load_metrics([args.metrics])
        sample_generations = [m.get("generation", g) for g, m in enumerate(chain)]
        for name in SAMPLE_METRICS:
            values = [m[name]["value"] for m in chain]
            signals[name] = trajectory(sample_generations, values, "sample", "bootstrap_std", [m[name]["bootstrap_std"] for m in chain])
    for t in np.unique(timesteps):
        at_t = timesteps == t
        for name in JACOBIAN_STATS:
            per_probe = np.array([g[name][at_t] for g in stats])  # (G, probes at t)
            signals[f"{name}@t={int(t)}"] = trajectory(generations, per_probe.mean(axis=1), "jacobian", "probe_std", per_probe.std(axis=1))
    save_json(
        args.out,
        {
            "label": args.label,
            "chains": 1,
            "replicates": 1,
            "departure_test": None,
            "supports": SUPPORTS,
            "cannot_support": CANNOT_SUPPORT,
            "signals": signals,
            "dropped": DROPPED,
            "provenance": provenance.record({"jacobian": args.jacobian, **({"metrics": args.metrics} if args.metrics else {})}),
        },
    )
    log.info("%s: %d signals over generations %s; no departure test (one chain, no replicates)", args.label, len(signals), generations)


if __name__ == "__main__":
    exit_main(main)

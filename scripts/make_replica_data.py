"""Data for the replicas module: the embedded brain phantom, or the test CSV of the user's test set.

    python scripts/make_replica_data.py phantom --image-size 32 --z-bins 4 \
        --train results/replicas/data/train.npz --test results/replicas/data/test.npz \
        --test-csv results/replicas/data/test_distribution.csv
    python scripts/make_replica_data.py distribution --test my_test.npz --z-bins 30 --test-csv test.csv
"""

from __future__ import annotations

import argparse

from gensynth.cli import exit_main
from gensynth.replicas.data import condition_counts, load_slice_dataset, save_slice_dataset, save_test_distribution
from gensynth.replicas.phantom import make_phantom
from gensynth.replicas.settings import PhantomConfig, ZBins
from gensynth.steps import add_settings_arguments, settings_from_args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    phantom = commands.add_parser("phantom", help="make the procedural phantom's train/test splits and test CSV")
    add_settings_arguments(phantom, PhantomConfig, "replicas")
    phantom.add_argument("--train", required=True, help="output: training slices (NPZ)")
    phantom.add_argument("--test", required=True, help="output: test slices (NPZ)")
    phantom.add_argument("--test-csv", required=True, help="output: test distribution (CSV)")
    distribution = commands.add_parser("distribution", help="the test distribution CSV of a test slice dataset")
    distribution.add_argument("--test", required=True, help="test slices (NPZ, the slice dataset format)")
    add_settings_arguments(distribution, ZBins, "replicas")
    distribution.add_argument("--test-csv", required=True, help="output: test distribution (CSV)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    if args.command == "distribution":
        save_test_distribution(args.test_csv, condition_counts(load_slice_dataset(args.test, args.z_bins)))
        return 0
    train, test, train_extra, test_extra = make_phantom(settings_from_args(PhantomConfig, args))
    save_slice_dataset(args.train, train, train_extra)
    save_slice_dataset(args.test, test, test_extra)
    save_test_distribution(args.test_csv, condition_counts(test))
    return 0


if __name__ == "__main__":
    exit_main(main)

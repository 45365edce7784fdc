"""Real images for the madness loop: digits (bundled) or MNIST IDX files -> one NPZ in [-1, 1].

Example: python scripts/madness_prepare_data.py --source mnist_idx --mnist-dir datasets/mnist \
    --image-size 28 --out results/madness/data/real.npz
"""

from __future__ import annotations

import argparse
import logging

import numpy as np

from gensynth.cli import exit_main
from gensynth.errors import GensynthError
from gensynth.io import save_json
from gensynth.madness.data import SOURCES, load_real_data, save_real_data
from gensynth.madness.settings import PrepareDataSettings
from gensynth.provenance import Provenance
from gensynth.steps import add_settings_arguments

log = logging.getLogger("madness.prepare_data")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", choices=SOURCES, required=True)
    parser.add_argument("--mnist-dir", default="", help="folder with the four MNIST IDX files (source mnist_idx)")
    add_settings_arguments(parser, PrepareDataSettings, "madness")
    parser.add_argument("--out", required=True, help="NPZ with x_train, y_train, x_test, y_test")
    parser.add_argument("--out-info", required=True, help="JSON sidecar: sizes, class counts, provenance")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.image_size < 4 or not 0.0 < args.test_fraction < 1.0 or args.max_train < 0 or args.max_test < 0:
        raise GensynthError(
            f"--image-size {args.image_size} (>= 4), --test-fraction {args.test_fraction} (in (0, 1)), "
            f"--max-train {args.max_train} / --max-test {args.max_test} (>= 0): out of range"
        )
    provenance = Provenance(vars(args), "cpu")
    data = load_real_data(args.source, args.image_size, args.seed, args.test_fraction, args.mnist_dir, args.max_train, args.max_test)
    save_real_data(args.out, data)
    info = {
        "source": args.source,
        "image_shape": list(data.x_train.shape[1:]),
        "num_train": len(data.y_train),
        "num_test": len(data.y_test),
        "train_class_counts": np.bincount(data.y_train, minlength=10).tolist(),
        "test_class_counts": np.bincount(data.y_test, minlength=10).tolist(),
        "provenance": provenance.record(outputs={"npz": args.out}),
    }
    save_json(args.out_info, info)
    log.info("%s: %d train / %d test images of shape %s", args.source, info["num_train"], info["num_test"], info["image_shape"])


if __name__ == "__main__":
    exit_main(main)

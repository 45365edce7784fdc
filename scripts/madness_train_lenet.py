"""Train the LeNet feature extractor of the madness metrics on the real training split.

Records its accuracy on the real test split; the metrics refuse it below the configured
threshold. Example: python scripts/madness_train_lenet.py --data results/madness/data/real.npz \
    --out results/madness/feature_extractor/lenet.ckpt --out-info results/madness/feature_extractor/lenet.json
"""

from __future__ import annotations

import argparse
import logging

from gensynth.cli import exit_main
from gensynth.errors import GensynthError
from gensynth.io import save_json
from gensynth.madness.settings import LeNetTrainConfig
from gensynth.provenance import Provenance
from gensynth.steps import add_settings_arguments, settings_from_args

log = logging.getLogger("madness.train_lenet")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="real-data NPZ (madness_prepare_data.py)")
    add_settings_arguments(parser, LeNetTrainConfig, "madness")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", required=True, help="checkpoint")
    parser.add_argument("--out-info", required=True, help="JSON: test accuracy, losses, provenance")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1 or args.lr <= 0:
        raise GensynthError(f"--epochs {args.epochs}, --batch-size {args.batch_size} (>= 1) and --lr {args.lr} (> 0): out of range")
    import torch

    from gensynth.device import limit_threads
    from gensynth.madness.data import load_real
    from gensynth.madness.lenet import LeNetConfig, accuracy, build_lenet, save_lenet, train_lenet

    limit_threads(args.threads)
    provenance = Provenance(vars(args), "cpu")  # a few seconds on any CPU; the metrics run it on the CPU too
    real = load_real(args.data)
    x_train, y_train = torch.from_numpy(real.x_train), torch.from_numpy(real.y_train)
    x_test, y_test = torch.from_numpy(real.x_test), torch.from_numpy(real.y_test)
    model = build_lenet(LeNetConfig(image_size=x_train.shape[-1], in_channels=x_train.shape[1]), args.seed)
    losses = train_lenet(model, x_train, y_train, settings_from_args(LeNetTrainConfig, args))
    test_accuracy = accuracy(model, x_test, y_test)
    save_lenet(args.out, model, {"test_accuracy": test_accuracy})
    info = {
        "test_accuracy": test_accuracy,
        "train_accuracy": accuracy(model, x_train, y_train),
        "epoch_losses": losses,
        "provenance": provenance.record({"data": args.data}, {"checkpoint": args.out}),
    }
    save_json(args.out_info, info)
    log.info("LeNet test accuracy %.4f (train %.4f)", info["test_accuracy"], info["train_accuracy"])


if __name__ == "__main__":
    exit_main(main)

"""FID and PRDC of the group's own sample sets (``gen_data_with_w{g}_w{w}``, ``gen_index_with_w{g}_w{w}``) of one w,
on the DAG's LeNet features against its real test split, per generation with bootstrap spreads.

The sets are tensors saved with ``torch.save`` (loaded with ``weights_only=True``), images in [0, 1] at
28x28: pixels outside [0, 1] are clipped (the share is recorded), as the module's own samples are, and
mapped to the module's [-1, 1]. The feature extractor is refused below --min-accuracy on the real test
split. Example:
    python scripts/madness_original_metrics.py --real results/madness/data/real.npz \\
        --lenet results/madness/feature_extractor/lenet.ckpt --samples originals/gen_data_with_w{0,1}_w0.0 \\
        --labels originals/gen_index_with_w{0,1}_w0.0 --generations 0 1 --out results/madness/original/w0.0/metrics_w0.0.json
"""

from __future__ import annotations

import argparse
import logging

from gensynth.cli import exit_main
from gensynth.errors import GensynthError
from gensynth.io import save_json
from gensynth.madness.original_layout import CHANNELS, IMAGE_SIZE, SAMPLE_DATA_FILE, generations_of
from gensynth.madness.settings import OriginalMetricsSettings
from gensynth.provenance import Provenance
from gensynth.steps import add_settings_arguments

log = logging.getLogger("madness.original_metrics")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", required=True, help="real-data NPZ at 28x28 (its test split is the reference)")
    parser.add_argument("--lenet", required=True, help="feature-extractor checkpoint")
    parser.add_argument("--samples", nargs="+", required=True, help="the group's gen_data_with_w{g}_w{w} files of one w, generations in order")
    parser.add_argument("--labels", nargs="+", required=True, help="their gen_index_with_w{g}_w{w} files, in the same order")
    parser.add_argument("--generations", nargs="+", type=int, help="their generations (default: read from the file names)")
    add_settings_arguments(parser, OriginalMetricsSettings, "madness")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", required=True, help="JSON: per generation each metric's value and bootstrap std, as madness_metrics.py writes")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if len(args.labels) != len(args.samples):
        raise GensynthError(f"--labels: {len(args.labels)} files for {len(args.samples)} --samples (one each)")
    generations = generations_of(args.samples, args.generations, SAMPLE_DATA_FILE, "--samples")
    if args.nearest_k < 1 or args.n_bootstrap < 0 or not 0.0 <= args.min_accuracy <= 1.0:
        raise GensynthError(
            f"--nearest-k {args.nearest_k} (>= 1), --n-bootstrap {args.n_bootstrap} (>= 0), --min-accuracy {args.min_accuracy} (in [0, 1]): out of range"
        )
    import torch

    from gensynth.device import limit_threads
    from gensynth.madness.data import load_real
    from gensynth.madness.evaluation import METRICS
    from gensynth.madness.lenet import checked_extractor, generated_set_metrics, predict
    from gensynth.madness.original_samples import load_sample_set

    limit_threads(args.threads)
    provenance = Provenance(vars(args), "cpu")
    real = load_real(args.real)
    if real.x_test.shape[1:] != (CHANNELS, IMAGE_SIZE, IMAGE_SIZE):
        raise GensynthError(
            f"{args.real}: real images of shape {real.x_test.shape[1:]}; the group's sample sets are {(CHANNELS, IMAGE_SIZE, IMAGE_SIZE)} "
            f"(madness.data.image_size: {IMAGE_SIZE})"
        )
    extractor, extractor_accuracy = checked_extractor(args.lenet, torch.from_numpy(real.x_test), torch.from_numpy(real.y_test), args.min_accuracy)
    real_features, _ = predict(extractor, torch.from_numpy(real.x_test))  # (N, 84)
    records = []
    for g, images_path, labels_path in zip(generations, args.samples, args.labels):
        x_fake, y_fake, clipped = load_sample_set(images_path, labels_path)
        if len(x_fake) <= args.nearest_k:
            raise GensynthError(f"{images_path}: {len(x_fake)} images; PRDC needs more than --nearest-k {args.nearest_k}")
        metrics, _ = generated_set_metrics(extractor, real_features, x_fake, y_fake, args.nearest_k, args.n_bootstrap, args.seed)
        records.append({"generation": g, **metrics, "clipped_fraction": clipped})  # clipped: pixels outside [0, 1] before clipping
        log.info("generation %d (%s): %s", g, images_path, ", ".join(f"{name} {metrics[name]['value']:.3f}" for name in METRICS))
    save_json(
        args.out,
        {
            "generations": records,
            "num_real": len(real_features),
            "nearest_k": args.nearest_k,
            "n_bootstrap": args.n_bootstrap,
            "extractor_test_accuracy": extractor_accuracy,
            "provenance": provenance.record(
                {
                    "real": args.real,
                    "lenet": args.lenet,
                    **{f"samples_{g}": p for g, p in zip(generations, args.samples)},
                    **{f"labels_{g}": p for g, p in zip(generations, args.labels)},
                }
            ),
        },
    )


if __name__ == "__main__":
    exit_main(main)

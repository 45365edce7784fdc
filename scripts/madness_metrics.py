"""One chain's sample metrics: per generation, FID and PRDC (with bootstrap spreads) on LeNet
features, and one t-SNE figure with a panel per generation (one job per chain: the libraries load once).

The real test split is the reference. The feature extractor is refused when its accuracy on
that split is below --min-accuracy. Example:
    python scripts/madness_metrics.py --real results/madness/data/real.npz \
        --lenet results/madness/feature_extractor/lenet.ckpt \
        --samples results/madness/fresh/w0/unit0/rep0/eval_{0,1,2,3,4}_w0.npz --label "fresh, unit 0, replicate 0, w=0" \
        --out results/madness/fresh/w0/unit0/rep0/metrics_w0.json --out-tsne results/madness/fresh/w0/unit0/rep0/tsne_w0.png
"""

from __future__ import annotations

import argparse
import logging

from gensynth.cli import exit_main
from gensynth.errors import GensynthError
from gensynth.io import save_figure, save_json
from gensynth.madness.settings import MetricsSettings
from gensynth.provenance import Provenance
from gensynth.steps import add_settings_arguments

log = logging.getLogger("madness.metrics")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", required=True, help="real-data NPZ (its test split is the reference)")
    parser.add_argument("--lenet", required=True, help="feature-extractor checkpoint")
    parser.add_argument("--samples", nargs="+", required=True, help="the chain's generated images NPZ (x, y), generations 0, 1, ...")
    parser.add_argument("--label", default="", help="figure title, e.g. 'fresh, unit 0, replicate 0, w=0'")
    add_settings_arguments(parser, MetricsSettings, "madness")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", required=True, help="JSON: per generation each metric's value and bootstrap std")
    parser.add_argument("--out-tsne", required=True, help="t-SNE figure, a panel per generation")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.nearest_k < 1 or args.n_bootstrap < 0 or args.tsne_points < 2 or not 0.0 <= args.min_accuracy <= 1.0:
        raise GensynthError(
            f"--nearest-k {args.nearest_k} (>= 1), --n-bootstrap {args.n_bootstrap} (>= 0), --tsne-points {args.tsne_points} (>= 2), "
            f"--min-accuracy {args.min_accuracy} (in [0, 1]): out of range"
        )
    import torch

    from gensynth.device import limit_threads
    from gensynth.madness.data import load_images, load_real
    from gensynth.madness.evaluation import METRICS, tsne_embedding
    from gensynth.madness.figures import tsne_panels
    from gensynth.madness.lenet import checked_extractor, generated_set_metrics, predict

    limit_threads(args.threads)
    provenance = Provenance(vars(args), "cpu")
    real = load_real(args.real)
    extractor, extractor_accuracy = checked_extractor(args.lenet, torch.from_numpy(real.x_test), torch.from_numpy(real.y_test), args.min_accuracy)
    real_features, _ = predict(extractor, torch.from_numpy(real.x_test))  # (N, 84)
    generations, panels = [], []
    for g, path in enumerate(args.samples):
        x_fake, y_fake = load_images(path)
        if x_fake.shape[1:] != real.x_test.shape[1:]:
            raise GensynthError(f"{path}: images of shape {x_fake.shape[1:]}, the real data's are {real.x_test.shape[1:]}")
        metrics, fake_features = generated_set_metrics(extractor, real_features, x_fake, y_fake, args.nearest_k, args.n_bootstrap, args.seed)
        panels.append(
            (
                *tsne_embedding(real_features, fake_features, args.tsne_points, args.tsne_perplexity, args.seed),
                f"generation {g}: FID {metrics['fid']['value']:.1f}",
            )
        )
        generations.append(metrics)
        log.info("%s: %s", path, ", ".join(f"{name} {metrics[name]['value']:.3f}" for name in METRICS))
    save_figure(tsne_panels(panels, args.label), args.out_tsne, dpi=110)
    save_json(
        args.out,
        {
            "generations": generations,
            "num_real": len(real_features),
            "nearest_k": args.nearest_k,
            "n_bootstrap": args.n_bootstrap,
            "extractor_test_accuracy": extractor_accuracy,
            "provenance": provenance.record(
                {"real": args.real, "lenet": args.lenet, **{f"samples_{g}": p for g, p in enumerate(args.samples)}}, {"tsne": args.out_tsne}
            ),
        },
    )


if __name__ == "__main__":
    exit_main(main)

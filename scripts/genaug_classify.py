"""Train the fusion classifier of one arm on one fold, once per seed; predict the fold's test patients.

    python scripts/genaug_classify.py --dataset results/genaug/data/dataset.npz --fold 0 --arm baseline \
        --no-use-generative-augmentation --seeds 0 1 2 --out-predictions results/genaug/runs/baseline/fold0.npz \
        --out-history results/genaug/runs/baseline/fold0.json --out-model results/genaug/runs/baseline/fold0.ckpt
    python scripts/genaug_classify.py ... --arm augmented --use-generative-augmentation --models results/genaug/models/fold0 \
        --depth-rgb-prob 0.5 --depth-rgb-mix-ratio-range 0.01 0.05 --depth-rgb-inference-steps 10 ...
    python scripts/genaug_classify.py ... --arm dose50_add --use-generative-augmentation --augment-mode add \
        --pools results/genaug/pools/fold0/steps10.npz --depth-rgb-prob 1 --depth-rgb-mix-ratio-range 0.5 0.5 ...

With the switch on, every training batch goes through the mixing rule (gensynth.genaug.mixing) for
each enabled modality, drawing from the pipelines in ``--models`` (the group's {kind}_{phase}
folders, sampled per batch) or from their pre-generated ``--pools``; ``--augment-source`` makes the
negative (wrong_phase) or positive (real) control, ``--augment-mode`` replaces or adds
(gensynth.genaug.sources). Validation and test visits are never augmented. The log and the history
record each epoch's synthetic images and the model cache's hit rate.

Outputs: predictions (NPZ: seed, partition, train_fraction, index, label, prediction, probabilities,
one row per test visit and seed), the EMA weights per seed (checkpoint), the history (JSON, with provenance).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from gensynth.cli import add_device_arguments, exit_main
from gensynth.errors import GensynthError
from gensynth.genaug.augmentation import PHASES, model_folder
from gensynth.genaug.flags import add_augmentation_arguments, configs_from_args, prompts_from_arg
from gensynth.genaug.settings import ClassifierSettings, ClassifySettings
from gensynth.genaug.sources import MODES, SOURCES
from gensynth.io import save_checkpoint, save_json, save_npz, sha256_file
from gensynth.provenance import Provenance
from gensynth.steps import add_settings_arguments, narrow, settings_from_args

log = logging.getLogger("genaug_classify")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, help="the dataset NPZ (scripts/genaug_data.py)")
    parser.add_argument("--fold", type=int, required=True, help="the fold: train on its training patients, predict its test patients")
    parser.add_argument("--arm", required=True, help="the arm (baseline, augmented, augmented_prob0.3, ...), recorded in the outputs")
    parser.add_argument("--models", type=Path, help="the fold's model folders ({kind}_{phase}), sampled per batch")
    parser.add_argument("--pools", nargs="+", type=Path, help="the fold's pools of synthetic images (scripts/genaug_pool.py), instead of --models")
    parser.add_argument("--augment-source", choices=SOURCES, default="generated", help="generated, wrong_phase (negative control) or real (positive control)")
    parser.add_argument("--augment-mode", choices=MODES, default="replace", help="replace a visit's image, or add a swapped copy of the visit")
    add_settings_arguments(parser, ClassifySettings, "genaug")
    add_augmentation_arguments(parser)
    parser.add_argument("--out-predictions", required=True, help="output: test predictions (NPZ)")
    parser.add_argument("--out-model", required=True, help="output: the EMA weights per seed (checkpoint)")
    parser.add_argument("--out-history", required=True, help="output: per seed and epoch, losses, synthetic counts, cache hit rate (JSON)")
    add_device_arguments(parser)
    return parser


def model_weights(models: Path, configs) -> dict[str, Path]:
    """The safetensors files of the pipelines the enabled modalities draw from (provenance and resume fingerprint)."""
    folders = sorted({model_folder(m, p) for m, c in configs.items() if c.enabled for p in PHASES})
    return {str(path.relative_to(models)): path for folder in folders for path in sorted((models / folder).rglob("*.safetensors"))}


def image_source(args, configs, dataset, device):
    """Where an augmenting arm's images come from, and the files behind them (provenance and resume fingerprint):
    the split's real training images, its pools, or its pipelines sampled per batch."""
    from gensynth.genaug.sources import RealImages, SyntheticPool

    if args.augment_source == "real":
        return RealImages(dataset, args.fold), {}
    if args.pools:
        return SyntheticPool.load(args.pools, configs), {path.name: path for path in args.pools}
    from gensynth.genaug.manager import GenerativeAugmentationManager  # diffusers: only for per-batch sampling

    return GenerativeAugmentationManager(args.models, configs, device, prompts_from_arg(args.prompts)), model_weights(args.models, configs)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    import numpy as np

    from gensynth.device import use_device
    from gensynth.genaug.classifier import Mixer, held_out_predictions, train_classifier
    from gensynth.genaug.data import load_dataset
    from gensynth.training import discard_resume_state, resume_path, run_fingerprint

    device = use_device(args)
    step = settings_from_args(ClassifySettings, args)
    settings = narrow(step, ClassifierSettings)
    configs = configs_from_args(args)
    augmenting = any(c.enabled for c in configs.values())
    synthetic = augmenting and args.augment_source != "real"
    if synthetic and (args.models is None) == (args.pools is None):
        raise GensynthError(
            "--models or --pools (one of them): the pipelines or their pools are needed when augmenting with synthetic images "
            f"(--use-generative-augmentation with an enabled modality, --augment-source {args.augment_source})"
        )
    config = {
        "arm": args.arm,
        "fold": args.fold,
        "seeds": list(step.seeds),
        "classifier": dataclasses.asdict(settings),
        "augmentation": {m: dataclasses.asdict(c) for m, c in configs.items()},
        "augmenting": augmenting,
        "augment_source": args.augment_source if augmenting else None,
        "augment_mode": args.augment_mode if augmenting else None,
    }
    provenance = Provenance(config, str(device))
    dataset = load_dataset(args.dataset)
    split = dataset.plan.describe(args.fold)
    source, weights = image_source(args, configs, dataset, device) if augmenting else (None, {})
    digest = run_fingerprint(dataset=sha256_file(args.dataset), models={name: sha256_file(path) for name, path in weights.items()})

    predictions, states, histories = [], {}, {}
    resumes = {seed: resume_path(args.out_model, f"seed{seed}") for seed in step.seeds}
    for seed in step.seeds:
        mixer = None
        if source is not None:
            mixer = Mixer(source, configs, seed, dataset.image_size, args.augment_mode, args.augment_source == "wrong_phase")
        trainer, history = train_classifier(dataset, args.fold, seed, settings, device, mixer, resumes[seed], digest, args.arm)
        held_out = held_out_predictions(trainer, dataset, args.fold)
        accuracy = float((held_out["prediction"] == held_out["label"]).mean())
        log.info("%s fold %d seed %d: test accuracy %.3f on %d visits", args.arm, args.fold, seed, accuracy, len(held_out["label"]))
        n = len(held_out["index"])
        run = {"seed": np.full(n, seed, dtype=np.int64), "partition": np.full(n, split["partition"], dtype=np.int64)}
        predictions.append({**run, "train_fraction": np.full(n, split["train_fraction"]), **held_out})
        states[str(seed)] = trainer.ema_state_dict()
        histories[str(seed)] = {
            "epochs": history,
            "test_accuracy": accuracy,
            "synthetic": int(sum(r["synthetic"] for r in history)),
            "synthetic_per_epoch": float(np.mean([r["synthetic"] for r in history])),
        }

    save_npz(args.out_predictions, {key: np.concatenate([p[key] for p in predictions]) for key in predictions[0]})
    save_checkpoint(args.out_model, {"width": settings.width, "seeds": list(step.seeds), "state_dicts": states})
    cache = source.cache_info().as_dict() if hasattr(source, "cache_info") else None
    save_json(
        args.out_history,
        {
            **config,
            "split": split,
            "cache": cache,
            "seeds_history": histories,
            "provenance": provenance.record({"dataset": args.dataset, **weights}, {"predictions": args.out_predictions, "model": args.out_model}),
        },
    )
    discard_resume_state(*resumes.values())
    if hasattr(source, "close"):
        source.close()
    return 0


if __name__ == "__main__":
    exit_main(main)

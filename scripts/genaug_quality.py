"""FID of each pipeline's samples against the real images of its phase, on the fold's baseline classifier's features.

    python scripts/genaug_quality.py --dataset results/genaug/data/dataset.npz --fold 0 \
        --classifier results/genaug/runs/baseline/fold0.ckpt --models results/genaug/models/fold0 \
        --folders rgb_I rgb_P rgb_R --inference-steps 10 20 50 --n-samples 64 \
        --out results/genaug/quality/fold0.json --out-samples results/genaug/quality/fold0_samples.png

For every folder, modality drawing from it and step count: ``fid_synthetic`` (samples vs the
fold's training images of the phase) beside ``fid_heldout`` (the fold's test images of the phase vs
the same training images), the floor to read it against (gensynth.genaug.quality). The figure shows,
per folder, the first samples at the first step count above real training images.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gensynth.cli import add_device_arguments, exit_main
from gensynth.genaug.augmentation import MODALITIES, MODEL_FOLDERS, MODEL_KIND, augmentation_configs
from gensynth.genaug.flags import default, flag_name, prompts_from_arg
from gensynth.genaug.settings import QualitySettings
from gensynth.io import save_json
from gensynth.provenance import Provenance
from gensynth.steps import add_settings_arguments

SHOWN = 8  # images per row of the figure


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, help="the dataset NPZ (scripts/genaug_data.py)")
    parser.add_argument("--fold", type=int, required=True)
    parser.add_argument("--classifier", required=True, help="the fold's baseline classifier (--out-model of genaug_classify.py)")
    parser.add_argument("--models", required=True, type=Path, help="the fold's model folders ({kind}_{phase})")
    parser.add_argument("--folders", nargs="+", required=True, choices=MODEL_FOLDERS, help="the folders to assess")
    parser.add_argument(
        "--inference-steps", type=int, nargs="+", default=[default("modalities.depth_rgb.inference_steps")], help="DDIM step counts to sample at"
    )
    add_settings_arguments(parser, QualitySettings, "genaug")
    parser.add_argument("--prompts", default=default("prompts"), help="prompt templates of Stable Diffusion folders")
    for modality in MODALITIES:
        for key in ("batch_limit", "guidance_scale"):
            value = default(f"modalities.{modality}.{key}")
            parser.add_argument(flag_name(modality, key), dest=f"{modality}_{key}", type=type(value), default=value)
    parser.add_argument("--out", required=True, help="output: one row per folder, modality and step count (JSON, with provenance)")
    parser.add_argument("--out-samples", required=True, help="output: samples beside real images (PNG)")
    add_device_arguments(parser)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from gensynth.device import use_device
    from gensynth.genaug.classifier import load_classifier
    from gensynth.genaug.data import TRAIN, load_dataset
    from gensynth.genaug.figures import samples_figure
    from gensynth.genaug.manager import GenerativeAugmentationManager
    from gensynth.genaug.pipelines import split_folder
    from gensynth.genaug.quality import generate_many, phase_images, pipeline_quality

    device = use_device(args)
    provenance = Provenance({k: v for k, v in vars(args).items() if k not in ("threads", "device")}, str(device))
    dataset = load_dataset(args.dataset)
    model = load_classifier(args.classifier, device)
    prompts = prompts_from_arg(args.prompts)
    kinds = {split_folder(folder)[0] for folder in args.folders}
    drawing = [m for m in MODALITIES if MODEL_KIND[m] in kinds]
    rows, panels = [], []
    for folder in args.folders:
        managers = {}
        for steps in args.inference_steps:
            # Every modality drawing from the folders, one pipeline in memory at a time (the folders come one after another).
            section = {
                "use_generative_augmentation": True,
                "modalities": {
                    m: {
                        "enabled": m in drawing,
                        "inference_steps": steps,
                        "max_models": 1,
                        "batch_limit": getattr(args, f"{m}_batch_limit"),
                        "guidance_scale": getattr(args, f"{m}_guidance_scale"),
                    }
                    for m in MODALITIES
                },
            }
            managers[steps] = GenerativeAugmentationManager(args.models, augmentation_configs(section, "flags"), device, prompts)
        rows += pipeline_quality(managers, model, dataset, args.fold, folder, args.n_samples, args.seed)
        kind, phase = split_folder(folder)
        modality = next(m for m in drawing if MODEL_KIND[m] == kind)
        shown = generate_many(managers[args.inference_steps[0]], modality, phase, SHOWN, args.seed, dataset.image_size)
        real = phase_images(dataset, args.fold, TRAIN, modality, phase)[:SHOWN]
        panels.append((f"{folder} ({args.inference_steps[0]} steps)", shown, real))
        for manager in managers.values():
            manager.close()
    weights = {f"{folder}/{p.relative_to(args.models / folder)}": p for folder in args.folders for p in sorted((args.models / folder).rglob("*.safetensors"))}
    save_json(args.out, {"fold": args.fold, "rows": rows, "provenance": provenance.record({"dataset": args.dataset, "classifier": args.classifier, **weights})})
    samples_figure(panels, args.out_samples)
    for row in rows:
        print(
            f"{row['folder']:>13} {row['modality']:>11} {row['inference_steps']:3d} steps: FID synthetic {row['fid_synthetic']}, "
            f"held-out real {row['fid_heldout']}"
        )
    return 0


if __name__ == "__main__":
    exit_main(main)

"""Train one per-(modality, phase) diffusion pipeline on one fold's training patients; save it as the group's model folder.

    python scripts/genaug_train_pipeline.py --dataset results/genaug/data/dataset.npz --fold 0 --folder rgb_I \
        --out results/genaug/models/fold0/rgb_I --out-info results/genaug/models/fold0/rgb_I.json \
        --device auto

The folder is a diffusers DDIMPipeline (save_pretrained, safetensors): model_index.json, unet/,
scheduler/; GenerativeAugmentationManager loads it with from_pretrained. The run's state
lives beside the folder (``.rgb_I.resume``): a rerun after a kill continues from the last save.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from gensynth.cli import add_device_arguments, exit_main
from gensynth.genaug.augmentation import MODEL_FOLDERS
from gensynth.genaug.settings import PipelineSettings
from gensynth.io import save_json
from gensynth.provenance import Provenance
from gensynth.steps import add_settings_arguments, settings_from_args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, help="the dataset NPZ (scripts/genaug_data.py)")
    parser.add_argument("--fold", type=int, required=True, help="whose training patients the pipeline learns from")
    parser.add_argument("--folder", required=True, choices=MODEL_FOLDERS, help="the model folder: {kind}_{phase}")
    parser.add_argument("--out", required=True, type=Path, help="output: the pipeline folder")
    parser.add_argument("--out-info", required=True, help="output: loss history and settings (JSON, with provenance)")
    add_settings_arguments(parser, PipelineSettings, "genaug")
    add_device_arguments(parser)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from gensynth.device import use_device
    from gensynth.genaug.data import load_dataset
    from gensynth.genaug.pipelines import save_pipeline, train_pipeline, training_images
    from gensynth.training import discard_resume_state, resume_path

    device = use_device(args)
    settings = settings_from_args(PipelineSettings, args)
    provenance = Provenance({"fold": args.fold, "folder": args.folder, "pipeline": dataclasses.asdict(settings)}, str(device))
    dataset = load_dataset(args.dataset)
    images = training_images(dataset, args.fold, args.folder)
    pipeline, history = train_pipeline(images, settings, device, resume_path(args.out), args.fold, args.folder)
    save_pipeline(pipeline, args.out)
    save_json(
        args.out_info,
        {
            "fold": args.fold,
            "folder": args.folder,
            "n_images": len(images),
            "image_size": dataset.image_size,
            "parameters": sum(p.numel() for p in pipeline.unet.parameters()),
            "history": history,
            "provenance": provenance.record(
                {"dataset": args.dataset}, {str(path.relative_to(args.out.parent)): path for path in sorted(args.out.rglob("*")) if path.is_file()}
            ),
        },
    )
    discard_resume_state(resume_path(args.out))
    print(f"{args.folder}, fold {args.fold}: {len(images)} images, final loss {history[-1]['loss']:.4f} -> {args.out}")
    return 0


if __name__ == "__main__":
    exit_main(main)

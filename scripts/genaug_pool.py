"""Pre-generate a split's pool of synthetic images: per model folder, n images at one DDIM step count.

    python scripts/genaug_pool.py --dataset results/genaug/data/dataset.npz --fold 0 \
        --models results/genaug/models/fold0 --folders rgb_I rgb_P rgb_R --inference-steps 10 \
        --n-images 256 --seed 0 --out results/genaug/pools/fold0/steps10.npz

The pool (NPZ: one (n, C, S, S) float32 array per folder, ``inference_steps``) is what the augmented
arms draw from with replacement (gensynth.genaug.sources.SyntheticPool): every arm of a split sees
images of the same pipelines, made once. Image i of a folder depends only on (seed, split, step
count, folder, i), whatever n.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gensynth.cli import add_device_arguments, exit_main
from gensynth.genaug.augmentation import MODEL_FOLDERS
from gensynth.genaug.flags import default


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, help="the dataset NPZ (its image size)")
    parser.add_argument("--fold", type=int, required=True, help="the split the pipelines learned from (part of the images' seeds)")
    parser.add_argument("--models", required=True, type=Path, help="the split's model folders ({kind}_{phase})")
    parser.add_argument("--folders", nargs="+", required=True, choices=MODEL_FOLDERS, help="the folders to sample")
    parser.add_argument("--inference-steps", type=int, required=True, help="DDIM steps per image")
    parser.add_argument("--n-images", type=int, default=default("pools.size"), help="images per folder")
    parser.add_argument("--seed", type=int, default=default("pools.seed"), help="root of the images' seeds")
    parser.add_argument("--out", required=True, help="output: the pool (NPZ)")
    add_device_arguments(parser)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    import numpy as np

    from gensynth.device import use_device
    from gensynth.genaug.data import load_dataset
    from gensynth.genaug.quality import folder_sampler, generate_many
    from gensynth.io import save_npz
    from gensynth.seeding import sha256_seed

    device = use_device(args)
    size = load_dataset(args.dataset).image_size
    pool = {"inference_steps": np.int64(args.inference_steps)}
    for folder in args.folders:
        with folder_sampler(args.models, folder, args.inference_steps, device) as (manager, modality, phase):
            seed = sha256_seed("genaug-pool", args.seed, args.fold, args.inference_steps, folder)
            pool[folder] = generate_many(manager, modality, phase, args.n_images, seed, size)
        print(f"{folder}: {args.n_images} images at {args.inference_steps} steps, mean {pool[folder].mean():.3f}")
    save_npz(args.out, pool)
    return 0


if __name__ == "__main__":
    exit_main(main)

"""Generate one replica: every sample of the test distribution, with DDIM, seeded per sample.

Writes the replica (``--out``: images, masks, zbin, lesion_present, domain, condition_token,
seed, k_index, replica_id) and its metadata (``--out-meta``). Sample i's seed
is ``sha256_seed(seed_base, replica_id, zbin, lesion_present, domain_int, k_index)`` and
its noise comes from its own generator, so the batch size does not change the samples.

    python scripts/generate_replicas.py --checkpoint results/replicas/model/best.ckpt \
        --config results/replicas/model/config.yaml --test-csv results/replicas/data/test_distribution.csv \
        --replica-id 0 --out results/replicas/replica_000.npz \
        --out-meta results/replicas/replica_000_meta.json
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from gensynth.cli import add_device_arguments, exit_main
from gensynth.errors import GensynthError
from gensynth.io import save_json, save_npz
from gensynth.provenance import Provenance
from gensynth.replicas.settings import GenerateReplicaSettings
from gensynth.steps import add_settings_arguments

log = logging.getLogger("generate_replicas")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, type=Path, help="the trained model (best.ckpt)")
    parser.add_argument("--config", required=True, type=Path, help="the model's config.yaml, written beside best.ckpt")
    parser.add_argument("--test-csv", required=True, type=Path, help="test distribution: zbin, lesion_present, domain, n_slices")
    parser.add_argument("--replica-id", required=True, type=int)
    parser.add_argument("--out", required=True, type=Path, help="output: the replica (NPZ)")
    parser.add_argument("--out-meta", required=True, type=Path, help="output: its seeds, settings and provenance (JSON)")
    add_settings_arguments(parser, GenerateReplicaSettings, "replicas")
    add_device_arguments(parser)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.replica_id < 0:
        raise GensynthError(f"--replica-id {args.replica_id}: expected an integer >= 0")

    from gensynth.device import use_device
    from gensynth.diffusion import SamplerSettings, load_model_checkpoint
    from gensynth.replicas.data import load_test_distribution
    from gensynth.replicas.generate import generate_replica, plan_replica, replica_meta
    from gensynth.replicas.train import load_model_config

    device = use_device(args)
    settings = SamplerSettings(args.num_inference_steps, args.batch_size, eta=args.eta, guidance_scale=args.guidance_scale)
    provenance = Provenance(vars(args), str(device))
    model_config = load_model_config(args.config)
    z_bins = model_config["z_bins"]
    distribution = load_test_distribution(args.test_csv, z_bins)
    loaded = load_model_checkpoint(args.checkpoint, expected_cfg=model_config["unet_config"], use_ema=args.use_ema, device=device)
    checkpoint_z_bins = loaded.state.get("extra", {}).get("z_bins")
    if checkpoint_z_bins != z_bins:
        raise GensynthError(f"{args.checkpoint}: trained with z_bins = {checkpoint_z_bins}, but {args.config} says {z_bins}")
    if args.use_ema and not loaded.ema_loaded:
        log.warning("%s has no EMA weights: sampling with the raw weights", args.checkpoint)

    plan = plan_replica(distribution, z_bins, args.seed_base, args.replica_id)
    log.info("replica %d: %d samples in %d conditions, %d DDIM steps", args.replica_id, len(plan["seed"]), len(distribution), settings.num_inference_steps)
    arrays = generate_replica(loaded.model, loaded.scheduler_config, plan, settings)
    save_npz(args.out, arrays)
    meta = replica_meta(
        args.replica_id,
        args.seed_base,
        plan,
        n_conditions=len(distribution),
        checkpoint_path=str(args.checkpoint),
        config_path=str(args.config),
        z_bins=z_bins,
        settings=settings,
        use_ema=args.use_ema,
        ema_loaded=loaded.ema_loaded,
        provenance=provenance.record({"checkpoint": args.checkpoint, "config": args.config, "test_csv": args.test_csv}, {"npz": args.out}),
    )
    save_json(args.out_meta, meta)
    return 0


if __name__ == "__main__":
    exit_main(main)

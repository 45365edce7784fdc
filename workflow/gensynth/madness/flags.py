"""The flags the madness scripts share, one group per config section, torch-free: a script declares them
before it imports torch."""

from __future__ import annotations

import argparse

from ..config import schema_default
from ..diffusion.settings import SAMPLERS

JACOBIAN_METHODS = ("auto", "exact", "lanczos")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model and noise schedule (madness.model)")
    group.add_argument(
        "--architecture",
        choices=("unet2d", "context_unet"),
        default=schema_default("madness", "model.architecture"),
        help="unet2d (diffusers' UNet2DModel) or the group's context_unet",
    )
    group.add_argument(
        "--block-out-channels",
        type=int,
        nargs="+",
        default=schema_default("madness", "model.block_out_channels"),
        help="channels per level (context_unet: n_feat 2*n_feat)",
    )
    group.add_argument("--layers-per-block", type=int, default=schema_default("madness", "model.layers_per_block"))
    group.add_argument(
        "--attention", action=argparse.BooleanOptionalAction, default=schema_default("madness", "model.attention"), help="self-attention below the top level"
    )
    group.add_argument("--n-t", type=int, default=schema_default("madness", "model.n_T"), help="diffusion timesteps n_T (linear betas)")
    group.add_argument("--beta-start", type=float, default=schema_default("madness", "model.beta_start"))
    group.add_argument("--beta-end", type=float, default=schema_default("madness", "model.beta_end"))


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training (madness.train)")
    group.add_argument(
        "--checkpoint-every",
        type=float,
        default=600.0,
        help="seconds between resumable checkpoints (.<out>.resume beside the model; a rerun continues from it)",
    )
    group.add_argument("--lr", type=float, default=schema_default("madness", "train.lr"))
    group.add_argument("--batch-size", type=int, default=schema_default("madness", "train.batch_size"))
    group.add_argument("--cond-dropout", type=float, default=schema_default("madness", "train.cond_dropout"), help="probability of the null condition")
    group.add_argument("--ema-decay", type=float, default=schema_default("madness", "train.ema_decay"))


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("sampling (madness.sampling)")
    group.add_argument("--sampler", choices=SAMPLERS, default=schema_default("madness", "sampling.sampler"))
    group.add_argument("--num-inference-steps", type=int, default=schema_default("madness", "sampling.num_inference_steps"))
    group.add_argument("--eta", type=float, default=schema_default("madness", "sampling.eta"))
    group.add_argument(
        "--max-c",
        type=int,
        default=schema_default("madness", "sampling.max_c"),
        help="images per sampling batch (the group's max_c; does not change the images)",
    )

"""Tiny random-weight diffusers pipelines, assembled offline, for tests and the benchmark.

``build_tiny_sd_pipeline`` saves a StableDiffusionPipeline of the same component classes as the group's
fine-tuned models (CLIP text encoder and tokenizer, conditional UNet, KL autoencoder, DDIM scheduler),
each a few hundred thousand parameters; nothing is downloaded: the tokenizer is a byte-level BPE
vocabulary built here (the 256 byte symbols, the same with ``</w>``, start and end of text; no merges),
so it tokenises any prompt, one token per byte. ``build_ddim_pipeline`` saves an unconditional
DDIMPipeline of a UNet2DModel, the kind of folder the per-(modality, phase) training writes.
Both write safetensors weights through ``save_pretrained`` and load with ``from_pretrained``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import DDIMPipeline, DDIMScheduler

TOKENIZER_MAX_LENGTH = 77  # CLIP's context length, as in Stable Diffusion
TEXT_WIDTH = 32  # CLIP hidden size = the UNet's cross-attention width
# Stable Diffusion v1's scheduler settings (its scheduler_config.json), so the pipeline warns of nothing.
SD_SCHEDULER = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "clip_sample": False, "set_alpha_to_one": False, "steps_offset": 1}


def byte_level_vocab() -> dict[str, int]:
    """CLIP's byte-level BPE symbols without merges: 256 bytes, 256 word-final bytes, start and end (514)."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [f"{symbol}</w>" for symbol in symbols] + ["<|startoftext|>", "<|endoftext|>"]
    return {token: index for index, token in enumerate(tokens)}


def build_tiny_sd_pipeline(out_dir: str | Path, image_size: int = 16, seed: int = 0) -> Path:
    """Save a tiny random StableDiffusionPipeline to ``out_dir`` (images of ``image_size``, a multiple of 4)."""
    # Here, not at the top: the DDIM pipelines need no transformers.
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    if image_size < 4 or image_size % 4:
        raise ValueError(f"image_size {image_size}: expected a multiple of 4 (the autoencoder halves it, the UNet halves the latents)")
    vocab = byte_level_vocab()
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=TOKENIZER_MAX_LENGTH)
    torch.manual_seed(seed)  # the components' random initial weights
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(vocab),
            hidden_size=TEXT_WIDTH,
            intermediate_size=2 * TEXT_WIDTH,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=TOKENIZER_MAX_LENGTH,
            projection_dim=TEXT_WIDTH,
            bos_token_id=vocab["<|startoftext|>"],
            eos_token_id=vocab["<|endoftext|>"],
            pad_token_id=vocab["<|endoftext|>"],
        )
    )
    vae = AutoencoderKL(  # two blocks: the latents are half the image's side
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(32, 64),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        sample_size=image_size,
    )
    unet = UNet2DConditionModel(
        sample_size=image_size // 2,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=TEXT_WIDTH,
        attention_head_dim=8,
    )
    pipeline = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=DDIMScheduler(**SD_SCHEDULER),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipeline.save_pretrained(out_dir, safe_serialization=True)
    return Path(out_dir)


def build_ddim_pipeline(
    out_dir: str | Path,
    channels: int = 3,
    image_size: int = 32,
    block_out_channels: tuple[int, ...] = (32, 64, 64),
    layers_per_block: int = 1,
    seed: int = 0,
) -> Path:
    """Save a random DDIMPipeline of the pipelines' UNet (gensynth.genaug.pipelines) to ``out_dir``."""
    from .pipelines import unconditional_unet

    torch.manual_seed(seed)
    unet = unconditional_unet(channels, image_size, block_out_channels, layers_per_block)
    DDIMPipeline(unet=unet, scheduler=DDIMScheduler()).save_pretrained(out_dir, safe_serialization=True)
    return Path(out_dir)

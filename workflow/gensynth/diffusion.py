"""Class-conditional diffusion on diffusers: model, training loss, EMA, sampler, checkpoints.

Shared by the replicas and madness modules. Notation (Ho et al. 2020, DDPM; Song et al.
2021, DDIM; Ho & Salimans 2022, classifier-free guidance):

====================  ==========================================================
``x0``                clean sample, (B, C, H, W), values in [-1, 1]
``t``                 training timestep in [0, T)
``eps``               Gaussian noise; the UNet predicts it: ``eps_theta(x_t, t, y)``
``y``                 condition token in [0, K); token ``K`` is the null token
``s``                 guidance scale: ``eps = eps(x_t, null) + s (eps(x_t, y) - eps(x_t, null))``
====================  ==========================================================

Sampling draws each sample's initial noise and per-step noise from its own
``torch.Generator`` (diffusers' ``randn_tensor`` with a list of generators), so sample *i*
depends only on ``generators[i]``, not on the batch it was drawn in.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal, get_args

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel
from diffusers.training_utils import EMAModel
from diffusers.utils.torch_utils import randn_tensor

from .context_unet import ContextUnet
from .device import autocast
from .errors import GensynthError
from .io import load_checkpoint, save_checkpoint
from .progress import progress
from .seeding import torch_generator

CHECKPOINT_FORMAT = "gensynth.diffusion/1"
SamplerKind = Literal["ddim", "ddpm"]
Architecture = Literal["unet2d", "context_unet"]
ARCHITECTURES = get_args(Architecture)
Denoiser = UNet2DModel | ContextUnet  # what build_unet returns; both take (x_t, t, class_labels=y)


@dataclass
class UNetConfig:
    """Settings of the conditional UNet; stored in every checkpoint as a plain dict."""

    sample_size: int  # H = W
    in_channels: int  # C
    out_channels: int  # C (eps has the data's shape)
    num_classes: int  # K real condition tokens; token K is the null token
    block_out_channels: tuple[int, ...] = (32, 64, 64)  # one resolution level each
    layers_per_block: int = 1
    attention: bool = True  # self-attention on every level but the first (the mid block always has one)
    norm_num_groups: int = 8
    # None: one head as wide as its level (Ho et al.'s DDPM). diffusers' default of 8 makes
    # channels/8 heads, each with its own tokens x tokens score matrix: 6-7x slower at 128x128.
    attention_head_dim: int | None = None
    # unet2d: diffusers' UNet2DModel from the settings above; context_unet: the madness seed's
    # ContextUnet (gensynth.context_unet), block_out_channels [n_feat, 2 n_feat], no attention
    architecture: Architecture = "unet2d"
    num_train_timesteps: int | None = None  # context_unet only: its time input is t / num_train_timesteps

    def __post_init__(self):
        self.block_out_channels = tuple(int(c) for c in self.block_out_channels)
        if self.architecture not in ARCHITECTURES:
            raise GensynthError(f"UNet architecture {self.architecture!r}: expected one of {', '.join(ARCHITECTURES)}")
        if self.architecture == "context_unet":
            self._check_context_unet()
        if any(c % self.norm_num_groups for c in self.block_out_channels):
            raise GensynthError(
                f"UNet block_out_channels {list(self.block_out_channels)}: each must be a multiple of "
                f"norm_num_groups={self.norm_num_groups}"
            )
        if self.sample_size % 2 ** (len(self.block_out_channels) - 1):
            raise GensynthError(
                f"UNet sample_size {self.sample_size}: must be divisible by 2**{len(self.block_out_channels) - 1} "
                f"for {len(self.block_out_channels)} resolution levels"
            )

    def _check_context_unet(self) -> None:
        channels = list(self.block_out_channels)
        if len(channels) != 2 or channels[1] != 2 * channels[0]:
            raise GensynthError(f"context_unet: block_out_channels {channels}; expected [n_feat, 2 * n_feat] (its two levels)")
        if self.attention or self.layers_per_block != 1:
            raise GensynthError(
                f"context_unet: attention {self.attention}, layers_per_block {self.layers_per_block}; "
                "it has no attention and one block per level (set attention false, layers_per_block 1)"
            )
        if self.sample_size % 4:
            raise GensynthError(f"context_unet: sample_size {self.sample_size}; expected a multiple of 4 (two 2x poolings)")
        if not self.num_train_timesteps or self.num_train_timesteps < 1:
            raise GensynthError(f"context_unet: num_train_timesteps {self.num_train_timesteps}; expected the schedule's T >= 1")

    @property
    def null_token(self) -> int:
        return self.num_classes

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> UNetConfig:
        """The inverse of :meth:`to_dict`. Settings written before ``attention_head_dim``
        existed ran diffusers' default of 8."""
        return cls(**{"attention_head_dim": 8, **values})

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "block_out_channels": list(self.block_out_channels)}


def build_unet(cfg: UNetConfig) -> Denoiser:
    if cfg.architecture == "context_unet":
        return ContextUnet(
            sample_size=cfg.sample_size,
            in_channels=cfg.in_channels,
            out_channels=cfg.out_channels,
            n_feat=cfg.block_out_channels[0],
            num_class_embeds=cfg.num_classes + 1,
            num_train_timesteps=cfg.num_train_timesteps,
            norm_num_groups=cfg.norm_num_groups,
        )
    levels = len(cfg.block_out_channels)
    attn = [cfg.attention and level > 0 for level in range(levels)]
    return UNet2DModel(
        sample_size=cfg.sample_size,
        in_channels=cfg.in_channels,
        out_channels=cfg.out_channels,
        block_out_channels=cfg.block_out_channels,
        layers_per_block=cfg.layers_per_block,
        down_block_types=tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attn),
        up_block_types=tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn)),
        norm_num_groups=cfg.norm_num_groups,
        num_class_embeds=cfg.num_classes + 1,
        attention_head_dim=cfg.attention_head_dim,
    )


def make_train_scheduler(
    num_train_timesteps: int,
    beta_schedule: str = "linear",
    beta_start: float = 1e-4,
    beta_end: float = 0.02,
    prediction_type: Literal["epsilon", "v_prediction"] = "epsilon",
) -> DDPMScheduler:
    """``prediction_type`` is the UNet's target; v (Salimans & Ho 2022) learns the high-noise end much faster."""
    return DDPMScheduler(
        num_train_timesteps=num_train_timesteps,
        beta_schedule=beta_schedule,
        beta_start=beta_start,
        beta_end=beta_end,
        prediction_type=prediction_type,
        clip_sample=True,
    )


def scheduler_config(scheduler) -> dict[str, Any]:
    """The scheduler's settings as a plain dict (diffusers' private keys dropped)."""
    return {key: value for key, value in scheduler.config.items() if not key.startswith("_")}


def make_sampler(kind: SamplerKind, train_config: dict[str, Any]):
    """A DDIM or DDPM sampling scheduler on the training noise schedule."""
    if kind == "ddim":
        return DDIMScheduler.from_config(train_config)
    if kind == "ddpm":
        return DDPMScheduler.from_config(train_config)
    raise GensynthError(f"sampler {kind!r}: expected one of ddim, ddpm")


def diffusion_loss(
    unet: Denoiser,
    scheduler: DDPMScheduler,
    x0: torch.Tensor,
    labels: torch.Tensor,
    cond_dropout: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """DDPM's simple loss, ``|| eps - eps_theta(x_t, t, y) ||^2`` (Ho et al. 2020, eq. 14).

    With a ``v_prediction`` scheduler the target is ``v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x0``
    (Salimans & Ho 2022, sec. 4) instead of ``eps``.
    Randomness comes from ``generator`` (on the CPU), so training is reproducible on any device.
    """
    batch = x0.shape[0]
    device = x0.device
    # 1. draw t ~ U{0, T-1} and eps ~ N(0, I)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (batch,), generator=generator).to(device)  # (B,)
    noise = torch.randn(x0.shape, generator=generator).to(device)  # (B, C, H, W)
    # 2. replace the condition by the null token with probability cond_dropout (classifier-free guidance)
    drop = (torch.rand(batch, generator=generator) < cond_dropout).to(device)  # (B,)
    null = torch.full_like(labels, unet.config.num_class_embeds - 1)
    y = torch.where(drop, null, labels)  # (B,)
    # 3. x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps
    x_t = scheduler.add_noise(x0, noise, t)
    prediction = unet(x_t, t, class_labels=y).sample  # (B, C, H, W)
    target = scheduler.get_velocity(x0, noise, t) if scheduler.config.prediction_type == "v_prediction" else noise
    return F.mse_loss(prediction.float(), target)


@dataclass
class TrainConfig:
    lr: float = 2e-4
    batch_size: int = 64
    cond_dropout: float = 0.1  # probability of training on the null token
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    seed: int = 0


@dataclass
class Trainer:
    """AdamW + EMA around :func:`diffusion_loss`; its state resumes a run exactly."""

    unet: Denoiser
    scheduler: DDPMScheduler
    config: TrainConfig
    step: int = 0
    optimizer: torch.optim.Optimizer = field(init=False)
    ema: EMAModel = field(init=False)
    generator: torch.Generator = field(init=False)

    def __post_init__(self):
        self.optimizer = torch.optim.AdamW(self.unet.parameters(), lr=self.config.lr)
        self.ema = EMAModel(self.unet.parameters(), decay=self.config.ema_decay, use_ema_warmup=True, power=3 / 4)
        self.generator = torch_generator(self.config.seed)

    @property
    def device(self) -> torch.device:
        return self.unet.device

    def batches(self, x: torch.Tensor, labels: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One shuffled pass over (x, labels), in minibatches on the model's device."""
        order = torch.randperm(x.shape[0], generator=self.generator)
        for start in range(0, x.shape[0], self.config.batch_size):
            index = order[start : start + self.config.batch_size]
            yield x[index].to(self.device), labels[index].to(self.device)

    def train_step(self, x0: torch.Tensor, labels: torch.Tensor) -> float:
        self.unet.train()
        loss = diffusion_loss(self.unet, self.scheduler, x0, labels, self.config.cond_dropout, self.generator)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.unet.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.ema.step(self.unet.parameters())
        self.step += 1
        return float(loss.detach())

    def train_epoch(self, x: torch.Tensor, labels: torch.Tensor) -> float:
        """One epoch; returns the mean training loss."""
        losses = [self.train_step(xb, yb) for xb, yb in self.batches(x, labels)]
        return sum(losses) / len(losses)

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> float:
        """Loss of the EMA weights on held-out data, with fixed noise (comparable across epochs)."""
        generator = torch_generator(seed)
        losses, counts = [], []
        with self.ema_weights():
            self.unet.eval()
            for start in range(0, x.shape[0], self.config.batch_size):
                xb = x[start : start + self.config.batch_size].to(self.device)
                yb = labels[start : start + self.config.batch_size].to(self.device)
                losses.append(float(diffusion_loss(self.unet, self.scheduler, xb, yb, 0.0, generator)) * len(xb))
                counts.append(len(xb))
        return sum(losses) / sum(counts)

    @contextlib.contextmanager
    def ema_weights(self) -> Iterator[None]:
        """Swap the EMA weights into the model for the duration of the block."""
        self.ema.store(self.unet.parameters())
        self.ema.copy_to(self.unet.parameters())
        try:
            yield
        finally:
            self.ema.restore(self.unet.parameters())

    def ema_state_dict(self) -> dict[str, torch.Tensor]:
        with self.ema_weights():
            return {k: v.detach().clone() for k, v in self.unet.state_dict().items()}

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "ema": self.ema.state_dict(),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.ema.load_state_dict(state["ema"])
        self.ema.to(self.device)  # its shadow weights load on the CPU
        self.ema.decay = self.config.ema_decay  # the configured decay, not the saved one
        self.generator.set_state(state["generator"])


@torch.no_grad()
def sample(
    unet: Denoiser,
    scheduler,
    labels: torch.Tensor,
    generators: list[torch.Generator],
    num_inference_steps: int,
    guidance_scale: float = 1.0,
    eta: float = 0.0,
    show_progress: bool | None = None,
) -> torch.Tensor:
    """Draw ``len(labels)`` samples, sample *i* from ``generators[i]`` alone; returns (B, C, H, W) float32.

    ``scheduler`` is a DDIMScheduler (``eta`` is its stochasticity) or a DDPMScheduler.
    On CUDA the UNet runs under fp16 autocast; the scheduler's arithmetic stays float32.
    """
    batch = labels.shape[0]
    if len(generators) != batch:
        raise ValueError(f"sample: {len(generators)} generators for {batch} labels; pass one per sample")
    device = unet.device
    cfg = unet.config
    labels = labels.to(device)
    shape = (batch, cfg.in_channels, cfg.sample_size, cfg.sample_size)
    # 1. x_T ~ N(0, I), each sample from its own generator
    x = randn_tensor(shape, generator=list(generators), device=device, dtype=torch.float32)  # (B, C, H, W)
    x = x * scheduler.init_noise_sigma
    scheduler.set_timesteps(num_inference_steps, device=device)
    guided = guidance_scale != 1.0
    y = torch.cat([labels, torch.full_like(labels, cfg.num_class_embeds - 1)]) if guided else labels  # (B,) or (2B,)
    step_kwargs = {"eta": eta} if isinstance(scheduler, DDIMScheduler) else {}
    unet.eval()
    for t in progress(scheduler.timesteps, desc="Sampling", unit="step", show=show_progress):
        model_in = scheduler.scale_model_input(x, t)
        model_in = torch.cat([model_in, model_in]) if guided else model_in
        # 2. predict eps; with guidance, conditional and null passes in one batch
        with autocast(device):
            eps = unet(model_in, t, class_labels=y).sample.float()
        if guided:
            eps_cond, eps_null = eps.chunk(2)
            eps = eps_null + guidance_scale * (eps_cond - eps_null)
        # 3. x_{t-1} from the scheduler; per-step noise (DDPM, or DDIM with eta > 0) per sample too
        x = scheduler.step(eps, t, x, generator=list(generators), **step_kwargs).prev_sample
    return x


def prepare_for_inference(unet: Denoiser) -> Denoiser:
    """Channels-last memory format on CUDA, where convolutions run faster in it."""
    if unet.device.type == "cuda":
        unet = unet.to(memory_format=torch.channels_last)
    return unet.eval()


def save_model_checkpoint(
    path: str | Path,
    unet: Denoiser,
    cfg: UNetConfig,
    train_scheduler: DDPMScheduler,
    trainer: Trainer | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Model weights, EMA weights and the trainer's state (to resume), as tensors and plain values."""
    state = {
        "format": CHECKPOINT_FORMAT,
        "unet_config": cfg.to_dict(),
        "scheduler_config": scheduler_config(train_scheduler),
        "model": unet.state_dict(),
        "extra": dict(extra or {}),
    }
    if trainer is not None:
        state["ema_model"] = trainer.ema_state_dict()
        state["trainer"] = trainer.state_dict()
    save_checkpoint(path, state)


@dataclass
class LoadedModel:
    unet: Denoiser
    cfg: UNetConfig
    scheduler_config: dict[str, Any]
    ema_loaded: bool
    state: dict[str, Any]  # the whole checkpoint, for the trainer's state and extras


def load_model_checkpoint(
    path: str | Path,
    expected_cfg: UNetConfig | None = None,
    use_ema: bool = True,
    device: torch.device | str = "cpu",
) -> LoadedModel:
    """Load a checkpoint written by :func:`save_model_checkpoint` (``weights_only``).

    A checkpoint of another format, or one whose UNet settings differ from ``expected_cfg``,
    is one clear error that names the differing settings.
    """
    state = load_checkpoint(path)
    if state.get("format") != CHECKPOINT_FORMAT:
        raise GensynthError(f"{path}: not a gensynth diffusion checkpoint (format {state.get('format')!r}, expected {CHECKPOINT_FORMAT!r})")
    try:
        cfg = UNetConfig.from_dict(state["unet_config"])
    except TypeError as exc:
        raise GensynthError(f"{path}: unet_config does not match this version's UNetConfig ({exc})") from None
    if expected_cfg is not None and cfg != expected_cfg:
        diffs = [
            f"{name}: checkpoint {getattr(cfg, name)!r}, config {getattr(expected_cfg, name)!r}"
            for name in (f.name for f in dataclasses.fields(UNetConfig))
            if getattr(cfg, name) != getattr(expected_cfg, name)
        ]
        raise GensynthError(f"{path}: checkpoint does not match the config ({'; '.join(diffs)})")
    unet = build_unet(cfg)
    ema_loaded = use_ema and "ema_model" in state
    try:
        unet.load_state_dict(state["ema_model"] if ema_loaded else state["model"])
    except (RuntimeError, KeyError) as exc:
        raise GensynthError(f"{path}: weights do not fit the UNet its config describes ({str(exc).splitlines()[0]})") from None
    return LoadedModel(unet.to(device), cfg, state["scheduler_config"], ema_loaded, state)

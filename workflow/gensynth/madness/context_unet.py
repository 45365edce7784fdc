"""The group's ``ContextUnet``: the small conditional UNet of its DDPM-MNIST code.

Two resolution levels (``n_feat`` then ``2 n_feat`` channels, max-pooled), the bottom feature
map pooled to one vector and spread back by a transposed convolution, residual conv blocks
with batch norm and GELU. Time enters as ``t / T`` and the class as a one-hot vector, each
through a two-layer MLP, at both decoder levels: ``h = context_embedding * h + time_embedding``.
A zero one-hot vector is the unconditional model (the group's context mask); here that is the
null token ``K``, so classifier-free guidance works as with ``UNet2DModel``.

Built with diffusers' ``ModelMixin``/``ConfigMixin`` and the call signature of ``UNet2DModel``
(``model(x, t, class_labels=y).sample``; ``config.sample_size``, ``in_channels``,
``num_class_embeds``), so ``gensynth.diffusion``'s trainer, sampler and checkpoints and the
Jacobian code take either model. Importing this module registers it as the architecture
``context_unet`` of ``gensynth.diffusion`` (settings: its ``UNetConfig`` with
``block_out_channels [n_feat, 2 n_feat]``).
"""

from __future__ import annotations

import math

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.unets.unet_2d import UNet2DOutput
from torch import nn

from ..diffusion.models import UNetConfig, register_architecture
from ..diffusion.shape import channels_problem
from ..errors import GensynthError


class ResidualConvBlock(nn.Module):
    """Two 3x3 conv + batch norm + GELU layers; with ``residual``, the input (or the first layer's
    output when the channel count changes) is added back and the sum divided by ``divisor``."""

    def __init__(self, in_channels: int, out_channels: int, residual: bool, divisor: float = math.sqrt(2)):
        super().__init__()
        self.residual = residual
        self.divisor = divisor
        self.same_channels = in_channels == out_channels
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, 1, 1), nn.BatchNorm2d(out_channels), nn.GELU())
        self.conv2 = nn.Sequential(nn.Conv2d(out_channels, out_channels, 3, 1, 1), nn.BatchNorm2d(out_channels), nn.GELU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = self.conv1(x)
        second = self.conv2(first)
        if not self.residual:
            return second
        return ((x if self.same_channels else first) + second) / self.divisor


class Down(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.layers = nn.Sequential(ResidualConvBlock(in_channels, out_channels, residual=False), nn.MaxPool2d(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class Up(nn.Module):
    """Concatenate the skip connection, upsample 2x, two conv blocks."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.layers = nn.Sequential(
            nn.ConvTranspose2d(in_channels, out_channels, 2, 2),
            ResidualConvBlock(out_channels, out_channels, residual=False),
            ResidualConvBlock(out_channels, out_channels, residual=False),
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.layers(torch.cat((x, skip), dim=1))


def embedding_mlp(in_features: int, out_features: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_features, out_features), nn.GELU(), nn.Linear(out_features, out_features))


class ContextUnet(ModelMixin, ConfigMixin):
    """``eps_theta(x_t, t, y)`` for images (B, C, S, S), S divisible by 4, tokens y in [0, K]."""

    @register_to_config
    def __init__(
        self,
        sample_size: int,
        in_channels: int,
        out_channels: int,
        n_feat: int,
        num_class_embeds: int,  # K real classes + the null token
        num_train_timesteps: int,  # T: time enters as t / T
        norm_num_groups: int = 8,
        residual_divisor: float = math.sqrt(2),  # the group's saved checkpoints were trained with 1.414
    ):
        super().__init__()
        wide = 2 * n_feat
        bottom = sample_size // 4  # side of the feature map after two poolings
        self.init_conv = ResidualConvBlock(in_channels, n_feat, residual=True, divisor=residual_divisor)
        self.down1 = Down(n_feat, n_feat)
        self.down2 = Down(n_feat, wide)
        self.to_vector = nn.Sequential(nn.AvgPool2d(bottom), nn.GELU())
        self.time_embed1, self.time_embed2 = embedding_mlp(1, wide), embedding_mlp(1, n_feat)
        num_classes = num_class_embeds - 1
        self.context_embed1, self.context_embed2 = embedding_mlp(num_classes, wide), embedding_mlp(num_classes, n_feat)
        self.up0 = nn.Sequential(nn.ConvTranspose2d(wide, wide, bottom, bottom), nn.GroupNorm(norm_num_groups, wide), nn.ReLU())
        self.up1 = Up(2 * wide, n_feat)
        self.up2 = Up(wide, n_feat)
        self.out = nn.Sequential(
            nn.Conv2d(wide, n_feat, 3, 1, 1),
            nn.GroupNorm(norm_num_groups, n_feat),
            nn.ReLU(),
            nn.Conv2d(n_feat, out_channels, 3, 1, 1),
        )

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor | int, class_labels: torch.Tensor, return_dict: bool = True):
        batch, dtype = sample.shape[0], sample.dtype
        timestep = torch.as_tensor(timestep, device=sample.device).expand(batch)
        time = (timestep.to(dtype) / self.config.num_train_timesteps)[:, None]  # (B, 1)
        # one-hot over the real classes; the null token K maps to the zero vector
        # (comparison, not F.one_hot, which reads the values and so fails under vmap)
        classes = torch.arange(self.config.num_class_embeds - 1, device=sample.device)
        context = (class_labels[:, None] == classes).to(dtype)  # (B, K)

        x = self.init_conv(sample)  # (B, n, S, S)
        down1 = self.down1(x)  # (B, n, S/2, S/2)
        down2 = self.down2(down1)  # (B, 2n, S/4, S/4)
        hidden = self.up0(self.to_vector(down2))  # (B, 2n, S/4, S/4)
        hidden = self.context_embed1(context)[:, :, None, None] * hidden + self.time_embed1(time)[:, :, None, None]
        hidden = self.up1(hidden, down2)  # (B, n, S/2, S/2)
        hidden = self.context_embed2(context)[:, :, None, None] * hidden + self.time_embed2(time)[:, :, None, None]
        hidden = self.up2(hidden, down1)  # (B, n, S, S)
        eps = self.out(torch.cat((hidden, x), dim=1))  # (B, C, S, S)
        return UNet2DOutput(sample=eps) if return_dict else (eps,)


def check_context_unet(cfg: UNetConfig) -> None:
    channels = list(cfg.block_out_channels)
    expected = channels_problem(channels, cfg.norm_num_groups)
    if expected:
        raise GensynthError(f"context_unet: block_out_channels {channels}; expected {expected}")
    if len(channels) != 2 or channels[1] != 2 * channels[0]:
        raise GensynthError(f"context_unet: block_out_channels {channels}; expected [n_feat, 2 * n_feat] (its two levels)")
    if cfg.attention or cfg.layers_per_block != 1:
        raise GensynthError(
            f"context_unet: attention {cfg.attention}, layers_per_block {cfg.layers_per_block}; "
            "it has no attention and one block per level (set attention false, layers_per_block 1)"
        )
    if cfg.sample_size % 4:
        raise GensynthError(f"context_unet: sample_size {cfg.sample_size}; expected a multiple of 4 (two 2x poolings)")
    if not cfg.num_train_timesteps or cfg.num_train_timesteps < 1:
        raise GensynthError(f"context_unet: num_train_timesteps {cfg.num_train_timesteps}; expected the schedule's T >= 1")


def build_context_unet(cfg: UNetConfig) -> ContextUnet:
    return ContextUnet(
        sample_size=cfg.sample_size,
        in_channels=cfg.in_channels,
        out_channels=cfg.out_channels,
        n_feat=cfg.block_out_channels[0],
        num_class_embeds=cfg.num_classes + 1,
        num_train_timesteps=cfg.num_train_timesteps,
        norm_num_groups=cfg.norm_num_groups,
    )


register_architecture("context_unet", build_context_unet, check_context_unet)

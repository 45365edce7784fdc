"""The group's ContextUnet (madness) as an architecture of the diffusion core."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from gensynth.diffusion import (
    DiffusionTrainConfig,
    SamplerSettings,
    UNetConfig,
    build_model,
    diffusion_trainer,
    load_model_checkpoint,
    make_sampler,
    make_train_scheduler,
    sample,
    save_model_checkpoint,
)
from gensynth.errors import GensynthError
from gensynth.madness.context_unet import ContextUnet
from gensynth.seeding import torch_generator

CONTEXT_CFG = UNetConfig(
    sample_size=8,
    in_channels=2,
    out_channels=2,
    num_classes=3,
    block_out_channels=(8, 16),
    attention=False,
    architecture="context_unet",
    num_train_timesteps=50,
)


def tiny_data(n=24):
    g = torch_generator(0)
    return torch.rand(n, 2, 8, 8, generator=g) * 2 - 1, torch.randint(0, 3, (n,), generator=g)


def test_context_unet_trains_samples_and_round_trips_through_a_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = build_model(CONTEXT_CFG)
    trainer = diffusion_trainer(model, make_train_scheduler(50), DiffusionTrainConfig(batch_size=8, seed=0))
    for _ in range(2):
        trainer.train_epoch(*tiny_data())
    save_model_checkpoint(tmp_path / "c.ckpt", model, CONTEXT_CFG, trainer.loss.scheduler, trainer)
    samples = []
    for _ in range(2):  # two loads, the same samples
        loaded = load_model_checkpoint(tmp_path / "c.ckpt", expected_cfg=CONTEXT_CFG)
        assert isinstance(loaded.model, ContextUnet) and loaded.ema_loaded
        sampler = make_sampler("ddim", loaded.scheduler_config)
        generators = [torch_generator(1), torch_generator(2)]
        samples.append(sample(loaded.model, sampler, torch.tensor([0, 2]), generators, SamplerSettings(3, 2, guidance_scale=2.0)))
    torch.testing.assert_close(samples[0], samples[1], rtol=0, atol=0)
    assert samples[0].shape == (2, 2, 8, 8) and torch.isfinite(samples[0]).all()
    for name, value in trainer.ema_state_dict().items():  # the EMA weights, batch-norm statistics included
        torch.testing.assert_close(loaded.model.state_dict()[name], value, rtol=0, atol=0)


def test_context_unet_reads_time_as_a_fraction_of_T_and_the_null_token_as_no_class():
    torch.manual_seed(0)
    model = build_model(CONTEXT_CFG).eval()  # T = 50
    twice_as_long = build_model(dataclasses.replace(CONTEXT_CFG, num_train_timesteps=100)).eval()
    twice_as_long.load_state_dict(model.state_dict())
    x, labels = tiny_data(4)
    null = torch.full_like(labels, CONTEXT_CFG.null_token)
    with torch.no_grad():
        torch.testing.assert_close(model(x, 10, class_labels=labels).sample, twice_as_long(x, 20, class_labels=labels).sample)
        conditional, unconditional = (model(x, 10, class_labels=y).sample for y in (labels, null))
        # the null token is the zero one-hot vector: the context layers' input weights cannot reach it
        for mlp in (model.context_embed1, model.context_embed2):
            mlp[0].weight.normal_()
        torch.testing.assert_close(model(x, 10, class_labels=null).sample, unconditional)
        assert not torch.allclose(model(x, 10, class_labels=labels).sample, conditional)


@pytest.mark.parametrize(
    "change,message",
    [
        ({"block_out_channels": (8, 24)}, r"\[n_feat, 2 \* n_feat\]"),
        ({"attention": True}, "no attention"),
        ({"sample_size": 6, "block_out_channels": (8, 16)}, "multiple of 4"),
        ({"num_train_timesteps": None}, "num_train_timesteps"),
        ({"block_out_channels": (12, 24)}, "multiples of 8"),
    ],
)
def test_context_unet_settings_are_checked(change, message):
    with pytest.raises(GensynthError, match=message):
        dataclasses.replace(CONTEXT_CFG, **change)

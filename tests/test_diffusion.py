"""The shared conditional diffusion pieces, on a tiny UNet."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from diffusers.models.attention_processor import Attention

from gensynth.context_unet import ContextUnet
from gensynth.diffusion import (
    Trainer,
    TrainConfig,
    UNetConfig,
    build_unet,
    load_model_checkpoint,
    make_sampler,
    make_train_scheduler,
    sample,
    save_model_checkpoint,
)
from gensynth.errors import GensynthError
from gensynth.seeding import torch_generator

CFG = UNetConfig(sample_size=8, in_channels=2, out_channels=2, num_classes=3, block_out_channels=(8, 16))
CONTEXT_CFG = dataclasses.replace(CFG, architecture="context_unet", attention=False, num_train_timesteps=50)


def tiny_data(n=24):
    g = torch_generator(0)
    return torch.rand(n, 2, 8, 8, generator=g) * 2 - 1, torch.randint(0, 3, (n,), generator=g)


def trained(seed=0, epochs=1, cfg=CFG):
    torch.manual_seed(seed)
    unet = build_unet(cfg)
    trainer = Trainer(unet, make_train_scheduler(50), TrainConfig(batch_size=8, seed=seed))
    x, y = tiny_data()
    losses = [trainer.train_epoch(x, y) for _ in range(epochs)]
    return unet, trainer, losses


def test_training_is_deterministic_and_resumes_exactly(tmp_path):
    _, _, losses_a = trained(epochs=2)
    _, _, losses_b = trained(epochs=2)
    assert losses_a == losses_b

    unet, trainer, _ = trained(epochs=1)
    save_model_checkpoint(tmp_path / "m.ckpt", unet, CFG, trainer.scheduler, trainer)
    loaded = load_model_checkpoint(tmp_path / "m.ckpt", use_ema=False)
    resumed = Trainer(loaded.unet, make_train_scheduler(50), TrainConfig(batch_size=8, seed=0))
    resumed.load_state_dict(loaded.state["trainer"])
    x, y = tiny_data()
    assert resumed.train_epoch(x, y) == pytest.approx(losses_a[1], rel=1e-5)


def test_ema_weights_differ_from_raw_and_are_restored(tmp_path):
    unet, trainer, _ = trained()
    raw = {k: v.clone() for k, v in unet.state_dict().items()}
    ema = trainer.ema_state_dict()
    assert any(not torch.equal(raw[k], ema[k]) for k in raw)
    assert all(torch.equal(raw[k], v) for k, v in unet.state_dict().items())
    save_model_checkpoint(tmp_path / "m.ckpt", unet, CFG, trainer.scheduler, trainer)
    loaded = load_model_checkpoint(tmp_path / "m.ckpt", expected_cfg=CFG)
    assert loaded.ema_loaded
    assert all(torch.equal(loaded.unet.state_dict()[k], ema[k]) for k in ema)


@pytest.mark.parametrize("kind,eta,scale", [("ddim", 0.0, 1.0), ("ddim", 1.0, 3.0), ("ddpm", 0.0, 2.0)])
def test_sample_depends_only_on_its_own_generator(kind, eta, scale):
    unet, trainer, _ = trained()
    sampler = make_sampler(kind, dict(trainer.scheduler.config))
    labels = torch.tensor([0, 1, 2, 1])
    seeds = [11, 12, 13, 14]
    batched = sample(unet, sampler, labels, [torch_generator(s) for s in seeds], 5, guidance_scale=scale, eta=eta)
    alone = torch.cat([sample(unet, sampler, labels[i : i + 1], [torch_generator(s)], 5, guidance_scale=scale, eta=eta) for i, s in enumerate(seeds)])
    assert batched.shape == (4, 2, 8, 8)
    torch.testing.assert_close(batched, alone, atol=1e-4, rtol=1e-4)
    other = sample(unet, sampler, labels, [torch_generator(s + 100) for s in seeds], 5, guidance_scale=scale, eta=eta)
    assert (other - batched).abs().mean() > 1e-2


def test_sample_needs_one_generator_per_label():
    unet, trainer, _ = trained()
    with pytest.raises(ValueError, match="one per sample"):
        sample(unet, make_sampler("ddim", dict(trainer.scheduler.config)), torch.tensor([0, 1]), [torch_generator(0)], 2)


def test_checkpoint_that_does_not_match_the_config_is_one_error(tmp_path):
    unet, trainer, _ = trained()
    save_model_checkpoint(tmp_path / "m.ckpt", unet, CFG, trainer.scheduler, trainer)
    other = UNetConfig(sample_size=8, in_channels=2, out_channels=2, num_classes=5, block_out_channels=(8, 16))
    with pytest.raises(GensynthError, match="num_classes: checkpoint 3, config 5"):
        load_model_checkpoint(tmp_path / "m.ckpt", expected_cfg=other)
    torch.save({"format": "something else"}, tmp_path / "foreign.ckpt")
    with pytest.raises(GensynthError, match="not a gensynth diffusion checkpoint"):
        load_model_checkpoint(tmp_path / "foreign.ckpt")


def attention_heads(unet) -> set[int]:
    return {module.heads for module in unet.modules() if isinstance(module, Attention)}


def test_attention_has_one_head_and_older_checkpoints_keep_diffusers_heads(tmp_path):
    unet, trainer, _ = trained()
    assert attention_heads(unet) == {1}
    save_model_checkpoint(tmp_path / "m.ckpt", unet, CFG, trainer.scheduler, trainer)
    state = torch.load(tmp_path / "m.ckpt", weights_only=True)
    del state["unet_config"]["attention_head_dim"]  # as written before the setting existed
    torch.save(state, tmp_path / "older.ckpt")
    older = load_model_checkpoint(tmp_path / "older.ckpt")
    assert older.cfg.attention_head_dim == 8
    assert attention_heads(older.unet) == {16 // 8}  # the second level's 16 channels in heads of 8


def test_context_unet_trains_samples_and_round_trips_through_a_checkpoint(tmp_path):
    unet, trainer, _ = trained(epochs=2, cfg=CONTEXT_CFG)
    save_model_checkpoint(tmp_path / "c.ckpt", unet, CONTEXT_CFG, trainer.scheduler, trainer)
    samples = []
    for _ in range(2):  # two loads, the same samples
        loaded = load_model_checkpoint(tmp_path / "c.ckpt", expected_cfg=CONTEXT_CFG)
        assert isinstance(loaded.unet, ContextUnet) and loaded.ema_loaded
        sampler = make_sampler("ddim", loaded.scheduler_config)
        samples.append(sample(loaded.unet, sampler, torch.tensor([0, 2]), [torch_generator(1), torch_generator(2)], 3, guidance_scale=2.0))
    torch.testing.assert_close(samples[0], samples[1], rtol=0, atol=0)
    assert samples[0].shape == (2, 2, 8, 8) and torch.isfinite(samples[0]).all()
    for name, value in trainer.ema_state_dict().items():  # the EMA weights, batch-norm statistics included
        torch.testing.assert_close(loaded.unet.state_dict()[name], value, rtol=0, atol=0)


def test_context_unet_reads_time_as_a_fraction_of_T_and_the_null_token_as_no_class():
    torch.manual_seed(0)
    unet = build_unet(CONTEXT_CFG).eval()  # T = 50
    twice_as_long = build_unet(dataclasses.replace(CONTEXT_CFG, num_train_timesteps=100)).eval()
    twice_as_long.load_state_dict(unet.state_dict())
    x, labels = tiny_data(4)
    null = torch.full_like(labels, CONTEXT_CFG.null_token)
    with torch.no_grad():
        torch.testing.assert_close(unet(x, 10, class_labels=labels).sample, twice_as_long(x, 20, class_labels=labels).sample)
        conditional, unconditional = (unet(x, 10, class_labels=y).sample for y in (labels, null))
        # the null token is the zero one-hot vector: the context layers' input weights cannot reach it
        for mlp in (unet.context_embed1, unet.context_embed2):
            mlp[0].weight.normal_()
        torch.testing.assert_close(unet(x, 10, class_labels=null).sample, unconditional)
        assert not torch.allclose(unet(x, 10, class_labels=labels).sample, conditional)


def test_unet_config_checks_its_shape_rules():
    with pytest.raises(GensynthError, match="multiple of norm_num_groups"):
        UNetConfig(sample_size=8, in_channels=1, out_channels=1, num_classes=2, block_out_channels=(12, 16))
    with pytest.raises(GensynthError, match="divisible"):
        UNetConfig(sample_size=6, in_channels=1, out_channels=1, num_classes=2, block_out_channels=(8, 16, 16))
    for change, message in [
        ({"architecture": "resnet"}, "expected one of unet2d, context_unet"),
        ({"block_out_channels": (8, 24)}, r"\[n_feat, 2 \* n_feat\]"),
        ({"attention": True}, "no attention"),
        ({"sample_size": 6, "block_out_channels": (8, 16)}, "multiple of 4"),
        ({"num_train_timesteps": None}, "num_train_timesteps"),
    ]:
        with pytest.raises(GensynthError, match=message):
            dataclasses.replace(CONTEXT_CFG, **change)

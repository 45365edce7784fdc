"""The diffusion core on tiny models: a 2-D class-conditional UNet, a 1-D sequence model, an unconditional UNet."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from diffusers import UNet2DModel
from diffusers.models.attention_processor import Attention
from diffusers.models.unets.unet_2d import UNet2DOutput

import gensynth.diffusion.sampling as sampling
from gensynth.diffusion import (
    DiffusionTrainConfig,
    SamplerSettings,
    UNetConfig,
    build_model,
    diffusion_trainer,
    load_model_checkpoint,
    make_sampler,
    make_train_scheduler,
    register_architecture,
    sample,
    save_model_checkpoint,
    scheduler_config,
    seeded_samples,
)
from gensynth.errors import GensynthError
from gensynth.seeding import torch_generator

CFG = UNetConfig(sample_size=8, in_channels=2, out_channels=2, num_classes=3, block_out_channels=(8, 16))


def tiny_data(n=24):
    g = torch_generator(0)
    return torch.rand(n, 2, 8, 8, generator=g) * 2 - 1, torch.randint(0, 3, (n,), generator=g)


def trained(seed=0, epochs=1, cfg=CFG):
    torch.manual_seed(seed)
    model = build_model(cfg)
    trainer = diffusion_trainer(model, make_train_scheduler(50), DiffusionTrainConfig(batch_size=8, seed=seed))
    x, y = tiny_data()
    losses = [trainer.train_epoch(x, y) for _ in range(epochs)]
    return model, trainer, losses


def settings(steps=5, batch_size=16, **options) -> SamplerSettings:
    return SamplerSettings(steps, batch_size, **options)


def test_training_is_deterministic_and_resumes_exactly(tmp_path):
    _, _, losses_a = trained(epochs=2)
    _, _, losses_b = trained(epochs=2)
    assert losses_a == losses_b

    model, trainer, _ = trained(epochs=1)
    save_model_checkpoint(tmp_path / "m.ckpt", model, CFG, trainer.loss.scheduler, trainer)
    loaded = load_model_checkpoint(tmp_path / "m.ckpt", use_ema=False)
    resumed = diffusion_trainer(loaded.model, make_train_scheduler(50), DiffusionTrainConfig(batch_size=8, seed=0))
    resumed.load_state_dict(loaded.state["trainer"])
    x, y = tiny_data()
    assert resumed.train_epoch(x, y) == pytest.approx(losses_a[1], rel=1e-5)


def test_ema_weights_differ_from_raw_and_are_restored(tmp_path):
    model, trainer, _ = trained()
    raw = {k: v.clone() for k, v in model.state_dict().items()}
    ema = trainer.ema_state_dict()
    assert any(not torch.equal(raw[k], ema[k]) for k in raw)
    assert all(torch.equal(raw[k], v) for k, v in model.state_dict().items())
    save_model_checkpoint(tmp_path / "m.ckpt", model, CFG, trainer.loss.scheduler, trainer)
    loaded = load_model_checkpoint(tmp_path / "m.ckpt", expected_cfg=CFG)
    assert loaded.ema_loaded
    assert all(torch.equal(loaded.model.state_dict()[k], ema[k]) for k in ema)


@pytest.mark.parametrize("kind,eta,scale", [("ddim", 0.0, 1.0), ("ddim", 1.0, 3.0), ("ddpm", 0.0, 2.0)])
def test_sample_depends_only_on_its_own_generator(kind, eta, scale):
    model, trainer, _ = trained()
    sampler = make_sampler(kind, dict(trainer.loss.scheduler.config))
    labels = torch.tensor([0, 1, 2, 1])
    seeds = [11, 12, 13, 14]
    options = settings(eta=eta, guidance_scale=scale)
    batched = sample(model, sampler, labels, [torch_generator(s) for s in seeds], options)
    alone = torch.cat([sample(model, sampler, labels[i : i + 1], [torch_generator(s)], options) for i, s in enumerate(seeds)])
    assert batched.shape == (4, 2, 8, 8)
    torch.testing.assert_close(batched, alone, atol=1e-4, rtol=1e-4)
    other = sample(model, sampler, labels, [torch_generator(s + 100) for s in seeds], options)
    assert (other - batched).abs().mean() > 1e-2


def test_sample_needs_one_generator_per_label():
    model, trainer, _ = trained()
    with pytest.raises(ValueError, match="one per sample"):
        sample(model, make_sampler("ddim", dict(trainer.loss.scheduler.config)), torch.tensor([0, 1]), [torch_generator(0)], settings(2))


def test_seeded_samples_do_not_depend_on_the_batch_size():
    model, trainer, _ = trained()
    config = scheduler_config(trainer.loss.scheduler)
    labels, seeds = np.array([0, 1, 2, 0, 1]), np.array([5, 6, 7, 8, 9])
    whole = np.concatenate(list(seeded_samples(model, config, labels, seeds, settings(batch_size=5))))
    in_twos = np.concatenate(list(seeded_samples(model, config, labels, seeds, settings(batch_size=2))))
    np.testing.assert_allclose(whole, in_twos, atol=1e-4)
    assert whole.min() >= -1 and whole.max() <= 1


class NoiseDrawn(Exception):
    pass


def test_initial_noise_comes_from_cpu_generators_whatever_the_models_device(monkeypatch):
    """A model on another device (here a stand-in: this machine has one device) starts every sample
    from its own CPU generator's draw, the same numbers as on the CPU."""
    model, trainer, _ = trained()
    config = scheduler_config(trainer.loss.scheduler)
    labels, seeds = np.array([0, 1, 2]), np.array([21, 22, 23])
    drawn = {}

    def recording_noise(shape, generators, device):
        drawn[device.type] = ([g.device.type for g in generators], sampling.randn_tensor(shape, generator=list(generators), dtype=torch.float32))
        if device.type != "cpu":
            raise NoiseDrawn
        return drawn["cpu"][1]

    monkeypatch.setattr(sampling, "initial_noise", recording_noise)
    list(seeded_samples(model, config, labels, seeds, settings(steps=2)))
    monkeypatch.setattr(sampling, "model_device", lambda model: torch.device("meta"))
    with pytest.raises(NoiseDrawn):
        list(seeded_samples(model, config, labels, seeds, settings(steps=2)))
    (cpu_generators, cpu_noise), (other_generators, other_noise) = drawn["cpu"], drawn["meta"]
    assert cpu_generators == other_generators == ["cpu"] * 3
    torch.testing.assert_close(cpu_noise, other_noise, rtol=0, atol=0)
    expected = torch.stack([torch.randn((2, 8, 8), generator=torch_generator(int(s))) for s in seeds])
    torch.testing.assert_close(cpu_noise, expected, rtol=0, atol=0)


def test_checkpoint_that_does_not_match_the_config_is_one_error(tmp_path):
    model, trainer, _ = trained()
    save_model_checkpoint(tmp_path / "m.ckpt", model, CFG, trainer.loss.scheduler, trainer)
    other = UNetConfig(sample_size=8, in_channels=2, out_channels=2, num_classes=5, block_out_channels=(8, 16))
    with pytest.raises(GensynthError, match="num_classes: checkpoint 3, config 5"):
        load_model_checkpoint(tmp_path / "m.ckpt", expected_cfg=other)
    torch.save({"format": "something else"}, tmp_path / "foreign.ckpt")
    with pytest.raises(GensynthError, match="not a gensynth diffusion checkpoint"):
        load_model_checkpoint(tmp_path / "foreign.ckpt")
    state = torch.load(tmp_path / "m.ckpt", weights_only=True)
    state["unet_config"]["architecture"] = "not_registered"
    torch.save(state, tmp_path / "unknown.ckpt")
    with pytest.raises(GensynthError, match="unknown.ckpt: model architecture 'not_registered'"):
        load_model_checkpoint(tmp_path / "unknown.ckpt")


def attention_heads(model) -> set[int]:
    return {module.heads for module in model.modules() if isinstance(module, Attention)}


def test_attention_has_one_head_and_older_checkpoints_keep_diffusers_heads(tmp_path):
    model, trainer, _ = trained()
    assert attention_heads(model) == {1}
    save_model_checkpoint(tmp_path / "m.ckpt", model, CFG, trainer.loss.scheduler, trainer)
    state = torch.load(tmp_path / "m.ckpt", weights_only=True)
    del state["unet_config"]["attention_head_dim"]  # as written before the setting existed
    torch.save(state, tmp_path / "older.ckpt")
    older = load_model_checkpoint(tmp_path / "older.ckpt")
    assert older.cfg.attention_head_dim == 8
    assert attention_heads(older.model) == {16 // 8}  # the second level's 16 channels in heads of 8


def test_unet_config_checks_its_shape_rules():
    with pytest.raises(GensynthError, match="multiples of 8"):
        UNetConfig(sample_size=8, in_channels=1, out_channels=1, num_classes=2, block_out_channels=(12, 16))
    with pytest.raises(GensynthError, match="sample_size 6: expected a multiple of 4"):
        UNetConfig(sample_size=6, in_channels=1, out_channels=1, num_classes=2, block_out_channels=(8, 16, 16))
    with pytest.raises(GensynthError, match="architecture 'resnet'"):
        UNetConfig(sample_size=8, in_channels=1, out_channels=1, num_classes=2, architecture="resnet")


# A 1-D sequence denoiser: the interface asks only for ``sample_shape``, ``null_label`` and the call.
@dataclass
class SequenceConfig:
    channels: int
    length: int
    num_classes: int
    architecture: str = "test_sequence"

    @classmethod
    def from_dict(cls, values):
        return cls(**values)

    def to_dict(self):
        return dataclasses.asdict(self)


class SequenceDenoiser(torch.nn.Module):
    def __init__(self, cfg: SequenceConfig):
        super().__init__()
        self.sample_shape = (cfg.channels, cfg.length)
        self.null_label = cfg.num_classes
        self.label_embedding = torch.nn.Embedding(cfg.num_classes + 1, 8)
        self.time_embedding = torch.nn.Linear(1, 8)
        self.net = torch.nn.Sequential(torch.nn.Conv1d(cfg.channels + 8, 16, 3, padding=1), torch.nn.SiLU(), torch.nn.Conv1d(16, cfg.channels, 3, padding=1))

    def forward(self, sample, timestep, class_labels=None):
        t = torch.as_tensor(timestep, dtype=sample.dtype, device=sample.device).expand(sample.shape[0])[:, None] / 50
        condition = self.label_embedding(class_labels) + self.time_embedding(t)  # (B, 8)
        hidden = torch.cat([sample, condition[:, :, None].expand(-1, -1, sample.shape[-1])], dim=1)  # (B, C + 8, L)
        return UNet2DOutput(sample=self.net(hidden))  # (B, C, L)


register_architecture("test_sequence", SequenceDenoiser, lambda cfg: None, SequenceConfig)


def test_a_1d_sequence_model_trains_samples_and_round_trips_through_the_core(tmp_path):
    cfg = SequenceConfig(channels=1, length=12, num_classes=2)
    torch.manual_seed(0)
    model = build_model(cfg)
    scheduler = make_train_scheduler(50)
    trainer = diffusion_trainer(model, scheduler, DiffusionTrainConfig(batch_size=8, lr=1e-2, seed=0))
    x = torch.sin(torch.linspace(0, 6, 12))[None, None].repeat(16, 1, 1)  # (16, 1, 12)
    y = torch.arange(16) % 2
    losses = [trainer.train_epoch(x, y) for _ in range(3)]
    assert all(np.isfinite(losses))
    save_model_checkpoint(tmp_path / "seq.ckpt", model, cfg, scheduler, trainer)
    loaded = load_model_checkpoint(tmp_path / "seq.ckpt", expected_cfg=cfg)
    assert isinstance(loaded.model, SequenceDenoiser) and loaded.cfg == cfg
    batches = list(seeded_samples(loaded.model, loaded.scheduler_config, np.array([0, 1, 1]), np.array([1, 2, 3]), settings(guidance_scale=2.0)))
    assert batches[0].shape == (3, 1, 12)
    again = list(seeded_samples(loaded.model, loaded.scheduler_config, np.array([0, 1, 1]), np.array([1, 2, 3]), settings(guidance_scale=2.0)))
    np.testing.assert_array_equal(batches[0], again[0])


def test_an_unconditional_model_trains_without_labels_and_samples_without_them():
    torch.manual_seed(0)
    model = UNet2DModel(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        block_out_channels=(8, 16),
        norm_num_groups=8,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
    )
    scheduler = make_train_scheduler(50)
    trainer = diffusion_trainer(model, scheduler, DiffusionTrainConfig(batch_size=4, seed=0))
    loss = trainer.train_epoch(torch.rand(8, 1, 8, 8) * 2 - 1)
    assert np.isfinite(loss)
    (first,) = seeded_samples(model, scheduler_config(scheduler), None, np.array([3, 4]), settings(steps=3, guidance_scale=2.0))
    assert first.shape == (2, 1, 8, 8)

"""genaug's mixing rule and its place in training: bounds and rounding, training batches only, seeded images, exact resume.

A tiny phantom (8x8, 9 patients) and tiny models keep these fast; the manager is either a fake that
paints its images 7.0 (outside the real [0, 1], so a synthetic image is recognisable anywhere) or the
real GenerativeAugmentationManager over tiny DDIM folders.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from gensynth.genaug.augmentation import MODALITIES, MODEL_FOLDERS, PHASES, AugmentationConfig, image_channels
from gensynth.genaug.classifier import Branch, Mixer, held_out_predictions, train_classifier
from gensynth.genaug.data import TEST, TRAIN, VALIDATION, with_folds
from gensynth.genaug.manager import CacheInfo, GenerativeAugmentationManager
from gensynth.genaug.mixing import batch_rng, plan_batch, synthetic_count, synthetic_images
from gensynth.genaug.phantom import PhantomConfig, make_phantom
from gensynth.genaug.settings import ClassifierSettings
from gensynth.genaug.tiny_sd import build_ddim_pipeline
from gensynth.seeding import numpy_generator

TINY = ClassifierSettings(width=4, epochs=2, batch_size=4)
SYNTHETIC_VALUE = 7.0


def configs(enabled=("depth_rgb",), **settings) -> dict[str, AugmentationConfig]:
    return {m: AugmentationConfig(enabled=m in enabled, **settings) for m in MODALITIES}


@pytest.fixture(scope="module")
def dataset():
    return with_folds(make_phantom(PhantomConfig(patients=9, visits=2, image_size=8, seed=3)), 3, 0.2, 0)


class FakeManager:
    """Records every generate() call; its images are all SYNTHETIC_VALUE."""

    def __init__(self, config):
        self.config, self.calls = config, []

    def modality_config(self, modality):
        return self.config[modality]

    def generate(self, modality, phase, n, seed, size=None):
        assert 1 <= n <= self.config[modality].batch_limit
        self.calls.append((modality, phase, n, seed))
        return np.full((n, image_channels(modality), size, size), SYNTHETIC_VALUE, dtype=np.float32)

    def cache_info(self):
        return CacheInfo(len(self.calls), 0, 0, 0, 3, ())


# -- the rule -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size,ratio", [(16, (0.01, 0.05)), (7, (0.2, 0.5)), (32, (0.0, 0.0)), (5, (1.0, 1.0)), (100, (0.05, 0.15))])
def test_synthetic_count_stays_in_bounds_and_is_unbiased(batch_size, ratio):
    rng = numpy_generator(0)
    counts = np.array([synthetic_count(batch_size, ratio, rng) for _ in range(20_000)])
    low, high = ratio
    assert counts.min() >= math.floor(low * batch_size) and counts.max() <= min(batch_size, math.ceil(high * batch_size))
    # stochastic rounding: E[k] = E[r] B exactly; 4 standard errors of the mean
    expected = (low + high) / 2 * batch_size
    assert abs(counts.mean() - expected) <= 4 * counts.std() / math.sqrt(len(counts)) + 1e-12


def test_one_to_five_percent_of_sixteen_is_zero_or_one_image():
    """The production range on a small batch: k is 0 or 1, 1 with probability 16 r (0.48 on average)."""
    rng = numpy_generator(1)
    counts = np.array([synthetic_count(16, (0.01, 0.05), rng) for _ in range(20_000)])
    assert set(np.unique(counts)) == {0, 1}
    assert abs(counts.mean() - 0.48) < 0.02


def test_plan_follows_prob_enabled_modalities_and_the_labels():
    phases = np.array([0, 1, 2, 1, 0, 2, 2, 1])
    rng = numpy_generator(2)
    assert all(plan_batch(phases, configs(prob=0.0, mix_ratio_range=(1.0, 1.0)), rng) == [] for _ in range(50))
    plan = plan_batch(phases, configs(enabled=("depth_rgb", "thermal_map"), prob=1.0, mix_ratio_range=(1.0, 1.0)), rng)
    assert [r.modality for r in plan] == ["depth_rgb", "thermal_map"]  # MODALITIES order, disabled ones never
    for replacement in plan:
        np.testing.assert_array_equal(replacement.positions, np.arange(8))
        np.testing.assert_array_equal(replacement.phases, phases)
    # prob 0.5: about half the batches are augmented
    augmented = [bool(plan_batch(phases, configs(prob=0.5, mix_ratio_range=(1.0, 1.0)), rng)) for _ in range(2000)]
    assert 0.45 < np.mean(augmented) < 0.55


def test_one_request_per_phase_chunked_at_the_batch_limit():
    manager = FakeManager(configs(batch_limit=2))
    plan = plan_batch(np.array([0, 0, 0, 0, 0, 2, 2]), configs(prob=1.0, mix_ratio_range=(1.0, 1.0)), numpy_generator(0))
    images = synthetic_images(manager, plan[0], seed=5, epoch=1, batch=0, size=8)
    assert images.shape == (7, 3, 8, 8)
    assert [(call[1], call[2]) for call in manager.calls] == [("I", 2), ("I", 2), ("I", 1), ("R", 2)]
    assert len({call[3] for call in manager.calls}) == 4  # every request its own seed


# -- in training ------------------------------------------------------------------------------------


def test_only_training_batches_get_synthetic_images(dataset):
    """Every training batch is fully replaced; no validation or test input ever holds a synthetic image."""
    config = configs(prob=1.0, mix_ratio_range=(1.0, 1.0))
    manager = FakeManager(config)
    seen = []  # (module, training mode, any synthetic pixel, all synthetic, batch size), for every branch call

    def record(module, inputs):
        if isinstance(module, Branch):
            x = inputs[0]
            seen.append((module, module.training, bool((x == SYNTHETIC_VALUE).any()), bool((x == SYNTHETIC_VALUE).all()), x.shape[0]))

    handle = torch.nn.modules.module.register_module_forward_pre_hook(record)
    try:
        trainer, history = train_classifier(dataset, 0, 0, TINY, torch.device("cpu"), Mixer(manager, config, 0, 8))
        predictions = held_out_predictions(trainer, dataset, 0)
    finally:
        handle.remove()
    depth_rgb = trainer.model.branches["depth_rgb"]
    training = [s for s in seen if s[1] and s[0] is depth_rgb]
    evaluation = [s for s in seen if not s[1] and s[0] is depth_rgb]
    n_train, n_val, n_test = (len(dataset.indices(0, role)) for role in (TRAIN, VALIDATION, TEST))
    assert sum(s[4] for s in training) == TINY.epochs * n_train and all(s[3] for s in training)
    assert sum(s[4] for s in evaluation) == TINY.epochs * 2 * n_val + n_test  # validation loss and accuracy each epoch, then test
    assert not any(s[2] for s in seen if s[0] is not depth_rgb or not s[1])  # other modalities, and all evaluation: real only
    # the history counts exactly what the manager made
    assert [r["synthetic"] for r in history] == [n_train] * TINY.epochs
    assert sum(call[2] for call in manager.calls) == TINY.epochs * n_train
    assert history[-1]["cache_hit_rate"] == 1.0 and predictions["probabilities"].shape == (n_test, len(PHASES))


def test_the_baseline_draws_nothing_and_counts_zero(dataset):
    _, history = train_classifier(dataset, 1, 0, TINY, torch.device("cpu"))
    assert [r["synthetic"] for r in history] == [0, 0] and "cache_hit_rate" not in history[0]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    base = tmp_path_factory.mktemp("genaug_models")
    for index, folder in enumerate(MODEL_FOLDERS[:3]):  # rgb_I, rgb_P, rgb_R
        build_ddim_pipeline(base / folder, channels=3, image_size=8, block_out_channels=(8, 16), seed=index)
    return base


def test_synthetic_images_are_determined_by_the_seed(models, dataset):
    config = configs(prob=1.0, mix_ratio_range=(0.5, 0.5), inference_steps=2)

    def mixed(seed, epoch=1, batch=0):
        manager = GenerativeAugmentationManager(models, config, device="cpu")
        labels = torch.from_numpy(dataset.phase[:8])
        batch_tensors = (labels, torch.arange(8), *(torch.from_numpy(dataset.images[m][:8]).clone() for m in MODALITIES))
        batch_tensors, counts = Mixer(manager, config, seed, 8)(batch_tensors, epoch, batch)
        return counts, batch_tensors[2].numpy()

    counts, first = mixed(seed=4)
    assert counts == {"depth_rgb": 4}
    replaced = np.flatnonzero(np.abs(first - dataset.images["depth_rgb"][:8]).reshape(8, -1).max(axis=1) > 0)
    assert len(replaced) == 4
    np.testing.assert_array_equal(mixed(seed=4)[1], first)  # same seed, same batch: same images at the same places
    assert not np.array_equal(mixed(seed=5)[1], first)
    assert not np.array_equal(mixed(seed=4, epoch=2)[1], first)
    # the plan depends only on (seed, epoch, batch)
    for _ in range(2):
        np.testing.assert_array_equal(plan_batch(dataset.phase[:8], config, batch_rng(4, 1, 0))[0].positions, replaced)


def test_an_augmented_run_is_reproducible_and_resumes_exactly(models, dataset, tmp_path):
    config = configs(prob=1.0, mix_ratio_range=(0.3, 0.6), inference_steps=2)
    settings = dataclasses.replace(TINY, epochs=3)

    def run(epochs, resume=None, seed=0):
        manager = GenerativeAugmentationManager(models, config, device="cpu")
        trainer, history = train_classifier(
            dataset, 2, seed, dataclasses.replace(settings, epochs=epochs), torch.device("cpu"), Mixer(manager, config, seed, 8), resume, "digest", "augmented"
        )
        return held_out_predictions(trainer, dataset, 2)["probabilities"], [r["synthetic"] for r in history]

    straight, counts = run(3)
    again, _ = run(3)
    np.testing.assert_array_equal(again, straight)
    assert not np.allclose(run(3, seed=1)[0], straight)
    resume = tmp_path / "seed0.ckpt"
    run(2, resume)  # interrupted after epoch 2 ...
    resumed, resumed_counts = run(3, resume)  # ... and continued
    np.testing.assert_allclose(resumed, straight, atol=1e-6)
    assert resumed_counts == counts

"""genaug's dose-response study: the analysis finds a known effect and, on nulls with shared shocks, errs at its
stated rate; the sources (pools, the wrong-phase and real-image controls), the add mode, partitions and regimes.

The simulated classifier problem: visits whose difficulty every model shares (a patient shock and a visit shock), runs
(partition, seed) that move every arm together (a run shock), each arm-run pair its own training drift, and each model
its own logistic noise per visit; a model at synthetic share d is right on a visit when
base + patient + visit + run + drift + effect x d + noise > 0.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gensynth.errors import GensynthError
from gensynth.genaug.augmentation import MODALITIES, PHASES, AugmentationConfig
from gensynth.genaug.classifier import IMAGES, Mixer
from gensynth.genaug.data import EXCLUDED, TEST, TRAIN, VALIDATION, SplitPlan, load_dataset, save_dataset, with_folds
from gensynth.genaug.experiment import Experiment, control_verdict, dose_response, ols_slope, summarize
from gensynth.genaug.phantom import PhantomConfig, make_phantom
from gensynth.genaug.sources import RealImages, SyntheticPool, wrong_phases
from gensynth.io import save_npz

SHARES = {"dose5_replace": 0.05, "dose15_replace": 0.15, "dose30_replace": 0.3, "dose50_replace": 0.5}
RUNS = [(p, s) for p in range(2) for s in range(5)]  # 2 partitions x 5 seeds, the study's replication


def simulated(rng: np.random.Generator, effect: float, patients: int = 40, visits: int = 3) -> Experiment:
    """The known-effect problem of the module docstring (effect on the logit per unit share)."""
    labels = rng.integers(0, len(PHASES), patients * visits)
    patient = np.repeat(np.arange(patients), visits)
    difficulty = rng.normal(0, 1.0, patients)[patient] + rng.normal(0, 1.0, len(labels))  # (N,)
    run_shock = rng.normal(0, 0.3, len(RUNS))[:, None]  # (R, 1)
    wrong = (labels + rng.integers(1, len(PHASES), labels.shape)) % len(PHASES)  # the phase a visit is mistaken for
    predictions = {}
    for arm, share in {"baseline": 0.0, **SHARES}.items():
        drift = rng.normal(0, 0.1, len(RUNS))[:, None]  # (R, 1): this arm's training noise in each run
        noise = rng.logistic(0, 0.5, (len(RUNS), len(labels)))
        predictions[arm] = np.where(1.2 + difficulty + run_shock + drift + effect * share + noise > 0, labels, wrong)
    return Experiment(labels, patient, RUNS, predictions)


def slope_interval(experiment: Experiment, seed: int, n_bootstrap: int = 200) -> tuple[float, float, float]:
    (row,) = [r for r in dose_response(experiment, {"generated, replace": SHARES}, n_bootstrap, 0.95, seed) if r["metric"] == "accuracy"]
    return row["slope"], row["slope_low"], row["slope_high"]


def test_the_slope_is_least_squares_through_the_baseline():
    doses = np.array([0.0, 0.1, 0.3, 0.5])
    np.testing.assert_allclose(ols_slope(doses, 0.02 + 0.4 * doses), 0.4)
    np.testing.assert_allclose(ols_slope(doses, np.stack([doses, -2 * doses])), [1.0, -2.0])


def test_a_known_effect_is_found_and_a_null_errs_at_most_at_the_stated_rate():
    """95 % slope intervals: a helping and a harming effect of 1 logit per unit share (+0.5 at 50 %, about 8 points of
    accuracy) are found in most simulations; under the null (shared patient, visit and run shocks, per-arm drift) an
    interval excludes zero in at most 5 % of them. (The bootstrap over patients and runs counts each model's noise on
    both: it errs on the safe side, 0 of 400 nulls in this simulation.)"""
    found = {effect: 0 for effect in (1.0, -1.0)}
    for i in range(40):
        for effect in found:
            _, low, high = slope_interval(simulated(np.random.default_rng([effect > 0, i]), effect), seed=i)
            found[effect] += low > 0 if effect > 0 else high < 0
    assert found[1.0] >= 32 and found[-1.0] >= 32, found  # power >= 0.8
    false_positives = 0
    for i in range(200):
        _, low, high = slope_interval(simulated(np.random.default_rng([7, i]), 0.0), seed=i)
        false_positives += low > 0 or high < 0
    assert false_positives <= 10, false_positives


def test_the_controls_read_as_stated():
    row = {"kappa_diff_low": -0.2, "kappa_diff_high": -0.05}
    assert control_verdict(row, "wrong_phase").startswith("harm detected")
    assert control_verdict({"kappa_diff_low": -0.2, "kappa_diff_high": 0.01}, "wrong_phase").startswith("no harm detected: the study has no power")
    assert control_verdict({"kappa_diff_low": 0.01, "kappa_diff_high": 0.1}, "real") == "helps"
    assert control_verdict({"kappa_diff_low": -0.01, "kappa_diff_high": 0.1}, "real") == "neutral"
    assert control_verdict(row, "real").startswith("hurts")


def test_the_bootstrap_runs_over_partitions_and_seeds():
    """Runs that differ only by partition widen the baseline's interval; a second identical arm's paired difference is zero."""
    rng = np.random.default_rng(3)
    experiment = simulated(rng, 0.0)
    experiment.predictions["copy"] = experiment.predictions["baseline"].copy()
    rows = {row["arm"]: row for row in summarize(experiment, 300, 0.95, seed=1)}
    assert rows["baseline"]["partitions"] == 2 and rows["baseline"]["seeds"] == 5
    assert (rows["copy"]["kappa_diff_low"], rows["copy"]["kappa_diff_high"]) == (0.0, 0.0)
    assert rows["baseline"]["kappa_high"] - rows["baseline"]["kappa_low"] > 0.05


# -- splits: partitions and regimes -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(PhantomConfig(patients=24, visits=2, image_size=8, seed=2))


def test_partitions_and_regimes_lay_out_the_splits(phantom, tmp_path):
    plan = SplitPlan(folds=3, partitions=2, train_fractions=(1.0, 0.25))
    dataset = with_folds(phantom, plan, 0.15, 0)
    assert dataset.folds == 12 and plan.describe(7) == {"train_fraction": 0.25, "partition": 0, "fold": 1}
    assert dataset.fold.shape == (2, len(dataset)) and not np.array_equal(dataset.fold[0], dataset.fold[1])
    np.testing.assert_array_equal(with_folds(phantom, 3, 0.15, 0).split, dataset.split[:3])  # partition 0 is the seed's own
    for k in range(6):  # each full split and its low-data twin
        full, low = dataset.split[k], dataset.split[k + 6]
        np.testing.assert_array_equal(full == TEST, low == TEST)
        np.testing.assert_array_equal(full == VALIDATION, low == VALIDATION)
        kept = set(dataset.patient[low == TRAIN])
        assert kept < set(dataset.patient[full == TRAIN]) and len(kept) == round(0.25 * len(set(dataset.patient[full == TRAIN])))
        assert set(dataset.patient[low == EXCLUDED]) == set(dataset.patient[full == TRAIN]) - kept
    save_dataset(tmp_path / "dataset.npz", dataset)
    loaded = load_dataset(tmp_path / "dataset.npz")
    assert loaded.plan == plan and np.array_equal(loaded.split, dataset.split)


# -- sources and modes ------------------------------------------------------------------------------------


def configs(**settings) -> dict[str, AugmentationConfig]:
    return {m: AugmentationConfig(enabled=m == "depth_rgb", **settings) for m in MODALITIES}


def test_a_pool_serves_seeded_draws_of_the_phase_and_steps(tmp_path):
    pool = {f"rgb_{p}": np.full((5, 3, 8, 8), i, dtype=np.float32) + np.arange(5, dtype=np.float32)[:, None, None, None] / 10 for i, p in enumerate(PHASES)}
    save_npz(tmp_path / "steps3.npz", {**pool, "inference_steps": np.int64(3)})
    source = SyntheticPool.load([tmp_path / "steps3.npz"], configs(inference_steps=3))
    first = source.generate("depth_rgb", "P", 4, seed=11, size=8)
    assert first.shape == (4, 3, 8, 8) and np.all(np.floor(first) == 1)  # phase P's pool
    np.testing.assert_array_equal(source.generate("depth_rgb", "P", 4, seed=11, size=8), first)
    assert source.cache_info().as_dict()["hit_rate"] == 1.0
    with pytest.raises(GensynthError, match="no pool of rgb_I at 10 steps"):
        SyntheticPool.load([tmp_path / "steps3.npz"], configs(inference_steps=10))
    save_npz(tmp_path / "odd.npz", {"rgb_X": pool["rgb_I"], "inference_steps": np.int64(3)})
    with pytest.raises(GensynthError, match=r"odd.npz: unknown array\(s\) rgb_X"):
        SyntheticPool.load([tmp_path / "odd.npz"], configs(inference_steps=3))


def test_wrong_phases_are_never_the_visits_own():
    phases = np.array([0, 1, 2, 2, 0])
    np.testing.assert_array_equal(wrong_phases(phases), [1, 2, 0, 0, 1])


def test_the_real_control_draws_same_phase_training_visits_of_other_patients(phantom):
    dataset = with_folds(phantom, 3, 0.15, 0)
    source = RealImages(dataset, 0)
    train = dataset.indices(0, TRAIN)
    rows = train[:6]
    rng = np.random.default_rng(0)
    for _ in range(20):
        drawn = source.draw("thermal_map", rows, rng)
        for row, image in zip(rows, drawn):
            match = [r for r in train if np.array_equal(dataset.images["thermal_map"][r], image)]
            assert match and all(dataset.phase[r] == dataset.phase[row] and dataset.patient[r] != dataset.patient[row] for r in match)


class Painter:
    """A source painting every image with its (phase index + 10), so where each image came from is visible."""

    def __init__(self, config):
        self.config = config

    def modality_config(self, modality):
        return self.config[modality]

    def generate(self, modality, phase, n, seed, size=None):
        return np.full((n, 3, size, size), 10 + PHASES.index(phase), dtype=np.float32)


@pytest.mark.parametrize("wrong_phase", [False, True])
def test_add_mode_keeps_every_real_image_and_appends_swapped_copies(phantom, wrong_phase):
    dataset = with_folds(phantom, 3, 0.15, 0)
    config = configs(prob=1.0, mix_ratio_range=(0.5, 0.5))
    rows = dataset.indices(0, TRAIN)[:8]
    batch = (torch.from_numpy(dataset.phase[rows]), torch.from_numpy(rows), *(torch.from_numpy(dataset.images[m][rows]).clone() for m in MODALITIES))
    mixed, counts = Mixer(Painter(config), config, 0, 8, mode="add", wrong_phase=wrong_phase)(batch, 0, 0)
    assert counts == {"depth_rgb": 4} and len(mixed[0]) == 12
    for i, tensor in enumerate(mixed):
        np.testing.assert_array_equal(tensor[:8].numpy(), batch[i].numpy())  # the real batch untouched
    copies = mixed[1][8:].numpy()
    labels = dataset.phase[copies]
    np.testing.assert_array_equal(mixed[0][8:].numpy(), labels)  # a copy keeps its visit's label and other modalities
    np.testing.assert_array_equal(mixed[IMAGES + 1][8:].numpy(), dataset.images["thermal_rgb"][copies])
    painted = mixed[IMAGES][8:, 0, 0, 0].numpy() - 10
    np.testing.assert_array_equal(painted, wrong_phases(labels) if wrong_phase else labels)
    replaced, _ = Mixer(Painter(config), config, 0, 8)(tuple(t.clone() for t in batch), 0, 0)
    assert len(replaced[0]) == 8 and (replaced[IMAGES][:, 0, 0, 0] >= 10).sum() == 4  # replace: same size, 4 swapped

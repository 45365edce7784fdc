"""The madness steps' settings, torch-free: each field names its config key (``madness.<key>``), and the
scripts' flags, the rules' flags and the schema check come from them (gensynth.steps)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from ..diffusion.settings import SamplerKind
from ..steps import in_section, setting

JacobianMethod = Literal["auto", "exact", "lanczos"]
JACOBIAN_METHODS: tuple[str, ...] = get_args(JacobianMethod)

top = in_section("")
data = in_section("data")
feature_extractor = in_section("feature_extractor")
model = in_section("model")
train = in_section("train")
sampling = in_section("sampling")
initial = in_section("initial")
metrics = in_section("metrics")
jacobian = in_section("jacobian")
detection = in_section("detection")
original = in_section("original")


@dataclass
class Seed:
    seed: int = top(0)


@dataclass
class RealDataSettings:
    """The real images' size and splits (``madness.data``; the source comes with the data rule's inputs)."""

    image_size: int = data(16)
    test_fraction: float = data(0.3)
    max_train: int = data(0)
    max_test: int = data(0)


@dataclass
class PrepareDataSettings(Seed, RealDataSettings):
    """``madness_prepare_data.py``."""


@dataclass
class LeNetTrainConfig(Seed):
    """``madness_train_lenet.py``: the feature extractor's training (``madness.feature_extractor``)."""

    epochs: int = feature_extractor(20)
    batch_size: int = feature_extractor(32)
    lr: float = feature_extractor(0.002)


@dataclass
class NoiseSchedule:
    """The linear beta schedule (``madness.model``): the models' and the probes'."""

    n_t: int = model(500, key="model.n_T")
    beta_start: float = model(0.0001)
    beta_end: float = model(0.02)


@dataclass
class UNetShape:
    architecture: Literal["unet2d", "context_unet"] = model("unet2d")
    block_out_channels: tuple[int, ...] = model((16, 32, 32))
    layers_per_block: int = model(1)
    attention: bool = model(False)


@dataclass
class ModelSettings(NoiseSchedule, UNetShape):
    """The class-conditional UNet and its noise schedule (``madness.model``)."""


@dataclass
class TrainSettings:
    """Training of model_initial and of every generation (``madness.train``, but warm_start)."""

    batch_size: int = train(32)
    lr: float = train(0.002)
    cond_dropout: float = train(0.1)
    ema_decay: float = train(0.995)
    checkpoint_every: float = setting(600.0, "seconds between resumable checkpoints (.<out>.resume beside the model; a rerun continues from it)")


@dataclass
class SamplingSettings:
    """How every synthetic set is sampled (``madness.sampling``)."""

    sampler: SamplerKind = sampling("ddim")
    num_inference_steps: int = sampling(20)
    eta: float = sampling(0.0)
    max_c: int = sampling(500)


@dataclass
class InitialEpochs:
    n_epoch: int = initial(25)


@dataclass
class TrainInitialSettings(Seed, TrainSettings, ModelSettings, InitialEpochs):
    """``madness_train_initial.py``."""


@dataclass
class InitialSetSize:
    n_with_w: int = initial(100, key="initial.N_with_w")


@dataclass
class SampleSettings(Seed, SamplingSettings, InitialSetSize):
    """``madness_sample.py``: the initial synthetic set of one w."""


@dataclass
class GenerationLoopSettings:
    """What every generation of a loop shares beyond its training and sampling (the scenario's own sizes are its flags)."""

    warm_start: bool = train(True)
    n_eval: int = top(150, key="N_eval")


@dataclass
class GenerationSettings(Seed, SamplingSettings, TrainSettings, GenerationLoopSettings):
    """``madness_generation.py``."""


@dataclass
class SampleMetricsSettings(Seed):
    """FID and PRDC with bootstrap spreads (``madness.metrics``) on a checked feature extractor."""

    min_accuracy: float = feature_extractor(0.95)
    nearest_k: int = metrics(5)
    n_bootstrap: int = metrics(50)


@dataclass
class MetricsSettings(SampleMetricsSettings):
    """``madness_metrics.py``: the sample metrics and t-SNE (``madness.metrics``)."""

    tsne_points: int = metrics(100)
    tsne_perplexity: float = metrics(30.0)


@dataclass
class ProbeSettings:
    """The Jacobian probe set (``madness.jacobian``)."""

    num_images: int = jacobian(6)
    timesteps: tuple[int, ...] = jacobian((50, 200))


@dataclass
class MakeProbesSettings(Seed, NoiseSchedule, ProbeSettings):
    """``madness_make_probes.py``: probes noised with the models' schedule."""


@dataclass
class JacobianSettings:
    """``madness_jacobian.py``: the spectrum's method (``madness.jacobian``)."""

    method: JacobianMethod = jacobian("auto")
    k: int = jacobian(50)


@dataclass
class Replicates:
    """Training-seed replicates per unit (``madness.detection``): a scenario's chain files come unit-major, R per unit."""

    replicates: int = detection(2)


@dataclass
class CompareSettings(Replicates):
    """``madness_compare.py``: R splits the chain index into unit and replicate."""


@dataclass
class DetectSettings(Seed, Replicates):
    """``madness_detect.py``: the collapse test, full_synthetic against matched_real per unit (``madness.detection``)."""

    initial_models: int = detection(3)
    alpha: float = detection(0.05)
    n_bootstrap: int = detection(200)
    scale: Literal["demo", "study", "full"] = detection("demo")


@dataclass
class OriginalModelSettings:
    """The group's own checkpoints: their ContextUnet and schedule (``madness.original``)."""

    n_feat: int = original(128)
    n_classes: int = original(10)
    n_t: int = original(500, key="original.n_T")
    betas: tuple[float, float] = original((0.0001, 0.02))


@dataclass
class OriginalJacobianSettings(Seed, OriginalModelSettings, ProbeSettings, JacobianSettings):
    """``madness_original_jacobian.py``: the module's probe images and spectrum method, on the group's checkpoints."""


@dataclass
class OriginalMetricsSettings(SampleMetricsSettings):
    """``madness_original_metrics.py``: FID and PRDC (``madness.metrics``) of the group's sample sets."""


@dataclass
class OriginalDetectSettings:
    """``madness_original_detect.py``: one chain per w has no replicates, so no setting of the departure rule applies."""


# Each script step and its settings (tests/test_contract.py checks them against the schema and the scripts).
STEPS = {
    "madness_prepare_data": PrepareDataSettings,
    "madness_train_lenet": LeNetTrainConfig,
    "madness_make_probes": MakeProbesSettings,
    "madness_train_initial": TrainInitialSettings,
    "madness_sample": SampleSettings,
    "madness_generation": GenerationSettings,
    "madness_metrics": MetricsSettings,
    "madness_jacobian": JacobianSettings,
    "madness_detect": DetectSettings,
    "madness_compare": CompareSettings,
    "madness_original_jacobian": OriginalJacobianSettings,
    "madness_original_metrics": OriginalMetricsSettings,
    "madness_original_detect": OriginalDetectSettings,
}

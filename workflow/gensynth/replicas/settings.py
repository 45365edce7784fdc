"""The replicas steps' settings, torch-free: each field names its config key (``replicas.<key>``), and the
scripts' flags, the rules' flags and the schema check come from them (gensynth.steps)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import GensynthError
from ..steps import in_section, positive_int

top = in_section("")
phantom = in_section("phantom")
model = in_section("model")
train = in_section("train")
sample = in_section("sample")
qa = in_section("qa")


@dataclass
class ZBins:
    z_bins: int = top(4)


@dataclass
class PhantomConfig(ZBins):
    """The phantom dataset (``replicas.phantom`` and ``z_bins``): ``make_replica_data.py phantom``."""

    image_size: int = phantom(32)
    subjects_control: int = phantom(24)
    subjects_epilepsy: int = phantom(24)
    slices_per_subject: int = phantom(12)
    test_fraction: float = phantom(0.25)
    lesions_control: float = phantom(0.5)
    lesions_epilepsy: float = phantom(3.0)
    min_lesion_fraction: float = phantom(0.004)
    seed: int = phantom(0)

    def __post_init__(self):
        if self.image_size < 8:
            raise GensynthError(f"phantom image_size {self.image_size}: expected at least 8 pixels")
        if not 0 < self.test_fraction < 1:
            raise GensynthError(f"phantom test_fraction {self.test_fraction}: expected a number in (0, 1)")


@dataclass
class ReplicaModelSettings:
    """The UNet's shape (``replicas.model``)."""

    block_out_channels: tuple[int, ...] = model((16, 32, 32))
    layers_per_block: int = model(1)
    attention: bool = model(False)


@dataclass
class ReplicaTrainSettings:
    """The config's ``replicas.train`` section."""

    epochs: int = train(25)
    batch_size: int = train(16)
    lr: float = train(4e-3)
    cond_dropout: float = train(0.1)
    ema_decay: float = train(0.999)
    val_fraction: float = train(0.1)
    num_train_timesteps: int = train(1000)
    beta_schedule: str = train("linear")
    prediction_type: str = train("v_prediction")
    seed: int = train(0)


@dataclass
class TrainReplicaModelSettings(ReplicaTrainSettings, ReplicaModelSettings, ZBins):
    """``train_replica_model.py``: z-bins, the UNet's shape and its training."""


@dataclass
class GenerateReplicaSettings:
    """``generate_replicas.py``: the config's ``replicas.sample`` section (but the number of replicas)."""

    seed_base: int = sample(42)
    num_inference_steps: int = sample(20, parse=positive_int)
    eta: float = sample(0.0)
    guidance_scale: float = sample(1.0)
    batch_size: int = sample(16, parse=positive_int)
    use_ema: bool = sample(True)


@dataclass
class ReplicasQASettings(ZBins):
    """``replicas_qa.py``: the config's ``replicas.qa`` section."""

    min_mask_fraction: float = qa(0.002)
    grid_per_bin: int = qa(4)


# Each script step and its settings (tests/test_contract.py checks them against the schema and the scripts).
STEPS = {
    "make_replica_data phantom": PhantomConfig,
    "make_replica_data distribution": ZBins,
    "train_replica_model": TrainReplicaModelSettings,
    "generate_replicas": GenerateReplicaSettings,
    "replicas_qa": ReplicasQASettings,
}

"""The genaug steps' settings, torch-free: each field names its config key (``genaug.<key>``), and the
scripts' flags, the rules' flags and the schema check come from them (gensynth.steps).

The per-modality augmentation flags (``--depth-rgb-prob`` ...) and the switch are the arm's, spelled by
gensynth.genaug.flags from AugmentationConfig; they are no step's settings here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import GensynthError
from ..steps import in_section

data = in_section("data")
phantom = in_section("phantom")
pipeline = in_section("pipeline")
classifier = in_section("classifier")
quality = in_section("quality")
report = in_section("report")

KappaWeights = Literal["none", "linear", "quadratic"]  # scikit-learn's cohen_kappa_score weights ("none": unweighted)


@dataclass(frozen=True)
class DataSource:
    """Where the visits come from (``genaug.data``): the rule passes only what the source needs (dag.source_flags),
    so this is no step's settings."""

    source: Literal["phantom", "folder"] = data("phantom")
    folder: str = data("")
    csv: str = data("labels.csv")


@dataclass(frozen=True)
class PhantomConfig:
    """The wound phantom (``genaug.phantom`` and ``data.image_size``)."""

    patients: int = phantom(48)
    visits: int = phantom(3)
    image_size: int = data(16)
    seed: int = phantom(0)

    def __post_init__(self):
        if self.patients < 1 or self.visits < 1:
            raise GensynthError(f"phantom: {self.patients} patients x {self.visits} visits; expected at least one of each")
        if self.image_size < 8:
            raise GensynthError(f"phantom image_size {self.image_size}: expected at least 8 pixels")


@dataclass(frozen=True)
class DataSplits:
    """The patient-grouped folds (``genaug.data``)."""

    folds: int = data(3)
    val_fraction: float = data(0.15)
    split_seed: int = data(0)
    partitions: int = data(1)
    train_fractions: tuple[float, ...] = data((1.0,))


@dataclass(frozen=True)
class GenaugDataSettings(DataSplits, PhantomConfig):
    """``genaug_data.py``: the phantom, the image size and the folds."""


@dataclass(frozen=True)
class PipelineSettings:
    """The config's ``genaug.pipeline`` section: ``genaug_train_pipeline.py``."""

    block_out_channels: tuple[int, ...] = pipeline((16, 32))
    layers_per_block: int = pipeline(1)
    epochs: int = pipeline(40)
    batch_size: int = pipeline(16)
    lr: float = pipeline(3e-3)
    ema_decay: float = pipeline(0.99)
    num_train_timesteps: int = pipeline(1000)
    prediction_type: str = pipeline("v_prediction")
    seed: int = pipeline(0)

    def fingerprint_settings(self) -> dict[str, Any]:
        """What a resumed run must share with the interrupted one: all but the epoch count (raising it extends a run)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "epochs"}


@dataclass(frozen=True)
class ClassifierSettings:
    """The config's ``genaug.classifier`` section (but its list of seeds): one training run's settings."""

    width: int = classifier(16)
    epochs: int = classifier(40)
    batch_size: int = classifier(16)
    lr: float = classifier(3e-3)
    ema_decay: float = classifier(0.99)


@dataclass(frozen=True)
class ClassifySettings(ClassifierSettings):
    """``genaug_classify.py``: the classifier and its seeds (one training run per seed)."""

    seeds: tuple[int, ...] = classifier((0, 1))


@dataclass(frozen=True)
class QualitySettings:
    """``genaug_quality.py``: the config's ``genaug.quality`` section."""

    n_samples: int = quality(64)
    seed: int = quality(0)


@dataclass(frozen=True)
class ReportSettings:
    """``genaug_report.py``: the config's ``genaug.report`` section."""

    n_bootstrap: int = report(2000)
    confidence: float = report(0.95)
    kappa_weights: KappaWeights = report("none")
    seed: int = report(0)
    scale: Literal["demo", "study", "full"] = report("demo")
    fid_factor: float = report(2.0)


# Each script step and its settings (tests/test_contract.py checks them against the schema and the scripts).
STEPS = {
    "genaug_data": GenaugDataSettings,
    "genaug_train_pipeline": PipelineSettings,
    "genaug_classify": ClassifySettings,
    "genaug_quality": QualitySettings,
    "genaug_report": ReportSettings,
}

"""The denoise steps' settings, torch-free: each field names its config key (``denoise.<key>``), and the
scripts' flags, the rules' flags and the schema check come from them (gensynth.steps)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from ..errors import GensynthError
from ..steps import in_section, setting

Target = Literal["noise2noise", "clean"]
TARGETS: tuple[str, ...] = get_args(Target)

top = in_section("")
phantom = in_section("phantom")
model = in_section("model")
train = in_section("train")
baseline = in_section("baseline")
infer = in_section("infer")
qa = in_section("qa")
gates = in_section("qa.gates")
downstream = in_section("qa.downstream")


@dataclass(frozen=True)
class Treatment:
    name: str
    dose: float
    samples: tuple[str, ...]
    staging_samples: tuple[str, ...]  # the staging corpus's samples (the group's 9,000: all five everywhere)


@dataclass(frozen=True)
class PhantomSpectra:
    """What the phantom's corpus and its staging corpus share (``denoise.phantom`` and ``seed``)."""

    seed: int = top(0)
    doses: tuple[float, ...] = phantom((0.0, 0.5, 1.0, 2.0, 4.0, 8.0))
    samples: tuple[str, ...] = phantom(("A", "B", "C"))
    angles: tuple[int, ...] = phantom((0, 45))
    replicates: int = phantom(32)
    wavelength_min: float = phantom(200.0)
    wavelength_max: float = phantom(800.0)
    wavelength_step: float = phantom(2.5)
    read_noise: float = phantom(0.02)
    shot_noise: float = phantom(0.05)
    sample_amplitude_sd: float = phantom(0.1)
    sample_centre_sd_nm: float = phantom(3.0)
    correlated_noise: float = phantom(0.01)
    correlation_nm: float = phantom(8.0)
    drift: float = phantom(0.003)
    scattering_jitter: float = phantom(0.03)
    peak_jitter_nm: float = phantom(0.5)
    width_jitter: float = phantom(0.03)
    extra_pairing_groups: int = phantom(4)


@dataclass(frozen=True)
class PhantomCorpus(PhantomSpectra):
    """``make_denoise_data.py corpus``: the main corpus and its held-out samples (the panel's and the validation loss's groups)."""

    last_treatment_samples: tuple[str, ...] = phantom(("G", "I"))
    panel_groups: int = phantom(5)
    val_groups: int = phantom(3)


@dataclass(frozen=True)
class PhantomStaging(PhantomSpectra):
    """``make_denoise_data.py staging``: the staging corpus."""

    staging_last_treatment_samples: tuple[str, ...] = phantom(("F", "G", "H", "I", "J"))


@dataclass(frozen=True)
class PhantomConfig(PhantomCorpus, PhantomStaging):
    """The phantom's whole design (both corpora); see phantom.py for the model."""

    def __post_init__(self):
        if self.replicates < 2 or self.replicates % 2:
            raise GensynthError(f"phantom: {self.replicates} replicates; expected an even number (Noise2Noise pairs 0-1, 2-3, ...)")
        if self.extra_pairing_groups and self.replicates < 4:
            raise GensynthError(f"phantom: a second pairing (r with r + 2) needs at least 4 replicates, got {self.replicates}")

    @property
    def treatments(self) -> tuple[Treatment, ...]:
        """treatment_1 .. treatment_n with ``doses``; every treatment but the last has ``samples`` (the group's
        A-E), the last ``last_treatment_samples`` (the group's treatment_6: G and I), and in the staging corpus
        ``staging_last_treatment_samples``."""
        last = len(self.doses)
        return tuple(
            Treatment(
                f"treatment_{i}",
                float(dose),
                tuple(self.last_treatment_samples if i == last else self.samples),
                tuple(self.staging_last_treatment_samples if i == last else self.samples),
            )
            for i, dose in enumerate(self.doses, 1)
        )

    @property
    def doses_max(self) -> float:
        return max(float(dose) for dose in self.doses)

    @classmethod
    def design(cls, doses, samples, last_treatment_samples, staging_last_treatment_samples, **settings) -> PhantomConfig:
        """The design from lists (the config's, a test's)."""
        if "angles" in settings:
            settings["angles"] = tuple(settings["angles"])
        return cls(
            doses=tuple(doses),
            samples=tuple(samples),
            last_treatment_samples=tuple(last_treatment_samples),
            staging_last_treatment_samples=tuple(staging_last_treatment_samples),
            **settings,
        )


@dataclass
class DenoiseModelSettings:
    """MambaUV's shape (``denoise.model``; MambaUVConfig takes it with the dose features' count)."""

    d_model: int = model(16)
    n_layers: int = model(2)
    d_state: int = model(8)
    expand: int = model(2)
    d_conv: int = model(4)
    bidirectional: bool = model(True)


@dataclass
class DenoiseTrainSettings:
    """The config's ``denoise.train`` section (and the module's seed). The field order is kept: the checkpoint
    stores these settings as a dict, and its bytes are reproducible."""

    target: Target = setting("noise2noise", "the partner replicate, or the clean spectrum (the DAG sets it per arm)")
    epochs: int = train(12)
    batch_size: int = train(32)
    lr: float = train(5e-3)
    final_lr_fraction: float = train(1.0)
    ema_decay: float = train(0.99)
    patience: int = train(3)
    grad_clip: float = setting(1.0, "gradient norm clip")
    seed: int = setting(0, "initial weights and shuffling (the DAG trains one job per value of train.seeds)")

    def __post_init__(self):
        if self.target not in TARGETS:
            raise GensynthError(f"target {self.target!r}: expected one of {', '.join(TARGETS)}")

    def epoch_lr(self, epoch: int) -> float:
        """The learning rate of epoch 1 .. epochs (a function of the epoch alone, so a resumed run follows it too)."""
        progress = (epoch - 1) / max(self.epochs - 1, 1)
        return self.lr * (self.final_lr_fraction + (1 - self.final_lr_fraction) * 0.5 * (1 + math.cos(math.pi * progress)))


@dataclass
class TrainDenoiserSettings(DenoiseTrainSettings, DenoiseModelSettings):
    """``train_denoiser.py``: the model's shape and its training."""


@dataclass(frozen=True)
class BaselineCandidates:
    """``tune_baselines.py``: the config's ``denoise.baseline`` section, every baseline's candidates."""

    windows: tuple[int, ...] = baseline((5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31, 35, 41, 51))
    polyorders: tuple[int, ...] = baseline((2, 3, 4))
    lams: tuple[float, ...] = baseline((1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0))
    wavelets: tuple[str, ...] = baseline(("db4", "sym8", "coif3"))
    levels: tuple[int, ...] = baseline((3, 4, 5))
    threshold_scales: tuple[float, ...] = baseline((0.25, 0.5, 1.0, 1.5))
    components: tuple[int, ...] = baseline((2, 4, 6, 8, 12, 16, 24, 32))
    folds: int = baseline(3)


@dataclass(frozen=True)
class InferSettings:
    """``run_denoise_from_manifest.py``: the config's ``denoise.infer`` section (the shards are the DAG's jobs)."""

    batch_size: int = infer(128)
    num_workers: int = infer(1)


@dataclass(frozen=True)
class RoiWindows:
    """``plot_roi_windows.py``: the ROI windows file."""

    roi_windows: Path = qa("resources/denoise/roi_windows.yaml")  # the schema's string; the flag parses it to a Path


@dataclass(frozen=True)
class GateThresholds:
    """The config's ``denoise.qa.gates``: gates 1-3, each a margin over the raw spectra (which therefore fail them)."""

    psnr_gain_min_db: float = gates(3.0)
    sam_min_improvement_deg: float = gates(0.5)
    roi_peak_tolerance_nm: float = gates(2.0)
    roi_area_tolerance: float = gates(0.1)  # relative, of the band area above the window's chord
    roi_min_fraction: float = gates(0.5)


@dataclass(frozen=True)
class DownstreamThresholds:
    """The config's ``denoise.qa.downstream``: gate 4's checks, each the denoised spectra's statistic over the raw ones'."""

    replicate_variance_max_ratio: float = downstream(0.5)
    separability_min_ratio: float = downstream(1.1)
    dose_residual_max_ratio: float = downstream(0.8)
    peak_stability_max_ratio: float = downstream(0.9)


@dataclass(frozen=True)
class DownstreamProxySettings(DownstreamThresholds, RoiWindows):
    """``downstream_proxy_eval.py``: gate 4's thresholds, the ROI windows and the dose column."""

    dose_column: str = qa("dose")


@dataclass(frozen=True)
class PanelQASettings(GateThresholds, DownstreamProxySettings):
    """``evaluate_validation_panel.py``: the config's ``denoise.qa`` section (but the expected hash, a job's)."""

    top_k: int = qa(5)
    batch_size: int = qa(256)
    forbid_overlap: bool = qa(True)
    enforce_gates: bool = qa(True)


# Each script step and its settings (tests/test_contract.py checks them against the schema and the scripts).
STEPS = {
    "make_denoise_data corpus": PhantomCorpus,
    "make_denoise_data staging": PhantomStaging,
    "tune_baselines": BaselineCandidates,
    "train_denoiser": TrainDenoiserSettings,
    "run_denoise_from_manifest": InferSettings,
    "evaluate_validation_panel": PanelQASettings,
    "downstream_proxy_eval": DownstreamProxySettings,
    "plot_roi_windows": RoiWindows,
}

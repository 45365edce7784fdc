"""The diffusion core shared by the modules: a minimal model interface (``models``), the noise
schedule and loss (``schedule``), training with EMA and resume (``training``, on
:mod:`gensynth.training`), seeded sampling (``sampling``) and checkpoints (``checkpoints``).

Each module's own architectures live in that module and register by name (madness's ``ContextUnet``).
"""

from .checkpoints import CHECKPOINT_FORMAT, LoadedModel, load_model_checkpoint, save_model_checkpoint
from .models import ARCHITECTURES, UNetConfig, build_model, null_label, register_architecture, sample_shape
from .sampling import SamplerSettings, initial_noise, prepare_for_inference, sample, seeded_samples
from .schedule import SAMPLERS, DiffusionLoss, make_sampler, make_train_scheduler, scheduler_config
from .training import DiffusionTrainConfig, diffusion_trainer

__all__ = [
    "ARCHITECTURES",
    "CHECKPOINT_FORMAT",
    "SAMPLERS",
    "DiffusionLoss",
    "DiffusionTrainConfig",
    "LoadedModel",
    "SamplerSettings",
    "UNetConfig",
    "build_model",
    "diffusion_trainer",
    "initial_noise",
    "load_model_checkpoint",
    "make_sampler",
    "make_train_scheduler",
    "null_label",
    "prepare_for_inference",
    "register_architecture",
    "sample",
    "sample_shape",
    "save_model_checkpoint",
    "scheduler_config",
    "seeded_samples",
]

"""The diffusion core shared by the modules: a minimal model interface (``models``), the noise
schedule and loss (``schedule``), training with EMA and resume (``training``, on
:mod:`gensynth.training`), seeded sampling (``sampling``) and checkpoints (``checkpoints``).

Each module's own architectures live in that module and register by name (madness's ``ContextUnet``).
"""

from ..lazy import lazy_exports

# Imported on first use: the torch-free ``shape`` is read at Snakefile parse time, and a job that needs a
# sampler's settings need not import diffusers' models.
_EXPORTS = {
    "CHECKPOINT_FORMAT": "checkpoints",
    "LoadedModel": "checkpoints",
    "load_model_checkpoint": "checkpoints",
    "save_model_checkpoint": "checkpoints",
    "ARCHITECTURES": "models",
    "UNetConfig": "models",
    "build_model": "models",
    "null_label": "models",
    "register_architecture": "models",
    "sample_shape": "models",
    "SamplerSettings": "sampling",
    "initial_noise": "sampling",
    "prepare_for_inference": "sampling",
    "sample": "sampling",
    "seeded_samples": "sampling",
    "SAMPLERS": "settings",
    "DiffusionLoss": "schedule",
    "make_sampler": "schedule",
    "make_train_scheduler": "schedule",
    "scheduler_config": "schedule",
    "DiffusionTrainConfig": "training",
    "diffusion_trainer": "training",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)

"""genaug: generative augmentation of a multimodal wound-healing classifier.

``augmentation``: the per-modality settings, the modality-to-model mapping, the global switch and
the prompt templates (no torch import: the Snakefile validates the config with it at parse time);
``manager``: GenerativeAugmentationManager, which loads the per-(modality, phase) diffusers
pipelines on demand into an LRU cache and samples seeded synthetic images; ``tiny_sd``: tiny
random-weight pipelines built offline, for tests and the benchmark.

The experiment: ``phantom`` (the procedural multimodal wound phantom) and ``data`` (the dataset
NPZ, the patient-grouped folds, the users' folder and CSV layout); ``pipelines`` (the small DDIM
pipelines trained per fold and model folder, saved in the group's ``{kind}_{phase}`` layout);
``mixing`` (the rule that puts synthetic images into training batches); ``classifier`` (the late-fusion
classifier and its training); ``quality`` (FID of the samples on the classifier's features);
``experiment`` (metrics, bootstrap intervals, paired differences, the table); ``figures``;
``flags`` (the augmentation settings as script flags); ``dag`` (what the Snakefile knows).
"""

from ..lazy import lazy_exports

# The group's own import, ``from gensynth.genaug import GenerativeAugmentationManager, AugmentationConfig``,
# imported on first use: the Snakefile imports gensynth.genaug.dag (no torch) at parse time, which runs this file.
_EXPORTS = {
    "AugmentationConfig": "augmentation",
    "GenerativeAugmentationManager": "manager",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)

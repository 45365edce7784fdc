"""The module's file names, each spelled once: shared by the DAG (dag.py) and the code that writes the files.

Plain Python (standard library only): the Snakefile reads it at parse time. The group's names where it has them.
"""

from pathlib import PurePosixPath

DENOISED_SUFFIX = "_denoised.npy"
BEST_CHECKPOINT = "mamba_tiny_uv_best.pt"
TRAIN_LOGS = {"metrics": "metrics.csv", "audit": "audit.log", "summary": "train_summary.json"}  # in the training's --log_dir
DOWNSTREAM_JSON = "downstream_metrics.json"  # the downstream proxy's output, beside the denoised spectra it scores
# The panel QA's --output-dir: one summary, a methods table and figure, and per scored method <name>:
QA_FILES = {"summary": "panel_eval_summary.json", "methods": "panel_methods_summary.csv", "psnr_figure": "panel_psnr_by_group.png"}
QA_METHOD_FILES = {"per_spectrum": "{name}_per_spectrum_metrics.csv", "per_group": "{name}_per_group_summary.csv", "preds": "{name}_panel_preds"}
COMPARISON_NAME = "clean_target"
BASELINE_FILES = {"baselines": "baselines.json", "pca": "pca.npz"}  # scripts/tune_baselines.py's outputs

# The data folder (results/denoise/data in the DAG):
DATA_FILES = {
    "root": "spectra",  # raw spectra tree: <treatment>/<sample>/angle_<θ>/replicate_<r>.npy
    "clean": "clean",  # clean spectra, same relative paths (evaluation and the clean-target arm only)
    "grid": "wavelength_grid.npy",
    "manifest_full": "manifest_full.csv",
    "manifest_train": "manifest_train.csv",
    "manifest_val": "manifest_val.csv",
    "panel": "validation_panel.csv",
    "dose_features": "metadata/dose_features.csv",
    "dose_stats": "metadata/dose_stats.json",
    "summary": "data_summary.json",
}
STAGING_FILES = {
    "root": "_staging/spectra",
    "manifest": "_staging/manifest.csv",
    "summary": "_staging/data_summary.json",
}


def denoised_relative_path(relative: str) -> str:
    """``a/b/replicate_001.npy`` -> ``a/b/replicate_001_denoised.npy``: the group's name of a denoised spectrum."""
    path = PurePosixPath(relative)
    stem = path.name[: -len(".npy")] if path.name.endswith(".npy") else path.name
    return str(path.with_name(stem + DENOISED_SUFFIX))

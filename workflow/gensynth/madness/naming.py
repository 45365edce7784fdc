"""Names shared by the rules and the scripts (no heavy imports: the Snakefile reads this at parse time)."""

SCENARIOS = ("full_synthetic", "matched_real", "fresh", "augmented_synthetic")
# matched_real has no config section: it runs this scenario's loop (generations, n_epoch, N_next) on real images.
MATCHED_LOOP = "full_synthetic"
# The collapse test compares the loop with its matched control, unit by unit (madness_detect).
DETECTION_SCENARIOS = ("full_synthetic", "matched_real")
# The scenarios that draw new real training images each generation, and the key (in madness) that sizes a draw.
NEW_REAL_IMAGES = {"fresh": "scenarios.fresh.n_real", "matched_real": f"scenarios.{MATCHED_LOOP}.N_next"}
DIGITS_COUNT = 1797  # images in scikit-learn's bundled digits


def w_label(w: float) -> str:
    """The guidance weight as it appears in file names and seeds: 0, 0.25, 1.5, 2."""
    return f"{float(w):g}"


def unit_parts(seed: int, unit: int) -> tuple:
    """What every seed of one unit starts with (its model_initial, initial sets, probes, real draws and chains)."""
    return ("madness", seed, "unit", unit)


# The four standard MNIST IDX files (each may also be gzipped, with ".gz").
MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}

"""Names shared by the rules and the scripts (no heavy imports: the Snakefile reads this at parse time)."""

SCENARIOS = ("full_synthetic", "fresh", "augmented_synthetic")
DIGITS_COUNT = 1797  # images in scikit-learn's bundled digits


def w_label(w: float) -> str:
    """The guidance weight as it appears in file names and seeds: 0, 0.25, 1.5, 2."""
    return f"{float(w):g}"


# The four standard MNIST IDX files (each may also be gzipped, with ".gz").
MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}

"""One generation's sample metrics on LeNet features: FID and PRDC with bootstrap spreads, and t-SNE.

The real test split is the fixed reference of every generation, so only the generated set's
sampling noise separates two generations: the bootstrap resamples the generated features
with replacement (real features fixed) and reports each metric's standard deviation over
the resamples. (Duplicated points shrink the k-NN radii among generated samples, so the
spread of recall is approximate; FID, precision, density and coverage average over points.)
"""

from __future__ import annotations

import numpy as np

from ..metrics import fid, prdc

METRICS = ("fid", "precision", "recall", "density", "coverage")


def sample_metrics(real: np.ndarray, fake: np.ndarray, nearest_k: int) -> dict[str, float]:
    """FID and PRDC of features real (N, D) and fake (M, D)."""
    scores = {"fid": float(fid(real, fake))}
    scores.update({name: float(value) for name, value in prdc(real, fake, nearest_k=nearest_k).items()})
    return scores


def metrics_with_bootstrap(real: np.ndarray, fake: np.ndarray, nearest_k: int, n_bootstrap: int, rng: np.random.Generator) -> dict[str, dict[str, float]]:
    """Each metric's value and its bootstrap standard deviation over resampled generated sets."""
    values = sample_metrics(real, fake, nearest_k)
    replicas = [sample_metrics(real, fake[rng.integers(0, len(fake), len(fake))], nearest_k) for _ in range(n_bootstrap)]
    return {
        name: {"value": values[name], "bootstrap_std": float(np.std([r[name] for r in replicas], ddof=1)) if n_bootstrap > 1 else 0.0}
        for name in METRICS
    }


def tsne_embedding(real: np.ndarray, fake: np.ndarray, max_points: int, perplexity: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """2-D t-SNE of at most ``max_points`` real and ``max_points`` generated features, embedded together.

    Returns the embedding (n, 2) and a boolean mask (n,) that is True for generated points.
    """
    from sklearn.manifold import TSNE

    rng = np.random.default_rng(seed)
    real = real[np.sort(rng.permutation(len(real))[:max_points])]
    fake = fake[np.sort(rng.permutation(len(fake))[:max_points])]
    points = np.concatenate([real, fake])
    perplexity = min(perplexity, (len(points) - 1) / 3)  # scikit-learn needs perplexity < n
    embedding = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed % 2**32).fit_transform(points)
    return embedding, np.r_[np.zeros(len(real), bool), np.ones(len(fake), bool)]

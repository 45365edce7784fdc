"""One generation's sample metrics on LeNet features: FID and PRDC with bootstrap spreads, and t-SNE.

The real test split is the fixed reference of every generation, so only the generated set's
sampling noise separates two generations: the bootstrap resamples the generated features
with replacement (real features fixed) and reports each metric's standard deviation over
the resamples. (Duplicated points shrink the k-NN radii among generated samples, so the
spread of recall is approximate; FID, precision, density and coverage average over points.)
"""

from __future__ import annotations

import numpy as np

from ..errors import GensynthError
from ..io import load_json

METRICS = ("fid", "precision", "recall", "density", "coverage")


def sample_metrics(real: np.ndarray, fake: np.ndarray, nearest_k: int) -> dict[str, float]:
    """FID and PRDC of features real (N, D) and fake (M, D)."""
    # Imported here: PRDC runs on torch, and the detection, figure and comparison jobs need only METRICS.
    from ..metrics import fid, prdc

    scores = {"fid": float(fid(real, fake))}
    scores.update({name: float(value) for name, value in prdc(real, fake, nearest_k=nearest_k).items()})
    return scores


def metrics_with_bootstrap(real: np.ndarray, fake: np.ndarray, nearest_k: int, n_bootstrap: int, rng: np.random.Generator) -> dict[str, dict[str, float]]:
    """Each metric's value and its bootstrap standard deviation over resampled generated sets."""
    values = sample_metrics(real, fake, nearest_k)
    replicas = [sample_metrics(real, fake[rng.integers(0, len(fake), len(fake))], nearest_k) for _ in range(n_bootstrap)]
    return {name: {"value": values[name], "bootstrap_std": float(np.std([r[name] for r in replicas], ddof=1)) if n_bootstrap > 1 else 0.0} for name in METRICS}


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


def add_scenario_arguments(parser, jacobians: bool) -> None:
    """``--scenario NAME --metrics FILES... [--jacobians FILES...]``, repeated per scenario: one file per chain, unit-major
    (unit0/rep0, unit0/rep1, ..., unit1/rep0, ...)."""
    parser.add_argument("--scenario", action="append", required=True, help="a scenario's name; its files follow")
    parser.add_argument(
        "--metrics", nargs="+", action="append", required=True, help="the scenario's metrics JSON, one per chain, unit-major (madness_metrics.py)"
    )
    if jacobians:
        parser.add_argument(
            "--jacobians", nargs="+", action="append", required=True, help="its Jacobian NPZ, one per chain, in the same order (madness_jacobian.py)"
        )


def scenario_files(args) -> dict[str, tuple[list[str], list[str] | None]]:
    """The ``--scenario`` groups as {name: (metrics per chain, Jacobians per chain or None)}."""
    jacobians = getattr(args, "jacobians", None)
    if len(args.metrics) != len(args.scenario) or (jacobians is not None and len(jacobians) != len(args.scenario)):
        raise GensynthError(f"--scenario given {len(args.scenario)} times: expected as many --metrics (and --jacobians) lists")
    groups = {}
    for i, name in enumerate(args.scenario):
        found = None if jacobians is None else jacobians[i]
        if found is not None and len(found) != len(args.metrics[i]):
            raise GensynthError(f"--scenario {name}: {len(args.metrics[i])} metrics files but {len(found)} Jacobian files (one each per chain)")
        groups[name] = (args.metrics[i], found)
    return groups


def load_metrics(paths: list[str]) -> list[list[dict]]:
    """Each chain's metrics per generation (``[chain][generation]``), checked for every metric."""
    chains = []
    for path in paths:
        record = load_json(path)
        generations = record.get("generations") if isinstance(record, dict) else None
        if not isinstance(generations, list) or not generations:
            raise GensynthError(f"{path}: expected a chain's metrics (a 'generations' list, the output of madness_metrics.py)")
        for g, metrics in enumerate(generations):
            missing = [name for name in METRICS if name not in metrics]
            if missing:
                raise GensynthError(f"{path}: generation {g} misses metric(s) {', '.join(missing)}")
        chains.append(generations)
    if len({len(chain) for chain in chains}) > 1:
        raise GensynthError(f"{', '.join(paths)}: the chains hold different numbers of generations")
    return chains

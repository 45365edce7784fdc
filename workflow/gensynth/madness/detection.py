"""When does each signal leave its generation-0 baseline?

Every signal s has a value s_g and a bootstrap standard deviation sd_g per generation g
(sample metrics: over resampled generated sets; Jacobian statistics: over resampled probe
images). The departure rule:

1. z_g = (s_g - s_0) / sqrt(sd_0^2 + sd_g^2), the difference in units of its own noise
   (z_g = +-inf when both spreads are zero and the values differ, 0 when equal);
2. the signal departs at the first g >= 1 with |z_g| > k (default k = 3), or never (None).

z_g is also the normalisation of the signals figure, so every signal shares one axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import GensynthError
from ..io import load_npz

JACOBIAN_STATS = ("trace", "top", "participation_ratio", "effective_rank", "spectral_entropy")  # of jacobian.spectrum_stats
RULE = "first generation g >= 1 with |s_g - s_0| / sqrt(sd_0^2 + sd_g^2) > k (sd: bootstrap standard deviation)"


@dataclass
class Signal:
    name: str
    family: str  # "sample" (FID, PRDC) or "jacobian"
    values: np.ndarray  # (G,)
    std: np.ndarray  # (G,)


def z_scores(values: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Step 1: (s_g - s_0) / sqrt(sd_0^2 + sd_g^2) for every generation g."""
    diff = values - values[0]  # (G,)
    scale = np.sqrt(std[0] ** 2 + std**2)  # (G,)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = diff / scale
    return np.where(scale > 0, z, np.where(diff == 0, 0.0, np.copysign(np.inf, diff)))


def first_departure(values: np.ndarray, std: np.ndarray, k: float) -> int | None:
    """Step 2: the first generation g >= 1 with |z_g| > k, or None."""
    beyond = np.flatnonzero(np.abs(z_scores(values, std))[1:] > k)
    return int(beyond[0]) + 1 if len(beyond) else None


def bootstrap_mean(per_probe: np.ndarray, n_bootstrap: int, rng: np.random.Generator) -> tuple[float, float]:
    """Mean over probes (n,) and the bootstrap standard deviation of that mean."""
    if n_bootstrap < 2 or len(per_probe) < 2:
        return float(per_probe.mean()), 0.0
    resamples = rng.integers(0, len(per_probe), size=(n_bootstrap, len(per_probe)))  # (B, n)
    return float(per_probe.mean()), float(per_probe[resamples].mean(axis=1).std(ddof=1))


def sample_signals(metrics_per_generation: list[dict], names: tuple[str, ...]) -> list[Signal]:
    """FID/PRDC signals from each generation's metrics JSON (``{name: {value, bootstrap_std}}``)."""
    return [
        Signal(
            name,
            "sample",
            np.array([m[name]["value"] for m in metrics_per_generation], dtype=np.float64),
            np.array([m[name]["bootstrap_std"] for m in metrics_per_generation], dtype=np.float64),
        )
        for name in names
    ]


def jacobian_signals(stats_per_generation: list[dict[str, np.ndarray]], timesteps: np.ndarray, stat_names: tuple[str, ...],
                     n_bootstrap: int, seed: int) -> list[Signal]:
    """One signal per (statistic, probe timestep): its mean over probe images, bootstrap over images.

    ``stats_per_generation[g][stat]`` is (P,) per probe; ``timesteps`` (P,) is the same for every generation.
    """
    signals = []
    for t in np.unique(timesteps):
        at_t = timesteps == t
        for stat in stat_names:
            # A fresh generator per generation: the same resamples in each (common random numbers).
            pairs = [bootstrap_mean(stats[stat][at_t], n_bootstrap, np.random.default_rng(seed)) for stats in stats_per_generation]
            signals.append(Signal(f"{stat}@t={int(t)}", "jacobian", np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])))
    return signals


def detect(signals: list[Signal], k: float) -> dict:
    """The detection record: rule, per-signal values, spreads, z-scores and first departure, and the order."""
    if not signals:
        raise GensynthError("detection: no signals")
    generations = {len(s.values) for s in signals}
    if len(generations) != 1:
        raise GensynthError(f"detection: signals cover different numbers of generations ({sorted(generations)})")
    records = {}
    for s in signals:
        z = z_scores(s.values, s.std)
        records[s.name] = {
            "family": s.family,
            "values": s.values.tolist(),
            "bootstrap_std": s.std.tolist(),
            "z": [float(v) if np.isfinite(v) else None for v in z],  # None: zero spreads and a changed value
            "first_departure": first_departure(s.values, s.std, k),
        }
    departed = sorted((r["first_departure"], name) for name, r in records.items() if r["first_departure"] is not None)
    earliest = {family: min((r["first_departure"] for r in records.values() if r["family"] == family and r["first_departure"] is not None), default=None)
                for family in ("sample", "jacobian")}
    return {
        "rule": RULE,
        "k": k,
        "num_generations": generations.pop(),
        "signals": records,
        "departure_order": [{"signal": name, "generation": g} for g, name in departed],
        "earliest_departure": earliest,
    }


def load_jacobian_stats(paths: list, stat_names: tuple[str, ...]) -> tuple[list[dict[str, np.ndarray]], list[np.ndarray], np.ndarray]:
    """Per generation: the per-probe statistics and eigenvalues of its Jacobian NPZ; and the shared probe timesteps."""
    stats, eigenvalues, timesteps = [], [], None
    for path in paths:
        arrays = load_npz(path, required=("eigenvalues", "timesteps", *stat_names))
        if timesteps is not None and not np.array_equal(arrays["timesteps"], timesteps):
            raise GensynthError(f"{path}: probe timesteps {arrays['timesteps'].tolist()} differ from the first generation's {timesteps.tolist()}")
        timesteps = arrays["timesteps"]
        stats.append({name: arrays[name] for name in stat_names})
        eigenvalues.append(arrays["eigenvalues"])
    return stats, eigenvalues, timesteps

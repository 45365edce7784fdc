"""When does each signal leave its generation-0 baseline, beyond what retraining itself does?

Notation: a scenario's loop runs ``R`` times with independent training seeds (replicates r, all from the
same ``model_initial``); ``v[r, g]`` is a signal's value at generation g (g = 0..G-1) of replicate r. A
signal is a sample metric (FID, precision, recall, density, coverage against the fixed real test split)
or a Jacobian statistic at one probe timestep (its mean over the fixed probe images).

The rule, per scenario:

1. Change from the baseline within each replicate's own chain: ``d[r, g] = v[r, g] - v[r, 0]``. Every
   model is measured on the same probes and the same real test split, so that reference is common to
   all and cancels in the change (the pairing of the fixed probes).
2. Noise, measured: the spread between replicates of one generation, pooled over the generations,
   ``s^2 = sum_g sum_r (v[r, g] - mean_r v[., g])^2 / (G (R - 1))`` with ``G (R - 1)`` degrees of
   freedom. It holds training-seed noise and the generated sets' sampling noise; nothing is assumed.
3. ``t_g = mean_r d[r, g] / (s sqrt(2 / R))`` (the difference of two means of R; the positive
   correlation within a chain makes it conservative), two-sided p from Student's t.
4. Holm's step-down over the scenario's family of ``m = |signals| (G - 1)`` tests keeps the chance that
   any test fires on a loop that does not change at most ``alpha`` (family-wise).
5. A signal departs at its first generation whose test Holm rejects, or never. Its interval: the 5th and
   95th percentiles of that generation over bootstrap resamples of the replicate chains.

Retraining's own drift: the same test on the change relative to the control scenarios' mean change
(``fresh``, ``augmented_synthetic``: loops that do not collapse), with Welch's degrees of freedom. The
error rates are measured, not assumed: (a) the rule on each control scenario, where nothing collapses;
(b) between replicates of one generation: each replicate against the mean of the others, with the noise
measured on the others and Holm at ``alpha``.

Signals that are functions of others are left out: the effective rank is ``exp(spectral entropy)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..errors import GensynthError
from ..io import load_npz

SAMPLE_METRICS = ("fid", "precision", "recall", "density", "coverage")
JACOBIAN_STATS = ("trace", "top", "participation_ratio", "effective_rank")  # of jacobian.spectrum_stats
DROPPED = {"spectral_entropy": "effective_rank = exp(spectral_entropy): the same signal"}
CONTROLS = ("fresh", "augmented_synthetic")
RULE = (
    "per scenario: d[r,g] = v[r,g] - v[r,0] within each replicate chain; t_g = mean_r d[r,g] / (s * sqrt(2/R)) with s the "
    "between-replicate standard deviation pooled over generations (df = G(R-1)); two-sided Student-t p-values; Holm's "
    "step-down over all signals x generations g >= 1 at family-wise alpha; a signal departs at its first rejected generation"
)
NULL = (
    "every generation's mean equals generation 0's: the replicates of one generation differ only by training seed and sampling noise, measured by their spread"
)


@dataclass
class Signal:
    name: str
    family: str  # "sample" (FID, PRDC) or "jacobian"
    values: np.ndarray  # (R, G): replicate x generation


def holm(p_values: np.ndarray, alpha: float) -> np.ndarray:
    """Holm's step-down: which of the (flattened) hypotheses are rejected at family-wise level ``alpha``."""
    flat = np.asarray(p_values, dtype=float).ravel()
    order = np.argsort(flat, kind="stable")
    thresholds = alpha / (len(flat) - np.arange(len(flat)))
    passed = flat[order] <= thresholds
    k = len(flat) if passed.all() else int(np.argmin(passed))  # the first failure stops the procedure
    rejected = np.zeros(len(flat), dtype=bool)
    rejected[order[:k]] = True
    return rejected.reshape(np.shape(p_values))


def pooled_spread(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Between-replicate standard deviation pooled over generations, per signal: values (S, R, G) -> (S,), df."""
    _, replicates, generations = values.shape
    df = generations * (replicates - 1)
    residual = values - values.mean(axis=1, keepdims=True)  # (S, R, G)
    return np.sqrt((residual**2).sum(axis=(1, 2)) / df), df


def two_sided_p(t: np.ndarray, df: float | np.ndarray) -> np.ndarray:
    return 2 * stats.t.sf(np.abs(t), df)


def change_tests(values: np.ndarray) -> dict[str, np.ndarray]:
    """Steps 1-3 for values (S, R, G): change (S, G), its standard error, t and p (generation 0 included as 0)."""
    _, replicates, _ = values.shape
    change = (values - values[:, :, :1]).mean(axis=1)  # (S, G)
    spread, df = pooled_spread(values)
    se = spread[:, None] * np.sqrt(2 / replicates) * np.ones_like(change)  # (S, G)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se > 0, change / se, np.where(change == 0, 0.0, np.copysign(np.inf, change)))
    return {"change": change, "se": se, "t": t, "p": two_sided_p(t, df), "df": np.full(len(values), df, dtype=float)}


def departures(rejected: np.ndarray) -> list[int | None]:
    """First generation g >= 1 rejected, per signal (rejected: (S, G-1) for g = 1..G-1)."""
    return [int(np.argmax(row)) + 1 if row.any() else None for row in rejected]


def rule(values: np.ndarray, alpha: float) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The tests of step 3 and Holm's decisions (S, G-1) for values (S, R, G)."""
    tests = change_tests(values)
    return tests, holm(tests["p"][:, 1:], alpha)


def departure_intervals(values: np.ndarray, alpha: float, n_bootstrap: int, rng: np.random.Generator) -> list[list[int | None]]:
    """Step 5: percentiles (5th, 95th) of each signal's departure over resampled replicate chains; None = never."""
    _, replicates, generations = values.shape
    found = np.empty((n_bootstrap, len(values)))
    for b in range(n_bootstrap):
        chains = rng.integers(0, replicates, replicates)
        _, rejected = rule(values[:, chains], alpha)
        found[b] = [generations if d is None else d for d in departures(rejected)]
    low, high = np.percentile(found, [5, 95], axis=0)
    return [[int(lo) if lo < generations else None, int(hi) if hi < generations else None] for lo, hi in zip(low, high)]


def drift_corrected(values: np.ndarray, controls: list[np.ndarray], alpha: float) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The change minus the controls' mean change, with Welch's degrees of freedom; Holm over the family."""
    own = change_tests(values)
    others = [change_tests(c) for c in controls]
    k = len(others)
    reference = sum(o["change"] for o in others) / k
    parts = [own["se"] ** 2] + [(o["se"] / k) ** 2 for o in others]
    dfs = [own["df"][:, None]] + [o["df"][:, None] for o in others]
    variance = sum(parts)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = variance**2 / sum(p**2 / d for p, d in zip(parts, dfs))
        difference = own["change"] - reference
        t = np.where(variance > 0, difference / np.sqrt(variance), 0.0)
    p = two_sided_p(t, np.nan_to_num(df, nan=1.0))
    return {"change": difference, "t": t, "p": p}, holm(p[:, 1:], alpha)


def between_replicates_error_rate(values: np.ndarray, alpha: float) -> dict[str, float] | None:
    """Error rate (b): each replicate of a generation against the mean of the others, with the noise measured
    on the others (Holm over signals x generations); None with fewer than 3 replicates."""
    _, replicates, _ = values.shape
    if replicates < 3:
        return None
    fired, families_fired, tests = 0, 0, 0
    for r in range(replicates):
        others = np.delete(values, r, axis=1)  # (S, R-1, G)
        spread, df = pooled_spread(others)
        scale = spread[:, None] * np.sqrt(1 + 1 / (replicates - 1))
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(scale > 0, (values[:, r] - others.mean(axis=1)) / scale, 0.0)
        rejected = holm(two_sided_p(t, df), alpha)
        fired, families_fired, tests = fired + int(rejected.sum()), families_fired + int(rejected.any()), tests + rejected.size
    return {
        "tests": tests,
        "fired": fired,
        "test_rate": fired / tests,
        "families": replicates,
        "families_fired": families_fired,
        "family_rate": families_fired / replicates,
    }


def control_error_rate(rejected: np.ndarray) -> dict[str, float]:
    """Error rate (a): the rule's decisions on a control scenario, where nothing collapses."""
    return {"tests": int(rejected.size), "fired": int(rejected.sum()), "test_rate": float(rejected.mean()), "family_fired": bool(rejected.any())}


def detect(scenarios: dict[str, list[Signal]], alpha: float, n_bootstrap: int, seed: int) -> dict[str, dict]:
    """The detection record of every scenario (the rule, the error rates, each signal's departure)."""
    stacked = {}
    for name, signals in scenarios.items():
        if not signals:
            raise GensynthError(f"detection: scenario {name} has no signals")
        shapes = {s.values.shape for s in signals}
        if len(shapes) != 1:
            raise GensynthError(f"detection: {name}'s signals cover different replicates x generations ({sorted(shapes)})")
        replicates, generations = shapes.pop()
        if replicates < 2 or generations < 2:
            raise GensynthError(f"detection: {name} has {replicates} replicate(s) x {generations} generation(s); need >= 2 of each")
        stacked[name] = np.stack([s.values for s in signals]).astype(np.float64)  # (S, R, G)
    controls = [name for name in CONTROLS if name in stacked]
    records = {}
    for name, signals in scenarios.items():
        values = stacked[name]
        tests, rejected = rule(values, alpha)
        own_departures = departures(rejected)
        intervals = departure_intervals(values, alpha, n_bootstrap, np.random.default_rng([seed, len(records)]))
        corrected = None
        reference = [stacked[c] for c in controls if c != name]
        if reference and name not in CONTROLS and all(r.shape == values.shape for r in reference):
            corrected = drift_corrected(values, reference, alpha)
        signal_records = {}
        for i, signal in enumerate(signals):
            signal_records[signal.name] = {
                "family": signal.family,
                "values": values[i].tolist(),  # [replicate][generation]
                "mean": values[i].mean(axis=0).tolist(),
                "change": tests["change"][i].tolist(),
                "se": tests["se"][i].tolist(),
                "t": [float(v) if np.isfinite(v) else None for v in tests["t"][i]],
                "p": tests["p"][i].tolist(),
                "rejected": [False, *rejected[i].tolist()],
                "departure": own_departures[i],
                "departure_interval": intervals[i],
                "drift_corrected": None
                if corrected is None
                else {
                    "change": corrected[0]["change"][i].tolist(),
                    "t": corrected[0]["t"][i].tolist(),
                    "p": corrected[0]["p"][i].tolist(),
                    "rejected": [False, *corrected[1][i].tolist()],
                    "departure": departures(corrected[1])[i],
                },
            }
        departed = sorted((r["departure"], n) for n, r in signal_records.items() if r["departure"] is not None)
        records[name] = {
            "scenario": name,
            "rule": RULE,
            "null": NULL,
            "alpha": alpha,
            "replicates": int(values.shape[1]),
            "num_generations": int(values.shape[2]),
            "tests": int(rejected.size),
            "dropped_signals": DROPPED,
            "drift_reference": [c for c in controls if c != name] if corrected is not None else None,
            "error_rates": {
                "between_replicates": between_replicates_error_rate(values, alpha),
                "controls": {c: control_error_rate(rule(stacked[c], alpha)[1]) for c in controls},
            },
            "signals": signal_records,
            "departure_order": [{"signal": n, "generation": g} for g, n in departed],
            "earliest_departure": {
                family: min((r["departure"] for r in signal_records.values() if r["family"] == family and r["departure"] is not None), default=None)
                for family in ("sample", "jacobian")
            },
        }
    return records


def sample_signals(metrics: list[list[dict]], names: tuple[str, ...] = SAMPLE_METRICS) -> list[Signal]:
    """FID/PRDC signals from each replicate's metrics JSON per generation (``metrics[r][g]``)."""
    return [Signal(name, "sample", np.array([[m[name]["value"] for m in chain] for chain in metrics], dtype=np.float64)) for name in names]


def jacobian_signals(stats_: list[list[dict[str, np.ndarray]]], timesteps: np.ndarray, names: tuple[str, ...] = JACOBIAN_STATS) -> list[Signal]:
    """One signal per (statistic, probe timestep): its mean over the probe images, ``stats_[r][g][stat]`` (P,) per probe."""
    signals = []
    for t in np.unique(timesteps):
        at_t = timesteps == t
        for name in names:
            values = np.array([[g[name][at_t].mean() for g in chain] for chain in stats_], dtype=np.float64)  # (R, G)
            signals.append(Signal(f"{name}@t={int(t)}", "jacobian", values))
    return signals


def load_jacobian_stats(path, stat_names: tuple[str, ...]) -> tuple[list[dict[str, np.ndarray]], list[np.ndarray], np.ndarray]:
    """A chain's Jacobian NPZ: per generation the per-probe statistics and the eigenvalues (P, K); and the probe timesteps."""
    arrays = load_npz(path, required=("eigenvalues", "timesteps", *stat_names))
    eigenvalues, timesteps = arrays["eigenvalues"], arrays["timesteps"]
    if eigenvalues.ndim != 3 or eigenvalues.shape[1] != len(timesteps) or any(arrays[n].shape != eigenvalues.shape[:2] for n in stat_names):
        raise GensynthError(
            f"{path}: expected eigenvalues (G, P, K) and statistics (G, P) for P = {len(timesteps)} probes, found eigenvalues {eigenvalues.shape}"
        )
    return [{name: arrays[name][g] for name in stat_names} for g in range(len(eigenvalues))], list(eigenvalues), timesteps


def load_chains(paths: list, stat_names: tuple[str, ...]) -> tuple[list[list[dict[str, np.ndarray]]], list[list[np.ndarray]], np.ndarray]:
    """Every replicate chain's Jacobian statistics and eigenvalues (``[replicate][generation]``), on the same probes."""
    stats, eigenvalues, timesteps = [], [], None
    for path in paths:
        chain_stats, chain_eigenvalues, chain_timesteps = load_jacobian_stats(path, stat_names)
        if timesteps is not None and not np.array_equal(chain_timesteps, timesteps):
            raise GensynthError(f"{path}: probe timesteps {chain_timesteps.tolist()} differ from {paths[0]}'s {timesteps.tolist()}")
        timesteps = chain_timesteps
        stats.append(chain_stats)
        eigenvalues.append(chain_eigenvalues)
    if len({len(chain) for chain in stats}) > 1:
        raise GensynthError(f"{', '.join(map(str, paths))}: the replicate chains hold different numbers of generations")
    return stats, eigenvalues, timesteps

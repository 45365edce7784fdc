"""Does a loop trained on its own samples depart from the same loop trained on fresh real images, and which
signal shows it first?

The experimental unit is an independent initial model ``u`` (U of them): its own ``model_initial``, initial
synthetic set, probe images and real-data draws. From each unit both loops start: ``full_synthetic`` (each
generation trains on the previous one's samples) and its matched control ``matched_real`` (the same loop, set
size and steps, trained on fresh real images each generation). Each loop runs R times with its own training
seed inside the unit. A signal is a sample metric (FID, precision, recall, density, coverage against the real
test split) or a Jacobian statistic at one probe timestep (its mean over the unit's probe images);
``v[arm, u, r, g]`` is its value at generation g.

The rule:

1. Per unit, the paired difference ``D[u, g] = mean_r v[full_synthetic, u, r, g] - mean_r v[matched_real, u, r, g]``:
   both arms share the unit's initial model, probes and real test split, so what they share cancels.
2. Per signal and generation, Student's t on the U unit differences: ``t = mean_u D / (sd_u D / sqrt U)`` with
   ``U - 1`` degrees of freedom. Units are independent, so this is exact under normal unit differences whatever
   the units share across arms (shocks per generation, drift, replicates that diverge). One-sided where the
   direction is stated before the data (FID up, recall down), two-sided otherwise.
3. Holm's step-down over signals x generations at family-wise ``alpha``: ``detected_at`` is a signal's first
   rejected generation. The race: each signal's own family (Holm over its generations at ``alpha``), so every
   signal runs at the same false-alarm rate; ``delay`` is its first rejected generation.
4. Intervals: Student's t interval of each mean difference; the delay's interval is its spread over a
   parametric bootstrap of units, U new unit differences per draw with the measured mean and between-unit
   covariance, whose spread is never zero.

False alarms, measured on comparisons where nothing differs: (a) within units, one replicate of the matched
control against another (R >= 2); (b) between units, the matched control of one unit against that of another
(disjoint pairs of units as placebo units, U >= 4). Each placebo runs the same rule.

Signals that are functions of others are left out: the effective rank is ``exp(spectral entropy)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy import stats

from ..errors import GensynthError
from ..io import load_npz
from .naming import DETECTION_SCENARIOS

SAMPLE_METRICS = ("fid", "precision", "recall", "density", "coverage")
JACOBIAN_STATS = ("trace", "top", "participation_ratio", "effective_rank")  # of jacobian.spectrum_stats
DROPPED = {"spectral_entropy": "effective_rank = exp(spectral_entropy): the same signal"}
# Collapse is stated before the data as FID up and recall down; every other signal may move either way.
DIRECTIONS = {"fid": "greater", "recall": "less"}
TREATED, CONTROL = DETECTION_SCENARIOS
UNIT = (
    "an independent initial model: its own model_initial, initial synthetic set, probe images and real-data draws; "
    "both loops start from it, each in training-seed replicates averaged within the unit"
)
CONTROL_DESCRIPTION = "matched_real: full_synthetic's loop with the same set size, steps and warm start, trained on fresh real images each generation"
RULE = (
    "per unit u and generation g, D[u,g] = mean over replicates of full_synthetic minus that of matched_real; Student's t on the U "
    "unit differences (df U-1), one-sided for fid (greater) and recall (less), two-sided otherwise; Holm over signals x generations "
    "at family-wise alpha (detected_at); per signal, Holm over its generations at alpha (delay: every signal at the same false-alarm rate)"
)
NULL = "at every generation a signal's mean unit difference is zero: the loop on its own samples is measured as the same loop on fresh real images"
SCALE_STATEMENTS = {
    "demo": "a demo of every artifact at the default scale: not a finding (its power is stated per signal)",
    "study": "the study scale (config/study/madness.yaml): a finding at this scale, with the power stated per signal",
    "full": "the group's full scale: a finding at this scale, with the power stated per signal",
}


@dataclass
class Signal:
    name: str
    family: str  # "sample" (FID, PRDC) or "jacobian"
    values: np.ndarray  # (U, R, G): unit x replicate x generation
    noise: np.ndarray  # (U, R, G): the measurement's own noise (bootstrap sd of a sample metric, probe standard error)

    @property
    def direction(self) -> str:
        return DIRECTIONS.get(self.name, "two-sided")


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


def p_values(t: np.ndarray, df: float, directions: list[str]) -> np.ndarray:
    """Student-t p-values of t (S, ...) per signal's direction: greater, less or two-sided."""
    p = np.empty_like(t, dtype=float)
    for i, direction in enumerate(directions):
        if direction == "greater":
            p[i] = stats.t.sf(t[i], df)
        elif direction == "less":
            p[i] = stats.t.cdf(t[i], df)
        else:
            p[i] = 2 * stats.t.sf(np.abs(t[i]), df)
    return p


def paired_tests(differences: np.ndarray, directions: list[str], alpha: float) -> dict[str, np.ndarray]:
    """Step 2 for unit differences (S, U, G): mean, standard error, t, p and the (1 - alpha) t interval, each (S, G)."""
    units = differences.shape[1]
    if units < 2:
        raise GensynthError(f"detection: {units} unit(s); the paired test needs >= 2 independent initial models")
    df = units - 1
    mean = differences.mean(axis=1)
    se = differences.std(axis=1, ddof=1) / np.sqrt(units)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se > 0, mean / se, np.where(mean == 0, 0.0, np.copysign(np.inf, mean)))
    half = stats.t.ppf(1 - alpha / 2, df) * se
    return {"mean": mean, "se": se, "t": t, "p": p_values(t, df, directions), "df": df, "low": mean - half, "high": mean + half}


def first_rejected(rejected: np.ndarray) -> list[int | None]:
    """The first rejected generation per signal (rejected: (S, G)), or None."""
    return [int(np.argmax(row)) if row.any() else None for row in rejected]


def decisions(differences: np.ndarray, directions: list[str], alpha: float) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """The tests, Holm over the whole family (S, G) and Holm within each signal's family (S, G)."""
    tests = paired_tests(differences, directions, alpha)
    return tests, holm(tests["p"], alpha), np.array([holm(row, alpha) for row in tests["p"]])


def delay_distribution(differences: np.ndarray, directions: list[str], alpha: float, n_bootstrap: int, rng: np.random.Generator) -> np.ndarray:
    """Step 4: each signal's delay over a parametric bootstrap of units; returns (S, n_bootstrap), G for never.

    A draw's unit differences are ``mean + Z @ residuals / sqrt(U - 1)`` with standard normal Z (U x U): U new
    units with the measured mean and between-unit covariance, continuous, so no draw repeats a unit."""
    _, units, generations = differences.shape
    mean = differences.mean(axis=1, keepdims=True)  # (S, 1, G)
    residuals = differences - mean
    delays = np.empty((len(differences), n_bootstrap))
    for b in range(n_bootstrap):
        z = rng.standard_normal((units, units))
        draw = mean + np.einsum("vu,sug->svg", z, residuals) / np.sqrt(units - 1)
        _, _, own = decisions(draw, directions, alpha)
        delays[:, b] = [generations if d is None else d for d in first_rejected(own)]
    return delays


def interval_of(delays: np.ndarray, generations: int) -> list[int | None]:
    """5th and 95th percentiles of a signal's bootstrap delays; None = never within the run's generations."""
    return [None if v >= generations else int(v) for v in np.percentile(delays, [5, 95], method="lower")]


def placebo_rates(placebos: list[np.ndarray], directions: list[str], alpha: float) -> dict | None:
    """The rule on placebo unit differences (each (S, U', G)): how often the whole family fires, and each signal's own."""
    if not placebos:
        return None
    whole, own = [], []
    for differences in placebos:
        _, rejected, own_rejected = decisions(differences, directions, alpha)
        whole.append(rejected.any())
        own.append(own_rejected.any(axis=1))
    own = np.array(own)  # (placebos, S)
    return {"placebos": len(placebos), "family_fired": int(np.sum(whole)), "family_rate": float(np.mean(whole)), "signal_rates": own.mean(axis=0)}


def within_unit_placebos(control: np.ndarray) -> list[np.ndarray]:
    """(a): replicate a minus replicate b of the matched control in every unit, for every pair a < b; control (S, U, R, G)."""
    return [control[:, :, a] - control[:, :, b] for a, b in combinations(range(control.shape[2]), 2)]


def between_unit_placebos(control: np.ndarray, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """(b): ``count`` random pairings of distinct units of the matched control (replicate means), each pair a
    placebo unit in a random orientation; needs >= 2 pairs (U >= 4)."""
    means = control.mean(axis=2)  # (S, U, G)
    units = means.shape[1]
    if units < 4:
        return []
    placebos = []
    for _ in range(count):
        order = rng.permutation(units)[: units - units % 2].reshape(-1, 2)
        flip = rng.random(len(order)) < 0.5
        order[flip] = order[flip, ::-1]
        placebos.append(means[:, order[:, 0]] - means[:, order[:, 1]])
    return placebos


def detectable_difference(sd: np.ndarray, units: int, tests_per_signal: int, alpha: float, directions: list[str], power: float = 0.8) -> np.ndarray:
    """The mean unit difference each signal's own family finds with ``power`` at Bonferroni's level (Holm's
    strictest step), given the between-unit sd (S,): a normal approximation on Student's quantiles."""
    df = units - 1
    sides = np.array([1 if d in ("greater", "less") else 2 for d in directions])
    critical = stats.t.ppf(1 - alpha / (tests_per_signal * sides), df)
    return (critical + stats.t.ppf(power, df)) * sd / np.sqrt(units)


def noise_record(treated: Signal, control: Signal, differences: np.ndarray) -> dict:
    """Where a signal's noise comes from: between units, between training seeds, and the measurement itself."""
    units, replicates, generations = treated.values.shape
    training = None
    if replicates > 1:
        per_arm = [arm.values - arm.values.mean(axis=1, keepdims=True) for arm in (treated, control)]
        dof = 2 * units * generations * (replicates - 1)
        training = float(np.sqrt(sum((r**2).sum() for r in per_arm) / dof))
    measurement = float(np.sqrt(np.mean(np.concatenate([treated.noise, control.noise]) ** 2)))
    return {
        "between_units_sd_of_difference": float(differences.std(axis=0, ddof=1).mean()),
        "training_seed_sd": training,
        "measurement_sd": measurement,
        "measurement_to_training": None if not training else measurement / training,
    }


def check_arms(treated: list[Signal], control: list[Signal]) -> tuple[int, int, int]:
    names = [s.name for s in treated]
    if names != [s.name for s in control]:
        raise GensynthError(f"detection: {TREATED} and {CONTROL} carry different signals ({names} against {[s.name for s in control]})")
    shapes = {s.values.shape for s in treated + control} | {s.noise.shape for s in treated + control}
    if len(shapes) != 1:
        raise GensynthError(f"detection: the signals cover different units x replicates x generations ({sorted(shapes)})")
    units, replicates, generations = shapes.pop()
    if units < 2 or generations < 1 or replicates < 1:
        raise GensynthError(f"detection: {units} unit(s) x {replicates} replicate(s) x {generations} generation(s); need >= 2 units")
    return units, replicates, generations


def detect(treated: list[Signal], control: list[Signal], alpha: float, n_bootstrap: int, seed: int, scale: str) -> dict:
    """The detection record: the unit, the matched control, the rule, its measured false alarms, each signal's
    difference per generation with its interval, its delay with an interval, its noise and its power."""
    units, replicates, generations = check_arms(treated, control)
    names = [s.name for s in treated]
    directions = [s.direction for s in treated]
    values = np.stack([s.values for s in treated]).astype(np.float64)  # (S, U, R, G)
    matched = np.stack([s.values for s in control]).astype(np.float64)
    differences = values.mean(axis=2) - matched.mean(axis=2)  # (S, U, G)
    tests, rejected, own = decisions(differences, directions, alpha)
    rng = np.random.default_rng(seed)
    delays = delay_distribution(differences, directions, alpha, n_bootstrap, rng)
    within = placebo_rates(within_unit_placebos(matched), directions, alpha)
    between = placebo_rates(between_unit_placebos(matched, n_bootstrap, rng), directions, alpha)
    control_mean = matched.mean(axis=(1, 2))  # (S, G)
    detectable = detectable_difference(differences.std(axis=1, ddof=1).mean(axis=1), units, generations, alpha, directions)
    detected_at, delay = first_rejected(rejected), first_rejected(own)
    signal_records = {}
    for i, name in enumerate(names):
        signal_records[name] = {
            "family": treated[i].family,
            "direction": directions[i],
            "treated_mean": values[i].mean(axis=(0, 1)).tolist(),
            "control_mean": control_mean[i].tolist(),
            "difference": {
                "mean": tests["mean"][i].tolist(),
                "se": tests["se"][i].tolist(),
                "interval": [tests["low"][i].tolist(), tests["high"][i].tolist()],
                "t": [float(v) if np.isfinite(v) else None for v in tests["t"][i]],
                "p": tests["p"][i].tolist(),
                "unit_differences": differences[i].tolist(),  # [unit][generation]
            },
            "rejected": rejected[i].tolist(),
            "detected_at": detected_at[i],
            "delay": delay[i],
            "delay_interval": interval_of(delays[i], generations),
            "delay_never_share": float(np.mean(delays[i] >= generations)),
            "false_alarm_rate": {
                "within_units": None if within is None else float(within["signal_rates"][i]),
                "between_units": None if between is None else float(between["signal_rates"][i]),
            },
            "noise": noise_record(treated[i], control[i], differences[i]),
            "detectable_difference": {
                "value": float(detectable[i]),
                "relative_to_control": float(detectable[i] / abs(control_mean[i].mean())) if control_mean[i].mean() else None,
            },
        }
    race = sorted(
        ({"signal": n, "delay": r["delay"], "interval": r["delay_interval"]} for n, r in signal_records.items()),
        key=lambda row: (generations if row["delay"] is None else row["delay"], row["signal"]),
    )
    return {
        "question": "does a loop on its own samples depart from the same loop on fresh real images, and which signal shows it first?",
        "scale": scale,
        "finding": scale != "demo",
        "statement": SCALE_STATEMENTS[scale],
        "unit": UNIT,
        "treated": TREATED,
        "control": CONTROL_DESCRIPTION,
        "rule": RULE,
        "null": NULL,
        "alpha": alpha,
        "initial_models": units,
        "replicates": replicates,
        "num_generations": generations,
        "df": int(tests["df"]),
        "tests": int(rejected.size),
        "dropped_signals": DROPPED,
        "false_alarms": {
            "within_units": None if within is None else {k: v for k, v in within.items() if k != "signal_rates"},
            "between_units": None if between is None else {k: v for k, v in between.items() if k != "signal_rates"},
            "how": "the same rule on placebo differences where nothing differs: (a) two replicates of the matched control within each unit "
            "(needs replicates >= 2); (b) the matched controls of two units, disjoint pairs of units as placebo units (needs initial_models >= 4); "
            "placebos share chains, so their rates are estimates, not independent trials",
        },
        "signals": signal_records,
        "detected": bool(rejected.any()),
        "earliest": {
            family: min((r["detected_at"] for r in signal_records.values() if r["family"] == family and r["detected_at"] is not None), default=None)
            for family in ("sample", "jacobian")
        },
        "race": race,
    }


def chains_by_unit(per_chain: np.ndarray, units: int, replicates: int, what: str) -> np.ndarray:
    """Chains listed unit-major (unit0/rep0, unit0/rep1, ..., unit1/rep0, ...) as (U, R, ...)."""
    if len(per_chain) != units * replicates:
        raise GensynthError(f"detection: {len(per_chain)} {what} files; expected initial_models x replicates = {units} x {replicates}, unit-major")
    return per_chain.reshape(units, replicates, *per_chain.shape[1:])


def sample_signals(metrics: list[list[dict]], units: int, replicates: int, names: tuple[str, ...] = SAMPLE_METRICS) -> list[Signal]:
    """FID/PRDC signals and their bootstrap sd from each chain's metrics per generation (``metrics[chain][g]``)."""
    return [
        Signal(
            name,
            "sample",
            chains_by_unit(np.array([[m[name]["value"] for m in chain] for chain in metrics], dtype=np.float64), units, replicates, "metrics"),
            chains_by_unit(np.array([[m[name]["bootstrap_std"] for m in chain] for chain in metrics], dtype=np.float64), units, replicates, "metrics"),
        )
        for name in names
    ]


def jacobian_signals(
    stats_: list[list[dict[str, np.ndarray]]], timesteps: np.ndarray, units: int, replicates: int, names: tuple[str, ...] = JACOBIAN_STATS
) -> list[Signal]:
    """One signal per (statistic, probe timestep): its mean over the probe images, ``stats_[chain][g][stat]`` (P,)
    per probe; its noise the standard error of that mean over the probe images."""
    signals = []
    for t in np.unique(timesteps):
        at_t = timesteps == t
        for name in names:
            per_probe = np.array([[g[name][at_t] for g in chain] for chain in stats_], dtype=np.float64)  # (chains, G, P_t)
            spread = per_probe.std(axis=-1, ddof=1) / np.sqrt(at_t.sum()) if at_t.sum() > 1 else np.zeros(per_probe.shape[:2])
            signals.append(
                Signal(
                    f"{name}@t={int(t)}",
                    "jacobian",
                    chains_by_unit(per_probe.mean(axis=-1), units, replicates, "Jacobian"),
                    chains_by_unit(spread, units, replicates, "Jacobian"),
                )
            )
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

"""The experiment's numbers: each arm's kappa, macro F1 and accuracy with intervals, the paired difference from the baseline.

Every arm (the baseline, each augmented variant) trains one classifier per (training seed, fold); a
visit is predicted by the model of the fold whose test split holds its patient, so each seed gives
one out-of-fold prediction of every visit. Notation: y_i the phase of visit i, p_asi the prediction
of arm a with seed s.

1. per arm and run, the metrics of the pooled predictions (p_as1 .. p_asN against y), as
   scikit-learn computes them: ``cohen_kappa_score`` (weights ``kappa_weights``),
   ``f1_score(average="macro")`` over the three phases, ``accuracy_score`` (from the confusion matrix
   with its formulas, below: a test checks them against scikit-learn's functions);
2. the arm's estimate is their mean over the seeds;
3. its interval is a percentile bootstrap over the three sources of variation: a replicate draws the
   patients with replacement (a drawn patient brings all their visits, as often as drawn: the folds
   are grouped by patient, and visits of one patient are not independent), the fold partitions and
   the seeds with replacement (a run (partition, seed) weighs the product of their counts), and
   recomputes 2 on them; the ``confidence`` interval is the central share of ``n_bootstrap`` replicates;
4. the paired difference arm - baseline uses the same replicates for both (same patients, same
   runs: a seed fixes the initial weights and the batch order of both arms), so its interval is
   that of a paired design, narrower than the two arms' intervals suggest;
5. the dose response: per family of arms at fixed shares (a source and a mode), the least-squares
   slope of the paired difference on the share, the baseline at share 0, in each replicate.

A run is a (partition, seed) pair: each predicts every visit once. A regime (the share of the
training patients used) is its own experiment: its arms are compared with its own baseline.

In the bootstrap the metrics come from weighted confusion matrices, all replicates at once, with
the formulas scikit-learn uses (the tests check them against it):
kappa = 1 - sum(W * C) / sum(W * E) with E = row sums x column sums / n and W = 1 - I (unweighted),
|i - j| (linear) or (i - j)^2 (quadratic); macro F1 = mean over phases of 2 TP / (2 TP + FP + FN)
(0 for a phase with neither true nor predicted visits); accuracy = trace(C) / n.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import numpy as np

from ..errors import GensynthError
from ..io import atomic_open
from .augmentation import PHASES
from .settings import KappaWeights

METRICS = ("kappa", "macro_f1", "accuracy")
METRIC_LABELS = {"kappa": "Cohen's kappa", "macro_f1": "macro F1", "accuracy": "accuracy"}
KAPPA_WEIGHTS = get_args(KappaWeights)
BASELINE = "baseline"
K = len(PHASES)


def kappa_weight_matrix(kappa_weights: str) -> np.ndarray:
    i, j = np.meshgrid(np.arange(K), np.arange(K), indexing="ij")
    if kappa_weights == "none":
        return (i != j).astype(np.float64)
    if kappa_weights == "linear":
        return np.abs(i - j).astype(np.float64)
    if kappa_weights == "quadratic":
        return ((i - j) ** 2).astype(np.float64)
    raise GensynthError(f"kappa_weights {kappa_weights!r}: expected one of {', '.join(KAPPA_WEIGHTS)}")


def confusion_metrics(confusion: np.ndarray, kappa_weights: str = "none") -> dict[str, np.ndarray]:
    """The three metrics of (..., K, K) confusion matrices (rows: true phase, columns: predicted), elementwise."""
    confusion = np.asarray(confusion, dtype=np.float64)
    total = confusion.sum(axis=(-2, -1))  # (...)
    expected = confusion.sum(axis=-1)[..., :, None] * confusion.sum(axis=-2)[..., None, :] / total[..., None, None]  # (..., K, K)
    weights = kappa_weight_matrix(kappa_weights)
    with np.errstate(invalid="ignore", divide="ignore"):
        kappa = 1 - (weights * confusion).sum(axis=(-2, -1)) / (weights * expected).sum(axis=(-2, -1))
        true_positive = np.diagonal(confusion, axis1=-2, axis2=-1)  # (..., K)
        denominator = confusion.sum(axis=-1) + confusion.sum(axis=-2)  # 2 TP + FP + FN
        f1 = np.where(denominator > 0, 2 * true_positive / np.where(denominator > 0, denominator, 1), 0.0)
    return {"kappa": kappa, "macro_f1": f1.mean(axis=-1), "accuracy": true_positive.sum(axis=-1) / total}


def weighted_confusion(labels: np.ndarray, predictions: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Confusion matrices (B, K, K) of one set of predictions (N,) under per-visit weights (B, N)."""
    cells = np.eye(K * K)[labels * K + predictions]  # (N, K*K) one-hot cell of each visit
    return (weights @ cells).reshape(-1, K, K)


@dataclass
class Experiment:
    """Out-of-fold predictions of every arm in one regime: ``predictions[arm]`` is (runs, N), aligned with ``labels`` and
    ``patients``; a run is a (partition, seed) pair, which predicts every visit once."""

    labels: np.ndarray  # (N,) phase index
    patients: np.ndarray  # (N,) patient id
    runs: list[tuple[int, int]]  # (partition, seed) of each row of the predictions
    predictions: dict[str, np.ndarray]  # arm -> (R, N)
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)  # arm -> its augmentation settings and training counts

    @property
    def arms(self) -> list[str]:
        return list(self.predictions)

    @property
    def seeds(self) -> list[int]:
        return sorted({seed for _, seed in self.runs})

    @property
    def partitions(self) -> list[int]:
        return sorted({partition for partition, _ in self.runs})


def by_regime(runs: Mapping[str, Sequence[Mapping[str, np.ndarray]]]) -> dict[float, dict[str, list[Mapping[str, np.ndarray]]]]:
    """Each arm's per-split prediction files grouped by their regime (``train_fraction``; 1 when absent), largest first."""
    regimes: dict[float, dict[str, list]] = {}
    for arm, files in runs.items():
        for f in files:
            fraction = float(f["train_fraction"][0]) if "train_fraction" in f and len(f["train_fraction"]) else 1.0
            regimes.setdefault(fraction, {}).setdefault(arm, []).append(f)
    return dict(sorted(regimes.items(), reverse=True))


def pool_predictions(labels: np.ndarray, patients: np.ndarray, runs: Mapping[str, Sequence[Mapping[str, np.ndarray]]]) -> Experiment:
    """An Experiment from each arm's per-split prediction files of one regime (arrays seed, index, label, prediction,
    and partition: 0 when absent).

    Every visit must be predicted exactly once per (partition, seed) and arm, and all arms must share the runs.
    """
    keys = None
    pooled = {}
    for arm, files in runs.items():
        seed = np.concatenate([f["seed"] for f in files])
        partition = np.concatenate([f["partition"] if "partition" in f else np.zeros(len(f["seed"]), np.int64) for f in files])
        index = np.concatenate([f["index"] for f in files])
        prediction = np.concatenate([f["prediction"] for f in files])
        if not np.array_equal(np.concatenate([f["label"] for f in files]), labels[index]):
            raise GensynthError(f"arm {arm}: the predictions' labels disagree with the dataset's phases (another dataset?)")
        arm_keys = sorted(set(zip(partition.tolist(), seed.tolist())))
        if keys is None:
            keys = arm_keys
        elif arm_keys != keys:
            raise GensynthError(f"arm {arm}: runs (partition, seed) {arm_keys}, but the other arms have {keys}")
        table = np.full((len(keys), len(labels)), -1, dtype=np.int64)
        for row, (p, s) in enumerate(keys):
            mine = (partition == p) & (seed == s)
            visits = index[mine]
            if len(visits) != len(labels) or len(np.unique(visits)) != len(labels):
                raise GensynthError(
                    f"arm {arm}, partition {p}, seed {s}: {len(np.unique(visits))} of {len(labels)} visits predicted "
                    f"({len(visits) - len(np.unique(visits))} twice); expected each exactly once (one test fold each)"
                )
            table[row, visits] = prediction[mine]
        pooled[arm] = table
    return Experiment(labels, patients, keys or [], pooled)


def bootstrap_draws(n_patients: int, runs: Sequence[tuple[int, int]], n_bootstrap: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """How often each patient is drawn (B, P), and each run's share of a replicate (B, R): partitions and seeds are
    drawn with replacement, a run (p, s) weighing (times p drawn) x (times s drawn) (step 3)."""
    patient_counts = rng.multinomial(n_patients, np.full(n_patients, 1 / n_patients), size=n_bootstrap)
    partitions = sorted({p for p, _ in runs})
    seeds = sorted({s for _, s in runs})
    partition_counts = rng.multinomial(len(partitions), np.full(len(partitions), 1 / len(partitions)), size=n_bootstrap)  # (B, P')
    seed_counts = rng.multinomial(len(seeds), np.full(len(seeds), 1 / len(seeds)), size=n_bootstrap)  # (B, S)
    weight = np.stack([partition_counts[:, partitions.index(p)] * seed_counts[:, seeds.index(s)] for p, s in runs], axis=1).astype(np.float64)
    return patient_counts, weight / weight.sum(axis=1, keepdims=True)


def replicate_metrics(
    experiment: Experiment, arm: str, patient_counts: np.ndarray, run_share: np.ndarray, kappa_weights: str = "none"
) -> dict[str, np.ndarray]:
    """Step 3 for one arm: each metric (B,) over the replicates' patients and runs."""
    _, visit_patient = np.unique(experiment.patients, return_inverse=True)
    weights = patient_counts[:, visit_patient].astype(np.float64)  # (B, N): a visit counts as often as its patient was drawn
    per_run = [confusion_metrics(weighted_confusion(experiment.labels, p, weights), kappa_weights) for p in experiment.predictions[arm]]
    return {metric: (run_share * np.stack([m[metric] for m in per_run], axis=1)).sum(axis=1) for metric in METRICS}


def bootstrap(experiment: Experiment, n_bootstrap: int, seed: int, kappa_weights: str = "none") -> dict[str, dict[str, np.ndarray]]:
    """arm -> metric -> (B,) replicates, every arm on the same draws (from ``seed``): the paired design."""
    n_patients = len(np.unique(experiment.patients))
    patient_counts, run_share = bootstrap_draws(n_patients, experiment.runs, n_bootstrap, np.random.default_rng(seed))
    return {arm: replicate_metrics(experiment, arm, patient_counts, run_share, kappa_weights) for arm in experiment.arms}


def interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """The central ``confidence`` share of bootstrap replicates (percentiles; replicates where a metric is undefined are left out)."""
    tail = 100 * (1 - confidence) / 2
    low, high = np.nanpercentile(values, [tail, 100 - tail])
    return float(low), float(high)


def per_run_metrics(experiment: Experiment, kappa_weights: str = "none") -> dict[str, dict[str, list[float]]]:
    """Step 1: arm -> metric -> one value per run (partition, seed), from each run's confusion matrix with scikit-learn's
    formulas (the tests check them against scikit-learn's functions)."""
    result = {}
    for arm, predictions in experiment.predictions.items():
        cells = np.eye(K * K)[experiment.labels * K + predictions]  # (R, N, K*K)
        metrics = confusion_metrics(cells.sum(axis=1).reshape(-1, K, K), kappa_weights)
        result[arm] = {metric: metrics[metric].tolist() for metric in METRICS}
    return result


def summarize(experiment: Experiment, n_bootstrap: int, confidence: float, seed: int, kappa_weights: str = "none") -> list[dict[str, Any]]:
    """One row per arm (the baseline first): steps 1-4. The bootstrap's draws come from ``seed``."""
    if BASELINE not in experiment.predictions:
        raise GensynthError(f"no {BASELINE} arm among the runs ({', '.join(experiment.arms)}): the differences need it")
    replicates = bootstrap(experiment, n_bootstrap, seed, kappa_weights)
    per_run = per_run_metrics(experiment, kappa_weights)
    rows = []
    for arm in [BASELINE, *(a for a in experiment.arms if a != BASELINE)]:
        row: dict[str, Any] = {
            "arm": arm,
            **experiment.settings.get(arm, {}),
            "seeds": len(experiment.seeds),
            "partitions": len(experiment.partitions),
            "visits": len(experiment.labels),
            "patients": len(np.unique(experiment.patients)),
        }
        for metric in METRICS:
            values, baseline = per_run[arm][metric], per_run[BASELINE][metric]
            row[metric] = float(np.mean(values))
            row[f"{metric}_low"], row[f"{metric}_high"] = interval(replicates[arm][metric], confidence)
            row[f"{metric}_seed_sd"] = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
            if arm == BASELINE:
                row[f"{metric}_diff"] = row[f"{metric}_diff_low"] = row[f"{metric}_diff_high"] = math.nan
            else:
                row[f"{metric}_diff"] = float(np.mean(values) - np.mean(baseline))
                difference = replicates[arm][metric] - replicates[BASELINE][metric]
                row[f"{metric}_diff_low"], row[f"{metric}_diff_high"] = interval(difference, confidence)
        rows.append(row)
    return rows


# -- the dose response and the controls ---------------------------------------------------------------

SLOPE_UNIT = 0.1  # slopes are per 10 percentage points of synthetic share


def ols_slope(doses: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Least-squares slope of ``values`` (..., D) on ``doses`` (D,), along the last axis."""
    centred = doses - doses.mean()
    return (values - values.mean(axis=-1, keepdims=True)) @ centred / (centred @ centred)


def dose_response(
    experiment: Experiment, families: Mapping[str, Mapping[str, float]], n_bootstrap: int, confidence: float, seed: int, kappa_weights: str = "none"
) -> list[dict[str, Any]]:
    """Per family of arms (name -> {arm: share}) and metric: the slope of the paired difference from the baseline on the
    share (the baseline at share 0), per SLOPE_UNIT of share, with its bootstrap interval (the draws of ``summarize``).

    The estimate regresses the mean-over-runs differences; each replicate regresses its own, on the same patients and runs.
    """
    replicates = bootstrap(experiment, n_bootstrap, seed, kappa_weights)
    per_run = per_run_metrics(experiment, kappa_weights)
    rows = []
    for family, arms in families.items():
        if not arms:
            continue
        names = list(arms)
        doses = np.array([0.0, *(arms[a] for a in names)])
        for metric in METRICS:
            base = np.mean(per_run[BASELINE][metric])
            estimate = np.array([0.0, *(np.mean(per_run[a][metric]) - base for a in names)])
            differences = np.stack([np.zeros(n_bootstrap), *(replicates[a][metric] - replicates[BASELINE][metric] for a in names)], axis=1)
            slopes = ols_slope(doses, differences) * SLOPE_UNIT
            low, high = interval(slopes, confidence)
            rows.append(
                {
                    "family": family,
                    "metric": metric,
                    "shares": " ".join(f"{d:g}" for d in doses),
                    "slope": float(ols_slope(doses, estimate) * SLOPE_UNIT),
                    "slope_low": low,
                    "slope_high": high,
                }
            )
    return rows


def control_verdict(row: Mapping[str, Any], source: str, metric: str = "kappa") -> str:
    """What a control's paired difference says about the analysis: the negative control must show harm (else the study
    has no power and makes no claim), the positive control help or nothing."""
    low, high = row[f"{metric}_diff_low"], row[f"{metric}_diff_high"]
    if source == "wrong_phase":
        if high < 0:
            return "harm detected: the analysis can see an effect of this size"
        return "no harm detected: the study has no power at this scale and makes no claim"
    if low > 0:
        return "helps"
    if high < 0:
        return "hurts: real images of other patients should not (check the splits and the mixing)"
    return "neutral"


# -- the table -------------------------------------------------------------------------------------------


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> None:
    """Rows as CSV (NaN and None as empty cells); ``columns`` default to the rows' keys in order of appearance."""
    columns = list(columns or dict.fromkeys(key for row in rows for key in row))
    with atomic_open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None or (isinstance(v, float) and math.isnan(v)) else v) for k, v in row.items()})


def with_interval(value: float, low: float, high: float, signed: bool = False) -> str:
    if math.isnan(value):
        return "-"
    sign = "+" if signed else ""
    return f"{value:{sign}.3f} [{low:{sign}.3f}, {high:{sign}.3f}]"


def markdown_table(rows: Sequence[Mapping[str, Any]], confidence: float) -> str:
    """Estimates with their intervals, then the paired differences from the baseline."""
    percent = f"{100 * confidence:g} %"
    header = [
        "arm",
        "source",
        "mode",
        "prob",
        "mix_ratio_range",
        "inference_steps",
        "synthetic/epoch",
        *(METRIC_LABELS[m] for m in METRICS),
        *(f"Δ {METRIC_LABELS[m]}" for m in METRICS),
    ]
    lines = [
        f"Estimates: mean over runs (partition, seed) of the pooled out-of-fold metric [{percent} bootstrap interval over patients, "
        f"partitions and seeds]; Δ: paired difference from the baseline [{percent} interval].",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for row in rows:
        mix = f"{row['mix_low']:g}-{row['mix_high']:g}" if row.get("mix_low") not in (None, "") else "-"
        cells = [
            row["arm"],
            row.get("source") or "-",
            row.get("mode") or "-",
            f"{row['prob']:g}" if row.get("prob") not in (None, "") else "-",
            mix,
            str(row.get("inference_steps") or "-"),
            f"{row.get('synthetic_per_epoch', 0):.2f}",
        ]
        cells += [with_interval(row[m], row[f"{m}_low"], row[f"{m}_high"]) for m in METRICS]
        cells += [with_interval(row[f"{m}_diff"], row[f"{m}_diff_low"], row[f"{m}_diff_high"], signed=True) for m in METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def dose_markdown(slopes: Sequence[Mapping[str, Any]], confidence: float) -> str:
    """The dose-response slopes: one line per family, one column per metric."""
    if not slopes:
        return ""
    families = list(dict.fromkeys(row["family"] for row in slopes))
    lines = [
        f"Dose response: slope of the paired Δ on the synthetic share, per {100 * SLOPE_UNIT:g} percentage points "
        f"[{100 * confidence:g} % bootstrap interval], the baseline at share 0.",
        "",
        "| family | shares | " + " | ".join(f"slope Δ {METRIC_LABELS[m]}" for m in METRICS) + " |",
        "|---|---|" + "---|" * len(METRICS),
    ]
    for family in families:
        mine = {row["metric"]: row for row in slopes if row["family"] == family}
        cells = [with_interval(mine[m]["slope"], mine[m]["slope_low"], mine[m]["slope_high"], signed=True) for m in METRICS]
        lines.append(f"| {family} | {mine[METRICS[0]]['shares']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def controls_markdown(controls: Sequence[Mapping[str, Any]]) -> str:
    """What each control's Δ kappa says about the analysis."""
    if not controls:
        return ""
    lines = ["Controls (Δ Cohen's kappa from the baseline):", "", "| arm | control | share | Δ Cohen's kappa | reading |", "|---|---|---|---|---|"]
    for row in controls:
        diff = with_interval(row["kappa_diff"], row["kappa_diff_low"], row["kappa_diff_high"], signed=True)
        lines.append(f"| {row['arm']} | {row['source']} | {row['share']:g} | {diff} | {row['verdict']} |")
    return "\n".join(lines) + "\n"


def generators_summary(quality: Sequence[Mapping[str, Any]], factor: float) -> list[dict[str, Any]]:
    """Per regime, folder, modality and step count: the mean over splits of the pipelines' FID and of the held-out floor,
    their ratio and whether it is within ``factor`` (rows without both FIDs are left out)."""
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for row in quality:
        if row.get("fid_synthetic") is not None and row.get("fid_heldout") is not None:
            groups.setdefault((row["train_fraction"], row["folder"], row["modality"], row["inference_steps"]), []).append(row)
    summary = []
    for (fraction, folder, modality, steps), rows in sorted(groups.items(), key=lambda item: (-item[0][0], *item[0][1:])):
        synthetic, heldout = (float(np.mean([r[key] for r in rows])) for key in ("fid_synthetic", "fid_heldout"))
        ratio = synthetic / heldout if heldout > 0 else math.inf
        summary.append(
            {
                "train_fraction": fraction,
                "folder": folder,
                "modality": modality,
                "inference_steps": steps,
                "splits": len(rows),
                "fid_synthetic": synthetic,
                "fid_heldout": heldout,
                "ratio": ratio,
                "within_factor": ratio <= factor,
            }
        )
    return summary


def generators_markdown(summary: Sequence[Mapping[str, Any]], factor: float) -> str:
    """The generators against the held-out floor, and how many are within the stated factor."""
    if not summary:
        return ""
    within = sum(row["within_factor"] for row in summary)
    lines = [
        f"## Generators: FID of the pools' pipelines against the held-out floor (mean over splits; within {factor:g}x: {within} of {len(summary)})",
        "",
        "| training patients | folder | modality | steps | splits | FID synthetic | FID held-out real | ratio | within |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in summary:
        lines.append(
            f"| {100 * row['train_fraction']:g} % | {row['folder']} | {row['modality']} | {row['inference_steps']} | {row['splits']} | "
            f"{row['fid_synthetic']:.2f} | {row['fid_heldout']:.2f} | {row['ratio']:.2f} | {'yes' if row['within_factor'] else 'no'} |"
        )
    return "\n".join(lines) + "\n"

"""The experiment's numbers: each arm's kappa, macro F1 and accuracy with intervals, the paired difference from the baseline.

Every arm (the baseline, each augmented variant) trains one classifier per (training seed, fold); a
visit is predicted by the model of the fold whose test split holds its patient, so each seed gives
one out-of-fold prediction of every visit. Notation: y_i the phase of visit i, p_asi the prediction
of arm a with seed s.

1. per arm and seed, the metrics of the pooled predictions (p_as1 .. p_asN against y) with
   scikit-learn: ``cohen_kappa_score`` (weights ``kappa_weights``), ``f1_score(average="macro")`` over
   the three phases, ``accuracy_score``;
2. the arm's estimate is their mean over the seeds;
3. its interval is a two-level percentile bootstrap: a replicate draws the patients with replacement
   (a drawn patient brings all their visits, as often as drawn: the folds are grouped by patient, and
   visits of one patient are not independent) and the seeds with replacement, and recomputes 2 on
   them; the ``confidence`` interval is the central share of ``n_bootstrap`` replicates;
4. the paired difference arm - baseline uses the same replicates for both (same patients, same
   seeds: a seed fixes the initial weights and the batch order of both arms), so its interval is
   that of a paired design, narrower than the two arms' intervals suggest.

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
from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score

from ..errors import GensynthError
from ..io import atomic_open
from .augmentation import PHASES
from .settings import KappaWeights

METRICS = ("kappa", "macro_f1", "accuracy")
METRIC_LABELS = {"kappa": "Cohen's kappa", "macro_f1": "macro F1", "accuracy": "accuracy"}
KAPPA_WEIGHTS = get_args(KappaWeights)
BASELINE = "baseline"
K = len(PHASES)


def sklearn_metrics(labels: np.ndarray, predictions: np.ndarray, kappa_weights: str = "none") -> dict[str, float]:
    """Step 1 with scikit-learn."""
    classes = list(range(K))
    return {
        "kappa": float(cohen_kappa_score(labels, predictions, labels=classes, weights=None if kappa_weights == "none" else kappa_weights)),
        "macro_f1": float(f1_score(labels, predictions, labels=classes, average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(labels, predictions)),
    }


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
    """Out-of-fold predictions of every arm: ``predictions[arm]`` is (seeds, N), aligned with ``labels`` and ``patients``."""

    labels: np.ndarray  # (N,) phase index
    patients: np.ndarray  # (N,) patient id
    seeds: list[int]
    predictions: dict[str, np.ndarray]  # arm -> (S, N)
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)  # arm -> its augmentation settings and training counts

    @property
    def arms(self) -> list[str]:
        return list(self.predictions)


def pool_predictions(labels: np.ndarray, patients: np.ndarray, runs: Mapping[str, Sequence[Mapping[str, np.ndarray]]]) -> Experiment:
    """An Experiment from each arm's per-fold prediction files (arrays seed, index, label, prediction).

    Every visit must be predicted exactly once per seed and arm, and all arms must share the seeds.
    """
    seeds = None
    pooled = {}
    for arm, files in runs.items():
        seed = np.concatenate([f["seed"] for f in files])
        index = np.concatenate([f["index"] for f in files])
        prediction = np.concatenate([f["prediction"] for f in files])
        if not np.array_equal(np.concatenate([f["label"] for f in files]), labels[index]):
            raise GensynthError(f"arm {arm}: the predictions' labels disagree with the dataset's phases (another dataset?)")
        arm_seeds = sorted(set(seed.tolist()))
        if seeds is None:
            seeds = arm_seeds
        elif arm_seeds != seeds:
            raise GensynthError(f"arm {arm}: seeds {arm_seeds}, but the other arms have {seeds}")
        table = np.full((len(seeds), len(labels)), -1, dtype=np.int64)
        for row, s in enumerate(seeds):
            visits = index[seed == s]
            if len(visits) != len(labels) or len(np.unique(visits)) != len(labels):
                raise GensynthError(
                    f"arm {arm}, seed {s}: {len(np.unique(visits))} of {len(labels)} visits predicted "
                    f"({len(visits) - len(np.unique(visits))} twice); expected each exactly once (one test fold each)"
                )
            table[row, visits] = prediction[seed == s]
        pooled[arm] = table
    return Experiment(labels, patients, seeds or [], pooled)


def bootstrap_draws(n_patients: int, n_seeds: int, n_bootstrap: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """How often each patient (B, P) and each seed (B, S) is drawn in each replicate (step 3)."""
    patient_counts = rng.multinomial(n_patients, np.full(n_patients, 1 / n_patients), size=n_bootstrap)
    seed_counts = rng.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), size=n_bootstrap)
    return patient_counts, seed_counts


def replicate_metrics(
    experiment: Experiment, arm: str, patient_counts: np.ndarray, seed_counts: np.ndarray, kappa_weights: str = "none"
) -> dict[str, np.ndarray]:
    """Step 3 for one arm: each metric (B,) over the replicates' patients and seeds."""
    _, visit_patient = np.unique(experiment.patients, return_inverse=True)
    weights = patient_counts[:, visit_patient].astype(np.float64)  # (B, N): a visit counts as often as its patient was drawn
    per_seed = [confusion_metrics(weighted_confusion(experiment.labels, p, weights), kappa_weights) for p in experiment.predictions[arm]]
    seed_share = seed_counts / seed_counts.sum(axis=1, keepdims=True)  # (B, S)
    return {metric: (seed_share * np.stack([m[metric] for m in per_seed], axis=1)).sum(axis=1) for metric in METRICS}


def interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """The central ``confidence`` share of bootstrap replicates (percentiles; replicates where a metric is undefined are left out)."""
    tail = 100 * (1 - confidence) / 2
    low, high = np.nanpercentile(values, [tail, 100 - tail])
    return float(low), float(high)


def per_seed_metrics(experiment: Experiment, kappa_weights: str = "none") -> dict[str, dict[str, list[float]]]:
    """Step 1: arm -> metric -> one value per seed."""
    return {
        arm: {metric: [sklearn_metrics(experiment.labels, p, kappa_weights)[metric] for p in predictions] for metric in METRICS}
        for arm, predictions in experiment.predictions.items()
    }


def summarize(experiment: Experiment, n_bootstrap: int, confidence: float, seed: int, kappa_weights: str = "none") -> list[dict[str, Any]]:
    """One row per arm (the baseline first): steps 1-4. The bootstrap's draws come from ``seed``."""
    if BASELINE not in experiment.predictions:
        raise GensynthError(f"no {BASELINE} arm among the runs ({', '.join(experiment.arms)}): the differences need it")
    n_patients = len(np.unique(experiment.patients))
    patient_counts, seed_counts = bootstrap_draws(n_patients, len(experiment.seeds), n_bootstrap, np.random.default_rng(seed))
    replicates = {arm: replicate_metrics(experiment, arm, patient_counts, seed_counts, kappa_weights) for arm in experiment.arms}
    per_seed = per_seed_metrics(experiment, kappa_weights)
    rows = []
    for arm in [BASELINE, *(a for a in experiment.arms if a != BASELINE)]:
        row: dict[str, Any] = {
            "arm": arm,
            **experiment.settings.get(arm, {}),
            "seeds": len(experiment.seeds),
            "visits": len(experiment.labels),
            "patients": n_patients,
        }
        for metric in METRICS:
            values, baseline = per_seed[arm][metric], per_seed[BASELINE][metric]
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
        "prob",
        "mix_ratio_range",
        "inference_steps",
        "synthetic/epoch",
        *(METRIC_LABELS[m] for m in METRICS),
        *(f"Δ {METRIC_LABELS[m]}" for m in METRICS),
    ]
    lines = [
        f"Estimates: mean over seeds of the pooled out-of-fold metric [{percent} bootstrap interval over patients and seeds]; "
        f"Δ: paired difference from the baseline [{percent} interval].",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for row in rows:
        mix = f"{row['mix_low']:g}-{row['mix_high']:g}" if row.get("mix_low") not in (None, "") else "-"
        cells = [
            row["arm"],
            f"{row['prob']:g}" if row.get("prob") not in (None, "") else "-",
            mix,
            str(row.get("inference_steps") or "-"),
            f"{row.get('synthetic_per_epoch', 0):.2f}",
        ]
        cells += [with_interval(row[m], row[f"{m}_low"], row[f"{m}_high"]) for m in METRICS]
        cells += [with_interval(row[f"{m}_diff"], row[f"{m}_diff_low"], row[f"{m}_diff_high"], signed=True) for m in METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"

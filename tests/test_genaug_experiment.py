"""genaug's numbers: the metrics against scikit-learn, a case computed by hand, the bootstrap, the report script.

The hand case: three patients A, B, C with two visits each, phases y = 0 0 | 1 1 | 2 2, two seeds.

    baseline   seed 0: 0 0 | 1 2 | 2 2    kappa 3/4, macro F1 37/45, accuracy 5/6
               seed 1: 0 1 | 1 1 | 2 2    kappa 3/4, macro F1 37/45, accuracy 5/6
    augmented  seed 0: 0 0 | 1 1 | 2 2    kappa 1,   macro F1 1,     accuracy 1
               seed 1: 0 0 | 1 1 | 2 0    kappa 3/4, macro F1 37/45, accuracy 5/6

(seed 0 of the baseline: confusion rows (2 0 0), (0 1 1), (0 0 2); p_o = 5/6, p_e = (2*2 + 2*1 + 2*3)/36 = 1/3,
kappa = (5/6 - 1/3) / (2/3) = 3/4; F1 per phase 1, 2/3, 4/5.) Estimates: baseline 3/4, 37/45, 5/6;
augmented 7/8, 41/45, 11/12; differences 1/8, 4/45, 1/12.

A replicate that draws A twice, B never, C once, and seed 1 twice (so seed 1 alone counts):
baseline seed 1 gives confusion rows (2 2 0), (0 0 0), (0 0 2): accuracy 4/6, p_e = (4*2 + 0*2 + 2*2)/36 = 1/3,
kappa 1/2, F1 per phase 2/3, 0, 1, macro 5/9; augmented seed 1 gives rows (4 0 0), (0 0 0), (1 0 1):
accuracy 5/6, p_e = (4*5 + 0*0 + 2*1)/36 = 11/18, kappa (5/6 - 11/18) / (7/18) = 4/7, F1 8/9, 0, 2/3,
macro 14/27 (phase P, neither true nor predicted in the replicate, counts 0, as scikit-learn's zero_division=0).
"""

from __future__ import annotations

import csv
import importlib.util
import json

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score

from conftest import ROOT
from gensynth.cli import run_main
from gensynth.errors import GensynthError
from gensynth.genaug.data import save_dataset, with_folds
from gensynth.genaug.experiment import (
    KAPPA_WEIGHTS,
    Experiment,
    confusion_metrics,
    interval,
    per_run_metrics,
    pool_predictions,
    replicate_metrics,
    summarize,
    weighted_confusion,
)
from gensynth.io import save_npz

LABELS = np.array([0, 0, 1, 1, 2, 2])
PATIENTS = np.array(["A", "A", "B", "B", "C", "C"])
PREDICTIONS = {
    "baseline": np.array([[0, 0, 1, 2, 2, 2], [0, 1, 1, 1, 2, 2]]),
    "augmented": np.array([[0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 2, 0]]),
}
HAND = {  # arm -> metric -> estimate
    "baseline": {"kappa": 3 / 4, "macro_f1": 37 / 45, "accuracy": 5 / 6},
    "augmented": {"kappa": 7 / 8, "macro_f1": 41 / 45, "accuracy": 11 / 12},
}


def hand_experiment() -> Experiment:
    return Experiment(LABELS, PATIENTS, [(0, 0), (0, 1)], {arm: p.copy() for arm, p in PREDICTIONS.items()})


def sklearn_metrics(labels: np.ndarray, predictions: np.ndarray, kappa_weights: str = "none") -> dict[str, float]:
    classes = list(range(3))
    return {
        "kappa": float(cohen_kappa_score(labels, predictions, labels=classes, weights=None if kappa_weights == "none" else kappa_weights)),
        "macro_f1": float(f1_score(labels, predictions, labels=classes, average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(labels, predictions)),
    }


@pytest.mark.parametrize("weights", KAPPA_WEIGHTS)
def test_confusion_formulas_equal_scikit_learn(weights):
    rng = np.random.default_rng(0)
    for n in (5, 30, 200):
        labels = rng.integers(0, 3, n)
        for predictions in (rng.integers(0, 3, n), labels.copy(), np.where(labels == 2, 0, labels)):  # random, perfect, a phase never predicted
            confusion = weighted_confusion(labels, predictions, np.ones((1, n)))[0]
            ours = confusion_metrics(confusion, weights)
            reference = sklearn_metrics(labels, predictions, weights)
            for metric, value in reference.items():
                assert float(ours[metric]) == pytest.approx(value, abs=1e-12), (metric, n)
    runs = rng.integers(0, 3, (4, 50))
    experiment = Experiment(labels[:50], np.arange(50), [(0, s) for s in range(4)], {"arm": runs})
    per_run = per_run_metrics(experiment, weights)["arm"]
    for r, predictions in enumerate(runs):
        for metric, value in sklearn_metrics(labels[:50], predictions, weights).items():
            assert per_run[metric][r] == pytest.approx(value, abs=1e-12)
    # weights count a visit that often: a patient drawn twice is its visits twice
    doubled = weighted_confusion(LABELS, PREDICTIONS["baseline"][0], np.array([[2, 2, 1, 1, 0, 0]]))[0]
    np.testing.assert_array_equal(doubled, [[4, 0, 0], [0, 1, 1], [0, 0, 0]])


def test_the_hand_computed_case():
    rows = summarize(hand_experiment(), n_bootstrap=200, confidence=0.9, seed=0)
    assert [row["arm"] for row in rows] == ["baseline", "augmented"]
    for row in rows:
        for metric, value in HAND[row["arm"]].items():
            assert row[metric] == pytest.approx(value, abs=1e-12)
            assert -1 <= row[f"{metric}_low"] <= row[f"{metric}_high"] <= 1
    augmented = rows[1]
    assert augmented["kappa_diff"] == pytest.approx(1 / 8) and augmented["macro_f1_diff"] == pytest.approx(4 / 45)
    assert augmented["accuracy_diff"] == pytest.approx(1 / 12)
    assert augmented["accuracy_seed_sd"] == pytest.approx(np.std([1, 5 / 6], ddof=1))
    assert np.isnan(rows[0]["kappa_diff"])


def test_one_bootstrap_replicate_by_hand():
    experiment = hand_experiment()
    patients, seeds = np.array([[2, 0, 1]]), np.array([[0.0, 1.0]])  # A twice, B never, C once; seed 1 twice (all the weight)
    baseline = replicate_metrics(experiment, "baseline", patients, seeds)
    augmented = replicate_metrics(experiment, "augmented", patients, seeds)
    assert {m: float(v[0]) for m, v in baseline.items()} == pytest.approx({"kappa": 1 / 2, "macro_f1": 5 / 9, "accuracy": 2 / 3})
    assert {m: float(v[0]) for m, v in augmented.items()} == pytest.approx({"kappa": 4 / 7, "macro_f1": 14 / 27, "accuracy": 5 / 6})
    # each seed once and each patient once is the estimate itself
    whole = replicate_metrics(experiment, "augmented", np.array([[1, 1, 1]]), np.array([[0.5, 0.5]]))
    assert {m: float(v[0]) for m, v in whole.items()} == pytest.approx(HAND["augmented"])


def test_percentile_interval_and_a_paired_difference():
    assert interval(np.arange(101.0), 0.9) == pytest.approx((5.0, 95.0))
    assert interval(np.array([np.nan, 1.0, 2.0, 3.0]), 0.5) == pytest.approx((1.5, 2.5))  # undefined replicates left out
    # two identical arms: each interval is wide, the paired difference exactly zero
    rng = np.random.default_rng(1)
    labels, patients = rng.integers(0, 3, 60), np.repeat(np.arange(20), 3)
    noisy = np.where(rng.random((3, 60)) < 0.4, rng.integers(0, 3, (3, 60)), labels)
    experiment = Experiment(labels, patients, [(0, 0), (0, 1), (0, 2)], {"baseline": noisy, "augmented": noisy.copy()})
    baseline, augmented = summarize(experiment, 300, 0.95, seed=2)
    assert baseline["kappa_high"] - baseline["kappa_low"] > 0.1
    assert (augmented["kappa_diff"], augmented["kappa_diff_low"], augmented["kappa_diff_high"]) == (0.0, 0.0, 0.0)


def fold_file(arm: str, visits: list[int]) -> dict[str, np.ndarray]:
    """One fold's predictions file of the hand case: both seeds' predictions of some visits."""
    seeds = np.repeat([0, 1], len(visits))
    index = np.tile(visits, 2)
    return {"seed": seeds, "index": index, "label": LABELS[index], "prediction": PREDICTIONS[arm][seeds, index]}


def test_pooling_needs_every_visit_once_per_seed():
    runs = {arm: [fold_file(arm, [0, 1, 2, 3]), fold_file(arm, [4, 5])] for arm in PREDICTIONS}
    pooled = pool_predictions(LABELS, PATIENTS, runs)
    for arm, predictions in PREDICTIONS.items():
        np.testing.assert_array_equal(pooled.predictions[arm], predictions)
    with pytest.raises(GensynthError, match=r"arm baseline, partition 0, seed 0: 4 of 6 visits predicted \(0 twice\)"):
        pool_predictions(LABELS, PATIENTS, {"baseline": [fold_file("baseline", [0, 1, 2, 3])]})
    with pytest.raises(GensynthError, match=r"5 of 6 visits predicted \(1 twice\)"):
        pool_predictions(LABELS, PATIENTS, {"baseline": [fold_file("baseline", [0, 1, 2, 3]), fold_file("baseline", [3, 4])]})
    other_seed = {**fold_file("augmented", [0, 1, 2, 3, 4, 5])}
    other_seed["seed"] = other_seed["seed"] + 5
    with pytest.raises(GensynthError, match=r"arm augmented: runs \(partition, seed\) \[\(0, 5\), \(0, 6\)\], but the other arms have \[\(0, 0\), \(0, 1\)\]"):
        pool_predictions(LABELS, PATIENTS, {"baseline": runs["baseline"], "augmented": [other_seed]})


def test_the_report_script_prints_the_hand_computed_numbers(tmp_path):
    """scripts/genaug_report.py on hand-made files: the table, its markdown and the figure."""
    from gensynth.genaug.phantom import PhantomConfig, make_phantom

    arrays = make_phantom(PhantomConfig(patients=3, visits=2, image_size=8))
    arrays.update(phase=LABELS, patient=PATIENTS)
    save_dataset(tmp_path / "dataset.npz", with_folds(arrays, 2, 0.0, 0))
    arguments = ["--dataset", tmp_path / "dataset.npz"]
    for arm in PREDICTIONS:
        files = []
        for fold, visits in enumerate(([0, 1, 2, 3], [4, 5])):
            save_npz(tmp_path / f"{arm}{fold}.npz", fold_file(arm, visits))
            files.append(tmp_path / f"{arm}{fold}.npz")
            enabled = arm == "augmented"
            history = {
                "augmenting": enabled,
                "cache": {"hit_rate": 0.75} if enabled else None,
                "augmentation": {"depth_rgb": {"enabled": enabled, "prob": 0.5, "mix_ratio_range": [0.01, 0.05], "inference_steps": 10}},
                "seeds_history": {"0": {"synthetic_per_epoch": 2.0 if enabled else 0.0}, "1": {"synthetic_per_epoch": 1.0 if enabled else 0.0}},
            }
            (tmp_path / f"{arm}{fold}.json").write_text(json.dumps(history))
        arguments += ["--arm", arm, *files, "--history", arm, *[f.with_suffix(".json") for f in files]]
    outputs = {
        flag: tmp_path / name
        for flag, name in (
            ("--out-table", "results.csv"),
            ("--out-markdown", "results.md"),
            ("--out-figure", "comparison.png"),
            ("--out-dose", "dose.csv"),
            ("--out-dose-figure", "dose.png"),
            ("--out-quality", "quality.csv"),
            ("--out-json", "summary.json"),
        )
    }
    arguments += ["--n-bootstrap", "100", *[str(x) for pair in outputs.items() for x in pair]]
    spec = importlib.util.spec_from_file_location("genaug_report", ROOT / "scripts" / "genaug_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert run_main(module.main, [str(a) for a in arguments]) == 0

    with open(outputs["--out-table"], newline="") as handle:
        rows = {row["arm"]: row for row in csv.DictReader(handle)}
    for arm, metrics in HAND.items():
        for metric, value in metrics.items():
            assert float(rows[arm][metric]) == pytest.approx(value)
    assert float(rows["augmented"]["kappa_diff"]) == pytest.approx(1 / 8) and rows["baseline"]["kappa_diff"] == ""
    assert rows["augmented"]["synthetic_per_epoch"] == "1.5" and rows["augmented"]["cache_hit_rate"] == "0.75"
    assert (rows["augmented"]["prob"], rows["augmented"]["mix_low"], rows["augmented"]["inference_steps"]) == ("0.5", "0.01", "10")
    markdown = outputs["--out-markdown"].read_text()
    assert (
        "| baseline | - | - | - | - | - | 0.00 | 0.750 [" in markdown
        and "| augmented | generated | replace | 0.5 | 0.01-0.05 | 10 | 1.50 | 0.875 [" in markdown
    )
    assert markdown.startswith("# genaug: a demo") and "## Regime: 100 % of each fold's training patients (1 partition(s) x 2 seeds)" in markdown
    assert "+0.125 [" in markdown
    assert outputs["--out-figure"].read_bytes()[:4] == b"\x89PNG"
    assert outputs["--out-quality"].read_text().startswith("fold,train_fraction,partition,folder,modality,phase,inference_steps")
    summary = json.loads(outputs["--out-json"].read_text())
    assert summary["per_run"]["1.0"]["metrics"]["augmented"]["kappa"] == pytest.approx([1.0, 0.75]) and "provenance" in summary
    assert summary["finding"] is False and summary["dose_response"] == [] and summary["controls"] == []
